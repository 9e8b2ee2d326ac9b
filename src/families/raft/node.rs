//! One Raft server as a sans-IO state machine. See the module docs of [`crate::families::raft`]
//! for the algorithm; the handlers below cite the paper's sections.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use rand::Rng;
use smallvec::SmallVec;

use crate::families::kv::{self, CommandId, KvMachine};
use crate::families::raft::log::{self, Log, Snapshot};
use crate::families::raft::{
    BUG_COMMIT_PREVIOUS_TERM, BUG_FORGET_VOTE_ON_RESTART, BUG_READ_FROM_LOCAL_STATE,
    BUG_TRUNCATE_ON_STALE_APPEND, BUG_VOTE_WITHOUT_LOG_CHECK, Config, Entry, EntryRef, Message,
    Observation, Payload, ReadMode, Timer,
};
use crate::families::replicated::{Answer, Command, Served, Sessions, StateMachine};
use crate::family::NodeSetup;
use crate::process::{AnyProcess, Context, NodeId, Process, TimerId};
use crate::process::{CommonObservation, NodeRole};

/// Raft's peer messages for the machine `M`.
type Msg<M> = Message<<M as StateMachine>::Command>;

/// Batches in flight per follower while streaming (times `max_entries_per_append`).
const MAX_INFLIGHT_BATCHES: u64 = 8;
/// Heartbeat rounds whose start time a lease leader remembers.
const MAX_ROUND_TIMES: usize = 64;

/// A server's role.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes (thesis §9.6): term not yet incremented.
    PreCandidate,
    /// Asking for votes in its term.
    Candidate,
    /// Leads its term.
    Leader,
}

impl Role {
    fn node_role(self) -> NodeRole {
        match self {
            Role::Follower => NodeRole::Follower,
            Role::PreCandidate => NodeRole::PreCandidate,
            Role::Candidate => NodeRole::Candidate,
            Role::Leader => NodeRole::Leader,
        }
    }
}

/// The leader's view of one follower.
#[derive(Clone, Debug)]
struct Progress {
    /// Next index to send.
    next: u64,
    /// Highest index known to match.
    matched: u64,
    /// Probing: one AppendEntries at a time until one succeeds.
    probing: bool,
    /// A probe is out; wait for its answer or the next heartbeat.
    probe_sent: bool,
    /// Highest heartbeat round this follower answered in the current term.
    acked_round: u64,
    /// Highest heartbeat round carried by a message sent to this follower in the current term.
    sent_round: u64,
    /// Answered since the last CheckQuorum.
    active: bool,
    /// Local time of the last AppendEntries or InstallSnapshot sent to it.
    last_sent: i64,
}

impl Progress {
    /// The follower's log matches the leader's through `index`: send from after it, and stop
    /// probing.
    fn matched_through(&mut self, index: u64) {
        self.matched = self.matched.max(index);
        self.next = self.next.max(self.matched + 1);
        self.probing = false;
        self.probe_sent = false;
    }
}

/// A `get` waiting for its ReadIndex to be confirmed and applied.
#[derive(Clone, Debug)]
struct PendingRead<C> {
    client: NodeId,
    request: u64,
    /// The read-only command ([`StateMachine::is_read`]).
    command: C,
    /// The commit index at the time it could be fixed (after the leader's term committed).
    read_index: Option<u64>,
    /// The heartbeat round that must be answered by a majority (started after the read came).
    round: u64,
}

/// Which planted bugs are on.
#[derive(Copy, Clone, Debug, Default)]
struct Bugs {
    commit_previous_term: bool,
    vote_without_log_check: bool,
    forget_vote: bool,
    truncate_on_stale_append: bool,
    read_from_local_state: bool,
}

/// One Raft server. Built fresh at boot and after every restart; `on_start` reloads what the
/// disk holds.
#[derive(Debug)]
pub struct Node<M: Served = KvMachine> {
    id: NodeId,
    servers: Vec<NodeId>,
    peers: Vec<NodeId>,
    config: Config,
    bugs: Bugs,
    // Persistent state (Figure 2).
    term: u64,
    voted_for: Option<NodeId>,
    log: Log<M::Command>,
    snapshot_data: String,
    // Volatile state.
    role: Role,
    leader: Option<NodeId>,
    commit: u64,
    applied: u64,
    machine: Sessions<M>,
    election_deadline: i64,
    election_timer: Option<TimerId>,
    last_leader_contact: Option<i64>,
    votes: BTreeSet<NodeId>,
    // Leader state.
    progress: BTreeMap<NodeId, Progress>,
    term_start: u64,
    waiters: BTreeMap<u64, CommandId>,
    proposed: BTreeMap<CommandId, u64>,
    round: u64,
    round_quorum: u64,
    round_started: BTreeMap<u64, i64>,
    /// The heartbeat round the newest pending ReadIndex read needs (started after it arrived).
    read_round: u64,
    lease_until: i64,
    reads: VecDeque<PendingRead<M::Command>>,
}

