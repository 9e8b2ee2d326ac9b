//! `validity` (Paxos safety, §2.1 "only a value that has been proposed may be chosen"): every
//! chosen value was introduced by some proposer in that instance or slot.
//!
//! A proposer observes `proposed` when it puts forward a value of its own (its single-decree
//! value, a client command, a gap-filling no-op), as opposed to a value it took from a promise.
//! Each chosen proposal (from acceptor observations) must carry such a value.

use std::collections::{BTreeMap, BTreeSet};

use crate::check::{self, CheckInfo, CheckResult};
use crate::families::paxos;
use crate::families::paxos::checks::{applies, choices};
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
    let mut proposed: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for o in &record.observations {
        if let Some(paxos::Observation::Proposed {
            instance, value, ..
        }) = o.get()
        {
            proposed.entry(*instance).or_default().insert(value);
        }
    }
    let all = choices(record);
    let mut invalid = Vec::new();
    for (instance, list) in &all {
        for c in list {
            if !proposed
                .get(instance)
                .is_some_and(|p| p.contains(&*c.value))
            {
                invalid.push(c);
            }
        }
    }
    let mut result = if invalid.is_empty() {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            format!(
                "every value chosen in {} instance(s) had been proposed there",
                all.len()
            ),
        )
    } else {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{} chosen proposal(s) carry a value no proposer proposed in its instance",
                invalid.len()
            ),
        );
        for c in invalid.iter().take(10) {
            r.evidence.push(format!(
                "instance {}: {}; proposed there: {:?}",
                c.instance,
                c.describe(record),
                proposed.get(&c.instance).cloned().unwrap_or_default()
            ));
        }
        r
    };
    result
        .metrics
        .insert("invalid_choices".into(), invalid.len().into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::observe;
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
