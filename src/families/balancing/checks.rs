//! `balancing-bounds`: the balancing family's measurements, with optional bounds, read from
//! the attempts callers report ([`Observation::Attempt`]), the backends' load
//! ([`Observation::Load`]), health, breaker and remap facts, the `requests` clients' history
//! and the run's lifecycle.
//!
//! | measurement | from | bound |
//! |---|---|---|
//! | client latency percentiles (p50, p95, p99, max) | every `requests` operation that ended (ok, fail or info: a timeout is latency a user waited), completion − invocation; operations the end of the run cut off (`unanswered at end of run`) are left out | `p99_max` |
//! | success rate | `ok` operations / operations that ended | `success_rate_min` |
//! | per backend: attempts, load share, ok / error / rejected / timeout, latency percentiles | attempts, by the backend tried | `load_share_max` (per window) |
//! | amplification per role | attempts sent to the nodes of a role / client requests | `amplification_max` (the largest over roles) |
//! | dead share | attempts sent to a backend that was crashed or paused when the attempt was sent / attempts | `dead_share_max` |
//! | ejected share | attempts sent to a backend the sender itself saw unhealthy or ejected (panic mode) / attempts | — |
//! | remapped keys | the largest `moved_fraction` of a remap (and its ideal) | `remap_fraction_max` |
//! | breakers | state changes, time open (summed over callers and backends), attempts admitted in one half-open period | `half_open_attempts_max` |
//! | backends' load | the largest in-flight and queue lengths of [`Observation::Load`] | `in_flight_max` |
//!
//! Everything is judged over `[from, until)` (default: the whole run): operations and attempts
//! are counted by the time they were sent. Bounds over time (`p99_max`, `success_rate_min`,
//! `load_share_max`) are also computed per `window` (default 1 s), and the evidence names the
//! windows and backends that broke the bound; the verdict judges `p99_max` and
//! `success_rate_min` over the whole interval and `load_share_max` per window (a herd lasts
//! seconds, not the run). A bound the run cannot answer (no request, no attempt, no remap, no
//! half-open period) is `unknown`, never `pass`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{BreakerState, HealthState, Observation, Status};
use crate::check::bounds::{Bound, conclude, percentile};
use crate::check::ops::{Operation, operations};
use crate::check::{self, CheckInfo, CheckResult, ms, until_problem};
use crate::family::OptionError;
use crate::process::NodeId;
use crate::scenario::topology::Topology;
use crate::scenario::{Duration, Scenario};
use crate::sim::run::UNANSWERED_AT_END;
use crate::sim::{LifecycleKind, RunRecord};

/// Name of the check.
pub const CHECK_BOUNDS: &str = "balancing-bounds";

/// Workloads whose clients' history is a stream of requests this check measures.
pub const REQUEST_WORKLOADS: &[&str] = &["requests"];
/// Protocols whose nodes serve or forward requests (the check applies where one runs).
pub const REQUEST_PROTOCOLS: &[&str] = &["backend", "balancer"];

/// True if the scenario runs a backend or balancer role, or a requests workload.
pub fn applies(scenario: &Scenario) -> bool {
    REQUEST_PROTOCOLS.iter().any(|p| scenario.runs_protocol(p))
        || scenario
            .clients
            .iter()
            .any(|g| REQUEST_WORKLOADS.contains(&g.workload.as_str()))
}

/// `[check.balancing-bounds]` options. The measurements are always reported; each bound is
/// optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run the check (default true).
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
    /// Start of the judged interval (simulated time, default 0).
    #[serde(default)]
    pub from: Duration,
    /// End (exclusive) of the judged interval (default: the end of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Duration>,
    /// Length of the windows bounds over time are reported by (default 1s; from 1 ms to 1 h).
    #[serde(default = "default_window")]
    pub window: Duration,
    /// Largest 99th percentile of client request latency over the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_max: Option<Duration>,
    /// Smallest share of client requests answered `ok` over the interval (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate_min: Option<f64>,
    /// Largest share of attempts sent to a backend that was crashed or paused (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_share_max: Option<f64>,
    /// Largest number of attempts per client request reaching any one role (1 = no retry
    /// anywhere; a number from 1 to 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amplification_max: Option<f64>,
    /// Largest share of sampled keys that moved at one change of a caller's backend set (0 to
    /// 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remap_fraction_max: Option<f64>,
    /// Largest share of one window's attempts that any one backend got (0 to 1). Windows with
    /// fewer than `load_share_min_attempts` attempts are not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_share_max: Option<f64>,
    /// Fewest attempts a window needs for `load_share_max` to judge it (default 20).
    #[serde(default = "default_min_attempts")]
    pub load_share_min_attempts: u64,
    /// Most attempts one caller sent to one backend during one half-open period of its
    /// breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_open_attempts_max: Option<u64>,
    /// Most requests any backend had in service at once (from its per-second load reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_max: Option<u64>,
}

