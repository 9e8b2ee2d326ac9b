//! The registry family's checks, over the facts instances, registry servers and discovering
//! clients report ([`super::Observation`]), the history of the `discovery` clients and the
//! run's lifecycle:
//!
//! - `registry-convergence`: at the end of the run, every registry server and every
//!   discovering client that is up holds the same instances of each service. Run it with a
//!   settle time after the final heal longer than the instances' TTL plus the clients' lookup
//!   interval (the registry must first forget the dead, then the clients must look again).
//! - `registry-bounds`: the family's measurements, with optional bounds:
//!   - **removal time**: from an instance's death to its removal from each registry server's
//!     and each client's view (an instance is dead from its crash, or from its graceful leave,
//!     until its restart; a paused instance is not dead);
//!   - **calls to dead instances**: the share of calls invoked to an instance dead at the time;
//!   - **stale window**: per client, the total time its view listed a dead instance;
//!   - **per partition side** (sides as in the generic `availability` check, counted over the
//!     registry role's nodes): lookups that succeeded, lookups that answered a dead instance
//!     (stale answers), calls to dead instances.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{DISCOVERY_NAME, Observation, REGISTRY_PROTOCOLS, SERVICE_INSTANCE_NAME};
use crate::check::availability::{Side, client_side_among, judged_segments, up_at};
use crate::check::bounds::{Bound, conclude};
use crate::check::ops::{Operation, operations};
use crate::check::{self, CheckInfo, CheckResult, ms, zero_durations};
use crate::family::OptionError;
use crate::history::{EventType, Function, Value};
use crate::process::NodeId;
use crate::scenario::topology::Topology;
use crate::scenario::{Duration, Scenario, Verdict};
use crate::sim::{LifecycleKind, RunRecord};

/// Name of the convergence check.
pub const CHECK_CONVERGENCE: &str = "registry-convergence";
/// Name of the bounds check.
pub const CHECK_BOUNDS: &str = "registry-bounds";

/// True if the scenario has a `service-instance` role.
pub fn has_instances(scenario: &Scenario) -> bool {
    scenario.runs_protocol(SERVICE_INSTANCE_NAME)
}

/// The `registry-convergence` check.
pub const CONVERGENCE_CHECK: CheckInfo = CheckInfo {
    name: CHECK_CONVERGENCE,
    summary: "at the end of the run, every up registry server and discovering client holds the same instances of each service",
    applies_to: has_instances,
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run: |record| convergence(&Facts::of(record)),
};

/// `[check.registry-bounds]` options. The measurements are always reported; each bound is
/// optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run the check (default true).
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
    /// Longest time from an instance's death to its removal from every registry server's and
    /// every client's view (a positive duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_time_max: Option<Duration>,
    /// Largest share of calls invoked to a dead instance (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_call_share_max: Option<f64>,
    /// Longest total time any one client's view listed a dead instance (a positive duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_window_max: Option<Duration>,
    /// Smallest share of lookups that succeed on the majority side of a partition (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub majority_lookup_ok_min: Option<f64>,
    /// Largest share of lookups that succeed on the minority side of a partition (0 to 1; a
    /// CP registry read consistently: 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minority_lookup_ok_max: Option<f64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            removal_time_max: None,
            dead_call_share_max: None,
            stale_window_max: None,
            majority_lookup_ok_min: None,
            minority_lookup_ok_max: None,
        }
    }
}

impl Config {
    /// Every problem with the options: shares within 0 to 1, durations positive.
    pub fn problems(&self) -> Vec<OptionError> {
        let mut out = Vec::new();
        for (key, value) in [
            ("dead_call_share_max", self.dead_call_share_max),
            ("majority_lookup_ok_min", self.majority_lookup_ok_min),
            ("minority_lookup_ok_max", self.minority_lookup_ok_max),
        ] {
            if let Some(x) = value.filter(|x| !(0.0..=1.0).contains(x)) {
                out.push(OptionError::at(
                    key,
                    format!("expected a share from 0 to 1, found {x}"),
                ));
            }
        }
        out.extend(zero_durations(&[
            ("removal_time_max", self.removal_time_max),
            ("stale_window_max", self.stale_window_max),
        ]));
        out
    }
}

