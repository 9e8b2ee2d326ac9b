//! The lock family's measurements of a run: how safe, how fast and how chatty a lock design was.
//! Pure functions of the run's lock observations (`(t_ns, node, &Observation)` in record order,
//! as the checks read them) and the run's crashes, so they work for every lock design whose
//! clients report `acquiring`, `holding` and `stopped-holding` and whose storage reports
//! `write-accepted` and `write-refused`.
//!
//! Every lock run reports them as metrics of the `mutual-exclusion` check (and of `lock-bounds`,
//! which bounds some of them). Times are global simulated time. A client's *holds* are its
//! beliefs as the `mutual-exclusion` check defines them ([`super::checks`]): from its `holding`
//! to its `stopped-holding`, its crash, its next `holding`, or the end of the run.
//!
//! | metric | definition |
//! |---|---|
//! | `mutual_exclusion_violations_count` | pairs of holds of different clients that overlap in global time (the `mutual-exclusion` check's overlaps; its evidence names the two holders and the interval) |
//! | `fenced_write_rejections_count` | `write-refused` facts: writes the storage refused for a stale token (fencing at work) |
//! | `unsafe_writes_accepted_count` | `write-accepted` facts whose token is lower than a token that storage had accepted before, or equal to it from another client (a reused token): the writes fencing should have refused, as `fenced-writes` counts them. A stale write that reaches the storage before the new holder's first write is not counted (no storage can tell; `mutual_exclusion_violations_count` counts the overlap) |
//! | `acquisitions_count` | acquisitions that ended in a hold: a client's `acquiring` followed by its next `holding`, with no crash of that client between them |
//! | `acquisitions_waiting_count` | acquisitions still waiting at the end of the run (their wait so far is counted in the latency) |
//! | `acquisitions_abandoned_count` | acquisitions that ended without a hold: the client crashed, or began a new acquisition (it restarted) |
//! | `acquire_latency_ms_p50`, `acquire_latency_ms_p99` | nearest-rank percentiles of the latencies `holding - acquiring` of completed acquisitions, together with the waits so far (`end of run - acquiring`) of those still waiting: a client starved to the end counts with its whole wait; `null` when there is none |
//! | `critical_sections_count` | holds that ended with the client's release (`stopped-holding` with `released`) |
//! | `critical_sections_per_second` | `critical_sections_count` divided by the run's simulated duration in seconds |
//! | `notifications_count` | `notified` facts: watch notifications clients received |
//! | `handoffs_count` | holds that ended before the end of the run (by release, validity or session expiry, a crash, or a newer hold of the same client): each time the lock passed on |
//! | `notifications_per_release` | `notifications_count / handoffs_count`; `0` when there is no notification; `null` when there are notifications but no hand-off. The herd effect shows as one notification per waiter per release |
//! | `dead_holders_count` | holds ended by the client's crash (a client crashed while it believed it held the lock) |
//! | `dead_holders_undetected_count` | of those, the ones after which no other client held the lock before the end of the run |
//! | `dead_holder_detection_ms_max`, `dead_holder_detection_ms_mean` | over the dead holders that were detected: from the crash to the next `holding` of another client (the lease, session or TTL expiry plus the hand-off); `null` when no holder crashed (or none was detected) |
//!
//! A client that stops acquiring at its `stop` time in the middle of an acquisition reports
//! nothing more, so that acquisition counts as waiting until the end of the run.

use std::collections::BTreeMap;

use super::checks::{Belief, LockFact, beliefs, overlapping, tally_writes};
use super::{Observation, StopReason};
use crate::check::bounds::percentile;
use crate::process::NodeId;

/// A client that crashed while it held the lock, and who held it next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadHolder {
    /// The crashed holder.
    pub client: NodeId,
    /// Its token.
    pub token: u64,
    /// When it crashed, in global nanoseconds.
    pub crash_ns: u64,
    /// The next other client to hold the lock, and when (global nanoseconds); `None` if nobody
    /// did before the end of the run.
    pub next: Option<(NodeId, u64)>,
}

impl DeadHolder {
    /// Crash to the next holder, in nanoseconds (`None`: undetected).
    pub fn detection_ns(&self) -> Option<u64> {
        self.next.map(|(_, at)| at - self.crash_ns)
    }
}

