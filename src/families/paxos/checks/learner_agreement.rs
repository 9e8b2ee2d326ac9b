//! `learner-agreement` (Paxos safety, §2.1 "a process never learns that a value has been chosen
//! unless it actually has been"): for every instance or slot, every `learned` observation by
//! every learner (and by one learner over time, across restarts) names the same value, and that
//! value is one a majority of acceptors actually accepted (from acceptor observations). In
//! Multi-Paxos a replica's `applied` observations count as learning too.

use std::collections::BTreeSet;

use crate::check::{self, CheckInfo, CheckResult, ms};
use crate::families::paxos::checks::{Ledger, applies};
use crate::scenario::Verdict;
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "learner-agreement",
    summary: "learners never learn different values for an instance (slot), nor a value that was not chosen",
    applies_to: applies,
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run,
};

/// Most problems described in the evidence.
const MAX_EVIDENCE: usize = 10;

fn run(record: &RunRecord) -> CheckResult {
    judge(record, &Ledger::of(record))
}

/// The check's result for `record`, read from its `ledger` (as [`Ledger::of`] gives it).
pub fn judge(record: &RunRecord, ledger: &Ledger) -> CheckResult {
    let topo = &record.topology;
    let mut problems: Vec<String> = Vec::new();
    let mut learned = 0usize;
    let mut conflicting = 0usize;
    let mut unchosen = 0usize;
    // `inst.learned` holds the first learn of each distinct value, in order: the first learn of
    // all, the first of another value, and the first of a value not chosen are among them.
    for (instance, inst) in ledger.instances() {
        let events = &inst.learned;
        if events.is_empty() {
            continue;
        }
        learned += 1;
        if events.len() > 1 {
            conflicting += 1;
            let (first, other) = (&events[0], &events[1]);
            problems.push(format!(
                "instance {instance}: {} learned {:?} at {}, {} learned {:?} at {}",
                topo.name(first.node),
                first.value,
                ms(first.t_ns),
                topo.name(other.node),
                other.value,
                ms(other.t_ns)
            ));
        }
        let chosen_values: BTreeSet<&str> = inst
            .proposals
            .iter()
            .filter(|p| p.chosen.is_some())
            .map(|p| &*p.value)
            .collect();
        if let Some(e) = events.iter().find(|e| !chosen_values.contains(&*e.value)) {
            unchosen += 1;
            problems.push(format!(
                "instance {instance}: {} learned {:?} at {}, which no majority of acceptors accepted",
                topo.name(e.node),
                e.value,
                ms(e.t_ns)
            ));
        }
    }
    problems.truncate(MAX_EVIDENCE);
    let mut result = if problems.is_empty() {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            format!("{learned} instance(s) learned, every learner the same chosen value"),
        )
    } else {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{conflicting} instance(s) learned with different values, {unchosen} with a value that was not chosen"
            ),
        );
        r.evidence = problems;
        r
    };
    result
        .metrics
        .insert("instances_learned".into(), learned.into());
    result
        .metrics
        .insert("instances_conflicting".into(), conflicting.into());
    result
        .metrics
        .insert("instances_unchosen".into(), unchosen.into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::observe;
    use crate::families::paxos::Observation;
    use crate::families::paxos::checks::testing::{accepted, b, record};

    fn learn(rec: &mut RunRecord, t: u64, node: u32, instance: u64, value: &str) {
        observe(
            rec,
            t,
            node,
            Observation::Learned {
                instance,
                value: value.into(),
            },
        );
    }

    #[test]
    fn learners_must_agree_and_learn_only_chosen_values() {
        let mut rec = record("paxos", "");
        for n in 0..3 {
            accepted(&mut rec, 10, n, 0, b(1, 0), "a");
        }
        learn(&mut rec, 12, 3, 0, "a");
        learn(&mut rec, 13, 4, 0, "a");
        assert_eq!(run(&rec).verdict, Verdict::Pass);
        // n5 learns a value a minority accepted.
        accepted(&mut rec, 14, 4, 0, b(2, 4), "z");
        learn(&mut rec, 15, 4, 0, "z");
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.metrics["instances_conflicting"], 1);
        assert_eq!(r.metrics["instances_unchosen"], 1);
        assert!(
            r.evidence[0].contains("n4 learned \"a\""),
            "{:?}",
            r.evidence
        );
    }

    #[test]
    fn in_multi_paxos_an_applied_value_counts_as_learned() {
        let mut rec = record("multi-paxos", "");
        for n in 0..3 {
            accepted(&mut rec, 10, n, 1, b(1, 0), "5#1");
        }
        let applied = |rec: &mut RunRecord, t, node, value: &str| {
            observe(
                rec,
                t,
                node,
                Observation::Applied {
                    slot: 1,
                    value: value.into(),
                },
            )
        };
        applied(&mut rec, 12, 3, "5#1");
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["instances_learned"], 1);
        applied(&mut rec, 13, 4, "noop");
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.metrics["instances_unchosen"], 1);
    }
}
