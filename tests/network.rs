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
        let l: Line = serde_json::from_str(line).expect("trace lines are JSON");
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
}

/// The nodes a static reference names (the property scenarios have no clients, and one group
/// `pair` of n1 and n2).
fn nodes(record: &RunRecord, reference: &str) -> Vec<NodeId> {
    match reference {
        "all" | "*" | "servers" => record.topology.servers.clone(),
        "pair" => vec![id(record, "n1"), id(record, "n2")],
        name => vec![id(record, name)],
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
        let target = || nodes(record, f.target.as_deref().unwrap());
        let from = || nodes(record, f.from.as_deref().unwrap());
        let to = || nodes(record, f.to.as_deref().unwrap());
        let mut latency = None;
        let (links, cut) = match f.kind {
            // Every link to and from each target, including links between two targets.
            FaultKind::Isolate => (every_link_of(&target()), true),
            FaultKind::Cut => (one_way(&from(), &to()), true),
            FaultKind::Degrade => {
                latency = f.latency.as_ref().map(|l| Latency::from_spec(l).bounds());
                match &f.target {
                    Some(_) => (every_link_of(&target()), false),
                    None => (one_way(&from(), &to()), false),
                }
            }
            FaultKind::Partition => {
                let links = match (f.shape.unwrap(), planned(index)) {
                    // A majority (the first servers) and a minority (the last k/2).
                    (PartitionShape::Halves, _) => {
                        between_sides(n, |x| Some(usize::from(x.index() >= k - k / 2)))
                    }
                    (_, FaultAction::Partition { plan: PartitionPlan::Sides(sides) }) => {
                        between_sides(n, |x| sides.iter().position(|s| s.contains(&x)))
                    }
                    // Each server sees the nearest servers of the ring on either side, as few
                    // as make a majority (itself included).
                    (_, FaultAction::Partition { plan: PartitionPlan::MajoritiesRing(ring) }) => {
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
                    (_, FaultAction::Partition { plan: PartitionPlan::Bridge(order) }) => {
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
        });
    }
    out
}

/// The modelled cuts must be the ones the world recorded, with the same start and end.
fn compare_cuts(model: &[Modelled], record: &RunRecord) -> Result<(), TestCaseError> {
    let cut_faults: Vec<&Modelled> = model.iter().filter(|m| m.cut).collect();
    prop_assert_eq!(cut_faults.len(), record.partitions.len(), "one cut record per cut fault");
    for m in cut_faults {
        let origin = format!("fault[{}]", m.index);
        let id = record.faults.iter().find(|f| f.origin == origin).unwrap().id;
        let p = record
            .partitions
            .iter()
            .find(|p| p.fault_id == id)
            .ok_or_else(|| TestCaseError::fail(format!("{origin} cut nothing")))?;
        let recorded: Links = p.cut_links.iter().copied().collect();
        prop_assert_eq!(&recorded, &m.links, "{} cut other links than the scenario asks", origin);
        prop_assert_eq!(p.start_ns, m.start, "{} started at the wrong time", &origin);
        let end = (m.end < record.end_ns).then_some(m.end);
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
        *latest = (*latest).max(sent_at + max);
        window.insert(*msg, (sent_at + min, *latest));
    }
    let mut last_on_link: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (at, from, to, msg) in &t.delivered {
        let (a, b) = (id(record, from), id(record, to));
        if let Some(m) = cut_at(*at, (a, b)) {
            prop_assert!(
                false,
                "message {msg} {from}->{to} delivered at {at} across a link fault[{}] cut during [{}, {})",
                m.index, m.start, m.end
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
        if !scenario.network.reorder {
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
