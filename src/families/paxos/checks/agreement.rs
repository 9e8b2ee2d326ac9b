//! `agreement` (Paxos safety, §2.1 "only a single value is chosen"): in every instance or slot,
//! all the proposals that a majority of acceptors accepted carry the same value.
//!
//! Chosen proposals come from acceptor observations (the run's [`Ledger`]). Several proposals may
//! be chosen in one instance — that is normal: once `v` is chosen with ballot `b`, P2c makes
//! every higher-ballot proposal carry `v` too — but never two different values. Evidence for a
//! violation names both proposals, the acceptors that accepted each and when.

use std::collections::BTreeSet;

use crate::check::{self, CheckInfo, CheckResult};
use crate::families::paxos::checks::{Choice, Ledger, applies};
use crate::scenario::Verdict;
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "agreement",
    summary: "per instance (slot), at most one value is chosen: chosen = a majority of acceptors accepted the same ballot (from acceptor observations)",
    applies_to: applies,
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run,
};

/// Most violating instances described in the evidence.
const MAX_EVIDENCE: usize = 10;

fn run(record: &RunRecord) -> CheckResult {
    judge(record, &Ledger::of(record))
}

/// The check's result for `record`, read from its `ledger` (as [`Ledger::of`] gives it).
pub fn judge(record: &RunRecord, ledger: &Ledger) -> CheckResult {
    // Instances that chose a value, chosen proposals, and the violating instances (the first
    // MAX_EVIDENCE of them with their first two different choices).
    let (mut instances, mut proposals) = (0usize, 0usize);
    let mut violated = 0usize;
    let mut bad: Vec<(u64, Choice, Choice)> = Vec::new();
    for (instance, inst) in ledger.instances().filter(|(_, i)| i.is_chosen()) {
        instances += 1;
        proposals += inst.chosen as usize;
        let list = inst.choices(instance);
        let values: BTreeSet<&str> = list.iter().map(|c| &*c.value).collect();
        if values.len() > 1 {
            violated += 1;
            if bad.len() < MAX_EVIDENCE {
                let first = &list[0];
                let other = list
                    .iter()
                    .find(|c| c.value != first.value)
                    .expect("two values");
                bad.push((instance, first.clone(), other.clone()));
            }
        }
    }
    let mut result = if violated == 0 {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            format!(
                "{instances} instance(s) chose a value, each exactly one ({proposals} chosen proposal(s) in all)"
            ),
        )
    } else {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{violated} of {instances} instance(s) chose two or more different values; first: instance {}",
                bad[0].0
            ),
        );
        for (instance, first, other) in &bad {
            r.evidence.push(format!(
                "instance {instance}: {}; then {}",
                first.describe(record),
                other.describe(record)
            ));
        }
        r
    };
    result
        .metrics
        .insert("instances_chosen".into(), instances.into());
    result
        .metrics
        .insert("proposals_chosen".into(), proposals.into());
    result
        .metrics
        .insert("instances_violated".into(), violated.into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::paxos::checks::testing::{accepted, b, record};

    #[test]
    fn two_values_chosen_in_one_instance_fail_and_the_same_value_twice_passes() {
        let mut rec = record("paxos", "");
        for n in 0..3 {
            accepted(&mut rec, 10 + u64::from(n), n, 4, b(1, 0), "a");
        }
        // P2c in action: a higher ballot re-proposes the chosen value.
        for n in 2..5 {
            accepted(&mut rec, 20 + u64::from(n), n, 4, b(2, 1), "a");
        }
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["proposals_chosen"], 2);
        // A third ballot with another value reaches a majority: violation.
        for n in [0, 1, 4] {
            accepted(&mut rec, 30 + u64::from(n), n, 4, b(3, 2), "b");
        }
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[0].contains("instance 4"), "{:?}", r.evidence);
        assert!(r.evidence[0].contains("\"b\""), "{:?}", r.evidence);
        assert_eq!(r.metrics["instances_violated"], 1);
    }

    #[test]
    fn a_minority_acceptance_of_another_value_is_not_a_choice() {
        let mut rec = record("multi-paxos", "");
        for n in 0..3 {
            accepted(&mut rec, 10, n, 1, b(1, 0), "5#1");
        }
        accepted(&mut rec, 11, 3, 1, b(1, 3), "6#1");
        accepted(&mut rec, 11, 4, 1, b(1, 3), "6#1");
        assert_eq!(run(&rec).verdict, Verdict::Pass);
    }
}
