//! `stale-read` (key-value protocols): finds reads that returned a value which, by real-time
//! order alone, had certainly been replaced before the read began. Every such read is a
//! linearizability violation; the converse does not hold, so this is a fast, sound but incomplete
//! companion to the full linearizability checker (which searches for a linearization and also
//! finds anomalies this check cannot see). It is here because its evidence is short and direct
//! ("this read returned `a`, but `put b` had completed before the read started"), which is what a
//! stale read served from a deposed leader's local state or an expired lease looks like.
//!
//! Operations are rebuilt from the history (invoke paired with completion). For each key, with
//! `A ->rt B` meaning A completed before B was invoked, an `ok` read R is stale when one of these
//! holds (each rule is sound whatever the values, because keys are never deleted and every
//! operation either replaces a value whole (`put`, `cas`) or extends it (`append`)):
//!
//! 1. **Absent after a write.** R returned absent (`null`) but some write on the key
//!    (`put`, `append`, or `cas`) completed `ok` before R was invoked.
//! 2. **Overwritten value.** R returned `v`, the only operations in the history that can produce
//!    the exact string `v` are one `put` or `cas` P (its value or new value) that completed `ok`
//!    (no `append` on the key has a value that is a suffix of `v`, and no other put/cas writes
//!    `v`), and some other `ok` write W on the key satisfies `P ->rt W ->rt R`: after W the key
//!    can never hold `v` again.
//! 3. **Missing append.** Let W be the `ok` append on the key that completed last before R was
//!    invoked. If no `put` or `cas` on the key can take effect between W and R (every one either
//!    completed before W was invoked, failed, or was invoked after R completed), the value R
//!    reads must contain W's value; R returned a value without it (or absent).
//!
//! Real-time order is strict: `A ->rt B` only if A's completion time is strictly below B's
//! invocation time. Operations whose times are equal (e.g. on a network with zero latency) are
//! concurrent, and either may take effect first.
//!
//! `info` (and unfinished) operations may take effect at any time after their invocation, so they
//! only ever make a rule inapplicable, never create a violation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::ops::{Operation, operations};
use crate::check::{self, CheckInfo, CheckResult};
use crate::history::{EventType, Function, Value};
use crate::scenario::Verdict;
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "stale-read",
    summary: "no read returns a value that real-time order proves was already replaced (sound, incomplete linearizability test)",
    applies_to: |s| s.workloads().iter().any(|w| w.history.stale_reads),
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<Config>,
    resolve: check::resolve_as::<Config>,
    run,
};

/// `[check.stale-read]` options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run the check (default true).
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config { enabled: true }
    }
}

/// The completion time of `op`, or infinity if it may still take effect.
fn effect_end(op: &Operation) -> u64 {
    match op.outcome {
        Some(EventType::Ok) | Some(EventType::Fail) => op.complete_ns.unwrap_or(u64::MAX),
        _ => u64::MAX,
    }
}

fn is_write(f: Function) -> bool {
    matches!(f, Function::Put | Function::Append | Function::Cas)
}

/// The whole value a put or cas writes.
fn written(op: &Operation) -> Option<&str> {
    match (op.f, &op.argument) {
        (Function::Put, Value::Str(v)) => Some(v),
        (Function::Cas, Value::List(pair)) => match pair.get(1) {
            Some(Value::Str(v)) => Some(v),
            _ => None,
        },
        _ => None,
    }
}

fn appended(op: &Operation) -> Option<&str> {
    match (op.f, &op.argument) {
        (Function::Append, Value::Str(v)) => Some(v),
        _ => None,
    }
}