impl<M: Served> Node<M> {
    /// A server for `setup` (nothing loaded yet: that happens in `on_start`).
    pub fn new(setup: &NodeSetup, config: Config) -> Self {
        let bugs = Bugs {
            commit_previous_term: config.bug(BUG_COMMIT_PREVIOUS_TERM),
            vote_without_log_check: config.bug(BUG_VOTE_WITHOUT_LOG_CHECK),
            forget_vote: config.bug(BUG_FORGET_VOTE_ON_RESTART),
            truncate_on_stale_append: config.bug(BUG_TRUNCATE_ON_STALE_APPEND),
            read_from_local_state: config.bug(BUG_READ_FROM_LOCAL_STATE),
        };
        Node {
            id: setup.id,
            servers: setup.servers.clone(),
            peers: setup.peers(),
            machine: Sessions::new(config.session_limit),
            config,
            bugs,
            term: 0,
            voted_for: None,
            log: Log::default(),
            snapshot_data: String::new(),
            role: Role::Follower,
            leader: None,
            commit: 0,
            applied: 0,
            election_deadline: 0,
            election_timer: None,
            last_leader_contact: None,
            votes: BTreeSet::new(),
            progress: BTreeMap::new(),
            term_start: 0,
            waiters: BTreeMap::new(),
            proposed: BTreeMap::new(),
            round: 0,
            round_quorum: 0,
            round_started: BTreeMap::new(),
            read_round: 0,
            lease_until: i64::MIN,
            reads: VecDeque::new(),
        }
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this server knows of in its term (itself when it leads), if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// `currentTerm`.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The commit index.
    pub fn commit_index(&self) -> u64 {
        self.commit
    }

    /// The log.
    pub fn log(&self) -> &Log<M::Command> {
        &self.log
    }

    /// The state machine.
    pub fn state_machine(&self) -> &Sessions<M> {
        &self.machine
    }

    fn majority(&self) -> usize {
        self.servers.len() / 2 + 1
    }

    // ----- persistence and observation helpers -----

    /// Stages `currentTerm`/`votedFor` (the vote is dropped under `forget-vote-on-restart`).
    fn persist_hard_state(&mut self, ctx: &mut Context<'_>) {
        let vote = if self.bugs.forget_vote {
            None
        } else {
            self.voted_for
        };
        log::write_hard_state(ctx.disk(), self.term, vote);
        ctx.observe(Observation::HardState {
            term: self.term,
            voted_for: self.voted_for,
        });
    }

    fn set_role(&mut self, ctx: &mut Context<'_>, role: Role) {
        self.role = role;
        ctx.observe(CommonObservation::Role {
            role: role.node_role(),
            term: self.term,
        });
    }

    /// Adopts a higher term (§5.1): forget the vote, persist.
    fn adopt_term(&mut self, ctx: &mut Context<'_>, term: u64) {
        debug_assert!(term > self.term);
        self.term = term;
        self.voted_for = None;
        self.persist_hard_state(ctx);
    }

    fn random_timeout_ns(&self, ctx: &mut Context<'_>) -> i64 {
        let min = self.config.election_timeout_min.as_nanos();
        let max = self.config.election_timeout_max.as_nanos();
        ctx.rng().gen_range(min..=max) as i64
    }

    /// Pushes the election deadline a fresh random timeout into the future and makes sure the
    /// election timer is armed.
    fn reset_election_deadline(&mut self, ctx: &mut Context<'_>) {
        self.election_deadline = ctx.local_time_ns() + self.random_timeout_ns(ctx);
        self.arm_election_timer(ctx);
    }

    fn arm_election_timer(&mut self, ctx: &mut Context<'_>) {
        if self.election_timer.is_none() {
            let delay = (self.election_deadline - ctx.local_time_ns()).max(1) as u64;
            self.election_timer =
                Some(ctx.set_timer(std::time::Duration::from_nanos(delay), Timer::Election));
        }
    }

    /// True if this server heard from a current leader less than `election_timeout_min` ago.
    fn heard_from_leader_recently(&self, now: i64) -> bool {
        self.role == Role::Leader
            || (self.leader.is_some()
                && self
                    .last_leader_contact
                    .is_some_and(|t| now - t < self.config.election_timeout_min.as_nanos() as i64))
    }

    // ----- role changes -----

    /// Becomes a follower of `term` (adopting it if higher). Leader state is dropped: pending
    /// writes stay unanswered (they may still commit; the client retries with the same id),
    /// pending reads are redirected (a read has no effect, so it certainly did not happen).
    fn become_follower(&mut self, ctx: &mut Context<'_>, term: u64, leader: Option<NodeId>) {
        let term_changed = term > self.term;
        if term_changed {
            self.adopt_term(ctx, term);
        }
        self.leader = leader;
        let was = self.role;
        if was == Role::Leader {
            self.drop_leader_state(ctx);
        }
        if was != Role::Follower || term_changed {
            self.set_role(ctx, Role::Follower);
        }
        if was != Role::Follower {
            self.reset_election_deadline(ctx);
        }
        self.votes.clear();
    }

    fn drop_leader_state(&mut self, ctx: &mut Context<'_>) {
        self.progress.clear();
        self.waiters.clear();
        self.proposed.clear();
        self.round_started.clear();
        self.read_round = 0;
        self.lease_until = i64::MIN;
        for read in std::mem::take(&mut self.reads) {
            M::send_reply(ctx, read.client, read.request, Answer::Redirect(None));
        }
    }

    /// The election timeout passed: ask for pre-votes, or start an election (§5.2).
    fn campaign(&mut self, ctx: &mut Context<'_>) {
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.id);
        if self.config.pre_vote {
            self.set_role(ctx, Role::PreCandidate);
            if self.votes.len() >= self.majority() {
                return self.start_election(ctx);
            }
            self.request_votes(ctx, self.term + 1, true);
        } else {
            self.start_election(ctx);
        }
    }

