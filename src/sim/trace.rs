//! The run trace: canonical JSON lines for people and tools, and the run's fingerprint.
//!
//! Every line is one event: `{"t_ns":..,"node":"..","kind":"..", ...kind-specific fields}`, with
//! keys in a fixed order and no whitespace, so the same run always produces the same bytes. The
//! kinds and fields are documented in `docs/trace-format.md`.
//!
//! Each line is written twice, field by field:
//!
//! - as a canonical binary record: `t_ns` and integer fields as 8 little-endian bytes, node
//!   fields (`node`, `from`, `to`) as the node's 4-byte little-endian index in the topology
//!   (`u32::MAX` for `"world"`), `kind` and other string fields as a 4-byte little-endian
//!   length and the UTF-8 bytes, values of serde types in postcard's encoding, in the line's
//!   field order, closed by the byte `0xc1`. The first record, before any line, lists the
//!   topology's names (their count as 8 bytes, then each name as a string), so indexes stand
//!   for names. Keys are left out: each kind's keys are fixed by the code. The 128-bit XXH3
//!   hash of all records is the run's `trace_hash`. This is cheap (no escaping, no number
//!   formatting, about a third of the bytes of the JSON) and always done, so a run that keeps
//!   nothing (a benchmark, a seed sweep) has the same hash as a run that writes `trace.jsonl`;
//! - as a JSON line, only while lines are kept (up to a byte limit; 0 keeps nothing). Kept lines
//!   go straight into 1 MiB chunks. A trace kept in memory ([`Trace::new`]) holds its chunks,
//!   never copied into one growing buffer; a trace streamed to a file ([`Trace::to_file`])
//!   writes each chunk to the file as it fills and reuses the buffer, so its memory does not grow
//!   with the run.
//!
//! A [`TraceTap`] reads the kept JSON lines while the run goes, on a thread of its own: each
//! chunk, once stored, is copied to it (through a queue of at most [`TAP_QUEUE_CHUNKS`] chunks,
//! so a slow reader makes the run wait rather than memory grow). The thread only reads bytes the
//! simulation has finished with, so nothing it does reaches the run; `faultline run` uses it to
//! build the report's view while the simulation is still going instead of reading the trace back
//! afterwards.
//!
//! Two runs of one faultline version with the same hash wrote the same JSON lines: the record
//! holds every value the line shows, in the same order. The hash is a fingerprint for telling
//! runs apart, not a defence against forgery, so it need not be cryptographic: XXH3-128
//! (Yann Collet's xxHash family, specification in the xxHash repository) has a 2^-64 chance of confusing two runs and costs a fraction
//! of a cryptographic hash on the megabytes of records a long run writes.

use serde::Serialize;

use crate::payload::Payload;
use crate::process::NodeId;

/// The `node` of lines about the world itself (faults, the end of the run).
pub const WORLD: &str = "world";

/// The binary record's index for [`WORLD`].
const WORLD_INDEX: u32 = u32::MAX;

/// Default cap on trace bytes kept in memory (hashing continues past it): the documented limit
/// [`crate::scenario::limits::MAX_TRACE_BYTES`].
pub const DEFAULT_TRACE_LIMIT_BYTES: usize = crate::scenario::limits::MAX_TRACE_BYTES;

/// The `kind` of the line that closes a trace whose byte cap was reached.
pub const TRUNCATED_KIND: &str = "trace-truncated";

/// Bytes per chunk of kept JSON lines.
const CHUNK_BYTES: usize = 1 << 20;

/// Chunks a [`TraceTap`]'s thread may be behind before the run waits for it (memory: this many
/// chunks of about 1 MiB, plus one being read).
pub const TAP_QUEUE_CHUNKS: usize = 2;

/// A reader of a trace's JSON lines as the run writes them: called on a thread of its own with
/// each chunk of whole lines (each ending in `\n`), in order. The chunks' concatenation is
/// exactly the bytes kept ([`TraceBytes::chunks`] or the file), the `trace-truncated` line
/// included, so reading through the tap is the same as reading the trace back when the run is
/// over. It must not panic (a panic is raised again on the run's thread when the trace is
/// finished).
#[derive(Clone)]
pub struct TraceTap(std::sync::Arc<TapFn>);

/// What a [`TraceTap`] calls.
type TapFn = dyn Fn(&[u8]) + Send + Sync;

impl TraceTap {
    /// A tap that calls `read` with each chunk.
    pub fn new(read: impl Fn(&[u8]) + Send + Sync + 'static) -> TraceTap {
        TraceTap(std::sync::Arc::new(read))
    }
}

impl std::fmt::Debug for TraceTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceTap")
    }
}

/// The thread a [`TraceTap`] runs on, and the queues to it and back (emptied chunks come back
/// for reuse, so copying a chunk touches no fresh memory).
struct TapThread {
    chunks: std::sync::mpsc::SyncSender<Vec<u8>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: std::thread::JoinHandle<()>,
}

impl TapThread {
    fn start(tap: TraceTap) -> TapThread {
        let (chunks, inbox) = std::sync::mpsc::sync_channel::<Vec<u8>>(TAP_QUEUE_CHUNKS);
        let (give_back, spare) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("trace-tap".into())
            .spawn(move || {
                for chunk in inbox {
                    (tap.0)(&chunk);
                    // The run may be over and gone: then the buffer is simply freed.
                    let _ = give_back.send(chunk);
                }
            })
            .expect("the trace tap's thread starts");
        TapThread {
            chunks,
            spare,
            thread,
        }
    }

