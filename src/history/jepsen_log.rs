//! Reader for Jepsen's console log format, as in the etcd histories of Porcupine's and Horn &
//! Kroening's test data:
//!
//! ```text
//! INFO  jepsen.util - 3 :invoke :cas [3 0]
//! INFO  jepsen.util - 3 :fail :cas [3 0]
//! INFO  jepsen.util - 0 :ok :read nil
//! INFO  jepsen.util - 1 :info :write :timed-out
//! ```
//!
//! (fields separated by tabs.) Each operation line is `<anything>jepsen.util - PROCESS TYPE F VALUE` with tabs or spaces
//! between the fields; VALUE is EDN and may contain spaces (`[3 0]`). Lines without
//! `jepsen.util - ` are log noise and are skipped; so are lines whose process is `:nemesis`.
//! A keyword VALUE on a completion (`:timed-out`) is the error, not a value: the event gets
//! `error = "timed-out"` and value `nil`.

use super::edn::{Edn, Reader};
use super::{EventType, HistoryEvent, ImportedHistory, ReadError, Value, function_from_name};

const MARKER: &str = "jepsen.util - ";

/// Reads a Jepsen console log.
///
/// # Errors
/// [`ReadError`] with the 1-based line of an operation line that does not have the shape
/// `PROCESS :TYPE :F VALUE`.
pub fn read(text: &str) -> Result<ImportedHistory, ReadError> {
    let mut history = ImportedHistory::default();
    for (i, raw) in text.lines().enumerate() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let Some(at) = raw.find(MARKER) else {
            continue;
        };
        let rest = &raw[at + MARKER.len()..];
        let bad = |found: String, expected: &str| ReadError::new(line, found, expected);
        let mut fields = rest.splitn(2, [' ', '\t']);
        let process_text = fields.next().unwrap_or("").trim();
        let mut rest = fields.next().unwrap_or("").trim_start();
        if process_text == ":nemesis" {
            continue;
        }
        let process: u64 = process_text.parse().map_err(|_| {
            bad(
                format!("process `{process_text}`"),
                "a process number or :nemesis after `jepsen.util - `",
            )
        })?;
        let mut next_word = |what: &str| -> Result<&str, ReadError> {
            let (word, after) = match rest.find([' ', '\t']) {
                Some(end) => (&rest[..end], rest[end..].trim_start()),
                None => (rest, ""),
            };
            rest = after;
            if word.is_empty() {
                Err(bad(format!("no {what}"), what))
            } else {
                Ok(word)
            }
        };
        let kind_text = next_word("the type (:invoke, :ok, :fail or :info)")?;
        let kind = match kind_text {
            ":invoke" => EventType::Invoke,
            ":ok" => EventType::Ok,
            ":fail" => EventType::Fail,
            ":info" => EventType::Info,
            other => {
                return Err(bad(
                    format!("type `{other}`"),
                    ":invoke, :ok, :fail or :info",
                ));
            }
        };
        let f_text = next_word("the function (e.g. :read, :write, :cas)")?;
        let f = f_text
            .strip_prefix(':')
            .and_then(function_from_name)
            .ok_or_else(|| {
                bad(
                    format!("function `{f_text}`"),
                    "one of :read :write :cas :get :put :append :acquire :release :txn",
                )
            })?;
        let value_text = rest.trim();
        let mut reader = Reader::new(value_text);
        let value_edn = if value_text.is_empty() {
            Edn::Nil
        } else {
            let form = reader
                .next_form()
                .map_err(|e| bad(format!("value `{value_text}`: {}", e.found), &e.expected))?;
            if !reader.at_end() {
                return Err(bad(
                    format!("text after the value in `{value_text}`"),
                    "one EDN value at the end of the line",
                ));
            }
            form.map(|(_, v)| v).unwrap_or(Edn::Nil)
        };
        let (value, error) = match (&value_edn, kind) {
            (Edn::Keyword(k), EventType::Ok | EventType::Fail | EventType::Info) => {
                (Value::Nil, Some(k.clone()))
            }
            _ => (
                super::value_from_edn(&value_edn)
                    .map_err(|found| bad(found, "nil, an integer, a string or a vector"))?,
                None,
            ),
        };
        let mut event = HistoryEvent::new(process, kind, f, None, value);
        event.error = error;
        history.push(line, event);
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Function;

    #[test]
    fn reads_operation_lines_and_skips_noise() {
        let text = "INFO  jepsen.core - starting\n\
                    INFO  jepsen.util - 3\t:invoke\t:cas\t[3 0]\n\
                    INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
                    INFO  jepsen.util - 3   :fail   :cas    [3 0]\n\
                    INFO  jepsen.util - 0\t:ok\t:read\tnil\n\
                    INFO  jepsen.util - 1\t:info\t:write\t:timed-out\n";
        let h = read(text).unwrap();
        assert_eq!(h.lines, vec![2, 4, 5, 6]);
        let e = &h.events;
        assert_eq!(e[0].process, 3);
        assert_eq!(e[0].kind, EventType::Invoke);
        assert_eq!(e[0].f, Function::Cas);
        assert_eq!(e[0].value, Value::List(vec![Value::Int(3), Value::Int(0)]));
        assert_eq!(e[1].kind, EventType::Fail);
        assert_eq!(e[2].value, Value::Nil);
        assert_eq!(e[3].kind, EventType::Info);
        assert_eq!(e[3].error.as_deref(), Some("timed-out"));
        assert_eq!(e[3].index, 3);
    }

    #[test]
    fn names_the_line_and_what_was_expected() {
        let err = read("x\nINFO  jepsen.util - 3\t:invoke\t:frob\t1\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.expected.contains(":read"), "{err}");
        let err = read("INFO  jepsen.util - p\t:invoke\t:read\tnil\n").unwrap_err();
        assert!(err.found.contains("process"), "{err}");
        let err = read("INFO  jepsen.util - 1\t:begin\t:read\tnil\n").unwrap_err();
        assert!(err.expected.contains(":invoke"), "{err}");
        let err = read("INFO  jepsen.util - 1\t:ok\t:read\t[1\n").unwrap_err();
        assert!(err.found.contains("value"), "{err}");
        let err = read("INFO  jepsen.util - 1\t:ok\t:read\t1 2\n").unwrap_err();
        assert!(err.expected.contains("one EDN value"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "(INFO  jepsen.util - [0-9:a-z]{0,3}[ \t][:a-z]{0,7}[ \t][:a-z]{0,6}[ \t][\\[\\]0-9 a-z:]{0,8}\n){0,5}") {
            let _ = read(&text);
        }
    }
}
