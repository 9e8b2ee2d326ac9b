//! `lock-bounds` (scenarios with lock clients): optional bounds on the lock family's
//! measurements ([`super::metrics`]). Like the generic `bounds` check, it runs only when the
//! scenario sets at least one bound in `[check.lock-bounds]`; every measurement is reported as a
//! metric whether bounded or not; a bound the run cannot answer makes the check `unknown`, never
//! `pass`; a failed bound makes it `fail` whatever the others say.
//!
//! | bound | measured | unknown when |
//! |---|---|---|
//! | `acquire_latency_p99_max` (duration) | the nearest-rank 99th percentile of acquisition latencies (`acquiring` to the same client's next `holding`; a client still waiting at the end counts with its wait so far) | no client began an acquisition |
//! | `notifications_per_release_max` (number) | watch notifications per hand-off (a hold that ended by release, expiry or crash); 0 without notifications | notifications but no hand-off |
//! | `dead_holder_detection_max` (duration) | the longest time from the crash of a client that held the lock to the next `holding` of another client | no holder crashed; or a crashed holder was never succeeded and the rest of the run after its crash is within the bound (if it is longer, the bound fails) |
//! | `critical_sections_per_second_min` (number) | holds ended by the client's release per simulated second | no lock client reported `acquiring` or `holding` (none was at work) |
//!
//! The herd effect (ZooKeeper's lock recipe with every waiter watching the lock's parent node)
//! fails `notifications_per_release_max = 1.5` as soon as two clients wait: each release
//! notifies every waiter, where the recipe's predecessor watch notifies one.

use serde::{Deserialize, Serialize};

use super::metrics::Measurements;
use crate::check::bounds::{Bound, conclude};
use crate::check::{self, CheckInfo, CheckResult, ms, zero_durations};
use crate::family::OptionError;
use crate::process::NodeId;
use crate::scenario::topology::Topology;
use crate::scenario::{Duration, Scenario};

/// Name of the lock-bounds check.
pub const CHECK_LOCK_BOUNDS: &str = "lock-bounds";

/// `[check.lock-bounds]` options. Every bound is optional; the check runs if at least one is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run the check when a bound is set (default true).
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
    /// Largest 99th-percentile acquisition latency (a positive duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_latency_p99_max: Option<Duration>,
    /// Most watch notifications per hand-off (a number of 0 or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications_per_release_max: Option<f64>,
    /// Longest time from a holder's crash to the next holder (a positive duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_holder_detection_max: Option<Duration>,
    /// Fewest critical sections completed per simulated second (a number of 0 or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_sections_per_second_min: Option<f64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            acquire_latency_p99_max: None,
            notifications_per_release_max: None,
            dead_holder_detection_max: None,
            critical_sections_per_second_min: None,
        }
    }
}

impl Config {
    /// True if at least one bound is set.
    pub fn any_bound(&self) -> bool {
        self.acquire_latency_p99_max.is_some()
            || self.notifications_per_release_max.is_some()
            || self.dead_holder_detection_max.is_some()
            || self.critical_sections_per_second_min.is_some()
    }

    /// Every problem with the options: numbers must be finite and 0 or more, durations
    /// positive.
    pub fn problems(&self) -> Vec<OptionError> {
        let mut out = Vec::new();
        for (key, value) in [
            (
                "notifications_per_release_max",
                self.notifications_per_release_max,
            ),
            (
                "critical_sections_per_second_min",
                self.critical_sections_per_second_min,
            ),
        ] {
            if let Some(x) = value.filter(|x| !(x.is_finite() && *x >= 0.0)) {
                out.push(OptionError::at(
                    key,
                    format!("expected a number of 0 or more, found {x}"),
                ));
            }
        }
        out.extend(zero_durations(&[
            ("acquire_latency_p99_max", self.acquire_latency_p99_max),
            ("dead_holder_detection_max", self.dead_holder_detection_max),
        ]));
        out
    }
}

