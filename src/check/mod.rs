//! Checkers: pure functions from a run record (or an imported history) to a verdict with
//! evidence. They never run inside the simulation, so they also work on imported histories.
//! Safety and liveness checks are separate checks (STYLE.md rule 11).
//!
//! Each generic check lives in its own module with its `[check.<name>]` options; [`CHECKS`]
//! lists them. Checks of one family's properties (Raft's election safety, Paxos's agreement,
//! the lock family's mutual exclusion) live with their family and are listed by it.

pub mod availability;
pub mod bounds;
pub mod invariants;
pub mod linearizability;
pub mod liveness;
pub mod no_decision;
pub mod ops;
pub mod signature;
pub mod stale_read;
#[cfg(test)]
pub(crate) mod testing;

use serde::{Deserialize, Serialize};

use serde::de::DeserializeOwned;

/// A check's interface is part of the family interface (a family lists its own checks).
pub use crate::family::{CheckInfo, CheckResult};
use std::any::Any;
use std::sync::Arc;

use crate::family::{OptionError, Registry, parse_options};
use crate::process::ProcessFactory;
use crate::scenario::topology::Topology;
use crate::scenario::{CheckOptions, Families};
use crate::scenario::{Duration, Scenario, Verdict};
use crate::sim::RunRecord;

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

/// Options of a check bounded by one time, `within` (default 2s, positive), after an event
/// the check names (the final heal, an instance's start): broadcast's `convergence`, Paxos's
/// `decision`, the quorum store's `lost-writes` and `replica-convergence`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Within {
    /// Run the check (default true).
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
    /// The bound (default 2s).
    #[serde(default = "default_within")]
    pub within: Duration,
}

fn default_within() -> Duration {
    Duration::from_secs(2)
}

impl Default for Within {
    fn default() -> Self {
        Within {
            enabled: true,
            within: default_within(),
        }
    }
}

/// `validate` of a check whose options are [`Within`]: `within` must be positive.
pub fn validate_within(table: &toml::Table, _: &Scenario, _: &Topology) -> Vec<OptionError> {
    validate_with(table, |c: &Within| zero_durations(&[("within", c.within)]))
}

/// The generic checks, in report order (family checks follow, in registry order).
pub static CHECKS: &[CheckInfo] = &[
    invariants::CHECK,
    stale_read::CHECK,
    linearizability::CHECK,
    availability::CHECK,
    liveness::CHECK,
    no_decision::CHECK,
    bounds::CHECK,
];

/// Every check that applies to `scenario`: the generic ones, then its families'.
pub fn checks_for(scenario: &Scenario) -> Vec<&'static CheckInfo> {
    let mut out: Vec<&'static CheckInfo> = CHECKS.iter().collect();
    // Family checks go after the invariants and before the generic history checks, as before.
    let family: Vec<&'static CheckInfo> = scenario.registry().checks().collect();
    out.splice(1..1, family);
    out.into_iter()
        .filter(|c| (c.applies_to)(scenario))
        .collect()
}

/// The registry as the scenario loader and the simulator see it ([`crate::scenario::Families`]).
/// It lives here because the loader validates every check's table, and this is the lowest layer
/// that knows the generic checks ([`CHECKS`]) as well as the families'.
impl Families for Registry {
    fn protocols(&self) -> Vec<&'static str> {
        Registry::protocols(self).map(|p| p.name).collect()
    }

    fn workloads(&self) -> Vec<&'static str> {
        Registry::workloads(self).map(|w| w.name).collect()
    }

    fn serves(&self, protocol: &str) -> Option<&'static [&'static str]> {
        self.protocol(protocol).map(|p| p.serves)
    }

    fn has_workload(&self, name: &str) -> bool {
        self.workload(name).is_some()
    }

    fn configure_role(
        &self,
        scenario: &Scenario,
        topology: &Topology,
        role: usize,
    ) -> Option<Result<toml::Table, Vec<OptionError>>> {
        Registry::configure_role(self, scenario, topology, role, true).map(|r| r.map(|c| c.options))
    }

    fn configure_group(
        &self,
        scenario: &Scenario,
        topology: &Topology,
        group: usize,
    ) -> Option<Result<toml::Table, Vec<OptionError>>> {
        Registry::configure_group(self, scenario, topology, group, true)
            .map(|r| r.map(|c| c.options))
    }

    fn checks(&self, scenario: &Scenario) -> Vec<CheckOptions> {
        checks_for(scenario)
            .into_iter()
            .map(|c| CheckOptions {
                name: c.name,
                validate: c.validate,
                resolve: c.resolve,
            })
            .collect()
    }

    fn factories(&self, scenario: &Scenario, topology: &Arc<Topology>) -> Vec<ProcessFactory> {
        Registry::factories(self, scenario, topology)
    }

    fn folds(
        &self,
        scenario: &Scenario,
        topology: &Arc<Topology>,
    ) -> Vec<Box<dyn crate::process::fold::Fold>> {
        Registry::folds(self, scenario, topology)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Runs every enabled check that applies to the record's scenario.
pub fn run_checks(record: &RunRecord) -> Vec<CheckResult> {
    checks_for(&record.scenario)
        .into_iter()
        .filter(|c| c.is_enabled_in(&record.scenario))
        .map(|c| (c.run)(record))
        .collect()
}

/// The usual `enabled` of a check: on unless its table says `enabled = false`.
pub fn on_unless_disabled(table: &toml::Table) -> bool {
    table
        .get("enabled")
        .and_then(toml::Value::as_bool)
        .unwrap_or(true)
}

/// The usual `validate` of a check: its table must parse as `T`.
pub fn validate_as<T: DeserializeOwned>(
    table: &toml::Table,
    _: &Scenario,
    _: &Topology,
) -> Vec<OptionError> {
    parse_options::<T>(table).err().unwrap_or_default()
}

/// A check's `validate` with rules of its own: the problems of parsing `table` as `T`, or, if
/// it parses, every problem `rules` finds in it.
pub fn validate_with<T: DeserializeOwned>(
    table: &toml::Table,
    rules: impl FnOnce(&T) -> Vec<OptionError>,
) -> Vec<OptionError> {
    match parse_options::<T>(table) {
        Ok(options) => rules(&options),
        Err(errors) => errors,
    }
}

/// One "expected a positive duration" problem for each `(key, duration)` that is zero; a
/// duration may be an `Option` (an optional bound: `None` is no problem).
pub fn zero_durations<D: Into<Option<Duration>> + Copy>(
    durations: &[(&str, D)],
) -> Vec<OptionError> {
    durations
        .iter()
        .filter(|(_, d)| (*d).into().is_some_and(|d| d.as_nanos() == 0))
        .map(|(key, _)| OptionError::at(key, "expected a positive duration"))
        .collect()
}

/// The usual `resolve` of a check: its table parsed as `T` and written back, defaults included.
pub fn resolve_as<T: DeserializeOwned + Serialize + Default>(table: &toml::Table) -> toml::Table {
    crate::family::resolved_options(&parse_or_default::<T>(table))
}

/// `table` parsed as `T`, or `T`'s defaults if it does not parse (validation reported that).
pub fn parse_or_default<T: DeserializeOwned + Default>(table: &toml::Table) -> T {
    parse_options(table).unwrap_or_default()
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
