//! The fault schedule (the nemesis): scripted `[[fault]]` entries and random `[nemesis]` faults,
//! compiled into one timeline before the run starts.
//!
//! Every random choice (random targets, random partition sides, the nemesis's times and kinds)
//! is drawn here, from the run's fault stream, in file order and then nemesis order. The run
//! never draws from that stream again, so the schedule does not shift when protocol scheduling
//! changes (a different bug, a new message) for the same seed. Only observation-based targets
//! (`leader`) are resolved when the fault fires, because they depend on the run.
//!
//! This module also turns partition shapes into cut links; it is pure and unit-tested.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::process::NodeId;
use crate::scenario::topology::Topology;
use crate::scenario::{
    Duration, FaultKind, FaultSpec, LatencyDistribution, LatencySpec, Nemesis, NemesisFault,
    PartitionShape, Scenario,
};
use crate::sim::network::Condition;

/// Which nodes a fault acts on.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Targets {
    /// These nodes (resolved when planning, including `random`).
    Nodes(Vec<NodeId>),
    /// The server whose latest role observation is `leader`, with the highest term, when the
    /// fault fires. No leader: the fault is skipped (and traced as such).
    Leader,
}

/// Which directed links a `cut` or `degrade` fault acts on.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkSet {
    /// Every link to and from each of these nodes (links between two of them included).
    Of(Targets),
    /// The one-way links from each sender to each receiver other than itself.
    OneWay {
        /// Senders.
        from: Targets,
        /// Receivers.
        to: Targets,
    },
}

/// How a partition splits the cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionPlan {
    /// Explicit sides of servers (and explicitly placed clients).
    Sides(Vec<Vec<NodeId>>),
    /// Majority/minority halves with these targets put on the minority side.
    Halves(Targets),
    /// Servers in this ring order; each sees its nearest neighbours, a majority.
    MajoritiesRing(Vec<NodeId>),
    /// Servers in this order: first half, the bridge node, second half.
    Bridge(Vec<NodeId>),
}

/// What a planned fault does.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum FaultAction {
    /// Cut links between sides.
    Partition {
        /// The sides.
        plan: PartitionPlan,
    },
    /// Cut every link of the targets.
    Isolate {
        /// Nodes cut off.
        targets: Targets,
    },
    /// Cut one-way links.
    Cut {
        /// Senders.
        from: Targets,
        /// Receivers.
        to: Targets,
    },
    /// Change the network condition of some links until undone.
    Degrade {
        /// The links.
        links: LinkSet,
        /// What changes on them.
        condition: Condition,
    },
    /// Restore every cut link.
    Heal,
    /// Crash the targets.
    Crash {
        /// Nodes crashed.
        targets: Targets,
    },
    /// Restart the targets.
    Restart {
        /// Nodes restarted (if crashed).
        targets: Targets,
    },
    /// Pause the targets.
    Pause {
        /// Nodes paused.
        targets: Targets,
    },
    /// Resume the targets.
    Resume {
        /// Nodes resumed (if paused).
        targets: Targets,
    },
    /// Jump the targets' clocks.
    ClockJump {
        /// Nodes whose clocks jump.
        targets: Targets,
        /// The jump, in nanoseconds (negative: backwards).
        delta_ns: i64,
    },
    /// Set the targets' drift.
    ClockDrift {
        /// Nodes whose drift changes.
        targets: Targets,
        /// The new drift.
        drift: f64,
    },
}

/// One fault on the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedFault {
    /// Position on the timeline (also the owner id of the links it cuts).
    pub id: u64,
    /// Start, in global nanoseconds.
    pub at_ns: u64,
    /// When it is undone, if ever.
    pub undo_at_ns: Option<u64>,
    /// Where it came from: `fault[3]` or `nemesis`.
    pub origin: String,
    /// What it does.
    pub action: FaultAction,
}