    /// Increments the term, votes for itself, persists, asks for votes (§5.2).
    fn start_election(&mut self, ctx: &mut Context<'_>) {
        self.term += 1;
        self.voted_for = Some(self.id);
        self.persist_hard_state(ctx);
        self.votes.clear();
        self.votes.insert(self.id);
        self.set_role(ctx, Role::Candidate);
        if self.votes.len() >= self.majority() {
            return self.become_leader(ctx);
        }
        self.request_votes(ctx, self.term, false);
    }

    fn request_votes(&mut self, ctx: &mut Context<'_>, term: u64, pre_vote: bool) {
        for &peer in &self.peers {
            ctx.send(
                peer,
                Msg::<M>::RequestVote {
                    term,
                    last_log_index: self.log.last_index(),
                    last_log_term: self.log.last_term(),
                    pre_vote,
                },
            );
        }
    }

    /// Wins the election: no-op of the new term (§5.4.2), heartbeats, CheckQuorum.
    fn become_leader(&mut self, ctx: &mut Context<'_>) {
        if let Some(t) = self.election_timer.take() {
            ctx.cancel_timer(t);
        }
        self.leader = Some(self.id);
        self.set_role(ctx, Role::Leader);
        let next = self.log.last_index() + 1;
        self.progress = self
            .peers
            .iter()
            .map(|&p| {
                (
                    p,
                    Progress {
                        next,
                        matched: 0,
                        probing: true,
                        probe_sent: false,
                        acked_round: 0,
                        sent_round: 0,
                        active: true,
                        last_sent: i64::MIN,
                    },
                )
            })
            .collect();
        self.round_quorum = self.round;
        self.append_entry(ctx, Payload::Noop);
        self.term_start = self.log.last_index();
        let term = self.term;
        ctx.set_timer(
            self.config.heartbeat_interval.to_std(),
            Timer::Heartbeat { term },
        );
        if self.config.check_quorum {
            ctx.set_timer(
                self.config.election_timeout_min.to_std(),
                Timer::CheckQuorum { term },
            );
        }
        self.maybe_commit(ctx);
        self.send_heartbeats(ctx, true);
    }

    // ----- leader: replication -----

    /// Appends an entry of the current term to the leader's log (staged; synced at step end).
    fn append_entry(&mut self, ctx: &mut Context<'_>, payload: Payload<M::Command>) -> u64 {
        let entry = Entry {
            term: self.term,
            payload,
        };
        let index = self.log.last_index() + 1;
        ctx.observe(Observation::Append {
            index,
            entries: vec![entry.reference()],
        });
        self.log.append(entry, ctx.disk());
        index
    }

    /// Starts a new heartbeat round: every AppendEntries sent from now on carries its number,
    /// so a follower's answer to any of them shows this node was still leader after now.
    fn start_round(&mut self, ctx: &mut Context<'_>) {
        self.round += 1;
        self.round_started.insert(self.round, ctx.local_time_ns());
        while self.round_started.len() > MAX_ROUND_TIMES {
            self.round_started.pop_first();
        }
    }

    /// The newest heartbeat round every follower has been sent (the current round when there
    /// are no followers).
    fn carried_round(&self) -> u64 {
        self.progress
            .values()
            .map(|p| p.sent_round)
            .min()
            .unwrap_or(self.round)
    }

    /// Whether pending reads need a heartbeat round that has not been sent to every follower
    /// yet, and no round that was is still waiting for its majority (concurrent reads share
    /// rounds, so at most one read round is in flight).
    fn read_round_due(&self) -> bool {
        let carried = self.carried_round();
        self.read_round > carried && self.round_quorum >= carried
    }

    /// ReadIndex (thesis §6.4): makes sure the round pending reads need is carried to every
    /// follower, starting it if it has not started, and sending it to each follower not yet
    /// sent a message of it. Nothing is sent while an earlier read round is in flight.
    fn carry_read_round(&mut self, ctx: &mut Context<'_>) {
        if !self.read_round_due() {
            return;
        }
        if self.read_round > self.round {
            self.start_round(ctx);
        }
        let round = self.round;
        for peer in self.peers.clone() {
            if self
                .progress
                .get(&peer)
                .is_some_and(|p| p.sent_round < round)
            {
                self.send_append(ctx, peer, true);
            }
        }
    }

    /// Starts a round and sends every follower an AppendEntries (empty or not). With `all`
    /// false (the periodic heartbeat), a follower that was sent something less than a
    /// heartbeat interval ago is skipped: that message already serves as its heartbeat.
    fn send_heartbeats(&mut self, ctx: &mut Context<'_>, all: bool) {
        self.start_round(ctx);
        let now = ctx.local_time_ns();
        let interval = self.config.heartbeat_interval.as_nanos() as i64;
        for peer in self.peers.clone() {
            if let Some(p) = self.progress.get_mut(&peer) {
                if !all && now.saturating_sub(p.last_sent) < interval {
                    continue;
                }
                p.probe_sent = false;
            }
            self.send_append(ctx, peer, true);
        }
    }

