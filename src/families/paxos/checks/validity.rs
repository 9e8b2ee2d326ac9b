//! `validity` (Paxos safety, §2.1 "only a value that has been proposed may be chosen"): every
//! chosen value was introduced by some proposer in that instance or slot.
//!
//! A proposer observes `proposed` when it puts forward a value of its own (its single-decree
//! value, a client command, a gap-filling no-op), as opposed to a value it took from a promise.
//! Each chosen proposal (from acceptor observations) must carry such a value.

use std::collections::BTreeSet;

use crate::check::{self, CheckInfo, CheckResult};
use crate::families::paxos::checks::{Choice, Ledger, applies};
use crate::scenario::Verdict;
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "validity",
    summary: "every chosen value was proposed by some proposer in that instance (slot)",
    applies_to: applies,
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run,
};

fn run(record: &RunRecord) -> CheckResult {
    judge(record, &Ledger::of(record))
}

/// The check's result for `record`, read from its `ledger` (as [`Ledger::of`] gives it).
pub fn judge(record: &RunRecord, ledger: &Ledger) -> CheckResult {
    // Instances that chose a value; chosen proposals with a value not proposed there (the first
    // ten of them with the values proposed there, as the evidence prints them).
    let mut instances = 0usize;
    let mut invalid = 0usize;
    let mut evidence: Vec<(Choice, String)> = Vec::new();
    for (instance, inst) in ledger.instances().filter(|(_, i)| i.is_chosen()) {
        instances += 1;
        let proposed: BTreeSet<&str> = inst.proposed.iter().map(|v| &**v).collect();
        for c in inst.choices(instance) {
            if !proposed.contains(&*c.value) {
                invalid += 1;
                if evidence.len() < 10 {
                    evidence.push((c, format!("{proposed:?}")));
                }
            }
        }
    }
    let mut result = if invalid == 0 {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            format!("every value chosen in {instances} instance(s) had been proposed there"),
        )
    } else {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{invalid} chosen proposal(s) carry a value no proposer proposed in its instance"
            ),
        );
        for (c, proposed) in &evidence {
            r.evidence.push(format!(
                "instance {}: {}; proposed there: {proposed}",
                c.instance,
                c.describe(record),
            ));
        }
        r
    };
    result
        .metrics
        .insert("invalid_choices".into(), invalid.into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::observe;
    use crate::families::paxos;
    use crate::families::paxos::checks::testing::{accepted, b, record};

    #[test]
    fn a_chosen_value_nobody_proposed_in_that_instance_fails() {
        let mut rec = record("paxos", "");
        observe(
            &mut rec,
            5,
            0,
            paxos::Observation::Proposed {
                instance: 0,
                ballot: b(1, 0),
                value: "x".into(),
            },
        );
        for n in 0..3 {
            accepted(&mut rec, 10, n, 0, b(1, 0), "x");
        }
        assert_eq!(run(&rec).verdict, Verdict::Pass);
        // "x" was proposed in instance 0 only.
        for n in 0..3 {
            accepted(&mut rec, 10, n, 1, b(1, 0), "x");
        }
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[0].starts_with("instance 1"), "{:?}", r.evidence);
    }
}
