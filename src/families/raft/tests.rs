//! Unit tests of the Raft state machine, driven by hand through [`TestContext`]s: every test
//! names the rule of the paper (or thesis) it exercises. A small harness delivers messages,
//! fires timers and crashes nodes deterministically, without the simulator.

use std::collections::BTreeMap;

use super::node::Role;
use super::*;
use crate::families::kv::ClientMessage;
use crate::families::kv::{KvMachine, Op, OpValue, Outcome, Reply, Request, ServesKvClients};
use crate::families::replicated::StateMachine;
use crate::family::NodeSetup;
use crate::process::{CommonObservation, NodeRole};
use crate::process::{Effect, NodeId, Process, TestContext, TimerId};

const MS: i64 = 1_000_000;
/// Client node ids used by the tests (after the servers).
const CLIENT: NodeId = NodeId(9);

/// A cluster of Raft servers replicating the state machine `M` (the key-value store unless a
/// test picks another).
struct Harness<M: ServesKvClients = KvMachine> {
    config: Config,
    servers: Vec<NodeId>,
    nodes: Vec<Node<M>>,
    ctxs: Vec<TestContext>,
    /// Pending timers per node: id -> (timer, local deadline).
    timers: Vec<BTreeMap<TimerId, (Timer, i64)>>,
    /// Messages sent and not yet delivered, in order: (from, to, message).
    inflight: Vec<(NodeId, NodeId, Message<M::Command>)>,
    /// Client replies, in order: (server, client, reply).
    replies: Vec<(NodeId, NodeId, Reply)>,
    /// Raft observations, in order.
    observations: Vec<(NodeId, Observation)>,
    /// Role observations, in order.
    roles: Vec<(NodeId, NodeRole, u64)>,
    /// Links that drop everything (directed).
    cut: Vec<(NodeId, NodeId)>,
}

impl Harness {
    /// `n` servers replicating the key-value store.
    fn new(n: u32, config: Config) -> Harness {
        Self::with_machine(n, config)
    }
}

impl<M: ServesKvClients> Harness<M> {
    /// `n` servers replicating the state machine `M`.
    fn with_machine(n: u32, config: Config) -> Self {
        let servers: Vec<NodeId> = (0..n).map(NodeId).collect();
        let mut h = Harness {
            config,
            servers: servers.clone(),
            nodes: Vec::new(),
            ctxs: Vec::new(),
            timers: Vec::new(),
            inflight: Vec::new(),
            replies: Vec::new(),
            observations: Vec::new(),
            roles: Vec::new(),
            cut: Vec::new(),
        };
        for &id in &servers {
            h.nodes.push(h.fresh(id));
            h.ctxs.push(TestContext::new(id, u64::from(id.0) + 1));
            h.timers.push(BTreeMap::new());
        }
        for i in 0..n as usize {
            h.nodes[i].on_start(&mut h.ctxs[i].ctx());
            h.collect(i);
        }
        h
    }

    fn fresh(&self, id: NodeId) -> Node<M> {
        Node::new(
            &NodeSetup::server(id, self.servers.clone()),
            self.config.clone(),
        )
    }

    /// Moves node `i`'s recorded effects into the harness.
    fn collect(&mut self, i: usize) {
        let from = NodeId(i as u32);
        let now = self.ctxs[i].local_time_ns;
        for effect in self.ctxs[i].take_effects() {
            match effect {
                Effect::Send { to, message } => match message.downcast::<Message<M::Command>>() {
                    Ok(m) => self.inflight.push((from, to, m)),
                    Err(other) => match other.downcast::<ClientMessage>() {
                        Ok(ClientMessage::Reply(r)) => self.replies.push((from, to, r)),
                        other => panic!("unexpected message {other:?}"),
                    },
                },
                Effect::SetTimer { id, delay, timer } => {
                    let Ok(t) = timer.downcast() else {
                        panic!("unexpected timer")
                    };
                    self.timers[i].insert(id, (t, now + delay.as_nanos() as i64));
                }
                Effect::CancelTimer { id } => {
                    self.timers[i].remove(&id);
                }
                Effect::Observe(o) => match o.downcast() {
                    Ok(o) => self.observations.push((from, o)),
                    Err(o) => match o.downcast() {
                        Ok(CommonObservation::Role { role, term }) => {
                            self.roles.push((from, role, term))
                        }
                        other => panic!("unexpected observation {other:?}"),
                    },
                },
                other => panic!("unexpected effect {other:?}"),
            }
        }
    }