    /// Sends `peer` what it needs next: InstallSnapshot if its next entry was compacted away,
    /// else an AppendEntries with a batch (§5.3). With `heartbeat` an empty one is sent too.
    fn send_append(&mut self, ctx: &mut Context<'_>, peer: NodeId, heartbeat: bool) {
        let max_batch = u64::from(self.config.max_entries_per_append);
        let (term, commit, round) = (self.term, self.commit, self.round);
        let Some(p) = self.progress.get_mut(&peer) else {
            return;
        };
        if p.probing && p.probe_sent && !heartbeat {
            return;
        }
        let now = ctx.local_time_ns();
        if p.next <= self.log.snapshot_index() {
            p.probing = true;
            p.probe_sent = true;
            p.last_sent = now;
            p.sent_round = round;
            ctx.send(
                peer,
                Msg::<M>::InstallSnapshot {
                    term,
                    last_index: self.log.snapshot_index(),
                    last_term: self.log.snapshot_term(),
                    data: self.snapshot_data.clone(),
                    round,
                },
            );
            return;
        }
        let limit = if p.probing {
            max_batch
        } else {
            let in_flight = (p.next - 1).saturating_sub(p.matched);
            (MAX_INFLIGHT_BATCHES * max_batch)
                .saturating_sub(in_flight)
                .min(max_batch)
        };
        let entries = self.log.entries_from(p.next, limit as usize);
        if entries.is_empty() && !heartbeat {
            return;
        }
        let prev = p.next - 1;
        let prev_term = self
            .log
            .term_at(prev)
            .expect("prev is at or after the snapshot");
        if p.probing {
            p.probe_sent = true;
        } else {
            p.next += entries.len() as u64;
        }
        p.last_sent = now;
        p.sent_round = round;
        ctx.send(
            peer,
            Msg::<M>::AppendEntries {
                term,
                prev_log_index: prev,
                prev_log_term: prev_term,
                entries,
                leader_commit: commit,
                round,
            },
        );
    }

    /// Advances the commit index to the highest index a majority holds, if that entry is of
    /// the current term (§5.4.2; the planted bug drops the term test).
    fn maybe_commit(&mut self, ctx: &mut Context<'_>) {
        let mut matched: SmallVec<[u64; 8]> = self.progress.values().map(|p| p.matched).collect();
        matched.push(self.log.last_index());
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let n = matched[self.majority() - 1];
        if n <= self.commit {
            return;
        }
        let of_current_term = self.log.term_at(n) == Some(self.term);
        if of_current_term || self.bugs.commit_previous_term {
            self.commit = n;
            ctx.observe(Observation::Commit { index: n });
            for read in self.reads.iter_mut().filter(|r| r.read_index.is_none()) {
                if self.commit >= self.term_start {
                    read.read_index = Some(self.commit);
                }
            }
            self.apply(ctx);
        }
    }

    /// Records a follower's answer to heartbeat round `round` and serves reads it confirms.
    fn ack_round(&mut self, ctx: &mut Context<'_>, peer: NodeId, round: u64) {
        if let Some(p) = self.progress.get_mut(&peer) {
            p.active = true;
            p.acked_round = p.acked_round.max(round);
        }
        let mut acked: SmallVec<[u64; 8]> = self.progress.values().map(|p| p.acked_round).collect();
        acked.push(self.round);
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let q = acked[self.majority() - 1];
        if q > self.round_quorum {
            self.round_quorum = q;
            if let Some(&started) = self.round_started.get(&q) {
                let until = started + self.config.lease_duration.as_nanos() as i64;
                self.lease_until = self.lease_until.max(until);
            }
            self.round_started.retain(|&r, _| r >= q);
            self.serve_reads(ctx);
        }
    }

    // ----- apply, reads, snapshots -----

    /// Applies committed entries in order; the leader answers the clients it proposed for.
    fn apply(&mut self, ctx: &mut Context<'_>) {
        if self.applied >= self.commit {
            return;
        }
        let first = self.applied + 1;
        let mut refs: Vec<EntryRef> = Vec::with_capacity((self.commit - self.applied) as usize);
        while self.applied < self.commit {
            let index = self.applied + 1;
            let entry = self.log.entry(index);
            refs.push(entry.reference());
            if let Payload::Command(command) = &entry.payload {
                let applied = self.machine.apply(command);
                if self.waiters.get(&index) == Some(&command.id()) {
                    self.waiters.remove(&index);
                    self.proposed.remove(&command.id());
                    M::send_reply(ctx, command.client, command.request, applied.into());
                }
            }
            self.applied = index;
        }
        ctx.observe(Observation::Apply {
            index: first,
            entries: refs,
        });
        self.serve_reads(ctx);
        self.maybe_snapshot(ctx);
    }

