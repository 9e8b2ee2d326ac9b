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
}

/// A value in a history: `null`, an integer, a string, or a list of values (JSON shapes).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

/// Writes a history as JSON lines (one event per line, `\n`-terminated).
pub fn to_jsonl(events: &[HistoryEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 96);
    for event in events {
        serde_json::to_writer(&mut out, event).expect("history events always serialize");
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lines_round_trip_through_json() {
        let events = vec![
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
}
