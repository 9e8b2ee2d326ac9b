//! A caller's view of its backends' health: active health checking, passive outlier detection
//! and the panic threshold, over the same endpoint indices as the caller's
//! [`super::strategy::Balancer`]. Pure and sans-IO: the caller sends the probes, times them out
//! and reports results with its local time.
//!
//! # The algorithms and their sources (Envoy)
//!
//! - **Active health checking** (Envoy's `HealthCheck`: `interval`, `timeout`,
//!   `unhealthy_threshold`, `healthy_threshold`): the caller probes each backend every
//!   `interval` and counts a probe unanswered within `timeout` as failed. A healthy backend
//!   becomes *unhealthy* after `unhealthy_threshold` failed probes in a row; an unhealthy one
//!   becomes healthy again after `healthy_threshold` successful probes in a row. Backends
//!   start healthy (unlike Envoy, which waits for a first passing check).
//! - **Outlier detection** (Envoy's `OutlierDetection`, consecutive 5xx): `consecutive_errors`
//!   failed requests in a row eject a backend for `base_ejection_time × k`, where `k` is the
//!   number of times it has been ejected (this one included), capped at `max_ejection_time`.
//!   At most `max_ejection_percent` of the endpoints are ejected at once, but always at least
//!   one may be (Envoy ejects one host whatever the percentage). A success resets the run of
//!   errors. The ejection ends when its time passes (seen by [`HealthTracker::tick`] or by
//!   [`HealthTracker::eligible`]); the ejection count is never forgotten (Envoy slowly lowers
//!   it while the host stays healthy; here a flapping backend keeps being ejected for longer).
//! - **Panic threshold** (Envoy's `healthy_panic_threshold`, default 50%): when the share of
//!   endpoints that are healthy (not unhealthy, not ejected) falls below
//!   `panic_threshold_percent`, the caller balances over *all* endpoints, healthy or not, and
//!   reports panic mode: sending to a possibly dead backend beats overloading the few left. 0
//!   turns panic mode off.
//!
//! Invariants: an endpoint is eligible iff it is healthy or panic mode is on; ejected endpoints
//! never number more than `max(1, ⌊n × max_ejection_percent / 100⌋)`.

use serde::{Deserialize, Serialize};

use super::HealthState;
use super::options::{check_count, nested};
use crate::families::check_duration_from;
use crate::family::OptionError;
use crate::process::NodeId;
use crate::scenario::Duration;

/// Largest `unhealthy_threshold`, `healthy_threshold` and `consecutive_errors`.
pub const MAX_THRESHOLD: u32 = 1000;

/// Active health checking (Envoy's `HealthCheck`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Time between probes of one backend (default 1s; from 1ms to 1h).
    #[serde(default = "one_second")]
    pub interval: Duration,
    /// A probe unanswered this long failed (default 500ms; from 1ms to `interval`).
    #[serde(default = "half_second")]
    pub timeout: Duration,
    /// Failed probes in a row that make a backend unhealthy (default 3; 1 to
    /// [`MAX_THRESHOLD`]).
    #[serde(default = "three")]
    pub unhealthy_threshold: u32,
    /// Passed probes in a row that make it healthy again (default 2; 1 to [`MAX_THRESHOLD`]).
    #[serde(default = "two")]
    pub healthy_threshold: u32,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn half_second() -> Duration {
    Duration::from_millis(500)
}
fn three() -> u32 {
    3
}
fn two() -> u32 {
    2
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            interval: one_second(),
            timeout: half_second(),
            unhealthy_threshold: three(),
            healthy_threshold: two(),
        }
    }
}

impl HealthCheckConfig {
    /// Every problem, each at its key: `interval` from 1ms to 1h, `timeout` from 1ms to
    /// `interval`, thresholds from 1 to [`MAX_THRESHOLD`].
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        let ms = Duration::from_millis(1);
        check_duration_from(&mut errors, "interval", self.interval, ms);
        check_duration_from(&mut errors, "timeout", self.timeout, ms);
        if self.timeout > self.interval {
            errors.push(OptionError::at(
                "timeout",
                format!(
                    "expected at most the interval ({}), found {}",
                    self.interval, self.timeout
                ),
            ));
        }
        let range = 1..=MAX_THRESHOLD;
        check_count(
            &mut errors,
            "unhealthy_threshold",
            self.unhealthy_threshold,
            range.clone(),
        );
        check_count(
            &mut errors,
            "healthy_threshold",
            self.healthy_threshold,
            range,
        );
        errors
    }
}

