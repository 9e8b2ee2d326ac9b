//! Reading faultline's `history.jsonl` (one JSON [`HistoryEvent`] per line) as a stream: a batch
//! of lines at a time from a reader (about 1 MiB), never the whole file text at once. The lines
//! of a batch are parsed on all cores (rayon), then taken in file order, so what is read, and
//! the first error, are the same as line by line. A history of a million operations (240 MB of
//! text) is read into a [`CompactHistory`] of about 32 bytes per event plus each distinct value
//! once; a value seen before is looked up without being copied.

use std::borrow::Cow;
use std::io::Read;

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

/// A batch of whole lines read into a buffer ([`Batch::fill`]).
struct Batch {
    /// `buf[..filled]`: the text read; it starts with the partial line the previous batch left.
    buf: Vec<u8>,
    filled: usize,
    /// `ends[k]`: where line `first + k` ends in `buf` (after its `\n`).
    ends: Vec<usize>,
    /// The 1-based line of the batch's first line.
    first: u32,
}

/// A batch's lines, parsed: `None` for a blank line.
type Parsed<'b> = Vec<Result<Option<(Line<'b>, u64)>, ReadError>>;

impl Batch {
    fn new(batch_bytes: usize) -> Self {
        Batch {
            buf: vec![0; batch_bytes],
            filled: 0,
            ends: Vec::new(),
            first: 1,
        }
    }

