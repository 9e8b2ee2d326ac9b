//! Unit tests of the `quorum-store` server (with `TestContext`) and simulation tests (whole
//! runs: determinism, the checks' verdicts on known-good and known-bad runs).

use std::path::Path;

use super::ring::Ring;
use super::server::{Config, Server};
use super::state::State;
use super::{BUG_IGNORE_HINTS, Message, Observation, Timer};
use crate::families::kv;
use crate::family::NodeSetup;
use crate::process::{Effect, NodeId, Payload, Process, TestContext, TimerId};
use crate::scenario::{Scenario, Verdict};

fn setup(id: u32, nodes: u32) -> NodeSetup {
    NodeSetup::server(NodeId(id), (0..nodes).map(NodeId).collect())
}

fn config(text: &str) -> Config {
    toml::from_str(text).expect("a valid options table")
}

fn sends(effects: &[Effect]) -> Vec<(NodeId, Payload)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to, message } => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}

fn kv_request(id: u64, op: kv::Op) -> Payload {
    Payload::new(kv::ClientMessage::Request(kv::Request { id, op }))
}

fn kv_replies(effects: &[Effect]) -> Vec<kv::Reply> {
    sends(effects)
        .into_iter()
        .filter_map(|(_, m)| match m.downcast::<kv::ClientMessage>() {
            Ok(kv::ClientMessage::Reply(r)) => Some(r),
            _ => None,
        })
        .collect()
}

fn peer_messages(effects: &[Effect]) -> Vec<(NodeId, Message)> {
    sends(effects)
        .into_iter()
        .filter_map(|(to, m)| m.downcast::<Message>().ok().map(|m| (to, m)))
        .collect()
}

const CLIENT: NodeId = NodeId(9);

#[test]
fn a_write_is_acknowledged_after_w_replicas_and_stamped_by_the_coordinators_local_clock() {
    let mut tc = TestContext::new(NodeId(0), 1);
    tc.local_time_ns = 7_000;
    let mut node = Server::new(&setup(0, 3), config("n = 3\nw = \"quorum\""));
    node.on_start(&mut tc.ctx());
    tc.take_effects();
    let put = kv::Op::Put {
        key: "k1".into(),
        value: "v1".into(),
    };
    node.on_other(&mut tc.ctx(), CLIENT, kv_request(1, put))
        .expect("the store serves kv clients");
    let effects = tc.take_effects();
    // The coordinator is a replica of every key on 3 nodes with n = 3: its own copy is one ack.
    assert!(
        kv_replies(&effects).is_empty(),
        "one ack of two: no answer yet"
    );
    let writes: Vec<_> = peer_messages(&effects)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::Write {
                op, state, hint, ..
            } => Some((to, op, state, hint)),
            _ => None,
        })
        .collect();
    assert_eq!(writes.len(), 2, "sent to the two other replicas");
    let (_, op, state, hint) = &writes[0];
    assert_eq!(*hint, None);
    let State::Lww { stamp, value } = state else {
        panic!("an LWW version: {state:?}")
    };
    assert_eq!(
        (stamp.time_ns, stamp.node, value.as_str()),
        (7_000, 0, "v1")
    );
    node.on_message(&mut tc.ctx(), NodeId(1), Message::WriteAck { op: *op });
    let replies = kv_replies(&tc.take_effects());
    assert_eq!(replies.len(), 1);
    assert!(matches!(replies[0].outcome, kv::Outcome::Ok { .. }));
    // A late acknowledgement changes nothing.
    node.on_message(&mut tc.ctx(), NodeId(2), Message::WriteAck { op: *op });
    assert!(kv_replies(&tc.take_effects()).is_empty());
}

