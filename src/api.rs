//! The library entry points: load a scenario with faultline's built-in families (plus any of
//! your own), run it under a seed, and check the run.
//!
//! ```no_run
//! use faultline::api::Runner;
//! let runner = Runner::builtin();
//! let scenario = runner.load("scenarios/raft/leader-isolated.toml".as_ref()).unwrap();
//! let outcome = runner.run(&scenario, scenario.seed);
//! assert_eq!(outcome.verdict, faultline::scenario::Verdict::Pass);
//! ```
//!
//! A family defined outside faultline (its processes implement [`crate::process::Process`]; its
//! registry entry is a `static` [`crate::family::Family`]) runs under the same network, faults,
//! checks and reports: `Runner::builtin().with(&MY_FAMILY)`. See `docs/architecture.md` and
//! `tests/external_family.rs`.

use std::path::Path;

use crate::check::{self, CheckResult};
use crate::family::{Family, Registry};
use crate::scenario::{Scenario, ScenarioError, Verdict, first};
use crate::sim::{self, RunOptions, RunRecord};

impl Scenario {
    /// Reads and validates a scenario file with the built-in families; the error is the first
    /// problem in the file (see [`Scenario::load_all`] for all of them). Errors name the file,
    /// line and column.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::load_all(path).map_err(first)
    }

    /// Reads and validates a scenario file with the built-in families, returning every problem
    /// found (never an empty list), in file order.
    pub fn load_all(path: &Path) -> Result<Scenario, Vec<ScenarioError>> {
        Scenario::load_all_with(path, &crate::families::builtin())
    }

    /// Parses and validates scenario text with the built-in families; `path` names it in
    /// errors. The error is the first problem in the text. Never panics, whatever the bytes.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Scenario, ScenarioError> {
        Scenario::parse_all(path, bytes).map_err(first)
    }

    /// Parses and validates scenario text with the built-in families, returning every problem.
    pub fn parse_all(path: &Path, bytes: &[u8]) -> Result<Scenario, Vec<ScenarioError>> {
        Scenario::parse_all_with(path, bytes, &crate::families::builtin())
    }
}

/// Loads, runs and checks scenarios with a set of families.
#[derive(Clone, Debug)]
pub struct Runner {
    registry: Registry,
    options: RunOptions,
}

/// What one run produced: the verdict, every check's result and the run record (trace, history,
/// observations, statistics).
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Fail if a check failed, else unknown if one could not decide, else pass.
    pub verdict: Verdict,
    /// Each check's result, in report order.
    pub checks: Vec<CheckResult>,
    /// Everything the run recorded.
    pub record: RunRecord,
}

impl Runner {
    /// A runner with faultline's built-in families and default run options (the trace kept up to
    /// its default limit).
    pub fn builtin() -> Runner {
        Runner {
            registry: crate::families::builtin(),
            options: RunOptions::default(),
        }
    }

    /// This runner plus a family of your own.
    pub fn with(&self, family: &'static Family) -> Runner {
        Runner {
            registry: self.registry.with(family),
            options: self.options.clone(),
        }
    }

    /// This runner with other run options (e.g. [`RunOptions::hash_only`] to keep no trace).
    pub fn options(mut self, options: RunOptions) -> Runner {
        self.options = options;
        self
    }

    /// The families it knows.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Reads and validates a scenario file; errors name the file, line and column.
    pub fn load(&self, path: &Path) -> Result<Scenario, Vec<ScenarioError>> {
        Scenario::load_all_with(path, &self.registry)
    }

    /// Parses and validates scenario text (`path` names it in errors).
    pub fn parse(&self, path: &Path, text: &str) -> Result<Scenario, Vec<ScenarioError>> {
        Scenario::parse_all_with(path, text.as_bytes(), &self.registry)
    }

    /// Runs a loaded scenario under `seed` and checks the run. Deterministic: the same scenario,
    /// seed and faultline version give the same outcome and `record.trace_hash`.
    pub fn run(&self, scenario: &Scenario, seed: u64) -> Outcome {
        let record = sim::run(scenario, seed, &self.options);
        let checks = check::run_checks(&record);
        Outcome {
            verdict: check::overall(&checks),
            checks,
            record,
        }
    }
}