/// Passive outlier detection (Envoy's `OutlierDetection`, consecutive errors).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    /// Failed requests in a row that eject a backend (default 5; 1 to [`MAX_THRESHOLD`]).
    #[serde(default = "five")]
    pub consecutive_errors: u32,
    /// The first ejection's length; the k-th lasts k times it (default 30s; 1ms to 1h).
    #[serde(default = "thirty_seconds")]
    pub base_ejection_time: Duration,
    /// The longest ejection (default 300s; from `base_ejection_time` to 1h).
    #[serde(default = "three_hundred_seconds")]
    pub max_ejection_time: Duration,
    /// Most endpoints ejected at once, in percent (default 10; 0 to 100); one may always be.
    #[serde(default = "ten")]
    pub max_ejection_percent: u32,
}

fn five() -> u32 {
    5
}
fn ten() -> u32 {
    10
}
fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn three_hundred_seconds() -> Duration {
    Duration::from_secs(300)
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_errors: five(),
            base_ejection_time: thirty_seconds(),
            max_ejection_time: three_hundred_seconds(),
            max_ejection_percent: ten(),
        }
    }
}

impl OutlierConfig {
    /// Every problem, each at its key: `consecutive_errors` from 1 to [`MAX_THRESHOLD`],
    /// `base_ejection_time` from 1ms to 1h, `max_ejection_time` from `base_ejection_time` to
    /// 1h, `max_ejection_percent` from 0 to 100.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        check_count(
            &mut errors,
            "consecutive_errors",
            self.consecutive_errors,
            1..=MAX_THRESHOLD,
        );
        let ms = Duration::from_millis(1);
        check_duration_from(
            &mut errors,
            "base_ejection_time",
            self.base_ejection_time,
            ms,
        );
        check_duration_from(
            &mut errors,
            "max_ejection_time",
            self.max_ejection_time,
            self.base_ejection_time.max(ms),
        );
        check_count(
            &mut errors,
            "max_ejection_percent",
            self.max_ejection_percent,
            0..=100,
        );
        errors
    }
}

/// All of a caller's health options together, as a scenario writes them (a convenience for
/// the roles that embed them: `[health]` with optional `active` and `outlier` tables).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Active health checking; unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<HealthCheckConfig>,
    /// Outlier detection; unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier: Option<OutlierConfig>,
    /// Below this share of healthy endpoints (percent) every endpoint is eligible (default 50,
    /// Envoy's; 0 to 100, 0: never panic).
    #[serde(default = "fifty")]
    pub panic_threshold_percent: u32,
}

fn fifty() -> u32 {
    50
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            active: None,
            outlier: None,
            panic_threshold_percent: fifty(),
        }
    }
}

impl HealthConfig {
    /// Every problem, at `active.<key>`, `outlier.<key>` or `panic_threshold_percent`.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors: Vec<OptionError> = Vec::new();
        if let Some(a) = &self.active {
            errors.extend(nested("active", a.validate()));
        }
        if let Some(o) = &self.outlier {
            errors.extend(nested("outlier", o.validate()));
        }
        check_count(
            &mut errors,
            "panic_threshold_percent",
            self.panic_threshold_percent,
            0..=100,
        );
        errors
    }

    /// A tracker with these options.
    pub fn tracker(&self) -> HealthTracker {
        HealthTracker::new(
            self.active.clone(),
            self.outlier.clone(),
            self.panic_threshold_percent,
        )
    }
}

/// One endpoint's health.
#[derive(Copy, Clone, Debug)]
struct Endpoint {
    node: NodeId,
    /// Active checks: false after `unhealthy_threshold` failures in a row.
    active_healthy: bool,
    /// Probes in a row with the outcome opposite to `active_healthy`.
    probe_run: u32,
    /// Failed requests in a row.
    errors_in_row: u32,
    /// Ejected until this time.
    ejected_until: Option<u64>,
    /// Times ejected so far.
    ejections: u32,
}

impl Endpoint {
    fn new(node: NodeId) -> Self {
        Endpoint {
            node,
            active_healthy: true,
            probe_run: 0,
            errors_in_row: 0,
            ejected_until: None,
            ejections: 0,
        }
    }

