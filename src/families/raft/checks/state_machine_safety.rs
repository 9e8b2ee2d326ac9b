//! `state-machine-safety` (Raft, Figure 3): if a server has applied a log entry at a given index
//! to its state machine, no other server will ever apply a different log entry for the same
//! index (§5.4.3). Also: each server applies indexes in order without gaps.
//!
//! From `apply` observations: the first application of each index (entry term and command) is
//! the reference; any later application of a different entry at that index, by any node
//! (including the same node after a restart), is a violation. Per node, applications must
//! follow each other index by index, starting after the snapshot it booted from or installed.

use crate::check::{self, CheckInfo, CheckResult};
use crate::families::raft::checks::{Replay, verdict};
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "state-machine-safety",
    summary: "no two servers apply different entries at an index; each applies in order without gaps (Raft §5.4.3)",
    applies_to: |s| s.runs_protocol(crate::families::raft::PROTOCOL.name),
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run,
};

fn run(record: &RunRecord) -> CheckResult {
    judge(&Replay::of(record))
}

/// The verdict from a replay.
pub fn judge(replay: &Replay) -> CheckResult {
    verdict(
        CHECK.name,
        replay.finding_texts(CHECK.name),
        |n| format!("{n} conflicting or out-of-order application(s)"),
        format!(
            "{} indexes applied, each with one entry everywhere, in order on every node",
            replay.applied_count
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{lifecycle, observe, record};
    use crate::families::raft::Observation as O;
    use crate::families::raft::checks::tests::e;
    use crate::scenario::Verdict;
    use crate::sim::LifecycleKind;

    fn apply(
        rec: &mut RunRecord,
        t: u64,
        node: u32,
        index: u64,
        entries: &[crate::families::raft::EntryRef],
    ) {
        observe(
            rec,
            t,
            node,
            O::Apply {
                index,
                entries: entries.to_vec(),
            },
        );
    }

    #[test]
    fn different_entries_at_one_index_or_gaps_fail() {
        let mut rec = record(3, 0, "");
        apply(&mut rec, 1, 0, 1, &[e(1, 0), e(1, 1)]);
        apply(&mut rec, 2, 1, 1, &[e(1, 0)]);
        apply(&mut rec, 3, 1, 2, &[e(1, 1)]);
        // n1 restarts from an empty disk snapshot and re-applies the same entries: fine.
        lifecycle(&mut rec, 4, 0, LifecycleKind::Crash);
        observe(
            &mut rec,
            5,
            0,
            O::Restored {
                term: 1,
                voted_for: None,
                snapshot_index: 0,
                snapshot_term: 0,
                last_index: 2,
                last_term: 1,
            },
        );
        apply(&mut rec, 6, 0, 1, &[e(1, 0), e(1, 1)]);
        assert_eq!(run(&rec).verdict, Verdict::Pass);
        let mut conflict = rec.clone();
        apply(&mut conflict, 7, 2, 1, &[e(1, 0), e(2, 0)]);
        let r = run(&conflict);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.evidence[0].contains("n3 applied no-op (term 2) at index 2"),
            "{:?}",
            r.evidence
        );
        let mut gap = rec;
        apply(&mut gap, 7, 1, 4, &[e(1, 3)]);
        assert_eq!(run(&gap).verdict, Verdict::Fail);
    }
}