fn default_window() -> Duration {
    Duration::from_secs(1)
}
fn default_min_attempts() -> u64 {
    20
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            from: Duration::default(),
            until: None,
            window: default_window(),
            p99_max: None,
            success_rate_min: None,
            dead_share_max: None,
            amplification_max: None,
            remap_fraction_max: None,
            load_share_max: None,
            load_share_min_attempts: default_min_attempts(),
            half_open_attempts_max: None,
            in_flight_max: None,
        }
    }
}

/// Largest amplification bound accepted.
pub const MAX_AMPLIFICATION: f64 = 1_000_000.0;

impl Config {
    /// Every problem with the options, at its key.
    pub fn problems(&self, run: Duration) -> Vec<OptionError> {
        let mut out = Vec::new();
        for (key, value) in [
            ("success_rate_min", self.success_rate_min),
            ("dead_share_max", self.dead_share_max),
            ("remap_fraction_max", self.remap_fraction_max),
            ("load_share_max", self.load_share_max),
        ] {
            if let Some(x) = value.filter(|x| !(0.0..=1.0).contains(x)) {
                out.push(OptionError::at(
                    key,
                    format!("expected a share from 0 to 1, found {x}"),
                ));
            }
        }
        if let Some(x) = self
            .amplification_max
            .filter(|x| !(1.0..=MAX_AMPLIFICATION).contains(x))
        {
            out.push(OptionError::at(
                "amplification_max",
                format!("expected a number from 1 to {MAX_AMPLIFICATION}, found {x}"),
            ));
        }
        crate::families::check_duration_from(
            &mut out,
            "window",
            self.window,
            Duration::from_millis(1),
        );
        out.extend(check::zero_durations(&[("p99_max", self.p99_max)]));
        let until = self.until.unwrap_or(run);
        if let Some(problem) = until_problem(self.from, until, run) {
            out.push(OptionError::at(
                if self.until.is_some() {
                    "until"
                } else {
                    "from"
                },
                problem,
            ));
        }
        out
    }
}

fn validate(table: &toml::Table, s: &Scenario, _: &Topology) -> Vec<OptionError> {
    check::validate_with(table, |c: &Config| c.problems(s.duration))
}

/// The `balancing-bounds` check.
pub const BOUNDS_CHECK: CheckInfo = CheckInfo {
    name: CHECK_BOUNDS,
    summary: "balancing measurements (client latency and success, load share, amplification per layer, attempts to dead backends, remapped keys, breakers, backend load) with optional bounds",
    applies_to: applies,
    enabled: check::on_unless_disabled,
    validate,
    resolve: check::resolve_as::<Config>,
    run: |record| {
        let config: Config = record.scenario.check_options(CHECK_BOUNDS);
        let clients = request_clients(record);
        bounds(&config, &Measurements::measure(&config, record, &clients))
    },
};

/// The nodes of every client group running a request workload.
fn request_clients(record: &RunRecord) -> Vec<String> {
    let scenario = &record.scenario;
    let mut out = Vec::new();
    for g in scenario
        .clients
        .iter()
        .filter(|g| REQUEST_WORKLOADS.contains(&g.workload.as_str()))
    {
        if let Some(nodes) = record.topology.groups.get(&g.name) {
            out.extend(nodes.iter().map(|&n| record.topology.name(n).to_string()));
        }
    }
    out
}

/// One attempt, as its sender reported it.
#[derive(Clone, Debug)]
struct AttemptFact {
    sender: NodeId,
    backend: NodeId,
    sent_ns: u64,
}

/// Per-backend counts.
#[derive(Clone, Debug, Default)]
struct BackendCounts {
    attempts: u64,
    ok: u64,
    errors: u64,
    rejected: u64,
    timeouts: u64,
    latencies_ns: Vec<u64>,
    in_flight_max: u32,
    queue_max: u32,
}

/// Up/down changes of one node: (time, up after it), in time order.
type Liveness = Vec<(u64, bool)>;

fn up_at(changes: &Liveness, t_ns: u64) -> bool {
    let after = changes.partition_point(|(t, _)| *t <= t_ns);
    after.checked_sub(1).is_none_or(|i| changes[i].1)
}

/// Everything the check measures in one run.
pub struct Measurements {
    from_ns: u64,
    until_ns: u64,
    window_ns: u64,
    names: Vec<String>,
    /// Client requests invoked in the interval that ended: (invoke, latency, ok).
    requests: Vec<(u64, u64, bool)>,
    /// Requests invoked in the interval (ended or not).
    invoked: u64,
    attempts: Vec<AttemptFact>,
    backends: BTreeMap<NodeId, BackendCounts>,
    /// Role name of each node (by index).
    roles: Vec<String>,
    dead_attempts: Vec<(u64, NodeId, NodeId)>,
    ejected_attempts: u64,
    /// (time, node, before, after, moved, ideal) of every remap.
    remaps: Vec<(u64, NodeId, u32, u32, f64, f64)>,
    breaker_changes: u64,
    breaker_open_ns: u64,
    /// (caller, backend, half-open start, attempts in it) of each half-open period.
    half_open: Vec<(NodeId, NodeId, u64, u64)>,
    /// (time, backend, in flight) of the largest load report.
    in_flight_peak: Option<(u64, NodeId, u32)>,
}

