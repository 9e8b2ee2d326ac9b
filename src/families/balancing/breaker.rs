//! The circuit breaker (Nygard, *Release It!*; Hystrix; resilience4j's `CircuitBreaker`), one
//! per (caller, backend). Pure and sans-IO: the caller asks before each request and reports
//! each result with its local time.
//!
//! # The state machine
//!
//! - **Closed**: every request passes; results are counted. The breaker *trips* to open on
//!   `failures` failed results in a row (`consecutive-failures`), or (`failure-rate`) once the
//!   sliding `window` ([`super::window::WindowCount`], resilience4j's time-based window) holds at
//!   least `min_requests` results of which a share of at least `rate` failed.
//! - **Open**: every request is refused (fails fast) for `open_duration`; results of requests
//!   sent before it opened are ignored.
//! - **Half-open**: after `open_duration`, the next request moves the breaker to half-open.
//!   Up to `half_open_probes` requests are let through as probes (resilience4j's
//!   `permittedNumberOfCallsInHalfOpenState`); others are refused. If every probe succeeds the
//!   breaker closes (counts cleared); any failed probe reopens it for another `open_duration`.
//!
//! Invariant: in half-open no more than `half_open_probes` requests are admitted before the
//! breaker closes or reopens.
//!
//! A caller SHOULD report only the results of the requests it was allowed: a result that
//! arrives in half-open is taken as a probe's.
//!
//! # Planted bug
//!
//! - `half-open-admits-all`: half-open admits every request, flooding the recovering backend
//!   with the whole load the moment the open duration ends.

use serde::{Deserialize, Serialize};

use super::BreakerState;
use super::options::{check_count, nested};
use super::window::WindowCount;
use crate::families::check_duration_from;
use crate::family::OptionError;
use crate::scenario::Duration;

/// Largest `failures`, `min_requests` and `half_open_probes`.
pub const MAX_BREAKER_COUNT: u32 = 100_000;

/// What trips a closed breaker. Written as a table with a `kind`:
/// `trip = { kind = "consecutive-failures", failures = 5 }` or
/// `trip = { kind = "failure-rate", rate = 0.5, min_requests = 20, window = "10s" }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Trip {
    /// This many failed results in a row (1 to [`MAX_BREAKER_COUNT`]).
    ConsecutiveFailures {
        /// Failures in a row that trip it.
        failures: u32,
    },
    /// A failure share over a sliding window.
    FailureRate {
        /// Share of failed results that trips it (in (0, 1]).
        rate: f64,
        /// Results the window must hold before the rate counts (1 to
        /// [`MAX_BREAKER_COUNT`]).
        min_requests: u32,
        /// The sliding window (10ms to 1h).
        window: Duration,
    },
}

impl Default for Trip {
    fn default() -> Self {
        Trip::ConsecutiveFailures { failures: 5 }
    }
}

/// Planted bugs of the breaker (`bugs = [...]`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerBug {
    /// Half-open admits every request, not just the probes.
    HalfOpenAdmitsAll,
}

/// Options of a circuit breaker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// What trips it (default 5 consecutive failures).
    #[serde(default)]
    pub trip: Trip,
    /// Time open before probing (default 5s; 1ms to 1h).
    #[serde(default = "default_open")]
    pub open_duration: Duration,
    /// Probes let through in half-open, all of which must succeed to close (default 1; 1 to
    /// [`MAX_BREAKER_COUNT`]).
    #[serde(default = "one")]
    pub half_open_probes: u32,
    /// Planted bugs to switch on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<BreakerBug>,
}

fn default_open() -> Duration {
    Duration::from_secs(5)
}
fn one() -> u32 {
    1
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            trip: Trip::default(),
            open_duration: default_open(),
            half_open_probes: one(),
            bugs: Vec::new(),
        }
    }
}

