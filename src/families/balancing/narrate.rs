//! The balancing family's narrator: a run's story in load-balancing and resilience terms, with
//! two per-backend series for its charts.
//!
//! Story lines: a caller ejects a backend (outlier detection), marks it unhealthy (health
//! checks) or restores it (topic `health`); a caller's breaker for a backend opens, goes
//! half-open or closes (topic `breaker`); a caller enters or leaves panic mode, or its
//! backend set changes and keys remap (topic `health`); a backend starts or stops failing or
//! rejecting requests, or becoming slow (its p99 several times the backends' median), told on
//! each change from its per-second figures (topic `health`); a caller's retries start or stop
//! being a large share of its attempts (a retry storm, topic `retry`); a saga that does not
//! simply commit (a step refused, compensations, abandoned, resumed after a restart), the
//! sagas that commit counted per second, and ledgers answering retried requests from their
//! idempotency store, counted per second (topic `saga`).
//!
//! State fields: a backend's `health` (`healthy`, or who ejects it or finds it unhealthy:
//! `ejected by lb1, c2`), `breaker` (where a breaker for it is not closed: `open at lb1`) and
//! `role` (the worst of those: `ejected`, `unhealthy`, `breaker open`, `healthy`); a saga
//! coordinator's `saga` (the saga it runs and whether it is compensating).
//!
//! Samples: `load share (%)` per backend per second (its finished requests over all
//! backends', from the backends' once-per-second `load` facts) and `p99 latency (ms)` per
//! backend per second (from the callers' `attempt` facts).

use std::collections::BTreeMap;

use crate::families::narrate::{self, Cast};
use crate::family::{CastMember, Narration, Narrator};
use crate::sim::trace::TraceEvent;

/// Makes the balancing narrator for a run with a node of the family.
pub fn narrator(cast: &[CastMember]) -> Option<Box<dyn Narrator>> {
    let cast = Cast::new(cast);
    let names: Vec<&str> = super::FAMILY
        .protocols
        .iter()
        .map(|p| p.name)
        .chain(super::FAMILY.workloads.iter().map(|w| w.name))
        .collect();
    cast.runs_any(&names)
        .then(|| Box::new(BalancingNarrator::new(cast)) as Box<dyn Narrator>)
}

/// The load share chart's title.
pub const LOAD_SHARE: &str = "load share (%)";
/// The latency chart's title.
pub const P99_LATENCY: &str = "p99 latency (ms)";
/// A backend counts as slow when its p99 is at least this many times the median backend's.
const SLOW_FACTOR: f64 = 3.0;
/// A caller is in a retry storm when at least this share of its attempts in a second are
/// retries, and at least [`STORM_MIN_RETRIES`] of them.
const STORM_SHARE: f64 = 0.2;
const STORM_MIN_RETRIES: u64 = 10;
/// Most latencies kept per backend per second for its p99 (later ones in the second are left
/// out of it).
const MAX_LATENCIES: usize = 100_000;

/// One second of figures.
#[derive(Debug, Default)]
struct Second {
    /// Per backend: (finished, errors, rejected) from its `load` fact.
    load: BTreeMap<String, (u64, u64, u64)>,
    /// Per backend: attempt latencies (ns).
    latencies: BTreeMap<String, Vec<u64>>,
    /// Per caller: (attempts, retries).
    attempts: BTreeMap<String, (u64, u64)>,
    /// Sagas committed without trouble, per coordinator.
    committed: BTreeMap<String, u64>,
    /// Retried requests answered from the store, per ledger.
    replayed: BTreeMap<String, u64>,
}

/// A saga's story so far (told only if it does not simply commit).
#[derive(Debug, Default)]
struct SagaStory {
    steps: u64,
    lines: Vec<(u64, String)>,
    troubled: bool,
}

/// See the module docs.
struct BalancingNarrator {
    cast: Cast,
    second: u64,
    now: Second,
    /// Per backend: each caller's health view and breaker state that is not the default.
    health: BTreeMap<String, BTreeMap<String, String>>,
    breakers: BTreeMap<String, BTreeMap<String, String>>,
    /// Last role, health and breaker texts per backend.
    shown: BTreeMap<(String, &'static str), String>,
    /// Backends currently failing, rejecting or slow; callers in a retry storm.
    failing: BTreeMap<String, bool>,
    rejecting: BTreeMap<String, bool>,
    slow: BTreeMap<String, bool>,
    storming: BTreeMap<String, bool>,
    /// Sagas in flight: (coordinator, saga) -> story.
    sagas: BTreeMap<(String, u64), SagaStory>,
}

fn p99(latencies: &mut [u64]) -> u64 {
    latencies.sort_unstable();
    let rank = ((latencies.len() as f64) * 0.99).ceil() as usize;
    latencies[rank.clamp(1, latencies.len()) - 1]
}

fn percent(part: u64, whole: u64) -> u64 {
    (part * 100 + whole / 2).checked_div(whole).unwrap_or(0)
}

impl BalancingNarrator {
    fn new(cast: Cast) -> Self {
        BalancingNarrator {
            cast,
            second: 0,
            now: Second::default(),
            health: BTreeMap::new(),
            breakers: BTreeMap::new(),
            shown: BTreeMap::new(),
            failing: BTreeMap::new(),
            rejecting: BTreeMap::new(),
            slow: BTreeMap::new(),
            storming: BTreeMap::new(),
            sagas: BTreeMap::new(),
        }
    }