/// Compiles the scenario's faults into a timeline sorted by start time (stable: file order, then
/// nemesis order, breaks ties). Assumes a validated scenario.
pub fn plan(scenario: &Scenario, topology: &Topology, rng: &mut ChaCha8Rng) -> Vec<PlannedFault> {
    let mut faults = Vec::new();
    for (i, spec) in scenario.faults.iter().enumerate() {
        let action = scripted_action(spec, topology, rng);
        faults.push(PlannedFault {
            id: 0,
            at_ns: spec.at.as_nanos(),
            undo_at_ns: spec.duration.map(|d| spec.at.as_nanos() + d.as_nanos()),
            origin: format!("fault[{i}]"),
            action,
        });
    }
    if let Some(nemesis) = &scenario.nemesis {
        faults.extend(nemesis_faults(
            nemesis,
            scenario.duration.as_nanos(),
            topology,
            rng,
        ));
    }
    faults.sort_by_key(|f| f.at_ns);
    for (id, fault) in faults.iter_mut().enumerate() {
        fault.id = id as u64;
    }
    faults
}

fn targets(reference: Option<&str>, topology: &Topology, rng: &mut ChaCha8Rng) -> Targets {
    match reference.unwrap_or("random") {
        "leader" => Targets::Leader,
        "random" => Targets::Nodes(vec![
            *topology
                .servers
                .choose(rng)
                .expect("validated: servers exist"),
        ]),
        other => Targets::Nodes(topology.resolve_static(other).unwrap_or_default()),
    }
}

fn scripted_action(spec: &FaultSpec, topology: &Topology, rng: &mut ChaCha8Rng) -> FaultAction {
    let target = spec.target.as_deref();
    match spec.kind {
        FaultKind::Partition => {
            let plan = match (&spec.groups, spec.shape) {
                (Some(groups), _) => PartitionPlan::Sides(
                    groups
                        .iter()
                        .map(|side| {
                            let mut ids: Vec<NodeId> = side
                                .iter()
                                .flat_map(|r| topology.resolve_static(r).unwrap_or_default())
                                .collect();
                            ids.sort();
                            ids.dedup();
                            ids
                        })
                        .collect(),
                ),
                (None, shape) => {
                    let shape = shape.unwrap_or(PartitionShape::Halves);
                    let minority = target.map(|t| targets(Some(t), topology, rng));
                    match (&spec.order, shape) {
                        // A given order replaces the draw (validated: a permutation of the
                        // servers, with these two shapes only).
                        (Some(order), PartitionShape::MajoritiesRing | PartitionShape::Bridge) => {
                            let order: Vec<NodeId> =
                                order.iter().filter_map(|n| topology.node(n)).collect();
                            if shape == PartitionShape::Bridge {
                                PartitionPlan::Bridge(order)
                            } else {
                                PartitionPlan::MajoritiesRing(order)
                            }
                        }
                        _ => shape_plan(shape, minority, topology, rng),
                    }
                }
            };
            FaultAction::Partition { plan }
        }
        FaultKind::Isolate => FaultAction::Isolate {
            targets: targets(target, topology, rng),
        },
        FaultKind::Cut => FaultAction::Cut {
            from: targets(spec.from.as_deref(), topology, rng),
            to: targets(spec.to.as_deref(), topology, rng),
        },
        FaultKind::Degrade => FaultAction::Degrade {
            links: match target {
                Some(t) => LinkSet::Of(targets(Some(t), topology, rng)),
                None => LinkSet::OneWay {
                    from: targets(spec.from.as_deref(), topology, rng),
                    to: targets(spec.to.as_deref(), topology, rng),
                },
            },
            condition: Condition {
                latency: spec.latency.clone(),
                loss_probability: spec.loss_probability,
                duplicate_probability: spec.duplicate_probability,
                reorder: spec.reorder,
            },
        },
        FaultKind::Heal => FaultAction::Heal,
        FaultKind::Crash => FaultAction::Crash {
            targets: targets(target, topology, rng),
        },
        FaultKind::Restart => FaultAction::Restart {
            targets: targets(Some(target.unwrap_or("all")), topology, rng),
        },
        FaultKind::Pause => FaultAction::Pause {
            targets: targets(target, topology, rng),
        },
        FaultKind::Resume => FaultAction::Resume {
            targets: targets(Some(target.unwrap_or("all")), topology, rng),
        },
        FaultKind::ClockJump => FaultAction::ClockJump {
            targets: targets(target, topology, rng),
            delta_ns: spec.delta.map_or(0, |d| d.0),
        },
        FaultKind::ClockDrift => FaultAction::ClockDrift {
            targets: targets(target, topology, rng),
            drift: spec.drift.unwrap_or(0.0),
        },
    }
}