impl BreakerConfig {
    /// Every problem, each at its key (`trip.<key>` for the trip's); the limits are in the
    /// field docs.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        let mut trip = Vec::new();
        match &self.trip {
            Trip::ConsecutiveFailures { failures } => {
                check_count(&mut trip, "failures", *failures, 1..=MAX_BREAKER_COUNT);
            }
            Trip::FailureRate {
                rate,
                min_requests,
                window,
            } => {
                if !(*rate > 0.0 && *rate <= 1.0) {
                    trip.push(OptionError::at(
                        "rate",
                        format!("expected a share in (0, 1], found {rate}"),
                    ));
                }
                check_count(
                    &mut trip,
                    "min_requests",
                    *min_requests,
                    1..=MAX_BREAKER_COUNT,
                );
                check_duration_from(&mut trip, "window", *window, Duration::from_millis(10));
            }
        }
        errors.extend(nested("trip", trip));
        check_duration_from(
            &mut errors,
            "open_duration",
            self.open_duration,
            Duration::from_millis(1),
        );
        check_count(
            &mut errors,
            "half_open_probes",
            self.half_open_probes,
            1..=MAX_BREAKER_COUNT,
        );
        errors
    }
}

/// A state change: (from, to).
pub type Transition = (BreakerState, BreakerState);