/// The measurements of one run (see the module docs for each definition).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurements {
    /// The run's simulated duration, in nanoseconds.
    pub run_ns: u64,
    /// Overlapping pairs of holds of different clients.
    pub mutual_exclusion_violations: usize,
    /// Writes the storage refused for a stale token.
    pub fenced_write_rejections: usize,
    /// Writes accepted with a token below (or, from another client, equal to) one accepted
    /// before.
    pub unsafe_writes_accepted: usize,
    /// Latencies of completed acquisitions, then waits so far of the acquisitions still waiting
    /// at the end, in nanoseconds, sorted.
    pub acquire_latencies_ns: Vec<u64>,
    /// Acquisitions that ended in a hold.
    pub acquisitions: usize,
    /// Acquisitions still waiting at the end of the run.
    pub acquisitions_waiting: usize,
    /// Acquisitions that ended without a hold (crash or restart).
    pub acquisitions_abandoned: usize,
    /// Holds ended by the client's release.
    pub critical_sections: usize,
    /// Watch notifications received.
    pub notifications: usize,
    /// Holds that ended before the end of the run.
    pub handoffs: usize,
    /// Holders that crashed while holding, in crash order.
    pub dead_holders: Vec<DeadHolder>,
    /// True if any client reported `acquiring` or `holding`: the run had lock clients at work.
    pub clients_active: bool,
}

