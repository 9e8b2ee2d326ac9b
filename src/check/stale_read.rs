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
//!
//! Cost: each key's operations are indexed once ([`KeyIndex`]: the first-completed write, a
//! min-segment tree over the `ok` writes' completion times in invoke order, a table of the values
//! puts and cas operations write, the appended strings by length, the `ok` appends by completion
//! and a running maximum over the replacing operations), so each read is judged in O(log n) plus
//! the length of its value: O(n log n) per key instead of a scan of every write for every read.

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
fn written<'h>(op: &Operation<'h>) -> Option<&'h str> {
    match (op.f, op.argument) {
        (Function::Put, Value::Str(v)) => Some(v),
        (Function::Cas, Value::List(pair)) => match pair.get(1) {
            Some(Value::Str(v)) => Some(v),
            _ => None,
        },
        _ => None,
    }
}

fn appended<'h>(op: &Operation<'h>) -> Option<&'h str> {
    match (op.f, op.argument) {
        (Function::Append, Value::Str(v)) => Some(v),
        _ => None,
    }
}

/// A min-segment tree over completion times (nanoseconds, `u64::MAX` for none), answering "the
/// first position at or after `from` whose operation completed before time `t`" in O(log n).
struct FirstCompletedBefore {
    /// Leaves at `size..size + n`; each inner node the minimum of its two children.
    tree: Vec<u64>,
    size: usize,
}

impl FirstCompletedBefore {
    fn new(completes: impl ExactSizeIterator<Item = u64>) -> Self {
        let size = completes.len().next_power_of_two().max(1);
        let mut tree = vec![u64::MAX; 2 * size];
        for (i, c) in completes.enumerate() {
            tree[size + i] = c;
        }
        for i in (1..size).rev() {
            tree[i] = tree[2 * i].min(tree[2 * i + 1]);
        }
        FirstCompletedBefore { tree, size }
    }

    /// The first position `>= from` whose time is below `t`.
    fn first(&self, from: usize, t: u64) -> Option<usize> {
        self.descend(1, 0, self.size, from, t)
    }

    fn descend(&self, node: usize, lo: usize, hi: usize, from: usize, t: u64) -> Option<usize> {
        if hi <= from || self.tree[node] >= t {
            return None;
        }
        if hi - lo == 1 {
            return Some(lo);
        }
        let mid = (lo + hi) / 2;
        self.descend(2 * node, lo, mid, from, t)
            .or_else(|| self.descend(2 * node + 1, mid, hi, from, t))
    }
}

/// One key's operations indexed for the three rules, built in O(n log n); each read is then
/// judged in O(log n) plus the length of its value.
struct KeyIndex<'a> {
    /// Rule 1: the `ok` write that completed first (the first in history order among equals).
    first_completed_write: Option<&'a Operation<'a>>,
    /// Rule 2: `ok` writes in history (invoke) order, and the first-completed-before index on them.
    ok_writes: Vec<&'a Operation<'a>>,
    ok_write_completed: FirstCompletedBefore,
    /// Rule 2: per whole value written by a put or cas that did not fail: how many write it, and
    /// the first that does.
    producers: rustc_hash::FxHashMap<&'a str, (usize, &'a Operation<'a>)>,
    /// Rule 2: non-empty appended strings (of appends that did not fail), and their lengths.
    appended: rustc_hash::FxHashSet<&'a str>,
    appended_lengths: Vec<usize>,
    /// Rule 3: `ok` appends sorted by completion time (history order among equals).
    ok_appends_by_completion: Vec<&'a Operation<'a>>,
    /// Rule 3: puts and cas operations that did not fail, in invoke order, with the running
    /// maximum of their effect ends ([`effect_end`]).
    replacing_invokes: Vec<u64>,
    replacing_max_end: Vec<u64>,
}

