//! `applied-prefix` (Multi-Paxos state machine safety): the logs the replicas apply are prefixes
//! of one another. Each replica applies slots in order from 1 (again from 1 after a restart,
//! since its store is volatile), or from the slot after a snapshot it installed (a peer's, or
//! its own reloaded at restart), and every replica applies the same value at the same slot, so
//! every replica's store passes through the same sequence of states.
//!
//! Replays `applied` and `snapshot-installed` observations and crashes in order (in the run's
//! [`Ledger`]). A replica that skips or repeats a slot
//! within one incarnation, or applies a value another replica did not apply at that slot, fails
//! the check; the evidence names the slot, both values, the replicas and the times.

use crate::check::{self, CheckInfo, CheckResult, ms};
use crate::families::paxos;
use crate::families::paxos::checks::Ledger;
use crate::families::paxos::checks::ledger::AppliedProblem;
use crate::scenario::Verdict;
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "applied-prefix",
    summary: "replicas apply slots in order from 1, and their applied logs are prefixes of each other",
    applies_to: |s| s.runs_protocol(paxos::multi::PROTOCOL.name),
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
    let replicas = &ledger.replicas;
    let topo = &record.topology;
    let problems: Vec<String> = replicas
        .problems
        .iter()
        .map(|p| match p {
            AppliedProblem::OutOfOrder {
                node,
                slot,
                t_ns,
                expected,
            } => format!(
                "{} applied slot {slot} at {} but its next slot was {expected}",
                topo.name(*node),
                ms(*t_ns)
            ),
            AppliedProblem::Differs {
                slot,
                applied,
                first,
            } => format!(
                "slot {slot}: {} applied {:?} at {} but {} had applied {:?} at {}",
                topo.name(applied.node),
                applied.value,
                ms(applied.t_ns),
                topo.name(first.node),
                first.value,
                ms(first.t_ns)
            ),
        })
        .collect();
    let (longest, applications) = (&replicas.longest, replicas.applications);
    let lengths: Vec<String> = longest
        .iter()
        .map(|(n, l)| format!("{} {l}", topo.name(*n)))
        .collect();
    let mut result = if problems.is_empty() {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            format!(
                "{applications} applications, all in order and identical slot by slot; longest applied log per replica: {}",
                if lengths.is_empty() {
                    "none".to_string()
                } else {
                    lengths.join(", ")
                }
            ),
        )
    } else {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{} violation(s); first: {}",
                replicas.problem_count, problems[0]
            ),
        );
        r.evidence = problems;
        r
    };
    result
        .metrics
        .insert("applications".into(), applications.into());
    result
        .metrics
        .insert("slots_applied".into(), (replicas.slots as usize).into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{lifecycle, observe};
    use crate::families::paxos::checks::testing::record;
    use crate::sim::LifecycleKind;

    fn applied(rec: &mut RunRecord, t: u64, node: u32, slot: u64, value: &str) {
        observe(
            rec,
            t,
            node,
            paxos::Observation::Applied {
                slot,
                value: value.into(),
            },
        );
    }

    #[test]
    fn logs_must_be_gapless_prefixes_of_each_other() {
        let mut rec = record("multi-paxos", "");
        applied(&mut rec, 1, 0, 1, "noop");
        applied(&mut rec, 2, 0, 2, "5#1");
        applied(&mut rec, 3, 1, 1, "noop");
        // n1 crashes and applies again from slot 1: fine.
        lifecycle(&mut rec, 4, 0, LifecycleKind::Crash);
        applied(&mut rec, 5, 0, 1, "noop");
        assert_eq!(run(&rec).verdict, Verdict::Pass);
        // n2 applies a different value at slot 2.
        applied(&mut rec, 6, 1, 2, "5#2");
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[0].starts_with("slot 2: n2"), "{:?}", r.evidence);
        // A gap is a violation too.
        let mut rec = record("multi-paxos", "");
        applied(&mut rec, 1, 2, 1, "noop");
        applied(&mut rec, 2, 2, 3, "noop");
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains("next slot was 2"),
            "{:?}",
            r.evidence
        );
    }

    #[test]
    fn a_snapshot_installed_moves_a_replicas_next_slot_past_it() {
        let mut rec = record("multi-paxos", "");
        applied(&mut rec, 1, 0, 1, "noop");
        applied(&mut rec, 2, 0, 2, "5#1");
        applied(&mut rec, 3, 0, 3, "5#2");
        // n2 installs n1's snapshot through slot 2, then applies slot 3: no gap.
        observe(
            &mut rec,
            4,
            1,
            paxos::Observation::SnapshotInstalled { slot: 2 },
        );
        applied(&mut rec, 5, 1, 3, "5#2");
        // n1 restarts from its own snapshot through slot 3 and goes on at slot 4.
        lifecycle(&mut rec, 6, 0, LifecycleKind::Crash);
        observe(
            &mut rec,
            7,
            0,
            paxos::Observation::SnapshotInstalled { slot: 3 },
        );
        applied(&mut rec, 8, 0, 4, "noop");
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        // Without the snapshot, the same jump is a gap.
        let mut rec = record("multi-paxos", "");
        applied(&mut rec, 1, 1, 3, "5#2");
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains("next slot was 1"),
            "{:?}",
            r.evidence
        );
    }
}