    /// Delivers one message (dropping it if its link is cut).
    fn deliver(&mut self, from: NodeId, to: NodeId, m: Message<M::Command>) {
        if self.cut.contains(&(from, to)) {
            return;
        }
        let i = to.index();
        self.nodes[i].on_message(&mut self.ctxs[i].ctx(), from, m);
        self.collect(i);
    }

    /// Delivers every message in flight, and whatever they cause, until quiet (FIFO).
    fn settle(&mut self) {
        let mut steps = 0;
        while !self.inflight.is_empty() {
            let (from, to, m) = self.inflight.remove(0);
            self.deliver(from, to, m);
            steps += 1;
            assert!(steps < 100_000, "the cluster never went quiet");
        }
    }

    /// Fires node `i`'s earliest pending timer matching `pick`, advancing its clock to it.
    fn fire(&mut self, i: usize, pick: impl Fn(&Timer) -> bool) -> bool {
        let Some((&id, (timer, deadline))) = self.timers[i]
            .iter()
            .filter(|(_, (t, _))| pick(t))
            .min_by_key(|(_, (_, d))| *d)
        else {
            return false;
        };
        let (timer, deadline) = (timer.clone(), *deadline);
        self.timers[i].remove(&id);
        let ctx = &mut self.ctxs[i];
        ctx.local_time_ns = ctx.local_time_ns.max(deadline);
        self.nodes[i].on_timer(&mut ctx.ctx(), id, timer);
        self.collect(i);
        true
    }

    /// Makes node `i` time out (firing its election timer until it campaigns).
    fn timeout(&mut self, i: usize) {
        for _ in 0..20 {
            if self.nodes[i].role() != Role::Follower {
                return;
            }
            self.advance(i, 1000 * MS);
            assert!(self.fire(i, |t| *t == Timer::Election), "no election timer");
        }
        panic!("node {i} never campaigned");
    }

    fn advance(&mut self, i: usize, ns: i64) {
        self.ctxs[i].local_time_ns += ns;
    }

    /// Node `i` times out and the cluster settles: it must be leader.
    fn elect(&mut self, i: usize) {
        self.timeout(i);
        self.settle();
        assert_eq!(
            self.nodes[i].role(),
            Role::Leader,
            "node {i} should have won"
        );
    }

    /// Sends a heartbeat round from leader `i` and settles.
    fn heartbeat(&mut self, i: usize) {
        let term = self.nodes[i].term();
        self.advance(i, 60 * MS);
        assert!(self.fire(i, |t| *t == Timer::Heartbeat { term }));
        self.settle();
    }

    fn request(&mut self, i: usize, id: u64, op: Op) {
        self.nodes[i].on_request(&mut self.ctxs[i].ctx(), CLIENT, Request { id, op });
        self.collect(i);
    }

    /// Crashes node `i` (unsynced writes and volatile state lost) and restarts it.
    fn crash_restart(&mut self, i: usize) {
        self.ctxs[i].crash();
        self.timers[i].clear();
        self.inflight.retain(|(_, to, _)| to.index() != i);
        self.nodes[i] = self.fresh(NodeId(i as u32));
        self.nodes[i].on_start(&mut self.ctxs[i].ctx());
        self.collect(i);
    }