/// Finds the stale reads among the operations on one key; each finding is (read, reason).
fn stale_reads<'a>(ops: &[&'a Operation]) -> Vec<(&'a Operation, String)> {
    let ok_writes: Vec<&Operation> = ops
        .iter()
        .copied()
        .filter(|o| is_write(o.f) && o.is_ok())
        .collect();
    let replacing: Vec<&Operation> = ops
        .iter()
        .copied()
        .filter(|o| matches!(o.f, Function::Put | Function::Cas))
        .filter(|o| o.outcome != Some(EventType::Fail))
        .collect();
    let appends: Vec<&Operation> = ops
        .iter()
        .copied()
        .filter(|o| o.f == Function::Append && o.outcome != Some(EventType::Fail))
        .collect();
    let mut found = Vec::new();
    for read in ops
        .iter()
        .copied()
        .filter(|o| o.f == Function::Get && o.is_ok())
    {
        let (invoke, complete) = (read.invoke_ns, read.complete_ns.unwrap_or(u64::MAX));
        // Rule 1.
        if read.result == Value::Nil
            && let Some(w) = ok_writes
                .iter()
                .filter(|w| w.complete_ns.is_some_and(|c| c < invoke))
                .min_by_key(|w| w.complete_ns)
        {
            found.push((
                read,
                format!(
                    "it read absent, but {} had completed before it began",
                    w.describe()
                ),
            ));
            continue;
        }
        // Rule 2.
        if let Value::Str(v) = &read.result {
            let producers: Vec<&&Operation> = replacing
                .iter()
                .filter(|o| written(o) == Some(v.as_str()))
                .collect();
            let append_can_produce = appends
                .iter()
                .any(|a| appended(a).is_some_and(|s| !s.is_empty() && v.ends_with(s)));
            if let ([p], false) = (producers.as_slice(), append_can_produce)
                && let Some(p_done) = p.complete_ns.filter(|_| p.is_ok())
                && let Some(w) = ok_writes.iter().find(|w| {
                    !std::ptr::eq(**w, **p)
                        && w.invoke_ns > p_done
                        && w.complete_ns.is_some_and(|c| c < invoke)
                })
            {
                found.push((
                            read,
                            format!(
                                "its value was written by {}, which was overwritten by {} before the read began",
                                p.describe(),
                                w.describe()
                            ),
                        ));
                continue;
            }
        }
        // Rule 3.
        let last_append = ok_writes
            .iter()
            .filter(|w| w.f == Function::Append && w.complete_ns.is_some_and(|c| c < invoke))
            .max_by_key(|w| w.complete_ns);
        if let Some(w) = last_append {
            let a = appended(w).unwrap_or_default();
            // Real-time order is strict: X is ordered before W only if it completed strictly
            // before W was invoked, and after R only if it was invoked strictly after R
            // completed; equal times are concurrent, so X may take effect between them.
            let replaced_between = replacing
                .iter()
                .any(|x| effect_end(x) >= w.invoke_ns && x.invoke_ns <= complete);
            let contains = match &read.result {
                Value::Str(s) => s.contains(a),
                _ => false,
            };
            if !replaced_between && !a.is_empty() && !contains {
                found.push((
                    read,
                    format!(
                        "it lacks {a:?}, appended by {}, which completed before the read began with no put or cas able to intervene",
                        w.describe()
                    ),
                ));
            }
        }
    }
    found
}