    /// Hands a copy of `bytes` to the thread, waiting if it is [`TAP_QUEUE_CHUNKS`] behind.
    fn send(&self, bytes: &[u8]) {
        let mut chunk = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES + 4096));
        chunk.clear();
        chunk.extend_from_slice(bytes);
        // A send fails only if the thread has stopped, i.e. the tap panicked: `finish` raises
        // that panic.
        let _ = self.chunks.send(chunk);
    }

    /// Waits for the thread to read every chunk; raises a panic of the tap again.
    fn finish(self) {
        drop(self.chunks);
        if let Err(panic) = self.thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Binary records are hashed in batches of about this many bytes (one call per batch rather
/// than per line).
const HASH_BATCH_BYTES: usize = 1 << 16;

/// Bytes reserved for a line read back from a trace file (most lines are shorter).
const LINE_CAPACITY: usize = 256;

/// Closes a binary record.
const END_OF_RECORD: u8 = 0xc1;

/// Accumulates trace lines and their hash.
pub struct Trace {
    /// Binary records not yet hashed.
    binary: Vec<u8>,
    hasher: xxhash_rust::xxh3::Xxh3,
    /// Kept JSON lines.
    json: JsonLines,
    lines: u64,
    /// `t_ns` of the latest line.
    last_t_ns: u64,
    /// Node names by index (the topology's).
    names: Vec<String>,
}

/// Kept JSON lines, in chunks.
struct JsonLines {
    /// Full chunks (in memory; empty when streamed to `file`).
    chunks: Vec<Vec<u8>>,
    /// Where full chunks go instead of `chunks`.
    file: Option<TraceFile>,
    current: Vec<u8>,
    kept_bytes: usize,
    /// Lines in `chunks`.
    kept_lines: u64,
    /// Lines ended in `current`.
    current_lines: u64,
    limit_bytes: usize,
    /// False once the limit is reached (or if it is 0): lines are then only hashed.
    keeping: bool,
    /// Who else reads the stored chunks as they are stored.
    tap: Option<TapThread>,
}

/// The file a streamed trace is written to.
struct TraceFile {
    path: std::path::PathBuf,
    /// `None` if it could not be created (`error` says why).
    file: Option<std::fs::File>,
    /// The first write error; lines are no longer kept after it.
    error: Option<String>,
}

impl JsonLines {
    /// Opens a JSON line with its `t_ns`.
    fn start(&mut self, t_ns: u64) {
        self.current.extend_from_slice(b"{\"t_ns\":");
        self.current
            .extend_from_slice(itoa::Buffer::new().format(t_ns).as_bytes());
    }

    /// Moves the current chunk into `chunks` or the file. If that would pass the limit, keeps
    /// only the whole lines that fit and stops keeping.
    fn flush(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let mut lines = std::mem::take(&mut self.current_lines);
        let mut len = self.current.len();
        if self.kept_bytes + len > self.limit_bytes {
            let room = self.limit_bytes - self.kept_bytes;
            len = self.current[..room]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            lines = self.current[..len].iter().filter(|&&b| b == b'\n').count() as u64;
            self.keeping = false;
        }
        if len > 0 && self.store(len) {
            self.kept_bytes += len;
            self.kept_lines += lines;
        }
        self.current.clear();
        if !self.keeping {
            self.current = Vec::new();
        }
    }

    /// Stores the first `len` bytes of the current chunk; false (and no more keeping) if the
    /// file refused them.
    fn store(&mut self, len: usize) -> bool {
        if self.tap.is_none() {
            return self.store_only(len);
        }
        // The bytes stored are `current[..len]` (a chunk moved into `chunks` is the whole of
        // `current`): the tap gets them once the store has succeeded.
        let moved = self.file.is_none() && len == self.current.len();
        let stored = self.store_only(len);
        if let (true, Some(tap)) = (stored, &self.tap) {
            match self.chunks.last() {
                Some(chunk) if moved => tap.send(chunk),
                _ => tap.send(&self.current[..len]),
            }
        }
        stored
    }

    /// [`JsonLines::store`] without the tap.
    fn store_only(&mut self, len: usize) -> bool {
        match &mut self.file {
            Some(TraceFile {
                file: Some(file),
                path,
                error,
            }) => {
                if let Err(e) = std::io::Write::write_all(file, &self.current[..len]) {
                    *error = Some(format!("cannot write {}: {e}", path.display()));
                    self.keeping = false;
                    return false;
                }
            }
            Some(_) => return false,
            None if len == self.current.len() => {
                let chunk =
                    std::mem::replace(&mut self.current, Vec::with_capacity(CHUNK_BYTES + 4096));
                self.chunks.push(chunk);
            }
            None => self.chunks.push(self.current[..len].to_vec()),
        }
        true
    }
}

impl Trace {
    /// An empty trace of a run whose nodes are `names` (by index, as in the topology), keeping
    /// at most `limit_bytes` bytes of JSON lines in memory (0: keep none, only hash). Names
    /// must need no JSON escaping (see [`Line::name`]).
    pub fn new(limit_bytes: usize, names: Vec<String>) -> Trace {
        let mut binary = Vec::with_capacity(HASH_BATCH_BYTES + 4096);
        put_u64(&mut binary, names.len() as u64);
        for name in &names {
            put_str(&mut binary, name);
        }
        binary.push(END_OF_RECORD);
        Trace {
            names,
            binary,
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            json: JsonLines {
                chunks: Vec::new(),
                file: None,
                current: if limit_bytes > 0 {
                    Vec::with_capacity(CHUNK_BYTES + 4096)
                } else {
                    Vec::new()
                },
                kept_bytes: 0,
                kept_lines: 0,
                current_lines: 0,
                limit_bytes,
                keeping: limit_bytes > 0,
                tap: None,
            },
            lines: 0,
            last_t_ns: 0,
        }
    }

    /// An empty trace like [`Trace::new`] whose JSON lines are streamed to the file `path`
    /// (created or truncated) as they are written, at most `limit_bytes` bytes of them
    /// (`usize::MAX`: no limit): memory stays one 1 MiB chunk however long the run. If the file
    /// cannot be created or a write fails, lines stop there (the hash goes on) and
    /// [`TraceBytes::write_error`] says why.
    pub fn to_file(path: &std::path::Path, limit_bytes: usize, names: Vec<String>) -> Trace {
        let (file, error) = match std::fs::File::create(path) {
            Ok(file) => (Some(file), None),
            Err(e) => (None, Some(format!("cannot create {}: {e}", path.display()))),
        };
        let mut trace = Trace::new(if file.is_some() { limit_bytes } else { 0 }, names);
        trace.json.file = Some(TraceFile {
            path: path.to_path_buf(),
            file,
            error,
        });
        trace
    }

    /// Lets `tap` read the kept lines as they are stored, on a thread of its own (see
    /// [`TraceTap`]); [`Trace::finish`] waits for it to read the last one. A trace that keeps no
    /// lines never calls it.
    pub fn tap(&mut self, tap: TraceTap) {
        if self.json.keeping {
            self.json.tap = Some(TapThread::start(tap));
        }
    }

    /// Starts a line with the three common fields; add fields, then [`Line::end`]. `node` is
    /// the node the event happened on (`None`: the world). `kind` MUST be an identifier that
    /// needs no JSON escaping (the kinds of docs/trace-format.md).
    #[inline(always)]
    pub fn line(&mut self, t_ns: u64, node: Option<NodeId>, kind: &str) -> Line<'_> {
        self.last_t_ns = t_ns;
        let keeping = self.json.keeping;
        if keeping {
            self.json.start(t_ns);
        }
        let mut line = Line {
            trace: self,
            keeping,
        };
        line.put(&t_ns.to_le_bytes());
        line.node_or_world("node", node).name("kind", kind);
        line
    }

    /// Hashes the batch of records and empties it.
    #[cold]
    fn hash_batch(&mut self) {
        self.hasher.update(&self.binary);
        self.binary.clear();
    }

    /// Number of lines so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The kept lines, the hex XXH3-128 hash of every line's binary record, and whether lines were
    /// hashed but not kept (the byte limit was reached, or it was 0).
    ///
    /// If the limit (not 0) was reached, the kept lines end with one more line, not hashed and
    /// not counted in [`Trace::lines`], that says so:
    /// `{"t_ns":..,"node":"world","kind":"trace-truncated","lines_kept":..,"lines":..,"limit_bytes":..}`
    /// (`t_ns` of the last line of the run; `lines_kept` lines above it out of `lines`).
    pub fn finish(mut self) -> (TraceBytes, String, bool) {
        self.hasher.update(&self.binary);
        let hash = format!("{:032x}", self.hasher.digest128());
        if self.json.keeping {
            self.json.flush();
        }
        let json = &mut self.json;
        let truncated = !json.keeping && self.lines > 0;
        let write_error = json.file.as_mut().and_then(|f| f.error.take());
        if truncated && json.limit_bytes > 0 && write_error.is_none() {
            json.current = format!(
                "{{\"t_ns\":{},\"node\":\"{WORLD}\",\"kind\":\"{TRUNCATED_KIND}\",\"lines_kept\":{},\"lines\":{},\"limit_bytes\":{}}}\n",
                self.last_t_ns, json.kept_lines, self.lines, json.limit_bytes
            )
            .into_bytes();
            json.store(json.current.len());
        }
        if let Some(tap) = json.tap.take() {
            tap.finish();
        }
        let mut bytes = TraceBytes {
            chunks: std::mem::take(&mut json.chunks),
            file: None,
            lines_kept: json.kept_lines,
            write_error,
        };
        if let Some(f) = json.file.take() {
            if let Some(Err(e)) = f.file.as_ref().map(std::fs::File::sync_all) {
                bytes
                    .write_error
                    .get_or_insert(format!("cannot write {}: {e}", f.path.display()));
            }
            bytes.file = f.file.is_some().then_some(f.path);
        }
        (bytes, hash, truncated)
    }
}

/// The JSON lines of a finished trace: in memory, in the chunks they were written in (never
/// copied into one buffer; every chunk ends at the end of a line), or in the file they were
/// streamed to ([`Trace::to_file`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceBytes {
    chunks: Vec<Vec<u8>>,
    /// The file holding the lines, if they were streamed.
    file: Option<std::path::PathBuf>,
    /// Event lines kept (not counting a final `trace-truncated` line).
    lines_kept: u64,
    /// Why the file stopped taking lines, if it did.
    write_error: Option<String>,
}

