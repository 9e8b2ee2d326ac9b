//! The run trace: canonical JSON lines, and their SHA-256 (the run's `trace_hash`).
//!
//! Every line is one event: `{"t_ns":..,"node":"..","kind":"..", ...kind-specific fields}`, with
//! keys in a fixed order and no whitespace, so the same run always produces the same bytes. The
//! hash is computed over exactly the bytes of `trace.jsonl`, so `sha256sum trace.jsonl` prints
//! the run's `trace_hash`. The kinds and fields are documented in `docs/trace-format.md`.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Default cap on trace bytes kept in memory (hashing continues past it).
pub const DEFAULT_TRACE_LIMIT_BYTES: usize = 1 << 30;

/// Accumulates trace lines and their hash.
pub struct Trace {
    bytes: Vec<u8>,
    hasher: Sha256,
    lines: u64,
    limit_bytes: usize,
    truncated: bool,
    scratch: Vec<u8>,
}

impl Trace {
    /// An empty trace keeping at most `limit_bytes` bytes in memory.
    pub fn new(limit_bytes: usize) -> Trace {
        Trace {
            bytes: Vec::new(),
            hasher: Sha256::new(),
            lines: 0,
            limit_bytes,
            truncated: false,
            scratch: Vec::with_capacity(256),
        }
    }

    /// Starts a line with the three common fields; add fields, then [`Line::end`].
    pub fn line(&mut self, t_ns: u64, node: &str, kind: &str) -> Line<'_> {
        self.scratch.clear();
        self.scratch.extend_from_slice(b"{\"t_ns\":");
        self.scratch
            .extend_from_slice(itoa::Buffer::new().format(t_ns).as_bytes());
        let mut line = Line { trace: self };
        line.str("node", node).str("kind", kind);
        line
    }

    /// Number of lines so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// True if lines were hashed but not kept because the byte limit was reached.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The kept bytes and the hex SHA-256 of all lines.
    pub fn finish(self) -> (Vec<u8>, String) {
        (self.bytes, hex::encode(self.hasher.finalize()))
    }
}

/// One trace line being written.
pub struct Line<'a> {
    trace: &'a mut Trace,
}

impl Line<'_> {
    fn key(&mut self, key: &str) {
        let s = &mut self.trace.scratch;
        s.extend_from_slice(b",\"");
        s.extend_from_slice(key.as_bytes());
        s.extend_from_slice(b"\":");
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        serde_json::to_writer(&mut self.trace.scratch, value).expect("strings serialize");
        self
    }

    /// An unsigned integer field.
    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        self.trace
            .scratch
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// A signed integer field.
    pub fn i64(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        self.trace
            .scratch
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// Any serializable value, as compact JSON.
    pub fn json(&mut self, key: &str, value: &impl Serialize) -> &mut Self {
        self.key(key);
        serde_json::to_writer(&mut self.trace.scratch, value).expect("trace values serialize");
        self
    }

    /// Closes the line, hashes it and keeps it (within the limit).
    pub fn end(&mut self) {
        let trace = &mut *self.trace;
        trace.scratch.extend_from_slice(b"}\n");
        trace.hasher.update(&trace.scratch);
        trace.lines += 1;
        if trace.bytes.len() + trace.scratch.len() <= trace.limit_bytes {
            trace.bytes.extend_from_slice(&trace.scratch);
        } else {
            trace.truncated = true;
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
        let (bytes, hash) = trace.finish();
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
    fn lines_past_the_limit_are_hashed_but_not_kept() {
        let mut small = Trace::new(60);
        let mut big = Trace::new(DEFAULT_TRACE_LIMIT_BYTES);
        for t in 0..3 {
            small.line(t, "n1", "timer").end();
            big.line(t, "n1", "timer").end();
        }
        assert!(small.truncated());
        let (kept, h1) = small.finish();
        let (all, h2) = big.finish();
        assert!(kept.len() < all.len());
        assert_eq!(h1, h2);
    }
}