    fn ejected(&self, now_ns: u64) -> bool {
        self.ejected_until.is_some_and(|t| t > now_ns)
    }

    fn state(&self, now_ns: u64) -> HealthState {
        if self.ejected(now_ns) {
            HealthState::Ejected
        } else if self.active_healthy {
            HealthState::Healthy
        } else {
            HealthState::Unhealthy
        }
    }
}

/// One caller's health view of its endpoints (see the module docs).
#[derive(Clone, Debug)]
pub struct HealthTracker {
    active: Option<HealthCheckConfig>,
    outlier: Option<OutlierConfig>,
    panic_threshold_percent: u32,
    endpoints: Vec<Endpoint>,
    /// Reused buffer for [`HealthTracker::eligible`].
    eligible: Vec<bool>,
}

impl HealthTracker {
    /// A tracker with no endpoints yet. `panic_threshold_percent` from 0 (never) to 100.
    pub fn new(
        active: Option<HealthCheckConfig>,
        outlier: Option<OutlierConfig>,
        panic_threshold_percent: u32,
    ) -> Self {
        HealthTracker {
            active,
            outlier,
            panic_threshold_percent,
            endpoints: Vec::new(),
            eligible: Vec::new(),
        }
    }

    /// Replaces the endpoint list (the same order as the balancer's). Nodes that stay keep
    /// their health, ejection and counts; new ones start healthy.
    pub fn set_endpoints(&mut self, nodes: &[NodeId]) {
        let old = std::mem::take(&mut self.endpoints);
        self.endpoints = nodes
            .iter()
            .map(|&n| {
                old.iter()
                    .find(|e| e.node == n)
                    .copied()
                    .unwrap_or_else(|| Endpoint::new(n))
            })
            .collect();
    }

    /// The health of endpoint `index` at `now_ns`.
    pub fn state(&self, index: usize, now_ns: u64) -> HealthState {
        self.endpoints[index].state(now_ns)
    }

    /// The result of an active probe of endpoint `index` (false: failed or timed out).
    /// Returns its new state if this changed it. Without active checking, nothing changes.
    pub fn probe_result(&mut self, index: usize, ok: bool, now_ns: u64) -> Option<HealthState> {
        let config = self.active.as_ref()?;
        let e = &mut self.endpoints[index];
        let before = e.state(now_ns);
        if ok == e.active_healthy {
            e.probe_run = 0;
        } else {
            e.probe_run += 1;
            let needed = if ok {
                config.healthy_threshold
            } else {
                config.unhealthy_threshold
            };
            if e.probe_run >= needed {
                e.active_healthy = ok;
                e.probe_run = 0;
            }
        }
        let after = e.state(now_ns);
        (after != before).then_some(after)
    }

    /// The result of a request to endpoint `index` (false: an error or a timeout; a rejection
    /// for overload should not be counted). Returns [`HealthState::Ejected`] if outlier
    /// detection ejected it now.
    pub fn request_result(&mut self, index: usize, ok: bool, now_ns: u64) -> Option<HealthState> {
        let config = self.outlier.as_ref()?;
        let e = &mut self.endpoints[index];
        if ok {
            e.errors_in_row = 0;
            return None;
        }
        e.errors_in_row = e.errors_in_row.saturating_add(1);
        if e.errors_in_row < config.consecutive_errors || e.ejected(now_ns) {
            return None;
        }
        let n = self.endpoints.len();
        let allowed = (n * config.max_ejection_percent as usize / 100).max(1);
        let ejected = self.endpoints.iter().filter(|e| e.ejected(now_ns)).count();
        if ejected >= allowed {
            return None;
        }
        let e = &mut self.endpoints[index];
        e.ejections = e.ejections.saturating_add(1);
        let length = config
            .base_ejection_time
            .as_nanos()
            .saturating_mul(e.ejections as u64)
            .min(config.max_ejection_time.as_nanos());
        e.ejected_until = Some(now_ns.saturating_add(length));
        e.errors_in_row = 0;
        Some(HealthState::Ejected)
    }

    /// Ends the ejections whose time has passed by `now_ns`: each such endpoint with its state
    /// now (healthy, or unhealthy if active checks failed it meanwhile). Call it often (e.g.
    /// with the probe timer); the list is empty (and unallocated) when nothing ended.
    pub fn tick(&mut self, now_ns: u64) -> Vec<(usize, HealthState)> {
        let mut ended = Vec::new();
        for (i, e) in self.endpoints.iter_mut().enumerate() {
            if e.ejected_until.is_some_and(|t| t <= now_ns) {
                e.ejected_until = None;
                ended.push((i, e.state(now_ns)));
            }
        }
        ended
    }