impl TraceBytes {
    /// The file the lines were streamed to, if any (then [`TraceBytes::chunks`] is empty).
    pub fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// Why the trace file stopped taking lines (a write error, e.g. a full disk), if it did:
    /// the lines before it are in the file, the hash covers every line.
    pub fn write_error(&self) -> Option<&str> {
        self.write_error.as_deref()
    }

    /// The chunks kept in memory, in order; their concatenation is `trace.jsonl` (none if the
    /// lines went to a file).
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(Vec::as_slice)
    }

    /// Event lines kept (not counting a final `trace-truncated` line).
    pub fn lines_kept(&self) -> u64 {
        self.lines_kept
    }

    /// True if no line was kept.
    pub fn is_empty(&self) -> bool {
        self.lines_kept == 0 && self.chunks.iter().all(Vec::is_empty)
    }

    /// Every line (without its newline), in order, read from memory or from the file (one
    /// line buffered at a time).
    ///
    /// Panics if the trace file cannot be read back (it was removed or the disk failed while
    /// the process ran: not a condition of the input).
    pub fn lines(&self) -> Box<dyn Iterator<Item = std::borrow::Cow<'_, str>> + '_> {
        match &self.file {
            None => Box::new(
                self.chunks
                    .iter()
                    .flat_map(|c| lines_of(c).map(std::borrow::Cow::Borrowed)),
            ),
            Some(path) => {
                use std::io::BufRead;
                let file = std::fs::File::open(path).unwrap_or_else(|e| {
                    panic!("cannot read back the trace file {}: {e}", path.display())
                });
                let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
                // As `BufRead::lines`, but each line's buffer is sized for a typical line at
                // once rather than grown from empty (several reallocations per line).
                Box::new(std::iter::from_fn(move || {
                    let mut line = String::with_capacity(LINE_CAPACITY);
                    let read = reader.read_line(&mut line).unwrap_or_else(|e| {
                        panic!("cannot read back the trace file {}: {e}", path.display())
                    });
                    if read == 0 {
                        return None;
                    }
                    if line.ends_with('\n') {
                        line.pop();
                        if line.ends_with('\r') {
                            line.pop();
                        }
                    }
                    Some(std::borrow::Cow::Owned(line))
                }))
            }
        }
    }

    /// Calls `f` with every line (without its newline), in order: [`TraceBytes::lines`]
    /// without a string per line (a line read from the file is lent from one reused buffer).
    ///
    /// Panics as [`TraceBytes::lines`] does, and if the file holds bytes that are not UTF-8.
    pub fn for_each_line(&self, mut f: impl FnMut(&str)) {
        let Some(path) = &self.file else {
            for chunk in &self.chunks {
                for_each_line_of(chunk, &mut f);
            }
            return;
        };
        use std::io::BufRead;
        let fail = |e: &dyn std::fmt::Display| -> ! {
            panic!("cannot read back the trace file {}: {e}", path.display())
        };
        let file = std::fs::File::open(path).unwrap_or_else(|e| fail(&e));
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::with_capacity(4 * LINE_CAPACITY);
        loop {
            line.clear();
            if reader
                .read_until(b'\n', &mut line)
                .unwrap_or_else(|e| fail(&e))
                == 0
            {
                return;
            }
            let mut text = line.as_slice();
            text = text.strip_suffix(b"\n").unwrap_or(text);
            text = text.strip_suffix(b"\r").unwrap_or(text);
            f(std::str::from_utf8(text).unwrap_or_else(|e| fail(&e)));
        }
    }

    /// All bytes in one buffer (a copy; read from the file if the lines went there).
    pub fn to_vec(&self) -> Vec<u8> {
        match &self.file {
            None => self.chunks.concat(),
            Some(path) => std::fs::read(path).unwrap_or_else(|e| {
                panic!("cannot read back the trace file {}: {e}", path.display())
            }),
        }
    }
}

/// The lines (without their newlines) of a chunk of whole JSON lines as a trace keeps them.
///
/// Panics if the chunk is not UTF-8 (a trace's own chunks always are).
fn lines_of(chunk: &[u8]) -> std::str::Lines<'_> {
    std::str::from_utf8(chunk)
        .expect("trace lines are UTF-8 JSON")
        .lines()
}

/// Calls `f` with every line (without its newline) of a chunk of whole JSON lines, as a trace
/// keeps them and a [`TraceTap`] gets them.
///
/// Panics if the chunk is not UTF-8 (a trace's own chunks always are).
pub fn for_each_line_of(chunk: &[u8], f: impl FnMut(&str)) {
    lines_of(chunk).for_each(f);
}

/// One trace line being written: each field goes into the binary record and, while lines are
/// kept, into the JSON line. Its methods are small and inlined into the simulator's hot path;
/// the JSON writing (only while lines are kept) is out of line.
pub struct Line<'a> {
    trace: &'a mut Trace,
    /// Whether the JSON line is kept (read once per line: it only changes when a line ends).
    keeping: bool,
}