impl Measurements {
    /// Measures a run: `facts` are its lock observations in record order, `crashes` the
    /// (global ns, node) of every crash, `end_ns` the end of the run.
    pub fn measure(facts: &[LockFact<'_>], crashes: &[(u64, NodeId)], end_ns: u64) -> Self {
        let holds = beliefs(facts, crashes, end_ns);
        let writes = tally_writes(facts);
        let mut m = Measurements {
            run_ns: end_ns,
            mutual_exclusion_violations: overlapping(&holds).len(),
            fenced_write_rejections: writes.refused,
            unsafe_writes_accepted: writes.unsafe_accepts.len(),
            ..Measurements::default()
        };
        m.measure_acquisitions(facts, crashes, end_ns);
        m.critical_sections = holds
            .iter()
            .filter(|b| b.why == Some(StopReason::Released))
            .count();
        m.handoffs = holds
            .iter()
            .filter(|b| b.why.is_some() || b.end_ns < end_ns)
            .count();
        m.notifications = facts
            .iter()
            .filter(|(_, _, o)| matches!(o, Observation::Notified { .. }))
            .count();
        m.dead_holders = dead_holders(&holds);
        m
    }

    fn measure_acquisitions(
        &mut self,
        facts: &[LockFact<'_>],
        crashes: &[(u64, NodeId)],
        end_ns: u64,
    ) {
        // Per client: when its acquisition under way began.
        let mut waiting: BTreeMap<NodeId, u64> = BTreeMap::new();
        let crashed_between = |node: NodeId, from: u64, to: u64| {
            crashes
                .iter()
                .any(|&(t, n)| n == node && t >= from && t <= to)
        };
        for &(t, node, o) in facts {
            match o {
                Observation::Acquiring => {
                    self.clients_active = true;
                    if waiting.insert(node, t).is_some() {
                        self.acquisitions_abandoned += 1;
                    }
                }
                Observation::Holding { .. } => {
                    self.clients_active = true;
                    if let Some(start) = waiting.remove(&node) {
                        if crashed_between(node, start, t) {
                            self.acquisitions_abandoned += 1;
                        } else {
                            self.acquisitions += 1;
                            self.acquire_latencies_ns.push(t - start);
                        }
                    }
                }
                _ => {}
            }
        }
        for (node, start) in waiting {
            if crashed_between(node, start, end_ns) {
                self.acquisitions_abandoned += 1;
            } else {
                self.acquisitions_waiting += 1;
                self.acquire_latencies_ns.push(end_ns.saturating_sub(start));
            }
        }
        self.acquire_latencies_ns.sort_unstable();
    }

    /// The nearest-rank `p`-th percentile acquisition latency in nanoseconds (waits of the
    /// acquisitions still waiting at the end included); `None` without any acquisition.
    pub fn acquire_latency_ns(&self, p: f64) -> Option<u64> {
        percentile(&self.acquire_latencies_ns, p)
    }

    /// Critical sections completed per simulated second; `None` for a run of no duration.
    pub fn critical_sections_per_second(&self) -> Option<f64> {
        (self.run_ns > 0).then(|| self.critical_sections as f64 / (self.run_ns as f64 / 1e9))
    }

    /// Notifications per hand-off: 0 without notifications, `None` with notifications but no
    /// hand-off.
    pub fn notifications_per_release(&self) -> Option<f64> {
        match (self.notifications, self.handoffs) {
            (0, _) => Some(0.0),
            (_, 0) => None,
            (n, h) => Some(n as f64 / h as f64),
        }
    }

    /// Detection times of the detected dead holders, in nanoseconds.
    fn detections_ns(&self) -> impl Iterator<Item = u64> + '_ {
        self.dead_holders
            .iter()
            .filter_map(DeadHolder::detection_ns)
    }

    /// The longest crash-to-next-holder time, in nanoseconds (`None`: none detected).
    pub fn dead_holder_detection_ns_max(&self) -> Option<u64> {
        self.detections_ns().max()
    }

    /// The mean crash-to-next-holder time, in nanoseconds (`None`: none detected).
    pub fn dead_holder_detection_ns_mean(&self) -> Option<f64> {
        let (n, sum) = self
            .detections_ns()
            .fold((0u64, 0f64), |(n, s), d| (n + 1, s + d as f64));
        (n > 0).then(|| sum / n as f64)
    }

    /// The metrics (see the module docs), by name with unit suffix; durations in ms.
    pub fn metrics(&self) -> BTreeMap<String, serde_json::Value> {
        let ms = |ns: Option<f64>| ns.map(|x| x / 1e6);
        let undetected = self
            .dead_holders
            .iter()
            .filter(|d| d.next.is_none())
            .count();
        let mut m: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        let mut put = |k: &str, v: serde_json::Value| {
            m.insert(k.to_string(), v);
        };
        put(
            "mutual_exclusion_violations_count",
            self.mutual_exclusion_violations.into(),
        );
        put(
            "fenced_write_rejections_count",
            self.fenced_write_rejections.into(),
        );
        put(
            "unsafe_writes_accepted_count",
            self.unsafe_writes_accepted.into(),
        );
        put("acquisitions_count", self.acquisitions.into());
        put(
            "acquisitions_waiting_count",
            self.acquisitions_waiting.into(),
        );
        put(
            "acquisitions_abandoned_count",
            self.acquisitions_abandoned.into(),
        );
        for (name, p) in [
            ("acquire_latency_ms_p50", 50.0),
            ("acquire_latency_ms_p99", 99.0),
        ] {
            put(
                name,
                ms(self.acquire_latency_ns(p).map(|x| x as f64)).into(),
            );
        }
        put("critical_sections_count", self.critical_sections.into());
        put(
            "critical_sections_per_second",
            self.critical_sections_per_second().into(),
        );
        put("notifications_count", self.notifications.into());
        put("handoffs_count", self.handoffs.into());
        put(
            "notifications_per_release",
            self.notifications_per_release().into(),
        );
        put("dead_holders_count", self.dead_holders.len().into());
        put("dead_holders_undetected_count", undetected.into());
        put(
            "dead_holder_detection_ms_max",
            ms(self.dead_holder_detection_ns_max().map(|x| x as f64)).into(),
        );
        put(
            "dead_holder_detection_ms_mean",
            ms(self.dead_holder_detection_ns_mean()).into(),
        );
        m
    }
}

/// Holds ended by a crash, each with the next hold of another client that began at or after
/// the crash. `holds` are sorted by start.
fn dead_holders(holds: &[Belief]) -> Vec<DeadHolder> {
    let mut dead: Vec<DeadHolder> = holds
        .iter()
        .filter(|b| b.why == Some(StopReason::Crashed))
        .map(|b| DeadHolder {
            client: b.client,
            token: b.token,
            crash_ns: b.end_ns,
            next: holds
                .iter()
                .find(|n| n.client != b.client && n.start_ns >= b.end_ns)
                .map(|n| (n.client, n.start_ns)),
        })
        .collect();
    dead.sort_by_key(|d| (d.crash_ns, d.client));
    dead
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORAGE: NodeId = NodeId(1);
    const C1: NodeId = NodeId(2);
    const C2: NodeId = NodeId(3);
    const C3: NodeId = NodeId(4);
    const MS: u64 = 1_000_000;

    fn facts(record: &[(u64, NodeId, Observation)]) -> Vec<LockFact<'_>> {
        record.iter().map(|(t, n, o)| (*t * MS, *n, o)).collect()
    }

    fn holding(token: u64) -> Observation {
        Observation::Holding { token }
    }

    fn released(token: u64) -> Observation {
        Observation::StoppedHolding {
            token,
            why: StopReason::Released,
        }
    }

    fn notified() -> Observation {
        Observation::Notified {
            key: "/lock".into(),
        }
    }

