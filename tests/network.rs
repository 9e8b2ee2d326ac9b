//! Properties of faultline's network, checked on the traces of whole simulated runs of the
//! `chatter` protocol (many messages in flight) under random network settings and faults:
//!
//! - the links each fault cuts, and when, are exactly what the scenario asks for: the test
//!   derives them from the scenario with its own model of the fault semantics (taking from the
//!   run only the random draws of random shapes), compares them with the cuts the world recorded,
//!   and judges deliveries and `partition` drops against its own model;
//! - `degrade` faults change the latency of their links exactly while they last;
//! - nothing is delivered across a link while it is cut;
//! - nothing is delivered to a crashed node, and messages arriving while it is down are dropped
//!   with reason `node-down`;
//! - with reordering off, each directed link is FIFO;
//! - every delivered copy's latency lies within the configured distribution's bounds;
//! - every message is accounted for: delivered, dropped (with a reason) or still in flight;
//! - loss and duplication rates match the configured probabilities over many messages.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use faultline::process::NodeId;
use faultline::process::{CommonObservation, NodeRole};
use faultline::scenario::{FaultKind, PartitionShape, Scenario};
use faultline::sim::faults::{FaultAction, PartitionPlan};
use faultline::sim::network::Latency;
use faultline::sim::{LifecycleKind, RunOptions, RunRecord, run};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    t_ns: u64,
    node: String,
    kind: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    msg_id: Option<u64>,
    #[serde(default)]
    of: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Default)]
struct Traffic {
    /// msg_id -> (send time, from, to); copies share their original's.
    sent: BTreeMap<u64, (u64, String, String)>,
    /// (time, from, to, msg_id) in trace order.
    delivered: Vec<(u64, String, String, u64)>,
    /// (time, from, to, msg_id, reason).
    dropped: Vec<(u64, String, String, u64, String)>,
    copies: u64,
}

fn traffic(record: &RunRecord) -> Traffic {
    let mut t = Traffic::default();
    for line in record.trace_jsonl.lines() {
        let l: Line = serde_json::from_str(&line).expect("trace lines are JSON");
        match l.kind.as_str() {
            "send" => {
                t.sent
                    .insert(l.msg_id.unwrap(), (l.t_ns, l.node, l.to.unwrap()));
            }
            "duplicate" => {
                let original = t.sent[&l.of.unwrap()].clone();
                t.sent.insert(l.msg_id.unwrap(), original);
                t.copies += 1;
            }
            "deliver" => t
                .delivered
                .push((l.t_ns, l.from.unwrap(), l.node, l.msg_id.unwrap())),
            "drop" => t.dropped.push((
                l.t_ns,
                l.from.unwrap(),
                l.node,
                l.msg_id.unwrap(),
                l.reason.unwrap(),
            )),
            _ => {}
        }
    }
    t
}

fn id(record: &RunRecord, name: &str) -> NodeId {
    record.topology.node(name).expect("a node of the run")
}

/// Intervals `[crash, restart)` during which each node was down.
fn down_intervals(record: &RunRecord) -> BTreeMap<NodeId, Vec<(u64, u64)>> {
    let mut out: BTreeMap<NodeId, Vec<(u64, u64)>> = BTreeMap::new();
    for l in &record.lifecycle {
        match l.kind {
            LifecycleKind::Crash => out.entry(l.node).or_default().push((l.t_ns, u64::MAX)),
            LifecycleKind::Restart => {
                if let Some(last) = out.get_mut(&l.node).and_then(|v| v.last_mut()) {
                    last.1 = l.t_ns;
                }
            }
            _ => {}
        }
    }
    out
}

type Links = BTreeSet<(NodeId, NodeId)>;

/// What one scripted fault does to the links, by this test's own reading of
/// docs/scenario-format.md (not the simulator's code).
struct Modelled {
    /// `fault[i]`.
    index: usize,
    /// `[start, end)` in global ns; `end` is `u64::MAX` without a `duration`.
    start: u64,
    end: u64,
    /// The directed links it acts on.
    links: Links,
    /// True for a cut (partition, isolate, cut); false for a degrade.
    cut: bool,
    /// A degrade's latency bounds, if it sets a latency.
    latency: Option<(u64, u64)>,
    /// A degrade that sets `reorder = true`.
    reorder: bool,
}

/// The nodes a reference names (a node, a group, `all`, ...: a lookup of names, not of fault
/// semantics). `leader` names none: these runs are of chatter, which never reports a role.
fn nodes(record: &RunRecord, reference: &str) -> Option<Vec<NodeId>> {
    match reference {
        "leader" => None,
        name => Some(
            record
                .topology
                .resolve_static(name)
                .expect("a known reference"),
        ),
    }
}