    fn isolate(&mut self, i: usize) {
        for &s in &self.servers.clone() {
            if s.index() != i {
                self.cut.push((NodeId(i as u32), s));
                self.cut.push((s, NodeId(i as u32)));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn reply_to(&self, id: u64) -> Option<&Outcome> {
        self.replies
            .iter()
            .rev()
            .find(|(_, _, r)| r.id == id)
            .map(|(_, _, r)| &r.outcome)
    }

    fn log_terms(&self, i: usize) -> Vec<u64> {
        let log = self.nodes[i].log();
        (log.snapshot_index() + 1..=log.last_index())
            .map(|k| log.term_at(k).unwrap())
            .collect()
    }
}

fn put(k: &str, v: &str) -> Op {
    Op::Put {
        key: k.into(),
        value: v.into(),
    }
}

fn get(k: &str) -> Op {
    Op::Get { key: k.into() }
}

fn ok_done() -> Outcome {
    Outcome::Ok {
        value: OpValue::Done,
    }
}

fn config(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::default();
    f(&mut c);
    c
}

fn entry(term: u64, request: u64) -> Entry {
    Entry {
        term,
        payload: if request == 0 {
            Payload::Noop
        } else {
            Payload::Command(std::sync::Arc::new(crate::families::kv::Command {
                client: CLIENT,
                request,
                op: put("k", &format!("v{request}")),
            }))
        },
    }
}

fn append(term: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
    Message::AppendEntries {
        term,
        prev_log_index: prev.0,
        prev_log_term: prev.1,
        entries,
        leader_commit: commit,
        round: 0,
    }
}

// ----- §5.2 leader election -----

#[test]
fn s5_2_a_timed_out_follower_votes_for_itself_persists_and_wins_a_majority() {
    let mut h = Harness::new(3, config(|c| c.pre_vote = false));
    h.timeout(0);
    assert_eq!(h.nodes[0].role(), Role::Candidate);
    assert_eq!(h.nodes[0].term(), 1);
    // The vote for itself is on disk before any RequestVote leaves (Figure 2).
    let durable: super::log::Durable = {
        let mut disk = h.ctxs[0].disk.clone();
        disk.crash();
        super::log::load(&disk)
    };
    assert_eq!((durable.term, durable.voted_for), (1, Some(NodeId(0))));
    let requests = h
        .inflight
        .iter()
        .filter(|(_, _, m)| matches!(m, Message::RequestVote { term: 1, .. }))
        .count();
    assert_eq!(requests, 2);
    h.settle();
    assert_eq!(h.nodes[0].role(), Role::Leader);
    assert!(h.roles.contains(&(NodeId(0), NodeRole::Leader, 1)));
    for i in 1..3 {
        assert_eq!(h.nodes[i].role(), Role::Follower);
        assert_eq!(h.nodes[i].term(), 1);
    }
}

#[test]
fn s5_2_a_server_votes_at_most_once_per_term_even_across_a_restart() {
    for forget in [false, true] {
        let mut h = Harness::new(
            3,
            config(|c| {
                c.pre_vote = false;
                if forget {
                    c.bugs = vec![BUG_FORGET_VOTE_ON_RESTART.into()];
                }
            }),
        );
        let ask = |candidate: u32| {
            (
                NodeId(candidate),
                Message::RequestVote {
                    term: 1,
                    last_log_index: 0,
                    last_log_term: 0,
                    pre_vote: false,
                },
            )
        };
        let (c1, m1) = ask(1);
        h.deliver(c1, NodeId(0), m1);
        h.crash_restart(0);
        h.inflight.clear();
        let (c2, m2) = ask(2);
        h.deliver(c2, NodeId(0), m2);
        let granted = h
            .inflight
            .iter()
            .any(|(_, to, m)| *to == NodeId(2) && matches!(m, Message::Vote { granted: true, .. }));
        assert_eq!(
            granted, forget,
            "a second vote in term 1 is the forget-vote-on-restart bug"
        );
    }
}

#[test]
fn s5_4_1_votes_go_only_to_candidates_whose_log_is_at_least_as_up_to_date() {
    for bug in [false, true] {
        let mut h = Harness::new(
            3,
            config(|c| {
                c.pre_vote = false;
                c.check_quorum = false; // no leader stickiness: only the log decides
                if bug {
                    c.bugs = vec![BUG_VOTE_WITHOUT_LOG_CHECK.into()];
                }
            }),
        );
        // Node 0's log: entries of terms 1, 2 (delivered by a leader of term 2).
        h.deliver(
            NodeId(1),
            NodeId(0),
            append(2, (0, 0), vec![entry(1, 0), entry(2, 0)], 0),
        );
        h.inflight.clear();
        let cases = [
            (1, 5, false), // lower last term, longer log: not up to date
            (2, 1, false), // same last term, shorter log: not up to date
            (2, 2, true),  // same last term, same length
            (3, 1, true),  // higher last term
        ];
        for (k, (last_term, last_index, up_to_date)) in cases.into_iter().enumerate() {
            let term = 3 + k as u64; // a fresh term each time, so no earlier vote interferes
            h.deliver(
                NodeId(2),
                NodeId(0),
                Message::RequestVote {
                    term,
                    last_log_index: last_index,
                    last_log_term: last_term,
                    pre_vote: false,
                },
            );
            let granted = h
                .inflight
                .drain(..)
                .any(|(_, _, m)| matches!(m, Message::Vote { granted: true, .. }));
            assert_eq!(
                granted,
                up_to_date || bug,
                "last term {last_term}, last index {last_index} (bug: {bug})"
            );
        }
    }
}

#[test]
fn s5_1_a_leader_that_sees_a_higher_term_steps_down_and_adopts_it() {
    let mut h = Harness::new(3, config(|c| c.pre_vote = false));
    h.elect(0);
    h.deliver(
        NodeId(2),
        NodeId(0),
        Message::AppendReply {
            term: 7,
            success: false,
            match_index: 0,
            conflict_index: 0,
            conflict_term: None,
            round: 0,
        },
    );
    assert_eq!(h.nodes[0].role(), Role::Follower);
    assert_eq!(h.nodes[0].term(), 7);
    assert!(h.roles.contains(&(NodeId(0), NodeRole::Follower, 7)));
    // A stale leader's AppendEntries is refused with the current term (§5.1).
    h.inflight.clear();
    h.deliver(NodeId(1), NodeId(0), append(3, (0, 0), vec![], 0));
    assert!(matches!(
        h.inflight[0].2,
        Message::AppendReply {
            term: 7,
            success: false,
            ..
        }
    ));
}

// ----- §5.3 log replication -----

#[test]
fn s5_3_the_consistency_check_rejects_with_a_hint_and_the_leader_backs_up_a_term_at_once() {
    let mut h = Harness::new(3, config(|c| c.pre_vote = false));
    // Follower 0 holds terms [1, 1, 2, 2, 2] from an old leader.
    h.deliver(
        NodeId(1),
        NodeId(0),
        append(
            2,
            (0, 0),
            vec![
                entry(1, 0),
                entry(1, 1),
                entry(2, 0),
                entry(2, 2),
                entry(2, 3),
            ],
            0,
        ),
    );
    h.inflight.clear();
    // A leader of term 4 whose log is [1, 1, 3] probes at prev = (3, 3).
    h.deliver(NodeId(2), NodeId(0), append(4, (3, 3), vec![], 0));
    let (_, _, reply) = h.inflight.remove(0);
    assert_eq!(
        reply,
        Message::AppendReply {
            term: 4,
            success: false,
            match_index: 0,
            conflict_index: 3,
            conflict_term: Some(2),
            round: 0,
        },
        "the follower names its conflicting term and where that term starts"
    );
    // Resending from index 3 replaces only the conflicting suffix.
    h.deliver(
        NodeId(2),
        NodeId(0),
        append(4, (2, 1), vec![entry(3, 0), entry(4, 0)], 0),
    );
    assert_eq!(h.log_terms(0), vec![1, 1, 3, 4]);
    assert!(
        h.observations
            .iter()
            .any(|(n, o)| *n == NodeId(0) && *o == Observation::Truncate { index: 3, last: 5 })
    );
}

#[test]
fn s5_3_a_leader_repairs_a_divergent_follower_end_to_end() {
    let mut h = Harness::new(
        3,
        config(|c| {
            c.pre_vote = false;
            c.check_quorum = false;
        }),
    );
    h.elect(0);
    h.request(0, 1, put("a", "1"));
    h.settle();
    h.heartbeat(0);
    // Node 2 is cut off; node 0 appends entries nobody else gets, then loses leadership.
    h.isolate(0);
    h.request(0, 2, put("a", "lost"));
    h.request(0, 3, put("a", "lost too"));
    h.settle();
    h.heal();
    h.isolate(0);
    h.elect(1);
    h.request(1, 4, put("b", "2"));
    h.settle();
    h.heal();
    h.heartbeat(1);
    h.heartbeat(1);
    assert_eq!(
        h.log_terms(0),
        h.log_terms(1),
        "the old leader's suffix was replaced"
    );
    assert_eq!(h.nodes[0].state_machine().value("a"), Some("1"));
    assert_eq!(h.nodes[0].state_machine().value("b"), Some("2"));
}

#[test]
fn s5_3_a_reordered_stale_append_never_truncates_a_longer_matching_log() {
    for bug in [false, true] {
        let mut h = Harness::new(
            3,
            config(|c| {
                if bug {
                    c.bugs = vec![BUG_TRUNCATE_ON_STALE_APPEND.into()];
                }
            }),
        );
        let fresh = append(1, (0, 0), vec![entry(1, 0), entry(1, 1), entry(1, 2)], 0);
        let stale = append(1, (0, 0), vec![entry(1, 0)], 0);
        h.deliver(NodeId(1), NodeId(0), fresh);
        h.deliver(NodeId(1), NodeId(0), stale);
        let expect = if bug { vec![1] } else { vec![1, 1, 1] };
        assert_eq!(h.log_terms(0), expect, "bug: {bug}");
    }
}

// ----- §5.4 safety -----

/// Figure 8 (c): the leader of term 4 holds an entry of term 2 that a majority now stores; it
/// must not count it committed until an entry of term 4 is on a majority.
#[test]
fn s5_4_2_only_current_term_entries_commit_by_counting_figure_8() {
    for bug in [false, true] {
        let mut h = Harness::new(
            5,
            config(|c| {
                c.pre_vote = false;
                c.check_quorum = false;
                c.max_entries_per_append = 1;
                if bug {
                    c.bugs = vec![BUG_COMMIT_PREVIOUS_TERM.into()];
                }
            }),
        );
        // S1 (node 0) and S2 (node 1) hold [1, 2 (term 2)]; S3, S4, S5 hold [1]. A former leader
        // of term 3 (not a server here) told everyone that index 1 is committed.
        let former = NodeId(7);
        for i in 0..5 {
            let entries = if i < 2 {
                vec![entry(1, 0), entry(2, 7)]
            } else {
                vec![entry(1, 0)]
            };
            h.deliver(former, NodeId(i), append(3, (0, 0), entries, 1));
        }
        h.inflight.clear();
        // S1 wins term 4 with votes from S2 and S3; S4 and S5 are unreachable.
        h.isolate(3);
        h.isolate(4);
        h.timeout(0);
        assert_eq!(h.nodes[0].term(), 4);
        while h.nodes[0].role() != Role::Leader {
            let k = h
                .inflight
                .iter()
                .position(|(_, _, m)| {
                    matches!(m, Message::RequestVote { .. } | Message::Vote { .. })
                })
                .expect("votes in flight");
            let (from, to, m) = h.inflight.remove(k);
            h.deliver(from, to, m);
        }
        let step = |h: &mut Harness, from: u32, to: u32| {
            let k = h
                .inflight
                .iter()
                .position(|(f, t, _)| *f == NodeId(from) && *t == NodeId(to))
                .unwrap_or_else(|| panic!("no message {from} -> {to} in {:?}", h.inflight));
            let (f, t, m) = h.inflight.remove(k);
            h.deliver(f, t, m);
        };
        step(&mut h, 0, 1); // S2 has index 2: it takes the no-op (index 3)
        step(&mut h, 1, 0); // S1 learns S2 matches up to 3
        step(&mut h, 0, 2); // S3 lacks index 2: rejects
        step(&mut h, 2, 0); // S1 backs up
        step(&mut h, 0, 2); // S3 takes index 2 (term 2), one entry per message
        assert_eq!(h.log_terms(2), vec![1, 2]);
        step(&mut h, 2, 0); // S1 learns S3 matches up to 2: S1, S2, S3 hold index 2
        let commit = h.nodes[0].commit_index();
        if bug {
            assert_eq!(commit, 2, "the bug commits the term-2 entry by counting");
        } else {
            assert_eq!(
                commit, 1,
                "a term-2 entry is not committed by counting in term 4"
            );
        }
    }
}

#[test]
fn figure_2_persisted_state_survives_a_crash_and_the_commit_index_is_relearned() {
    let mut h = Harness::new(3, config(|c| c.pre_vote = false));
    h.elect(0);
    for id in 1..=3 {
        h.request(0, id, put("k", &format!("v{id}")));
    }
    h.settle();
    h.heartbeat(0);
    let before = h.log_terms(1);
    h.crash_restart(1);
    assert_eq!(h.nodes[1].term(), 1);
    assert_eq!(h.log_terms(1), before, "the log is durable");
    assert_eq!(h.nodes[1].commit_index(), 0, "the commit index is volatile");
    assert!(h.nodes[1].state_machine().is_empty());
    h.heartbeat(0);
    assert_eq!(h.nodes[1].commit_index(), 4);
    assert_eq!(h.nodes[1].state_machine().value("k"), Some("v3"));
    assert!(h.observations.iter().any(|(n, o)| *n == NodeId(1)
        && matches!(
            o,
            Observation::Restored {
                term: 1,
                last_index: 4,
                ..
            }
        )));
}

// ----- §7 log compaction -----

#[test]
fn s7_a_lagging_follower_catches_up_by_install_snapshot() {
    let mut h = Harness::new(
        3,
        config(|c| {
            c.pre_vote = false;
            c.snapshot_threshold_entries = 4;
        }),
    );
    h.elect(0);
    h.isolate(2);
    for id in 1..=9 {
        h.request(0, id, put(&format!("k{id}"), "v"));
        h.settle();
    }
    h.heartbeat(0);
    assert!(
        h.nodes[0].log().snapshot_index() >= 4,
        "the leader compacted"
    );
    assert_eq!(h.nodes[2].log().last_index(), 1);
    h.heal();
    h.heartbeat(0);
    h.heartbeat(0);
    assert!(h.observations.iter().any(|(n, o)| *n == NodeId(2)
        && matches!(
            o,
            Observation::SnapshotInstalled {
                leader: NodeId(0),
                ..
            }
        )));
    assert_eq!(h.nodes[2].state_machine(), h.nodes[0].state_machine());
    assert_eq!(h.nodes[2].log().last_index(), h.nodes[0].log().last_index());
    // The snapshot survives a restart.
    h.crash_restart(2);
    assert_eq!(h.nodes[2].state_machine().value("k3"), Some("v"));
}

// ----- thesis §6.3: client sessions -----

#[test]
fn thesis_6_3_a_retried_command_is_appended_once_and_answered_from_the_session() {
    let mut h = Harness::new(3, config(|c| c.pre_vote = false));
    h.elect(0);
    let append_op = Op::Append {
        key: "k".into(),
        value: "x;".into(),
    };
    h.isolate(0);
    h.request(0, 1, append_op.clone());
    h.request(0, 1, append_op.clone()); // a retry while the first is pending
    assert_eq!(h.nodes[0].log().last_index(), 2, "one no-op, one command");
    h.heal();
    h.heartbeat(0);
    assert_eq!(h.reply_to(1), Some(&ok_done()));
    h.replies.clear();
    h.request(0, 1, append_op); // a retry after it was applied
    assert_eq!(h.reply_to(1), Some(&ok_done()));
    assert_eq!(h.nodes[0].log().last_index(), 2, "not appended again");
    assert_eq!(h.nodes[0].state_machine().value("k"), Some("x;"));
}

// ----- thesis §6.4: reads -----

#[test]
fn thesis_6_4_read_index_needs_a_majority_round_and_a_deposed_leader_cannot_serve() {
    for bug in [false, true] {
        let mut h = Harness::new(
            3,
            config(|c| {
                c.pre_vote = false;
                c.check_quorum = false;
                if bug {
                    c.bugs = vec![BUG_READ_FROM_LOCAL_STATE.into()];
                }
            }),
        );
        h.elect(0);
        h.request(0, 1, put("k", "old"));
        h.settle();
        h.heartbeat(0);
        // Node 0 is partitioned away; node 1 is elected and overwrites k.
        h.isolate(0);
        h.elect(1);
        h.request(1, 2, put("k", "new"));
        h.settle();
        h.heartbeat(1);
        // The deposed leader still believes it leads (no CheckQuorum).
        assert_eq!(h.nodes[0].role(), Role::Leader);
        h.request(0, 3, get("k"));
        h.settle();
        let stale = Outcome::Ok {
            value: OpValue::Value(Some("old".into())),
        };
        if bug {
            assert_eq!(h.reply_to(3), Some(&stale), "the bug serves a stale read");
        } else {
            assert_eq!(h.reply_to(3), None, "no majority answers its round");
            // The new leader serves reads after a round.
            h.request(1, 4, get("k"));
            assert_eq!(h.reply_to(4), None, "not before the round is answered");
            h.settle();
            assert_eq!(
                h.reply_to(4),
                Some(&Outcome::Ok {
                    value: OpValue::Value(Some("new".into()))
                })
            );
        }
    }
}

#[test]
fn thesis_6_4_1_a_lease_serves_reads_without_a_round_until_it_expires() {
    let mut h = Harness::new(3, config(|c| c.read_mode = ReadMode::Lease));
    h.elect(0);
    h.heartbeat(0);
    h.request(0, 1, get("k"));
    assert_eq!(
        h.reply_to(1),
        Some(&Outcome::Ok {
            value: OpValue::Value(None)
        })
    );
    assert!(h.inflight.is_empty(), "no round was needed");
    h.advance(0, 200 * MS); // past lease_duration (100ms) on the leader's clock
    h.request(0, 2, get("k"));
    assert_eq!(h.reply_to(2), None);
    assert!(
        !h.inflight.is_empty(),
        "the expired lease falls back to ReadIndex"
    );
    h.settle();
    assert!(h.reply_to(2).is_some());
}

// ----- thesis §9.6: PreVote and CheckQuorum -----

#[test]
fn thesis_9_6_prevote_keeps_a_partitioned_server_from_inflating_its_term() {
    let mut h = Harness::new(3, Config::default());
    h.elect(0);
    h.heartbeat(0);
    h.isolate(2);
    for _ in 0..3 {
        h.advance(2, 1000 * MS);
        assert!(h.fire(2, |t| *t == Timer::Election));
        h.settle();
        assert_eq!(h.nodes[2].role(), Role::PreCandidate);
    }
    assert_eq!(h.nodes[2].term(), 1, "no real election without pre-votes");
    h.heal();
    // Back in touch, its pre-votes are refused: the others hear from their leader.
    h.advance(2, 1000 * MS);
    assert!(h.fire(2, |t| *t == Timer::Election));
    h.settle();
    assert_eq!(h.nodes[0].role(), Role::Leader);
    assert_eq!(h.nodes[0].term(), 1, "the leader was not disrupted");
    assert_eq!(h.nodes[2].term(), 1);
}

#[test]
fn thesis_9_6_check_quorum_makes_a_cut_off_leader_step_down() {
    let mut h = Harness::new(3, Config::default());
    h.elect(0);
    h.isolate(0);
    let term = h.nodes[0].term();
    for _ in 0..3 {
        h.fire(0, |t| *t == Timer::CheckQuorum { term });
        h.settle();
    }
    assert_eq!(h.nodes[0].role(), Role::Follower);
    assert_eq!(
        h.nodes[0].term(),
        term,
        "stepping down does not change the term"
    );
    h.request(0, 1, put("k", "v"));
    assert_eq!(
        h.reply_to(1),
        Some(&Outcome::Redirect { leader: None }),
        "a follower redirects and never executes"
    );
}

// ----- scenario options -----

#[test]
fn raft_options_are_validated_with_the_key_and_its_place_in_the_file() {
    use crate::scenario::Scenario;
    let parse = |raft: &str| {
        let text =
            format!("duration = \"5s\"\n[cluster]\nprotocol = \"raft\"\nnodes = 3\n[raft]\n{raft}");
        Scenario::parse(std::path::Path::new("r.toml"), text.as_bytes())
    };
    let ok = parse("pre_vote = false\nread_mode = \"lease\"\nelection_timeout_min = \"200ms\"\nelection_timeout_max = \"400ms\"\n")
        .expect("valid");
    let raft: Config =
        crate::family::parse_options(&ok.cluster.roles[0].options).expect("resolved");
    assert!(!raft.pre_vote);
    assert_eq!(raft.read_mode, ReadMode::Lease);
    let cases = [
        (
            "election_timeout_min = \"200ms\"\nelection_timeout_max = \"100ms\"\n",
            "r.toml:7:24: raft.election_timeout_max: expected at least",
        ),
        (
            "heartbeat_interval = \"150ms\"\n",
            "r.toml:6:22: raft.heartbeat_interval: expected a positive duration below",
        ),
        (
            "max_entries_per_append = 0\n",
            "r.toml:6:26: raft.max_entries_per_append",
        ),
        (
            "read_mode = \"lease\"\nlease_duration = \"1s\"\n",
            "r.toml:7:18: raft.lease_duration",
        ),
        (
            "bugs = [\"nope\"]\n",
            "r.toml:6:9: raft.bugs[0]: unknown planted bug \"nope\"",
        ),
        ("read_mode = \"quorum\"\n", "r.toml:6:13:"),
        (
            "electon_timeout_min = \"1s\"\n",
            "r.toml:6:1: raft.electon_timeout_min: unknown field `electon_timeout_min`",
        ),
    ];
    for (raft, expected) in cases {
        let err = parse(raft).expect_err(raft).to_string();
        assert!(err.starts_with(expected), "{raft:?}: {err}");
    }
}

// ----- any state machine -----

/// A test-only state machine: a counter that `append` adds its value's length to and `get`
/// reads. Proves that Raft replicates a machine other than the key-value store.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Counter {
    total: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Count {
    Add(u64),
    Read,
}

impl StateMachine for Counter {
    type Command = Count;
    type Outcome = u64;

    fn apply(&mut self, command: &Count) -> u64 {
        if let Count::Add(n) = command {
            self.total += n;
        }
        self.total
    }

    fn is_read(command: &Count) -> bool {
        *command == Count::Read
    }

    fn read(&self, _: &Count) -> u64 {
        self.total
    }
}

impl ServesKvClients for Counter {
    fn command(op: Op) -> Option<Count> {
        match op {
            Op::Append { value, .. } => Some(Count::Add(value.len() as u64)),
            Op::Get { .. } => Some(Count::Read),
            _ => None,
        }
    }

    fn outcome(total: u64) -> Outcome {
        Outcome::Ok {
            value: OpValue::Value(Some(total.to_string())),
        }
    }
}

fn total(n: u64) -> Outcome {
    Outcome::Ok {
        value: OpValue::Value(Some(n.to_string())),
    }
}

#[test]
fn raft_replicates_a_state_machine_other_than_the_key_value_store() {
    let mut h: Harness<Counter> = Harness::with_machine(
        3,
        config(|c| {
            c.pre_vote = false;
            c.snapshot_threshold_entries = 3;
        }),
    );
    h.elect(0);
    let add = |s: &str| Op::Append {
        key: "ignored".into(),
        value: s.into(),
    };
    h.request(0, 1, add("abc"));
    h.settle();
    assert_eq!(h.reply_to(1), Some(&total(3)), "the machine's outcome");
    h.request(0, 2, add("xy"));
    h.settle();
    assert_eq!(h.reply_to(2), Some(&total(5)));
    // A retry is answered from the session: the counter does not add again.
    h.replies.clear();
    h.request(0, 1, add("abc"));
    assert_eq!(h.reply_to(1), Some(&total(3)));
    // The machine says which commands are reads: served by ReadIndex, without a log entry.
    let last = h.nodes[0].log().last_index();
    h.request(0, 3, get("k"));
    h.settle();
    assert_eq!(h.reply_to(3), Some(&total(5)));
    assert_eq!(
        h.nodes[0].log().last_index(),
        last,
        "the read took no entry"
    );
    // An operation the machine does not support is refused.
    h.request(0, 4, put("k", "v"));
    assert!(matches!(h.reply_to(4), Some(Outcome::Fail { error }) if error == "unsupported"));
    // Every replica applied the same commands; snapshots carry the machine across a restart.
    h.heartbeat(0);
    for node in &h.nodes {
        assert_eq!(node.state_machine().machine(), &Counter { total: 5 });
    }
    assert!(
        h.nodes[1].log().snapshot_index() >= 3,
        "the follower compacted"
    );
    h.crash_restart(1);
    assert_eq!(h.nodes[1].state_machine(), h.nodes[0].state_machine());
}