    /// Whether panic mode is on at `now_ns`: fewer than `panic_threshold_percent` of the
    /// endpoints are healthy.
    pub fn panic(&self, now_ns: u64) -> bool {
        let n = self.endpoints.len();
        let healthy = self
            .endpoints
            .iter()
            .filter(|e| e.state(now_ns) == HealthState::Healthy)
            .count();
        n > 0 && healthy * 100 < n * self.panic_threshold_percent as usize
    }

    /// Eligibility with the panic threshold applied: one flag per endpoint (healthy, or every
    /// endpoint in panic mode) and whether panic mode is on. The slice is a reused buffer.
    pub fn eligible(&mut self, now_ns: u64) -> (&[bool], bool) {
        let panic = self.panic(now_ns);
        self.eligible.clear();
        self.eligible.extend(
            self.endpoints
                .iter()
                .map(|e| panic || e.state(now_ns) == HealthState::Healthy),
        );
        (&self.eligible, panic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn nodes(n: u32) -> Vec<NodeId> {
        (0..n).map(NodeId).collect()
    }

    fn tracker(n: u32, panic: u32) -> HealthTracker {
        let mut t = HealthConfig {
            active: Some(HealthCheckConfig::default()),
            outlier: Some(OutlierConfig::default()),
            panic_threshold_percent: panic,
        }
        .tracker();
        t.set_endpoints(&nodes(n));
        t
    }

    #[test]
    fn active_checks_need_threshold_runs_to_change_health() {
        let mut t = tracker(4, 0);
        assert_eq!(t.probe_result(0, false, 0), None);
        assert_eq!(t.probe_result(0, false, 0), None);
        assert_eq!(t.probe_result(0, true, 0), None, "a pass breaks the run");
        assert_eq!(t.probe_result(0, false, 0), None);
        assert_eq!(t.probe_result(0, false, 0), None);
        assert_eq!(t.probe_result(0, false, 0), Some(HealthState::Unhealthy));
        assert_eq!(t.eligible(0).0, &[false, true, true, true]);
        assert_eq!(t.probe_result(0, true, 0), None);
        assert_eq!(t.probe_result(0, true, 0), Some(HealthState::Healthy));
    }

    #[test]
    fn outlier_detection_ejects_for_growing_capped_times() {
        let mut t = tracker(10, 0);
        let mut now = 0;
        let mut lengths = Vec::new();
        for _ in 0..12 {
            for k in 0..4 {
                assert_eq!(t.request_result(0, false, now + k), None);
            }
            assert_eq!(
                t.request_result(0, false, now + 4),
                Some(HealthState::Ejected)
            );
            assert_eq!(t.state(0, now + 4), HealthState::Ejected);
            let until = t.endpoints[0].ejected_until.unwrap();
            lengths.push((until - now - 4) / S);
            assert!(t.tick(until - 1).is_empty());
            assert_eq!(t.tick(until), vec![(0, HealthState::Healthy)]);
            now = until;
        }
        assert_eq!(
            lengths,
            [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300]
        );
    }

    #[test]
    fn a_success_resets_the_run_of_errors() {
        let mut t = tracker(10, 0);
        for _ in 0..4 {
            t.request_result(1, false, 0);
        }
        t.request_result(1, true, 0);
        for _ in 0..4 {
            assert_eq!(t.request_result(1, false, 0), None);
        }
    }

    #[test]
    fn at_most_max_ejection_percent_are_ejected_but_always_one() {
        // 10% of 10 = 1: the second outlier stays in.
        let mut t = tracker(10, 0);
        for _ in 0..5 {
            t.request_result(0, false, 0);
        }
        for _ in 0..5 {
            assert_eq!(t.request_result(1, false, 0), None);
        }
        assert_eq!(t.state(1, 0), HealthState::Healthy);
        // 10% of 3 rounds to 0, yet one may be ejected.
        let mut t = tracker(3, 0);
        for _ in 0..5 {
            t.request_result(2, false, 0);
        }
        assert_eq!(t.state(2, 0), HealthState::Ejected);
        // 50% of 4 = 2.
        let mut t = HealthTracker::new(
            None,
            Some(OutlierConfig {
                max_ejection_percent: 50,
                ..OutlierConfig::default()
            }),
            0,
        );
        t.set_endpoints(&nodes(4));
        for i in 0..4 {
            for _ in 0..5 {
                t.request_result(i, false, 0);
            }
        }
        let ejected = (0..4)
            .filter(|&i| t.state(i, 0) == HealthState::Ejected)
            .count();
        assert_eq!(ejected, 2);
    }

    #[test]
    fn panic_threshold_makes_every_endpoint_eligible() {
        let mut t = tracker(4, 50);
        for _ in 0..3 {
            t.probe_result(0, false, 0);
        }
        // 3 of 4 healthy (75% >= 50%): no panic.
        assert_eq!(t.eligible(0), (&[false, true, true, true][..], false));
        for _ in 0..3 {
            t.probe_result(1, false, 0);
        }
        // 2 of 4 (50%): still no panic; one more and it is 25%.
        assert!(!t.eligible(0).1);
        for _ in 0..3 {
            t.probe_result(2, false, 0);
        }
        assert_eq!(t.eligible(0), (&[true, true, true, true][..], true));
        // Threshold 0: never.
        let mut t = tracker(2, 0);
        for i in 0..2 {
            for _ in 0..3 {
                t.probe_result(i, false, 0);
            }
        }
        assert_eq!(t.eligible(0), (&[false, false][..], false));
    }

    #[test]
    fn endpoints_that_stay_keep_their_health() {
        let mut t = tracker(3, 0);
        for _ in 0..3 {
            t.probe_result(2, false, 0);
        }
        t.set_endpoints(&[NodeId(2), NodeId(7)]);
        assert_eq!(t.state(0, 0), HealthState::Unhealthy);
        assert_eq!(t.state(1, 0), HealthState::Healthy);
    }

    #[test]
    fn health_options_parse_and_validate_at_their_keys() {
        let c: HealthConfig = toml::from_str(
            "panic_threshold_percent = 30\n[active]\ninterval = \"2s\"\n[outlier]\nconsecutive_errors = 3",
        )
        .unwrap();
        assert_eq!(
            c.active.as_ref().unwrap().timeout,
            Duration::from_millis(500)
        );
        assert_eq!(c.outlier.as_ref().unwrap().consecutive_errors, 3);
        assert!(c.validate().is_empty());
        assert!(toml::from_str::<HealthConfig>("[active]\nintervl = \"1s\"").is_err());
        let bad = HealthConfig {
            active: Some(HealthCheckConfig {
                timeout: Duration::from_secs(2),
                healthy_threshold: 0,
                ..HealthCheckConfig::default()
            }),
            outlier: Some(OutlierConfig {
                max_ejection_time: Duration::from_secs(1),
                max_ejection_percent: 101,
                ..OutlierConfig::default()
            }),
            panic_threshold_percent: 200,
        };
        let keys: Vec<String> = bad.validate().iter().map(|e| e.path.join(".")).collect();
        assert_eq!(
            keys,
            [
                "active.timeout",
                "active.healthy_threshold",
                "outlier.max_ejection_time",
                "outlier.max_ejection_percent",
                "panic_threshold_percent"
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn ejections_never_exceed_the_allowed_share(
            events in proptest::collection::vec((0usize..10, proptest::bool::weighted(0.8), 0u64..5), 1..400),
            percent in 0u32..=100,
        ) {
            let mut t = HealthTracker::new(None, Some(OutlierConfig {
                consecutive_errors: 2,
                base_ejection_time: Duration::from_secs(3),
                max_ejection_time: Duration::from_secs(10),
                max_ejection_percent: percent,
            }), 0);
            t.set_endpoints(&nodes(10));
            let allowed = (10 * percent as usize / 100).max(1);
            let mut now = 0;
            for (i, fail, dt) in events {
                now += dt * S;
                t.tick(now);
                t.request_result(i, !fail, now);
                let ejected = (0..10).filter(|&k| t.state(k, now) == HealthState::Ejected).count();
                proptest::prop_assert!(ejected <= allowed);
                let (eligible, _) = t.eligible(now);
                proptest::prop_assert_eq!(eligible.iter().filter(|&&e| !e).count(), ejected);
            }
        }
    }
}