/// Links between nodes that `side_of` puts on different sides (`None`: on no side).
fn between_sides(n: usize, side_of: impl Fn(NodeId) -> Option<usize>) -> Links {
    let mut links = Links::new();
    for a in 0..n as u32 {
        for b in 0..n as u32 {
            let (x, y) = (side_of(NodeId(a)), side_of(NodeId(b)));
            if a != b && x.is_some() && y.is_some() && x != y {
                links.insert((NodeId(a), NodeId(b)));
            }
        }
    }
    links
}

/// Every modelled scripted fault of `scenario`. Random shapes take their draws (the ring order,
/// the bridge order, the random sides) from the planned fault in `record`; everything else comes
/// from the scenario.
fn model_faults(scenario: &Scenario, record: &RunRecord) -> Vec<Modelled> {
    let servers = &record.topology.servers;
    let n = record.topology.len();
    let k = servers.len();
    let planned = |i: usize| {
        &record
            .faults
            .iter()
            .find(|f| f.origin == format!("fault[{i}]"))
            .expect("every scripted fault is planned")
            .action
    };
    let every_link_of = |targets: &[NodeId]| -> Links {
        let mut links = Links::new();
        for a in 0..n as u32 {
            for b in 0..n as u32 {
                let (a, b) = (NodeId(a), NodeId(b));
                if a != b && (targets.contains(&a) || targets.contains(&b)) {
                    links.insert((a, b));
                }
            }
        }
        links
    };
    let one_way = |from: &[NodeId], to: &[NodeId]| -> Links {
        let mut links = Links::new();
        for &a in from {
            for &b in to {
                if a != b {
                    links.insert((a, b));
                }
            }
        }
        links
    };
    let mut out = Vec::new();
    for (index, f) in scenario.faults.iter().enumerate() {
        let start = f.at.as_nanos();
        let end = f.duration.map_or(u64::MAX, |d| start + d.as_nanos());
        let end_nodes = |r: &Option<String>| r.as_deref().and_then(|r| nodes(record, r));
        let (target, from, to) = (end_nodes(&f.target), end_nodes(&f.from), end_nodes(&f.to));
        let either = || match (&target, &from, &to) {
            (Some(t), _, _) => Some(every_link_of(t)),
            (None, Some(a), Some(b)) => Some(one_way(a, b)),
            _ => None,
        };
        let mut latency = None;
        let (links, cut) = match f.kind {
            // Every link to and from each target, including links between two targets.
            FaultKind::Isolate => (every_link_of(&target.unwrap()), true),
            // A fault aimed at a leader that does not exist is skipped.
            FaultKind::Cut | FaultKind::Degrade if either().is_none() => continue,
            FaultKind::Cut => (either().unwrap(), true),
            FaultKind::Degrade => {
                latency = f.latency.as_ref().map(|l| Latency::from_spec(l).bounds());
                (either().unwrap(), false)
            }
            // Servers in no listed side form one more side.
            FaultKind::Partition if f.groups.is_some() => {
                let sides: Vec<Vec<NodeId>> = f
                    .groups
                    .iter()
                    .flatten()
                    .map(|side| {
                        side.iter()
                            .flat_map(|r| nodes(record, r).unwrap())
                            .collect()
                    })
                    .collect();
                let side_of = |x: NodeId| {
                    sides
                        .iter()
                        .position(|s| s.contains(&x))
                        .or(servers.contains(&x).then_some(sides.len()))
                };
                (between_sides(n, side_of), true)
            }
            FaultKind::Partition => {
                let links = match (f.shape.unwrap(), planned(index)) {
                    // A majority (the first servers) and a minority (the last k/2).
                    (PartitionShape::Halves, _) => {
                        between_sides(n, |x| Some(usize::from(x.index() >= k - k / 2)))
                    }
                    (
                        _,
                        FaultAction::Partition {
                            plan: PartitionPlan::Sides(sides),
                        },
                    ) => between_sides(n, |x| sides.iter().position(|s| s.contains(&x))),
                    // Each server sees the nearest servers of the ring on either side, as few
                    // as make a majority (itself included).
                    (
                        _,
                        FaultAction::Partition {
                            plan: PartitionPlan::MajoritiesRing(ring),
                        },
                    ) => {
                        let majority = k / 2 + 1;
                        let reach = (1..=k).find(|r| 1 + 2 * r >= majority).unwrap();
                        let mut links = Links::new();
                        for (i, &a) in ring.iter().enumerate() {
                            for (j, &b) in ring.iter().enumerate() {
                                let d = i.abs_diff(j).min(k - i.abs_diff(j));
                                if d > reach {
                                    links.insert((a, b));
                                }
                            }
                        }
                        links
                    }
                    // First half and second half apart; the middle node sees both.
                    (
                        _,
                        FaultAction::Partition {
                            plan: PartitionPlan::Bridge(order),
                        },
                    ) => {
                        let half = |x: NodeId| {
                            let i = order.iter().position(|&o| o == x).unwrap();
                            match i.cmp(&(k / 2)) {
                                std::cmp::Ordering::Less => Some(0),
                                std::cmp::Ordering::Equal => None,
                                std::cmp::Ordering::Greater => Some(1),
                            }
                        };
                        between_sides(n, half)
                    }
                    (shape, action) => panic!("unexpected plan for {shape:?}: {action:?}"),
                };
                (links, true)
            }
            // Crashes are judged by the lifecycle record (see `down_intervals`).
            FaultKind::Crash => continue,
            other => panic!("the property scenarios do not generate {other:?}"),
        };
        out.push(Modelled {
            index,
            start,
            end,
            links,
            cut,
            latency,
            reorder: f.reorder == Some(true),
        });
    }
    out
}