fn validate(table: &toml::Table, _: &Scenario, _: &Topology) -> Vec<OptionError> {
    check::validate_with(table, Config::problems)
}

/// The `registry-bounds` check.
pub const BOUNDS_CHECK: CheckInfo = CheckInfo {
    name: CHECK_BOUNDS,
    summary: "registry measurements (removal time after a death, calls to dead instances, stale window, lookups per partition side) with optional bounds",
    applies_to: has_instances,
    enabled: check::on_unless_disabled,
    validate,
    resolve: check::resolve_as::<Config>,
    run: |record| {
        let config: Config = record.scenario.check_options(CHECK_BOUNDS);
        let facts = Facts::of(record);
        bounds(&config, &Measurements::measure(&facts, record), &facts)
    },
};

/// A node's view of one service over time: (global ns, instance ids) at every change.
type Timeline = Vec<(u64, BTreeSet<String>)>;

/// The view of `timeline` at `t_ns` (empty before its first change).
fn view_at(timeline: &[(u64, BTreeSet<String>)], t_ns: u64) -> BTreeSet<String> {
    let after = timeline.partition_point(|(t, _)| *t <= t_ns);
    after
        .checked_sub(1)
        .map(|i| timeline[i].1.clone())
        .unwrap_or_default()
}

/// The registry family's facts of one run.
pub struct Facts {
    names: Vec<String>,
    end_ns: u64,
    /// Registry role nodes.
    registry: Vec<NodeId>,
    /// Discovering clients.
    clients: Vec<NodeId>,
    /// Instance id -> (node, service).
    instances: BTreeMap<String, (NodeId, String)>,
    /// (node, service) -> view timeline; servers and clients.
    views: BTreeMap<(NodeId, String), Timeline>,
    /// Instance id -> dead intervals [from, until) (until `None`: dead at the end).
    dead: BTreeMap<String, Vec<(u64, Option<u64>)>>,
    /// Up at the end of the run, by node index.
    up_at_end: Vec<bool>,
}

impl Facts {
    /// The facts of `record`.
    pub fn of(record: &RunRecord) -> Facts {
        let scenario = &record.scenario;
        let topology = &record.topology;
        let nodes_of = |name: &str| topology.groups.get(name).cloned().unwrap_or_default();
        let mut registry = Vec::new();
        let mut instances = BTreeMap::new();
        for role in &scenario.cluster.roles {
            if REGISTRY_PROTOCOLS.contains(&role.protocol.as_str()) {
                registry.extend(nodes_of(&role.name));
            } else if role.protocol == SERVICE_INSTANCE_NAME {
                let service = super::service_of(role);
                for node in nodes_of(&role.name) {
                    instances.insert(topology.name(node).to_string(), (node, service.clone()));
                }
            }
        }
        let clients: Vec<NodeId> = scenario
            .clients
            .iter()
            .filter(|g| g.workload == DISCOVERY_NAME)
            .flat_map(|g| nodes_of(&g.name))
            .collect();
        // Views at every change, in the run's order (observations and lifecycle records share
        // one sequence): a crashed server or client forgets its view (a Eureka server's
        // registry and a client's cache are in memory; a CP replica rebuilds its state and
        // reports it again as it applies the log), so a crash empties it.
        let services: BTreeSet<String> = instances.values().map(|(_, s)| s.clone()).collect();
        let mut changes: Vec<(u64, u64, NodeId, String, BTreeSet<String>)> = Vec::new();
        let mut leaves: Vec<(u64, String)> = Vec::new();
        for o in &record.observations {
            match o.get::<Observation>() {
                Some(
                    Observation::ServerView { service, instances }
                    | Observation::ClientView { service, instances },
                ) => changes.push((
                    o.seq,
                    o.t_ns,
                    o.node,
                    service.clone(),
                    instances.iter().cloned().collect(),
                )),
                Some(Observation::Leaving { instance, .. }) => {
                    leaves.push((o.t_ns, instance.clone()));
                }
                _ => {}
            }
        }
        let observers: BTreeSet<NodeId> = registry.iter().chain(&clients).copied().collect();
        for l in &record.lifecycle {
            if l.kind == LifecycleKind::Crash && observers.contains(&l.node) {
                for service in &services {
                    changes.push((l.seq, l.t_ns, l.node, service.clone(), BTreeSet::new()));
                }
            }
        }
        changes.sort_by_key(|(seq, ..)| *seq);
        let mut views: BTreeMap<(NodeId, String), Timeline> = BTreeMap::new();
        for (_, t_ns, node, service, view) in changes {
            views.entry((node, service)).or_default().push((t_ns, view));
        }
        // Dead intervals: from a crash or a leave to the next restart (a restarted instance
        // that had left stays gone; it does not serve, so its leave keeps it dead).
        let mut dead: BTreeMap<String, Vec<(u64, Option<u64>)>> = BTreeMap::new();
        for (instance, (node, _)) in &instances {
            let mut changes: Vec<(u64, bool)> = record
                .lifecycle
                .iter()
                .filter(|l| l.node == *node)
                .filter_map(|l| match l.kind {
                    LifecycleKind::Crash => Some((l.t_ns, true)),
                    LifecycleKind::Restart => Some((l.t_ns, false)),
                    _ => None,
                })
                .collect();
            let left = leaves.iter().find(|(_, i)| i == instance).map(|(t, _)| *t);
            let mut intervals = Vec::new();
            let mut since: Option<u64> = None;
            changes.sort();
            for (t, crashed) in changes {
                if left.is_some_and(|l| t >= l) {
                    break;
                }
                match (crashed, since) {
                    (true, None) => since = Some(t),
                    (false, Some(s)) => {
                        intervals.push((s, Some(t)));
                        since = None;
                    }
                    _ => {}
                }
            }
            match (since, left) {
                (Some(s), _) => intervals.push((s, None)),
                (None, Some(l)) => intervals.push((l, None)),
                (None, None) => {}
            }
            dead.insert(instance.clone(), intervals);
        }
        Facts {
            names: topology.names.clone(),
            end_ns: record.end_ns,
            registry,
            clients,
            instances,
            views,
            dead,
            up_at_end: up_at(record, record.end_ns),
        }
    }