    /// Says `on` or `off` at time `t` under `topic` when `flag` of `node` changes to `value`.
    fn toggle(
        flags: &mut BTreeMap<String, bool>,
        node: &str,
        value: bool,
        (t, topic): (u64, &str),
        on: String,
        off: String,
        out: &mut Narration,
    ) {
        let was = flags.get(node).copied().unwrap_or(false);
        if was != value {
            flags.insert(node.to_string(), value);
            out.say(t, Some(node), topic, if value { on } else { off });
        }
    }

    /// Tells the second that ended at `end_ns` and pushes its samples.
    fn flush(&mut self, end_ns: u64, out: &mut Narration) {
        let mut s = std::mem::take(&mut self.now);
        let to = narrate::duration(end_ns);
        let total: u64 = s.load.values().map(|l| l.0).sum();
        for (backend, &(finished, errors, rejected)) in &s.load {
            if total > 0 {
                out.sample(
                    end_ns,
                    LOAD_SHARE,
                    backend,
                    finished as f64 * 100.0 / total as f64,
                );
            }
            if finished == 0 {
                continue; // no traffic (e.g. ejected): no evidence either way
            }
            Self::toggle(
                &mut self.failing,
                backend,
                errors > 0 && errors * 5 >= finished,
                (end_ns, "health"),
                format!(
                    "{backend} fails {errors} of its {finished} requests in the second to {to}"
                ),
                format!("{backend} serves without failing most requests again"),
                out,
            );
            Self::toggle(
                &mut self.rejecting,
                backend,
                rejected > 0 && rejected * 10 >= finished,
                (end_ns, "health"),
                format!(
                    "{backend} rejects {rejected} of its {finished} requests for overload in the second to {to}"
                ),
                format!("{backend} no longer rejects many requests"),
                out,
            );
        }
        let mut p99s: Vec<(String, u64)> = Vec::new();
        for (backend, latencies) in &mut s.latencies {
            let p = p99(latencies);
            out.sample(end_ns, P99_LATENCY, backend, p as f64 / 1e6);
            p99s.push((backend.clone(), p));
        }
        if p99s.len() >= 3 {
            let mut sorted: Vec<u64> = p99s.iter().map(|(_, p)| *p).collect();
            sorted.sort_unstable();
            let median = sorted[sorted.len() / 2];
            for (backend, p) in &p99s {
                let slow = median > 0 && *p as f64 >= SLOW_FACTOR * median as f64;
                Self::toggle(
                    &mut self.slow,
                    backend,
                    slow,
                    (end_ns, "health"),
                    format!(
                        "{backend} is slow: p99 {} ms in the second to {to}, the backends' median {} ms",
                        p / 1_000_000,
                        median / 1_000_000
                    ),
                    format!("{backend} is no longer slow (p99 {} ms)", p / 1_000_000),
                    out,
                );
            }
        }
        for (caller, &(attempts, retries)) in &s.attempts {
            Self::toggle(
                &mut self.storming,
                caller,
                retries >= STORM_MIN_RETRIES && retries as f64 >= STORM_SHARE * attempts as f64,
                (end_ns, "retry"),
                format!(
                    "{caller} retries heavily: {retries} of its {attempts} attempts in the second to {to} are retries ({}%)",
                    percent(retries, attempts)
                ),
                format!(
                    "{caller}'s retries calm down ({retries} of {attempts} attempts in the second to {to})"
                ),
                out,
            );
        }
        for (coordinator, n) in &s.committed {
            out.say(
                end_ns,
                Some(coordinator),
                "saga",
                format!(
                    "{coordinator} commits {} in the second to {to}",
                    narrate::count(*n, "saga")
                ),
            );
        }
        for (ledger, n) in &s.replayed {
            out.say(
                end_ns,
                Some(ledger),
                "saga",
                format!(
                    "{ledger} answers {} from its idempotency store in the second to {to}, applying nothing again",
                    narrate::count(*n, "retried request")
                ),
            );
        }
    }