    /// Answers every read whose round was confirmed and whose read index is applied.
    fn serve_reads(&mut self, ctx: &mut Context<'_>) {
        while let Some(read) = self.reads.front() {
            let ready = read.round <= self.round_quorum
                && read.read_index.is_some_and(|i| i <= self.applied);
            if !ready {
                break;
            }
            let read = self.reads.pop_front().expect("peeked");
            M::send_reply(
                ctx,
                read.client,
                read.request,
                Answer::Done(self.machine.read(&read.command)),
            );
        }
    }

    /// Compacts the log once `snapshot_threshold_entries` applied entries follow the snapshot.
    fn maybe_snapshot(&mut self, ctx: &mut Context<'_>) {
        let threshold = u64::from(self.config.snapshot_threshold_entries);
        if self.applied - self.log.snapshot_index() < threshold {
            return;
        }
        let snapshot = Snapshot {
            index: self.applied,
            term: self
                .log
                .term_at(self.applied)
                .expect("applied is in the log"),
            data: self.machine.to_snapshot(),
        };
        self.log.install_snapshot(&snapshot, true, ctx.disk());
        ctx.observe(Observation::SnapshotTaken {
            index: snapshot.index,
            term: snapshot.term,
        });
        self.snapshot_data = snapshot.data;
    }

    // ----- message handlers -----

    fn on_request_vote(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
        pre_vote: bool,
    ) {
        let now = ctx.local_time_ns();
        // Leader stickiness (thesis §4.2.3): ignore disruptive requests while a leader is alive.
        let sticky =
            pre_vote || self.config.check_quorum || self.config.read_mode == ReadMode::Lease;
        if term > self.term && sticky && self.heard_from_leader_recently(now) {
            return;
        }
        let up_to_date = self.bugs.vote_without_log_check
            || last_log_term > self.log.last_term()
            || (last_log_term == self.log.last_term() && last_log_index >= self.log.last_index());
        if pre_vote {
            // Thesis §9.6: answer as if in `term`, without changing any state.
            let granted = term > self.term && up_to_date;
            let reply_term = if granted { term } else { self.term };
            ctx.send(
                from,
                Msg::<M>::Vote {
                    term: reply_term,
                    granted,
                    pre_vote,
                },
            );
            return;
        }
        if term > self.term {
            self.become_follower(ctx, term, None);
        }
        let granted = term == self.term && self.voted_for.is_none_or(|v| v == from) && up_to_date;
        if granted {
            self.voted_for = Some(from);
            self.persist_hard_state(ctx);
            self.reset_election_deadline(ctx);
        }
        ctx.send(
            from,
            Msg::<M>::Vote {
                term: self.term,
                granted,
                pre_vote,
            },
        );
    }

    fn on_vote(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        term: u64,
        granted: bool,
        pre_vote: bool,
    ) {
        if term > self.term && !(pre_vote && granted) {
            self.become_follower(ctx, term, None);
            return;
        }
        if !granted {
            return;
        }
        if pre_vote && self.role == Role::PreCandidate && term == self.term + 1 {
            self.votes.insert(from);
            if self.votes.len() >= self.majority() {
                self.start_election(ctx);
            }
        } else if !pre_vote && self.role == Role::Candidate && term == self.term {
            self.votes.insert(from);
            if self.votes.len() >= self.majority() {
                self.become_leader(ctx);
            }
        }
    }