impl Measurements {
    /// Measures `record` over the config's interval; `clients` are the request clients' names.
    pub fn measure(config: &Config, record: &RunRecord, clients: &[String]) -> Self {
        let from_ns = config.from.as_nanos();
        let until_ns = config.until.map_or(record.end_ns, Duration::as_nanos);
        let within = |t: u64| t >= from_ns && t < until_ns;
        let topology = &record.topology;
        let names = topology.names.clone();
        let roles: Vec<String> = (0..topology.len())
            .map(|i| {
                let id = NodeId(i as u32);
                let part = topology.part[i];
                if topology.servers.contains(&id) {
                    record.scenario.cluster.roles[part].name.clone()
                } else {
                    record.scenario.clients[part].name.clone()
                }
            })
            .collect();

        let ops: Vec<Operation> = operations(&record.history)
            .into_iter()
            .filter(|o| clients.iter().any(|c| c == o.node) && within(o.invoke_ns))
            .collect();
        let cut_off = |o: &Operation| o.error == Some(UNANSWERED_AT_END);
        let invoked = ops.iter().filter(|o| !cut_off(o)).count() as u64;
        let requests = ops
            .iter()
            .filter(|o| !cut_off(o))
            .filter_map(|o| {
                let done = o.complete_ns?;
                Some((o.invoke_ns, done - o.invoke_ns, o.is_ok()))
            })
            .collect();

        let mut liveness: Vec<Liveness> = vec![Vec::new(); topology.len()];
        for l in &record.lifecycle {
            if let Some(c) = liveness.get_mut(l.node.index()) {
                c.push((
                    l.t_ns,
                    matches!(l.kind, LifecycleKind::Restart | LifecycleKind::Resume),
                ));
            }
        }

        let mut m = Measurements {
            from_ns,
            until_ns,
            window_ns: config.window.as_nanos().max(1),
            names,
            requests,
            invoked,
            attempts: Vec::new(),
            backends: BTreeMap::new(),
            roles,
            dead_attempts: Vec::new(),
            ejected_attempts: 0,
            remaps: Vec::new(),
            breaker_changes: 0,
            breaker_open_ns: 0,
            half_open: Vec::new(),
            in_flight_peak: None,
        };
        // The sender's view of each backend's health, and its open / half-open breakers.
        let mut health: BTreeMap<(NodeId, NodeId), HealthState> = BTreeMap::new();
        let mut open_since: BTreeMap<(NodeId, NodeId), u64> = BTreeMap::new();
        let mut half_open_since: BTreeMap<(NodeId, NodeId), usize> = BTreeMap::new();
        for o in &record.observations {
            let Some(observation) = o.get::<Observation>() else {
                continue;
            };
            match *observation {
                Observation::Attempt {
                    backend,
                    status,
                    latency_ns,
                    ..
                } => {
                    let sent_ns = o.t_ns.saturating_sub(latency_ns);
                    if !within(sent_ns) {
                        continue;
                    }
                    let counts = m.backends.entry(backend).or_default();
                    counts.attempts += 1;
                    match status {
                        Status::Ok | Status::Fallback => counts.ok += 1,
                        Status::Error => counts.errors += 1,
                        Status::Rejected | Status::Unavailable => counts.rejected += 1,
                        Status::Timeout => counts.timeouts += 1,
                    }
                    if status != Status::Timeout {
                        counts.latencies_ns.push(latency_ns);
                    }
                    let alive = liveness
                        .get(backend.index())
                        .is_none_or(|c| up_at(c, sent_ns));
                    if !alive {
                        m.dead_attempts.push((sent_ns, o.node, backend));
                    }
                    if health
                        .get(&(o.node, backend))
                        .is_some_and(|h| *h != HealthState::Healthy)
                    {
                        m.ejected_attempts += 1;
                    }
                    m.attempts.push(AttemptFact {
                        sender: o.node,
                        backend,
                        sent_ns,
                    });
                }
                Observation::Load {
                    in_flight_max,
                    queue_max,
                    ..
                } => {
                    if !within(o.t_ns) {
                        continue;
                    }
                    let counts = m.backends.entry(o.node).or_default();
                    counts.in_flight_max = counts.in_flight_max.max(in_flight_max);
                    counts.queue_max = counts.queue_max.max(queue_max);
                    if m.in_flight_peak.is_none_or(|(_, _, p)| in_flight_max > p) {
                        m.in_flight_peak = Some((o.t_ns, o.node, in_flight_max));
                    }
                }
                Observation::Health { backend, state } => {
                    health.insert((o.node, backend), state);
                }
                Observation::Breaker { backend, from, to } => {
                    let key = (o.node, backend);
                    if within(o.t_ns) {
                        m.breaker_changes += 1;
                    }
                    if from == BreakerState::Open
                        && let Some(since) = open_since.remove(&key)
                    {
                        m.breaker_open_ns += clip(since, o.t_ns, from_ns, until_ns);
                    }
                    if to == BreakerState::Open {
                        open_since.insert(key, o.t_ns);
                    }
                    if from == BreakerState::HalfOpen {
                        half_open_since.remove(&key);
                    }
                    if to == BreakerState::HalfOpen && within(o.t_ns) {
                        half_open_since.insert(key, m.half_open.len());
                        m.half_open.push((o.node, backend, o.t_ns, 0));
                    }
                }
                Observation::Remap {
                    before,
                    after,
                    moved_fraction,
                    ideal_fraction,
                } => {
                    if within(o.t_ns) {
                        m.remaps.push((
                            o.t_ns,
                            o.node,
                            before,
                            after,
                            moved_fraction,
                            ideal_fraction,
                        ));
                    }
                }
                Observation::Panic { .. } => {}
            }
            // Attempts sent during a half-open period count towards it; the attempt is
            // reported when it ends, so it is matched by its send time below.
        }
        for since in open_since.into_values() {
            m.breaker_open_ns += clip(since, record.end_ns, from_ns, until_ns);
        }
        m.count_half_open_attempts(record);
        m
    }