impl<'a> KeyIndex<'a> {
    /// `ops` must be in invoke order (as [`operations`] gives them).
    fn new(ops: &[&'a Operation]) -> Self {
        let ok_writes: Vec<&Operation> = ops
            .iter()
            .copied()
            .filter(|o| is_write(o.f) && o.is_ok())
            .collect();
        let first_completed_write = ok_writes
            .iter()
            .copied()
            .filter(|w| w.complete_ns.is_some())
            .min_by_key(|w| w.complete_ns);
        let ok_write_completed =
            FirstCompletedBefore::new(ok_writes.iter().map(|w| w.complete_ns.unwrap_or(u64::MAX)));
        let replacing: Vec<&Operation> = ops
            .iter()
            .copied()
            .filter(|o| matches!(o.f, Function::Put | Function::Cas))
            .filter(|o| o.outcome != Some(EventType::Fail))
            .collect();
        let mut producers: rustc_hash::FxHashMap<&str, (usize, &Operation)> = Default::default();
        for &o in &replacing {
            if let Some(v) = written(o) {
                producers.entry(v).or_insert((0, o)).0 += 1;
            }
        }
        let appended: rustc_hash::FxHashSet<&str> = ops
            .iter()
            .filter(|o| o.f == Function::Append && o.outcome != Some(EventType::Fail))
            .filter_map(|o| appended(o))
            .filter(|s| !s.is_empty())
            .collect();
        let mut appended_lengths: Vec<usize> = appended.iter().map(|s| s.len()).collect();
        appended_lengths.sort_unstable();
        appended_lengths.dedup();
        let mut ok_appends_by_completion: Vec<&Operation> = ok_writes
            .iter()
            .copied()
            .filter(|w| w.f == Function::Append && w.complete_ns.is_some())
            .collect();
        // Stable: equal completion times stay in history order.
        ok_appends_by_completion.sort_by_key(|w| w.complete_ns);
        let replacing_invokes = replacing.iter().map(|x| x.invoke_ns).collect();
        let mut running = 0;
        let replacing_max_end = replacing
            .iter()
            .map(|x| {
                running = effect_end(x).max(running);
                running
            })
            .collect();
        KeyIndex {
            first_completed_write,
            ok_writes,
            ok_write_completed,
            producers,
            appended,
            appended_lengths,
            ok_appends_by_completion,
            replacing_invokes,
            replacing_max_end,
        }
    }

    /// True if some (non-empty) appended string is a suffix of `v`.
    fn append_can_produce(&self, v: &str) -> bool {
        self.appended_lengths.iter().any(|&n| {
            n <= v.len()
                && v.is_char_boundary(v.len() - n)
                && self.appended.contains(&v[v.len() - n..])
        })
    }

    /// True if a put or cas that did not fail was invoked at or before `until` and may take
    /// effect at or after `from`.
    fn replaced_between(&self, from: u64, until: u64) -> bool {
        let invoked = self.replacing_invokes.partition_point(|&i| i <= until);
        invoked > 0 && self.replacing_max_end[invoked - 1] >= from
    }

    /// Why `read` is stale, if it is.
    fn judge(&self, read: &Operation) -> Option<String> {
        let (invoke, complete) = (read.invoke_ns, read.complete_ns.unwrap_or(u64::MAX));
        // Rule 1.
        if *read.result == Value::Nil
            && let Some(w) = self.first_completed_write
            && w.complete_ns.is_some_and(|c| c < invoke)
        {
            return Some(format!(
                "it read absent, but {} had completed before it began",
                w.describe()
            ));
        }
        // Rule 2.
        if let Value::Str(v) = &read.result
            && let Some(&(1, p)) = self.producers.get(v.as_str())
            && !self.append_can_produce(v)
            && let Some(p_done) = p.complete_ns.filter(|_| p.is_ok())
        {
            // `ok_writes` is in invoke order: the ones invoked after `p_done` are a suffix.
            let from = self.ok_writes.partition_point(|w| w.invoke_ns <= p_done);
            let mut at = from;
            while let Some(i) = self.ok_write_completed.first(at, invoke) {
                let w = self.ok_writes[i];
                if !std::ptr::eq(w, p) {
                    return Some(format!(
                        "its value was written by {}, which was overwritten by {} before the read began",
                        p.describe(),
                        w.describe()
                    ));
                }
                at = i + 1;
            }
        }
        // Rule 3.
        let before = self
            .ok_appends_by_completion
            .partition_point(|w| w.complete_ns.is_some_and(|c| c < invoke));
        if before > 0 {
            let w = self.ok_appends_by_completion[before - 1];
            let a = appended(w).unwrap_or_default();
            // Real-time order is strict: X is ordered before W only if it completed strictly
            // before W was invoked, and after R only if it was invoked strictly after R
            // completed; equal times are concurrent, so X may take effect between them.
            let contains = match &read.result {
                Value::Str(s) => s.contains(a),
                _ => false,
            };
            if !a.is_empty() && !contains && !self.replaced_between(w.invoke_ns, complete) {
                return Some(format!(
                    "it lacks {a:?}, appended by {}, which completed before the read began with no put or cas able to intervene",
                    w.describe()
                ));
            }
        }
        None
    }
}

/// Finds the stale reads among the operations on one key (in invoke order); each finding is
/// (read, reason). O(n log n) in the key's operations plus the length of the values read.
fn stale_reads<'a>(ops: &[&'a Operation]) -> Vec<(&'a Operation<'a>, String)> {
    let index = KeyIndex::new(ops);
    ops.iter()
        .copied()
        .filter(|o| o.f == Function::Get && o.is_ok())
        .filter_map(|read| index.judge(read).map(|why| (read, why)))
        .collect()
}

