//! A run read back for people: [`RunView`], built in one pass over a run's trace (in memory
//! after `faultline run`, or from a report folder's files), which the charts, the HTML report
//! and `faultline explain` all draw from.
//!
//! The view holds what the pictures and the story need, not the trace itself: the report, the
//! cast, the history, the fault intervals, the story and each node's state changes (told by
//! faultline for faults and node lifecycle, by each family's [`Narrator`] for its own facts),
//! and the messages of a time window, up to a cap, joined send-to-delivery. faultline's own
//! summaries of client operations and message traffic are in [`story`].

pub mod story;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use crate::family::{CastMember, Narration, Narrator, Registry};
use crate::history::{CompactHistory, HistoryEvent};
use crate::sim::trace::{TraceEvent, TraceTap, for_each_line_of};

/// Messages a view keeps by default (the sequence diagram's budget); later ones in the window
/// are counted in [`RunView::messages_left_out`].
pub const MAX_VIEW_MESSAGES: usize = 20_000;

/// What to keep of the messages.
#[derive(Clone, Debug)]
pub struct ViewOptions {
    /// Keep messages sent at or after this time (ns).
    pub messages_from_ns: u64,
    /// Keep messages sent before this time (ns; `u64::MAX`: to the end).
    pub messages_until_ns: u64,
    /// Keep at most this many messages (the first ones sent in the window).
    pub max_messages: usize,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions {
            messages_from_ns: 0,
            messages_until_ns: u64::MAX,
            max_messages: MAX_VIEW_MESSAGES,
        }
    }
}

/// A fault as an interval of the run, for shading charts and the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultSpan {
    /// The trace kind that started it: `partition`, `isolate`, `cut`, `degrade`, `crash`,
    /// `pause`, `clock-jump`, `clock-drift`.
    pub kind: String,
    /// Its `fault_id` (network faults) or `None` (node faults).
    pub fault_id: Option<u64>,
    /// Where it came from (`fault[2]`, `nemesis`).
    pub origin: String,
    /// A short label for people (`partition n1 n2 | n3 n4 n5`, `crash n3`).
    pub label: String,
    /// The nodes it acts on (for a partition: every node of every side).
    pub nodes: Vec<String>,
    /// Start (ns).
    pub start_ns: u64,
    /// End (ns); `None`: lasted to the end of the run (clock jumps are instants: start = end).
    pub end_ns: Option<u64>,
}

/// One message, from its send to its delivery or drop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageView {
    /// Its id in the trace.
    pub msg_id: u64,
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// Its `type` (e.g. `append-entries`, `request`), or `?`.
    pub kind: String,
    /// When it was sent (ns).
    pub send_ns: u64,
    /// When it was delivered or dropped (ns); `None`: still in flight at the end.
    pub end_ns: Option<u64>,
    /// The drop reason (`loss`, `partition`, ...), if dropped.
    pub dropped: Option<String>,
    /// For a network duplicate: the original's id.
    pub duplicate_of: Option<u64>,
}

/// A run read back for people. `'h` is the life of the history it borrows: a view of a run
/// that just finished borrows its record's history (a 600-second run's is about 90 MiB; a view
/// used to copy it), a view read from a folder owns what it read.
#[derive(Clone, Debug, Serialize)]
pub struct RunView<'h> {
    /// `report.json` as JSON.
    pub report: serde_json::Value,
    /// Every node and what it runs.
    pub cast: Vec<CastMember>,
    /// The client history.
    pub history: Cow<'h, CompactHistory>,
    /// Simulated time the run covered (ns).
    pub end_ns: u64,
    /// False if no trace was available (`run --no-trace`): then only the report and the
    /// history are known.
    pub trace_available: bool,
    /// True if the trace held only its first lines (its byte cap was reached).
    pub trace_truncated: bool,
    /// Faults, in start order.
    pub faults: Vec<FaultSpan>,
    /// The story and the state changes, each in time order.
    pub narration: Narration,
    /// Messages sent in the chosen window, at most the chosen number, in send order.
    pub messages: Vec<MessageView>,
    /// Messages sent in the window but left out (over the cap).
    pub messages_left_out: u64,
    /// The message window (ns).
    pub messages_from_ns: u64,
    /// The message window's end (ns).
    pub messages_until_ns: u64,
}