    /// Counts, for each half-open period, the attempts its caller sent to its backend while
    /// it lasted (until the breaker's next change or the end of the run).
    fn count_half_open_attempts(&mut self, record: &RunRecord) {
        if self.half_open.is_empty() {
            return;
        }
        // End of each period: the caller's next breaker change for that backend.
        let mut ends = vec![record.end_ns; self.half_open.len()];
        let mut periods: BTreeMap<(NodeId, NodeId), Vec<usize>> = BTreeMap::new();
        for (i, &(caller, backend, _, _)) in self.half_open.iter().enumerate() {
            periods.entry((caller, backend)).or_default().push(i);
        }
        for o in &record.observations {
            if let Some(Observation::Breaker {
                backend,
                from: BreakerState::HalfOpen,
                ..
            }) = o.get::<Observation>()
                && let Some(list) = periods.get(&(o.node, *backend))
                && let Some(&i) = list
                    .iter()
                    .find(|&&i| self.half_open[i].2 < o.t_ns && ends[i] == record.end_ns)
            {
                ends[i] = o.t_ns;
            }
        }
        for a in &self.attempts {
            let Some(list) = periods.get(&(a.sender, a.backend)) else {
                continue;
            };
            for &i in list {
                if a.sent_ns >= self.half_open[i].2 && a.sent_ns <= ends[i] {
                    self.half_open[i].3 += 1;
                }
            }
        }
    }

    fn name(&self, node: NodeId) -> &str {
        self.names.get(node.index()).map_or("?", String::as_str)
    }

    /// The windows of the interval, as [start, end).
    fn windows(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut start = self.from_ns;
        while start < self.until_ns {
            let end = (start + self.window_ns).min(self.until_ns);
            out.push((start, end));
            start = end;
        }
        out
    }

    fn window_of(&self, t_ns: u64) -> usize {
        ((t_ns - self.from_ns) / self.window_ns) as usize
    }

    /// Attempts per role of the node tried.
    fn attempts_by_role(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (backend, counts) in &self.backends {
            if counts.attempts > 0 {
                let role = self.roles.get(backend.index()).cloned().unwrap_or_default();
                *out.entry(role).or_insert(0) += counts.attempts;
            }
        }
        out
    }
}

/// The part of `[start, end)` inside `[from, until)`, in nanoseconds.
fn clip(start: u64, end: u64, from: u64, until: u64) -> u64 {
    end.min(until).saturating_sub(start.max(from))
}

fn show_ms(x: f64) -> String {
    ms(x.round() as u64)
}
fn show_share(x: f64) -> String {
    format!("{x:.3}")
}

/// Latency percentiles (p50, p95, p99, max) of unsorted nanosecond values, in ms, as JSON.
fn percentiles_json(values: &mut [u64]) -> serde_json::Value {
    values.sort_unstable();
    let p = |q: f64| percentile(values, q).map(|x| x as f64 / 1e6);
    json!({
        "p50_ms": p(50.0),
        "p95_ms": p(95.0),
        "p99_ms": p(99.0),
        "max_ms": values.last().map(|&x| x as f64 / 1e6),
    })
}