    /// Shows a backend's `health`, `breaker` and `role` after a change.
    fn show(&mut self, t: u64, backend: &str, out: &mut Narration) {
        let by = |m: Option<&BTreeMap<String, String>>, state: &str| -> Vec<String> {
            m.map(|m| {
                m.iter()
                    .filter(|(_, s)| s.as_str() == state)
                    .map(|(c, _)| c.clone())
                    .collect()
            })
            .unwrap_or_default()
        };
        let health = self.health.get(backend);
        let (ejected, unhealthy) = (by(health, "ejected"), by(health, "unhealthy"));
        let breakers = self.breakers.get(backend);
        let (open, half) = (by(breakers, "open"), by(breakers, "half-open"));
        let mut parts = Vec::new();
        if !ejected.is_empty() {
            parts.push(format!("ejected by {}", ejected.join(", ")));
        }
        if !unhealthy.is_empty() {
            parts.push(format!("unhealthy at {}", unhealthy.join(", ")));
        }
        let health_text = if parts.is_empty() {
            "healthy".to_string()
        } else {
            parts.join("; ")
        };
        let mut parts = Vec::new();
        if !open.is_empty() {
            parts.push(format!("open at {}", open.join(", ")));
        }
        if !half.is_empty() {
            parts.push(format!("half-open at {}", half.join(", ")));
        }
        let breaker_text = parts.join("; ");
        let role = if !ejected.is_empty() {
            "ejected"
        } else if !unhealthy.is_empty() {
            "unhealthy"
        } else if !open.is_empty() {
            "breaker open"
        } else {
            "healthy"
        };
        for (field, value) in [
            ("health", health_text),
            ("breaker", breaker_text),
            ("role", role.to_string()),
        ] {
            let key = (backend.to_string(), field);
            if self.shown.get(&key) != Some(&value) {
                out.set(t, backend, field, value.clone());
                self.shown.insert(key, value);
            }
        }
    }