impl Line<'_> {
    /// Appends `bytes` to the record.
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.trace.binary.extend_from_slice(bytes);
    }

    /// A string in the record: its 4-byte little-endian length, then its bytes.
    #[inline(always)]
    fn put_str(&mut self, value: &str) {
        self.put(&(value.len() as u32).to_le_bytes());
        self.put(value.as_bytes());
    }

    /// Writes `key` to the JSON line; returns its buffer if lines are kept.
    #[inline]
    fn key(&mut self, key: &str) -> Option<&mut Vec<u8>> {
        if !self.keeping {
            return None;
        }
        let s = &mut self.trace.json.current;
        s.extend_from_slice(b",\"");
        s.extend_from_slice(key.as_bytes());
        s.extend_from_slice(b"\":");
        Some(s)
    }

    /// A string field, escaped as JSON requires.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        if let Some(s) = self.key(key) {
            serde_json::to_writer(s, value).expect("strings serialize");
        }
        self.put_str(value);
        self
    }

    /// A string field that needs no escaping: a validated node name or a fixed identifier
    /// (letters, digits, `-`, `_`, spaces, `.`, `[`, `]`, `(`, `)`).
    #[inline(always)]
    pub fn name(&mut self, key: &str, value: &str) -> &mut Self {
        debug_assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" -_.[]()".contains(&b)),
            "{value:?} needs escaping"
        );
        if self.keeping {
            self.json_quoted(key, value);
        }
        self.put_str(value);
        self
    }

    /// Writes `,"key":"value"` to the JSON line (`value` needs no escaping).
    fn json_quoted(&mut self, key: &str, value: &str) {
        quoted(&mut self.trace.json.current, key, value);
    }

    /// A node field (`from`, `to`): the node's name in the line, its index in the record.
    #[inline(always)]
    pub fn node(&mut self, key: &str, node: NodeId) -> &mut Self {
        self.node_or_world(key, Some(node))
    }

    #[inline(always)]
    fn node_or_world(&mut self, key: &str, node: Option<NodeId>) -> &mut Self {
        if self.keeping {
            self.json_node(key, node);
        }
        let index = node.map_or(WORLD_INDEX, |n| n.0);
        self.put(&index.to_le_bytes());
        self
    }

    /// Writes a node field to the JSON line: its name, or [`WORLD`].
    fn json_node(&mut self, key: &str, node: Option<NodeId>) {
        let trace = &mut *self.trace;
        let name = node.map_or(WORLD, |n| trace.names[n.index()].as_str());
        quoted(&mut trace.json.current, key, name);
    }

    /// An unsigned integer field.
    #[inline(always)]
    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        if self.keeping {
            self.json_int(key, itoa::Buffer::new().format(value));
        }
        self.put(&value.to_le_bytes());
        self
    }

    /// A signed integer field.
    #[inline(always)]
    pub fn i64(&mut self, key: &str, value: i64) -> &mut Self {
        if self.keeping {
            self.json_int(key, itoa::Buffer::new().format(value));
        }
        self.put(&value.to_le_bytes());
        self
    }

    /// Writes `,"key":digits` to the JSON line.
    fn json_int(&mut self, key: &str, digits: &str) {
        if let Some(s) = self.key(key) {
            s.extend_from_slice(digits.as_bytes());
        }
    }

    /// Any serializable value: compact JSON in the line, postcard in the record.
    pub fn json(&mut self, key: &str, value: &impl Serialize) -> &mut Self {
        if let Some(s) = self.key(key) {
            serde_json::to_writer(s, value).expect("trace values serialize");
        }
        crate::payload::append_postcard(value, &mut self.trace.binary);
        self
    }

    /// An erased message, timer or observation, written as [`Line::json`] writes its value (see
    /// [`crate::payload`]: one virtual call per encoding, not per field).
    #[inline]
    pub fn payload(&mut self, key: &str, value: &Payload) -> &mut Self {
        if let Some(s) = self.key(key) {
            value.write_json(s);
        }
        value.write_binary(&mut self.trace.binary);
        self
    }

    /// Like [`Line::payload`], and adds the size in bytes of `value`'s canonical binary record
    /// (the postcard encoding the hash covers, computed anyway) to `bytes`: a value's size
    /// without encoding it a second time.
    #[inline]
    pub fn payload_counting_bytes(
        &mut self,
        key: &str,
        value: &Payload,
        bytes: &mut u64,
    ) -> &mut Self {
        let before = self.trace.binary.len();
        self.payload(key, value);
        *bytes += (self.trace.binary.len() - before) as u64;
        self
    }

    /// Closes the line. Full batches are hashed; a full chunk of JSON lines is kept (within the
    /// limit).
    #[inline(always)]
    pub fn end(&mut self) {
        let trace = &mut *self.trace;
        trace.lines += 1;
        trace.binary.push(END_OF_RECORD);
        if trace.binary.len() >= HASH_BATCH_BYTES {
            trace.hash_batch();
        }
        if self.keeping {
            trace.json.end_line();
        }
    }
}

impl JsonLines {
    /// Closes the current JSON line; keeps the chunk if it is full.
    fn end_line(&mut self) {
        self.current.extend_from_slice(b"}\n");
        self.current_lines += 1;
        if self.current.len() >= CHUNK_BYTES {
            self.flush();
        }
    }
}

/// Appends `,"key":"value"` to a JSON line (`value` needs no escaping).
fn quoted(s: &mut Vec<u8>, key: &str, value: &str) {
    s.extend_from_slice(b",\"");
    s.extend_from_slice(key.as_bytes());
    s.extend_from_slice(b"\":\"");
    s.extend_from_slice(value.as_bytes());
    s.push(b'"');
}

fn put_u64(buf: &mut Vec<u8>, value: u64) {
    buf.extend_from_slice(&value.to_le_bytes());
}

