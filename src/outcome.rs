//! One seed's outcome: a run and its checks, where a panic anywhere (simulator, protocol,
//! checker) or a run stopped at an event limit is that seed's result rather than the caller's
//! end. `faultline sweep` records one outcome per seed; `faultline shrink` judges each candidate
//! scenario by one.

use std::panic::AssertUnwindSafe;

use crate::check::run_checks;
use crate::check::signature::Signature;
use crate::family::CheckResult;
use crate::scenario::{Scenario, Verdict};
use crate::sim::{self, RunOptions, RunRecord};

/// Why a seed has no verdict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    /// The run stopped at an event limit (`sim::LimitExceeded`, said in words).
    #[error("{0}")]
    Limit(String),
    /// Something panicked; the panic's message.
    #[error("panicked: {0}")]
    Panic(String),
}

/// A checked run of one seed.
#[derive(Debug)]
pub struct Checked {
    /// The run (its trace kept as `options` asked).
    pub record: RunRecord,
    /// Every check's result, in report order.
    pub checks: Vec<CheckResult>,
}

impl Checked {
    /// The run's overall verdict.
    pub fn verdict(&self) -> Verdict {
        crate::check::overall(&self.checks)
    }

    /// The run's failure signature (`None` if it passed).
    pub fn signature(&self) -> Option<Signature> {
        Signature::of(&self.checks)
    }
}

/// Runs `scenario` at `seed` with `options` and checks it. Never panics: a panic is returned as
/// [`SeedError::Panic`] (the default panic hook still prints it unless the caller replaced the
/// hook), a run stopped at an event limit as [`SeedError::Limit`].
pub fn run_seed(
    scenario: &Scenario,
    seed: u64,
    options: &RunOptions,
) -> Result<Checked, SeedError> {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let record = sim::run(scenario, seed, options);
        if let Some(limit) = &record.limit_exceeded {
            return Err(SeedError::Limit(limit.to_string()));
        }
        let checks = run_checks(&record);
        Ok(Checked { record, checks })
    }));
    match result {
        Ok(outcome) => outcome,
        Err(panic) => Err(SeedError::Panic(panic_message(&*panic))),
    }
}

/// The message of a caught panic (defined in `sim`, which reports a process's panic with it,
/// below this module's layer).
pub use crate::sim::panic_message;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_seed_stopped_at_an_event_limit_is_a_seed_error_not_a_panic() {
        let text = "duration = \"10s\"\n[cluster]\nprotocol = \"pingpong\"\nnodes = 2\n\
                    [network]\nlatency = \"0s\"\n[workload]\nclients = 0\n";
        let scenario = Scenario::parse(Path::new("zero.toml"), text.as_bytes()).unwrap();
        match run_seed(&scenario, 1, &RunOptions::hash_only()) {
            Err(SeedError::Limit(why)) => assert!(why.contains("events_per_instant"), "{why}"),
            other => panic!("expected an event-limit error, got {other:?}"),
        }
    }

    #[test]
    fn a_failing_seed_has_a_verdict_and_a_signature() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/raft/bugs/forget-vote-on-restart.toml");
        let scenario = Scenario::load(&path).unwrap();
        let checked = run_seed(&scenario, scenario.seed, &RunOptions::hash_only()).unwrap();
        assert_eq!(checked.verdict(), Verdict::Fail);
        let signature = checked.signature().unwrap();
        assert!(
            signature.checks.contains(&"election-safety".to_string()),
            "{signature:?}"
        );
    }

    #[test]
    fn panic_messages_are_read_from_either_payload() {
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(String::from("boom")));
        assert_eq!(sim::panic_message(&*caught.unwrap_err()), "boom");
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(7u8));
        assert_eq!(
            panic_message(&*caught.unwrap_err()),
            "panic with a non-string payload"
        );
    }
}
