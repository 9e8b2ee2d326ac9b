//! The run trace: canonical JSON lines, and their SHA-256 (the run's `trace_hash`).
//!
//! Every line is one event: `{"t_ns":..,"node":"..","kind":"..", ...kind-specific fields}`, with
//! keys in a fixed order and no whitespace, so the same run always produces the same bytes. The
//! hash is computed over exactly the bytes of `trace.jsonl`, so `sha256sum trace.jsonl` prints
//! the run's `trace_hash`. The kinds and fields are documented in `docs/trace-format.md`.
//!
//! Lines are written straight into 1 MiB chunks; a full chunk is hashed in one go and kept (up to
//! the byte limit) without ever being copied into a growing buffer.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Default cap on trace bytes kept in memory (hashing continues past it).
pub const DEFAULT_TRACE_LIMIT_BYTES: usize = 1 << 30;

/// Bytes per chunk.
const CHUNK_BYTES: usize = 1 << 20;

/// Accumulates trace lines and their hash.
pub struct Trace {
    chunks: Vec<Vec<u8>>,
    current: Vec<u8>,
    kept_bytes: usize,
    hasher: Sha256,
    lines: u64,
    limit_bytes: usize,
    truncated: bool,
}

impl Trace {
    /// An empty trace keeping at most `limit_bytes` bytes in memory.
    pub fn new(limit_bytes: usize) -> Trace {
        Trace {
            chunks: Vec::new(),
            current: Vec::with_capacity(CHUNK_BYTES + 4096),
            kept_bytes: 0,
            hasher: Sha256::new(),
            lines: 0,
            limit_bytes,
            truncated: false,
        }
    }

    /// Starts a line with the three common fields; add fields, then [`Line::end`]. `node` and
    /// `kind` MUST be identifiers that need no JSON escaping (validated node names, `"world"`,
    /// fixed kind names).
    pub fn line(&mut self, t_ns: u64, node: &str, kind: &str) -> Line<'_> {
        let start = self.current.len();
        self.current.extend_from_slice(b"{\"t_ns\":");
        self.current
            .extend_from_slice(itoa::Buffer::new().format(t_ns).as_bytes());
        let mut line = Line { trace: self, start };
        line.name("node", node).name("kind", kind);
        line
    }

    /// Number of lines so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    fn flush(&mut self) {
        if self.current.is_empty() {
            return;
        }
        self.hasher.update(&self.current);
        if self.truncated || self.limit_bytes == 0 {
            // Nothing more is kept: reuse the buffer (no fresh memory for hash-only runs).
            self.truncated = true;
            self.current.clear();
            return;
        }
        let chunk = std::mem::replace(&mut self.current, Vec::with_capacity(CHUNK_BYTES + 4096));
        if self.kept_bytes + chunk.len() <= self.limit_bytes {
            self.kept_bytes += chunk.len();
            self.chunks.push(chunk);
        } else {
            // Keep whole lines up to the limit.
            let room = self.limit_bytes - self.kept_bytes;
            let cut = chunk[..room]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            if cut > 0 {
                self.kept_bytes += cut;
                self.chunks.push(chunk[..cut].to_vec());
            }
            self.truncated = true;
        }
    }

    /// The kept lines, the hex SHA-256 of all lines, and whether lines were hashed but not kept
    /// because the byte limit was reached.
    pub fn finish(mut self) -> (TraceBytes, String, bool) {
        self.flush();
        (
            TraceBytes {
                chunks: self.chunks,
            },
            hex::encode(self.hasher.finalize()),
            self.truncated,
        )
    }
}

/// The bytes of a finished trace, in the chunks they were written in (never copied into one
/// buffer). Every chunk ends at the end of a line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceBytes {
    chunks: Vec<Vec<u8>>,
}

impl TraceBytes {
    /// The chunks, in order; their concatenation is `trace.jsonl`.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(Vec::as_slice)
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// True if no line was kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every line (without its newline), in order.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.chunks.iter().flat_map(|c| {
            std::str::from_utf8(c)
                .expect("trace lines are UTF-8 JSON")
                .lines()
        })
    }

    /// All bytes in one buffer (a copy).
    pub fn to_vec(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

/// One trace line being written.
pub struct Line<'a> {
    trace: &'a mut Trace,
    start: usize,
}

