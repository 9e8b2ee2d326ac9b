//! Client operations rebuilt from a history: each `invoke` paired with its completion by the same
//! process. Shared by the checks that judge client-visible behaviour (availability, liveness,
//! stale reads, no-decision, bounds).

use std::collections::BTreeMap;

use crate::history::{EventType, Events, Function, Value};

/// The value of an operation that has not completed.
static NIL: Value = Value::Nil;

/// One client operation: its invocation and, if it ended, its completion. It borrows its
/// strings and values from the history it was paired from (about 110 bytes an operation, no
/// heap: a 50-client, 600-second run has about 2.4 million).
#[derive(Clone, Debug, PartialEq)]
pub struct Operation<'h> {
    /// The logical client process.
    pub process: u64,
    /// The client node's name.
    pub node: &'h str,
    /// The function.
    pub f: Function,
    /// The key, for keyed operations.
    pub key: Option<&'h str>,
    /// The invocation's value (the argument).
    pub argument: &'h Value,
    /// Global time of the invocation, in nanoseconds.
    pub invoke_ns: u64,
    /// How it ended (`Ok`, `Fail` or `Info`), `None` if it never ended in the history.
    pub outcome: Option<EventType>,
    /// The completion's value (for an `ok` read: the value read); `nil` while not completed.
    pub result: &'h Value,
    /// Global time of the completion, in nanoseconds.
    pub complete_ns: Option<u64>,
    /// The completion's error, if any.
    pub error: Option<&'h str>,
    /// Index of the invoke event in the history (its position).
    pub index: u64,
}

impl Operation<'_> {
    /// True if the operation ended `ok`.
    pub fn is_ok(&self) -> bool {
        self.outcome == Some(EventType::Ok)
    }

    /// True if it ended with a definite answer (`ok` or `fail`).
    pub fn is_answered(&self) -> bool {
        matches!(self.outcome, Some(EventType::Ok | EventType::Fail))
    }

    /// True if its client heard back from the system: a definite answer, or an `info` with the
    /// error a server sent (it answered without knowing the outcome, e.g. `overloaded`); not an
    /// `info` without an error or with the client's own timeout
    /// ([`crate::history::TIMEOUT_ERROR`]).
    pub fn heard_back(&self) -> bool {
        self.is_answered()
            || (self.outcome == Some(EventType::Info)
                && self
                    .error
                    .is_some_and(|e| e != crate::history::TIMEOUT_ERROR))
    }

    /// A short description for evidence lines, e.g. `c1 put k2 "c1-4" [1.0ms, 3.2ms] ok`.
    pub fn describe(&self) -> String {
        let value = match (&self.outcome, self.f) {
            (Some(EventType::Ok), Function::Get | Function::Read) => self.result,
            _ => self.argument,
        };
        let value = serde_json::to_string(value).expect("values serialize");
        let f = serde_json::to_value(self.f).expect("functions serialize");
        let f = f.as_str().unwrap_or("?");
        let end = self
            .complete_ns
            .map_or("pending".to_string(), crate::check::ms);
        let outcome = match self.outcome {
            Some(EventType::Ok) => "ok",
            Some(EventType::Fail) => "fail",
            Some(EventType::Info) => "info",
            _ => "unfinished",
        };
        format!(
            "{} {} {} {} [{}, {}] {}",
            self.node,
            f,
            self.key.unwrap_or("-"),
            value,
            crate::check::ms(self.invoke_ns),
            end,
            outcome
        )
    }
}

/// Pairs every invocation with the next completion of the same process, in history order.
/// Completions without an open invocation are ignored.
pub fn operations<E: Events + ?Sized>(history: &E) -> Vec<Operation<'_>> {
    let mut ops: Vec<Operation> = Vec::new();
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    for (index, event) in history.events().enumerate() {
        match event.kind {
            EventType::Invoke => {
                open.insert(event.process, ops.len());
                ops.push(Operation {
                    process: event.process,
                    node: event.node,
                    f: event.f,
                    key: event.key,
                    argument: event.value,
                    invoke_ns: event.time_ns,
                    outcome: None,
                    result: &NIL,
                    complete_ns: None,
                    error: None,
                    index: index as u64,
                });
            }
            kind => {
                if let Some(i) = open.remove(&event.process) {
                    let op = &mut ops[i];
                    op.outcome = Some(kind);
                    op.result = event.value;
                    op.complete_ns = Some(event.time_ns);
                    op.error = event.error;
                }
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryEvent;

    #[test]
    fn invocations_pair_with_their_process_completion() {
        let mut a = HistoryEvent::new(
            1,
            EventType::Invoke,
            Function::Get,
            Some("k".into()),
            Value::Nil,
        );
        a.time_ns = 10;
        let mut b = HistoryEvent::new(
            2,
            EventType::Invoke,
            Function::Put,
            Some("k".into()),
            Value::Str("v".into()),
        );
        b.time_ns = 11;
        let mut c = HistoryEvent::new(
            1,
            EventType::Ok,
            Function::Get,
            Some("k".into()),
            Value::Str("v".into()),
        );
        c.time_ns = 20;
        let history = [a, b, c];
        let ops = operations(&history);
        assert_eq!(ops.len(), 2);
        assert!(ops[0].is_ok());
        assert_eq!(ops[0].result, &Value::Str("v".into()));
        assert_eq!(ops[0].complete_ns, Some(20));
        assert_eq!(ops[1].outcome, None);
    }
}
