//! `learner-agreement` (Paxos safety, §2.1 "a process never learns that a value has been chosen
//! unless it actually has been"): for every instance or slot, every `learned` observation by
//! every learner (and by one learner over time, across restarts) names the same value, and that
//! value is one a majority of acceptors actually accepted (from acceptor observations). In
//! Multi-Paxos a replica's `applied` observations count as learning too.

use std::collections::BTreeSet;

use crate::check::{self, CheckInfo, CheckResult, ms};
use crate::families::paxos::checks::{applies, choices, learned};
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

fn run(record: &RunRecord) -> CheckResult {
    let chosen = choices(record);
    let learned = learned(record);
    let topo = &record.topology;
    let mut problems: Vec<String> = Vec::new();
    let mut conflicting = 0usize;
    let mut unchosen = 0usize;
    for (instance, events) in &learned {
        let values: BTreeSet<&str> = events.iter().map(|e| e.2).collect();
        if values.len() > 1 {
            conflicting += 1;
            let first = events[0];
            let other = events.iter().find(|e| e.2 != first.2).expect("two values");
            problems.push(format!(
                "instance {instance}: {} learned {:?} at {}, {} learned {:?} at {}",
                topo.name(first.1),
                first.2,
                ms(first.0),
                topo.name(other.1),
                other.2,
                ms(other.0)
            ));
        }
        let chosen_values: BTreeSet<&str> = chosen
            .get(instance)
            .map(|l| l.iter().map(|c| &*c.value).collect())
            .unwrap_or_default();
        if let Some(e) = events.iter().find(|e| !chosen_values.contains(e.2)) {
            unchosen += 1;
            problems.push(format!(
                "instance {instance}: {} learned {:?} at {}, which no majority of acceptors accepted",
                topo.name(e.1),
                e.2,
                ms(e.0)
            ));
        }
    }
    let mut result = if problems.is_empty() {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            format!(
                "{} instance(s) learned, every learner the same chosen value",
                learned.len()
            ),
        )
    } else {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{conflicting} instance(s) learned with different values, {unchosen} with a value that was not chosen"
            ),
        );
        r.evidence = problems.into_iter().take(10).collect();
        r
    };
    result
        .metrics
        .insert("instances_learned".into(), learned.len().into());
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