    fn name(&self, node: NodeId) -> &str {
        self.names.get(node.index()).map_or("?", String::as_str)
    }

    fn services(&self) -> BTreeSet<&str> {
        self.instances.values().map(|(_, s)| s.as_str()).collect()
    }

    /// True if `instance` is dead at `t_ns`.
    fn dead_at(&self, instance: &str, t_ns: u64) -> bool {
        self.dead.get(instance).is_some_and(|intervals| {
            intervals
                .iter()
                .any(|&(from, until)| from <= t_ns && until.is_none_or(|u| t_ns < u))
        })
    }

    fn timeline(&self, node: NodeId, service: &str) -> &[(u64, BTreeSet<String>)] {
        self.views
            .get(&(node, service.to_string()))
            .map_or(&[], Vec::as_slice)
    }
}

/// The `registry-convergence` verdict of `facts`.
pub fn convergence(facts: &Facts) -> CheckResult {
    let mut evidence = Vec::new();
    let mut diverged = 0;
    let mut dead_listed = 0;
    let observers: Vec<NodeId> = facts
        .registry
        .iter()
        .chain(&facts.clients)
        .copied()
        .filter(|n| facts.up_at_end.get(n.index()).copied().unwrap_or(false))
        .collect();
    for service in facts.services() {
        let mut by_view: BTreeMap<BTreeSet<String>, Vec<&str>> = BTreeMap::new();
        for &node in &observers {
            let view = view_at(facts.timeline(node, service), facts.end_ns);
            by_view.entry(view).or_default().push(facts.name(node));
        }
        let dead: BTreeSet<&String> = by_view
            .keys()
            .flatten()
            .filter(|i| facts.dead_at(i, facts.end_ns))
            .collect();
        dead_listed += dead.len();
        if by_view.len() > 1 {
            diverged += 1;
            evidence.push(format!(
                "service {service}: {} different views at the end ({})",
                by_view.len(),
                ms(facts.end_ns)
            ));
        }
        for (view, nodes) in &by_view {
            let list: Vec<&str> = view.iter().map(String::as_str).collect();
            evidence.push(format!(
                "service {service}: [{}] held by {}",
                list.join(", "),
                nodes.join(", ")
            ));
        }
        if !dead.is_empty() {
            let dead: Vec<&str> = dead.iter().map(|s| s.as_str()).collect();
            evidence.push(format!(
                "service {service}: dead at the end but still listed somewhere: {}",
                dead.join(", ")
            ));
        }
    }
    let (verdict, summary) = if diverged == 0 {
        (
            Verdict::Pass,
            format!(
                "{} registry servers and clients up at the end agree on every service",
                observers.len()
            ),
        )
    } else {
        (
            Verdict::Fail,
            format!("{diverged} services have differing views at the end of the run"),
        )
    };
    let mut result = CheckResult::new(CHECK_CONVERGENCE, verdict, summary);
    result.evidence = evidence;
    result
        .metrics
        .insert("services_diverged".into(), diverged.into());
    result
        .metrics
        .insert("dead_instances_listed_at_end".into(), dead_listed.into());
    result
}

