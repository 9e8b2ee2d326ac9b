//! Pairs a history's events into operations (Jepsen semantics).
//!
//! Each process is sequential: an `invoke` is followed by at most one completion from the same
//! process. `ok`: the operation took effect between its invoke and its completion. `fail`: it
//! certainly did not take effect, so it is dropped. `info`, or no completion at all: the outcome
//! is unknown, so the operation stays pending to the end of the history and may or may not take
//! effect (at any time after its invoke).

use super::model::{RawOp, RawOps, RawOutcome};
use crate::history::{EventType, Events};

/// A history that cannot be paired into operations, in the history's own words (`get`,
/// `invoke`, the key as written).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {event}: {found}{}; expected {expected}", .earlier.map(|e| format!(" (see event {e})")).unwrap_or_default())]
pub struct HistoryError {
    /// Position of the offending event in the history (0-based).
    pub event: usize,
    /// What was found.
    pub found: String,
    /// What was expected.
    pub expected: String,
    /// An earlier event the problem refers to (the invoke a completion does not match, the
    /// outstanding invoke of a process that invokes again); a file reader names its line.
    pub earlier: Option<usize>,
}

/// `"k1"`, or `no key`.
fn key_text(key: Option<&str>) -> String {
    key.map_or_else(|| "no key".to_string(), |k| format!("key {k:?}"))
}

/// Pairs invokes with completions. The result is ordered by invoke position; `fail`ed
/// operations are left out.
///
/// # Errors
/// [`HistoryError`] for a completion without an outstanding invoke, a second invoke while one
/// is outstanding, or a completion whose function or key differs from its invoke's.
pub fn pair<E: Events + ?Sized>(events: &E) -> Result<Vec<RawOp<'_>>, HistoryError> {
    pair_with(events, false)
}

/// [`pair`], optionally reading a `fail`ed `cas` as Porcupine does: it took effect and returned
/// false ([`RawOutcome::CasFalse`]) instead of not taking effect.
///
/// # Errors
/// As [`pair`].
pub fn pair_with<E: Events + ?Sized>(
    events: &E,
    failed_cas_returns_false: bool,
) -> Result<Vec<RawOp<'_>>, HistoryError> {
    let paired = pair_ops(events, failed_cas_returns_false)?;
    Ok((0..paired.len()).map(|i| paired.op(i)).collect())
}

/// How a paired operation ended, as [`PairedOps`] keeps it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Ended {
    /// `ok`.
    Ok,
    /// `info`, or no completion.
    Unknown,
    /// A `fail`ed cas read as Porcupine does ([`RawOutcome::CasFalse`]).
    CasFalse,
    /// `fail`: dropped once pairing is done.
    Failed,
}

/// One paired operation by position (12 bytes): its invoke, its completion ([`NO_COMPLETION`]
/// if none) and how it ended.
#[derive(Copy, Clone, Debug)]
struct Paired {
    call: u32,
    done: u32,
    ended: Ended,
}

/// [`Paired::done`] of an operation without a completion.
const NO_COMPLETION: u32 = u32::MAX;

/// A history's operations, paired ([`pair_ops`]): positions only, 12 bytes an operation, each
/// made into a [`RawOp`] borrowing the history's events when asked ([`RawOps::op`]), instead of
/// a [`RawOp`] of about 90 bytes held for every operation.
pub struct PairedOps<'h, E: ?Sized> {
    events: &'h E,
    pairs: Vec<Paired>,
}