fn validate(table: &toml::Table, _: &Scenario, _: &Topology) -> Vec<OptionError> {
    check::validate_with(table, Config::problems)
}

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: CHECK_LOCK_BOUNDS,
    summary: "optional bounds on lock measurements: acquisition latency p99, notifications per release (herd effect), time to detect a dead holder, critical sections per second",
    applies_to: super::has_lock_clients,
    enabled: |t| check::on_unless_disabled(t) && check::parse_or_default::<Config>(t).any_bound(),
    validate,
    resolve: check::resolve_as::<Config>,
    run: |record| {
        let config: Config = record.scenario.check_options(CHECK_LOCK_BOUNDS);
        let facts = super::facts(record);
        let m = Measurements::measure(&facts, &super::crashes(record), record.end_ns);
        lock_bounds(&config, &m, &record.topology.names)
    },
};

fn name(names: &[String], node: NodeId) -> &str {
    names.get(node.index()).map_or("?", String::as_str)
}

/// Judges `m` against the bounds of `config` (see the module docs); `names` are the node names
/// by index, for evidence. Metrics: every measurement ([`Measurements::metrics`]).
pub fn lock_bounds(config: &Config, m: &Measurements, names: &[String]) -> CheckResult {
    let mut bounds = Vec::new();
    let show_ms = |x: f64| ms(x.round() as u64);
    if let Some(max) = config.acquire_latency_p99_max {
        let what = "p99 acquisition latency";
        bounds.push(match m.acquire_latency_ns(99.0) {
            Some(p) => Bound::judge(
                &format!(
                    "{what} of {} acquisitions ({} still waiting at the end)",
                    m.acquire_latencies_ns.len(),
                    m.acquisitions_waiting
                ),
                p as f64,
                max.as_nanos() as f64,
                show_ms,
            ),
            None => Bound::unknown(what, "no client began an acquisition"),
        });
    }
    if let Some(max) = config.notifications_per_release_max {
        let what = "notifications per release";
        bounds.push(match m.notifications_per_release() {
            Some(x) => Bound::judge(
                &format!(
                    "{what} ({} notifications, {} hand-offs)",
                    m.notifications, m.handoffs
                ),
                x,
                max,
                |x| format!("{x:.2}"),
            ),
            None => Bound::unknown(
                what,
                format!(
                    "{} notifications but no hold ended, so no release to divide by",
                    m.notifications
                ),
            ),
        });
    }
    if let Some(max) = config.dead_holder_detection_max {
        bounds.push(dead_holder_bound(m, max, names));
    }
    if let Some(min) = config.critical_sections_per_second_min {
        let what = "critical sections per second";
        bounds.push(match m.critical_sections_per_second() {
            Some(x) if m.clients_active => Bound::judge_min(
                &format!(
                    "{what} ({} released holds in {})",
                    m.critical_sections,
                    ms(m.run_ns)
                ),
                x,
                min,
                |x| format!("{x:.2}"),
            ),
            _ => Bound::unknown(what, "no lock client reported acquiring or holding"),
        });
    }
    conclude(CHECK_LOCK_BOUNDS, &bounds, m.metrics())
}