fn put_str(buf: &mut Vec<u8>, value: &str) {
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    buf.extend_from_slice(value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const N1: Option<NodeId> = Some(NodeId(0));
    const N2: Option<NodeId> = Some(NodeId(1));

    fn names() -> Vec<String> {
        vec!["n1".into(), "n2".into()]
    }

    fn sample(trace: &mut Trace) {
        trace
            .line(5, N1, "send")
            .node("to", NodeId(1))
            .str("text", "a\"b")
            .u64("msg_id", 7)
            .i64("delta_ns", -3)
            .end();
        trace
            .line(9, None, "heal")
            .json("sides", &vec![vec!["n1"]])
            .end();
    }

    #[test]
    fn lines_are_canonical_json() {
        let mut trace = Trace::new(DEFAULT_TRACE_LIMIT_BYTES, names());
        sample(&mut trace);
        let (bytes, _, truncated) = trace.finish();
        assert!(!truncated);
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert_eq!(
            text,
            "{\"t_ns\":5,\"node\":\"n1\",\"kind\":\"send\",\"to\":\"n2\",\"text\":\"a\\\"b\",\"msg_id\":7,\"delta_ns\":-3}\n\
             {\"t_ns\":9,\"node\":\"world\",\"kind\":\"heal\",\"sides\":[[\"n1\"]]}\n"
        );
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }

    /// The first record of a trace of [`names`].
    fn names_record() -> Vec<u8> {
        let mut record = Vec::new();
        put_u64(&mut record, 2);
        put_str(&mut record, "n1");
        put_str(&mut record, "n2");
        record.push(END_OF_RECORD);
        record
    }

    #[test]
    fn the_hash_is_xxh3_128_of_the_binary_records() {
        let mut trace = Trace::new(0, names());
        sample(&mut trace);
        let (bytes, hash, truncated) = trace.finish();
        assert!(bytes.is_empty() && truncated);
        let mut expected = names_record();
        put_u64(&mut expected, 5);
        expected.extend(0u32.to_le_bytes());
        put_str(&mut expected, "send");
        expected.extend(1u32.to_le_bytes());
        put_str(&mut expected, "a\"b");
        put_u64(&mut expected, 7);
        expected.extend((-3i64).to_le_bytes());
        expected.push(END_OF_RECORD);
        put_u64(&mut expected, 9);
        expected.extend(u32::MAX.to_le_bytes());
        put_str(&mut expected, "heal");
        expected.extend(postcard::to_stdvec(&vec![vec!["n1"]]).unwrap());
        expected.push(END_OF_RECORD);
        let expected_hash = xxhash_rust::xxh3::xxh3_128(&expected);
        assert_eq!(hash, format!("{expected_hash:032x}"));
        assert_eq!(hash.len(), 32);
    }

    #[test]
    fn a_record_holds_every_field_in_line_order() {
        // Many fixed-size fields, a long string and values of unknown size in between: the
        // record is the fields in order, as `put_*` writes them one by one.
        let long = "x".repeat(200);
        let mut trace = Trace::new(DEFAULT_TRACE_LIMIT_BYTES, names());
        let mut line = trace.line(3, N2, "deliver");
        for i in 0..12 {
            line.u64("n", i);
        }
        line.str("s", &long).i64("d", -1).json("v", &(1u8, "ab"));
        line.node("to", NodeId(0))
            .payload("p", &Payload::new(7u32))
            .end();
        let mut expected = names_record();
        put_u64(&mut expected, 3);
        expected.extend(1u32.to_le_bytes());
        put_str(&mut expected, "deliver");
        for i in 0..12 {
            put_u64(&mut expected, i);
        }
        put_str(&mut expected, &long);
        put_u64(&mut expected, u64::MAX);
        expected.extend(postcard::to_stdvec(&(1u8, "ab")).unwrap());
        expected.extend(0u32.to_le_bytes());
        expected.extend(postcard::to_stdvec(&7u32).unwrap());
        expected.push(END_OF_RECORD);
        assert_eq!(trace.binary, expected);
        let (bytes, hash, _) = trace.finish();
        assert_eq!(
            hash,
            format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&expected))
        );
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["s"].as_str(), Some(long.as_str()));
        assert_eq!(
            (line["d"].as_i64(), line["p"].as_u64()),
            (Some(-1), Some(7))
        );
        assert_eq!(line["to"].as_str(), Some("n1"));
    }

    #[test]
    fn every_field_changes_the_hash() {
        let hash = |f: &dyn Fn(&mut Trace)| {
            let mut trace = Trace::new(0, names());
            f(&mut trace);
            trace.finish().1
        };
        let base = hash(&|t| t.line(1, N1, "timer").u64("timer_id", 2).end());
        let variants = [
            hash(&|t| t.line(2, N1, "timer").u64("timer_id", 2).end()),
            hash(&|t| t.line(1, N2, "timer").u64("timer_id", 2).end()),
            hash(&|t| t.line(1, N1, "tick").u64("timer_id", 2).end()),
            hash(&|t| t.line(1, N1, "timer").u64("timer_id", 3).end()),
            hash(&|t| t.line(1, N1, "timer").str("timer_id", "2").end()),
            hash(&|t| t.line(1, None, "timer").u64("timer_id", 2).end()),
            hash(&|t| t.line(1, N1, "timer").node("timer_id", NodeId(0)).end()),
            hash(&|t| {
                t.line(1, N1, "timer").end();
                t.line(2, N1, "timer").end();
            }),
        ];
        for v in variants {
            assert_ne!(v, base);
        }
    }

    #[test]
    fn the_names_are_part_of_the_hash() {
        let hash = |names: Vec<String>| {
            let mut trace = Trace::new(0, names);
            trace.line(1, N1, "timer").end();
            trace.finish().1
        };
        assert_ne!(hash(names()), hash(vec!["a".into(), "n2".into()]));
        assert_ne!(hash(names()), hash(vec!["n1".into()]));
    }

    #[test]
    fn chunking_and_batching_do_not_change_the_bytes_or_the_hash() {
        let mut kept = Trace::new(DEFAULT_TRACE_LIMIT_BYTES, names());
        let mut hashed = Trace::new(0, names());
        let mut expected = Vec::new();
        for t in 0..40_000u64 {
            for trace in [&mut kept, &mut hashed] {
                trace.line(t, N1, "timer").u64("timer_id", t * 7).end();
            }
            expected.extend_from_slice(
                format!(
                    "{{\"t_ns\":{t},\"node\":\"n1\",\"kind\":\"timer\",\"timer_id\":{}}}\n",
                    t * 7
                )
                .as_bytes(),
            );
        }
        assert!(expected.len() > 2 * CHUNK_BYTES, "spans several chunks");
        let (bytes, hash, truncated) = kept.finish();
        assert!(!truncated);
        assert!(bytes.chunks().count() > 2);
        assert_eq!(bytes.lines().count(), 40_000);
        assert_eq!(bytes.to_vec(), expected);
        let (nothing, hash_only, truncated) = hashed.finish();
        assert!(nothing.is_empty() && truncated);
        assert_eq!(hash, hash_only, "keeping lines does not change the hash");
    }

    #[test]
    fn a_trace_streamed_to_a_file_holds_the_same_bytes_and_hash_as_one_kept_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        let mut kept = Trace::new(DEFAULT_TRACE_LIMIT_BYTES, names());
        let mut streamed = Trace::to_file(&path, usize::MAX, names());
        for t in 0..40_000u64 {
            for trace in [&mut kept, &mut streamed] {
                trace.line(t, N1, "timer").u64("timer_id", t * 7).end();
            }
        }
        assert!(
            streamed.json.chunks.is_empty(),
            "full chunks go to the file, not to memory"
        );
        let (memory, h1, t1) = kept.finish();
        let (file, h2, t2) = streamed.finish();
        assert_eq!((h1, t1), (h2, t2));
        assert_eq!(file.file(), Some(path.as_path()));
        assert_eq!(file.chunks().count(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), memory.to_vec());
        assert_eq!(file.lines().count(), 40_000);
        // Lines read back one by one, lent or owned, from the file or from memory, agree.
        let mut lent = Vec::new();
        file.for_each_line(|l| lent.push(l.to_string()));
        let owned: Vec<String> = file.lines().map(|l| l.into_owned()).collect();
        let mut from_memory = Vec::new();
        memory.for_each_line(|l| from_memory.push(l.to_string()));
        assert_eq!(lent.len(), 40_000);
        assert_eq!(lent, owned);
        assert_eq!(lent, from_memory);
        assert_eq!(
            lent[7],
            r#"{"t_ns":7,"node":"n1","kind":"timer","timer_id":49}"#
        );
        assert_eq!(file.lines_kept(), memory.lines_kept());
        assert!(file.write_error().is_none());
        // A capped file ends with the marker line, as the memory copy does.
        let mut small = Trace::to_file(&path, 100, names());
        for t in 0..3 {
            small.line(t, N1, "timer").end();
        }
        let (capped, _, truncated) = small.finish();
        assert!(truncated);
        let text = String::from_utf8(capped.to_vec()).unwrap();
        assert!(
            text.ends_with("\"lines_kept\":2,\"lines\":3,\"limit_bytes\":100}\n"),
            "{text}"
        );
        // A file that cannot be created keeps nothing and says why.
        let (none, _, _) =
            Trace::to_file(&dir.path().join("no/such/dir/t.jsonl"), usize::MAX, names()).finish();
        assert!(none.is_empty());
        assert!(none.write_error().unwrap().contains("cannot create"));
    }

    /// A tap that collects what it reads, in order.
    fn collecting_tap() -> (TraceTap, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        let read = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = std::sync::Arc::clone(&read);
        let tap = TraceTap::new(move |chunk| {
            assert!(chunk.ends_with(b"\n"), "a chunk holds whole lines");
            into.lock().unwrap().extend_from_slice(chunk);
        });
        (tap, read)
    }

    #[test]
    fn a_tap_reads_exactly_the_kept_bytes_in_memory_in_a_file_and_under_a_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        // Several chunks, so the tap's queue fills and its buffers are reused.
        let write = |trace: &mut Trace| {
            for t in 0..(8 * CHUNK_BYTES as u64 / 50) {
                trace.line(t, N1, "timer").u64("timer_id", t * 7).end();
            }
        };
        let runs: [(&str, Trace); 3] = [
            ("memory", Trace::new(DEFAULT_TRACE_LIMIT_BYTES, names())),
            ("file", Trace::to_file(&path, usize::MAX, names())),
            ("capped", Trace::new(3 * CHUNK_BYTES + 77, names())),
        ];
        for (what, mut trace) in runs {
            let (tap, read) = collecting_tap();
            trace.tap(tap);
            write(&mut trace);
            let (bytes, _, truncated) = trace.finish();
            assert_eq!(truncated, what == "capped", "{what}");
            let kept = bytes.to_vec();
            assert!(kept.len() > 2 * CHUNK_BYTES, "{what}: several chunks");
            let read = read.lock().unwrap();
            assert!(*read == kept, "{what}: the tap read the kept bytes");
            if what == "capped" {
                assert!(String::from_utf8_lossy(&read).contains(TRUNCATED_KIND));
            }
        }
        // A trace that keeps nothing never calls its tap.
        let mut nothing = Trace::new(0, names());
        let (tap, read) = collecting_tap();
        nothing.tap(tap);
        write(&mut nothing);
        nothing.finish();
        assert!(read.lock().unwrap().is_empty());
    }

    #[test]
    #[should_panic(expected = "the tap failed")]
    fn a_tap_that_panics_fails_the_trace_when_it_is_finished() {
        let mut trace = Trace::new(DEFAULT_TRACE_LIMIT_BYTES, names());
        trace.tap(TraceTap::new(|_| panic!("the tap failed")));
        trace.line(1, N1, "timer").end();
        trace.finish();
    }

    #[test]
    fn lines_past_the_limit_are_hashed_not_kept_and_a_final_line_marks_the_cut() {
        let mut small = Trace::new(100, names());
        let mut big = Trace::new(DEFAULT_TRACE_LIMIT_BYTES, names());
        for t in 0..3 {
            small.line(t, N1, "timer").end();
            big.line(t, N1, "timer").end();
        }
        let (kept, h1, truncated) = small.finish();
        let (all, h2, _) = big.finish();
        assert_eq!((kept.lines_kept(), all.lines_kept()), (2, 3));
        let kept_lines: Vec<String> = kept.lines().map(|l| l.into_owned()).collect();
        let marker = kept_lines.last().unwrap().as_str();
        let events = kept_lines[..kept_lines.len() - 1].join("\n") + "\n";
        let all = all.to_vec();
        assert!(truncated);
        assert!(events.len() < all.len() && events.len() <= 100);
        assert!(all.starts_with(events.as_bytes()), "kept lines are whole");
        assert_eq!(
            marker,
            r#"{"t_ns":2,"node":"world","kind":"trace-truncated","lines_kept":2,"lines":3,"limit_bytes":100}"#
        );
        assert_eq!(h1, h2, "the marker is not hashed");
    }
}