impl Line<'_> {
    fn key(&mut self, key: &str) {
        let s = &mut self.trace.current;
        s.extend_from_slice(b",\"");
        s.extend_from_slice(key.as_bytes());
        s.extend_from_slice(b"\":");
    }

    /// A string field, escaped as JSON requires.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        serde_json::to_writer(&mut self.trace.current, value).expect("strings serialize");
        self
    }

    /// A string field that needs no escaping: a validated node name or a fixed identifier
    /// (letters, digits, `-`, `_`, spaces, `.`, `[`, `]`, `(`, `)`).
    pub fn name(&mut self, key: &str, value: &str) -> &mut Self {
        debug_assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" -_.[]()".contains(&b)),
            "{value:?} needs escaping"
        );
        self.key(key);
        let s = &mut self.trace.current;
        s.push(b'"');
        s.extend_from_slice(value.as_bytes());
        s.push(b'"');
        self
    }

    /// An unsigned integer field.
    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        self.trace
            .current
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// A signed integer field.
    pub fn i64(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        self.trace
            .current
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// Any serializable value, as compact JSON.
    pub fn json(&mut self, key: &str, value: &impl Serialize) -> &mut Self {
        self.key(key);
        serde_json::to_writer(&mut self.trace.current, value).expect("trace values serialize");
        self
    }

    /// Closes the line. A full chunk is hashed and kept (within the limit).
    pub fn end(&mut self) {
        let trace = &mut *self.trace;
        trace.current.extend_from_slice(b"}\n");
        trace.lines += 1;
        debug_assert!(trace.current.len() > self.start);
        if trace.current.len() >= CHUNK_BYTES {
            trace.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_canonical_json_and_the_hash_covers_their_bytes() {
        let mut trace = Trace::new(DEFAULT_TRACE_LIMIT_BYTES);
        trace
            .line(5, "n1", "send")
            .str("to", "n\"2")
            .u64("msg_id", 7)
            .end();
        trace
            .line(9, "world", "heal")
            .json("sides", &vec![vec!["n1"]])
            .end();
        let (bytes, hash, _) = trace.finish();
        let bytes = bytes.to_vec();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            "{\"t_ns\":5,\"node\":\"n1\",\"kind\":\"send\",\"to\":\"n\\\"2\",\"msg_id\":7}\n\
             {\"t_ns\":9,\"node\":\"world\",\"kind\":\"heal\",\"sides\":[[\"n1\"]]}\n"
        );
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert_eq!(hash, hex::encode(Sha256::digest(&bytes)));
    }

    #[test]
    fn chunking_does_not_change_the_bytes_or_the_hash() {
        let mut trace = Trace::new(DEFAULT_TRACE_LIMIT_BYTES);
        let mut expected = Vec::new();
        for t in 0..40_000u64 {
            trace.line(t, "n1", "timer").u64("timer_id", t * 7).end();
            expected.extend_from_slice(
                format!(
                    "{{\"t_ns\":{t},\"node\":\"n1\",\"kind\":\"timer\",\"timer_id\":{}}}\n",
                    t * 7
                )
                .as_bytes(),
            );
        }
        assert!(expected.len() > 2 * CHUNK_BYTES, "spans several chunks");
        let (bytes, hash, truncated) = trace.finish();
        assert!(!truncated);
        assert!(bytes.chunks().count() > 2);
        assert_eq!(bytes.lines().count(), 40_000);
        assert_eq!(bytes.to_vec(), expected);
        assert_eq!(hash, hex::encode(Sha256::digest(&expected)));
    }

    #[test]
    fn lines_past_the_limit_are_hashed_but_not_kept_and_kept_lines_are_whole() {
        let mut small = Trace::new(100);
        let mut big = Trace::new(DEFAULT_TRACE_LIMIT_BYTES);
        for t in 0..3 {
            small.line(t, "n1", "timer").end();
            big.line(t, "n1", "timer").end();
        }
        let (kept, h1, truncated) = small.finish();
        let (all, h2, _) = big.finish();
        let (kept, all) = (kept.to_vec(), all.to_vec());
        assert!(truncated);
        assert!(kept.len() < all.len() && kept.len() <= 100);
        assert!(kept.ends_with(b"\n") && all.starts_with(&kept));
        assert_eq!(h1, h2);
    }
}
