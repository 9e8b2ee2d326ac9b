//! Client histories, in Jepsen's vocabulary.
//!
//! A history is the sequence of operation events seen by clients: an `invoke` when a client
//! starts an operation, then exactly one completion for it from the same process: `ok` (it took
//! effect, with its result), `fail` (it certainly did not take effect) or `info` (outcome unknown,
//! e.g. a timeout: it may or may not have taken effect, at any time after the invoke). A process
//! whose operation ended in `info` never invokes again; the client continues as a new process,
//! as Jepsen does, so every process is sequential.
//!
//! Times are global simulated time in nanoseconds, never a node's (possibly skewed) local clock.
//! `faultline run` writes a run's history as `history.jsonl`, one [`HistoryEvent`] per line, e.g.
//!
//! ```json
//! {"index":0,"time_ns":1000000,"process":0,"node":"c1","type":"invoke","f":"put","key":"k1","value":"v1"}
//! {"index":1,"time_ns":4210000,"process":0,"node":"c1","type":"ok","f":"put","key":"k1","value":"v1"}
//! ```
//!
//! The format is documented for users in `docs/history-format.md`.
//!
//! Histories recorded elsewhere are imported with [`read_history`]: Jepsen's console log
//! ([`jepsen_log`]), EDN histories of Jepsen and Knossos, one EDN map per line (Porcupine's
//! key-value data) ([`edn`]), and faultline's own `history.jsonl`.

pub mod compact;
pub mod edn;
pub mod jepsen_log;
pub mod jsonl;
mod model_kind;

pub use compact::{CompactHistory, EventIter, EventRef, Events, Interner, Subset};
pub use model_kind::ModelKind;

/// The `error` of an `info` completion a client records when it gave up waiting for an answer
/// (its request timeout ran out); any other `info` error came from a server that answered
/// without knowing the outcome (`overloaded`, a forgotten session, ...).
pub const TIMEOUT_ERROR: &str = "timeout";

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kind of a history event (Jepsen's `:type`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The operation started.
    Invoke,
    /// The operation took effect; the event carries its result.
    Ok,
    /// The operation certainly did not take effect.
    Fail,
    /// The outcome is unknown: the operation may take effect at any time after its invoke.
    Info,
}

/// The operation's function (Jepsen's `:f`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    /// Key-value read of one key; the completion's value is the value read (`null`: absent).
    Get,
    /// Key-value write of one key.
    Put,
    /// Key-value append: concatenates the value to the key's current value (absent = empty).
    Append,
    /// Compare-and-set; the value is `[expected, new]`.
    Cas,
    /// Register read (imported histories) or broadcast read of every value a node holds.
    Read,
    /// Register write (imported histories).
    Write,
    /// Broadcast of one value to every node.
    Broadcast,
    /// Mutex acquire.
    Acquire,
    /// Mutex release.
    Release,
    /// A multi-operation transaction (imported multi-register histories).
    Txn,
    /// A service registry lookup; the key is the service, the completion's value the list of
    /// instance ids found.
    Lookup,
    /// A call to a service instance; the key is the service, the value the instance called.
    Call,
    /// Counter (or set) addition; the value is the amount (Jepsen's counter workload).
    Add,
    /// A payment (a debit on a ledger under an idempotency key); the key is the account, the
    /// value the amount.
    Pay,
    /// A saga (a multi-step workflow with compensations); the key is the saga number, the
    /// value its number of steps; `ok` when every step applied, `fail` when compensated.
    Saga,
    /// A request of the load-balancing family's `requests` workload; the key is the routing
    /// key, the completion's value `[backend, attempts]`.
    Request,
}

/// A value in a history: `null`, an integer, a string, or a list of values (JSON shapes).
/// Deserialized by a visitor of its own (not serde's `untagged`, which buffers every value
/// before trying each form: reading a large history.jsonl spent most of its time there).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// No value (`null`): an absent key, or an operation without a value.
    #[default]
    Nil,
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A list, e.g. `[expected, new]` for `cas` or the values of a broadcast read.
    List(Vec<Value>),
    /// A boolean (imported histories; faultline's clients do not write it).
    Bool(bool),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Reads a [`Value`] from whatever form the data has.
struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null, an integer, a string, a boolean or a list of those")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Value, E> {
        i64::try_from(u)
            .map(Value::Int)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(u), &self))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
}

/// A [`Value`] as a reader holds it: strings without escapes borrowed from the text they were
/// read from, so that a value seen before is looked up in an [`Interner`] without allocating
/// (`check-history` of a history.jsonl, where each value is written, then read back: most values
/// are repeats). Deserialized from the same forms as [`Value`], with the same errors.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum ValueRef<'a> {
    /// [`Value::Nil`].
    #[default]
    Nil,
    /// [`Value::Int`].
    Int(i64),
    /// [`Value::Str`].
    Str(std::borrow::Cow<'a, str>),
    /// [`Value::List`].
    List(Vec<ValueRef<'a>>),
    /// [`Value::Bool`].
    Bool(bool),
}

impl ValueRef<'_> {
    /// The owned value.
    pub(crate) fn into_owned(self) -> Value {
        match self {
            ValueRef::Nil => Value::Nil,
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Str(s) => Value::Str(s.into_owned()),
            ValueRef::List(items) => Value::List(items.into_iter().map(Self::into_owned).collect()),
            ValueRef::Bool(b) => Value::Bool(b),
        }
    }

    /// True if it is `value`.
    pub(crate) fn is(&self, value: &Value) -> bool {
        match (self, value) {
            (ValueRef::Nil, Value::Nil) => true,
            (ValueRef::Int(a), Value::Int(b)) => a == b,
            (ValueRef::Str(a), Value::Str(b)) => **a == **b,
            (ValueRef::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.is(b))
            }
            (ValueRef::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ValueRef<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueRefVisitor(std::marker::PhantomData))
    }
}

/// Reads a [`ValueRef`]: [`ValueVisitor`]'s forms, borrowing strings where it can.
struct ValueRefVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for ValueRefVisitor<'a> {
    type Value = ValueRef<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        serde::de::Visitor::expecting(&ValueVisitor, f)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(ValueRef::Nil)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(ValueRef::Nil)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        ValueRef::deserialize(d)
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(ValueRef::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Self::Value, E> {
        Ok(ValueRef::Int(i))
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Self::Value, E> {
        i64::try_from(u)
            .map(ValueRef::Int)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(u), &self))
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(ValueRef::Str(std::borrow::Cow::Borrowed(s)))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(ValueRef::Str(std::borrow::Cow::Owned(s.to_string())))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(ValueRef::Str(std::borrow::Cow::Owned(s)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(ValueRef::List(items))
    }
}

impl fmt::Display for Value {
    /// Jepsen-like text: `nil`, `3`, `"abc"`, `[1 2]`, `true`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// One line of a history. `index`, `time_ns` and `node` are filled in by the world when a client
/// records the event (see [`crate::process::Context::record`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEvent {
    /// Position in the history, from 0.
    #[serde(default)]
    pub index: u64,
    /// Global simulated time of the event, in nanoseconds.
    #[serde(default)]
    pub time_ns: u64,
    /// The logical client process (sequential: at most one operation outstanding).
    pub process: u64,
    /// Name of the client node that recorded the event.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// invoke, ok, fail or info.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The operation.
    pub f: Function,
    /// The key, for keyed models (key-value); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Argument (invoke) or result (ok) of the operation.
    #[serde(default)]
    pub value: Value,
    /// Why an operation failed or is unknown (`fail`/`info`), e.g. `"timeout"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HistoryEvent {
    /// An event with no index, time or node yet (the world fills them in).
    pub fn new(
        process: u64,
        kind: EventType,
        f: Function,
        key: Option<String>,
        value: Value,
    ) -> Self {
        HistoryEvent {
            index: 0,
            time_ns: 0,
            process,
            node: String::new(),
            kind,
            f,
            key,
            value,
            error: None,
        }
    }

    /// The same event with an error description.
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
}

/// Writes a history as JSON lines (one event per line, `\n`-terminated; each event's `index`
/// is its position).
pub fn to_jsonl<E: Events + ?Sized>(events: &E) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 96);
    write_jsonl(events, &mut out).expect("writing to memory cannot fail");
    out
}

