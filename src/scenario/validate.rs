//! Semantic validation: everything serde's types cannot say. Each rule reports the key path of
//! the offending value (located in the file by [`ScenarioError::at_path`]) and what was expected.

use std::collections::BTreeSet;
use std::path::Path;

use super::error::PathSeg;
use super::{
    FaultKind, FaultSpec, LatencyDistribution, LatencySpec, NodeList, PartitionShape, Scenario,
    ScenarioError, Verdict,
};
use crate::protocols::{self, ProtocolInfo};
use crate::sim::topology::{RESERVED_NAMES, Topology};

/// Bounds on the size of a scenario (STYLE.md rule 16: bound everything).
pub mod limits {
    /// Most server nodes.
    pub const MAX_SERVERS: usize = 256;
    /// Most client nodes.
    pub const MAX_CLIENTS: u32 = 256;
    /// Most logical processes per client.
    pub const MAX_CONCURRENCY: u32 = 64;
    /// Longest run, in seconds of simulated time.
    pub const MAX_DURATION_S: u64 = 24 * 3600;
    /// Most keys in a key-value workload.
    pub const MAX_KEYS: u32 = 100_000;
    /// Most scripted faults and link overrides.
    pub const MAX_ENTRIES: usize = 10_000;
}

struct V<'a> {
    path: &'a Path,
    text: &'a str,
}