fn run(record: &RunRecord) -> CheckResult {
    let ops = operations(&record.history);
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in &ops {
        if let Some(k) = op.key {
            by_key.entry(k).or_default().push(op);
        }
    }
    let reads = ops
        .iter()
        .filter(|o| o.f == Function::Get && o.is_ok())
        .count();
    let mut findings = Vec::new();
    for key_ops in by_key.values_mut() {
        // A run's history is in time order already; a stable sort keeps it as it is.
        key_ops.sort_by_key(|o| o.invoke_ns);
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
        rec.history = history.concat().into();
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

    // ------------------------------------------------------------------------------------
    // The index against the quadratic reference.

    /// The quadratic implementation the index replaced (every write scanned for every read): the
    /// reference the property test compares with.
    fn reference_stale_reads<'a>(ops: &[&'a Operation]) -> Vec<(&'a Operation<'a>, String)> {
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
            if *read.result == Value::Nil
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

    /// An [`Operation`] owning its node name and values (what the proptest generates).
    #[derive(Clone, Debug)]
    struct OwnedOp {
        node: String,
        argument: Value,
        result: Value,
        op: Operation<'static>,
    }

    impl OwnedOp {
        fn view(&self) -> Operation<'_> {
            Operation {
                node: &self.node,
                argument: &self.argument,
                result: &self.result,
                ..self.op.clone()
            }
        }
    }

    fn arbitrary_ops() -> impl proptest::strategy::Strategy<Value = Vec<OwnedOp>> {
        use proptest::prelude::*;
        // Few distinct values, so that values repeat, appends are suffixes of reads and puts
        // produce what appends could; small times, so that equal times (concurrency) are common.
        let value = prop_oneof![
            Just(Value::Nil),
            Just(s("a")),
            Just(s("b")),
            Just(s("x;")),
            Just(s("y;")),
            Just(s("ax;")),
            Just(s("x;y;")),
            Just(s("")),
        ];
        let one = (
            0u8..4,
            value.clone(),
            value,
            0u64..30,
            0u64..12,
            prop_oneof![
                Just(Some(Ok)),
                Just(Some(Ok)),
                Just(Some(Fail)),
                Just(Some(Info)),
                Just(None)
            ],
        );
        proptest::collection::vec(one, 0..24).prop_map(|raw| {
            let mut invoke = 0;
            raw.into_iter()
                .enumerate()
                .map(|(i, (f, arg, result, gap, length, outcome))| {
                    invoke += gap / 3;
                    let f = [Get, Put, Append, Cas][f as usize];
                    let argument = match f {
                        Get => Value::Nil,
                        Cas => Value::List(vec![arg.clone(), result.clone()]),
                        _ => arg,
                    };
                    static NIL: Value = Value::Nil;
                    OwnedOp {
                        node: format!("c{i}"),
                        argument: argument.clone(),
                        result: if f == Get { result } else { argument },
                        op: Operation {
                            process: i as u64,
                            node: "",
                            f,
                            key: Some("k"),
                            argument: &NIL,
                            invoke_ns: invoke,
                            outcome,
                            result: &NIL,
                            complete_ns: outcome.map(|_| invoke + length),
                            error: None,
                            index: i as u64,
                        },
                    }
                })
                .collect()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn the_index_finds_what_the_quadratic_scan_finds(owned in arbitrary_ops()) {
            let ops: Vec<Operation> = owned.iter().map(OwnedOp::view).collect();
            let refs: Vec<&Operation> = ops.iter().collect();
            let fast: Vec<(u64, String)> =
                stale_reads(&refs).into_iter().map(|(r, why)| (r.index, why)).collect();
            let slow: Vec<(u64, String)> =
                reference_stale_reads(&refs).into_iter().map(|(r, why)| (r.index, why)).collect();
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn first_completed_before_finds_the_first_position_at_or_after_a_start() {
        let index = FirstCompletedBefore::new([9u64, 3, 7, 2, 8].into_iter());
        assert_eq!(index.first(0, 5), Some(1));
        assert_eq!(index.first(2, 5), Some(3));
        assert_eq!(index.first(4, 5), None);
        assert_eq!(index.first(0, 2), None);
        assert_eq!(index.first(0, 10), Some(0));
        assert_eq!(
            FirstCompletedBefore::new(std::iter::empty()).first(0, 5),
            None
        );
    }
}