/// [`pair_with`], keeping the pairs as positions ([`PairedOps`]).
///
/// # Errors
/// As [`pair`].
///
/// # Panics
/// If the history holds 2^32 events or more (a [`crate::history::CompactHistory`] holds fewer).
pub fn pair_ops<E: Events + ?Sized>(
    events: &E,
    failed_cas_returns_false: bool,
) -> Result<PairedOps<'_, E>, HistoryError> {
    let position = |i: usize| u32::try_from(i).expect("a history of fewer than 2^32 events");
    // Lookups only: the map's order never reaches the result.
    // Each process's outstanding invoke: (its position, its slot in `pairs`).
    let mut outstanding: rustc_hash::FxHashMap<u64, (usize, usize)> = Default::default();
    // In invoke order; about half of the events are invokes.
    let mut pairs: Vec<Paired> = Vec::with_capacity(events.len() / 2 + 1);
    for i in 0..events.len() {
        let e = events.event(i);
        match e.kind {
            EventType::Invoke => {
                if let Some(&(prev, _)) = outstanding.get(&e.process) {
                    return Err(HistoryError {
                        event: i,
                        found: format!(
                            "process {} invokes {} while its earlier {} is not complete",
                            e.process,
                            e.f.name(),
                            events.event(prev).f.name()
                        ),
                        expected:
                            "a completion (ok, fail or info) first: each process is sequential"
                                .into(),
                        earlier: Some(prev),
                    });
                }
                outstanding.insert(e.process, (i, pairs.len()));
                pairs.push(Paired {
                    call: position(i),
                    done: NO_COMPLETION,
                    ended: Ended::Unknown,
                });
            }
            EventType::Ok | EventType::Fail | EventType::Info => {
                let Some((inv, slot)) = outstanding.remove(&e.process) else {
                    return Err(HistoryError {
                        event: i,
                        found: format!(
                            "a completion ({}) of process {} with no outstanding invoke",
                            e.kind.name(),
                            e.process
                        ),
                        expected: "an invoke from the same process before its completion".into(),
                        earlier: None,
                    });
                };
                let invoke = events.event(inv);
                if invoke.f != e.f {
                    return Err(HistoryError {
                        event: i,
                        found: format!(
                            "process {} completes ({}) a {} but invoked a {}",
                            e.process,
                            e.kind.name(),
                            e.f.name(),
                            invoke.f.name()
                        ),
                        expected: format!("the completion of its {}", invoke.f.name()),
                        earlier: Some(inv),
                    });
                }
                if e.key.is_some() && invoke.key != e.key {
                    return Err(HistoryError {
                        event: i,
                        found: format!(
                            "process {} completes ({}) a {} on {} but invoked it on {}",
                            e.process,
                            e.kind.name(),
                            e.f.name(),
                            key_text(e.key),
                            key_text(invoke.key)
                        ),
                        expected: "the same key as the invoke".into(),
                        earlier: Some(inv),
                    });
                }
                pairs[slot].done = position(i);
                pairs[slot].ended = match e.kind {
                    EventType::Ok => Ended::Ok,
                    EventType::Fail
                        if failed_cas_returns_false && e.f == crate::history::Function::Cas =>
                    {
                        Ended::CasFalse
                    }
                    EventType::Fail => Ended::Failed,
                    _ => Ended::Unknown,
                };
            }
        }
    }
    pairs.retain(|p| p.ended != Ended::Failed);
    Ok(PairedOps { events, pairs })
}

impl<'h, E: Events + ?Sized> RawOps<'h> for PairedOps<'h, E> {
    fn len(&self) -> usize {
        self.pairs.len()
    }

    fn op(&self, i: usize) -> RawOp<'h> {
        let p = self.pairs[i];
        let events: &'h E = self.events;
        let call = p.call as usize;
        let done = (p.done != NO_COMPLETION).then_some(p.done as usize);
        let invoke = events.event(call);
        let value_ids = events
            .value_id(call)
            .map(|v| [v, done.and_then(|d| events.value_id(d)).unwrap_or(v)]);
        let (outcome, ret) = match (p.ended, done) {
            (Ended::Ok, Some(d)) => (RawOutcome::Ok(events.event(d).value), Some(d)),
            (Ended::CasFalse, Some(d)) => (RawOutcome::CasFalse, Some(d)),
            _ => (RawOutcome::Unknown, None),
        };
        RawOp {
            process: invoke.process,
            f: invoke.f,
            key: invoke.key,
            invoke: invoke.value,
            outcome,
            call,
            ret,
            value_ids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Function, HistoryEvent, Value};

    fn ev(p: u64, kind: EventType, f: Function, v: Value) -> HistoryEvent {
        HistoryEvent::new(p, kind, f, None, v)
    }

    #[test]
    fn pairs_ok_drops_fail_and_keeps_info_and_unanswered_pending() {
        use EventType::*;
        let h = vec![
            ev(0, Invoke, Function::Write, Value::Int(1)),
            ev(1, Invoke, Function::Write, Value::Int(2)),
            ev(2, Invoke, Function::Read, Value::Nil),
            ev(0, Ok, Function::Write, Value::Int(1)),
            ev(1, Fail, Function::Write, Value::Int(2)),
            ev(3, Invoke, Function::Write, Value::Int(3)),
            ev(2, Info, Function::Read, Value::Nil),
        ];
        let ops = pair(&h).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!((ops[0].call, ops[0].ret), (0, Some(3)));
        assert_eq!(ops[0].outcome, RawOutcome::Ok(&Value::Int(1)));
        assert_eq!(
            (ops[1].call, ops[1].ret, ops[1].outcome),
            (2, None, RawOutcome::Unknown)
        );
        assert_eq!((ops[2].call, ops[2].ret), (5, None));
    }

    #[test]
    fn rejects_malformed_histories() {
        use EventType::*;
        let e = pair(&[ev(0, Ok, Function::Read, Value::Nil)]).unwrap_err();
        assert_eq!(e.event, 0);
        assert!(e.expected.contains("invoke"), "{e}");
        let e = pair(&[
            ev(0, Invoke, Function::Read, Value::Nil),
            ev(0, Invoke, Function::Read, Value::Nil),
        ])
        .unwrap_err();
        assert_eq!(e.event, 1);
        let e = pair(&[
            ev(0, Invoke, Function::Read, Value::Nil),
            ev(0, Ok, Function::Write, Value::Nil),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "event 1: process 0 completes (ok) a write but invoked a read (see event 0); \
             expected the completion of its read"
        );
    }
}