/// One circuit breaker (see the module docs).
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    /// Failed results in a row (closed).
    failures_in_row: u32,
    /// Results and failures in the window (failure-rate trip).
    results: WindowCount,
    failures: WindowCount,
    /// When it last opened.
    opened_at: u64,
    /// Probes admitted in this half-open period, and how many succeeded.
    probes_admitted: u32,
    probes_succeeded: u32,
    admits_all: bool,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: &BreakerConfig) -> Self {
        let window = match config.trip {
            Trip::FailureRate { window, .. } => window.as_nanos(),
            Trip::ConsecutiveFailures { .. } => 1,
        };
        CircuitBreaker {
            config: config.clone(),
            state: BreakerState::Closed,
            failures_in_row: 0,
            results: WindowCount::new(window),
            failures: WindowCount::new(window),
            opened_at: 0,
            probes_admitted: 0,
            probes_succeeded: 0,
            admits_all: config.bugs.contains(&BreakerBug::HalfOpenAdmitsAll),
        }
    }

    /// The current state (an open breaker whose time is up stays open until the next
    /// [`CircuitBreaker::allow`]).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    fn move_to(&mut self, to: BreakerState, now_ns: u64) -> Option<Transition> {
        let from = self.state;
        self.state = to;
        self.failures_in_row = 0;
        self.probes_admitted = 0;
        self.probes_succeeded = 0;
        match to {
            BreakerState::Open => self.opened_at = now_ns,
            BreakerState::Closed => {
                self.results.clear();
                self.failures.clear();
            }
            BreakerState::HalfOpen => {}
        }
        Some((from, to))
    }

    /// May a request go at `now_ns`? (admitted, the state change this caused: open ->
    /// half-open once the open duration has passed). An admitted half-open request is a probe.
    pub fn allow(&mut self, now_ns: u64) -> (bool, Option<Transition>) {
        let mut change = None;
        if self.state == BreakerState::Open
            && now_ns
                >= self
                    .opened_at
                    .saturating_add(self.config.open_duration.as_nanos())
        {
            change = self.move_to(BreakerState::HalfOpen, now_ns);
        }
        let admitted = match self.state {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                if self.admits_all || self.probes_admitted < self.config.half_open_probes {
                    self.probes_admitted = self.probes_admitted.saturating_add(1);
                    true
                } else {
                    false
                }
            }
        };
        (admitted, change)
    }

    /// The result of an admitted request (false: an error or a timeout). Returns the state
    /// change it caused: closed -> open (tripped), half-open -> open (a probe failed) or
    /// half-open -> closed (every probe succeeded).
    pub fn on_result(&mut self, ok: bool, now_ns: u64) -> Option<Transition> {
        match self.state {
            BreakerState::Open => None,
            BreakerState::HalfOpen => {
                if !ok {
                    return self.move_to(BreakerState::Open, now_ns);
                }
                self.probes_succeeded += 1;
                if self.probes_succeeded >= self.config.half_open_probes {
                    self.move_to(BreakerState::Closed, now_ns)
                } else {
                    None
                }
            }
            BreakerState::Closed => {
                let tripped = match self.config.trip {
                    Trip::ConsecutiveFailures { failures } => {
                        self.failures_in_row = if ok { 0 } else { self.failures_in_row + 1 };
                        self.failures_in_row >= failures
                    }
                    Trip::FailureRate {
                        rate, min_requests, ..
                    } => {
                        self.results.add(now_ns, 1);
                        self.failures.add(now_ns, u64::from(!ok));
                        let results = self.results.sum(now_ns);
                        let failures = self.failures.sum(now_ns);
                        results >= min_requests as u64 && failures as f64 >= rate * results as f64
                    }
                };
                if tripped {
                    self.move_to(BreakerState::Open, now_ns)
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BreakerState::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    fn breaker(probes: u32, bugs: Vec<BreakerBug>) -> CircuitBreaker {
        CircuitBreaker::new(&BreakerConfig {
            trip: Trip::ConsecutiveFailures { failures: 3 },
            open_duration: Duration::from_secs(5),
            half_open_probes: probes,
            bugs,
        })
    }

    #[test]
    fn consecutive_failures_trip_and_a_success_resets_the_run() {
        let mut b = breaker(1, vec![]);
        assert_eq!(b.on_result(false, 0), None);
        assert_eq!(b.on_result(false, 0), None);
        assert_eq!(b.on_result(true, 0), None);
        assert_eq!(b.on_result(false, 0), None);
        assert_eq!(b.on_result(false, 0), None);
        assert_eq!(b.on_result(false, S), Some((Closed, Open)));
        assert_eq!(b.allow(S), (false, None));
        assert_eq!(b.allow(6 * S - 1), (false, None));
        assert_eq!(
            b.on_result(true, 2 * S),
            None,
            "results while open are ignored"
        );
        assert_eq!(b.allow(6 * S), (true, Some((Open, HalfOpen))));
    }

    #[test]
    fn half_open_admits_only_its_probes_and_closes_when_all_succeed() {
        let mut b = breaker(2, vec![]);
        for _ in 0..3 {
            b.on_result(false, 0);
        }
        assert_eq!(b.allow(5 * S), (true, Some((Open, HalfOpen))));
        assert_eq!(b.allow(5 * S), (true, None));
        assert_eq!(b.allow(5 * S), (false, None), "two probes only");
        assert_eq!(b.on_result(true, 5 * S), None);
        assert_eq!(b.on_result(true, 5 * S), Some((HalfOpen, Closed)));
        assert_eq!(b.allow(5 * S), (true, None));
    }

    #[test]
    fn a_failed_probe_reopens_for_another_open_duration() {
        let mut b = breaker(2, vec![]);
        for _ in 0..3 {
            b.on_result(false, 0);
        }
        b.allow(5 * S);
        b.allow(5 * S);
        assert_eq!(b.on_result(true, 6 * S), None);
        assert_eq!(b.on_result(false, 6 * S), Some((HalfOpen, Open)));
        assert_eq!(b.allow(10 * S), (false, None));
        assert_eq!(b.allow(11 * S), (true, Some((Open, HalfOpen))));
    }

    #[test]
    fn half_open_admits_all_bug_floods_the_recovering_backend() {
        let mut b = breaker(1, vec![BreakerBug::HalfOpenAdmitsAll]);
        for _ in 0..3 {
            b.on_result(false, 0);
        }
        b.allow(5 * S);
        assert!((0..100).all(|_| b.allow(5 * S).0));
    }

    #[test]
    fn failure_rate_trips_only_with_enough_requests_in_the_window() {
        let mut b = CircuitBreaker::new(&BreakerConfig {
            trip: Trip::FailureRate {
                rate: 0.5,
                min_requests: 10,
                window: Duration::from_secs(10),
            },
            ..BreakerConfig::default()
        });
        // 9 failures: not enough requests yet.
        for _ in 0..9 {
            assert_eq!(b.on_result(false, 0), None);
        }
        // The window forgets them; then 6 ok, 4 failed: 40% < 50%.
        for ok in [true, true, true, true, true, true, false, false, false] {
            assert_eq!(b.on_result(ok, 20 * S), None);
        }
        assert_eq!(b.on_result(false, 20 * S), None);
        // One more failure: 5 of 11 (45%); another: 6 of 12 (50%) trips.
        assert_eq!(b.on_result(false, 20 * S), None);
        assert_eq!(b.on_result(false, 20 * S), Some((Closed, Open)));
    }

    #[test]
    fn breaker_options_parse_trip_tables_and_validate_at_their_keys() {
        let c: BreakerConfig = toml::from_str(
            "open_duration = \"2s\"\nbugs = [\"half-open-admits-all\"]\ntrip = { kind = \"failure-rate\", rate = 0.5, min_requests = 20, window = \"10s\" }",
        )
        .unwrap();
        assert!(matches!(
            c.trip,
            Trip::FailureRate {
                min_requests: 20,
                ..
            }
        ));
        assert!(c.validate().is_empty());
        let c: BreakerConfig = toml::from_str("").unwrap();
        assert_eq!(c, BreakerConfig::default());
        assert!(
            toml::from_str::<BreakerConfig>(
                "trip = { kind = \"consecutive-failures\", failures = 3, rate = 1.0 }"
            )
            .is_err()
        );
        assert!(toml::from_str::<BreakerConfig>("probes = 3").is_err());
        let bad = BreakerConfig {
            trip: Trip::FailureRate {
                rate: 0.0,
                min_requests: 0,
                window: Duration(0),
            },
            open_duration: Duration(0),
            half_open_probes: 0,
            bugs: vec![],
        };
        let keys: Vec<String> = bad.validate().iter().map(|e| e.path.join(".")).collect();
        assert_eq!(
            keys,
            [
                "trip.rate",
                "trip.min_requests",
                "trip.window",
                "open_duration",
                "half_open_probes"
            ]
        );
    }

    proptest! {
        /// The state machine against a model: transitions only along the allowed edges, open
        /// refuses everything before its time, half-open admits at most its probes.
        #[test]
        fn breaker_follows_its_state_machine(
            ops in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u64..3000), 1..300),
            probes in 1u32..4,
        ) {
            let mut b = breaker(probes, vec![]);
            let mut now = 0u64;
            let mut admitted_in_half_open = 0;
            for (is_allow, ok, dt) in ops {
                now += dt * 1_000_000;
                let before = b.state();
                let change = if is_allow {
                    let (admitted, change) = b.allow(now);
                    if before == Open && change.is_none() {
                        prop_assert!(!admitted);
                    }
                    if b.state() == HalfOpen {
                        if change.is_some() { admitted_in_half_open = 0; }
                        if admitted { admitted_in_half_open += 1; }
                        prop_assert!(admitted_in_half_open <= probes);
                    }
                    if b.state() == Closed { prop_assert!(admitted); }
                    change
                } else {
                    b.on_result(ok, now)
                };
                if let Some((from, to)) = change {
                    prop_assert_eq!(from, before);
                    prop_assert_eq!(to, b.state());
                    let edge = matches!((from, to),
                        (Closed, Open) | (Open, HalfOpen) | (HalfOpen, Open) | (HalfOpen, Closed));
                    prop_assert!(edge, "{:?} -> {:?}", from, to);
                    if (from, to) == (HalfOpen, Closed) { prop_assert!(ok); }
                    if to == Open { prop_assert!(!ok); }
                } else {
                    prop_assert_eq!(before, b.state());
                }
            }
        }
    }
}