/// A named shape as a plan; random orders are drawn now.
fn shape_plan(
    shape: PartitionShape,
    minority: Option<Targets>,
    topology: &Topology,
    rng: &mut ChaCha8Rng,
) -> PartitionPlan {
    let mut shuffled = topology.servers.clone();
    match shape {
        PartitionShape::Halves => {
            PartitionPlan::Halves(minority.unwrap_or(Targets::Nodes(Vec::new())))
        }
        PartitionShape::RandomHalves => {
            shuffled.shuffle(rng);
            let (minority, majority) = shuffled.split_at(shuffled.len() / 2);
            PartitionPlan::Sides(vec![sorted(majority), sorted(minority)])
        }
        PartitionShape::MajoritiesRing => {
            shuffled.shuffle(rng);
            PartitionPlan::MajoritiesRing(shuffled)
        }
        PartitionShape::Bridge => {
            shuffled.shuffle(rng);
            PartitionPlan::Bridge(shuffled)
        }
        PartitionShape::RandomNode => {
            let node = *shuffled.choose(rng).expect("validated: servers exist");
            let rest: Vec<NodeId> = topology
                .servers
                .iter()
                .copied()
                .filter(|&s| s != node)
                .collect();
            PartitionPlan::Sides(vec![rest, vec![node]])
        }
    }
}

/// `latency = { distribution = "uniform", min, max }`, in nanoseconds.
fn uniform_latency(min_ns: u64, max_ns: u64) -> LatencySpec {
    LatencySpec::Distribution(LatencyDistribution::Uniform {
        min: Duration(min_ns),
        max: Duration(max_ns),
    })
}

fn sorted(ids: &[NodeId]) -> Vec<NodeId> {
    let mut v = ids.to_vec();
    v.sort();
    v
}

fn nemesis_faults(
    nemesis: &Nemesis,
    duration_ns: u64,
    topology: &Topology,
    rng: &mut ChaCha8Rng,
) -> Vec<PlannedFault> {
    let mut out = Vec::new();
    let last_end = duration_ns.saturating_sub(nemesis.final_heal.as_nanos());
    let interval = nemesis.interval.as_nanos();
    let length = nemesis.fault_duration.as_nanos();
    let mut t = nemesis.start.as_nanos();
    loop {
        t += rng.gen_range(interval / 2..=interval + interval / 2);
        if t + length > last_end {
            break;
        }
        let kind = *nemesis
            .faults
            .choose(rng)
            .expect("validated: faults listed");
        let random = |rng: &mut ChaCha8Rng| {
            Targets::Nodes(vec![*topology.servers.choose(rng).expect("servers")])
        };
        let action = match kind {
            NemesisFault::Partition => {
                let shape = *[
                    PartitionShape::RandomHalves,
                    PartitionShape::MajoritiesRing,
                    PartitionShape::Bridge,
                    PartitionShape::RandomNode,
                ]
                .choose(rng)
                .expect("non-empty");
                FaultAction::Partition {
                    plan: shape_plan(shape, None, topology, rng),
                }
            }
            NemesisFault::Isolate => FaultAction::Isolate {
                targets: random(rng),
            },
            NemesisFault::IsolateLeader => FaultAction::Isolate {
                targets: Targets::Leader,
            },
            NemesisFault::Crash => FaultAction::Crash {
                targets: random(rng),
            },
            NemesisFault::CrashLeader => FaultAction::Crash {
                targets: Targets::Leader,
            },
            NemesisFault::Pause => FaultAction::Pause {
                targets: random(rng),
            },
            NemesisFault::ClockJump => {
                let max = nemesis.clock_jump_max.as_nanos() as i64;
                FaultAction::ClockJump {
                    targets: random(rng),
                    delta_ns: rng.gen_range(-max..=max),
                }
            }
            NemesisFault::ClockDrift => {
                let max = nemesis.clock_drift_max;
                FaultAction::ClockDrift {
                    targets: random(rng),
                    drift: rng.gen_range(-max..=max),
                }
            }
            NemesisFault::Slow => {
                let max = nemesis.slow_latency_max.as_nanos();
                FaultAction::Degrade {
                    links: LinkSet::Of(random(rng)),
                    condition: Condition {
                        latency: Some(uniform_latency(max / 2, max)),
                        ..Condition::default()
                    },
                }
            }
            NemesisFault::Lossy => {
                let max = nemesis.loss_probability_max;
                FaultAction::Degrade {
                    links: LinkSet::Of(random(rng)),
                    condition: Condition {
                        loss_probability: Some(rng.gen_range(max / 2.0..=max)),
                        ..Condition::default()
                    },
                }
            }
            NemesisFault::Reorder => FaultAction::Degrade {
                links: LinkSet::OneWay {
                    from: random(rng),
                    to: Targets::Nodes(topology.groups["all"].clone()),
                },
                condition: Condition {
                    latency: Some(uniform_latency(0, nemesis.reorder_latency_max.as_nanos())),
                    reorder: Some(true),
                    ..Condition::default()
                },
            },
        };
        out.push(PlannedFault {
            id: 0,
            at_ns: t,
            undo_at_ns: Some(t + length),
            origin: "nemesis".into(),
            action,
        });
        t += length;
    }
    out
}