/// One line of `trace.jsonl` read back, borrowing from the line's text, for readers of a
/// finished trace (narration, charts, the HTML report). The line formats are in
/// `docs/trace-format.md`.
///
/// Only the three leading fields are read when a line is parsed. A field asked for is found by
/// walking the line from there (in faultline's form, plain strings and integers are stepped
/// over without a parser, other values with one), and a field becomes a [`serde_json::Value`]
/// only when [`TraceEvent::get`] asks for it (then every field is split from the line once).
/// A reader that wants a few parts of a nested value decodes just those parts with
/// [`TraceEvent::decode`] into a type of its own that borrows from the line. So a reader pays
/// for the lines and fields it looks at, not for every line of the trace.
#[derive(Clone, Debug)]
pub struct TraceEvent<'a> {
    /// Global simulated time, in nanoseconds.
    pub t_ns: u64,
    /// The node's name, or `"world"`.
    pub node: &'a str,
    /// What happened (`send`, `deliver`, `observe`, `partition`, ...).
    pub kind: &'a str,
    /// The whole line.
    line: &'a str,
    /// For a line in faultline's form, the offset just after its `kind` string, where the
    /// other fields start (`None`: they were split when it was parsed).
    rest_at: Option<usize>,
    /// Every other field, in the line's order, split on first use.
    fields: std::cell::OnceCell<Vec<Field<'a>>>,
}

/// One field of a [`TraceEvent`]: its key, its value as JSON text, and the value parsed once
/// [`TraceEvent::get`] asked for it.
#[derive(Clone, Debug)]
struct Field<'a> {
    key: std::borrow::Cow<'a, str>,
    raw: &'a serde_json::value::RawValue,
    value: std::cell::OnceCell<serde_json::Value>,
}