/// Writes `events` as [`to_jsonl`] gives them to `out`, one line at a time (for a history too
/// long to hold twice). Errors: `out`'s.
pub fn write_jsonl<E: Events + ?Sized>(
    events: &E,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    for (i, event) in events.events().enumerate() {
        serde_json::to_writer(&mut *out, &event.to_event(i as u64))
            .map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Every function with its name as written in histories.
const FUNCTION_NAMES: [(Function, &str); 16] = [
    (Function::Get, "get"),
    (Function::Put, "put"),
    (Function::Append, "append"),
    (Function::Cas, "cas"),
    (Function::Read, "read"),
    (Function::Write, "write"),
    (Function::Broadcast, "broadcast"),
    (Function::Acquire, "acquire"),
    (Function::Release, "release"),
    (Function::Txn, "txn"),
    (Function::Lookup, "lookup"),
    (Function::Call, "call"),
    (Function::Add, "add"),
    (Function::Pay, "pay"),
    (Function::Saga, "saga"),
    (Function::Request, "request"),
];

/// The function written in histories as `name` (`"read"`, `"cas"`, ...), or `None`.
pub fn function_from_name(name: &str) -> Option<Function> {
    FUNCTION_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(f, _)| *f)
}

impl Function {
    /// The name as written in histories (`"get"`, `"cas"`, ...).
    pub fn name(self) -> &'static str {
        FUNCTION_NAMES
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("?", |(_, n)| *n)
    }
}

impl EventType {
    /// The name as written in histories (`"invoke"`, `"ok"`, `"fail"`, `"info"`).
    pub fn name(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

/// Converts an EDN value of an operation to a [`Value`]. Keywords become strings without the
/// colon (`:x` is `"x"`); vectors and lists become lists.
///
/// # Errors
/// A description of the value if it has no [`Value`] form (floats, maps, sets, characters,
/// symbols, tagged elements).
pub fn value_from_edn(edn: &edn::Edn) -> Result<Value, String> {
    use edn::Edn;
    Ok(match edn {
        Edn::Nil => Value::Nil,
        Edn::Bool(b) => Value::Bool(*b),
        Edn::Int(i) => Value::Int(*i),
        Edn::Str(s) => Value::Str(s.clone()),
        Edn::Keyword(k) => Value::Str(k.clone()),
        Edn::Vector(items) | Edn::List(items) => Value::List(
            items
                .iter()
                .map(value_from_edn)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        other => return Err(format!("the value `{other}` ({})", other.kind())),
    })
}

/// A history read from a file: its events in file order, each with the 1-based line it starts
/// on. Each event's `index` is its position in `events`; `time_ns` is the file's `:time` /
/// `time_ns` if it has one, else 0.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportedHistory {
    /// The events, in file order (the real-time order of a Jepsen history).
    pub events: Vec<HistoryEvent>,
    /// `lines[i]` is the line of `events[i]`.
    pub lines: Vec<u32>,
}

impl ImportedHistory {
    fn push(&mut self, line: u32, mut event: HistoryEvent) {
        event.index = self.events.len() as u64;
        self.events.push(event);
        self.lines.push(line);
    }
}

/// Why a history file could not be read: the 1-based line, what was found there and what was
/// expected. The CLI prefixes the file name (`file:line: ...`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {found}; expected {expected}")]
pub struct ReadError {
    /// 1-based line (0 if the problem is not on one line, e.g. an empty file).
    pub line: u32,
    /// What was found.
    pub found: String,
    /// What was expected instead.
    pub expected: String,
}

impl ReadError {
    /// A new error.
    pub fn new(line: u32, found: impl Into<String>, expected: impl Into<String>) -> Self {
        ReadError {
            line,
            found: found.into(),
            expected: expected.into(),
        }
    }
}

/// A history file format.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// faultline's `history.jsonl`: one JSON [`HistoryEvent`] per line.
    Jsonl,
    /// Jepsen's console log (`INFO  jepsen.util - 3 :invoke :cas [3 0]`), see [`jepsen_log`].
    JepsenLog,
    /// An EDN vector or list of operation maps (Knossos data, Jepsen `history.edn`).
    Edn,
    /// One EDN operation map per line (Porcupine's key-value data).
    EdnLines,
}

impl Format {
    /// Every format, with its command-line name.
    pub const ALL: [(Format, &'static str); 4] = [
        (Format::Jsonl, "jsonl"),
        (Format::JepsenLog, "jepsen-log"),
        (Format::Edn, "edn"),
        (Format::EdnLines, "edn-lines"),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        Format::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map(|(_, n)| *n)
            .unwrap_or("?")
    }

    /// Guesses the format from the content (first significant character) and, failing that,
    /// from the file extension: `{"` or a `.jsonl`/`.json` name is jsonl; a `jepsen.util - `
    /// line is a Jepsen log; `[` or `(` is an EDN vector; `{:` is one EDN map per line.
    pub fn detect(path: Option<&std::path::Path>, bytes: &[u8]) -> Format {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1 << 16)]);
        if text.contains("jepsen.util - ") {
            return Format::JepsenLog;
        }
        let significant: String = text
            .lines()
            .map(str::trim_start)
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .flat_map(|l| l.chars().filter(|c| !c.is_whitespace() && *c != ','))
            .take(2)
            .collect();
        let ext = path
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
            .unwrap_or("");
        match (significant.chars().next(), significant.chars().nth(1)) {
            (Some('['), _) | (Some('('), _) => Format::Edn,
            (Some('{'), Some('"')) => Format::Jsonl,
            (Some('{'), Some(':')) => Format::EdnLines,
            _ => match ext {
                "log" => Format::JepsenLog,
                "edn" => Format::Edn,
                "txt" => Format::EdnLines,
                _ => Format::Jsonl,
            },
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Format::ALL
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(f, _)| *f)
            .ok_or_else(|| {
                format!("unknown format `{s}`; expected jsonl, jepsen-log, edn or edn-lines")
            })
    }
}