    /// Where the batch's whole lines end (the partial line after it waits for the next).
    fn parsed_bytes(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Refills the batch, starting with `carried` (the partial line the previous batch left)
    /// at line `first`, reading from `reader` until it holds at least `batch_bytes` bytes and
    /// one whole line, or the end. Returns how the reading stopped, if it did: `Ok` at the end
    /// (a last line without a line ending is a line), the read error otherwise (naming the line
    /// being read); the lines before it are in the batch either way.
    fn fill(
        &mut self,
        reader: &mut impl Read,
        carried: &[u8],
        first: u32,
        batch_bytes: usize,
    ) -> Option<Result<(), ReadError>> {
        self.first = first;
        self.ends.clear();
        if self.buf.len() < carried.len().max(batch_bytes) {
            self.buf.resize(carried.len().max(batch_bytes), 0);
        }
        self.buf[..carried.len()].copy_from_slice(carried);
        self.filled = carried.len();
        while self.ends.is_empty() || self.filled < batch_bytes {
            if self.filled == self.buf.len() {
                // A line longer than the buffer: make room.
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let read = match reader.read(&mut self.buf[self.filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let line = first.saturating_add(self.ends.len() as u32);
                    return Some(Err(ReadError::new(
                        line,
                        format!("a read error ({e})"),
                        "a readable file",
                    )));
                }
            };
            if read == 0 {
                if self.parsed_bytes() < self.filled {
                    self.ends.push(self.filled);
                }
                return Some(Ok(()));
            }
            let from = self.filled;
            self.ends.extend(
                memchr::memchr_iter(b'\n', &self.buf[from..from + read]).map(|at| from + at + 1),
            );
            self.filled += read;
        }
        None
    }

    /// The partial line after the batch's whole lines.
    fn rest(&self) -> &[u8] {
        &self.buf[self.parsed_bytes()..self.filled]
    }

    /// The line after the batch's last line.
    fn next_line(&self) -> u32 {
        self.first.saturating_add(self.ends.len() as u32)
    }

    /// The batch's lines, parsed on all cores.
    fn parse(&self) -> Parsed<'_> {
        self.ends
            .par_iter()
            .enumerate()
            .with_min_len(256)
            .map(|(k, &end)| {
                let start = if k == 0 { 0 } else { self.ends[k - 1] };
                parse_line(self.first.saturating_add(k as u32), &self.buf[start..end])
            })
            .collect()
    }
}

/// Calls `each` with `state`, every event of `reader`, its 1-based line and its value's hash
/// ([`value_ref_hash`]), in file order; blank lines are skipped, a byte-order mark before the
/// first line is ignored. The text is read in batches of about `batch_bytes` (whole lines, at
/// least one; a partial last line waits for the next batch) straight into one of two buffers;
/// while `each` takes one batch's events, in order, the next batch is parsed on the other cores
/// (rayon), so reading and taking overlap. `first_batch` is called once, before any event, with
/// the first batch's size in bytes and its number of lines (a reader sizes its tables from them).
///
/// # Errors
/// [`ReadError`] naming the line: bytes that are not UTF-8, a line that is not an event (the
/// message gives serde_json's column), or the reader's I/O error; the first in file order.
fn each_event<R: Read, S: Send>(
    mut reader: R,
    batch_bytes: usize,
    state: &mut S,
    first_batch: impl FnOnce(&mut S, usize, usize),
    mut each: impl FnMut(&mut S, u32, Line<'_>, u64) + Send,
) -> Result<(), ReadError> {
    let batch_bytes = batch_bytes.max(1);
    let mut take = |state: &mut S, parsed: Parsed<'_>, first: u32| -> Result<(), ReadError> {
        for (k, event) in parsed.into_iter().enumerate() {
            if let Some((event, hash)) = event? {
                each(state, first.saturating_add(k as u32), event, hash);
            }
        }
        Ok(())
    };
    // Two batches in turn: `a` is parsed and waits to be taken while `b` is filled and parsed.
    let (mut a, mut b) = (Batch::new(batch_bytes), Batch::new(batch_bytes));
    let mut stop_a = a.fill(&mut reader, &[], 1, batch_bytes);
    first_batch(state, a.parsed_bytes(), a.ends.len());
    let mut parsed_a = a.parse();
    loop {
        if let Some(stop) = stop_a {
            take(state, parsed_a, a.first)?;
            return stop;
        }
        let stop_b = b.fill(&mut reader, a.rest(), a.next_line(), batch_bytes);
        let (taken, parsed_b) = rayon::join(|| take(state, parsed_a, a.first), || b.parse());
        taken?;
        if let Some(stop) = stop_b {
            take(state, parsed_b, b.first)?;
            return stop;
        }
        stop_a = a.fill(&mut reader, b.rest(), b.next_line(), batch_bytes);
        let (taken, parsed) = rayon::join(|| take(state, parsed_b, b.first), || a.parse());
        taken?;
        parsed_a = parsed;
    }
}

/// Reads a `history.jsonl` from `reader` into a [`CompactHistory`], a batch of lines at a time.
/// `size`: the text's length in bytes, if known (the file's size); the history's tables are
/// then sized once from it and the first batch's bytes per line, instead of growing (each
/// growth copies them into fresh memory).
///
/// # Errors
/// [`ReadError`] naming the line (and, for malformed JSON, the column) and what was expected.
pub fn read_compact<R: Read>(reader: R, size: Option<u64>) -> Result<CompactHistory, ReadError> {
    let mut history = CompactHistory::default();
    each_event(
        reader,
        BATCH_BYTES,
        &mut history,
        |history, bytes, lines| {
            if let Some(size) = size
                && bytes > 0
            {
                history.reserve(expected_lines(size, bytes, lines));
            }
        },
        |history, line, e, hash| {
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
        },
    )?;
    history.finish();
    Ok(history)
}

/// Lines expected in `size` bytes of text whose first `bytes` hold `lines` lines, with 1/32
/// spare (a batch's lines vary a little in length), at most 2^32 - 1.
fn expected_lines(size: u64, bytes: usize, lines: usize) -> usize {
    let estimate = (size as u128 * lines as u128 / bytes as u128) * 33 / 32 + 1;
    estimate.min(u32::MAX as u128) as usize
}

/// Reads a `history.jsonl` from `text` into [`HistoryEvent`]s, keeping the file's own `index`.
pub(super) fn read_events(text: &str) -> Result<ImportedHistory, ReadError> {
    let mut history = ImportedHistory::default();
    each_event(
        text.as_bytes(),
        BATCH_BYTES,
        &mut history,
        |_, _, _| {},
        |history, line, e, _| {
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
        },
    )?;
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
        let e = read_compact(text.as_bytes(), None).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.found
                .starts_with("an invalid event at column 36 (expected `,` or `}`)"),
            "{e}"
        );
        assert_eq!(e.expected, EXPECTED_EVENT);
        let e = read_compact(
            &b"{\"process\":0,\"type\":\"invoke\",\"f\":\"get\"}\n\xff\n"[..],
            None,
        )
        .unwrap_err();
        assert_eq!((e.line, e.found.as_str()), (2, "bytes that are not UTF-8"));
        let e = read_compact(
            &b"{\"process\":0,\"type\":\"done\",\"f\":\"get\"}"[..],
            None,
        )
        .unwrap_err();
        assert!(e.found.contains("unknown variant `done`"), "{e}");
    }

    #[test]
    fn streaming_reads_what_the_event_reader_reads() {
        let text = "\u{feff}{\"index\":4,\"time_ns\":9,\"process\":2,\"node\":\"c1\",\"type\":\"invoke\",\
                    \"f\":\"cas\",\"key\":\"k\\\"1\",\"value\":[\"a\",\"b\"]}\r\n   \n\
                    {\"process\":2,\"type\":\"fail\",\"f\":\"cas\",\"key\":\"k\\\"1\",\"error\":\"x\"}";
        let events = read_events(text).unwrap();
        let compact = read_compact(text.as_bytes(), None).unwrap();
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
        let whole = read_compact(text.as_bytes(), None).unwrap();
        let events = read_events(&text).unwrap();
        assert_eq!(whole.lines, events.lines);
        for batch_bytes in [1, 64, 1000] {
            let mut lines = Vec::new();
            let mut values = Vec::new();
            each_event(
                text.as_bytes(),
                batch_bytes,
                &mut (),
                |_, _, _| {},
                |_, line, e, hash| {
                    assert_eq!(hash, value_ref_hash(&e.value));
                    lines.push(line);
                    values.push(e.value.into_owned());
                },
            )
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
            let e = each_event(
                bad.as_bytes(),
                batch_bytes,
                &mut (),
                |_, _, _| {},
                |_, _, _, _| seen += 1,
            )
            .unwrap_err();
            assert_eq!(e.line, 151, "batches of {batch_bytes} bytes: {e}");
            assert!(e.found.contains("missing field `type`"), "{e}");
            // Every event before it was taken, none after.
            assert_eq!(seen, whole.lines.iter().filter(|&&l| l < 151).count());
        }
    }

    use crate::history::EventRef;

    /// A reader that gives at most `chunk` bytes a read, is interrupted every third read, and
    /// fails once `fail_at` bytes have been read (if set).
    struct Trickle<'a> {
        text: &'a [u8],
        chunk: usize,
        reads: usize,
        fail_at: Option<usize>,
        at: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.reads += 1;
            if self.reads.is_multiple_of(3) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            if self.fail_at.is_some_and(|f| self.at >= f) {
                return Err(std::io::Error::other("disk on fire"));
            }
            let end = (self.at + self.chunk.min(buf.len())).min(self.text.len());
            let end = self.fail_at.map_or(end, |f| end.min(f.max(self.at)));
            let n = end - self.at;
            buf[..n].copy_from_slice(&self.text[self.at..end]);
            self.at = end;
            Ok(n)
        }
    }

    #[test]
    fn short_reads_interruptions_and_size_hints_read_the_same_history() {
        let mut text = String::new();
        for i in 0..200u32 {
            text.push_str(&format!(
                "{{\"process\":{},\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k{}\",\"value\":\"v{i}\"}}\n",
                i % 7,
                i % 3
            ));
        }
        // The last line has no line ending.
        text.push_str("{\"process\":1,\"type\":\"ok\",\"f\":\"put\",\"value\":\"last\"}");
        let whole = read_compact(text.as_bytes(), None).unwrap();
        assert_eq!(whole.lines, (1..=201).collect::<Vec<u32>>());
        for size in [None, Some(text.len() as u64), Some(10), Some(1 << 40)] {
            assert_eq!(
                read_compact(text.as_bytes(), size).unwrap(),
                whole,
                "{size:?}"
            );
        }
        for chunk in [1, 5, 64, 4096] {
            for batch_bytes in [1, 100, 1 << 20] {
                let mut trickle = Trickle {
                    text: text.as_bytes(),
                    chunk,
                    reads: 0,
                    fail_at: None,
                    at: 0,
                };
                let mut lines = Vec::new();
                each_event(
                    &mut trickle,
                    batch_bytes,
                    &mut (),
                    |_, _, _| {},
                    |_, line, _, _| lines.push(line),
                )
                .unwrap();
                assert_eq!(
                    lines, whole.lines,
                    "chunks of {chunk}, batches of {batch_bytes}"
                );
            }
        }
        // A read error names the line being read; every whole line before it was taken.
        let line_at = |n: usize| text[..n].matches('\n').count() as u32 + 1;
        for fail_at in [0, 1, 150, 5000] {
            for batch_bytes in [1, 100, 1 << 20] {
                let mut trickle = Trickle {
                    text: text.as_bytes(),
                    chunk: 37,
                    reads: 0,
                    fail_at: Some(fail_at),
                    at: 0,
                };
                let mut seen = 0;
                let e = each_event(
                    &mut trickle,
                    batch_bytes,
                    &mut (),
                    |_, _, _| {},
                    |_, _, _, _| seen += 1,
                )
                .unwrap_err();
                assert_eq!(
                    e.line,
                    line_at(fail_at),
                    "{fail_at}, batches of {batch_bytes}"
                );
                assert!(e.found.contains("disk on fire"), "{e}");
                assert_eq!(seen, e.line - 1);
            }
        }
        assert_eq!(expected_lines(1000, 100, 10), 104);
        assert_eq!(expected_lines(1 << 40, 1, 1), u32::MAX as usize);
    }
}