fn run(record: &RunRecord) -> CheckResult {
    let ops = operations(&record.history);
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in &ops {
        if let Some(k) = op.key.as_deref() {
            by_key.entry(k).or_default().push(op);
        }
    }
    let reads = ops
        .iter()
        .filter(|o| o.f == Function::Get && o.is_ok())
        .count();
    let mut findings = Vec::new();
    for key_ops in by_key.values() {
        findings.extend(stale_reads(key_ops));
    }
    findings.sort_by_key(|(r, _)| r.invoke_ns);
    let mut result = if findings.is_empty() {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            format!("none of {reads} ok reads returned a value that real-time order proves stale"),
        )
    } else {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{} of {reads} ok reads returned a value already replaced before they began",
                findings.len()
            ),
        );
        for (read, why) in findings.iter().take(10) {
            r.evidence
                .push(format!("stale read {}: {why}", read.describe()));
        }
        r
    };
    result.metrics.insert("ok_reads".into(), reads.into());
    result
        .metrics
        .insert("stale_reads".into(), findings.len().into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{op, record};

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    fn cas(a: &str, b: &str) -> Value {
        Value::List(vec![s(a), s(b)])
    }

    fn verdict(history: Vec<Vec<crate::history::HistoryEvent>>) -> CheckResult {
        let mut rec = record(3, 2, "");
        rec.history = history.concat();
        run(&rec)
    }

    use EventType::{Fail, Info, Ok};
    use Function::{Append, Cas, Get, Put};

    #[test]
    fn a_read_of_an_overwritten_value_is_stale() {
        let base = vec![
            op(1, "c1", Put, s("a"), 0, Ok, s("a"), 10),
            op(1, "c1", Put, s("b"), 20, Ok, s("b"), 30),
        ];
        let mut stale = base.clone();
        stale.push(op(2, "c2", Get, Value::Nil, 40, Ok, s("a"), 50));
        let r = verdict(stale);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains("overwritten by c1 put"),
            "{:?}",
            r.evidence
        );
        // Concurrent with the overwrite: `a` is a legal answer.
        let mut concurrent = base.clone();
        concurrent.push(op(2, "c2", Get, Value::Nil, 25, Ok, s("a"), 50));
        assert_eq!(verdict(concurrent).verdict, Verdict::Pass);
        // A cas that writes `a` again after `b` makes `a` legal too.
        let mut rewritten = base;
        rewritten.push(op(3, "c1", Cas, cas("b", "a"), 31, Info, cas("b", "a"), 35));
        rewritten.push(op(2, "c2", Get, Value::Nil, 40, Ok, s("a"), 50));
        assert_eq!(verdict(rewritten).verdict, Verdict::Pass);
    }

    #[test]
    fn absent_after_a_completed_write_is_stale() {
        let r = verdict(vec![
            op(1, "c1", Append, s("x;"), 0, Ok, s("x;"), 10),
            op(2, "c2", Get, Value::Nil, 20, Ok, Value::Nil, 30),
        ]);
        assert_eq!(r.verdict, Verdict::Fail);
        let r = verdict(vec![
            op(1, "c1", Put, s("x"), 0, Info, s("x"), 10),
            op(2, "c2", Get, Value::Nil, 20, Ok, Value::Nil, 30),
        ]);
        assert_eq!(
            r.verdict,
            Verdict::Pass,
            "an info write may never take effect"
        );
    }

    #[test]
    fn equal_invoke_and_completion_times_are_concurrent_not_ordered() {
        // The put is invoked at the very instant the read completes: they are concurrent, so the
        // put may take effect before the read and `z` (without `x;`) is a legal answer.
        let r = verdict(vec![
            op(1, "c1", Append, s("x;"), 0, Ok, s("x;"), 10),
            op(3, "c3", Put, s("z"), 50, Ok, s("z"), 60),
            op(2, "c2", Get, Value::Nil, 40, Ok, s("z"), 50),
        ]);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        // A write that completes at the instant the read is invoked is concurrent too: absent is
        // legal, and so is the value it overwrote.
        let r = verdict(vec![
            op(1, "c1", Put, s("a"), 0, Ok, s("a"), 40),
            op(2, "c2", Get, Value::Nil, 40, Ok, Value::Nil, 50),
        ]);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        let r = verdict(vec![
            op(1, "c1", Put, s("a"), 0, Ok, s("a"), 10),
            op(1, "c1", Put, s("b"), 10, Ok, s("b"), 40),
            op(2, "c2", Get, Value::Nil, 40, Ok, s("a"), 50),
        ]);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        // One millisecond later the order is real and the same reads are stale.
        let r = verdict(vec![
            op(1, "c1", Append, s("x;"), 0, Ok, s("x;"), 10),
            op(3, "c3", Put, s("z"), 51, Ok, s("z"), 60),
            op(2, "c2", Get, Value::Nil, 40, Ok, s("z"), 50),
        ]);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    }

    #[test]
    fn a_read_missing_a_completed_append_is_stale_unless_a_put_can_intervene() {
        let r = verdict(vec![
            op(1, "c1", Append, s("x;"), 0, Ok, s("x;"), 10),
            op(1, "c1", Append, s("y;"), 20, Ok, s("y;"), 30),
            op(2, "c2", Get, Value::Nil, 40, Ok, s("x;"), 50),
        ]);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        let r = verdict(vec![
            op(1, "c1", Append, s("x;"), 0, Ok, s("x;"), 10),
            op(1, "c1", Append, s("y;"), 20, Ok, s("y;"), 30),
            op(3, "c1", Put, s("z"), 25, Info, s("z"), 60),
            op(2, "c2", Get, Value::Nil, 40, Ok, s("z"), 50),
        ]);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        let r = verdict(vec![
            op(1, "c1", Append, s("x;"), 0, Ok, s("x;"), 10),
            op(3, "c1", Cas, cas("q", "z"), 12, Fail, cas("q", "z"), 14),
            op(2, "c2", Get, Value::Nil, 40, Ok, s("x;"), 50),
        ]);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
    }
}