/// Reads a history in `format` from `bytes`.
///
/// # Errors
/// [`ReadError`] naming the line and what was expected: bytes that are not UTF-8, malformed
/// syntax, or an event without the fields an operation needs. Never panics, whatever the bytes.
pub fn read_history(bytes: &[u8], format: Format) -> Result<ImportedHistory, ReadError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        ReadError::new(
            u32::try_from(line).unwrap_or(u32::MAX),
            "bytes that are not UTF-8",
            "UTF-8 text",
        )
    })?;
    // A byte-order mark is not part of the history (editors on Windows write one).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Jsonl => jsonl::read_events(text),
        Format::JepsenLog => jepsen_log::read(text),
        Format::Edn | Format::EdnLines => read_edn(text),
    }
}

/// Reads EDN: either one vector/list of operation maps, or a sequence of top-level maps (one per
/// line, Porcupine's key-value data). Maps whose `:process` is `:nemesis` are faults and are
/// skipped.
fn read_edn(text: &str) -> Result<ImportedHistory, ReadError> {
    let mut reader = edn::Reader::new(text);
    let mut history = ImportedHistory::default();
    let edn_err = |e: edn::EdnError| ReadError::new(e.line, e.found, e.expected);
    if let Some(close) = reader.open_sequence() {
        loop {
            if reader.close_sequence(close) {
                break;
            }
            match reader.next_form().map_err(edn_err)? {
                Some((line, form)) => edn_event(&mut history, line, &form)?,
                None => {
                    return Err(ReadError::new(
                        reader.line(),
                        "the end of the input",
                        format!("`{}` closing the history", close as char),
                    ));
                }
            }
        }
        if !reader.at_end() {
            return Err(ReadError::new(
                reader.line(),
                "more text after the history's closing bracket",
                "the end of the file",
            ));
        }
    } else {
        while let Some((line, form)) = reader.next_form().map_err(edn_err)? {
            edn_event(&mut history, line, &form)?;
        }
    }
    Ok(history)
}