#[test]
fn a_read_answers_the_merge_of_r_replies_and_repairs_the_stale_replica() {
    let mut tc = TestContext::new(NodeId(0), 1);
    let mut node = Server::new(&setup(0, 3), config("n = 3\nr = \"all\""));
    node.on_start(&mut tc.ctx());
    tc.take_effects();
    node.on_other(
        &mut tc.ctx(),
        CLIENT,
        kv_request(1, kv::Op::Get { key: "k1".into() }),
    )
    .unwrap();
    let effects = tc.take_effects();
    let reads: Vec<u64> = peer_messages(&effects)
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Read { op, .. } => Some(op),
            _ => None,
        })
        .collect();
    assert_eq!(reads.len(), 2);
    let newer = State::Lww {
        stamp: super::state::Stamp {
            time_ns: 9,
            node: 2,
        },
        value: "new".into(),
    };
    let older = State::Lww {
        stamp: super::state::Stamp {
            time_ns: 5,
            node: 1,
        },
        value: "old".into(),
    };
    node.on_message(
        &mut tc.ctx(),
        NodeId(1),
        Message::ReadReply {
            op: reads[0],
            state: Some(older),
        },
    );
    assert!(
        kv_replies(&tc.take_effects()).is_empty(),
        "r = all: two of three"
    );
    node.on_message(
        &mut tc.ctx(),
        NodeId(2),
        Message::ReadReply {
            op: reads[0],
            state: Some(newer.clone()),
        },
    );
    let effects = tc.take_effects();
    let replies = kv_replies(&effects);
    assert_eq!(
        replies[0].outcome,
        kv::Outcome::Ok {
            value: kv::OpValue::Value(Some("new".into()))
        }
    );
    let repairs: Vec<NodeId> = peer_messages(&effects)
        .into_iter()
        .filter_map(|(to, m)| matches!(m, Message::Repair { .. }).then_some(to))
        .collect();
    assert_eq!(repairs, vec![NodeId(1)], "the stale replica gets the merge");
    assert!(
        effects.contains(&Effect::Observe(Payload::new(Observation::Stored {
            key: "k1".into(),
            state: newer
        }))),
        "the coordinator, a replica that held nothing, repairs itself"
    );
}

#[test]
fn a_coordinator_timeout_ends_a_write_unknown_and_a_read_failed() {
    let mut tc = TestContext::new(NodeId(0), 1);
    let mut node = Server::new(&setup(0, 3), config("n = 3\nr = \"all\"\nw = \"all\""));
    node.on_start(&mut tc.ctx());
    let put = kv::Op::Put {
        key: "k1".into(),
        value: "v".into(),
    };
    node.on_other(&mut tc.ctx(), CLIENT, kv_request(1, put))
        .unwrap();
    node.on_other(
        &mut tc.ctx(),
        CLIENT,
        kv_request(2, kv::Op::Get { key: "k1".into() }),
    )
    .unwrap();
    tc.take_effects();
    node.on_timer(&mut tc.ctx(), TimerId(0), Timer::Coordinator { op: 1 });
    node.on_timer(&mut tc.ctx(), TimerId(1), Timer::Coordinator { op: 2 });
    let replies = kv_replies(&tc.take_effects());
    assert!(
        matches!(replies[0].outcome, kv::Outcome::Unknown { .. }),
        "{replies:?}"
    );
    assert!(
        matches!(replies[1].outcome, kv::Outcome::Fail { .. }),
        "{replies:?}"
    );
}