    fn observe(&mut self, e: &TraceEvent, out: &mut Narration) {
        let Some(obs) = narrate::observation(e) else {
            return;
        };
        let (t, node) = (e.t_ns, e.node);
        match narrate::tag(obs) {
            "attempt" => {
                let backend = self.cast.name(obs.get("backend"));
                let latencies = self.now.latencies.entry(backend).or_default();
                if latencies.len() < MAX_LATENCIES {
                    latencies.push(narrate::num(obs, "latency_ns"));
                }
                let a = self.now.attempts.entry(node.to_string()).or_default();
                a.0 += 1;
                if narrate::num(obs, "attempt") > 1 {
                    a.1 += 1;
                }
            }
            "load" => {
                self.now.load.insert(
                    node.to_string(),
                    (
                        narrate::num(obs, "finished"),
                        narrate::num(obs, "errors"),
                        narrate::num(obs, "rejected"),
                    ),
                );
            }
            "health" => {
                let backend = self.cast.name(obs.get("backend"));
                let state = narrate::text(obs, "state").to_string();
                let text = match state.as_str() {
                    "ejected" => format!("{node} ejects {backend} (outlier detection)"),
                    "unhealthy" => {
                        format!("{node} marks {backend} unhealthy (its health checks fail)")
                    }
                    _ => format!("{node} restores {backend}: healthy again"),
                };
                out.say(t, Some(node), "health", text);
                let views = self.health.entry(backend.clone()).or_default();
                if state == "healthy" {
                    views.remove(node);
                } else {
                    views.insert(node.to_string(), state);
                }
                self.show(t, &backend, out);
            }
            "breaker" => {
                let backend = self.cast.name(obs.get("backend"));
                let to = narrate::text(obs, "to").to_string();
                let text = match to.as_str() {
                    "open" => {
                        format!("{node}'s breaker for {backend} opens: calls to it fail fast")
                    }
                    "half-open" => format!(
                        "{node}'s breaker for {backend} goes half-open: a few probe calls pass"
                    ),
                    _ => format!("{node}'s breaker for {backend} closes"),
                };
                out.say(t, Some(node), "breaker", text);
                let states = self.breakers.entry(backend.clone()).or_default();
                if to == "closed" {
                    states.remove(node);
                } else {
                    states.insert(node.to_string(), to);
                }
                self.show(t, &backend, out);
            }
            "panic" => {
                let text = if obs.get("on").and_then(|v| v.as_bool()) == Some(true) {
                    format!(
                        "{node} enters panic mode: too few backends are healthy, it balances over all of them"
                    )
                } else {
                    format!("{node} leaves panic mode")
                };
                out.say(t, Some(node), "health", text);
            }
            "remap" => {
                let moved = obs
                    .get("moved_fraction")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0);
                let ideal = obs
                    .get("ideal_fraction")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0);
                out.say(
                    t,
                    Some(node),
                    "health",
                    format!(
                        "{node}'s backends go from {} to {}: {:.0}% of keys move (at least {:.0}% must)",
                        narrate::num(obs, "before"),
                        narrate::num(obs, "after"),
                        moved * 100.0,
                        ideal * 100.0
                    ),
                );
            }
            "started" => {
                let saga = narrate::num(obs, "saga");
                out.set(t, node, "saga", format!("saga {saga}"));
                self.sagas.insert(
                    (node.to_string(), saga),
                    SagaStory {
                        steps: narrate::num(obs, "steps"),
                        lines: vec![(
                            t,
                            format!(
                                "{node} starts saga {saga} ({} steps)",
                                narrate::num(obs, "steps")
                            ),
                        )],
                        troubled: false,
                    },
                );
            }
            "step" => {
                let saga = narrate::num(obs, "saga");
                let step = narrate::num(obs, "step");
                let outcome = narrate::text(obs, "outcome");
                let compensation = obs.get("compensation").and_then(|v| v.as_bool()) == Some(true);
                let story = self.sagas.entry((node.to_string(), saga)).or_default();
                if compensation {
                    story.troubled = true;
                    story.lines.push((
                        t,
                        format!(
                            "{node} compensates step {} of saga {saga} ({outcome})",
                            step + 1
                        ),
                    ));
                } else if outcome != "applied" {
                    story.troubled = true;
                    story.lines.push((
                        t,
                        format!(
                            "step {} of {node}'s saga {saga} fails ({outcome}): compensations run",
                            step + 1
                        ),
                    ));
                    out.set(t, node, "saga", format!("saga {saga} compensating"));
                }
            }
            "resumed" => {
                let saga = narrate::num(obs, "saga");
                let compensating = obs.get("compensating").and_then(|v| v.as_bool()) == Some(true);
                let story = self.sagas.entry((node.to_string(), saga)).or_default();
                story.troubled = true;
                story.lines.push((
                    t,
                    format!(
                        "{node} restarts and resumes saga {saga} from its log at step {}{}",
                        narrate::num(obs, "step") + 1,
                        if compensating { ", compensating" } else { "" }
                    ),
                ));
            }
            "finished" => {
                let saga = narrate::num(obs, "saga");
                let outcome = narrate::text(obs, "outcome");
                out.set(t, node, "saga", "");
                let story = self
                    .sagas
                    .remove(&(node.to_string(), saga))
                    .unwrap_or_default();
                if outcome == "committed" && !story.troubled {
                    *self.now.committed.entry(node.to_string()).or_default() += 1;
                    return;
                }
                for (at, line) in story.lines {
                    out.say(at, Some(node), "saga", line);
                }
                let end = match outcome {
                    "committed" => format!("{node}'s saga {saga} commits ({} steps)", story.steps),
                    "compensated" => format!(
                        "{node}'s saga {saga} ends compensated: every applied step was undone"
                    ),
                    other => {
                        format!("{node}'s saga {saga} ends {other}: applied steps stay applied")
                    }
                };
                out.say(t, Some(node), "saga", end);
            }
            "replayed" => {
                *self.now.replayed.entry(node.to_string()).or_default() += 1;
            }
            _ => {}
        }
    }
}

impl Narrator for BalancingNarrator {
    fn event(&mut self, e: &TraceEvent, out: &mut Narration) {
        if e.kind != "observe" {
            return;
        }
        // A backend's `load` at second k (its local clock's tick) covers the second before it.
        let second = narrate::second_of(e.t_ns.saturating_sub(1));
        if second > self.second {
            self.flush((self.second + 1) * 1_000_000_000, out);
            self.second = second;
        }
        self.observe(e, out);
    }