/// The sides of a majority/minority split of `servers`: `minority_first` nodes go to the
/// minority (at most `servers.len() / 2` of them), which is then filled from the end of the server
/// list. Returns `[majority, minority]`, each sorted.
pub fn halves(servers: &[NodeId], minority_first: &[NodeId]) -> Vec<Vec<NodeId>> {
    let size = servers.len() / 2;
    let mut minority: Vec<NodeId> = Vec::new();
    for &n in minority_first.iter().chain(servers.iter().rev()) {
        if minority.len() == size {
            break;
        }
        if servers.contains(&n) && !minority.contains(&n) {
            minority.push(n);
        }
    }
    let majority: Vec<NodeId> = servers
        .iter()
        .copied()
        .filter(|n| !minority.contains(n))
        .collect();
    vec![majority, sorted(&minority)]
}

/// The directed links a partition cuts, over every node of `topology`. Servers connect as the
/// plan says. A client listed in a side is on that side; any other client follows its home
/// server. Servers listed in no side form one more side.
pub fn cut_links(
    plan: &PartitionPlan,
    topology: &Topology,
    halves_minority: &[NodeId],
) -> Vec<(NodeId, NodeId)> {
    let n = topology.len();
    // `side[x]`: for side-based plans, the side of each node; ring and bridge use `allowed`.
    let servers = &topology.servers;
    let mut allowed = vec![true; n * n];
    let set_sides = |sides: &[Vec<NodeId>], allowed: &mut Vec<bool>| {
        let mut side: Vec<Option<usize>> = vec![None; n];
        for (i, members) in sides.iter().enumerate() {
            for &m in members {
                side[m.index()] = Some(i);
            }
        }
        for &s in servers {
            if side[s.index()].is_none() {
                side[s.index()] = Some(sides.len());
            }
        }
        for a in 0..n {
            for b in 0..n {
                if let (Some(x), Some(y)) = (side[a], side[b]) {
                    allowed[a * n + b] = x == y;
                }
            }
        }
        side
    };
    let explicit: Vec<Option<usize>> = match plan {
        PartitionPlan::Sides(sides) => set_sides(sides, &mut allowed),
        PartitionPlan::Halves(_) => set_sides(&halves(servers, halves_minority), &mut allowed),
        PartitionPlan::MajoritiesRing(ring) => {
            let k = ring.len();
            let reach = (k / 2).div_ceil(2).max(1);
            for (i, &a) in ring.iter().enumerate() {
                for (j, &b) in ring.iter().enumerate() {
                    let d = i.abs_diff(j);
                    let ring_distance = d.min(k - d);
                    allowed[a.index() * n + b.index()] = ring_distance <= reach;
                }
            }
            let mut side = vec![None; n];
            for &s in servers {
                side[s.index()] = Some(0);
            }
            side
        }
        PartitionPlan::Bridge(order) => {
            let k = order.len();
            let bridge = k / 2;
            let half = |i: usize| {
                if i < bridge {
                    0
                } else if i == bridge {
                    2
                } else {
                    1
                }
            };
            for (i, &a) in order.iter().enumerate() {
                for (j, &b) in order.iter().enumerate() {
                    let (x, y) = (half(i), half(j));
                    allowed[a.index() * n + b.index()] = x == y || x == 2 || y == 2;
                }
            }
            let mut side = vec![None; n];
            for &s in servers {
                side[s.index()] = Some(0);
            }
            side
        }
    };
    // Clients not placed explicitly behave like their home server.
    let proxy = |x: usize| -> usize {
        if explicit[x].is_some() {
            x
        } else {
            topology.homes[x].map_or(x, NodeId::index)
        }
    };
    let mut cuts = Vec::new();
    for a in 0..n {
        for b in 0..n {
            let (pa, pb) = (proxy(a), proxy(b));
            if a != b && pa != pb && !allowed[pa * n + pb] {
                cuts.push((NodeId(a as u32), NodeId(b as u32)));
            }
        }
    }
    cuts
}