#[test]
fn a_sloppy_quorum_writes_hints_to_fallbacks_which_hand_them_back_unless_the_bug_is_on() {
    // On 5 nodes with n = 3 a key has two fallbacks; pick a coordinator outside its list.
    let nodes: Vec<NodeId> = (0..5).map(NodeId).collect();
    let walk = Ring::new(&nodes, 16).walk("k1");
    let (owners, fallbacks) = (walk[..3].to_vec(), walk[3..].to_vec());
    let coordinator = fallbacks[0];
    let mut tc = TestContext::new(coordinator, 1);
    let mut node = Server::new(
        &setup(coordinator.0, 5),
        config("n = 3\nw = 2\nsloppy_quorum = true"),
    );
    node.on_start(&mut tc.ctx());
    node.on_other(
        &mut tc.ctx(),
        CLIENT,
        kv_request(
            1,
            kv::Op::Put {
                key: "k1".into(),
                value: "v".into(),
            },
        ),
    )
    .unwrap();
    tc.take_effects();
    // No owner answered: the fallback timer sends the write to both fallbacks as hints (the
    // coordinator is one of them and holds its own hint at once).
    node.on_timer(&mut tc.ctx(), TimerId(0), Timer::Fallback { op: 1 });
    let effects = tc.take_effects();
    let hinted: Vec<(NodeId, Option<NodeId>)> = peer_messages(&effects)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::Write { hint, .. } => Some((to, hint)),
            _ => None,
        })
        .collect();
    assert_eq!(hinted.len(), 1, "{hinted:?}");
    assert_eq!(hinted[0].0, fallbacks[1]);
    assert!(owners.contains(&hinted[0].1.expect("a hint")));
    node.on_message(&mut tc.ctx(), fallbacks[1], Message::WriteAck { op: 1 });
    assert_eq!(
        kv_replies(&tc.take_effects()).len(),
        1,
        "w = 2 met by fallbacks"
    );
    // Handoff: the coordinator's own hint goes to its owner, and is dropped once acknowledged.
    for (bugs, hands_off) in [("", true), (BUG_IGNORE_HINTS, false)] {
        let mut tc = TestContext::new(coordinator, 1);
        let text = format!("n = 3\nw = 2\nsloppy_quorum = true\nbugs = [{bugs:?}]");
        let text = text.replace("[\"\"]", "[]");
        let mut node = Server::new(&setup(coordinator.0, 5), config(&text));
        node.on_start(&mut tc.ctx());
        let state = State::Lww {
            stamp: super::state::Stamp {
                time_ns: 1,
                node: 4,
            },
            value: "v".into(),
        };
        node.on_message(
            &mut tc.ctx(),
            fallbacks[1],
            Message::Write {
                op: 1,
                key: "k1".into(),
                state: state.clone(),
                hint: Some(owners[0]),
            },
        );
        tc.take_effects();
        node.on_timer(&mut tc.ctx(), TimerId(0), Timer::Handoff);
        let handoffs: Vec<NodeId> = peer_messages(&tc.take_effects())
            .into_iter()
            .filter_map(|(to, m)| matches!(m, Message::Handoff { .. }).then_some(to))
            .collect();
        if !hands_off {
            assert!(handoffs.is_empty(), "ignore-hints keeps them");
            continue;
        }
        assert_eq!(handoffs, vec![owners[0]]);
        node.on_message(
            &mut tc.ctx(),
            owners[0],
            Message::HandoffAck {
                key: "k1".into(),
                digest: state.digest(),
            },
        );
        node.on_timer(&mut tc.ctx(), TimerId(1), Timer::Handoff);
        assert!(
            peer_messages(&tc.take_effects()).is_empty(),
            "an acknowledged hint is dropped"
        );
    }
}

#[test]
fn a_counter_coordinator_ships_its_durable_own_total_which_survives_a_crash() {
    let mut tc = TestContext::new(NodeId(0), 1);
    let c = config("n = 3\nw = \"one\"\nresolution = \"counter\"");
    let mut node = Server::new(&setup(0, 3), c.clone());
    node.on_start(&mut tc.ctx());
    let add = |id| {
        Payload::new(super::ClientMessage::Request(super::Request {
            id,
            op: super::QOp::Add {
                key: "k1".into(),
                delta: 1,
            },
        }))
    };
    node.on_other(&mut tc.ctx(), CLIENT, add(1)).unwrap();
    tc.crash();
    let mut node = Server::new(&setup(0, 3), c);
    node.on_start(&mut tc.ctx());
    tc.take_effects();
    node.on_other(&mut tc.ctx(), CLIENT, add(2)).unwrap();
    let shipped: Vec<State> = peer_messages(&tc.take_effects())
        .into_iter()
        .filter_map(|(_, m)| match m {
            Message::Write { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    let Some(State::Counter(c)) = shipped.first() else {
        panic!("{shipped:?}")
    };
    assert_eq!(
        c.value(),
        2,
        "the second add builds on the first, synced before"
    );
}

fn scenario(path: &str) -> Scenario {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Scenario::load(&root.join(path)).expect("a shipped scenario loads")
}

fn check<'a>(
    outcome: &'a crate::sim::RunRecord,
    results: &'a [crate::family::CheckResult],
    name: &str,
) -> &'a crate::family::CheckResult {
    let _ = outcome;
    results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("check {name} ran"))
}

#[test]
fn every_quorum_run_reproduces_its_trace_hash_and_seeds_differ() {
    let options = crate::sim::RunOptions::hash_only();
    for path in [
        "scenarios/quorum/sloppy-quorum-partition.toml",
        "scenarios/quorum/bugs/drop-siblings.toml",
        "scenarios/quorum/counter-partition.toml",
    ] {
        let s = scenario(path);
        let a = crate::sim::run(&s, 3, &options).trace_hash;
        let b = crate::sim::run(&s, 3, &options).trace_hash;
        let c = crate::sim::run(&s, 4, &options).trace_hash;
        assert_eq!(a, b, "{path}: seed 3 twice");
        assert_ne!(a, c, "{path}: seeds 3 and 4");
    }
}