/// The dead-holder bound: fails if a detection took longer than `max`, or a crashed holder was
/// never succeeded although the run went on for longer than `max` after its crash.
fn dead_holder_bound(m: &Measurements, max: Duration, names: &[String]) -> Bound {
    let what = "time to detect a dead holder";
    let max_ns = max.as_nanos();
    if m.dead_holders.is_empty() {
        return Bound::unknown(what, "no client crashed while it held the lock");
    }
    // The longest known detection, or lower bound of one (an undetected crash: the rest of the
    // run), with the holder it belongs to.
    let longest = m
        .dead_holders
        .iter()
        .map(|d| {
            let ns = d
                .detection_ns()
                .unwrap_or_else(|| m.run_ns.saturating_sub(d.crash_ns));
            (ns, d)
        })
        .max_by_key(|&(ns, d)| (ns, std::cmp::Reverse(d.crash_ns)))
        .expect("at least one dead holder");
    let (ns, d) = longest;
    let detail = match d.next {
        Some((next, at)) => format!(
            "{} crashed at {} holding token {}; {} held the lock next at {}",
            name(names, d.client),
            ms(d.crash_ns),
            d.token,
            name(names, next),
            ms(at)
        ),
        None => format!(
            "{} crashed at {} holding token {}; no other client held the lock before the end of the run at {}",
            name(names, d.client),
            ms(d.crash_ns),
            d.token,
            ms(m.run_ns)
        ),
    };
    let undetected = m.dead_holders.iter().any(|d| d.next.is_none());
    if undetected && ns <= max_ns {
        return Bound::unknown(
            what,
            format!("{detail}: the run ended within the bound {}", ms(max_ns)),
        );
    }
    let mut b = Bound::judge(
        &format!(
            "longest {what} of {} crashed holders{}",
            m.dead_holders.len(),
            if d.next.is_none() { " (at least)" } else { "" }
        ),
        ns as f64,
        max_ns as f64,
        |x| ms(x.round() as u64),
    );
    b.line.push_str(&format!(" ({detail})"));
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::lock::Observation;
    use crate::families::lock::checks::LockFact;
    use crate::families::lock::metrics::tests::{notified, released};
    use crate::scenario::Verdict;

    const C1: NodeId = NodeId(2);
    const C2: NodeId = NodeId(3);
    const C3: NodeId = NodeId(4);
    const MS: u64 = 1_000_000;

    fn names() -> Vec<String> {
        ["lock1", "disk", "c1", "c2", "c3"]
            .map(String::from)
            .to_vec()
    }

    fn config(toml_text: &str) -> Config {
        toml::from_str(toml_text).expect("valid options")
    }

    fn judge(
        text: &str,
        record: &[(u64, NodeId, Observation)],
        crashes: &[(u64, NodeId)],
    ) -> CheckResult {
        let facts: Vec<LockFact<'_>> = record.iter().map(|(t, n, o)| (*t * MS, *n, o)).collect();
        let m = Measurements::measure(&facts, crashes, 10_000 * MS);
        lock_bounds(&config(text), &m, &names())
    }

    /// Three clients queue for the lock at 0; c1 holds 0..1000 ms, c2 1000..2000, c3
    /// 2000..3000, each notified when its turn comes.
    fn queue() -> Vec<(u64, NodeId, Observation)> {
        vec![
            (0, C1, Observation::Acquiring),
            (0, C2, Observation::Acquiring),
            (0, C3, Observation::Acquiring),
            (0, C1, Observation::Holding { token: 1 }),
            (1000, C1, released(1)),
            (1000, C2, notified()),
            (1000, C2, Observation::Holding { token: 2 }),
            (2000, C2, released(2)),
            (2000, C3, notified()),
            (2000, C3, Observation::Holding { token: 3 }),
            (3000, C3, released(3)),
        ]
    }

    /// Three clients contend for 6 rounds: the holder of round k (c1, c2, c3, c1, ...) holds for
    /// 1 s, releases and at once waits again. Each release notifies the next holder only, or
    /// with `herd` both other clients (every waiter watches the lock's parent).
    fn contention(herd: bool) -> Vec<(u64, NodeId, Observation)> {
        let clients = [C1, C2, C3];
        let mut r: Vec<_> = clients
            .iter()
            .map(|&c| (0, c, Observation::Acquiring))
            .collect();
        for k in 0..6u64 {
            let (holder, next) = (clients[k as usize % 3], clients[(k as usize + 1) % 3]);
            let (start, end) = (k * 1000, (k + 1) * 1000);
            r.push((start, holder, Observation::Holding { token: k + 1 }));
            r.push((end, holder, released(k + 1)));
            r.push((end, holder, Observation::Acquiring));
            for &c in &clients {
                if c == next || (herd && c != holder) {
                    r.push((end, c, notified()));
                }
            }
        }
        r
    }

    #[test]
    fn the_check_runs_only_when_a_bound_is_set() {
        let parse = |text: &str| toml::from_str::<toml::Table>(text).expect("toml");
        assert!(!(CHECK.enabled)(&parse("")));
        assert!(!(CHECK.enabled)(&parse(
            "notifications_per_release_max = 1.5\nenabled = false"
        )));
        assert!((CHECK.enabled)(&parse(
            "notifications_per_release_max = 1.5"
        )));
    }

    #[test]
    fn herd_effect_fails_notifications_per_release_max() {
        let bound = "notifications_per_release_max = 1.5";
        let r = judge(bound, &contention(false), &[]);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["notifications_per_release"], 1.0);
        let r = judge(bound, &contention(true), &[]);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(
            r.evidence[0],
            "notifications per release (12 notifications, 6 hand-offs): 2.00 is above the bound 1.50"
        );
        // Notifications but no hold ended: nothing to divide by.
        let r = judge(bound, &[(5, C1, notified())], &[]);
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    }

    #[test]
    fn acquire_latency_p99_passes_fails_and_needs_an_acquisition() {
        // Latencies 0, 1000 and 2000 ms: p99 2000 ms.
        let r = judge("acquire_latency_p99_max = \"2s\"", &queue(), &[]);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["acquire_latency_ms_p99"], 2000.0);
        let r = judge("acquire_latency_p99_max = \"1999ms\"", &queue(), &[]);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains("2000.0ms is above the bound 1999.0ms"),
            "{:?}",
            r.evidence
        );
        let no_acquiring: Vec<_> = queue()
            .into_iter()
            .filter(|(_, _, o)| *o != Observation::Acquiring)
            .collect();
        let r = judge("acquire_latency_p99_max = \"2s\"", &no_acquiring, &[]);
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    }

    #[test]
    fn critical_sections_per_second_min_passes_fails_and_needs_clients_at_work() {
        // 3 released holds in 10 s.
        let r = judge("critical_sections_per_second_min = 0.3", &queue(), &[]);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        let r = judge("critical_sections_per_second_min = 0.31", &queue(), &[]);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains("0.30 is below the bound 0.31"),
            "{:?}",
            r.evidence
        );
        // Clients that wait forever complete nothing: 0 per second, a failure, not unknown.
        let starved = vec![(0, C1, Observation::Acquiring)];
        let r = judge("critical_sections_per_second_min = 0.1", &starved, &[]);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        let r = judge("critical_sections_per_second_min = 0.1", &[], &[]);
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    }

    #[test]
    fn dead_holder_detection_passes_fails_and_needs_a_crashed_holder() {
        // c1 holds from 0 and crashes at 500 ms; c2 holds next at 2500 ms: 2 s to detect.
        let record = vec![
            (0, C1, Observation::Holding { token: 1 }),
            (2500, C2, Observation::Holding { token: 2 }),
            (3000, C2, released(2)),
        ];
        let crash = [(500 * MS, C1)];
        let r = judge("dead_holder_detection_max = \"2s\"", &record, &crash);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        let r = judge("dead_holder_detection_max = \"1s\"", &record, &crash);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains(
                "c1 crashed at 500.0ms holding token 1; c2 held the lock next at 2500.0ms"
            ),
            "{:?}",
            r.evidence
        );
        // No holder crashed.
        let r = judge("dead_holder_detection_max = \"1s\"", &record, &[]);
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        // Never succeeded: 9.5 s of run after the crash.
        let alone = &record[..1];
        let r = judge("dead_holder_detection_max = \"9s\"", alone, &crash);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[0].contains("(at least)"), "{:?}", r.evidence);
        let r = judge("dead_holder_detection_max = \"10s\"", alone, &crash);
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    }

    #[test]
    fn a_failed_bound_outweighs_an_unknown_one_and_metrics_are_all_reported() {
        let r = judge(
            "notifications_per_release_max = 0.5\ndead_holder_detection_max = \"1s\"",
            &contention(true),
            &[],
        );
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[1].contains("unknown"), "{:?}", r.evidence);
        for key in [
            "acquire_latency_ms_p50",
            "acquire_latency_ms_p99",
            "critical_sections_per_second",
            "notifications_per_release",
            "dead_holder_detection_ms_max",
            "unsafe_writes_accepted_count",
            "fenced_write_rejections_count",
            "mutual_exclusion_violations_count",
        ] {
            assert!(
                r.metrics.contains_key(key),
                "{key} missing: {:?}",
                r.metrics
            );
        }
    }

    #[test]
    fn options_are_validated_with_their_keys() {
        assert!(Config::default().problems().is_empty());
        let bad = config(
            "notifications_per_release_max = -1\ncritical_sections_per_second_min = nan\nacquire_latency_p99_max = \"0s\"",
        );
        let keys: Vec<String> = bad
            .problems()
            .into_iter()
            .map(|e| e.path[0].clone())
            .collect();
        assert_eq!(
            keys,
            vec![
                "notifications_per_release_max",
                "critical_sections_per_second_min",
                "acquire_latency_p99_max"
            ]
        );
        assert!(
            toml::from_str::<Config>("latency_max = \"1s\"").is_err(),
            "unknown keys are errors"
        );
    }
}