/// Lookups and calls on one side of a partition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SideTally {
    /// Lookups invoked (and ended) during partition segments on this side.
    pub lookups: u64,
    /// Of which ok.
    pub lookups_ok: u64,
    /// Ok lookups listing an instance dead when they answered.
    pub stale_lookups: u64,
    /// Calls invoked to an instance.
    pub calls: u64,
    /// Of which answered (ok).
    pub calls_ok: u64,
    /// Of which to a dead instance.
    pub dead_calls: u64,
}

/// The registry family's measurements of one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurements {
    /// Instance deaths (crash or leave).
    pub deaths: u64,
    /// Removal times from registry servers' views (ns).
    pub server_removals_ns: Vec<u64>,
    /// Removal times from clients' views (ns).
    pub client_removals_ns: Vec<u64>,
    /// (instance, observer, death ns) of views that still listed a dead instance at the end
    /// (or at its restart).
    pub not_removed: Vec<(String, NodeId, u64)>,
    /// Calls invoked with an instance.
    pub calls: u64,
    /// Calls that ended ok.
    pub calls_ok: u64,
    /// Calls invoked to a dead instance.
    pub dead_calls: u64,
    /// Calls that found no instance in the client's view.
    pub calls_without_instance: u64,
    /// Lookups invoked, ok, failed, info.
    pub lookups: u64,
    /// See `lookups`.
    pub lookups_ok: u64,
    /// See `lookups`.
    pub lookups_fail: u64,
    /// See `lookups`.
    pub lookups_info: u64,
    /// Ok lookups listing an instance dead when they answered.
    pub stale_lookups: u64,
    /// Per client: total time its view listed a dead instance (ns).
    pub stale_window_ns: Vec<(NodeId, u64)>,
    /// During partitions, the majority and the minority side.
    pub majority: SideTally,
    /// See `majority`.
    pub minority: SideTally,
}

impl Measurements {
    /// Measures `facts` (and the history and partitions of `record`).
    pub fn measure(facts: &Facts, record: &RunRecord) -> Measurements {
        let mut m = Measurements::default();
        m.measure_removals(facts);
        let ops = operations(&record.history);
        let lookup_dead = |op: &Operation| {
            op.is_ok()
                && matches!(&op.result, Value::List(items) if items.iter().any(|v| matches!(v,
                    Value::Str(i) if facts.dead_at(i, op.complete_ns.unwrap_or(facts.end_ns)))))
        };
        let call_dead = |op: &Operation| matches!(&op.argument, Value::Str(i) if facts.dead_at(i, op.invoke_ns));
        for op in &ops {
            match op.f {
                Function::Lookup => {
                    m.lookups += 1;
                    match op.outcome {
                        Some(EventType::Ok) => m.lookups_ok += 1,
                        Some(EventType::Fail) => m.lookups_fail += 1,
                        Some(EventType::Info) => m.lookups_info += 1,
                        _ => {}
                    }
                    m.stale_lookups += lookup_dead(op) as u64;
                }
                Function::Call if *op.argument == Value::Nil => m.calls_without_instance += 1,
                Function::Call => {
                    m.calls += 1;
                    m.calls_ok += op.is_ok() as u64;
                    m.dead_calls += call_dead(op) as u64;
                }
                _ => {}
            }
        }
        // Per partition side.
        let node_of: BTreeMap<&str, NodeId> =
            facts.clients.iter().map(|&c| (facts.name(c), c)).collect();
        for (segment, up) in judged_segments(record) {
            for op in ops.iter().filter(|op| {
                op.invoke_ns >= segment.start_ns
                    && op.invoke_ns < segment.end_ns
                    && op.complete_ns.is_some_and(|c| c < segment.end_ns)
            }) {
                let Some(&client) = node_of.get(op.node) else {
                    continue;
                };
                let (side, _) = client_side_among(&facts.registry, &segment.cut, &up, client);
                let tally = match side {
                    Side::Majority => &mut m.majority,
                    Side::Minority => &mut m.minority,
                };
                match op.f {
                    Function::Lookup => {
                        tally.lookups += 1;
                        tally.lookups_ok += op.is_ok() as u64;
                        tally.stale_lookups += lookup_dead(op) as u64;
                    }
                    Function::Call if *op.argument != Value::Nil => {
                        tally.calls += 1;
                        tally.calls_ok += op.is_ok() as u64;
                        tally.dead_calls += call_dead(op) as u64;
                    }
                    _ => {}
                }
            }
        }
        m
    }