impl<'a> TraceEvent<'a> {
    /// Parses one line (without its newline). Errors: the line is not a JSON object with a
    /// numeric `t_ns` and string `node` and `kind` that need no JSON escaping (the message
    /// names what is missing). A line as faultline writes it (`{"t_ns":..,"node":"..",
    /// "kind":"..",...}`) is read without scanning the rest; any other object is split in full.
    /// A line whose first three fields are in faultline's form but whose rest is not JSON has
    /// no other fields.
    pub fn parse(line: &'a str) -> Result<TraceEvent<'a>, String> {
        if let Some((t_ns, node, kind, rest_at)) = canonical_head(line) {
            return Ok(TraceEvent {
                t_ns,
                node,
                kind,
                line,
                rest_at: Some(rest_at),
                fields: std::cell::OnceCell::new(),
            });
        }
        let all = split_fields(line).map_err(|e| format!("not a JSON object: {e}"))?;
        let find = |key: &str| all.iter().find(|f| f.key == key).map(|f| f.raw.get());
        let t_ns = find("t_ns")
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or("no numeric `t_ns`")?;
        let plain = |key: &str| {
            find(key)
                .and_then(|v| serde_json::from_str::<&'a str>(v).ok())
                .ok_or_else(|| format!("no string `{key}` (without JSON escapes)"))
        };
        let node = plain("node")?;
        let kind = plain("kind")?;
        let rest: Vec<Field> = all
            .into_iter()
            .filter(|f| !matches!(f.key.as_ref(), "t_ns" | "node" | "kind"))
            .collect();
        Ok(TraceEvent {
            t_ns,
            node,
            kind,
            line,
            rest_at: None,
            fields: std::cell::OnceCell::from(rest),
        })
    }

    /// The fields after the leading three (split from the line on first use).
    fn fields(&self) -> &[Field<'a>] {
        self.fields.get_or_init(|| {
            split_fields(self.line)
                .map(|all| {
                    all.into_iter()
                        .filter(|f| !matches!(f.key.as_ref(), "t_ns" | "node" | "kind"))
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    fn field(&self, key: &str) -> Option<&Field<'a>> {
        self.fields().iter().find(|f| f.key == key)
    }

    /// Walks a line in faultline's form to the field `key`: `Err` if the line cannot be
    /// walked (then its fields are split).
    fn walk_to(&self, key: &str) -> Result<Option<Found<'a>>, ()> {
        match self.rest_at {
            Some(at) if self.fields.get().is_none() => walk(self.line, at, key),
            _ => Err(()),
        }
    }

    /// The field `key` as its JSON text (e.g. `{"type":"vote",...}`, `"loss"`, `12`).
    pub fn raw(&self, key: &str) -> Option<&'a str> {
        match self.walk_to(key) {
            Ok(None) => return None,
            Ok(Some(Found::Plain(text))) => return Some(text),
            Ok(Some(Found::At(at))) => {
                if let Some(text) = raw_at(self.line, at) {
                    return Some(text);
                }
            }
            Err(()) => {}
        }
        self.field(key).map(|f| f.raw.get())
    }

    /// The field `key` if it is a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        let field = self.field(key)?;
        match serde_json::from_str::<&str>(field.raw.get()) {
            Ok(s) => Some(s),
            // A string with escapes cannot be borrowed from the line.
            Err(_) => self.get(key)?.as_str(),
        }
    }

    /// The field `key` if it is an unsigned integer.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.raw(key)?.parse().ok()
    }

    /// The field `key` as JSON (parsed on the first call for that key, then kept).
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        let field = self.field(key)?;
        Some(field.value.get_or_init(|| {
            serde_json::from_str(field.raw.get()).expect("a field split from a JSON line is JSON")
        }))
    }

    /// The field `key` decoded as `T`, which may borrow strings from the line (fields of `T`
    /// that the value lacks must be optional; fields of the value that `T` lacks are skipped
    /// without being parsed into anything). `None` if the line has no such field or it is not
    /// a `T`.
    pub fn decode<T: serde::Deserialize<'a>>(&self, key: &str) -> Option<T> {
        serde_json::from_str(self.raw(key)?).ok()
    }

    /// The field `msg`'s `type` (a `send` line's message type, e.g. `append-entries`).
    pub fn msg_type(&self) -> Option<&str> {
        self.tag("msg", "type")
    }

    /// For an `observe` line, the observation's `fact` (its tag, e.g. `role`, `commit`).
    pub fn fact(&self) -> Option<&str> {
        self.tag("obs", "fact")
    }

    /// The string `tag` (`type` or `fact`) of the object in field `key`, read without parsing
    /// the rest of the object.
    fn tag(&self, key: &str, tag: &str) -> Option<&str> {
        match self.walk_to(key) {
            Ok(None) | Ok(Some(Found::Plain(_))) => return None,
            // Faultline writes the tag first: read it without scanning the object.
            Ok(Some(Found::At(at))) => {
                if let Some(value) = leading_tag(&self.line[at..], tag) {
                    return Some(value);
                }
            }
            Err(()) => {}
        }
        let raw = self.raw(key)?;
        if !raw.starts_with('{') {
            return None;
        }
        match serde_json::from_str::<Tagged<'a>>(raw) {
            Ok(t) if tag == "type" => t.type_,
            Ok(t) => t.fact,
            // A tag with escapes (or of another type): as JSON.
            Err(_) => self.get(key)?.get(tag)?.as_str(),
        }
    }
}

/// The tags readers look for in a message or an observation.
#[derive(serde::Deserialize)]
struct Tagged<'a> {
    #[serde(default, borrow, rename = "type")]
    type_: Option<&'a str>,
    #[serde(default, borrow)]
    fact: Option<&'a str>,
}

/// Where [`walk`] found a field.
enum Found<'a> {
    /// A string without escapes or an unsigned integer: its JSON text.
    Plain(&'a str),
    /// Any other value: its offset in the line.
    At(usize),
}

/// Walks the fields of a line in faultline's form (`,"key":value` repeated, then `}` as the
/// line's last byte) from `pos` to the first field named `key`. Plain values are stepped over
/// by their bytes, others by parsing one JSON value. `Err` if the text is not of that form.
fn walk<'a>(line: &'a str, mut pos: usize, key: &str) -> Result<Option<Found<'a>>, ()> {
    let b = line.as_bytes();
    loop {
        match b.get(pos) {
            Some(b'}') if pos + 1 == b.len() => return Ok(None),
            Some(b',') => pos += 1,
            _ => return Err(()),
        }
        let (k, after) = plain_string(line, pos).ok_or(())?;
        if b.get(after) != Some(&b':') {
            return Err(());
        }
        let start = after + 1;
        let plain_end = match b.get(start) {
            Some(b'"') => plain_string(line, start).map(|(_, end)| end),
            Some(b'0') => Some(start + 1),
            Some(c) if c.is_ascii_digit() => {
                Some(start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count())
            }
            _ => None,
        }
        .filter(|&end| matches!(b.get(end), Some(b',' | b'}')));
        match plain_end {
            Some(end) if k == key => return Ok(Some(Found::Plain(&line[start..end]))),
            Some(end) => pos = end,
            None if k == key => return Ok(Some(Found::At(start))),
            None => {
                let text = raw_at(line, start).ok_or(())?;
                pos = start + text.len();
            }
        }
    }
}

/// The string without escapes that starts with the `"` at `pos`, and the offset after its
/// closing `"`.
fn plain_string(line: &str, pos: usize) -> Option<(&str, usize)> {
    let text = line.get(pos..)?.strip_prefix('"')?;
    let n = text.find(['"', '\\'])?;
    (text.as_bytes()[n] == b'"').then(|| (&text[..n], pos + n + 2))
}

/// The JSON text of the one value that starts at `at` (no whitespace before it).
fn raw_at(line: &str, at: usize) -> Option<&str> {
    use serde::Deserialize as _;
    let mut de = serde_json::Deserializer::from_str(line.get(at..)?);
    let raw = <&serde_json::value::RawValue>::deserialize(&mut de).ok()?;
    let text = raw.get();
    // The value's text is the start of the rest (no whitespace was skipped).
    (text.as_ptr() == line[at..].as_ptr()).then_some(text)
}

/// `value` if `object` starts `{"<tag>":"<value>"` with no escapes in `value`.
fn leading_tag<'a>(object: &'a str, tag: &str) -> Option<&'a str> {
    let rest = object
        .strip_prefix("{\"")?
        .strip_prefix(tag)?
        .strip_prefix("\":")?;
    plain_string(rest, 0).map(|(value, _)| value)
}