    fn finish(&mut self, end_ns: u64, out: &mut Narration) {
        self.flush(end_ns.min((self.second + 1) * 1_000_000_000), out);
        // Sagas still running at the end: tell their troubles.
        for ((node, _), story) in std::mem::take(&mut self.sagas) {
            if story.troubled {
                for (at, line) in story.lines {
                    out.say(at, Some(&node), "saga", line);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::families::narrate::testing;

    fn tell(lines: &[String]) -> Narration {
        let cast = testing::cast(&[
            ("web1", false, "backend"),
            ("web2", false, "backend"),
            ("web3", false, "backend"),
            ("lb1", false, "balancer"),
            ("shop1", true, "saga"),
        ]);
        testing::tell(narrator(&cast), lines, u64::MAX)
    }

    fn obs(t: u64, node: &str, obs: &str) -> String {
        format!(r#"{{"t_ns":{t},"node":"{node}","kind":"observe","obs":{obs}}}"#)
    }

    #[test]
    fn load_share_and_p99_are_sampled_per_backend_per_second() {
        let mut lines = Vec::new();
        for (b, lat_ms) in [(0, 10), (1, 10), (2, 100)] {
            for i in 0..10 {
                lines.push(obs(1_000 + i, "lb1", &format!(r#"{{"type":"attempt","backend":{b},"attempt":1,"status":"ok","latency_ns":{}}}"#, lat_ms * 1_000_000 + i)));
            }
        }
        for (b, finished) in [("web1", 60), ("web2", 30), ("web3", 10)] {
            lines.push(obs(1_000_000_000, b, &format!(r#"{{"type":"load","finished":{finished},"errors":0,"rejected":0,"in_flight_max":1,"queue_max":0}}"#)));
        }
        lines.push(obs(
            1_500_000_000,
            "lb1",
            r#"{"type":"health","backend":2,"state":"ejected"}"#,
        ));
        let out = tell(&lines);
        let share: Vec<(&str, f64)> = out
            .samples
            .iter()
            .filter(|s| s.chart == LOAD_SHARE)
            .map(|s| (s.series.as_str(), s.value))
            .collect();
        assert_eq!(share, vec![("web1", 60.0), ("web2", 30.0), ("web3", 10.0)]);
        assert!(out.samples.iter().all(|s| s.t_ns == 1_000_000_000));
        let p99: Vec<f64> = out
            .samples
            .iter()
            .filter(|s| s.chart == P99_LATENCY)
            .map(|s| s.value.round())
            .collect();
        assert_eq!(p99, vec![10.0, 10.0, 100.0]);
        let texts: Vec<&str> = out.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "web3 is slow: p99 100 ms in the second to 1 s, the backends' median 10 ms",
                "lb1 ejects web3 (outlier detection)",
            ]
        );
        let web3: Vec<(&str, &str)> = out
            .states
            .iter()
            .filter(|s| s.node == "web3")
            .map(|s| (s.field.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            web3,
            vec![
                ("health", "ejected by lb1"),
                ("breaker", ""),
                ("role", "ejected")
            ]
        );
    }

    #[test]
    fn breakers_retry_storms_and_troubled_sagas_are_told() {
        let mut lines = vec![
            obs(
                1,
                "lb1",
                r#"{"type":"breaker","backend":0,"from":"closed","to":"open"}"#,
            ),
            obs(2, "shop1", r#"{"type":"started","saga":1,"steps":3}"#),
            obs(
                3,
                "shop1",
                r#"{"type":"step","saga":1,"step":0,"compensation":false,"outcome":"applied"}"#,
            ),
            obs(
                4,
                "shop1",
                r#"{"type":"finished","saga":1,"outcome":"committed"}"#,
            ),
            obs(5, "shop1", r#"{"type":"started","saga":2,"steps":3}"#),
            obs(
                6,
                "shop1",
                r#"{"type":"step","saga":2,"step":1,"compensation":false,"outcome":"declined"}"#,
            ),
            obs(
                7,
                "shop1",
                r#"{"type":"step","saga":2,"step":0,"compensation":true,"outcome":"applied"}"#,
            ),
            obs(
                8,
                "shop1",
                r#"{"type":"finished","saga":2,"outcome":"compensated"}"#,
            ),
        ];
        for i in 0..20 {
            lines.push(obs(10 + i, "lb1", &format!(r#"{{"type":"attempt","backend":1,"attempt":{},"status":"error","latency_ns":1}}"#, 1 + i % 2)));
        }
        let out = tell(&lines);
        let texts: Vec<&str> = out.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "lb1's breaker for web1 opens: calls to it fail fast",
                "shop1 starts saga 2 (3 steps)",
                "step 2 of shop1's saga 2 fails (declined): compensations run",
                "shop1 compensates step 1 of saga 2 (applied)",
                "shop1's saga 2 ends compensated: every applied step was undone",
                "lb1 retries heavily: 10 of its 20 attempts in the second to 1 s are retries (50%)",
                "shop1 commits 1 saga in the second to 1 s",
            ]
        );
        assert!(
            out.states
                .iter()
                .any(|s| s.node == "web1" && s.field == "breaker" && s.value == "open at lb1")
        );
    }
}
