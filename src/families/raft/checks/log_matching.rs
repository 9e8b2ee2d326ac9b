//! `log-matching` (Raft, Figure 3): if two logs contain an entry with the same index and term,
//! then the logs are identical in all entries up through that index (§5.3).
//!
//! The replay identifies each entry with its whole prefix, so the property is: every (index,
//! term) position ever observed, on any node at any time, has exactly one identity. A violation
//! cites the first node and time that held each version and the lowest index where the two
//! prefixes differ. Logs with gaps (an append past the end) are reported here too.

use crate::check::{self, CheckInfo, CheckResult, ms};
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

/// The verdict from a replay.
pub fn judge(record: &RunRecord, replay: &Replay) -> CheckResult {
    let mut findings: Vec<(u64, String)> = replay
        .findings_of(CHECK.name)
        .into_iter()
        .map(|f| (f.t_ns, f.text.clone()))
        .collect();
    for (&(index, term), ids) in &replay.diverging {
        for pair in ids.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (ca, cb) = (replay.chain(a), replay.chain(b));
            let differ = ca
                .iter()
                .zip(&cb)
                .position(|(x, y)| x != y)
                .expect("distinct identities differ somewhere");
            let (ea, eb) = (&replay.entries[a as usize], &replay.entries[b as usize]);
            let t = ea.first.t_ns.max(eb.first.t_ns);
            findings.push((
                t,
                format!(
                    "index {index}, term {term}: {} held one version at {} and {} another at {}; they differ at index {}: {} vs {}",
                    record.topology.name(ea.first.node),
                    ms(ea.first.t_ns),
                    record.topology.name(eb.first.node),
                    ms(eb.first.t_ns),
                    differ + 1,
                    replay.describe(ca[differ]),
                    replay.describe(cb[differ]),
                ),
            ));
        }
    }
    findings.sort();
    verdict(
        CHECK.name,
        findings.into_iter().map(|f| f.1).collect(),
        |n| format!("{n} log position(s) with diverging versions"),
        format!(
            "{} distinct entries at {} (index, term) positions, one version each",
            replay.entries.len() - 1,
            replay.by_position.len()
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
