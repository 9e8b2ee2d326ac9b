//! `node-invariants`: every process asserts its own invariants after every step; a failed
//! assertion stops the run, and this check reports it with the node, time and message.

use crate::check::{self, CheckInfo, CheckResult, ms};
use crate::scenario::Verdict;
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "node-invariants",
    summary: "no process assertion failed (a failure stops the run at that step)",
    applies_to: |_| true,
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run,
};

fn run(record: &RunRecord) -> CheckResult {
    match &record.halt {
        None => CheckResult::new(CHECK.name, Verdict::Pass, "no process assertion failed"),
        Some(halt) => {
            let mut result = CheckResult::new(
                CHECK.name,
                Verdict::Fail,
                format!(
                    "{} failed an assertion at {}: {}",
                    halt.node,
                    ms(halt.t_ns),
                    halt.message
                ),
            );
            result.evidence.push(format!(
                "{} at {}: {}",
                halt.node,
                ms(halt.t_ns),
                halt.message
            ));
            result
                .evidence
                .push("the run stopped at that step; the trace ends with a `panic` line".into());
            result
        }
    }
}
