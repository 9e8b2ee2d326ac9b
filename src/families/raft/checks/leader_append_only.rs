//! `leader-append-only` (Raft, Figure 3): a leader never overwrites or deletes entries in its
//! log; it only appends new entries (§5.3).
//!
//! From a node's `role` observation as leader of a term until its next role change or crash,
//! any truncation, any append at an index it already holds, or any snapshot installation
//! (which replaces the log) is a violation.

use crate::check::{self, CheckInfo, CheckResult};
use crate::families::raft::checks::{Replay, verdict};
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "leader-append-only",
    summary: "a leader never overwrites or deletes entries in its log (Raft §5.3)",
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
        |n| format!("{n} time(s) a leader removed or replaced entries of its own log"),
        format!(
            "{} leadership(s): no leader removed or replaced an entry of its log",
            replay.elections.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{observe, record};
    use crate::families::raft::Observation as O;
    use crate::families::raft::checks::tests::{append, e, role};
    use crate::scenario::Verdict;

    #[test]
    fn truncating_or_overwriting_while_leading_fails() {
        let mut rec = record(3, 0, "");
        role(&mut rec, 1, 0, "follower", 1);
        append(&mut rec, 2, 0, 1, &[e(1, 0), e(1, 1)]);
        observe(&mut rec, 3, 0, O::Truncate { index: 2, last: 2 });
        role(&mut rec, 4, 0, "leader", 2);
        append(&mut rec, 5, 0, 2, &[e(2, 0)]);
        assert_eq!(run(&rec).verdict, Verdict::Pass, "a follower may truncate");
        let mut overwrite = rec.clone();
        append(&mut overwrite, 6, 0, 2, &[e(2, 7)]);
        let r = run(&overwrite);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.evidence[0].contains("overwrote entry 2"),
            "{:?}",
            r.evidence
        );
        observe(&mut rec, 6, 0, O::Truncate { index: 2, last: 2 });
        assert_eq!(run(&rec).verdict, Verdict::Fail);
    }
}
