//! `log-matching` (Raft, Figure 3): if two logs contain an entry with the same index and term,
//! then the logs are identical in all entries up through that index (§5.3).
//!
//! The replay identifies each entry with its whole prefix, so the property is: every (index,
//! term) position ever observed, on any node at any time, has exactly one identity. A violation
//! cites the first node and time that held each version and the lowest index where the two
//! prefixes differ; the replay writes it when the second version appears (each version against
//! the one before it at that position). Logs with gaps (an append past the end) are reported
//! here too.

use crate::check::{self, CheckInfo, CheckResult};
use crate::families::raft::checks::{Replay, verdict};
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "log-matching",
    summary: "entries with the same index and term have identical prefixes (Raft §5.3)",
    applies_to: |s| s.runs_protocol(crate::families::raft::PROTOCOL.name),
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run,
};

fn run(record: &RunRecord) -> CheckResult {
    judge(record, &Replay::of(record))
}

/// The verdict from a replay: the gaps and diverging versions it found, by time.
pub fn judge(_record: &RunRecord, replay: &Replay) -> CheckResult {
    verdict(
        CHECK.name,
        replay.sorted_finding_texts(CHECK.name),
        |n| format!("{n} log position(s) with diverging versions"),
        format!(
            "{} distinct entries at {} (index, term) positions, one version each",
            replay.entry_count, replay.position_count
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::record;
    use crate::families::raft::checks::tests::{append, e, role};
    use crate::scenario::Verdict;

    #[test]
    fn same_index_and_term_with_different_prefixes_fails() {
        let mut rec = record(3, 0, "");
        role(&mut rec, 1, 0, "leader", 1);
        append(&mut rec, 2, 0, 1, &[e(1, 0), e(1, 1), e(1, 2)]);
        append(&mut rec, 3, 1, 1, &[e(1, 0), e(1, 1), e(1, 2)]);
        assert_eq!(run(&rec).verdict, Verdict::Pass);
        // n3 holds (3, term 1) after a different entry 2.
        append(&mut rec, 4, 2, 1, &[e(1, 0), e(1, 9), e(1, 2)]);
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence.iter().any(|l| l.contains("differ at index 2")),
            "{:?}",
            r.evidence
        );
        // A gap is reported too.
        let mut gap = record(3, 0, "");
        append(&mut gap, 1, 0, 3, &[e(1, 0)]);
        assert_eq!(run(&gap).verdict, Verdict::Fail);
    }
}
