//! `leader-completeness` (Raft, Figure 3): if a log entry is committed in a given term, that
//! entry will be present in the logs of the leaders for all higher-numbered terms (§5.4).
//!
//! "Committed" is derived from observations (see the parent module): a majority appended the
//! entry while their current term was the entry's term. For every leadership of a term U (the
//! leader's log at the moment it announced it) and every committed entry of a term below U, the
//! leader's log must hold that entry at its index, with the same prefix. By the argument of
//! §5.4.3 this holds whenever the entry becomes committed, before or after the election, so
//! every pair is judged: the replay judges a leadership against the entries committed when it
//! is elected, and each entry committed later against the leaderships of later terms it has
//! not found lacking yet (leaderships are identified by their log's last entry, not copied),
//! until every server has reached their term (see `Replay` for what it forgets and why no
//! pair is lost).

use crate::check::{self, CheckInfo, CheckResult};
use crate::families::raft::checks::{Replay, verdict};
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "leader-completeness",
    summary: "every committed entry is in the log of every later-term leader (Raft §5.4)",
    applies_to: |s| s.runs_protocol(crate::families::raft::PROTOCOL.name),
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run,
};

fn run(record: &RunRecord) -> CheckResult {
    judge(record, &Replay::of(record))
}

/// The verdict from a replay: the findings it made as leaderships and commitments came (one
/// per leadership at most: the first committed entry it lacks, in the order they became
/// committed), by time.
pub fn judge(_record: &RunRecord, replay: &Replay) -> CheckResult {
    verdict(
        CHECK.name,
        replay.sorted_finding_texts(CHECK.name),
        |n| format!("{n} leader(s) lacked a committed entry of an earlier term"),
        format!(
            "{} leadership(s) checked against {} committed entries: every leader held every earlier-term committed entry",
            replay.elections.len(),
            replay.committed_count
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
    fn a_leader_without_a_committed_entry_fails() {
        let mut rec = record(3, 0, "");
        for n in 0..3 {
            role(&mut rec, 1, n, "follower", 1);
        }
        role(&mut rec, 2, 0, "leader", 1);
        append(&mut rec, 3, 0, 1, &[e(1, 0), e(1, 1)]);
        append(&mut rec, 4, 1, 1, &[e(1, 0), e(1, 1)]);
        append(&mut rec, 4, 2, 1, &[e(1, 0)]);
        // n3 holds only entry 1 yet becomes leader of term 2: entry 2 was committed by n1, n2.
        role(&mut rec, 10, 2, "candidate", 2);
        let mut good = rec.clone();
        role(&mut good, 11, 1, "leader", 2);
        assert_eq!(run(&good).verdict, Verdict::Pass);
        role(&mut rec, 11, 2, "leader", 2);
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains("n3 became leader of term 2"),
            "{:?}",
            r.evidence
        );
        assert!(
            r.evidence[0].contains("ended at index 1"),
            "{:?}",
            r.evidence
        );
    }
}
