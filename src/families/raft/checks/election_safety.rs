//! `election-safety` (Raft, Figure 3): at most one leader can be elected in a given term (§5.2).
//!
//! Every `role` observation with role `leader` is an election; two different nodes announcing
//! leadership of the same term is a violation, cited with both announcements.

use std::collections::BTreeMap;

use crate::check::{self, CheckInfo, CheckResult, ms};
use crate::families::raft::checks::{Replay, verdict};
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "election-safety",
    summary: "at most one leader per term (Raft §5.2)",
    applies_to: |s| s.runs_protocol(crate::families::raft::PROTOCOL.name),
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run,
};

fn run(record: &RunRecord) -> CheckResult {
    judge(record, &Replay::of(record))
}

/// The verdict from a replay.
pub fn judge(record: &RunRecord, replay: &Replay) -> CheckResult {
    let mut first = BTreeMap::new();
    let mut findings = Vec::new();
    for e in &replay.elections {
        match first.get(&e.term) {
            None => {
                first.insert(e.term, e);
            }
            Some(f) if f.at.node != e.at.node => findings.push(format!(
                "two leaders in term {}: {} became leader at {} and {} at {}",
                e.term,
                record.topology.name(f.at.node),
                ms(f.at.t_ns),
                record.topology.name(e.at.node),
                ms(e.at.t_ns)
            )),
            Some(_) => {}
        }
    }
    verdict(
        CHECK.name,
        findings,
        |n| format!("{n} term(s) had two leaders"),
        format!(
            "{} leadership(s) in {} term(s), never two leaders in one term",
            replay.elections.len(),
            first.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::record;
    use crate::families::raft::checks::tests::role;
    use crate::scenario::Verdict;

    #[test]
    fn two_leaders_in_one_term_fail_and_one_leader_per_term_passes() {
        let mut rec = record(3, 0, "");
        role(&mut rec, 10, 0, "leader", 1);
        role(&mut rec, 20, 1, "leader", 2);
        role(&mut rec, 30, 1, "leader", 2);
        assert_eq!(run(&rec).verdict, Verdict::Pass);
        role(&mut rec, 40, 2, "leader", 2);
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.evidence[0].contains("n2 became leader at 20.0ms and n3 at 40.0ms"),
            "{:?}",
            r.evidence
        );
    }
}