/// The view of a run built while the run goes: a [`TraceTap`] feeds its one pass over the trace
/// with the lines as they are written, on a thread of its own, so `faultline run` does not read
/// the trace back afterwards (that pass was about a third of a full run's time). Only the
/// default view ([`ViewOptions::default`]) is built so.
pub struct LiveView {
    /// The pass, shared with the tap's closure (taken out by [`LiveView::finish`]).
    builder: Arc<Mutex<Option<Builder>>>,
    /// The end of the run the view's traffic intervals were sized for: the scenario's
    /// duration. A run that ends elsewhere (a halt) is viewed by reading its trace back.
    expected_end_ns: u64,
}

impl LiveView {
    /// A view of a run of the nodes `cast` that is about to start and is expected to end at
    /// `expected_end_ns` (the scenario's duration), and the tap to give the run
    /// ([`crate::sim::RunOptions::trace_tap`]).
    pub fn start(
        registry: &Registry,
        cast: &[CastMember],
        expected_end_ns: u64,
    ) -> (LiveView, TraceTap) {
        let builder = Builder::new(registry, cast, ViewOptions::default(), expected_end_ns);
        let builder = Arc::new(Mutex::new(Some(builder)));
        let fed = Arc::clone(&builder);
        let tap = TraceTap::new(move |chunk| {
            let mut builder = fed.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(builder) = builder.as_mut() {
                for_each_line_of(chunk, |line| builder.line(line));
            }
        });
        let view = LiveView {
            builder,
            expected_end_ns,
        };
        (view, tap)
    }

    /// The view, as [`RunView::build`] with the default options would build it from the run's
    /// trace, if the run ended when expected and `trace_kept` (it kept trace lines); `None`
    /// otherwise (then build it from the trace). Call it once the run is over (its tap has read
    /// every line; the tap may still exist, it reads nothing more).
    pub fn finish<'h>(
        self,
        report: serde_json::Value,
        cast: Vec<CastMember>,
        history: impl Into<Cow<'h, CompactHistory>>,
        trace_kept: bool,
    ) -> Option<RunView<'h>> {
        let end_ns = report["virtual_time_ns"].as_u64().unwrap_or(0);
        if end_ns != self.expected_end_ns || !trace_kept {
            return None;
        }
        let builder = self
            .builder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(builder.into_view(report, cast, history.into(), true))
    }
}

/// Why a report folder cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file's content is not what faultline writes.
    #[error("{path}:{line}: {message}")]
    Format {
        /// The file.
        path: String,
        /// Line (1-based).
        line: usize,
        /// What was expected.
        message: String,
    },
}