    /// A message from the leader of `term`: follow it and reset the election deadline.
    fn follow(&mut self, ctx: &mut Context<'_>, from: NodeId, term: u64) {
        if term > self.term || self.role != Role::Follower {
            self.become_follower(ctx, term, Some(from));
        }
        self.leader = Some(from);
        self.last_leader_contact = Some(ctx.local_time_ns());
        self.reset_election_deadline(ctx);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append_entries(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        term: u64,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry<M::Command>>,
        leader_commit: u64,
        round: u64,
    ) {
        let reject = |node: &Node<M>, conflict_index: u64, conflict_term: Option<u64>| {
            Msg::<M>::AppendReply {
                term: node.term,
                success: false,
                match_index: 0,
                conflict_index,
                conflict_term,
                round,
            }
        };
        if term < self.term || (term == self.term && self.role == Role::Leader) {
            // A stale leader (§5.1), or a second leader of our own term, which only a broken
            // election (a planted bug) can produce: refuse, and let the checks see the rest.
            ctx.send(from, reject(self, 0, None));
            return;
        }
        self.follow(ctx, from, term);
        // Entries up to the commit index are committed, so they match the leader's (§5.4):
        // start the comparison there.
        let (mut prev, mut prev_term, mut entries) = (prev_log_index, prev_log_term, entries);
        if prev < self.commit {
            let skip = ((self.commit - prev) as usize).min(entries.len());
            entries.drain(..skip);
            prev += skip as u64;
            prev_term = if skip == 0 {
                prev_term
            } else {
                self.log.term_at(prev).unwrap_or(prev_term)
            };
            if prev < self.commit {
                // Everything it carried is already committed here.
                ctx.send(
                    from,
                    Msg::<M>::AppendReply {
                        term: self.term,
                        success: true,
                        match_index: prev,
                        conflict_index: 0,
                        conflict_term: None,
                        round,
                    },
                );
                return;
            }
        }
        // The consistency check (§5.3), with fast back-up hints.
        if prev > self.log.last_index() {
            ctx.send(from, reject(self, self.log.last_index() + 1, None));
            return;
        }
        match self.log.term_at(prev) {
            Some(t) if t == prev_term => {}
            Some(t) => {
                let first = self.log.first_index_of_term_run(prev);
                ctx.send(from, reject(self, first, Some(t)));
                return;
            }
            None => unreachable!("prev is at or after the commit index, which is in the log"),
        }
        // Append what is new; truncate only at a real conflict.
        let last_new = prev + entries.len() as u64;
        let mut appended: Vec<EntryRef> = Vec::new();
        let mut first_appended = 0;
        for (i, entry) in entries.into_iter().enumerate() {
            let index = prev + 1 + i as u64;
            if appended.is_empty() {
                match self.log.term_at(index) {
                    Some(t) if t == entry.term => continue,
                    Some(_) => self.truncate(ctx, index),
                    None => {}
                }
                first_appended = index;
            }
            appended.push(entry.reference());
            self.log.append(entry, ctx.disk());
        }
        if !appended.is_empty() {
            ctx.observe(Observation::Append {
                index: first_appended,
                entries: appended,
            });
        }
        if self.bugs.truncate_on_stale_append && self.log.last_index() > last_new {
            // The planted bug: "the leader's entries end here, so must mine".
            self.truncate(ctx, last_new + 1);
        }
        if leader_commit > self.commit {
            let to = leader_commit.min(last_new);
            if to > self.commit {
                self.commit = to;
                self.apply(ctx);
            }
        }
        ctx.send(
            from,
            Msg::<M>::AppendReply {
                term: self.term,
                success: true,
                match_index: last_new,
                conflict_index: 0,
                conflict_term: None,
                round,
            },
        );
    }

    /// Deletes the entries from `index` on. A committed entry is never deleted (§5.4).
    fn truncate(&mut self, ctx: &mut Context<'_>, index: u64) {
        let last = self.log.last_index();
        assert!(
            index > self.commit,
            "{:?} would delete committed entries {index}..={last} (commit index {})",
            self.id,
            self.commit
        );
        self.log.truncate_from(index, ctx.disk());
        ctx.observe(Observation::Truncate { index, last });
    }

    /// The common start of a leader's handling of AppendEntries and InstallSnapshot answers:
    /// a higher term makes it a follower (§5.1); a stale answer, or one reaching a server that
    /// is no longer leader, is ignored; otherwise the answer counts for heartbeat round `round`
    /// (ReadIndex) and the caller goes on (true).
    fn leader_takes_reply(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        term: u64,
        round: u64,
    ) -> bool {
        if term > self.term {
            self.become_follower(ctx, term, None);
            return false;
        }
        if self.role != Role::Leader || term < self.term {
            return false;
        }
        self.ack_round(ctx, from, round);
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append_reply(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        term: u64,
        success: bool,
        match_index: u64,
        conflict_index: u64,
        conflict_term: Option<u64>,
        round: u64,
    ) {
        if !self.leader_takes_reply(ctx, from, term, round) {
            return;
        }
        let last = self.log.last_index();
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        if success {
            p.matched_through(match_index);
            self.maybe_commit(ctx);
            self.send_append(ctx, from, false);
        } else {
            // Fast back-up (§5.3): skip the follower's conflicting term in one step.
            let hint = match conflict_term {
                Some(t) => self
                    .log
                    .last_index_of_term(t)
                    .map_or(conflict_index, |i| i + 1),
                None => conflict_index,
            };
            let p = self.progress.get_mut(&from).expect("present");
            let before = p.next;
            p.next = hint.max(p.matched + 1).min(last + 1);
            p.probing = true;
            p.probe_sent = false;
            if p.next < before {
                self.send_append(ctx, from, true);
            }
            // Otherwise the rejection taught nothing new (a stale or repeated answer): the
            // next heartbeat probes again, so a confused follower costs one exchange per
            // heartbeat interval, never a message storm.
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_install_snapshot(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        term: u64,
        last_index: u64,
        last_term: u64,
        data: String,
        round: u64,
    ) {
        if term < self.term || (term == self.term && self.role == Role::Leader) {
            ctx.send(
                from,
                Msg::<M>::SnapshotReply {
                    term: self.term,
                    last_index: 0,
                    round,
                },
            );
            return;
        }
        self.follow(ctx, from, term);
        if last_index > self.commit {
            // §7: keep the suffix if the log already has the snapshot's last entry.
            let keep_suffix = self.log.term_at(last_index) == Some(last_term);
            if !keep_suffix && self.log.last_index() > last_index {
                ctx.observe(Observation::Truncate {
                    index: last_index + 1,
                    last: self.log.last_index(),
                });
            }
            let machine = Sessions::from_snapshot(&data, self.config.session_limit)
                .expect("a leader sends valid snapshots");
            let snapshot = Snapshot {
                index: last_index,
                term: last_term,
                data,
            };
            self.log
                .install_snapshot(&snapshot, keep_suffix, ctx.disk());
            self.snapshot_data = snapshot.data;
            self.machine = machine;
            self.commit = last_index;
            self.applied = last_index;
            ctx.observe(Observation::SnapshotInstalled {
                index: last_index,
                term: last_term,
                leader: from,
            });
        }
        ctx.send(
            from,
            Msg::<M>::SnapshotReply {
                term: self.term,
                last_index,
                round,
            },
        );
    }

    fn on_snapshot_reply(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        term: u64,
        last_index: u64,
        round: u64,
    ) {
        if !self.leader_takes_reply(ctx, from, term, round) {
            return;
        }
        if let Some(p) = self.progress.get_mut(&from) {
            p.matched_through(last_index);
        }
        self.maybe_commit(ctx);
        self.send_append(ctx, from, false);
    }

    // ----- client requests -----

    /// A client request arrived (routed here by [`Process::on_other`]).
    pub fn on_request(&mut self, ctx: &mut Context<'_>, client: NodeId, request: M::Request) {
        self.on_client(ctx, client, request);
        self.end_step(ctx);
    }

    fn on_client(&mut self, ctx: &mut Context<'_>, client: NodeId, request: M::Request) {
        let (request_id, op) = M::split_request(request);
        let Some(op) = op else {
            return M::send_reply(ctx, client, request_id, Answer::Unsupported);
        };
        if self.role != Role::Leader {
            let leader = self.leader.filter(|&l| l != self.id);
            return M::send_reply(ctx, client, request_id, Answer::Redirect(leader));
        }
        if M::is_read(&op) {
            if self.bugs.read_from_local_state {
                return M::send_reply(
                    ctx,
                    client,
                    request_id,
                    Answer::Done(self.machine.read(&op)),
                );
            }
            if self.config.read_mode != ReadMode::Log {
                return self.start_read(ctx, client, request_id, op);
            }
        }
        let command = Command {
            client,
            request: request_id,
            op,
        };
        if self.machine.reply_if_cached(ctx, &command) {
            return; // already applied (§6.3): answered from the session, not run again
        }
        let id = command.id();
        if self.proposed.contains_key(&id) {
            return; // already in the log this term: answered when applied
        }
        if self.log.last_index() - self.commit >= u64::from(self.config.max_uncommitted_entries) {
            // Not `fail`: this may be a retry (or a duplicate) of a request an earlier leader, or
            // this node in an earlier term, already put in some log, where it may still commit.
            return M::send_reply(
                ctx,
                client,
                request_id,
                Answer::Unknown("overloaded: too many uncommitted entries".into()),
            );
        }
        let index = self.append_entry(ctx, Payload::Command(Arc::new(command)));
        self.waiters.insert(index, id);
        self.proposed.insert(id, index);
        self.maybe_commit(ctx);
        if self.read_round_due() && self.read_round > self.round {
            // Reads wait for a round and none is in flight: these appends start it (end_step
            // sends it to any follower they skip).
            self.start_round(ctx);
        }
        for peer in self.peers.clone() {
            self.send_append(ctx, peer, false);
        }
    }

    /// Queues a `get` for ReadIndex (thesis §6.4), or serves it under a valid lease (§6.4.1).
    fn start_read(
        &mut self,
        ctx: &mut Context<'_>,
        client: NodeId,
        request: u64,
        command: M::Command,
    ) {
        if self.reads.len() >= self.config.max_pending_reads as usize {
            return M::send_reply(
                ctx,
                client,
                request,
                Answer::Fail("overloaded: too many pending reads".into()),
            );
        }
        let term_committed = self.commit >= self.term_start;
        let read_index = term_committed.then_some(self.commit);
        let lease_valid =
            self.config.read_mode == ReadMode::Lease && ctx.local_time_ns() < self.lease_until;
        let round = if lease_valid && term_committed {
            self.round_quorum
        } else {
            self.read_round = self.round + 1;
            self.round + 1
        };
        self.reads.push_back(PendingRead {
            client,
            request,
            command,
            read_index,
            round,
        });
        self.serve_reads(ctx);
    }

    // ----- per-step bookkeeping -----

    /// Ends every step: sends the ReadIndex round reads wait for to every follower not yet
    /// sent it (unless a read round is in flight), syncs the disk (persist before answering),
    /// and checks the node's invariants.
    fn end_step(&mut self, ctx: &mut Context<'_>) {
        if self.role == Role::Leader {
            self.carry_read_round(ctx);
        }
        if self.role == Role::Leader && self.peers.is_empty() {
            self.round_quorum = self.round;
            self.serve_reads(ctx);
        }
        if ctx.disk().has_unsynced() {
            ctx.disk().sync();
        }
        self.check_invariants(ctx);
    }

    /// The node's own invariants (asserted after every step; a failure halts the run and is
    /// reported by `node-invariants`).
    fn check_invariants(&self, ctx: &mut Context<'_>) {
        let id = self.id;
        assert!(
            self.commit <= self.log.last_index(),
            "{id:?}: commit index {} beyond the last log index {}",
            self.commit,
            self.log.last_index()
        );
        assert!(
            self.applied <= self.commit,
            "{id:?}: applied {} beyond commit {}",
            self.applied,
            self.commit
        );
        assert!(
            self.log.snapshot_index() <= self.applied,
            "{id:?}: snapshot {} beyond applied {}",
            self.log.snapshot_index(),
            self.applied
        );
        assert!(
            self.log.last_term() <= self.term,
            "{id:?}: log term {} above current term {}",
            self.log.last_term(),
            self.term
        );
        if self.role == Role::Leader {
            assert_eq!(
                self.voted_for,
                Some(id),
                "{id:?}: a leader votes for itself"
            );
            // The no-op, or the snapshot that covers it, is of the leader's term.
            assert_eq!(
                self.log
                    .term_at(self.term_start.max(self.log.snapshot_index())),
                Some(self.term),
                "{id:?}: a leader's log holds an entry of its term from its no-op on"
            );
        }
        assert!(
            !ctx.disk().has_unsynced(),
            "{id:?}: a step ended with unsynced writes"
        );
        debug_assert!(
            self.log
                .iter_from(self.log.snapshot_index() + 1)
                .try_fold(self.log.snapshot_term(), |prev, (_, e)| (e.term >= prev)
                    .then_some(e.term))
                .is_some(),
            "{id:?}: log terms decrease"
        );
    }
}

/// A Raft server replicating the state machine `config.state_machine` names (validated before:
/// an unknown name panics).
pub fn spawn(setup: &NodeSetup, config: Config) -> Box<dyn AnyProcess> {
    kv::build_replica::<Raft>(&config.state_machine.clone(), setup, config)
}

/// The Raft family as a [`kv::Replica`]: its [`Node`] for any machine.
struct Raft;

impl kv::Replica for Raft {
    type Config = Config;
    fn build<M: Served>(setup: &NodeSetup, config: Config) -> Box<dyn AnyProcess> {
        Box::new(Node::<M>::new(setup, config))
    }
}

impl<M: Served> Process for Node<M> {
    type Message = Msg<M>;
    type Timer = Timer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let durable = log::load(ctx.disk());
        self.term = durable.term;
        self.voted_for = durable.voted_for;
        self.log = durable.log;
        if let Some(snapshot) = durable.snapshot {
            self.machine = Sessions::from_snapshot(&snapshot.data, self.config.session_limit)
                .expect("our own snapshot parses");
            self.snapshot_data = snapshot.data;
        }
        self.commit = self.log.snapshot_index();
        self.applied = self.commit;
        ctx.observe(Observation::Restored {
            term: self.term,
            voted_for: self.voted_for,
            snapshot_index: self.log.snapshot_index(),
            snapshot_term: self.log.snapshot_term(),
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        });
        self.set_role(ctx, Role::Follower);
        self.reset_election_deadline(ctx);
        self.end_step(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: Msg<M>) {
        match message {
            Msg::<M>::RequestVote {
                term,
                last_log_index,
                last_log_term,
                pre_vote,
            } => self.on_request_vote(ctx, from, term, last_log_index, last_log_term, pre_vote),
            Msg::<M>::Vote {
                term,
                granted,
                pre_vote,
            } => self.on_vote(ctx, from, term, granted, pre_vote),
            Msg::<M>::AppendEntries {
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                round,
            } => self.on_append_entries(
                ctx,
                from,
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                round,
            ),
            Msg::<M>::AppendReply {
                term,
                success,
                match_index,
                conflict_index,
                conflict_term,
                round,
            } => self.on_append_reply(
                ctx,
                from,
                term,
                success,
                match_index,
                conflict_index,
                conflict_term,
                round,
            ),
            Msg::<M>::InstallSnapshot {
                term,
                last_index,
                last_term,
                data,
                round,
            } => self.on_install_snapshot(ctx, from, term, last_index, last_term, data, round),
            Msg::<M>::SnapshotReply {
                term,
                last_index,
                round,
            } => self.on_snapshot_reply(ctx, from, term, last_index, round),
        }
        self.end_step(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Timer) {
        match timer {
            Timer::Election => {
                if self.election_timer != Some(id) {
                    return self.end_step(ctx);
                }
                self.election_timer = None;
                if self.role != Role::Leader {
                    if ctx.local_time_ns() >= self.election_deadline {
                        self.reset_election_deadline(ctx);
                        self.campaign(ctx);
                    } else {
                        self.arm_election_timer(ctx);
                    }
                }
            }
            Timer::Heartbeat { term } => {
                if self.role == Role::Leader && term == self.term {
                    self.send_heartbeats(ctx, false);
                    ctx.set_timer(
                        self.config.heartbeat_interval.to_std(),
                        Timer::Heartbeat { term },
                    );
                }
            }
            Timer::CheckQuorum { term } => {
                if self.role == Role::Leader && term == self.term {
                    let active = 1 + self.progress.values().filter(|p| p.active).count();
                    if active < self.majority() {
                        // Thesis §6.2: a leader that cannot reach a majority steps down.
                        self.become_follower(ctx, self.term, None);
                    } else {
                        for p in self.progress.values_mut() {
                            p.active = false;
                        }
                        ctx.set_timer(
                            self.config.election_timeout_min.to_std(),
                            Timer::CheckQuorum { term },
                        );
                    }
                }
            }
        }
        self.end_step(ctx);
    }

    fn on_other(
        &mut self,
        ctx: &mut Context<'_>,
        client: NodeId,
        message: crate::process::Message,
    ) -> Result<(), crate::process::Message> {
        let request = M::parse_request(message)?;
        self.on_request(ctx, client, request);
        Ok(())
    }
}