    /// Removal times and stale windows from the view timelines.
    fn measure_removals(&mut self, facts: &Facts) {
        for (instance, intervals) in &facts.dead {
            let Some((_, service)) = facts.instances.get(instance) else {
                continue;
            };
            for &(from, until) in intervals {
                self.deaths += 1;
                let until = until.unwrap_or(facts.end_ns);
                for (observers, is_client) in [(&facts.registry, false), (&facts.clients, true)] {
                    for &node in observers {
                        let timeline = facts.timeline(node, service);
                        if !view_at(timeline, from).contains(instance) {
                            continue;
                        }
                        let removed = timeline
                            .iter()
                            .find(|(t, v)| *t > from && *t < until && !v.contains(instance));
                        match removed {
                            Some((t, _)) if is_client => self.client_removals_ns.push(t - from),
                            Some((t, _)) => self.server_removals_ns.push(t - from),
                            None => self.not_removed.push((instance.clone(), node, from)),
                        }
                    }
                }
            }
        }
        for &client in &facts.clients {
            let mut stale = 0;
            for service in facts.services() {
                let timeline = facts.timeline(client, service);
                // Walk the timeline, cut at every death boundary, summing the time the view
                // listed an instance dead then.
                let mut cuts: BTreeSet<u64> = timeline.iter().map(|(t, _)| *t).collect();
                for intervals in facts.dead.values() {
                    for &(from, until) in intervals {
                        cuts.insert(from);
                        cuts.insert(until.unwrap_or(facts.end_ns));
                    }
                }
                cuts.insert(facts.end_ns);
                let cuts: Vec<u64> = cuts.into_iter().filter(|&t| t <= facts.end_ns).collect();
                for w in cuts.windows(2) {
                    let view = view_at(timeline, w[0]);
                    if view.iter().any(|i| facts.dead_at(i, w[0])) {
                        stale += w[1] - w[0];
                    }
                }
            }
            self.stale_window_ns.push((client, stale));
        }
    }

    /// The measurements as report metrics.
    pub fn metrics(&self) -> BTreeMap<String, serde_json::Value> {
        let mut out = BTreeMap::new();
        let mut put = |k: &str, v: serde_json::Value| {
            out.insert(k.to_string(), v);
        };
        let max_ms = |xs: &[u64]| xs.iter().max().map(|&x| x as f64 / 1e6);
        let mean_ms = |xs: &[u64]| {
            (!xs.is_empty()).then(|| xs.iter().sum::<u64>() as f64 / xs.len() as f64 / 1e6)
        };
        let share = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        put("deaths", self.deaths.into());
        put(
            "removal_servers_ms_max",
            max_ms(&self.server_removals_ns).into(),
        );
        put(
            "removal_servers_ms_mean",
            mean_ms(&self.server_removals_ns).into(),
        );
        put(
            "removal_clients_ms_max",
            max_ms(&self.client_removals_ns).into(),
        );
        put(
            "removal_clients_ms_mean",
            mean_ms(&self.client_removals_ns).into(),
        );
        put("views_not_removed", (self.not_removed.len() as u64).into());
        put("calls", self.calls.into());
        put("calls_ok", self.calls_ok.into());
        put("calls_to_dead", self.dead_calls.into());
        put("dead_call_share", share(self.dead_calls, self.calls).into());
        put("calls_without_instance", self.calls_without_instance.into());
        put("lookups", self.lookups.into());
        put("lookups_ok", self.lookups_ok.into());
        put("lookups_fail", self.lookups_fail.into());
        put("lookups_info", self.lookups_info.into());
        put("stale_lookups", self.stale_lookups.into());
        let windows: Vec<u64> = self.stale_window_ns.iter().map(|(_, w)| *w).collect();
        put("stale_window_ms_max", max_ms(&windows).into());
        put("stale_window_ms_mean", mean_ms(&windows).into());
        for (side, t) in [("majority", &self.majority), ("minority", &self.minority)] {
            put(&format!("{side}_lookups"), t.lookups.into());
            put(
                &format!("{side}_lookup_ok_share"),
                share(t.lookups_ok, t.lookups).into(),
            );
            put(&format!("{side}_stale_lookups"), t.stale_lookups.into());
            put(&format!("{side}_calls"), t.calls.into());
            put(&format!("{side}_calls_ok"), t.calls_ok.into());
            put(&format!("{side}_calls_to_dead"), t.dead_calls.into());
        }
        out
    }
}