    /// c1 and c2 want the lock at 0; c1 holds 10..100 ms, c2 waits and holds 100..200 ms; c1
    /// wants it again at 150 ms and holds at 200 ms until the end (1000 ms).
    fn turns() -> Vec<(u64, NodeId, Observation)> {
        vec![
            (0, C1, Observation::Acquiring),
            (0, C2, Observation::Acquiring),
            (10, C1, holding(1)),
            (100, C1, released(1)),
            (100, C2, notified()),
            (100, C2, holding(2)),
            (150, C1, Observation::Acquiring),
            (200, C2, released(2)),
            (200, C1, notified()),
            (200, C1, holding(3)),
        ]
    }

    #[test]
    fn acquisition_latency_runs_from_acquiring_to_the_next_holding_of_the_same_client() {
        let record = turns();
        let m = Measurements::measure(&facts(&record), &[], 1000 * MS);
        assert_eq!(m.acquire_latencies_ns, vec![10 * MS, 50 * MS, 100 * MS]);
        assert_eq!(m.acquisitions, 3);
        assert_eq!(m.acquire_latency_ns(50.0), Some(50 * MS));
        assert_eq!(m.acquire_latency_ns(99.0), Some(100 * MS));
        let metrics = m.metrics();
        assert_eq!(metrics["acquire_latency_ms_p50"], 50.0);
        assert_eq!(metrics["acquire_latency_ms_p99"], 100.0);
    }

    #[test]
    fn a_client_still_waiting_at_the_end_counts_with_its_wait_so_far() {
        let mut record = turns();
        record.push((300, C3, Observation::Acquiring));
        let m = Measurements::measure(&facts(&record), &[], 1000 * MS);
        assert_eq!(m.acquisitions_waiting, 1);
        assert_eq!(m.acquire_latency_ns(99.0), Some(700 * MS), "starved 700 ms");
        // Crashed while waiting: abandoned, not a latency.
        let m = Measurements::measure(&facts(&record), &[(400 * MS, C3)], 1000 * MS);
        assert_eq!((m.acquisitions_waiting, m.acquisitions_abandoned), (0, 1));
        assert_eq!(m.acquire_latency_ns(99.0), Some(100 * MS));
    }

    #[test]
    fn an_acquisition_interrupted_by_a_crash_and_restart_is_abandoned() {
        let record = vec![
            (0, C1, Observation::Acquiring),
            (50, C1, Observation::Acquiring), // restarted at 40 ms
            (60, C1, holding(1)),
        ];
        let m = Measurements::measure(&facts(&record), &[(40 * MS, C1)], 100 * MS);
        assert_eq!(m.acquisitions_abandoned, 1);
        assert_eq!(m.acquire_latencies_ns, vec![10 * MS]);
    }

    #[test]
    fn throughput_counts_released_holds_per_simulated_second() {
        let record = turns();
        let m = Measurements::measure(&facts(&record), &[], 1000 * MS);
        assert_eq!(m.critical_sections, 2, "c1's last hold is still open");
        assert_eq!(m.critical_sections_per_second(), Some(2.0));
        let m = Measurements::measure(&facts(&record), &[], 500 * MS);
        assert_eq!(m.critical_sections_per_second(), Some(4.0));
        assert_eq!(
            Measurements::measure(&[], &[], 0).critical_sections_per_second(),
            None
        );
    }