/// `(t_ns, node, kind, offset after kind)` of a line in the form faultline writes:
/// `{"t_ns":<digits>,"node":"<name>","kind":"<kind>"` then `,` or `}`, ending in `}`, no
/// escapes in the two strings. `None` for anything else (then the line is parsed in full).
fn canonical_head<'a>(line: &'a str) -> Option<(u64, &'a str, &'a str, usize)> {
    let rest = line.strip_prefix("{\"t_ns\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits > 1 && rest.starts_with('0')) || !line.ends_with('}') {
        return None;
    }
    let t_ns = rest[..digits].parse().ok()?;
    let string = |rest: &'a str, key: &str| -> Option<(&'a str, &'a str)> {
        let rest = rest.strip_prefix(key)?;
        let end = rest.find(['"', '\\'])?;
        (rest.as_bytes()[end] == b'"').then(|| (&rest[..end], &rest[end + 1..]))
    };
    let (node, rest) = string(&rest[digits..], ",\"node\":\"")?;
    let (kind, rest) = string(rest, ",\"kind\":\"")?;
    let rest_at = line.len() - rest.len();
    (rest.starts_with(',') || rest.starts_with('}')).then_some((t_ns, node, kind, rest_at))
}

/// Every field of a JSON object, values as raw text; an error if `line` is not one object.
fn split_fields(line: &str) -> Result<Vec<Field<'_>>, serde_json::Error> {
    use serde::Deserializer as _;
    let mut de = serde_json::Deserializer::from_str(line);
    let fields = (&mut de).deserialize_map(FieldsVisitor)?;
    de.end()?;
    Ok(fields)
}

struct FieldsVisitor;

impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
    type Value = Vec<Field<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some((Key(key), raw)) =
            map.next_entry::<Key<'de>, &'de serde_json::value::RawValue>()?
        {
            fields.push(Field {
                key,
                raw,
                value: std::cell::OnceCell::new(),
            });
        }
        Ok(fields)
    }
}

/// An object key, borrowed from the line unless it has escapes.
struct Key<'a>(std::borrow::Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod trace_event_tests {
    use super::TraceEvent;

    #[test]
    fn a_trace_line_reads_back_with_its_fields() {
        let e = TraceEvent::parse(
            r#"{"t_ns":5,"node":"n1","kind":"observe","obs":{"fact":"role","role":"leader","term":3}}"#,
        )
        .unwrap();
        assert_eq!((e.t_ns, e.node, e.kind), (5, "n1", "observe"));
        assert_eq!(e.fact(), Some("role"));
        assert_eq!(e.get("obs").unwrap()["term"], 3);
        assert_eq!(
            e.get("t_ns"),
            None,
            "the leading fields are not among the others"
        );
    }

    #[test]
    fn a_line_without_its_leading_fields_is_an_error() {
        assert!(
            TraceEvent::parse(r#"{"node":"n1","kind":"x"}"#)
                .unwrap_err()
                .contains("t_ns")
        );
        assert!(
            TraceEvent::parse(r#"{"t_ns":1,"kind":"x"}"#)
                .unwrap_err()
                .contains("node")
        );
        assert!(TraceEvent::parse("[1]").is_err());
        assert!(TraceEvent::parse(r#"{"t_ns":1,"node":"n1","kind":"x""#).is_err());
        assert!(TraceEvent::parse(r#"{"t_ns":-1,"node":"n1","kind":"x"}"#).is_err());
    }

    #[test]
    fn fields_in_any_order_and_with_escapes_read_the_same() {
        let canonical = TraceEvent::parse(
            r#"{"t_ns":7,"node":"n2","kind":"drop","from":"n1","msg_id":12,"reason":"lo\"ss"}"#,
        )
        .unwrap();
        let shuffled = TraceEvent::parse(
            r#" { "reason" : "lo\"ss", "kind":"drop", "msg_id":12,"t_ns":7,"from":"n1","node":"n2" } "#,
        )
        .unwrap();
        for e in [&canonical, &shuffled] {
            assert_eq!((e.t_ns, e.node, e.kind), (7, "n2", "drop"));
            assert_eq!(e.u64("msg_id"), Some(12));
            assert_eq!(e.str("reason"), Some("lo\"ss"));
            assert_eq!(e.str("from"), Some("n1"));
            assert_eq!(e.u64("from"), None);
            assert_eq!(e.str("msg_id"), None);
            assert_eq!(e.raw("missing"), None);
        }
    }

    #[test]
    fn decode_reads_only_the_parts_asked_for() {
        #[derive(serde::Deserialize)]
        struct Vote<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            term: u64,
        }
        let e = TraceEvent::parse(
            r#"{"t_ns":1,"node":"n1","kind":"send","to":"n2","msg_id":3,"msg":{"type":"vote","term":4,"granted":true,"log":[{"a":[1,2]}]}}"#,
        )
        .unwrap();
        let v: Vote = e.decode("msg").unwrap();
        assert_eq!((v.kind, v.term), ("vote", 4));
        assert_eq!(e.msg_type(), Some("vote"));
        assert_eq!(e.fact(), None);
        assert!(e.decode::<Vote>("to").is_none(), "a string is not a Vote");
    }

    /// A key, often one the accessors look for.
    fn key() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("msg".to_string()),
            Just("obs".to_string()),
            Just("type".to_string()),
            Just("fact".to_string()),
            "[a-z_]{1,6}",
        ]
    }

    /// A JSON value of a few levels, for the property below.
    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z\"\\\\é ]{0,6}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(key(), inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Every accessor agrees with reading the line as one `serde_json::Value` (the reader
        /// this one replaced), whether the line is in faultline's form or not.
        #[test]
        fn accessors_agree_with_a_full_parse(
            t_ns in proptest::prelude::any::<u64>(),
            node in "[a-z][a-z0-9]{0,3}",
            kind in "[a-z][a-z-]{0,8}",
            extra in proptest::collection::btree_map(key(), json_value(), 0..5),
            canonical in proptest::prelude::any::<bool>(),
        ) {
            let extra: Vec<(String, serde_json::Value)> = extra
                .into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "t_ns" | "node" | "kind"))
                .collect();
            let mut text = if canonical {
                format!(r#"{{"t_ns":{t_ns},"node":"{node}","kind":"{kind}""#)
            } else {
                format!(r#"{{"kind": "{kind}", "node": "{node}""#)
            };
            for (k, v) in &extra {
                text.push_str(&format!(",\"{k}\":{v}"));
            }
            if !canonical {
                text.push_str(&format!(",\"t_ns\":{t_ns}"));
            }
            text.push('}');
            let e = TraceEvent::parse(&text).unwrap();
            proptest::prop_assert_eq!((e.t_ns, e.node, e.kind), (t_ns, node.as_str(), kind.as_str()));
            for (k, v) in &extra {
                proptest::prop_assert_eq!(e.get(k), Some(v));
                proptest::prop_assert_eq!(e.str(k), v.as_str());
                proptest::prop_assert_eq!(e.u64(k), v.as_u64());
                let tag = |t: &str| v.get(t).and_then(|x| x.as_str());
                if k == "msg" {
                    proptest::prop_assert_eq!(e.msg_type(), tag("type"));
                }
                if k == "obs" {
                    proptest::prop_assert_eq!(e.fact(), tag("fact"));
                }
            }
            proptest::prop_assert_eq!(e.get("absent"), None);
        }
    }
}
