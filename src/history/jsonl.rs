//! Reading faultline's `history.jsonl` (one JSON [`HistoryEvent`] per line) as a stream: a batch
//! of lines at a time from a reader (about 1 MiB), never the whole file text at once. The lines
//! of a batch are parsed on all cores (rayon), then taken in file order, so what is read, and
//! the first error, are the same as line by line. A history of a million operations (240 MB of
//! text) is read into a [`CompactHistory`] of about 32 bytes per event plus each distinct value
//! once; a value seen before is looked up without being copied.

use std::borrow::Cow;
use std::io::BufRead;

use rayon::prelude::*;
use serde::Deserialize;

use super::compact::value_ref_hash;
use super::{
    CompactHistory, EventType, Function, HistoryEvent, ImportedHistory, ReadError, ValueRef,
};

/// What an invalid line was expected to be.
const EXPECTED_EVENT: &str = "a JSON object with process, type (invoke|ok|fail|info), f and \
                              optional index, time_ns, node, key, value, error";

/// Bytes of text read before a batch is parsed (a batch ends at the end of a line).
const BATCH_BYTES: usize = 1 << 20;

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
    #[serde(default, borrow)]
    value: ValueRef<'a>,
    #[serde(default, borrow)]
    error: Option<Cow<'a, str>>,
}

/// Parses line number `line` (its bytes `bytes`, with its line ending): `None` for a blank
/// line; with the interner's hash of its value ([`value_ref_hash`]).
fn parse_line(line: u32, bytes: &[u8]) -> Result<Option<(Line<'_>, u64)>, ReadError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ReadError::new(line, "bytes that are not UTF-8", "UTF-8 text"))?;
    let text = if line == 1 {
        text.strip_prefix('\u{feff}').unwrap_or(text)
    } else {
        text
    };
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.trim().is_empty() {
        return Ok(None);
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
    let hash = value_ref_hash(&event.value);
    Ok(Some((event, hash)))
}

/// Calls `each` with every event of `reader`, its 1-based line and its value's hash
/// ([`value_ref_hash`]), in file order; blank lines are skipped, a byte-order mark before the
/// first line is ignored. Lines are read in batches of about `batch_bytes` (whole lines, at least
/// one) and each batch is parsed in parallel; `each` runs on the calling thread, in order.
///
/// # Errors
/// [`ReadError`] naming the line: bytes that are not UTF-8, a line that is not an event (the
/// message gives serde_json's column), or the reader's I/O error; the first in file order.
fn each_event<R: BufRead>(
    mut reader: R,
    batch_bytes: usize,
    mut each: impl FnMut(u32, Line<'_>, u64),
) -> Result<(), ReadError> {
    let mut buf: Vec<u8> = Vec::new();
    // `ends[k]`: where line `first + k` ends in `buf`.
    let mut ends: Vec<usize> = Vec::new();
    let mut first: u32 = 1;
    loop {
        buf.clear();
        ends.clear();
        let mut stop: Option<Result<(), ReadError>> = None;
        while ends.is_empty() || buf.len() < batch_bytes {
            let line = first.saturating_add(ends.len() as u32);
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => {
                    stop = Some(Ok(()));
                    break;
                }
                Ok(_) => ends.push(buf.len()),
                Err(e) => {
                    stop = Some(Err(ReadError::new(
                        line,
                        format!("a read error ({e})"),
                        "a readable file",
                    )));
                    break;
                }
            }
        }
        let parsed: Vec<Result<Option<(Line<'_>, u64)>, ReadError>> = ends
            .par_iter()
            .enumerate()
            .with_min_len(256)
            .map(|(k, &end)| {
                let start = if k == 0 { 0 } else { ends[k - 1] };
                parse_line(first.saturating_add(k as u32), &buf[start..end])
            })
            .collect();
        for (k, event) in parsed.into_iter().enumerate() {
            if let Some((event, hash)) = event? {
                each(first.saturating_add(k as u32), event, hash);
            }
        }
        if let Some(end) = stop {
            return end;
        }
        first = first.saturating_add(ends.len() as u32);
    }
}

/// Reads a `history.jsonl` from `reader` into a [`CompactHistory`], a batch of lines at a time.
///
/// # Errors
/// [`ReadError`] naming the line (and, for malformed JSON, the column) and what was expected.
pub fn read_compact<R: BufRead>(reader: R) -> Result<CompactHistory, ReadError> {
    let mut history = CompactHistory::default();
    each_event(reader, BATCH_BYTES, |line, e, hash| {
        let value = history.values_mut().intern_ref(&e.value, hash);
        history.push_interned(
            line,
            e.process,
            e.kind,
            e.f,
            e.key.as_deref(),
            value,
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
    each_event(text.as_bytes(), BATCH_BYTES, |line, e, _| {
        history.events.push(HistoryEvent {
            index: e.index,
            time_ns: e.time_ns,
            process: e.process,
            node: e.node.into_owned(),
            kind: e.kind,
            f: e.f,
            key: e.key.map(Cow::into_owned),
            value: e.value.into_owned(),
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

    #[test]
    fn lines_read_in_batches_are_read_as_one_by_one() {
        let mut text = String::from("\u{feff}");
        for i in 0..300u32 {
            match i % 7 {
                0 => text.push_str("   \n"),
                1 => text.push_str(&format!(
                    "{{\"process\":{i},\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k\\\"{}\",\"value\":\"v{}\"}}\r\n",
                    i % 5,
                    i % 11
                )),
                _ => text.push_str(&format!(
                    "{{\"process\":{i},\"type\":\"ok\",\"f\":\"cas\",\"node\":\"c{}\",\"value\":[\"v{}\",null]}}\n",
                    i % 3,
                    i % 13
                )),
            }
        }
        let whole = read_compact(text.as_bytes()).unwrap();
        let events = read_events(&text).unwrap();
        assert_eq!(whole.lines, events.lines);
        for batch_bytes in [1, 64, 1000] {
            let mut lines = Vec::new();
            let mut values = Vec::new();
            each_event(text.as_bytes(), batch_bytes, |line, e, hash| {
                assert_eq!(hash, value_ref_hash(&e.value));
                lines.push(line);
                values.push(e.value.into_owned());
            })
            .unwrap();
            assert_eq!(lines, whole.lines, "batches of {batch_bytes} bytes");
            for (i, v) in values.iter().enumerate() {
                assert_eq!(whole.event(i).value, v);
                assert_eq!(&events.events[i].value, v);
            }
        }
        // The first bad line in file order is reported, whichever batch it is in.
        let mut bad = text.lines().map(str::to_string).collect::<Vec<_>>();
        bad[150] = "{\"process\":1}".into();
        bad[250] = "not json".into();
        let bad = bad.join("\n");
        for batch_bytes in [1, 64, 1 << 20] {
            let mut seen = 0;
            let e = each_event(bad.as_bytes(), batch_bytes, |_, _, _| seen += 1).unwrap_err();
            assert_eq!(e.line, 151, "batches of {batch_bytes} bytes: {e}");
            assert!(e.found.contains("missing field `type`"), "{e}");
            // Every event before it was taken, none after.
            assert_eq!(seen, whole.lines.iter().filter(|&&l| l < 151).count());
        }
    }

    use crate::history::EventRef;
}