    #[test]
    fn notifications_per_release_counts_notifications_over_handoffs() {
        let record = turns();
        let m = Measurements::measure(&facts(&record), &[], 1000 * MS);
        assert_eq!((m.notifications, m.handoffs), (2, 2));
        assert_eq!(m.notifications_per_release(), Some(1.0));
        // The herd: every release also wakes c3, which goes back to waiting.
        let mut herd = record.clone();
        herd.push((100, C3, notified()));
        herd.push((200, C3, notified()));
        let m = Measurements::measure(&facts(&herd), &[], 1000 * MS);
        assert_eq!(m.notifications_per_release(), Some(2.0));
        // No watches (the single-instance design): 0.
        let quiet: Vec<_> = record
            .into_iter()
            .filter(|(_, _, o)| !matches!(o, Observation::Notified { .. }))
            .collect();
        let m = Measurements::measure(&facts(&quiet), &[], 1000 * MS);
        assert_eq!(m.notifications_per_release(), Some(0.0));
        // Notifications but no hand-off: no ratio.
        let lone = vec![(5, C1, notified())];
        let m = Measurements::measure(&facts(&lone), &[], 1000 * MS);
        assert_eq!(m.notifications_per_release(), None);
        assert_eq!(
            m.metrics()["notifications_per_release"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn a_dead_holder_is_detected_when_another_client_next_holds() {
        // c1 holds from 10 ms and crashes at 300 ms; its 2 s lease runs out and c2 holds at
        // 2310 ms; c3 crashes at 2400 ms while holding nothing.
        let record = vec![
            (10, C1, holding(1)),
            (2310, C2, holding(2)),
            (2400, C2, released(2)),
        ];
        let crashes = [(300 * MS, C1), (2400 * MS, C3)];
        let m = Measurements::measure(&facts(&record), &crashes, 5000 * MS);
        assert_eq!(
            m.dead_holders,
            vec![DeadHolder {
                client: C1,
                token: 1,
                crash_ns: 300 * MS,
                next: Some((C2, 2310 * MS)),
            }]
        );
        let metrics = m.metrics();
        assert_eq!(metrics["dead_holder_detection_ms_max"], 2010.0);
        assert_eq!(metrics["dead_holder_detection_ms_mean"], 2010.0);
        assert_eq!(metrics["handoffs_count"], 2, "the crash passed the lock on");
        // Nobody held it again: undetected.
        let m = Measurements::measure(&facts(&record[..1]), &crashes[..1], 5000 * MS);
        assert_eq!(m.dead_holders[0].next, None);
        assert_eq!(m.metrics()["dead_holders_undetected_count"], 1);
        assert_eq!(m.dead_holder_detection_ns_max(), None);
        // No crash: none.
        let m = Measurements::measure(&facts(&record), &[], 5000 * MS);
        assert!(m.dead_holders.is_empty());
        assert_eq!(
            m.metrics()["dead_holder_detection_ms_max"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn every_lock_run_reports_the_measurements_on_mutual_exclusion() {
        let runner = crate::api::Runner::builtin();
        let path = "scenarios/locks/measured-dead-holder-and-starvation.toml";
        let text =
            include_str!("../../../scenarios/locks/measured-dead-holder-and-starvation.toml");
        let scenario = runner
            .parse(std::path::Path::new(path), text)
            .expect("valid");
        let outcome = runner.run(&scenario, 1);
        let me = outcome
            .checks
            .iter()
            .find(|c| c.name == "mutual-exclusion")
            .expect("mutual-exclusion ran");
        let m = &me.metrics;
        // The real clients report `acquiring`: their acquisitions are measured.
        assert!(m["acquisitions_count"].as_u64().unwrap() > 10, "{m:?}");
        assert!(m["critical_sections_count"].as_u64().unwrap() > 10, "{m:?}");
        // first1 crashed holding the lock; its 2 s lease was granted at about 1 s.
        assert_eq!(m["dead_holders_count"], 1, "{m:?}");
        let detection = m["dead_holder_detection_ms_max"].as_f64().unwrap();
        assert!((1800.0..3000.0).contains(&detection), "{m:?}");
        assert_eq!(m["mutual_exclusion_violations_count"], 0, "{m:?}");
        assert_eq!(m["notifications_per_release"], 0.0, "no watches: {m:?}");
        let bounds = outcome
            .checks
            .iter()
            .find(|c| c.name == "lock-bounds")
            .expect("lock-bounds ran: the scenario sets bounds");
        // lock-bounds reports every measurement, with the same values.
        assert_eq!(
            bounds.metrics.len(),
            Measurements::default().metrics().len()
        );
        for (key, value) in &bounds.metrics {
            assert_eq!(me.metrics.get(key), Some(value), "{key}");
        }
    }

    #[test]
    fn safety_counts_come_from_the_holds_and_the_storage() {
        // Kleppmann: c1 holds 33 and pauses; c2 holds 34 and writes; c1's stale write is refused,
        // then another stale write is accepted by a storage that ignores tokens.
        let record = vec![
            (0, C1, holding(33)),
            (10_000, C2, holding(34)),
            (
                10_005,
                STORAGE,
                Observation::WriteAccepted {
                    client: C2,
                    token: 34,
                },
            ),
            (
                15_000,
                STORAGE,
                Observation::WriteRefused {
                    client: C1,
                    token: 33,
                    highest: 34,
                },
            ),
            (
                15_001,
                STORAGE,
                Observation::WriteAccepted {
                    client: C1,
                    token: 33,
                },
            ),
        ];
        let m = Measurements::measure(&facts(&record), &[], 20_000 * MS);
        let metrics = m.metrics();
        assert_eq!(metrics["mutual_exclusion_violations_count"], 1);
        assert_eq!(metrics["fenced_write_rejections_count"], 1);
        assert_eq!(metrics["unsafe_writes_accepted_count"], 1);
    }
}
