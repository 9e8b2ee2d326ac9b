//! Checkers: pure functions from a run record (or an imported history) to a verdict with
//! evidence. They never run inside the simulation, so they also work on imported histories.
//! Safety and liveness checks are separate checks (STYLE.md rule 11).
//!
//! Each check lives in its own module with its `[check.<name>]` options; [`CHECKS`] lists them
//! for `faultline list` and for [`run_checks`].

pub mod availability;
pub mod bounds;
pub mod convergence;
pub mod invariants;
pub mod linearizability;
pub mod liveness;
pub mod no_decision;
pub mod ops;
pub mod paxos;
pub mod raft;
pub mod stale_read;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::families::ProtocolInfo;
use crate::scenario::{Duration, Verdict};
use crate::sim::RunRecord;

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// pass, fail or unknown.
    pub verdict: Verdict,
    /// One sentence for the terminal summary.
    pub summary: String,
    /// The facts that prove the verdict, each citing times (global, ms) and nodes; for a failure,
    /// the events that show the violation.
    pub evidence: Vec<String>,
    /// Measured quantities (e.g. the time to converge), by name with a unit suffix.
    pub metrics: BTreeMap<String, serde_json::Value>,
}

impl CheckResult {
    /// A result without evidence or metrics yet.
    pub fn new(name: &str, verdict: Verdict, summary: impl Into<String>) -> Self {
        CheckResult {
            name: name.to_string(),
            verdict,
            summary: summary.into(),
            evidence: Vec::new(),
            metrics: BTreeMap::new(),
        }
    }
}

/// `[check]`: options of each check, by name. A check not mentioned runs with its defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// `[check.convergence]`.
    #[serde(default)]
    pub convergence: convergence::Config,
    /// `[check.linearizability]`.
    #[serde(default)]
    pub linearizability: linearizability::Config,
    /// `[check.availability]`.
    #[serde(default)]
    pub availability: availability::Config,
    /// `[check.liveness]`.
    #[serde(default)]
    pub liveness: liveness::Config,
    /// `[check.stale-read]`.
    #[serde(default, rename = "stale-read")]
    pub stale_read: stale_read::Config,
    /// `[check.election-safety]`.
    #[serde(default, rename = "election-safety")]
    pub election_safety: Toggle,
    /// `[check.log-matching]`.
    #[serde(default, rename = "log-matching")]
    pub log_matching: Toggle,
    /// `[check.leader-completeness]`.
    #[serde(default, rename = "leader-completeness")]
    pub leader_completeness: Toggle,
    /// `[check.state-machine-safety]`.
    #[serde(default, rename = "state-machine-safety")]
    pub state_machine_safety: Toggle,
    /// `[check.leader-append-only]`.
    #[serde(default, rename = "leader-append-only")]
    pub leader_append_only: Toggle,
    /// `[check.decision]` (single-decree Paxos).
    #[serde(default)]
    pub decision: paxos::decision::Config,
    /// `[check.bounds]` (runs, and shows in a resolved scenario, only when a bound is set).
    #[serde(default, skip_serializing_if = "bounds::Config::is_unset")]
    pub bounds: bounds::Config,
    /// `[check.no-decision]` (runs, and shows in a resolved scenario, only when an interval is
    /// set).
    #[serde(
        default,
        rename = "no-decision",
        skip_serializing_if = "no_decision::Config::is_unset"
    )]
    pub no_decision: no_decision::Config,
}

/// Options of a check that has no option but `enabled`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    /// Run the check (default true).
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
}

impl Default for Toggle {
    fn default() -> Self {
        Toggle { enabled: true }
    }
}

/// A check faultline can run.
pub struct CheckInfo {
    /// Name (in reports, `[check.<name>]` and `[expect] failing_checks`).
    pub name: &'static str,
    /// One line for `faultline list`.
    pub summary: &'static str,
    /// Whether it applies to a protocol.
    pub applies_to: fn(&ProtocolInfo) -> bool,
    /// Whether the scenario switched it off.
    pub enabled: fn(&CheckConfig) -> bool,
    /// The check itself.
    pub run: fn(&RunRecord) -> CheckResult,
}

/// Every check, in report order.
pub static CHECKS: &[CheckInfo] = &[
    invariants::CHECK,
    convergence::CHECK,
    raft::election_safety::CHECK,
    raft::log_matching::CHECK,
    raft::leader_completeness::CHECK,
    raft::leader_append_only::CHECK,
    raft::state_machine_safety::CHECK,
    paxos::agreement::CHECK,
    paxos::validity::CHECK,
    paxos::learner_agreement::CHECK,
    paxos::applied_prefix::CHECK,
    paxos::decision::CHECK,
    stale_read::CHECK,
    linearizability::CHECK,
    availability::CHECK,
    liveness::CHECK,
    no_decision::CHECK,
    bounds::CHECK,
];

/// The checks that apply to `protocol`.
pub fn checks_for(protocol: &ProtocolInfo) -> impl Iterator<Item = &'static CheckInfo> + '_ {
    CHECKS.iter().filter(move |c| (c.applies_to)(protocol))
}

/// Runs every enabled check that applies to the record's protocol.
pub fn run_checks(record: &RunRecord) -> Vec<CheckResult> {
    let protocol =
        crate::families::protocol(&record.scenario.cluster.protocol).expect("validated protocol");
    checks_for(protocol)
        .filter(|c| (c.enabled)(&record.scenario.check))
        .map(|c| (c.run)(record))
        .collect()
}

/// The overall verdict: fail if any check failed, else unknown if any was unknown, else pass.
pub fn overall(results: &[CheckResult]) -> Verdict {
    if results.iter().any(|r| r.verdict == Verdict::Fail) {
        Verdict::Fail
    } else if results.iter().any(|r| r.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Pass
    }
}

/// Formats global nanoseconds as milliseconds for evidence lines (`1234.5ms`).
pub fn ms(t_ns: u64) -> String {
    format!("{:.1}ms", t_ns as f64 / 1e6)
}

/// What is wrong with an interval `[from, until)` of a run lasting `run`, for a check's option
/// validation: `until` must lie after `from` and at most at the end of the run. `None` if it is
/// fine.
pub fn until_problem(from: Duration, until: Duration, run: Duration) -> Option<String> {
    if until <= from {
        Some(format!("expected a time after from ({from})"))
    } else if until > run {
        Some(format!("expected at most the run's duration ({run})"))
    } else {
        None
    }
}