impl V<'_> {
    fn err(&self, path: &[PathSeg<'_>], message: impl Into<String>) -> ScenarioError {
        ScenarioError::at_path(self.path, self.text, path, message)
    }

    fn check(
        &self,
        ok: bool,
        path: &[PathSeg<'_>],
        message: impl FnOnce() -> String,
    ) -> Result<(), ScenarioError> {
        if ok {
            Ok(())
        } else {
            Err(self.err(path, message()))
        }
    }

    fn probability(&self, p: f64, path: &[PathSeg<'_>]) -> Result<(), ScenarioError> {
        self.check((0.0..=1.0).contains(&p), path, || {
            format!("expected a probability between 0 and 1, found {p}")
        })
    }

    fn latency(&self, spec: &LatencySpec, path: &[PathSeg<'_>]) -> Result<(), ScenarioError> {
        let hour = super::Duration::from_secs(3600);
        let LatencySpec::Distribution(d) = spec else {
            let LatencySpec::Constant(c) = spec else {
                unreachable!()
            };
            return self.check(*c <= hour, path, || {
                "expected a latency of at most 1h".into()
            });
        };
        let key = |k: &'static str| -> Vec<PathSeg<'_>> {
            let mut p = path.to_vec();
            p.push(PathSeg::Key(k));
            p
        };
        match d {
            LatencyDistribution::Constant { value } => {
                self.check(*value <= hour, &key("value"), || {
                    "expected a latency of at most 1h".into()
                })
            }
            LatencyDistribution::Uniform { min, max } => {
                self.check(min <= max, &key("max"), || {
                    format!("empty latency range: max ({max}) is below min ({min})")
                })?;
                self.check(*max <= hour, &key("max"), || {
                    "expected a latency of at most 1h".into()
                })
            }
            LatencyDistribution::Exponential { mean, min, max } => {
                self.check(mean > min, &key("mean"), || {
                    format!("expected mean ({mean}) above min ({min})")
                })?;
                self.check(*mean <= hour, &key("mean"), || {
                    "expected a latency of at most 1h".into()
                })?;
                match max {
                    Some(max) => self.check(max >= mean, &key("max"), || {
                        format!("empty latency range: max ({max}) is below the mean ({mean})")
                    }),
                    None => Ok(()),
                }
            }
            LatencyDistribution::Normal { mean, std_dev, max } => {
                self.check(*mean <= hour && *std_dev <= hour, &key("mean"), || {
                    "expected a latency of at most 1h".into()
                })?;
                match max {
                    Some(max) => self.check(max >= mean, &key("max"), || {
                        format!("empty latency range: max ({max}) is below the mean ({mean})")
                    }),
                    None => Ok(()),
                }
            }
        }
    }

    /// A reference to nodes: a node, a group, `all`, `*`, `servers`, `clients`, and (if
    /// `dynamic`) `random` or `leader`.
    fn node_ref(
        &self,
        topo: &Topology,
        r: &str,
        dynamic: bool,
        path: &[PathSeg<'_>],
    ) -> Result<(), ScenarioError> {
        if dynamic && (r == "random" || r == "leader") {
            return Ok(());
        }
        match topo.resolve_static(r) {
            Some(ids) if !ids.is_empty() => Ok(()),
            Some(_) => Err(self.err(path, format!("\"{r}\" names no node (an empty group)"))),
            None => {
                let extra = if dynamic {
                    ", \"random\", \"leader\""
                } else {
                    ""
                };
                Err(self.err(
                    path,
                    format!(
                        "unknown node or group \"{r}\"; expected one of {}, a group, \"all\", \"servers\", \"clients\"{extra}",
                        topo.names.join(", ")
                    ),
                ))
            }
        }
    }
}

/// Checks the bug names of a protocol section (`[<section>] bugs = [...]`).
pub fn validate_bugs(
    bugs: &[String],
    protocol: &ProtocolInfo,
    path: &Path,
    text: &str,
    section: &str,
) -> Result<(), ScenarioError> {
    for (i, bug) in bugs.iter().enumerate() {
        if !protocol.bugs.iter().any(|b| b.name == bug) {
            let known: Vec<&str> = protocol.bugs.iter().map(|b| b.name).collect();
            return Err(ScenarioError::at_path(
                path,
                text,
                &[section.into(), "bugs".into(), i.into()],
                format!(
                    "unknown planted bug \"{bug}\" for {}; expected one of: {}",
                    protocol.name,
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Validates a deserialized scenario against its source text.
pub fn validate(s: &Scenario, path: &Path, text: &str) -> Result<(), ScenarioError> {
    let v = V { path, text };
    let duration = s.duration;
    v.check(duration.as_nanos() > 0, &["duration".into()], || {
        "expected a positive duration".into()
    })?;
    v.check(
        duration.as_nanos() <= limits::MAX_DURATION_S * 1_000_000_000,
        &["duration".into()],
        || "expected at most 24h of simulated time".into(),
    )?;

    // Cluster.
    let protocol = protocols::protocol(&s.cluster.protocol).ok_or_else(|| {
        let known: Vec<&str> = protocols::PROTOCOLS.iter().map(|p| p.name).collect();
        v.err(
            &["cluster".into(), "protocol".into()],
            format!(
                "unknown protocol \"{}\"; expected one of: {}",
                s.cluster.protocol,
                known.join(", ")
            ),
        )
    })?;
    let nodes_path: [PathSeg<'_>; 2] = ["cluster".into(), "nodes".into()];
    match &s.cluster.nodes {
        NodeList::Count(n) => v.check(
            (1..=limits::MAX_SERVERS as u32).contains(n),
            &nodes_path,
            || {
                format!(
                    "expected between 1 and {} nodes, found {n}",
                    limits::MAX_SERVERS
                )
            },
        )?,
        NodeList::Names(names) => {
            v.check(
                !names.is_empty() && names.len() <= limits::MAX_SERVERS,
                &nodes_path,
                || format!("expected between 1 and {} node names", limits::MAX_SERVERS),
            )?;
            let mut seen = BTreeSet::new();
            for (i, name) in names.iter().enumerate() {
                let p = ["cluster".into(), "nodes".into(), i.into()];
                v.check(valid_name(name), &p, || {
                    format!("invalid node name \"{name}\"; expected letters, digits, '-' or '_'")
                })?;
                v.check(!RESERVED_NAMES.contains(&name.as_str()), &p, || {
                    format!("\"{name}\" is a reserved name")
                })?;
                v.check(!is_client_name(name, s.workload.clients), &p, || {
                    format!(
                        "\"{name}\" is the name of a client node (c1..c{})",
                        s.workload.clients
                    )
                })?;
                v.check(seen.insert(name), &p, || {
                    format!("duplicate node name \"{name}\"")
                })?;
            }
        }
    }
    let topo = Topology::new(s);
    for (group, members) in &s.cluster.groups {
        let p = ["cluster".into(), "groups".into(), PathSeg::Key(group)];
        v.check(
            valid_name(group) && !RESERVED_NAMES.contains(&group.as_str()),
            &p,
            || format!("invalid group name \"{group}\"; expected a name that is not reserved"),
        )?;
        v.check(topo.node(group).is_none(), &p, || {
            format!("group \"{group}\" has the name of a node")
        })?;
        v.check(!members.is_empty(), &p, || {
            format!("group \"{group}\" is empty")
        })?;
        for (i, m) in members.iter().enumerate() {
            let mp = [
                "cluster".into(),
                "groups".into(),
                PathSeg::Key(group),
                i.into(),
            ];
            v.check(topo.node(m).is_some(), &mp, || {
                format!(
                    "unknown node \"{m}\" in group \"{group}\"; expected one of {}",
                    topo.names.join(", ")
                )
            })?;
        }
    }

    // Network.
    let net = &s.network;
    v.probability(
        net.loss_probability,
        &["network".into(), "loss_probability".into()],
    )?;
    v.probability(
        net.duplicate_probability,
        &["network".into(), "duplicate_probability".into()],
    )?;
    v.latency(&net.latency, &["network".into(), "latency".into()])?;
    v.check(
        net.links.len() <= 1000,
        &["network".into(), "link".into()],
        || "expected at most 1000 link overrides".into(),
    )?;
    for (i, link) in net.links.iter().enumerate() {
        let p = |k: &'static str| -> [PathSeg<'static>; 4] {
            [
                "network".into(),
                "link".into(),
                PathSeg::Index(i),
                PathSeg::Key(k),
            ]
        };
        if link.from != "*" {
            v.node_ref(&topo, &link.from, false, &p("from"))?;
        }
        if link.to != "*" {
            v.node_ref(&topo, &link.to, false, &p("to"))?;
        }
        if let Some(l) = &link.latency {
            v.latency(l, &p("latency"))?;
        }
        if let Some(x) = link.loss_probability {
            v.probability(x, &p("loss_probability"))?;
        }
        if let Some(x) = link.duplicate_probability {
            v.probability(x, &p("duplicate_probability"))?;
        }
    }

    // Clocks.
    for (node, clock) in &s.clock {
        let p = ["clock".into(), PathSeg::Key(node)];
        v.check(topo.node(node).is_some(), &p, || {
            format!(
                "unknown node \"{node}\"; expected one of {}",
                topo.names.join(", ")
            )
        })?;
        let dp = ["clock".into(), PathSeg::Key(node), "drift".into()];
        v.check(clock.drift.is_finite() && clock.drift > -1.0 && clock.drift <= 100.0, &dp, || {
            format!("expected a drift above -1 (a clock must move forward) and at most 100, found {}", clock.drift)
        })?;
    }

    // Faults.
    v.check(
        s.faults.len() <= limits::MAX_ENTRIES,
        &["fault".into()],
        || "expected at most 10000 faults".into(),
    )?;
    for (i, f) in s.faults.iter().enumerate() {
        validate_fault(&v, s, &topo, i, f)?;
    }

    // Nemesis.
    if let Some(n) = &s.nemesis {
        let p = |k: &'static str| -> [PathSeg<'static>; 2] { ["nemesis".into(), PathSeg::Key(k)] };
        v.check(!n.faults.is_empty(), &p("faults"), || {
            "expected at least one fault kind".into()
        })?;
        v.check(n.interval.as_nanos() > 0, &p("interval"), || {
            "expected a positive duration".into()
        })?;
        v.check(
            n.fault_duration.as_nanos() > 0,
            &p("fault_duration"),
            || "expected a positive duration".into(),
        )?;
        v.check(n.final_heal < duration, &p("final_heal"), || {
            format!("expected less than the run's duration ({duration})")
        })?;
        v.check(n.start < duration, &p("start"), || {
            format!("expected less than the run's duration ({duration})")
        })?;
        v.check(
            n.clock_drift_max > 0.0 && n.clock_drift_max < 1.0,
            &p("clock_drift_max"),
            || "expected a drift magnitude between 0 and 1 (exclusive)".into(),
        )?;
        v.check(
            n.clock_jump_max.as_nanos() > 0,
            &p("clock_jump_max"),
            || "expected a positive duration".into(),
        )?;
        for (key, d) in [
            ("slow_latency_max", n.slow_latency_max),
            ("reorder_latency_max", n.reorder_latency_max),
        ] {
            v.check(
                d.as_nanos() > 0 && d <= super::Duration::from_secs(3600),
                &p(key),
                || format!("expected a latency above 0s and at most 1h, found {d}"),
            )?;
        }
        v.check(
            n.loss_probability_max > 0.0 && n.loss_probability_max <= 1.0,
            &p("loss_probability_max"),
            || {
                format!(
                    "expected a probability above 0 and at most 1, found {}",
                    n.loss_probability_max
                )
            },
        )?;
    }

    // Workload.
    let w = &s.workload;
    let wp = |k: &'static str| -> [PathSeg<'static>; 2] { ["workload".into(), PathSeg::Key(k)] };
    v.check(w.clients <= limits::MAX_CLIENTS, &wp("clients"), || {
        format!("expected at most {} clients", limits::MAX_CLIENTS)
    })?;
    v.check(
        (1..=limits::MAX_CONCURRENCY).contains(&w.concurrency),
        &wp("concurrency"),
        || format!("expected between 1 and {}", limits::MAX_CONCURRENCY),
    )?;
    if let Some(rate) = w.rate_per_s {
        v.check(
            rate.is_finite() && rate > 0.0 && rate <= 1e6,
            &wp("rate_per_s"),
            || format!("expected a rate above 0 and at most 1000000 per second, found {rate}"),
        )?;
    }
    v.check(
        w.request_timeout.as_nanos() > 0,
        &wp("request_timeout"),
        || "expected a positive duration".into(),
    )?;
    v.check(
        w.attempt_timeout.as_nanos() > 0,
        &wp("attempt_timeout"),
        || "expected a positive duration".into(),
    )?;
    v.check(
        (1..=limits::MAX_KEYS).contains(&w.keys),
        &wp("keys"),
        || format!("expected between 1 and {}", limits::MAX_KEYS),
    )?;
    let allowed: Vec<&str> = protocol
        .workload
        .default_mix()
        .iter()
        .map(|(f, _)| *f)
        .collect();
    for (f, weight) in &w.mix {
        let p = ["workload".into(), "mix".into(), PathSeg::Key(f)];
        v.check(allowed.contains(&f.as_str()), &p, || {
            format!(
                "unknown operation \"{f}\" for {}; expected one of: {}",
                protocol.name,
                allowed.join(", ")
            )
        })?;
        v.check(weight.is_finite() && *weight >= 0.0, &p, || {
            format!("expected a weight of 0 or more, found {weight}")
        })?;
    }
    if !w.mix.is_empty() {
        v.check(w.mix.values().sum::<f64>() > 0.0, &wp("mix"), || {
            "expected at least one positive weight".into()
        })?;
    }
    let stop = w.stop.unwrap_or(duration);
    v.check(stop <= duration, &wp("stop"), || {
        format!("expected at most the run's duration ({duration})")
    })?;
    v.check(w.start < stop, &wp("start"), || {
        format!("expected a start before the workload stops ({stop})")
    })?;

    // Checks and expectations.
    v.check(
        s.check.convergence.within.as_nanos() > 0,
        &["check".into(), "convergence".into(), "within".into()],
        || "expected a positive duration".into(),
    )?;
    let av = &s.check.availability;
    for (key, value) in [
        ("majority_ok_min", av.majority_ok_min),
        ("minority_ok_max", av.minority_ok_max),
    ] {
        if let Some(x) = value {
            v.probability(
                x,
                &["check".into(), "availability".into(), PathSeg::Key(key)],
            )?;
        }
    }
    for (key, d) in [
        ("leader_within", s.check.liveness.leader_within),
        ("answer_within", s.check.liveness.answer_within),
    ] {
        v.check(
            d.as_nanos() > 0,
            &["check".into(), "liveness".into(), PathSeg::Key(key)],
            || "expected a positive duration".into(),
        )?;
    }
    let check_names: Vec<&str> = crate::check::checks_for(protocol).map(|c| c.name).collect();
    for (i, name) in s.expect.failing_checks.iter().enumerate() {
        v.check(
            check_names.contains(&name.as_str()),
            &["expect".into(), "failing_checks".into(), i.into()],
            || {
                format!(
                    "unknown check \"{name}\" for {}; expected one of: {}",
                    protocol.name,
                    check_names.join(", ")
                )
            },
        )?;
    }
    v.check(
        s.expect.failing_checks.is_empty() || s.expect.verdict == Verdict::Fail,
        &["expect".into(), "verdict".into()],
        || "expected verdict = \"fail\" when failing_checks are listed".into(),
    )?;

    (protocol.validate)(s, text, path)
}

fn validate_fault(
    v: &V<'_>,
    s: &Scenario,
    topo: &Topology,
    i: usize,
    f: &FaultSpec,
) -> Result<(), ScenarioError> {
    let p = |k: &'static str| -> [PathSeg<'static>; 3] {
        ["fault".into(), PathSeg::Index(i), PathSeg::Key(k)]
    };
    let kind = f.kind.name();
    v.check(f.at < s.duration, &p("at"), || {
        format!("expected a time before the end of the run ({})", s.duration)
    })?;
    if let Some(d) = f.duration {
        v.check(d.as_nanos() > 0, &p("duration"), || {
            "expected a positive duration".into()
        })?;
    }
    let allowed: &[&str] = match f.kind {
        FaultKind::Partition => &["target", "shape", "groups", "duration"],
        FaultKind::Isolate | FaultKind::Crash | FaultKind::Pause => &["target", "duration"],
        FaultKind::Cut => &["from", "to", "duration"],
        FaultKind::Degrade => &[
            "target",
            "from",
            "to",
            "latency",
            "loss_probability",
            "duplicate_probability",
            "reorder",
            "duration",
        ],
        FaultKind::Heal => &[],
        FaultKind::Restart | FaultKind::Resume => &["target"],
        FaultKind::ClockJump => &["target", "delta", "duration"],
        FaultKind::ClockDrift => &["target", "drift", "duration"],
    };
    let present = [
        ("target", f.target.is_some()),
        ("shape", f.shape.is_some()),
        ("groups", f.groups.is_some()),
        ("from", f.from.is_some()),
        ("to", f.to.is_some()),
        ("delta", f.delta.is_some()),
        ("drift", f.drift.is_some()),
        ("latency", f.latency.is_some()),
        ("loss_probability", f.loss_probability.is_some()),
        ("duplicate_probability", f.duplicate_probability.is_some()),
        ("reorder", f.reorder.is_some()),
        ("duration", f.duration.is_some()),
    ];
    for (key, is_present) in present {
        v.check(!is_present || allowed.contains(&key), &p(key), || {
            let what = if allowed.is_empty() {
                "no other keys".to_string()
            } else {
                allowed.join(", ")
            };
            format!("`{key}` does not apply to a {kind} fault (it takes {what})")
        })?;
    }
    let require = |key: &'static str, present: bool| {
        v.check(present, &p("kind"), || {
            format!("a {kind} fault needs `{key}`")
        })
    };
    match f.kind {
        FaultKind::Partition => {
            v.check(f.shape.is_some() != f.groups.is_some(), &p("kind"), || {
                "a partition needs exactly one of `shape` (halves, random-halves, majorities-ring, bridge, random-node) or `groups`".into()
            })?;
            if let Some(groups) = &f.groups {
                v.check(!groups.is_empty(), &p("groups"), || {
                    "expected at least one side (servers in no side form one more)".into()
                })?;
                let mut seen: BTreeSet<u32> = BTreeSet::new();
                for (g, side) in groups.iter().enumerate() {
                    let sp = [
                        "fault".into(),
                        PathSeg::Index(i),
                        "groups".into(),
                        PathSeg::Index(g),
                    ];
                    v.check(!side.is_empty(), &sp, || "expected a non-empty side".into())?;
                    for (k, r) in side.iter().enumerate() {
                        let rp = [
                            "fault".into(),
                            PathSeg::Index(i),
                            "groups".into(),
                            PathSeg::Index(g),
                            PathSeg::Index(k),
                        ];
                        v.node_ref(topo, r, false, &rp)?;
                        for id in topo.resolve_static(r).unwrap_or_default() {
                            v.check(seen.insert(id.0), &rp, || {
                                format!("node {} is on two sides", topo.name(id))
                            })?;
                        }
                    }
                }
                v.check(
                    groups.len() >= 2 || topo.servers.iter().any(|s| !seen.contains(&s.0)),
                    &p("groups"),
                    || "a single side must leave some server out (they form the other side)".into(),
                )?;
            }
            if f.target.is_some() {
                v.check(f.shape == Some(PartitionShape::Halves), &p("target"), || {
                    "`target` only applies to shape = \"halves\" (the targets go to the minority)".into()
                })?;
            }
            if let Some(t) = &f.target {
                v.node_ref(topo, t, true, &p("target"))?;
            }
            if f.shape.is_some() {
                v.check(topo.servers.len() >= 2, &p("shape"), || {
                    "a partition needs at least two servers".into()
                })?;
            }
        }
        FaultKind::Cut => {
            require("from", f.from.is_some())?;
            require("to", f.to.is_some())?;
            v.node_ref(
                topo,
                f.from.as_deref().unwrap_or_default(),
                true,
                &p("from"),
            )?;
            v.node_ref(topo, f.to.as_deref().unwrap_or_default(), true, &p("to"))?;
        }
        FaultKind::Degrade => validate_degrade(v, topo, f, &p)?,
        FaultKind::Heal => {}
        FaultKind::Isolate
        | FaultKind::Crash
        | FaultKind::Pause
        | FaultKind::ClockJump
        | FaultKind::ClockDrift => {
            require("target", f.target.is_some())?;
            v.node_ref(
                topo,
                f.target.as_deref().unwrap_or_default(),
                true,
                &p("target"),
            )?;
        }
        FaultKind::Restart | FaultKind::Resume => {
            if let Some(t) = &f.target {
                v.node_ref(topo, t, false, &p("target"))?;
            }
        }
    }
    if f.kind == FaultKind::ClockJump {
        require("delta", f.delta.is_some())?;
    }
    if let (FaultKind::ClockDrift, drift) = (f.kind, f.drift) {
        require("drift", drift.is_some())?;
        let d = drift.unwrap_or_default();
        v.check(d.is_finite() && d > -1.0 && d <= 100.0, &p("drift"), || {
            format!(
                "expected a drift above -1 (a clock must move forward) and at most 100, found {d}"
            )
        })?;
    }
    // Undo-only faults must come after something they can undo.
    let undoes: &[FaultKind] = match f.kind {
        FaultKind::Heal => &[FaultKind::Partition, FaultKind::Isolate, FaultKind::Cut],
        FaultKind::Restart => &[FaultKind::Crash],
        FaultKind::Resume => &[FaultKind::Pause],
        _ => &[],
    };
    if !undoes.is_empty() {
        let nemesis_can = s.nemesis.is_some();
        let earlier = s
            .faults
            .iter()
            .take(i)
            .chain(s.faults.iter().skip(i + 1))
            .any(|g| undoes.contains(&g.kind) && g.at <= f.at);
        v.check(earlier || nemesis_can, &p("at"), || {
            let first = s
                .faults
                .iter()
                .filter(|g| undoes.contains(&g.kind))
                .map(|g| g.at)
                .min();
            let names: Vec<&str> = undoes.iter().map(|k| k.name()).collect();
            match first {
                Some(t) => format!(
                    "{kind} at {} comes before the first {} (at {t})",
                    f.at,
                    names.join("/")
                ),
                None => format!(
                    "{kind} at {} undoes nothing: there is no {} fault",
                    f.at,
                    names.join("/")
                ),
            }
        })?;
    }
    Ok(())
}

/// A `degrade` fault: its links (`target`, or both `from` and `to`) and at least one condition.
fn validate_degrade(
    v: &V<'_>,
    topo: &Topology,
    f: &FaultSpec,
    p: &dyn Fn(&'static str) -> [PathSeg<'static>; 3],
) -> Result<(), ScenarioError> {
    let one_way = f.from.is_some() || f.to.is_some();
    v.check(f.target.is_some() != one_way, &p("kind"), || {
        "a degrade fault needs either `target` (every link to and from those nodes) or `from` \
         and `to` (one-way links), not both"
            .into()
    })?;
    if let Some(t) = &f.target {
        v.node_ref(topo, t, true, &p("target"))?;
    } else {
        for (key, value) in [("from", &f.from), ("to", &f.to)] {
            v.check(value.is_some(), &p("kind"), || {
                format!("a degrade fault with one-way links needs `{key}`")
            })?;
            v.node_ref(topo, value.as_deref().unwrap_or_default(), true, &p(key))?;
        }
    }
    v.check(
        f.latency.is_some()
            || f.loss_probability.is_some()
            || f.duplicate_probability.is_some()
            || f.reorder.is_some(),
        &p("kind"),
        || {
            "a degrade fault needs at least one of `latency`, `loss_probability`, \
             `duplicate_probability`, `reorder`"
                .into()
        },
    )?;
    if let Some(l) = &f.latency {
        v.latency(l, &p("latency"))?;
    }
    for (key, x) in [
        ("loss_probability", f.loss_probability),
        ("duplicate_probability", f.duplicate_probability),
    ] {
        if let Some(x) = x {
            v.probability(x, &p(key))?;
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_client_name(name: &str, clients: u32) -> bool {
    name.strip_prefix('c')
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (1..=clients).contains(&n))
}