/// The modelled cuts must be the ones the world recorded, with the same start and end.
fn compare_cuts(model: &[Modelled], record: &RunRecord) -> Result<(), TestCaseError> {
    let cut_faults: Vec<&Modelled> = model.iter().filter(|m| m.cut).collect();
    prop_assert_eq!(
        cut_faults.len(),
        record.partitions.len(),
        "one cut record per cut fault"
    );
    for m in cut_faults {
        let origin = format!("fault[{}]", m.index);
        let id = record
            .faults
            .iter()
            .find(|f| f.origin == origin)
            .unwrap()
            .id;
        let p = record
            .partitions
            .iter()
            .find(|p| p.fault_id == id)
            .ok_or_else(|| TestCaseError::fail(format!("{origin} cut nothing")))?;
        let recorded: Links = p.cut_links.iter().copied().collect();
        prop_assert_eq!(
            &recorded,
            &m.links,
            "{} cut other links than the scenario asks",
            origin
        );
        prop_assert_eq!(p.start_ns, m.start, "{} started at the wrong time", &origin);
        // Events at the end time itself still fire (the run loop takes every event at or before
        // the end), so a cut that ends exactly then is healed then.
        let end = (m.end <= record.end_ns).then_some(m.end);
        prop_assert_eq!(p.end_ns, end, "{} ended at the wrong time", &origin);
    }
    Ok(())
}

fn check_run(scenario: &Scenario, record: &RunRecord) -> Result<(), TestCaseError> {
    let t = traffic(record);
    prop_assert!(
        record.halt.is_none(),
        "no process panicked: {:?}",
        record.halt
    );
    prop_assert!(!t.sent.is_empty(), "chatter sent messages");
    let model = model_faults(scenario, record);
    compare_cuts(&model, record)?;
    let cut_at = |at: u64, link: (NodeId, NodeId)| {
        model
            .iter()
            .find(|m| m.cut && m.start <= at && at < m.end && m.links.contains(&link))
    };
    let down = down_intervals(record);
    let base = Latency::from_spec(&scenario.network.latency).bounds();
    // Latency bounds of a copy sent at `at` on `link`: the latest-starting degrade then active
    // that sets a latency (ties: file order), else the network's.
    let bounds_at = |at: u64, link: (NodeId, NodeId)| {
        model
            .iter()
            .filter(|m| !m.cut && m.start <= at && at < m.end && m.links.contains(&link))
            .filter_map(|m| m.latency.map(|l| (m.start, m.index, l)))
            .max()
            .map_or(base, |(_, _, l)| l)
    };
    // A copy arrives no earlier than its own minimum latency, and (FIFO) no later than the
    // latest deadline of any message sent before it on its link.
    let mut window: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut deadline_on_link: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (msg, (sent_at, from, to)) in &t.sent {
        let (min, max) = bounds_at(*sent_at, (id(record, from), id(record, to)));
        let latest = deadline_on_link
            .entry((from.clone(), to.clone()))
            .or_default();
        *latest = (*latest).max(sent_at.saturating_add(max));
        window.insert(*msg, (sent_at + min, *latest));
    }
    let mut last_on_link: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (at, from, to, msg) in &t.delivered {
        let (a, b) = (id(record, from), id(record, to));
        if let Some(m) = cut_at(*at, (a, b)) {
            prop_assert!(
                false,
                "message {msg} {from}->{to} delivered at {at} across a link fault[{}] cut during [{}, {})",
                m.index,
                m.start,
                m.end
            );
        }
        for (c, r) in down.get(&b).into_iter().flatten() {
            prop_assert!(
                !(c <= at && at < r),
                "message {msg} delivered to {to} at {at} while it was down [{c}, {r})"
            );
        }
        let (_, sender, receiver) = &t.sent[msg];
        prop_assert_eq!((sender, receiver), (from, to));
        let (earliest, latest) = window[msg];
        prop_assert!(
            earliest <= *at && *at <= latest,
            "message {msg} arrived at {at}, outside [{earliest}, {latest}]"
        );
        let reordered = model.iter().any(|m| m.reorder && m.links.contains(&(a, b)));
        if !scenario.network.reorder && !reordered {
            let previous = last_on_link.insert((from.clone(), to.clone()), *msg);
            if let Some(previous) = previous {
                prop_assert!(
                    previous < *msg,
                    "FIFO: on {from}->{to}, message {msg} delivered after {previous}"
                );
            }
        }
    }
    for (at, from, to, msg, reason) in &t.dropped {
        if reason == "partition" {
            prop_assert!(
                cut_at(*at, (id(record, from), id(record, to))).is_some(),
                "message {msg} {from}->{to} dropped as partition at {at} on a link no fault cut"
            );
        }
        if reason == "node-down" {
            let b = id(record, to);
            let was_down = down
                .get(&b)
                .into_iter()
                .flatten()
                .any(|(c, r)| c <= at && at < r);
            prop_assert!(
                was_down,
                "message {msg} dropped as node-down at {at} but {to} was up"
            );
        }
        prop_assert!(
            ["loss", "partition", "node-down", "node-crashed"].contains(&reason.as_str()),
            "unexpected drop reason {reason}"
        );
    }
    let stats = &record.stats;
    prop_assert_eq!(
        stats.messages_sent + stats.messages_duplicated,
        t.sent.len() as u64
    );
    prop_assert_eq!(stats.messages_delivered, t.delivered.len() as u64);
    let dropped: u64 = stats.messages_dropped.values().sum();
    prop_assert_eq!(dropped, t.dropped.len() as u64);
    prop_assert_eq!(
        t.sent.len() as u64,
        stats.messages_delivered + dropped + stats.messages_in_flight_at_end,
        "every message is delivered, dropped or in flight at the end"
    );
    Ok(())
}