/// Every directed link to and from each of `targets` (links between two targets included), as
/// `isolate` cuts and `degrade` with a `target` changes them. Sorted, without repeats.
pub fn isolate_links(targets: &[NodeId], topology: &Topology) -> Vec<(NodeId, NodeId)> {
    let mut links = Vec::new();
    for &t in targets {
        for other in 0..topology.len() as u32 {
            let o = NodeId(other);
            if o != t {
                links.push((t, o));
                links.push((o, t));
            }
        }
    }
    links.sort();
    links.dedup();
    links
}

/// The one-way links from each of `from` to each of `to` other than itself, as `cut` and
/// `degrade` with `from`/`to` act on them. Sorted, without repeats.
pub fn one_way_links(from: &[NodeId], to: &[NodeId]) -> Vec<(NodeId, NodeId)> {
    let mut links: Vec<(NodeId, NodeId)> = from
        .iter()
        .flat_map(|&a| to.iter().filter(move |&&b| a != b).map(move |&b| (a, b)))
        .collect();
    links.sort();
    links.dedup();
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn topo(servers: u32, clients: u32) -> Topology {
        let text = format!(
            "duration = \"1s\"\n[cluster]\nprotocol = \"broadcast\"\nnodes = {servers}\n[workload]\nclients = {clients}\n"
        );
        Topology::new(&Scenario::parse(Path::new("t.toml"), text.as_bytes()).unwrap())
    }

    fn ids(v: &[u32]) -> Vec<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn halves_put_targets_in_the_minority() {
        let servers = ids(&[0, 1, 2, 3, 4]);
        assert_eq!(halves(&servers, &[]), vec![ids(&[0, 1, 2]), ids(&[3, 4])]);
        assert_eq!(
            halves(&servers, &ids(&[0])),
            vec![ids(&[1, 2, 3]), ids(&[0, 4])]
        );
    }

    #[test]
    fn clients_follow_their_home_server_across_a_partition() {
        let t = topo(5, 2); // c1 (id 5) -> n1 (0), c2 (id 6) -> n2 (1)
        let cuts = cut_links(
            &PartitionPlan::Sides(vec![ids(&[0, 2, 3]), ids(&[1, 4])]),
            &t,
            &[],
        );
        let cut = |a: u32, b: u32| cuts.contains(&(NodeId(a), NodeId(b)));
        assert!(cut(0, 1) && cut(1, 0), "sides are cut both ways");
        assert!(!cut(0, 2) && !cut(1, 4));
        assert!(!cut(5, 0) && cut(5, 1), "c1 sits with n1");
        assert!(cut(6, 0) && !cut(6, 4), "c2 sits with n2");
        assert!(cut(5, 6), "clients on different sides are cut too");
    }

    #[test]
    fn majorities_ring_gives_every_server_a_distinct_majority() {
        let t = topo(5, 0);
        let ring = ids(&[0, 1, 2, 3, 4]);
        let cuts = cut_links(&PartitionPlan::MajoritiesRing(ring), &t, &[]);
        let mut seen = Vec::new();
        for a in 0..5u32 {
            let visible: Vec<u32> = (0..5)
                .filter(|&b| a == b || !cuts.contains(&(NodeId(a), NodeId(b))))
                .collect();
            assert_eq!(visible.len(), 3, "node {a} sees {visible:?}");
            seen.push(visible);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 5, "all majorities differ");
    }

    #[test]
    fn bridge_node_sees_both_halves_which_do_not_see_each_other() {
        let t = topo(5, 0);
        let cuts = cut_links(&PartitionPlan::Bridge(ids(&[0, 1, 2, 3, 4])), &t, &[]);
        let cut = |a: u32, b: u32| cuts.contains(&(NodeId(a), NodeId(b)));
        assert!(!cut(2, 0) && !cut(2, 4) && !cut(0, 2) && !cut(4, 2));
        assert!(cut(0, 3) && cut(1, 4) && !cut(0, 1) && !cut(3, 4));
    }

    #[test]
    fn nemesis_network_conditions_stay_within_their_documented_ranges() {
        use rand::SeedableRng;
        let text = "duration = \"600s\"\n[cluster]\nprotocol = \"broadcast\"\nnodes = 5\n\
                    [nemesis]\nfaults = [\"slow\", \"lossy\", \"reorder\"]\n\
                    interval = \"1s\"\nfault_duration = \"1s\"\nslow_latency_max = \"80ms\"\n\
                    loss_probability_max = 0.3\nreorder_latency_max = \"2s\"\n";
        let s = Scenario::parse(Path::new("n.toml"), text.as_bytes()).unwrap();
        let t = Topology::new(&s);
        let (mut slow, mut lossy, mut reorder) = (0, 0, 0);
        let ms = |m: u64| Duration(m * 1_000_000);
        for f in plan(&s, &t, &mut ChaCha8Rng::seed_from_u64(1)) {
            let FaultAction::Degrade { links, condition } = f.action else {
                panic!("only network conditions: {:?}", f.action)
            };
            let latency = condition.latency.clone().map(|l| match l {
                LatencySpec::Distribution(LatencyDistribution::Uniform { min, max }) => (min, max),
                other => panic!("uniform latency expected: {other:?}"),
            });
            match (&links, condition.loss_probability, condition.reorder) {
                (LinkSet::Of(Targets::Nodes(n)), None, None) => {
                    slow += 1;
                    assert_eq!(n.len(), 1);
                    assert_eq!(latency, Some((ms(40), ms(80))));
                }
                (LinkSet::Of(Targets::Nodes(n)), Some(p), None) => {
                    lossy += 1;
                    assert_eq!(n.len(), 1);
                    assert!((0.15..=0.3).contains(&p), "loss {p}");
                    assert_eq!(latency, None);
                }
                (LinkSet::OneWay { from, to }, None, Some(true)) => {
                    reorder += 1;
                    assert!(matches!(from, Targets::Nodes(n) if n.len() == 1));
                    assert_eq!(to, &Targets::Nodes(t.groups["all"].clone()));
                    assert_eq!(latency, Some((ms(0), ms(2000))));
                }
                other => panic!("unexpected condition {other:?} {condition:?}"),
            }
        }
        assert!(
            slow > 30 && lossy > 30 && reorder > 30,
            "{slow} {lossy} {reorder}"
        );
    }

    #[test]
    fn the_nemesis_schedule_depends_only_on_the_seed_and_ends_before_the_final_heal() {
        use rand::SeedableRng;
        let text = "duration = \"60s\"\n[cluster]\nprotocol = \"broadcast\"\nnodes = 5\n\
                    [nemesis]\nfaults = [\"partition\", \"crash\", \"pause\", \"clock-jump\"]\n\
                    interval = \"2s\"\nfault_duration = \"1s\"\nfinal_heal = \"10s\"\n";
        let s = Scenario::parse(Path::new("n.toml"), text.as_bytes()).unwrap();
        let t = Topology::new(&s);
        let a = plan(&s, &t, &mut ChaCha8Rng::seed_from_u64(3));
        let b = plan(&s, &t, &mut ChaCha8Rng::seed_from_u64(3));
        let c = plan(&s, &t, &mut ChaCha8Rng::seed_from_u64(4));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(
            a.len() >= 10,
            "about one fault per 3s over 50s: {}",
            a.len()
        );
        assert!(a.iter().all(|f| f.undo_at_ns.unwrap() <= 50_000_000_000));
        assert!(
            a.windows(2).all(|w| w[0].undo_at_ns.unwrap() <= w[1].at_ns),
            "one at a time"
        );
    }
}