impl<'h> RunView<'h> {
    /// The same view owning its history (a copy if it borrowed one), to outlive the record.
    pub fn into_owned(self) -> RunView<'static> {
        RunView {
            history: Cow::Owned(self.history.into_owned()),
            report: self.report,
            cast: self.cast,
            end_ns: self.end_ns,
            trace_available: self.trace_available,
            trace_truncated: self.trace_truncated,
            faults: self.faults,
            narration: self.narration,
            messages: self.messages,
            messages_left_out: self.messages_left_out,
            messages_from_ns: self.messages_from_ns,
            messages_until_ns: self.messages_until_ns,
        }
    }

    /// Builds the view of a run that just finished: `report` is its `report.json` as JSON,
    /// `history` its history (borrowed or owned), `trace` its trace lines (`None` if none were
    /// kept).
    pub fn build(
        registry: &Registry,
        report: serde_json::Value,
        cast: Vec<CastMember>,
        history: impl Into<Cow<'h, CompactHistory>>,
        trace: Option<impl Iterator<Item = impl AsRef<str>>>,
        options: &ViewOptions,
    ) -> RunView<'h> {
        let feed = trace.map(|lines| {
            move |f: &mut dyn FnMut(&str)| {
                for line in lines {
                    f(line.as_ref());
                }
            }
        });
        RunView::build_with(registry, report, cast, history, feed, options)
    }

    /// [`RunView::build`] with the trace as a function that calls its argument with every
    /// line in order (so lines can be lent from a reused buffer, as
    /// [`crate::sim::trace::TraceBytes::for_each_line`] does, rather than each copied).
    pub fn build_with(
        registry: &Registry,
        report: serde_json::Value,
        cast: Vec<CastMember>,
        history: impl Into<Cow<'h, CompactHistory>>,
        trace: Option<impl FnOnce(&mut dyn FnMut(&str))>,
        options: &ViewOptions,
    ) -> RunView<'h> {
        let end_ns = report["virtual_time_ns"].as_u64().unwrap_or(0);
        let mut builder = Builder::new(registry, &cast, options.clone(), end_ns);
        let trace_available = trace.is_some();
        if let Some(feed) = trace {
            feed(&mut |line| builder.line(line));
        }
        builder.into_view(report, cast, history.into(), trace_available)
    }

    /// Reads a report folder (`report.json`, `history.jsonl`, and `trace.jsonl` if present)
    /// written by `faultline run`. `history.jsonl` and `trace.jsonl` are read as streams, one
    /// line at a time, so memory grows with the view (history, story, the message window), not
    /// with the size of the trace. Errors name the file and line that could not be read.
    pub fn from_dir(
        registry: &Registry,
        dir: &Path,
        options: &ViewOptions,
    ) -> Result<RunView<'static>, ViewError> {
        let report_path = dir.join("report.json");
        let report_text =
            std::fs::read_to_string(&report_path).map_err(|source| ViewError::Io {
                path: report_path.display().to_string(),
                source,
            })?;
        let report_path = report_path.display().to_string();
        let report: serde_json::Value =
            serde_json::from_str(&report_text).map_err(|e| ViewError::Format {
                path: report_path.clone(),
                line: e.line(),
                message: format!("not a report.json: {e}"),
            })?;
        drop(report_text);
        let cast: Vec<CastMember> =
            serde_json::from_value(report["nodes"].clone()).map_err(|e| ViewError::Format {
                path: report_path.clone(),
                line: 1,
                message: format!(
                    "no readable `nodes` list (a report.json of faultline 0.1 or later): {e}"
                ),
            })?;
        let mut history = CompactHistory::default();
        if let Some(lines) = FileLines::open(&dir.join("history.jsonl"))? {
            for line in lines {
                let (number, text) = line?;
                if text.trim().is_empty() {
                    continue;
                }
                let event =
                    serde_json::from_str::<HistoryEvent>(&text).map_err(|e| ViewError::Format {
                        path: dir.join("history.jsonl").display().to_string(),
                        line: number,
                        message: format!("not a history event: {e}"),
                    })?;
                history.push_event(event);
            }
            history.finish();
        }
        let mut trace_error = None;
        let view = {
            let trace = FileLines::open(&dir.join("trace.jsonl"))?.map(|lines| {
                lines.map_while(|line| match line {
                    Ok((_, text)) => Some(text),
                    Err(e) => {
                        trace_error = Some(e);
                        None
                    }
                })
            });
            RunView::build(registry, report, cast, history, trace, options)
        };
        match trace_error {
            Some(e) => Err(e),
            None => Ok(view),
        }
    }

    /// The names of the servers, in topology order.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.cast
            .iter()
            .filter(|m| !m.client)
            .map(|m| m.name.as_str())
    }

    /// The names of the clients, in topology order.
    pub fn clients(&self) -> impl Iterator<Item = &str> {
        self.cast
            .iter()
            .filter(|m| m.client)
            .map(|m| m.name.as_str())
    }

    /// Each node's state at `t_ns`: the latest value of each field at or before it.
    pub fn state_at(&self, t_ns: u64) -> BTreeMap<&str, BTreeMap<&str, &str>> {
        let mut state: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for c in self.narration.states.iter().take_while(|c| c.t_ns <= t_ns) {
            state
                .entry(c.node.as_str())
                .or_default()
                .insert(c.field.as_str(), c.value.as_str());
        }
        state
    }
}