fn latency_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..20).prop_map(|c| format!("\"{c}ms\"")),
        (0u64..10, 0u64..30).prop_map(|(a, w)| format!(
            "{{ distribution = \"uniform\", min = \"{a}ms\", max = \"{}ms\" }}",
            a + w
        )),
        (0u64..5, 1u64..20, 0u64..60).prop_map(|(min, extra, cap)| format!(
            "{{ distribution = \"exponential\", min = \"{min}ms\", mean = \"{}ms\", max = \"{}ms\" }}",
            min + extra,
            min + extra + cap
        )),
        (1u64..20, 0u64..8).prop_map(|(mean, sd)| format!(
            "{{ distribution = \"normal\", mean = \"{mean}ms\", std_dev = \"{sd}ms\" }}"
        )),
    ]
}

fn fault_strategy(nodes: u32) -> impl Strategy<Value = String> {
    let node = move || {
        prop_oneof![
            4 => (1..=nodes).prop_map(|i| format!("n{i}")),
            1 => Just("pair".to_string()),
            1 => Just("all".to_string()),
        ]
    };
    let at = || (0u64..1800).prop_map(|ms| format!("at = \"{ms}ms\""));
    let length = || (1u64..800).prop_map(|ms| format!("duration = \"{ms}ms\""));
    prop_oneof![
        (
            at(),
            length(),
            prop::sample::select(vec![
                "random-halves",
                "majorities-ring",
                "bridge",
                "random-node",
                "halves"
            ])
        )
            .prop_map(|(at, d, shape)| format!(
                "[[fault]]\n{at}\nkind = \"partition\"\nshape = \"{shape}\"\n{d}\n"
            )),
        (at(), length(), node()).prop_map(|(at, d, n)| format!(
            "[[fault]]\n{at}\nkind = \"isolate\"\ntarget = \"{n}\"\n{d}\n"
        )),
        (at(), length(), node(), node()).prop_map(|(at, d, a, b)| format!(
            "[[fault]]\n{at}\nkind = \"cut\"\nfrom = \"{a}\"\nto = \"{b}\"\n{d}\n"
        )),
        (at(), length(), node()).prop_map(|(at, d, n)| format!(
            "[[fault]]\n{at}\nkind = \"crash\"\ntarget = \"{n}\"\n{d}\n"
        )),
        (
            at(),
            length(),
            prop_oneof![
                node().prop_map(|n| format!("target = \"{n}\"")),
                (node(), node()).prop_map(|(a, b)| format!("from = \"{a}\"\nto = \"{b}\"")),
            ],
            latency_strategy(),
            prop::option::of(0.0f64..0.5),
        )
            .prop_map(|(at, d, links, latency, loss)| {
                let loss = loss.map_or(String::new(), |p| format!("loss_probability = {p}\n"));
                format!(
                    "[[fault]]\n{at}\nkind = \"degrade\"\n{links}\nlatency = {latency}\n{loss}{d}\n"
                )
            }),
    ]
}