/// Judges `m` against the bounds of `config`; every measurement is a metric.
pub fn bounds(config: &Config, m: &Measurements) -> CheckResult {
    let mut bounds = Vec::new();
    let mut metrics = BTreeMap::new();
    let windows = m.windows();
    let interval = format!("[{}, {})", ms(m.from_ns), ms(m.until_ns));

    // Client requests.
    let mut latencies: Vec<u64> = m.requests.iter().map(|r| r.1).collect();
    let ok = m.requests.iter().filter(|r| r.2).count() as u64;
    let ended = m.requests.len() as u64;
    metrics.insert("requests".into(), json!(m.invoked));
    metrics.insert("requests_ended".into(), json!(ended));
    let success = (ended > 0).then(|| ok as f64 / ended as f64);
    metrics.insert("success_rate".into(), json!(success));
    metrics.insert("latency".into(), percentiles_json(&mut latencies));
    let mut per_window: Vec<Vec<(u64, bool)>> = vec![Vec::new(); windows.len()];
    for &(invoke, latency, ok) in &m.requests {
        per_window[m.window_of(invoke)].push((latency, ok));
    }
    if let Some(max) = config.p99_max {
        let what = format!("p99 of client request latency over {interval}");
        bounds.push(match percentile(&latencies, 99.0) {
            Some(p99) => {
                let mut b = Bound::judge(&what, p99 as f64, max.as_nanos() as f64, show_ms);
                let broken: Vec<String> = windows
                    .iter()
                    .zip(&per_window)
                    .filter_map(|(&(s, e), reqs)| {
                        let mut l: Vec<u64> = reqs.iter().map(|r| r.0).collect();
                        l.sort_unstable();
                        let p = percentile(&l, 99.0)?;
                        (p > max.as_nanos())
                            .then(|| format!("[{}, {}) p99 {}", ms(s), ms(e), ms(p)))
                    })
                    .collect();
                if !broken.is_empty() {
                    b.line += &format!("; windows above it: {}", first_few(&broken));
                }
                b
            }
            None => Bound::unknown(&what, "no client request ended"),
        });
    }
    if let Some(min) = config.success_rate_min {
        let what = format!("client success rate over {interval} ({ok} of {ended} requests ok)");
        bounds.push(match success {
            Some(rate) => {
                let mut b = Bound::judge_min(&what, rate, min, show_share);
                let broken: Vec<String> = windows
                    .iter()
                    .zip(&per_window)
                    .filter(|(_, reqs)| !reqs.is_empty())
                    .filter_map(|(&(s, e), reqs)| {
                        let rate = reqs.iter().filter(|r| r.1).count() as f64 / reqs.len() as f64;
                        (rate < min).then(|| format!("[{}, {}) {}", ms(s), ms(e), show_share(rate)))
                    })
                    .collect();
                if !broken.is_empty() {
                    b.line += &format!("; windows below it: {}", first_few(&broken));
                }
                b
            }
            None => Bound::unknown(&what, "no client request ended"),
        });
    }

    // Attempts, per backend and per role.
    let total: u64 = m.backends.values().map(|c| c.attempts).sum();
    let mut per_backend = serde_json::Map::new();
    for (backend, counts) in &m.backends {
        let mut latencies = counts.latencies_ns.clone();
        per_backend.insert(
            m.name(*backend).to_string(),
            json!({
                "attempts": counts.attempts,
                "share": (total > 0).then(|| counts.attempts as f64 / total as f64),
                "ok": counts.ok,
                "errors": counts.errors,
                "rejected": counts.rejected,
                "timeouts": counts.timeouts,
                "latency": percentiles_json(&mut latencies),
                "in_flight_max": counts.in_flight_max,
                "queue_max": counts.queue_max,
            }),
        );
    }
    metrics.insert("backends".into(), serde_json::Value::Object(per_backend));
    metrics.insert("attempts".into(), json!(total));
    let by_role = m.attempts_by_role();
    let amplification: BTreeMap<String, f64> = by_role
        .iter()
        .filter(|_| m.invoked > 0)
        .map(|(role, n)| (role.clone(), *n as f64 / m.invoked as f64))
        .collect();
    metrics.insert("attempts_by_role".into(), json!(by_role));
    metrics.insert("amplification_by_role".into(), json!(amplification));
    if let Some(max) = config.amplification_max {
        let what = format!("attempts per client request over {interval}");
        let worst = amplification
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(role, x)| (role.clone(), *x));
        bounds.push(match worst {
            Some((role, x)) => Bound::judge(
                &format!(
                    "{what}, at role {role} ({} attempts, {} requests)",
                    by_role[&role], m.invoked
                ),
                x,
                max,
                |x| format!("{x:.2}"),
            ),
            None => Bound::unknown(&what, "no client request, or no attempt reported"),
        });
    }

    let dead_share = (total > 0).then(|| m.dead_attempts.len() as f64 / total as f64);
    metrics.insert("dead_share".into(), json!(dead_share));
    metrics.insert(
        "ejected_share".into(),
        json!((total > 0).then(|| m.ejected_attempts as f64 / total as f64)),
    );
    if let Some(max) = config.dead_share_max {
        let what = format!(
            "share of attempts sent to a crashed or paused backend ({} of {total})",
            m.dead_attempts.len()
        );
        bounds.push(match dead_share {
            Some(x) => {
                let mut b = Bound::judge(&what, x, max, show_share);
                if x > max {
                    let mut by_backend: BTreeMap<NodeId, (u64, u64, u64)> = BTreeMap::new();
                    for &(t, _, backend) in &m.dead_attempts {
                        let e = by_backend.entry(backend).or_insert((t, t, 0));
                        e.1 = t;
                        e.2 += 1;
                    }
                    let lines: Vec<String> = by_backend
                        .iter()
                        .map(|(b, (first, last, n))| {
                            format!(
                                "{} ({n} attempts, {} to {})",
                                m.name(*b),
                                ms(*first),
                                ms(*last)
                            )
                        })
                        .collect();
                    b.line += &format!("; to {}", first_few(&lines));
                }
                b
            }
            None => Bound::unknown(&what, "no attempt was reported"),
        });
    }

    // Load share per window.
    let mut shares: Vec<BTreeMap<NodeId, u64>> = vec![BTreeMap::new(); windows.len()];
    for a in &m.attempts {
        *shares[m.window_of(a.sent_ns)].entry(a.backend).or_insert(0) += 1;
    }
    let mut worst_share: Option<(usize, NodeId, f64)> = None;
    let mut broken_shares = Vec::new();
    for (i, counts) in shares.iter().enumerate() {
        let n: u64 = counts.values().sum();
        if n < config.load_share_min_attempts || n == 0 {
            continue;
        }
        let (&backend, &top) = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .expect("a window with attempts");
        let share = top as f64 / n as f64;
        if worst_share.is_none_or(|(_, _, s)| share > s) {
            worst_share = Some((i, backend, share));
        }
        if config.load_share_max.is_some_and(|max| share > max) {
            let (s, e) = windows[i];
            broken_shares.push(format!(
                "[{}, {}) {} took {} ({top} of {n})",
                ms(s),
                ms(e),
                m.name(backend),
                show_share(share)
            ));
        }
    }
    metrics.insert(
        "load_share_max".into(),
        json!(worst_share.map(|(_, _, s)| s)),
    );
    if let Some(max) = config.load_share_max {
        let what = format!(
            "largest share of one window's attempts at one backend (windows of {} with at least {} attempts)",
            config.window, config.load_share_min_attempts
        );
        bounds.push(match worst_share {
            Some((i, backend, share)) => {
                let (s, e) = windows[i];
                let mut b = Bound::judge(
                    &format!("{what}: {} in [{}, {})", m.name(backend), ms(s), ms(e)),
                    share,
                    max,
                    show_share,
                );
                if !broken_shares.is_empty() {
                    b.line += &format!("; windows above it: {}", first_few(&broken_shares));
                }
                b
            }
            None => Bound::unknown(&what, "no window had enough attempts"),
        });
    }

    // Remaps.
    let worst_remap = m.remaps.iter().max_by(|a, b| a.4.total_cmp(&b.4)).copied();
    metrics.insert("remaps".into(), json!(m.remaps.len()));
    metrics.insert("remap_fraction_max".into(), json!(worst_remap.map(|r| r.4)));
    metrics.insert(
        "remap_ideal_fraction".into(),
        json!(worst_remap.map(|r| r.5)),
    );
    if let Some(max) = config.remap_fraction_max {
        let what = "largest share of keys remapped at one change of the backend set";
        bounds.push(match worst_remap {
            Some((t, node, before, after, moved, ideal)) => Bound::judge(
                &format!(
                    "{what} ({} at {}: {before} -> {after} backends, ideal {})",
                    m.name(node),
                    ms(t),
                    show_share(ideal)
                ),
                moved,
                max,
                show_share,
            ),
            None => Bound::unknown(what, "the backend set never changed"),
        });
    }

    // Breakers.
    metrics.insert("breaker_changes".into(), json!(m.breaker_changes));
    metrics.insert(
        "breaker_open_ms".into(),
        json!(m.breaker_open_ns as f64 / 1e6),
    );
    let worst_half_open = m.half_open.iter().max_by_key(|p| p.3).copied();
    metrics.insert(
        "half_open_attempts_max".into(),
        json!(worst_half_open.map(|p| p.3)),
    );
    if let Some(max) = config.half_open_attempts_max {
        let what = "most attempts admitted in one half-open period";
        bounds.push(match worst_half_open {
            Some((caller, backend, start, n)) => Bound::judge(
                &format!(
                    "{what} ({} to {} from {})",
                    m.name(caller),
                    m.name(backend),
                    ms(start)
                ),
                n as f64,
                max as f64,
                |x| format!("{x:.0}"),
            ),
            None => Bound::unknown(what, "no breaker went half-open"),
        });
    }

    // Backends' own load.
    metrics.insert("in_flight_max".into(), json!(m.in_flight_peak.map(|p| p.2)));
    if let Some(max) = config.in_flight_max {
        let what = "most requests in service at one backend";
        bounds.push(match m.in_flight_peak {
            Some((t, backend, n)) => Bound::judge(
                &format!(
                    "{what} ({} in the second before {})",
                    m.name(backend),
                    ms(t)
                ),
                n as f64,
                max as f64,
                |x| format!("{x:.0}"),
            ),
            None => Bound::unknown(what, "no backend reported its load"),
        });
    }

    let mut result = conclude(CHECK_BOUNDS, &bounds, metrics);
    if bounds.is_empty() {
        result.summary = format!(
            "{} requests, {total} attempts measured (no bound set)",
            m.invoked
        );
    }
    result
}