/// The lines of a report folder's file, read one at a time (a buffered reader, no copy of the
/// whole file): `(line number from 1, text without its newline)`, or the error naming the file
/// and line that could not be read (an I/O error, or bytes that are not UTF-8).
struct FileLines {
    path: std::path::PathBuf,
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
    number: usize,
}

impl FileLines {
    /// Opens `path`; `None` if it does not exist.
    fn open(path: &Path) -> Result<Option<FileLines>, ViewError> {
        use std::io::BufRead;
        match std::fs::File::open(path) {
            Ok(file) => Ok(Some(FileLines {
                path: path.to_path_buf(),
                lines: std::io::BufReader::with_capacity(1 << 16, file).lines(),
                number: 0,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ViewError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

impl Iterator for FileLines {
    type Item = Result<(usize, String), ViewError>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = self.lines.next()?;
        self.number += 1;
        Some(
            line.map(|text| (self.number, text))
                .map_err(|e| ViewError::Format {
                    path: self.path.display().to_string(),
                    line: self.number,
                    message: format!("cannot read the line: {e}"),
                }),
        )
    }
}
/// Times (ns) a sentence of evidence cites: every `<number>ms` in it (the form
/// `check::ms` writes), in order.
pub fn cited_times_ns(sentence: &str) -> Vec<u64> {
    let bytes = sentence.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_number = bytes[i].is_ascii_digit() && (i == 0 || !is_word(bytes[i - 1]));
        if !starts_number {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let is_ms = sentence[i..].starts_with("ms")
            && sentence[i + 2..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric());
        if is_ms && let Ok(ms) = sentence[start..i].parse::<f64>() {
            out.push((ms * 1e6).round() as u64);
        }
    }
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

/// The one pass over the trace.
struct Builder {
    narrators: Vec<Box<dyn Narrator>>,
    narration: Narration,
    faults: Vec<FaultSpan>,
    /// Open network faults by id, and open node faults by (kind, node): index into `faults`.
    open_network: BTreeMap<u64, usize>,
    open_node: BTreeMap<(String, String), usize>,
    messages: Vec<MessageView>,
    /// Kept messages by id, for joining their delivery or drop.
    kept: BTreeMap<u64, usize>,
    left_out: u64,
    options: ViewOptions,
    traffic: story::Traffic,
    /// The end of the run `traffic` was sized for.
    end_ns: u64,
}

impl Builder {
    fn new(registry: &Registry, cast: &[CastMember], options: ViewOptions, end_ns: u64) -> Self {
        let narrators = registry
            .families()
            .iter()
            .filter_map(|f| f.narrator.and_then(|make| make(cast)))
            .collect();
        let mut narration = Narration::default();
        for m in cast {
            narration.set(0, &m.name, "status", "up");
        }
        Builder {
            narrators,
            narration,
            faults: Vec::new(),
            open_network: BTreeMap::new(),
            open_node: BTreeMap::new(),
            messages: Vec::new(),
            kept: BTreeMap::new(),
            left_out: 0,
            options,
            traffic: story::Traffic::new(end_ns),
            end_ns,
        }
    }

    /// One line of the trace. Lines faultline wrote always parse; anything else (a
    /// hand-edited file) is skipped rather than fatal for a picture.
    fn line(&mut self, line: &str) {
        if let Ok(event) = TraceEvent::parse(line) {
            self.event(&event);
        }
    }

    /// The view of the lines read, of a run with this report, cast and history.
    fn into_view<'h>(
        self,
        report: serde_json::Value,
        cast: Vec<CastMember>,
        history: Cow<'h, CompactHistory>,
        trace_available: bool,
    ) -> RunView<'h> {
        let end_ns = self.end_ns;
        let (from_ns, until_ns) = (
            self.options.messages_from_ns,
            self.options.messages_until_ns,
        );
        let (faults, narration, messages, messages_left_out) = self.finish(end_ns, &history);
        RunView {
            trace_truncated: report["trace_truncated"].as_bool().unwrap_or(false),
            report,
            cast,
            history,
            end_ns,
            trace_available,
            faults,
            narration,
            messages,
            messages_left_out,
            messages_from_ns: from_ns,
            messages_until_ns: until_ns,
        }
    }

    fn event(&mut self, e: &TraceEvent) {
        match e.kind {
            "send" | "duplicate" => {
                self.traffic.event(e);
                self.send(e)
            }
            "deliver" => self.arrive(e),
            "drop" => {
                self.traffic.event(e);
                self.arrive(e)
            }
            "partition" | "isolate" | "cut" | "degrade" => self.network_fault(e),
            "heal" | "restore" => self.network_heal(e),
            "crash" | "pause" | "restart" | "resume" | "clock-jump" | "clock-drift" => {
                self.node_fault(e)
            }
            _ => {}
        }
        for n in &mut self.narrators {
            n.event(e, &mut self.narration);
        }
    }

    fn send(&mut self, e: &TraceEvent) {
        if e.t_ns < self.options.messages_from_ns || e.t_ns >= self.options.messages_until_ns {
            return;
        }
        if self.messages.len() >= self.options.max_messages {
            self.left_out += 1;
            return;
        }
        let Some(msg_id) = e.u64("msg_id") else {
            return;
        };
        let (to, kind, duplicate_of) = match e.u64("of") {
            // A duplicate line names only the original; it travels the same link.
            Some(of) => match self.kept.get(&of) {
                Some(&i) => (
                    self.messages[i].to.clone(),
                    self.messages[i].kind.clone(),
                    Some(of),
                ),
                None => return,
            },
            None => (
                e.str("to").unwrap_or("?").to_string(),
                e.msg_type().unwrap_or("?").to_string(),
                None,
            ),
        };
        self.kept.insert(msg_id, self.messages.len());
        self.messages.push(MessageView {
            msg_id,
            from: e.node.to_string(),
            to,
            kind,
            send_ns: e.t_ns,
            end_ns: None,
            dropped: None,
            duplicate_of,
        });
    }

    fn arrive(&mut self, e: &TraceEvent) {
        let Some(&i) = e.u64("msg_id").and_then(|id| self.kept.get(&id)) else {
            return;
        };
        let m = &mut self.messages[i];
        m.end_ns = Some(e.t_ns);
        if e.kind == "drop" {
            m.dropped = Some(e.str("reason").unwrap_or("?").to_string());
        }
    }

    fn network_fault(&mut self, e: &TraceEvent) {
        let names = |v: Option<&serde_json::Value>| -> Vec<Vec<String>> {
            v.and_then(|v| v.as_array())
                .map(|outer| {
                    outer
                        .iter()
                        .map(|x| match x {
                            serde_json::Value::Array(xs) => xs
                                .iter()
                                .filter_map(|s| s.as_str().map(str::to_string))
                                .collect(),
                            serde_json::Value::String(s) => vec![s.clone()],
                            _ => Vec::new(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (label, nodes) = match e.kind {
            "partition" | "isolate" if e.get("sides").is_some() => {
                let sides = names(e.get("sides"));
                let label = sides
                    .iter()
                    .map(|s| s.join(" "))
                    .collect::<Vec<_>>()
                    .join(" | ");
                (format!("{} {label}", e.kind), sides.concat())
            }
            "degrade" => {
                let mut nodes = names(e.get("target")).concat();
                nodes.extend(names(e.get("senders")).concat());
                nodes.extend(names(e.get("receivers")).concat());
                nodes.sort();
                nodes.dedup();
                (format!("degrade {}", nodes.join(" ")), nodes)
            }
            _ => {
                let links = names(e.get("cut_links"));
                let mut nodes = links.concat();
                nodes.sort();
                nodes.dedup();
                (format!("{} ({} links cut)", e.kind, links.len()), nodes)
            }
        };
        let fault_id = e.u64("fault_id");
        if nodes.is_empty() {
            // A shape that cut nothing (e.g. drawn while its nodes were down): no event.
            return;
        }
        if let Some(id) = fault_id {
            self.open_network.insert(id, self.faults.len());
        }
        self.narration
            .say(e.t_ns, None, "fault", format!("{label} begins"));
        self.faults.push(FaultSpan {
            kind: e.kind.to_string(),
            fault_id,
            origin: e.str("origin").unwrap_or("").to_string(),
            label,
            nodes,
            start_ns: e.t_ns,
            end_ns: None,
        });
    }

    fn network_heal(&mut self, e: &TraceEvent) {
        let ended: Vec<usize> = match e.u64("fault_id") {
            Some(id) => self.open_network.remove(&id).into_iter().collect(),
            // A heal of everything ends every open network fault.
            None => std::mem::take(&mut self.open_network)
                .into_values()
                .collect(),
        };
        for i in ended {
            self.faults[i].end_ns = Some(e.t_ns);
            let label = self.faults[i].label.clone();
            self.narration
                .say(e.t_ns, None, "fault", format!("{label} ends"));
        }
    }

    fn node_fault(&mut self, e: &TraceEvent) {
        let node = e.node.to_string();
        let (opens, closes, status, sentence) = match e.kind {
            "crash" => (Some("crash"), None, "crashed", format!("{node} crashes")),
            "restart" => (None, Some("crash"), "up", format!("{node} restarts")),
            "pause" => (Some("pause"), None, "paused", format!("{node} is paused")),
            "resume" => (None, Some("pause"), "up", format!("{node} resumes")),
            "clock-jump" => {
                let delta_ms = e
                    .get("delta_ns")
                    .and_then(|v| v.as_i64())
                    .map_or(0.0, |d| d as f64 / 1e6);
                let sentence = format!("{node}'s clock jumps by {delta_ms:+.1} ms");
                self.push_instant(e, &sentence);
                self.narration.say(e.t_ns, Some(&node), "fault", sentence);
                return;
            }
            _ => {
                let drift = e.get("drift").map(|d| d.to_string()).unwrap_or_default();
                let sentence = format!("{node}'s clock drifts at rate {drift}");
                self.push_instant(e, &sentence);
                self.narration.say(e.t_ns, Some(&node), "fault", sentence);
                return;
            }
        };
        if let Some(kind) = opens {
            self.open_node
                .insert((kind.to_string(), node.clone()), self.faults.len());
            self.faults.push(FaultSpan {
                kind: kind.to_string(),
                fault_id: None,
                origin: e.str("origin").unwrap_or("").to_string(),
                label: format!("{kind} {node}"),
                nodes: vec![node.clone()],
                start_ns: e.t_ns,
                end_ns: None,
            });
        }
        if let Some(kind) = closes
            && let Some(i) = self.open_node.remove(&(kind.to_string(), node.clone()))
        {
            self.faults[i].end_ns = Some(e.t_ns);
        }
        self.narration.set(e.t_ns, &node, "status", status);
        self.narration.say(e.t_ns, Some(&node), "node", sentence);
    }

    fn push_instant(&mut self, e: &TraceEvent, label: &str) {
        self.faults.push(FaultSpan {
            kind: e.kind.to_string(),
            fault_id: None,
            origin: e.str("origin").unwrap_or("").to_string(),
            label: label.to_string(),
            nodes: vec![e.node.to_string()],
            start_ns: e.t_ns,
            end_ns: Some(e.t_ns),
        });
    }

    fn finish(
        mut self,
        end_ns: u64,
        history: &CompactHistory,
    ) -> (Vec<FaultSpan>, Narration, Vec<MessageView>, u64) {
        for n in &mut self.narrators {
            n.finish(end_ns, &mut self.narration);
        }
        story::tell_clients(history, end_ns, &mut self.narration);
        self.traffic.tell(end_ns, &mut self.narration);
        // Families tell their facts at the times of their events; a stable sort keeps the
        // order of lines at one instant.
        self.narration.lines.sort_by_key(|l| l.t_ns);
        self.narration.states.sort_by_key(|c| c.t_ns);
        self.narration.samples.sort_by_key(|c| c.t_ns);
        (self.faults, self.narration, self.messages, self.left_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cited_times_read_the_ms_form_checks_write() {
        assert_eq!(
            cited_times_ns("n2 became leader at 3012.5ms and n1 at 7000.0ms (term 4)"),
            vec![3_012_500_000, 7_000_000_000]
        );
        assert_eq!(
            cited_times_ns("[3000.0ms, 7000.0ms) faults [0]"),
            vec![3_000_000_000, 7_000_000_000]
        );
        assert!(cited_times_ns("n12 has 40 msgs, v1.5ms2").is_empty());
    }

    fn view_of(trace: &str) -> RunView<'static> {
        let cast = ["n1", "n2", "n3"]
            .iter()
            .map(|n| CastMember {
                name: n.to_string(),
                client: false,
                part: "raft".into(),
                runs: "raft".into(),
            })
            .collect();
        RunView::build(
            &Registry::new(Vec::new()),
            serde_json::json!({"virtual_time_ns": 10_000}),
            cast,
            CompactHistory::default(),
            Some(trace.lines()),
            &ViewOptions::default(),
        )
    }

    #[test]
    fn faults_become_intervals_and_node_states() {
        let v = view_of(concat!(
            r#"{"t_ns":100,"node":"world","kind":"partition","fault_id":0,"origin":"fault[0]","sides":[["n1"],["n2","n3"]]}"#,
            "\n",
            r#"{"t_ns":200,"node":"n2","kind":"crash","origin":"fault[1]","lost_writes":0}"#,
            "\n",
            r#"{"t_ns":300,"node":"world","kind":"heal","fault_id":0,"origin":"fault[0] (end)"}"#,
            "\n",
            r#"{"t_ns":400,"node":"n2","kind":"restart","origin":"fault[1] (end)"}"#,
        ));
        assert_eq!(v.faults.len(), 2);
        assert_eq!(v.faults[0].label, "partition n1 | n2 n3");
        assert_eq!((v.faults[0].start_ns, v.faults[0].end_ns), (100, Some(300)));
        assert_eq!(
            (v.faults[1].kind.as_str(), v.faults[1].end_ns),
            ("crash", Some(400))
        );
        assert_eq!(v.state_at(250)["n2"]["status"], "crashed");
        assert_eq!(v.state_at(400)["n2"]["status"], "up");
        assert!(
            v.narration
                .lines
                .iter()
                .any(|l| l.text == "partition n1 | n2 n3 ends")
        );
    }

    #[test]
    fn messages_join_their_fate_and_respect_the_cap() {
        let trace = concat!(
            r#"{"t_ns":1,"node":"n1","kind":"send","to":"n2","msg_id":0,"msg":{"type":"vote"}}"#,
            "\n",
            r#"{"t_ns":2,"node":"n1","kind":"duplicate","msg_id":1,"of":0}"#,
            "\n",
            r#"{"t_ns":3,"node":"n2","kind":"deliver","from":"n1","msg_id":0}"#,
            "\n",
            r#"{"t_ns":4,"node":"n2","kind":"drop","from":"n1","msg_id":1,"reason":"loss"}"#,
            "\n",
            r#"{"t_ns":5,"node":"n2","kind":"send","to":"n3","msg_id":2,"msg":{"type":"x"}}"#,
        );
        let v = view_of(trace);
        assert_eq!(v.messages.len(), 3);
        assert_eq!(v.messages[0].end_ns, Some(3));
        assert_eq!(v.messages[1].duplicate_of, Some(0));
        assert_eq!(v.messages[1].dropped.as_deref(), Some("loss"));
        assert_eq!(v.messages[2].end_ns, None);
        let capped = RunView::build(
            &Registry::new(Vec::new()),
            serde_json::json!({}),
            Vec::new(),
            CompactHistory::default(),
            Some(trace.lines()),
            &ViewOptions {
                max_messages: 1,
                ..ViewOptions::default()
            },
        );
        assert_eq!((capped.messages.len(), capped.messages_left_out), (1, 2));
    }
}