#[test]
fn lost_writes_names_the_writes_lww_drops_under_clock_skew_and_staleness_measures_them() {
    let s = scenario("scenarios/quorum/lww-clock-skew.toml");
    let record = crate::sim::run(&s, 2, &crate::sim::RunOptions::default());
    let results = crate::check::run_checks(&record);
    let lost = check(&record, &results, "lost-writes");
    assert_eq!(lost.verdict, Verdict::Fail);
    assert!(
        lost.evidence[0].contains("completed before this write was invoked"),
        "{:?}",
        lost.evidence
    );
    assert!(lost.metrics["lost_writes"].as_u64().unwrap() > 10);
    let stale = check(&record, &results, "staleness");
    assert_eq!(stale.verdict, Verdict::Pass, "no bound set: measured only");
    assert!(stale.metrics["versions_behind_max"].as_u64().unwrap() > 0);
    assert!(stale.metrics["time_behind_ns_max"].as_u64().unwrap() > 0);
}

#[test]
fn liveness_judges_a_leaderless_store_from_the_final_heal() {
    let s = scenario("scenarios/quorum/quorum-minority-partition.toml");
    let record = crate::sim::run(&s, 1, &crate::sim::RunOptions::default());
    let results = crate::check::run_checks(&record);
    let live = check(&record, &results, "liveness");
    assert_eq!(live.verdict, Verdict::Pass, "{}", live.summary);
    assert!(
        live.summary.contains("no leader to wait for"),
        "{}",
        live.summary
    );
    assert!(live.metrics["ops_judged"].as_u64().unwrap() > 0);
}

#[test]
fn staleness_fails_over_its_bound_and_convergence_fails_without_anti_entropy() {
    let mut s = scenario("scenarios/quorum/one-one-diverges.toml");
    s.check
        .insert("staleness".into(), toml::toml! { versions_max = 0 });
    // No anti-entropy, no read repair, and no write after the heal to carry the last value
    // everywhere: the two sides' replicas stay apart.
    s.cluster.roles[0].options.remove("anti_entropy_interval");
    s.clients[0]
        .options
        .insert("stop".into(), toml::Value::String("4s".into()));
    let record = crate::sim::run(&s, 1, &crate::sim::RunOptions::default());
    let results = crate::check::run_checks(&record);
    assert_eq!(check(&record, &results, "staleness").verdict, Verdict::Fail);
    let conv = check(&record, &results, "replica-convergence");
    assert_eq!(conv.verdict, Verdict::Fail, "{}", conv.summary);
}

/// Every problem of a scenario with one `quorum-store` role of 3 nodes with `options`, and a
/// client group of `workload`.
fn problems(options: &str, workload: &str) -> Vec<String> {
    let text = format!(
        "duration = \"2s\"\n[[cluster.role]]\nname = \"n\"\nprotocol = \"quorum-store\"\nnodes = 3\noptions = {{ {options} }}\n[[clients]]\nname = \"c\"\nworkload = \"{workload}\"\ncount = 1\n"
    );
    match Scenario::parse_all(Path::new("q.toml"), text.as_bytes()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn options_out_of_range_are_refused_at_their_key_and_workloads_need_their_resolution() {
    assert_eq!(
        problems("n = 3, r = \"all\", w = 1", "kv"),
        Vec::<String>::new()
    );
    for (options, key) in [
        ("n = 4", "options.n"),
        ("r = 4", "options.r"),
        ("w = 0", "options.w"),
        ("r = \"most\"", "options.r"),
        ("vnodes = 0", "options.vnodes"),
        ("fallback_after = \"300ms\"", "options.fallback_after"),
        (
            "anti_entropy_interval = \"0s\"",
            "options.anti_entropy_interval",
        ),
        ("bugs = [\"nope\"]", "options.bugs"),
    ] {
        let found = problems(options, "kv");
        assert!(
            found
                .iter()
                .any(|p| p.contains(key) && p.starts_with("q.toml:")),
            "{options}: {found:?}"
        );
    }
    let found = problems("resolution = \"lww\"", "siblings");
    assert!(
        found
            .iter()
            .any(|p| p.contains("talks_to") && p.contains("version-vectors")),
        "{found:?}"
    );
    assert_eq!(
        problems("resolution = \"counter\"", "counter"),
        Vec::<String>::new()
    );
    for r in [
        super::Resolution::Lww,
        super::Resolution::VersionVectors,
        super::Resolution::Counter,
    ] {
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            r.name(),
            "name() is the serde form"
        );
    }
}