fn scenario_strategy() -> impl Strategy<Value = String> {
    (2u32..=5).prop_flat_map(|nodes| {
        (
            latency_strategy(),
            0.0f64..0.3,
            0.0f64..0.3,
            any::<bool>(),
            prop::collection::vec(fault_strategy(nodes), 0..4),
            1u64..5,
        )
            .prop_map(move |(latency, loss, dup, reorder, faults, interval)| {
                format!(
                    "duration = \"2s\"\n[cluster]\nprotocol = \"chatter\"\nnodes = {nodes}\n\
                     groups = {{ pair = [\"n1\", \"n2\"] }}\n\
                     [network]\nlatency = {latency}\nloss_probability = {loss}\nduplicate_probability = {dup}\nreorder = {reorder}\n\
                     [chatter]\ninterval = \"{interval}ms\"\n[workload]\nclients = 0\n{}",
                    faults.concat()
                )
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn the_network_respects_cuts_crashes_fifo_and_latency_bounds(text in scenario_strategy(), seed in any::<u64>()) {
        let scenario = Scenario::parse(Path::new("prop.toml"), text.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let record = run(&scenario, seed, &RunOptions::default());
        check_run(&scenario, &record)?;
    }
}

fn many_messages(loss: f64, dup: f64, reorder: bool) -> (Scenario, RunRecord) {
    let text = format!(
        "duration = \"20s\"\n[cluster]\nprotocol = \"chatter\"\nnodes = 4\n\
         [network]\nlatency = {{ distribution = \"uniform\", min = \"1ms\", max = \"20ms\" }}\n\
         loss_probability = {loss}\nduplicate_probability = {dup}\nreorder = {reorder}\n\
         [chatter]\ninterval = \"2ms\"\n[workload]\nclients = 0\n"
    );
    let scenario = Scenario::parse(Path::new("rates.toml"), text.as_bytes()).unwrap();
    let record = run(&scenario, 42, &RunOptions::default());
    (scenario, record)
}

/// |observed - p| within 5 standard deviations of a binomial proportion over `n` trials.
fn assert_rate(what: &str, count: u64, n: u64, p: f64) {
    let observed = count as f64 / n as f64;
    let sigma = (p * (1.0 - p) / n as f64).sqrt();
    assert!(
        (observed - p).abs() <= 5.0 * sigma + 1e-9,
        "{what}: observed {observed:.4} over {n} messages, configured {p} (5 sigma = {:.4})",
        5.0 * sigma
    );
}

#[test]
fn loss_and_duplication_rates_match_the_configured_probabilities() {
    for (loss, dup) in [(0.0, 0.0), (0.1, 0.0), (0.0, 0.25), (0.3, 0.1)] {
        let (_, record) = many_messages(loss, dup, false);
        let s = &record.stats;
        assert!(
            s.messages_sent > 20_000,
            "enough messages: {}",
            s.messages_sent
        );
        let lost = s.messages_dropped.get("loss").copied().unwrap_or(0);
        assert_rate("loss", lost, s.messages_sent, loss);
        // Duplication is drawn only for messages that were not lost.
        assert_rate(
            "duplication",
            s.messages_duplicated,
            s.messages_sent - lost,
            dup,
        );
    }
}

#[test]
fn reordering_happens_only_when_switched_on() {
    let overtakes = |reorder| {
        let (_, record) = many_messages(0.0, 0.0, reorder);
        let t = traffic(&record);
        let mut last: BTreeMap<(String, String), u64> = BTreeMap::new();
        t.delivered
            .iter()
            .filter(|(_, from, to, msg)| {
                last.insert((from.clone(), to.clone()), *msg)
                    .is_some_and(|p| p > *msg)
            })
            .count()
    };
    assert_eq!(overtakes(false), 0);
    assert!(
        overtakes(true) > 100,
        "with reorder = true, later messages overtake earlier ones"
    );
}

#[test]
fn messages_in_flight_to_a_node_that_crashes_are_dropped() {
    let text = "duration = \"2s\"\n[cluster]\nprotocol = \"chatter\"\nnodes = 3\n\
                [network]\nlatency = \"50ms\"\n[chatter]\ninterval = \"1ms\"\n[workload]\nclients = 0\n\
                [[fault]]\nat = \"1s\"\nkind = \"crash\"\ntarget = \"n2\"\nduration = \"200ms\"\n";
    let scenario = Scenario::parse(Path::new("crash.toml"), text.as_bytes()).unwrap();
    let record = run(&scenario, 1, &RunOptions::default());
    let t = traffic(&record);
    // Sent to n2 in the 50ms before the crash, so in flight when it crashed.
    let in_flight: Vec<u64> = t
        .sent
        .iter()
        .filter(|(_, (at, _, to))| to == "n2" && (950_000_000..1_000_000_000).contains(at))
        .map(|(id, _)| *id)
        .collect();
    assert!(
        in_flight.len() > 20,
        "messages were in flight: {}",
        in_flight.len()
    );
    for id in in_flight {
        let drop = t
            .dropped
            .iter()
            .find(|d| d.3 == id)
            .unwrap_or_else(|| panic!("message {id} was not dropped"));
        assert_eq!(drop.4, "node-down");
        assert!(!t.delivered.iter().any(|d| d.3 == id));
    }
    check_run(&scenario, &record).unwrap();
}

/// A 3 s run of chatter on n1..n3 (group `east` = n1, n2), checked by [`check_run`].
fn chatter_run(network: &str, faults: &str, seed: u64) -> RunRecord {
    let scenario = chatter_scenario(network, faults);
    let record = run(&scenario, seed, &RunOptions::default());
    check_run(&scenario, &record).unwrap();
    record
}

fn chatter_scenario(network: &str, faults: &str) -> Scenario {
    let text = format!(
        "duration = \"3s\"\n[cluster]\nprotocol = \"chatter\"\nnodes = 3\n\
         groups = {{ east = [\"n1\", \"n2\"] }}\n[network]\n{network}\n\
         [chatter]\ninterval = \"1ms\"\n[workload]\nclients = 0\n{faults}"
    );
    Scenario::parse(Path::new("conditions.toml"), text.as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// (send time, latency) of every delivered copy on `from -> to`.
fn latencies(t: &Traffic, from: &str, to: &str) -> Vec<(u64, u64)> {
    t.delivered
        .iter()
        .filter(|(_, f, r, _)| f == from && r == to)
        .map(|(at, _, _, msg)| (t.sent[msg].0, at - t.sent[msg].0))
        .collect()
}

const MS: u64 = 1_000_000;

#[test]
fn a_slow_node_is_slow_only_while_the_degrade_lasts() {
    let record = chatter_run(
        "latency = \"1ms\"",
        "[[fault]]\nat = \"1s\"\nkind = \"degrade\"\ntarget = \"n1\"\nlatency = \"50ms\"\nduration = \"500ms\"\n",
        7,
    );
    let t = traffic(&record);
    for (from, to) in [("n1", "n2"), ("n3", "n1")] {
        let l = latencies(&t, from, to);
        let during: Vec<_> = l
            .iter()
            .filter(|(s, _)| (1000 * MS..1500 * MS).contains(s))
            .collect();
        assert!(
            during.len() > 100,
            "{from}->{to}: {} messages",
            during.len()
        );
        assert!(
            during.iter().all(|(_, took)| *took == 50 * MS),
            "{from}->{to} slow during"
        );
        // Before, and once the slow messages have drained (FIFO), 1 ms again.
        assert!(
            l.iter()
                .filter(|(s, _)| *s < 1000 * MS)
                .all(|(_, took)| *took == MS)
        );
        let after: Vec<_> = l.iter().filter(|(s, _)| *s >= 1550 * MS).collect();
        assert!(after.len() > 100 && after.iter().all(|(_, took)| *took == MS));
    }
    // Links without n1 are untouched.
    assert!(
        latencies(&t, "n2", "n3")
            .iter()
            .all(|(_, took)| *took == MS)
    );
    let trace = record.trace_jsonl.to_vec();
    let trace = String::from_utf8(trace).unwrap();
    assert!(trace.contains(
        r#"{"t_ns":1000000000,"node":"world","kind":"degrade","fault_id":0,"origin":"fault[0]","target":["n1"],"condition":{"latency":"50ms"}}"#
    ));
    assert!(trace.contains(
        r#"{"t_ns":1500000000,"node":"world","kind":"restore","fault_id":0,"origin":"fault[0] (end)"}"#
    ));
    assert_eq!(
        record.final_heal_ns,
        Some(1500 * MS),
        "the restore counts as a heal"
    );
}

#[test]
fn a_lossy_one_way_degrade_loses_and_duplicates_only_that_direction_while_it_lasts() {
    let record = chatter_run(
        "latency = \"1ms\"",
        "[[fault]]\nat = \"1s\"\nkind = \"degrade\"\nfrom = \"n1\"\nto = \"n2\"\nloss_probability = 1.0\nduration = \"500ms\"\n\
         [[fault]]\nat = \"2s\"\nkind = \"degrade\"\nfrom = \"n2\"\nto = \"n3\"\nduplicate_probability = 1.0\nduration = \"500ms\"\n",
        3,
    );
    let t = traffic(&record);
    let lost: Vec<u64> = t
        .dropped
        .iter()
        .filter(|d| d.4 == "loss")
        .map(|d| t.sent[&d.3].0)
        .collect();
    let n1_n2_during = t
        .sent
        .values()
        .filter(|(s, f, r)| f == "n1" && r == "n2" && (1000 * MS..1500 * MS).contains(s))
        .count();
    assert!(n1_n2_during > 100);
    assert_eq!(
        lost.len(),
        n1_n2_during,
        "every n1->n2 message of the period, and only those"
    );
    assert!(lost.iter().all(|s| (1000 * MS..1500 * MS).contains(s)));
    assert!(
        latencies(&t, "n2", "n1")
            .iter()
            .any(|(s, _)| (1000 * MS..1500 * MS).contains(s))
    );
    // Duplicates: exactly the n2->n3 messages sent in [2s, 2.5s).
    let n2_n3_during = t
        .sent
        .iter()
        .filter(|(_, (s, f, r))| f == "n2" && r == "n3" && (2000 * MS..2500 * MS).contains(s))
        .count();
    assert!(t.copies > 100);
    assert_eq!(
        n2_n3_during as u64,
        2 * t.copies,
        "each original and its copy"
    );
}

#[test]
fn reordering_one_direction_stops_when_the_degrade_ends() {
    let record = chatter_run(
        "latency = { distribution = \"uniform\", min = \"1ms\", max = \"5ms\" }",
        "[[fault]]\nat = \"1s\"\nkind = \"degrade\"\nfrom = \"n1\"\nto = \"n2\"\nreorder = true\n\
         latency = { distribution = \"uniform\", min = \"0ms\", max = \"300ms\" }\nduration = \"1s\"\n",
        11,
    );
    let t = traffic(&record);
    // Overtakes by send order, in delivery order, per link.
    let overtaken = |from: &str, to: &str, sent_from: u64| {
        let mut latest = 0;
        t.delivered
            .iter()
            .filter(|(_, f, r, msg)| f == from && r == to && t.sent[msg].0 >= sent_from)
            .filter(|(_, _, _, msg)| {
                let late = *msg < latest;
                latest = latest.max(*msg);
                late
            })
            .count()
    };
    assert!(
        overtaken("n1", "n2", 0) > 100,
        "n1->n2 reorders during the fault"
    );
    assert_eq!(
        overtaken("n2", "n1", 0),
        0,
        "the other direction stays FIFO"
    );
    // Sent after the end: FIFO again, behind every earlier message (reordered ones included).
    let last_before_end = t
        .delivered
        .iter()
        .filter(|(_, f, r, msg)| f == "n1" && r == "n2" && t.sent[msg].0 < 2000 * MS)
        .map(|d| d.0)
        .max()
        .unwrap();
    let after: Vec<_> = t
        .delivered
        .iter()
        .filter(|(_, f, r, msg)| f == "n1" && r == "n2" && t.sent[msg].0 >= 2000 * MS)
        .collect();
    assert!(after.len() > 100);
    assert!(after.iter().all(|d| d.0 >= last_before_end));
    assert_eq!(overtaken("n1", "n2", 2000 * MS), 0);
}

#[test]
fn degraded_runs_are_reproducible_from_their_seed() {
    let faults = "[[fault]]\nat = \"500ms\"\nkind = \"degrade\"\ntarget = \"east\"\nloss_probability = 0.3\n\
                  duplicate_probability = 0.2\nreorder = true\nlatency = { distribution = \"exponential\", mean = \"20ms\" }\nduration = \"1s\"\n\
                  [nemesis]\nfaults = [\"slow\", \"lossy\", \"reorder\"]\ninterval = \"200ms\"\nfault_duration = \"300ms\"\n";
    let scenario = chatter_scenario("", faults);
    let a = run(&scenario, 5, &RunOptions::default());
    let b = run(&scenario, 5, &RunOptions::default());
    let c = run(&scenario, 6, &RunOptions::default());
    let planned = |kind: &str| {
        a.faults
            .iter()
            .filter(|f| f.origin == "nemesis" && format!("{:?}", f.action).contains(kind))
            .count()
    };
    assert!(planned("Degrade") > 3, "the nemesis degrades links");
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_ne!(a.trace_hash, c.trace_hash);
    assert!(a.stats.messages_dropped.get("loss").copied().unwrap_or(0) > 100);
}

#[test]
fn isolating_a_group_cuts_the_links_between_its_members() {
    let record = chatter_run(
        "latency = \"1ms\"",
        "[[fault]]\nat = \"1s\"\nkind = \"isolate\"\ntarget = \"east\"\nduration = \"500ms\"\n",
        1,
    );
    let t = traffic(&record);
    let n1_n2 = |reason: &str| {
        t.dropped
            .iter()
            .filter(|d| d.1 == "n1" && d.2 == "n2" && d.4 == reason)
            .count()
    };
    assert!(
        n1_n2("partition") > 100,
        "n1 and n2 are cut from each other too"
    );
    let cuts = &record.partitions[0].cut_links;
    assert_eq!(cuts.len(), 6, "every link of n1 and n2: {cuts:?}");
    assert_eq!(
        record.partitions[0].sides,
        Some(vec![vec![NodeId(2)], vec![NodeId(0)], vec![NodeId(1)]])
    );
}

#[test]
fn a_partition_with_one_side_cuts_the_group_off_as_a_whole() {
    let record = chatter_run(
        "latency = \"1ms\"",
        "[[fault]]\nat = \"1s\"\nkind = \"partition\"\ngroups = [[\"east\"]]\nduration = \"500ms\"\n",
        1,
    );
    let cuts: Vec<_> = record.partitions[0].cut_links.clone();
    let n = |i| NodeId(i);
    assert_eq!(
        cuts,
        vec![(n(0), n(2)), (n(1), n(2)), (n(2), n(0)), (n(2), n(1))],
        "east (n1, n2) stays connected inside, cut from n3"
    );
}

#[test]
fn a_one_way_cut_from_the_leader_is_resolved_when_it_fires() {
    let text = "duration = \"4s\"\n[cluster]\nprotocol = \"raft\"\nnodes = 3\n[workload]\nclients = 1\n\
                [[fault]]\nat = \"2s\"\nkind = \"cut\"\nfrom = \"leader\"\nto = \"servers\"\nduration = \"1s\"\n";
    let scenario = Scenario::parse(Path::new("cut-leader.toml"), text.as_bytes()).unwrap();
    let record = run(&scenario, 1, &RunOptions::default());
    // The one leader of this fault-free run before 2 s (the test also checks it is the only one).
    let leaders: BTreeSet<NodeId> = record
        .observations
        .iter()
        .filter(|o| o.t_ns < 2_000_000_000)
        .filter(|o| {
            matches!(
                o.get(),
                Some(CommonObservation::Role {
                    role: NodeRole::Leader,
                    ..
                })
            )
        })
        .map(|o| o.node)
        .collect();
    assert_eq!(leaders.len(), 1, "one leader before the cut: {leaders:?}");
    let leader = *leaders.first().unwrap();
    let p = &record.partitions[0];
    assert_eq!(p.start_ns, 2_000_000_000);
    let mut expected: Vec<_> = record
        .topology
        .servers
        .iter()
        .filter(|&&s| s != leader)
        .map(|&s| (leader, s))
        .collect();
    expected.sort();
    assert_eq!(
        p.cut_links, expected,
        "one way, from the leader to the other servers"
    );
}

#[test]
fn a_cut_or_degrade_naming_the_leader_is_skipped_without_one() {
    // chatter never reports a role, so there is no leader.
    let record = chatter_run(
        "latency = \"1ms\"",
        "[[fault]]\nat = \"1s\"\nkind = \"cut\"\nfrom = \"n1\"\nto = \"leader\"\n\
         [[fault]]\nat = \"1s\"\nkind = \"degrade\"\nfrom = \"leader\"\nto = \"all\"\nlatency = \"9ms\"\n",
        1,
    );
    assert!(record.partitions.is_empty());
    assert_eq!(record.stats.faults_skipped, 2);
    let trace = String::from_utf8(record.trace_jsonl.to_vec()).unwrap();
    assert_eq!(trace.matches("\"kind\":\"fault-skipped\"").count(), 2);
    assert!(!trace.contains("\"kind\":\"degrade\""));
}

#[test]
fn a_degrade_of_every_link_from_the_start_draws_the_same_fates_as_the_same_network() {
    let condition = "latency = { distribution = \"uniform\", min = \"1ms\", max = \"40ms\" }\n\
                     loss_probability = 0.1\nduplicate_probability = 0.1\nreorder = true\n";
    let base = chatter_scenario(condition, "");
    let degraded = chatter_scenario(
        "latency = \"1ms\"",
        &format!("[[fault]]\nat = \"0s\"\nkind = \"degrade\"\ntarget = \"all\"\n{condition}"),
    );
    let a = run(&base, 4, &RunOptions::default());
    let b = run(&degraded, 4, &RunOptions::default());
    let fates = |r: &RunRecord| {
        let t = traffic(r);
        (t.delivered, t.dropped, t.copies)
    };
    assert!(a.stats.messages_sent > 1000);
    assert!(
        fates(&a) == fates(&b),
        "the same draws from the network's stream, in the same order"
    );
}
