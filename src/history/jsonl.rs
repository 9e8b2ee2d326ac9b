//! Reading faultline's `history.jsonl` (one JSON [`HistoryEvent`] per line) as a stream: one
//! line at a time from a reader, never the whole file text at once. A history of a million
//! operations (240 MB of text) is read into a [`CompactHistory`] of about 32 bytes per event
//! plus each distinct value once.

use std::borrow::Cow;
use std::io::BufRead;

use serde::Deserialize;

use super::{CompactHistory, EventType, Function, HistoryEvent, ImportedHistory, ReadError, Value};

/// What an invalid line was expected to be.
const EXPECTED_EVENT: &str = "a JSON object with process, type (invoke|ok|fail|info), f and \
                              optional index, time_ns, node, key, value, error";

/// One line, with its strings borrowed from the line where they have no escapes. The fields
/// and their defaults are [`HistoryEvent`]'s.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    time_ns: u64,
    process: u64,
    #[serde(default, borrow)]
    node: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: EventType,
    f: Function,
    #[serde(default, borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(default)]
    value: Value,
    #[serde(default, borrow)]
    error: Option<Cow<'a, str>>,
}

/// Calls `each` with every event of `reader` and its 1-based line, in file order; blank lines
/// are skipped, a byte-order mark before the first line is ignored.
///
/// # Errors
/// [`ReadError`] naming the line: bytes that are not UTF-8, a line that is not an event (the
/// message gives serde_json's column), or the reader's I/O error.
fn each_event<R: BufRead>(
    mut reader: R,
    mut each: impl FnMut(u32, Line<'_>),
) -> Result<(), ReadError> {
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut line: u32 = 0;
    loop {
        buf.clear();
        line = line.saturating_add(1);
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| ReadError::new(line, format!("a read error ({e})"), "a readable file"))?;
        if n == 0 {
            return Ok(());
        }
        let text = std::str::from_utf8(&buf)
            .map_err(|_| ReadError::new(line, "bytes that are not UTF-8", "UTF-8 text"))?;
        let text = if line == 1 {
            text.strip_prefix('\u{feff}').unwrap_or(text)
        } else {
            text
        };
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.trim().is_empty() {
            continue;
        }
        let event: Line<'_> = serde_json::from_str(text).map_err(|e| {
            // serde_json counts lines within this one line: name only its column.
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = message.strip_suffix(&suffix).unwrap_or(&message);
            ReadError::new(
                line,
                format!("an invalid event at column {} ({message})", e.column()),
                EXPECTED_EVENT,
            )
        })?;
        each(line, event);
    }
}

/// Reads a `history.jsonl` from `reader` into a [`CompactHistory`], one line at a time.
///
/// # Errors
/// [`ReadError`] naming the line (and, for malformed JSON, the column) and what was expected.
pub fn read_compact<R: BufRead>(reader: R) -> Result<CompactHistory, ReadError> {
    let mut history = CompactHistory::default();
    each_event(reader, |line, e| {
        history.push(
            line,
            e.process,
            e.kind,
            e.f,
            e.key.as_deref(),
            e.value,
            e.time_ns,
            &e.node,
        );
    })?;
    history.finish();
    Ok(history)
}

/// Reads a `history.jsonl` from `text` into [`HistoryEvent`]s, keeping the file's own `index`.
pub(super) fn read_events(text: &str) -> Result<ImportedHistory, ReadError> {
    let mut history = ImportedHistory::default();
    each_event(text.as_bytes(), |line, e| {
        history.events.push(HistoryEvent {
            index: e.index,
            time_ns: e.time_ns,
            process: e.process,
            node: e.node.into_owned(),
            kind: e.kind,
            f: e.f,
            key: e.key.map(Cow::into_owned),
            value: e.value,
            error: e.error.map(Cow::into_owned),
        });
        history.lines.push(line);
    })?;
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Events;

    #[test]
    fn streaming_errors_still_name_the_line_and_the_column() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\"}\n\n\
                    {\"process\":0,\"type\":\"ok\",\"f\":\"get\" \"key\":\"k\"}\n";
        let e = read_compact(text.as_bytes()).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.found
                .starts_with("an invalid event at column 36 (expected `,` or `}`)"),
            "{e}"
        );
        assert_eq!(e.expected, EXPECTED_EVENT);
        let e = read_compact(&b"{\"process\":0,\"type\":\"invoke\",\"f\":\"get\"}\n\xff\n"[..])
            .unwrap_err();
        assert_eq!((e.line, e.found.as_str()), (2, "bytes that are not UTF-8"));
        let e = read_compact(&b"{\"process\":0,\"type\":\"done\",\"f\":\"get\"}"[..]).unwrap_err();
        assert!(e.found.contains("unknown variant `done`"), "{e}");
    }

    #[test]
    fn streaming_reads_what_the_event_reader_reads() {
        let text = "\u{feff}{\"index\":4,\"time_ns\":9,\"process\":2,\"node\":\"c1\",\"type\":\"invoke\",\
                    \"f\":\"cas\",\"key\":\"k\\\"1\",\"value\":[\"a\",\"b\"]}\r\n   \n\
                    {\"process\":2,\"type\":\"fail\",\"f\":\"cas\",\"key\":\"k\\\"1\",\"error\":\"x\"}";
        let events = read_events(text).unwrap();
        let compact = read_compact(text.as_bytes()).unwrap();
        assert_eq!(events.lines, vec![1, 3]);
        assert_eq!(compact.lines, events.lines);
        assert_eq!(events.events[0].index, 4);
        assert_eq!(events.events[0].key.as_deref(), Some("k\"1"));
        assert_eq!(events.events[1].error.as_deref(), Some("x"));
        for i in 0..2 {
            // A history read for checking keeps no error text (the checker reads none).
            let expected = EventRef {
                error: None,
                ..EventRef::from(&events.events[i])
            };
            assert_eq!(compact.event(i), expected);
        }
    }

    use crate::history::EventRef;
}
