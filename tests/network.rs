//! Properties of faultline's network, checked on the traces of whole simulated runs of the
//! `chatter` protocol (many messages in flight) under random network settings and faults:
//!
//! - nothing is delivered across a link while it is cut;
//! - nothing is delivered to a crashed node, and messages arriving while it is down are dropped
//!   with reason `node-down`;
//! - with reordering off, each directed link is FIFO;
//! - every delivered copy's latency lies within the configured distribution's bounds;
//! - every message is accounted for: delivered, dropped (with a reason) or still in flight;
//! - loss and duplication rates match the configured probabilities over many messages.

use std::collections::BTreeMap;
use std::path::Path;

use faultline::process::NodeId;
use faultline::scenario::Scenario;
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

fn check_run(scenario: &Scenario, record: &RunRecord) -> Result<(), TestCaseError> {
    let t = traffic(record);
    prop_assert!(
        record.halt.is_none(),
        "no process panicked: {:?}",
        record.halt
    );
    prop_assert!(!t.sent.is_empty(), "chatter sent messages");
    type Cut = (u64, u64, Vec<(NodeId, NodeId)>);
    let cuts: Vec<Cut> = record
        .partitions
        .iter()
        .map(|p| {
            (
                p.start_ns,
                p.end_ns.unwrap_or(u64::MAX),
                p.cut_links.clone(),
            )
        })
        .collect();
    let down = down_intervals(record);
    let latency = Latency::from_spec(&scenario.network.latency);
    let (min, max) = latency.bounds();
    let mut last_on_link: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (at, from, to, msg) in &t.delivered {
        let (a, b) = (id(record, from), id(record, to));
        for (start, end, links) in &cuts {
            prop_assert!(
                !(start <= at && at < end && links.contains(&(a, b))),
                "message {msg} {from}->{to} delivered at {at} across a link cut during [{start}, {end})"
            );
        }
        for (c, r) in down.get(&b).into_iter().flatten() {
            prop_assert!(
                !(c <= at && at < r),
                "message {msg} delivered to {to} at {at} while it was down [{c}, {r})"
            );
        }
        let (sent_at, sender, receiver) = &t.sent[msg];
        prop_assert_eq!((sender, receiver), (from, to));
        let took = at - sent_at;
        prop_assert!(
            min <= took && took <= max,
            "message {msg} took {took} ns, outside [{min}, {max}]"
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
    for (at, _, to, msg, reason) in &t.dropped {
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
    let node = move || (1..=nodes).prop_map(|i| format!("n{i}"));
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