fn edn_event(history: &mut ImportedHistory, line: u32, form: &edn::Edn) -> Result<(), ReadError> {
    use edn::Edn;
    let bad = |found: String, expected: &str| ReadError::new(line, found, expected);
    if !matches!(form, Edn::Map(_)) {
        return Err(bad(
            format!("{} `{form}`", form.kind()),
            "an operation map such as {:process 0, :type :invoke, :f :read, :value nil}",
        ));
    }
    let process = match form.get("process") {
        Some(Edn::Int(p)) if *p >= 0 => *p as u64,
        Some(Edn::Keyword(k)) if k == "nemesis" => return Ok(()),
        Some(other) => {
            return Err(bad(
                format!(":process {other}"),
                "a non-negative integer or :nemesis",
            ));
        }
        None => return Err(bad("a map without :process".into(), ":process N")),
    };
    let kind = match form.get("type") {
        Some(Edn::Keyword(k)) => match k.as_str() {
            "invoke" => EventType::Invoke,
            "ok" => EventType::Ok,
            "fail" => EventType::Fail,
            "info" => EventType::Info,
            _ => return Err(bad(format!(":type :{k}"), ":invoke, :ok, :fail or :info")),
        },
        Some(other) => {
            return Err(bad(
                format!(":type {other}"),
                ":invoke, :ok, :fail or :info",
            ));
        }
        None => {
            return Err(bad(
                "a map without :type".into(),
                ":type :invoke|:ok|:fail|:info",
            ));
        }
    };
    let f = match form.get("f") {
        Some(Edn::Keyword(k)) | Some(Edn::Str(k)) | Some(Edn::Symbol(k)) => function_from_name(k),
        _ => None,
    }
    .ok_or_else(|| {
        bad(
            match form.get("f") {
                Some(f) => format!(":f {f}"),
                None => "a map without :f".into(),
            },
            ":f one of :read :write :cas :get :put :append :acquire :release :txn",
        )
    })?;
    let key = match form.get("key") {
        None | Some(Edn::Nil) => None,
        Some(Edn::Str(s)) | Some(Edn::Keyword(s)) => Some(s.clone()),
        Some(Edn::Int(i)) => Some(i.to_string()),
        Some(other) => {
            return Err(bad(
                format!(":key {other}"),
                "a string, keyword or integer key",
            ));
        }
    };
    let value = match form.get("value") {
        None => Value::Nil,
        Some(v) => value_from_edn(v).map_err(|found| {
            bad(
                format!(":value {found}"),
                "nil, an integer, a string, a keyword, a boolean or a vector of those",
            )
        })?,
    };
    let error = form.get("error").map(|e| match e {
        Edn::Keyword(k) => k.clone(),
        Edn::Str(s) => s.clone(),
        other => other.to_string(),
    });
    let mut event = HistoryEvent::new(process, kind, f, key, value);
    event.error = error;
    if let Some(Edn::Int(t)) = form.get("time") {
        event.time_ns = (*t).max(0) as u64;
    }
    history.push(line, event);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lines_round_trip_through_json() {
        let mut events = vec![
            HistoryEvent::new(
                0,
                EventType::Invoke,
                Function::Cas,
                Some("k1".into()),
                Value::List(vec![Value::Str("a".into()), Value::Str("b".into())]),
            ),
            HistoryEvent::new(
                0,
                EventType::Info,
                Function::Cas,
                Some("k1".into()),
                Value::Nil,
            )
            .with_error("timeout"),
        ];
        // As in a run's history, each event's index is its position.
        events[1].index = 1;
        let text = String::from_utf8(to_jsonl(&events)).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"index":0,"time_ns":0,"process":0,"type":"invoke","f":"cas","key":"k1","value":["a","b"]}"#
        );
        let back: Vec<HistoryEvent> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, events);
    }

    #[test]
    fn values_deserialize_from_every_json_shape_and_reject_the_rest() {
        let v = |t: &str| serde_json::from_str::<Value>(t);
        assert_eq!(v("null").unwrap(), Value::Nil);
        assert_eq!(v("-3").unwrap(), Value::Int(-3));
        assert_eq!(v("\"c1-2;\"").unwrap(), Value::Str("c1-2;".into()));
        assert_eq!(v("true").unwrap(), Value::Bool(true));
        assert_eq!(
            v("[\"a\", [1, null]]").unwrap(),
            Value::List(vec![
                Value::Str("a".into()),
                Value::List(vec![Value::Int(1), Value::Nil])
            ])
        );
        for bad in ["1.5", "{}", "18446744073709551615"] {
            let e = v(bad).unwrap_err().to_string();
            assert!(
                e.contains("expected null, an integer, a string"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn reads_edn_vectors_and_skips_the_nemesis() {
        let text = "; a comment\n[{:process 0, :type :invoke, :f :cas, :value [1 2], :time 5}\n \
                    {:process :nemesis, :type :info, :f :start, :value {:a 1}}\n \
                    {:process 0, :type :fail, :f :cas, :value [1 2], :error [:not-found \"x\"]}]";
        let h = read_history(text.as_bytes(), Format::Edn).unwrap();
        assert_eq!(h.lines, vec![2, 4]);
        assert_eq!(h.events[0].time_ns, 5);
        assert_eq!(
            h.events[0].value,
            Value::List(vec![Value::Int(1), Value::Int(2)])
        );
        assert_eq!(h.events[1].kind, EventType::Fail);
        assert_eq!(h.events[1].index, 1);
        assert_eq!(h.events[1].error.as_deref(), Some("[:not-found \"x\"]"));
    }

    #[test]
    fn reads_one_edn_map_per_line() {
        let text = "{:process 9, :type :invoke, :f :append, :key \"0\", :value \"x 9 0 y\"}\n\
                    {:process 9, :type :ok, :f :append, :key \"0\", :value \"x 9 0 y\"}\n";
        let h = read_history(text.as_bytes(), Format::EdnLines).unwrap();
        assert_eq!(h.events.len(), 2);
        assert_eq!(h.events[1].key.as_deref(), Some("0"));
        assert_eq!(h.events[1].f, Function::Append);
        assert_eq!(h.lines, vec![1, 2]);
    }

    #[test]
    fn edn_errors_name_the_line_and_the_expectation() {
        let e = read_history(
            b"[{:process 0 :type :invoke :f :read}\n{:process 0 :type :done :f :read}]",
            Format::Edn,
        )
        .unwrap_err();
        assert_eq!(
            (e.line, e.expected.as_str()),
            (2, ":invoke, :ok, :fail or :info")
        );
        let e = read_history(b"[{:process 0 :type :ok :f :frob}]", Format::Edn).unwrap_err();
        assert!(e.expected.contains(":f one of"), "{e}");
        let e =
            read_history(b"[{:process 0 :type :ok :f :read :value 1.5}]", Format::Edn).unwrap_err();
        assert!(e.found.contains("float"), "{e}");
        let e = read_history(b"[{:process 0 :type :ok :f :read}", Format::Edn).unwrap_err();
        assert!(e.expected.contains("closing"), "{e}");
        let e = read_history(b"[1]", Format::Edn).unwrap_err();
        assert!(e.expected.contains("operation map"), "{e}");
        let e = read_history(b"\n\xff", Format::Edn).unwrap_err();
        assert_eq!((e.line, e.found.as_str()), (2, "bytes that are not UTF-8"));
    }

    #[test]
    fn reads_jsonl_and_names_bad_lines() {
        let events = vec![HistoryEvent::new(
            3,
            EventType::Invoke,
            Function::Get,
            Some("k".into()),
            Value::Nil,
        )];
        let bytes = to_jsonl(&events);
        let h = read_history(&bytes, Format::Jsonl).unwrap();
        assert_eq!(h.events, events);
        let e = read_history(b"\n{\"process\":1}\n", Format::Jsonl).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.expected.contains("JSON object"), "{e}");
    }

    #[test]
    fn detects_formats() {
        let d = |t: &str| Format::detect(None, t.as_bytes());
        assert_eq!(
            d("INFO  jepsen.util - 1\t:invoke\t:read\tnil"),
            Format::JepsenLog
        );
        assert_eq!(d("; x\n[{:process 1}]"), Format::Edn);
        assert_eq!(d("{:process 1}\n{:process 2}"), Format::EdnLines);
        assert_eq!(d("{\"process\":1}"), Format::Jsonl);
        assert_eq!("edn-lines".parse::<Format>(), Ok(Format::EdnLines));
        assert!("xml".parse::<Format>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn readers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            for (format, _) in Format::ALL {
                let _ = read_history(&bytes, format);
            }
            let _ = Format::detect(None, &bytes);
        }

        #[test]
        fn readers_never_panic_on_history_like_text(text in "[\\[\\]{}:a-z0-9 \"\n,;-]{0,300}") {
            for (format, _) in Format::ALL {
                let _ = read_history(text.as_bytes(), format);
            }
        }
    }
}