/// Judges `m` against the bounds of `config`.
pub fn bounds(config: &Config, m: &Measurements, facts: &Facts) -> CheckResult {
    let mut bounds = Vec::new();
    let show_ms = |x: f64| ms(x.round() as u64);
    let show_share = |x: f64| format!("{x:.3}");
    if let Some(max) = config.removal_time_max {
        let what = "time from an instance's death to its removal from every view";
        let worst = m
            .server_removals_ns
            .iter()
            .chain(&m.client_removals_ns)
            .max()
            .copied();
        // A view that never dropped a dead instance although the run (or the death) lasted
        // longer than the bound breaks it too.
        let overdue: Vec<String> = m
            .not_removed
            .iter()
            .filter(|(instance, _, from)| {
                let until = facts
                    .dead
                    .get(instance)
                    .and_then(|iv| iv.iter().find(|(f, _)| f == from))
                    .and_then(|(_, u)| *u)
                    .unwrap_or(facts.end_ns);
                until - from > max.as_nanos()
            })
            .map(|(instance, node, from)| {
                format!(
                    "{instance} (dead since {}) still listed by {}",
                    ms(*from),
                    facts.name(*node)
                )
            })
            .collect();
        bounds.push(if !overdue.is_empty() {
            Bound {
                verdict: Verdict::Fail,
                line: format!("{what}: never removed: {}", overdue.join("; ")),
            }
        } else {
            match worst {
                Some(w) => Bound::judge(what, w as f64, max.as_nanos() as f64, show_ms),
                None => Bound::unknown(what, "no listed instance died"),
            }
        });
    }
    if let Some(max) = config.dead_call_share_max {
        let what = "share of calls to dead instances";
        bounds.push(if m.calls > 0 {
            Bound::judge(
                &format!("{what} ({} of {} calls)", m.dead_calls, m.calls),
                m.dead_calls as f64 / m.calls as f64,
                max,
                show_share,
            )
        } else {
            Bound::unknown(what, "no call was made to an instance")
        });
    }
    if let Some(max) = config.stale_window_max {
        let what = "longest stale window of a client";
        bounds.push(match m.stale_window_ns.iter().max_by_key(|(_, w)| *w) {
            Some((client, w)) => Bound::judge(
                &format!("{what} ({})", facts.name(*client)),
                *w as f64,
                max.as_nanos() as f64,
                show_ms,
            ),
            None => Bound::unknown(what, "no discovering client"),
        });
    }
    for (bound, side, tally, is_min) in [
        (config.majority_lookup_ok_min, "majority", &m.majority, true),
        (
            config.minority_lookup_ok_max,
            "minority",
            &m.minority,
            false,
        ),
    ] {
        let Some(bound) = bound else { continue };
        let what = format!("share of lookups ok on the {side} side of partitions");
        bounds.push(if tally.lookups == 0 {
            Bound::unknown(&what, "no lookup was judged on that side")
        } else {
            let x = tally.lookups_ok as f64 / tally.lookups as f64;
            let what = format!("{what} ({} of {})", tally.lookups_ok, tally.lookups);
            if is_min {
                Bound::judge_min(&what, x, bound, show_share)
            } else {
                Bound::judge(&what, x, bound, show_share)
            }
        });
    }
    if bounds.is_empty() {
        let mut result = CheckResult::new(
            CHECK_BOUNDS,
            Verdict::Pass,
            "measured (no bound set in [check.registry-bounds])",
        );
        result.metrics = m.metrics();
        return result;
    }
    conclude(CHECK_BOUNDS, &bounds, m.metrics())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registry server n0, client c0 (node 1), instances web1 (node 2) and web2 (node 3);
    /// web2 crashes at 10s and never restarts.
    fn facts(server: Timeline, client: Timeline) -> Facts {
        let mut views = BTreeMap::new();
        views.insert((NodeId(0), "web".to_string()), server);
        views.insert((NodeId(1), "web".to_string()), client);
        Facts {
            names: vec!["n0".into(), "c0".into(), "web1".into(), "web2".into()],
            end_ns: 30_000_000_000,
            registry: vec![NodeId(0)],
            clients: vec![NodeId(1)],
            instances: [
                ("web1".to_string(), (NodeId(2), "web".to_string())),
                ("web2".to_string(), (NodeId(3), "web".to_string())),
            ]
            .into_iter()
            .collect(),
            views,
            dead: [
                ("web1".to_string(), vec![]),
                ("web2".to_string(), vec![(10_000_000_000, None)]),
            ]
            .into_iter()
            .collect(),
            up_at_end: vec![true; 4],
        }
    }

    fn set(xs: &[&str]) -> BTreeSet<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn views_that_agree_at_the_end_converge_and_removal_times_are_measured() {
        let f = facts(
            vec![(S, set(&["web1", "web2"])), (13 * S, set(&["web1"]))],
            vec![(2 * S, set(&["web1", "web2"])), (14 * S, set(&["web1"]))],
        );
        assert_eq!(convergence(&f).verdict, Verdict::Pass);
        let mut m = Measurements::default();
        m.measure_removals(&f);
        assert_eq!(m.deaths, 1);
        assert_eq!(m.server_removals_ns, [3 * S]);
        assert_eq!(m.client_removals_ns, [4 * S]);
        assert_eq!(m.stale_window_ns, [(NodeId(1), 4 * S)]);
        let config = Config {
            removal_time_max: Some(Duration::from_secs(3)),
            ..Config::default()
        };
        assert_eq!(
            bounds(&config, &m, &f).verdict,
            Verdict::Fail,
            "4s is above 3s"
        );
        let config = Config {
            removal_time_max: Some(Duration::from_secs(4)),
            ..Config::default()
        };
        assert_eq!(bounds(&config, &m, &f).verdict, Verdict::Pass);
    }

    #[test]
    fn a_client_still_listing_a_dead_instance_at_the_end_diverges_and_is_never_removed() {
        let f = facts(
            vec![(S, set(&["web1", "web2"])), (13 * S, set(&["web1"]))],
            vec![(2 * S, set(&["web1", "web2"]))],
        );
        let result = convergence(&f);
        assert_eq!(result.verdict, Verdict::Fail);
        assert!(
            result
                .evidence
                .iter()
                .any(|e| e.contains("still listed somewhere: web2"))
        );
        let mut m = Measurements::default();
        m.measure_removals(&f);
        assert_eq!(m.not_removed, [("web2".to_string(), NodeId(1), 10 * S)]);
        assert_eq!(m.stale_window_ns, [(NodeId(1), 20 * S)]);
        let config = Config {
            removal_time_max: Some(Duration::from_secs(5)),
            ..Config::default()
        };
        let result = bounds(&config, &m, &f);
        assert_eq!(result.verdict, Verdict::Fail);
        assert!(
            result
                .evidence
                .iter()
                .any(|e| e.contains("still listed by c0")),
            "{result:?}"
        );
    }

    #[test]
    fn bounds_options_are_checked_at_their_keys() {
        let config = Config {
            dead_call_share_max: Some(1.5),
            stale_window_max: Some(Duration::from_secs(0)),
            ..Config::default()
        };
        let problems: Vec<String> = config.problems().iter().map(|e| format!("{e:?}")).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("dead_call_share_max"));
        assert!(problems[1].contains("stale_window_max"));
    }
}