/// The first five items, and how many more.
fn first_few(items: &[String]) -> String {
    let mut out = items.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > 5 {
        out += &format!("; and {} more", items.len() - 5);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{lifecycle, observe, op, record};
    use crate::history::{EventType, Function, Value};
    use crate::scenario::Verdict;

    /// A raft record stands in for the scenario: nodes 0..2 are "backends" (role n), nodes 3
    /// and 4 the clients c1, c2.
    fn base() -> RunRecord {
        record(3, 2, "")
    }

    fn attempt(r: &mut RunRecord, t_ms: u64, sender: u32, backend: u32, status: Status) {
        observe(
            r,
            t_ms,
            sender,
            Observation::Attempt {
                backend: NodeId(backend),
                attempt: 1,
                status,
                latency_ns: 1_000_000,
            },
        );
    }

    fn measure(config: &Config, r: &RunRecord) -> CheckResult {
        let clients = vec!["c1".to_string(), "c2".to_string()];
        bounds(config, &Measurements::measure(config, r, &clients))
    }

    #[test]
    fn latency_and_success_bounds_name_the_windows_that_broke_them() {
        let mut r = base();
        // 100 fast ok requests in the first second, then 5 slow failures in [5s, 6s).
        for i in 0..100 {
            r.history.extend(op(
                i,
                "c1",
                Function::Read,
                Value::Nil,
                10 + i,
                EventType::Ok,
                Value::Nil,
                12 + i,
            ));
        }
        for i in 0..5 {
            r.history.extend(op(
                200 + i,
                "c2",
                Function::Read,
                Value::Nil,
                5_000 + i,
                EventType::Fail,
                Value::Nil,
                5_900 + i,
            ));
        }
        let config = Config {
            p99_max: Some(Duration::from_millis(100)),
            success_rate_min: Some(0.99),
            ..Config::default()
        };
        let result = measure(&config, &r);
        assert_eq!(result.verdict, Verdict::Fail, "{result:?}");
        let text = result.evidence.join("\n");
        assert!(
            text.contains("windows above it: [5000.0ms, 6000.0ms)"),
            "{text}"
        );
        assert!(text.contains("windows below it"), "{text}");
        // Loose bounds hold.
        let config = Config {
            p99_max: Some(Duration::from_secs(1)),
            success_rate_min: Some(0.9),
            ..Config::default()
        };
        assert_eq!(measure(&config, &r).verdict, Verdict::Pass);
    }

    #[test]
    fn requests_the_end_of_the_run_cut_off_are_not_failures() {
        let mut r = base();
        for i in 0..10 {
            r.history.extend(op(
                i,
                "c1",
                Function::Read,
                Value::Nil,
                10 * i,
                EventType::Ok,
                Value::Nil,
                10 * i + 5,
            ));
        }
        let mut cut = op(
            99,
            "c2",
            Function::Read,
            Value::Nil,
            9_990,
            EventType::Info,
            Value::Nil,
            10_000,
        );
        cut[1].error = Some(UNANSWERED_AT_END.into());
        r.history.extend(cut);
        let config = Config {
            success_rate_min: Some(1.0),
            ..Config::default()
        };
        let result = measure(&config, &r);
        assert_eq!(result.verdict, Verdict::Pass, "{result:?}");
        assert_eq!(result.metrics["requests"], json!(10));
    }

    #[test]
    fn attempts_to_a_crashed_backend_count_as_dead_share_and_name_it() {
        let mut r = base();
        lifecycle(&mut r, 1_000, 1, LifecycleKind::Crash);
        lifecycle(&mut r, 3_000, 1, LifecycleKind::Restart);
        for t in (100..5_000).step_by(100) {
            attempt(&mut r, t, 3, (t / 100 % 3) as u32, Status::Ok);
        }
        let config = Config {
            dead_share_max: Some(0.05),
            ..Config::default()
        };
        let result = measure(&config, &r);
        assert_eq!(result.verdict, Verdict::Fail, "{result:?}");
        assert!(result.evidence[0].contains("n2"), "{:?}", result.evidence);
        let share = result.metrics["dead_share"].as_f64().unwrap();
        // 49 attempts, a third of them to n2, which was down for 2 of the 5 seconds.
        assert!(share > 0.1 && share < 0.2, "{share}");
        let config = Config {
            dead_share_max: Some(0.2),
            ..Config::default()
        };
        assert_eq!(measure(&config, &r).verdict, Verdict::Pass);
    }

    #[test]
    fn amplification_is_attempts_per_request_at_each_role() {
        let mut r = base();
        for i in 0..10 {
            r.history.extend(op(
                i,
                "c1",
                Function::Read,
                Value::Nil,
                10 * i,
                EventType::Ok,
                Value::Nil,
                10 * i + 5,
            ));
            for _ in 0..3 {
                attempt(&mut r, 10 * i + 2, 3, 0, Status::Error);
            }
        }
        let config = Config {
            amplification_max: Some(2.0),
            ..Config::default()
        };
        let result = measure(&config, &r);
        assert_eq!(result.verdict, Verdict::Fail, "{result:?}");
        let by_role = result.metrics["amplification_by_role"].as_object().unwrap();
        assert_eq!(by_role.values().collect::<Vec<_>>(), [&json!(3.0)]);
        let config = Config {
            amplification_max: Some(3.0),
            ..Config::default()
        };
        assert_eq!(measure(&config, &r).verdict, Verdict::Pass);
    }

    #[test]
    fn a_window_where_one_backend_takes_most_attempts_breaks_the_load_share_bound() {
        let mut r = base();
        for t in (0..2_000).step_by(10) {
            // Fair in the first second, all on n1 in the second.
            let backend = if t < 1_000 { (t / 10 % 3) as u32 } else { 0 };
            attempt(&mut r, t + 1, 3, backend, Status::Ok);
        }
        let config = Config {
            load_share_max: Some(0.5),
            ..Config::default()
        };
        let result = measure(&config, &r);
        assert_eq!(result.verdict, Verdict::Fail, "{result:?}");
        assert!(result.evidence[0].contains("n1"), "{:?}", result.evidence);
        assert!(
            result.evidence[0].contains("[1000.0ms, 2000.0ms)"),
            "{:?}",
            result.evidence
        );
        let config = Config {
            load_share_max: Some(0.5),
            until: Some(Duration::from_secs(1)),
            ..Config::default()
        };
        assert_eq!(measure(&config, &r).verdict, Verdict::Pass);
    }

    #[test]
    fn remaps_and_half_open_floods_are_judged_and_unknown_without_data() {
        let mut r = base();
        let config = Config {
            remap_fraction_max: Some(0.2),
            half_open_attempts_max: Some(1),
            ..Config::default()
        };
        assert_eq!(measure(&config, &r).verdict, Verdict::Unknown);
        observe(
            &mut r,
            1_000,
            3,
            Observation::Remap {
                before: 10,
                after: 9,
                moved_fraction: 0.9,
                ideal_fraction: 0.1,
            },
        );
        let b = |from, to| Observation::Breaker {
            backend: NodeId(0),
            from,
            to,
        };
        observe(
            &mut r,
            2_000,
            3,
            b(BreakerState::Closed, BreakerState::Open),
        );
        observe(
            &mut r,
            3_000,
            3,
            b(BreakerState::Open, BreakerState::HalfOpen),
        );
        for t in 3_001..3_011 {
            attempt(&mut r, t + 1, 3, 0, Status::Ok);
        }
        observe(
            &mut r,
            3_020,
            3,
            b(BreakerState::HalfOpen, BreakerState::Closed),
        );
        let result = measure(&config, &r);
        assert_eq!(result.verdict, Verdict::Fail, "{result:?}");
        assert_eq!(result.metrics["half_open_attempts_max"], json!(10));
        assert_eq!(result.metrics["breaker_open_ms"], json!(1000.0));
        assert!(
            result
                .evidence
                .iter()
                .any(|e| e.contains("10 -> 9 backends"))
        );
    }

    #[test]
    fn options_are_checked_at_their_keys() {
        let config = Config {
            dead_share_max: Some(1.5),
            amplification_max: Some(0.5),
            window: Duration::from_secs(0),
            ..Config::default()
        };
        let keys: Vec<String> = config
            .problems(Duration::from_secs(10))
            .iter()
            .map(|e| format!("{e:?}"))
            .collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert!(keys[0].contains("dead_share_max"));
        assert!(keys[1].contains("amplification_max"));
        assert!(keys[2].contains("window"));
    }
}
