//! The coordination server (protocol `coordination`): a Raft node replicating the
//! [`CoordMachine`], plus what etcd's server and ZooKeeper's leader add around their log: the
//! **lessor** that expires leases, the **watch hub** that notifies clients of changes, and the
//! lock family's **storage facts** for the guarded writes each replica applies.
//!
//! Sources: etcd's `lease/lessor.go` (Promote, Renew, the expiry loop that proposes
//! `LeaseRevoke`), etcd's `v3rpc` watch API, ZooKeeper's Programmer's Guide (sessions expired by
//! the leader's session tracker; one-shot watches kept by the server a client is connected to).
//!
//! # Algorithm
//!
//! - **Raft, unchanged.** The server owns a [`Node<CoordMachine>`] and hands it every Raft
//!   message, every Raft timer and every client [`CoordMessage::Request`] as they come: Raft's
//!   elections, replication, ReadIndex reads (for `range`), sessions and snapshots are the Raft
//!   family's, and so are its observations (Raft's checks run on `coordination` roles).
//! - **Lessor (leader only).** While this node leads term `t` it keeps, on its *local* clock, an
//!   expiry time per lease of the machine. On becoming leader every existing lease gets
//!   now + TTL (etcd's `Promote`: a new leader never expires a lease sooner than a full TTL after
//!   it took over); a lease that appears in the machine later (a grant applied) gets
//!   now + TTL; a [`CoordMessage::KeepAlive`] renews it to now + TTL and is answered
//!   [`CoordMessage::KeepAliveAck`]. A server that is not leader answers
//!   [`CoordMessage::KeepAliveRedirect`] with its leader hint; a leader whose term has not yet
//!   committed an entry (it may not have applied every grant) does not answer, and the client
//!   retries. Every `lease_check_interval` (the expiry granularity: a lease is revoked at most
//!   one interval after its deadline on the leader's clock) the lessor proposes
//!   [`CoordCommand::LeaseRevoke`] for each lease past its deadline, as a client request of its
//!   own node with id `term << 32 | n` (`n` counts the term's proposals), unique across terms
//!   and restarts so Raft's session table never takes one for a retry of another; the replies
//!   come back to itself and are dropped. It observes
//!   [`crate::families::lock::Observation::LeaseExpired`] at that moment. An expired lease is
//!   never renewed (a keep-alive for it is answered `found = false`); its revoke is proposed
//!   again after another TTL if it has not been applied by then (a lost leadership, an
//!   overloaded log). Losing leadership drops the lessor; the next leader starts its own.
//! - **Watch hub (every server, in memory).** A [`CoordMessage::Watch`] is registered on the
//!   server that receives it and is lost if that server crashes (as in ZooKeeper; the client
//!   re-reads and watches again). After every step of the Raft node, each create or delete the
//!   machine logged since the previous step notifies every matching watch (the exact key, or a
//!   key under the prefix) whose `after_revision` is below the change's revision, **once**: the
//!   watch is then removed. At registration (or, on a replica that has not yet applied
//!   `after_revision`, as soon as it has) a watch whose change already happened fires at once:
//!   the first matching event after `after_revision` in the machine's event log, or, for an
//!   exact key that does not exist, a deletion at the current revision (ZooKeeper's `exists`
//!   answering "no node": the recipes watch a key only to learn that it is gone). If events
//!   after `after_revision` were compacted away, an exact-key watch is decided from the key's
//!   state (absent: deleted; created after `after_revision`: created) and a prefix watch fires
//!   with `compacted = true` (the client must read again). At most `max_watches` watches per
//!   server: registering one more drops the oldest, which is told `compacted = true`. A watch
//!   registered again with the same (client, watch id) replaces the first.
//! - **Storage facts (every replica).** The machine logs each guarded write's result; after
//!   every step the server observes [`crate::families::lock::Observation::WriteAccepted`] or
//!   `WriteRefused` (writer, token, highest) for each one it has not reported yet, so every
//!   replica is judged as a fenced storage copy by `fenced-writes`. The sequence number of the
//!   last reported event is synced to disk (`coord/facts-through`) in the same step, so the
//!   writes a restarted replica applies again from its log are not reported twice.
//!
//! - **Read levels.** A [`CoordCommand::Range`] at `consistent` (the default) goes to the Raft
//!   node: a ReadIndex read on the leader, as above. At `default` the leader answers at once from
//!   its applied state, without confirming it still leads (a follower redirects); at `stale`
//!   any server answers from its own applied state (Consul's consistency modes; etcd's
//!   serializable read).
//! - **Service views (every replica).** For keys `/services/<service>/<instance>` only (the CP
//!   service registry's, [`crate::families::registry::cp`]), the server replays each step's
//!   created and deleted keys revision by revision and observes every change of a service's
//!   instance set: [`crate::families::registry::Observation::ServerView`] and, with the
//!   revision, [`crate::families::registry::cp::Observation::Applied`]. After a gap in the
//!   events (a snapshot installed) it reads the whole state again.
//!
//! # Planted bugs
//!
//! - `stale-read-as-consistent`: a `consistent` range is served like a `stale` one, from the
//!   receiving server's applied state (caught by `registry-linearizable`).
//! - `watch-lost-on-leader-change`: when the server sees a new term it forgets every watch it
//!   holds, without notifying anyone (caught by `registry-convergence`). The correct server keeps
//!   them: a watch fires from this replica's applied log, which a leader change does not
//!   interrupt (cancelling them with a notification, so clients watch again, would be correct
//!   too, but needless).
//!
//! # Invariants
//!
//! Revisions grow and a key's create revision never changes (the machine's); a revoked lease's
//! keys are gone on every replica that applied the revoke; leases expire only by the Raft
//! leader's lessor (a follower never proposes a revoke, and an expiry decided by a deposed
//! leader whose revoke never commits has no effect); a watch fires at most once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::machine::{CoordMachine, Event, EventKind};
use super::{CoordCommand, CoordMessage, CoordOutcome, LeaseId};
use crate::families::lock::Observation;
use crate::families::raft::{self, Node, Role};
use crate::families::registry::{self, Consistency, SERVICES_PREFIX};
use crate::families::replicated::{Answer, Served};
use crate::family::{self, Bug, Configured, NodeSetup, OptionError, ProtocolInfo, RoleContext};
use crate::process::{AnyProcess, Context, Message, NodeId, Process, Timer, TimerId};
use crate::scenario::Duration;

/// Disk key of the sequence number after the last event whose storage fact was reported.
pub const FACTS_KEY: &str = "coord/facts-through";

/// Largest `max_watches`.
pub const MAX_WATCHES_LIMIT: u32 = 100_000;

/// Options of a `coordination` role: Raft's options (the same keys and defaults as a `raft`
/// role; `state_machine` does not apply) plus the lessor's and the watch hub's, in one flat
/// table. Read with [`CoordConfig::parse`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordConfig {
    /// Period of the leader's lease expiry check, on its local clock (default 50ms; from 1ms to
    /// 1h): a lease is revoked at most this long after its deadline.
    #[serde(default = "default_lease_check_interval")]
    pub lease_check_interval: Duration,
    /// Most watches one server holds (default 1024, from 1 to 100000); one more drops the
    /// oldest, which is told `compacted`.
    #[serde(default = "default_max_watches")]
    pub max_watches: u32,
    /// Raft's options.
    #[serde(flatten)]
    pub raft: raft::Config,
}

fn default_lease_check_interval() -> Duration {
    Duration::from_millis(50)
}

fn default_max_watches() -> u32 {
    1024
}

impl CoordConfig {
    /// Reads a `coordination` options table: the service's keys and Raft's in one table; an
    /// unknown key is an error at its key, like a wrong type
    /// ([`family::parse_flattened_options`]; Raft's `bugs` is written out only when given).
    pub fn parse(table: &toml::Table) -> Result<CoordConfig, Vec<OptionError>> {
        family::parse_flattened_options(table, &["bugs"]).map_err(|mut errors| {
            // Raft's `state_machine` is written out but does not apply here: not expected.
            for e in &mut errors {
                e.message = e.message.replace(", `state_machine`", "");
            }
            errors
        })
    }
}

impl Default for CoordConfig {
    fn default() -> Self {
        CoordConfig::parse(&toml::Table::new()).expect("the empty coordination table is valid")
    }
}

/// The server's own timers (Raft's go to the node).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum CoordTimer {
    /// The lessor of `term` checks for expired leases.
    LeaseCheck {
        /// The term it was set in (stale after a term change).
        term: u64,
    },
}

/// The leader's lessor (see the module docs).
#[derive(Debug)]
struct Lessor {
    /// The term it serves.
    term: u64,
    /// Expiry deadline per live lease, on the local clock (ns).
    expiry: BTreeMap<LeaseId, i64>,
    /// Expired leases whose revoke was proposed, with the local time of the proposal.
    revoking: BTreeMap<LeaseId, i64>,
    /// The machine revision `expiry` was last matched against.
    synced_revision: u64,
    /// Revokes proposed in this term (the low half of their request ids).
    proposals: u64,
}

/// One registered watch.
#[derive(Clone, Debug)]
struct Watch {
    client: NodeId,
    watch: u64,
    key: String,
    prefix: bool,
    after_revision: u64,
    /// This replica has applied `after_revision` and the watch's past was looked at: only new
    /// events can fire it.
    armed: bool,
}

impl Watch {
    fn matches(&self, key: &str) -> bool {
        if self.prefix {
            key.starts_with(&self.key)
        } else {
            key == self.key
        }
    }
}

/// A notification about to be sent: (key, deleted, revision, compacted).
type Fire = (String, bool, u64, bool);

/// A coordination server. See the module docs.
#[derive(Debug)]
pub struct CoordServer {
    id: NodeId,
    config: CoordConfig,
    node: Node<CoordMachine>,
    lessor: Option<Lessor>,
    /// Watches by registration number (oldest first).
    watches: BTreeMap<u64, Watch>,
    next_watch: u64,
    /// Events with a lower sequence number were looked at by the watch hub.
    seen_seq: u64,
    /// The machine's revision when the watch hub last looked at it.
    seen_revision: u64,
    /// Events with a lower sequence number had their storage facts reported (synced).
    facts_seq: u64,
    /// Events with a lower sequence number were looked at for service views.
    views_seq: u64,
    /// The instances of each service under [`SERVICES_PREFIX`] as last reported.
    views: BTreeMap<String, BTreeSet<String>>,
    /// The Raft term the watch hub last saw (for the planted bug `watch-lost-on-leader-change`).
    watch_term: u64,
    /// Planted bugs switched on.
    bugs: CoordBugs,
}

/// The coordination server's own planted bugs (see [`PROTOCOL`]'s `bugs`).
#[derive(Clone, Copy, Debug, Default)]
struct CoordBugs {
    /// `stale-read-as-consistent`.
    stale_read_as_consistent: bool,
    /// `watch-lost-on-leader-change`.
    watch_lost_on_leader_change: bool,
}

impl CoordServer {
    /// A server for `setup` (nothing loaded until it starts).
    pub fn new(setup: &NodeSetup, config: CoordConfig) -> CoordServer {
        let bugs = CoordBugs {
            stale_read_as_consistent: config.raft.bug(BUG_STALE_READ_AS_CONSISTENT),
            watch_lost_on_leader_change: config.raft.bug(BUG_WATCH_LOST_ON_LEADER_CHANGE),
        };
        CoordServer {
            id: setup.id,
            node: Node::new(setup, config.raft.clone()),
            config,
            lessor: None,
            watches: BTreeMap::new(),
            next_watch: 0,
            seen_seq: 0,
            seen_revision: 0,
            facts_seq: 0,
            views_seq: 0,
            views: BTreeMap::new(),
            watch_term: 0,
            bugs,
        }
    }

    /// The Raft node inside.
    pub fn node(&self) -> &Node<CoordMachine> {
        &self.node
    }

    /// This replica's machine.
    pub fn machine(&self) -> &CoordMachine {
        self.node.state_machine().machine()
    }

    /// Number of watches registered here.
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    /// The lessor's deadline for `lease` on the local clock, if this server leads and tracks it.
    pub fn lease_deadline(&self, lease: LeaseId) -> Option<i64> {
        self.lessor.as_ref()?.expiry.get(&lease).copied()
    }

    /// Runs after every input: storage facts, watches, and the lessor's view of leadership.
    /// Most inputs are Raft traffic that changes no machine state; the watches can fire only on
    /// a change (a registration looks at its own watch at once), so they are looked at only
    /// when the machine's events or revision moved.
    fn after_step(&mut self, ctx: &mut Context<'_>) {
        self.report_facts(ctx);
        self.drop_watches_on_new_term();
        let machine = self.machine();
        if (machine.next_seq(), machine.revision()) != (self.seen_seq, self.seen_revision) {
            self.report_views(ctx);
            self.notify_watches(ctx);
        }
        self.track_leadership(ctx);
    }

    // ----- reads at a consistency level -----

    /// A range at `default` or `stale` consistency, answered here from this replica's applied
    /// state (see [`CoordCommand::Range`]); `consistent` ranges go to the Raft node (ReadIndex),
    /// except with the planted bug `stale-read-as-consistent`, which serves them as `stale`.
    /// Returns the request back if the Raft node must handle it.
    fn local_read(
        &mut self,
        ctx: &mut Context<'_>,
        client: NodeId,
        id: u64,
        command: CoordCommand,
    ) -> Option<(u64, CoordCommand)> {
        let CoordCommand::Range {
            prefix,
            consistency,
            with_values,
        } = &command
        else {
            return Some((id, command));
        };
        let level = match consistency {
            Consistency::Consistent if self.bugs.stale_read_as_consistent => Consistency::Stale,
            level => *level,
        };
        let answer = match level {
            Consistency::Consistent => return Some((id, command)),
            Consistency::Default if self.node.role() != Role::Leader => {
                Answer::Redirect(self.node.leader().filter(|&l| l != self.id))
            }
            Consistency::Default | Consistency::Stale => {
                Answer::Done(self.machine().range(prefix, *with_values))
            }
        };
        CoordMachine::send_reply(ctx, client, id, answer);
        None
    }

    // ----- service views -----

    /// Reports every change of a service's instances (keys `/services/<service>/<instance>`)
    /// this replica applied since the last step, revision by revision: the registry family's
    /// [`registry::Observation::ServerView`] and, with the revision, the CP registry's
    /// [`registry::cp::Observation::Applied`]. After a gap in the events (a snapshot installed,
    /// a restart) the whole state is read again. Keys outside [`SERVICES_PREFIX`] report
    /// nothing.
    fn report_views(&mut self, ctx: &mut Context<'_>) {
        let machine = self.node.state_machine().machine();
        if machine.first_seq() > self.views_seq {
            let now = services_of(machine);
            let empty = BTreeSet::new();
            let changed: BTreeSet<String> = now
                .keys()
                .chain(self.views.keys())
                .filter(|s| now.get(*s).unwrap_or(&empty) != self.views.get(*s).unwrap_or(&empty))
                .cloned()
                .collect();
            self.views = now;
            self.views_seq = machine.next_seq();
            let revision = machine.revision();
            for service in changed {
                report_view(ctx, &self.views, &service, revision);
            }
            return;
        }
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let mut at = None;
        for event in machine.events_from(self.views_seq) {
            let (key, deleted) = match &event.kind {
                EventKind::Created { key } => (key, false),
                EventKind::Deleted { key } => (key, true),
                EventKind::Write { .. } => continue,
            };
            let Some((service, instance)) = service_key(key) else {
                continue;
            };
            if at.is_some_and(|r| r != event.revision) {
                for service in std::mem::take(&mut dirty) {
                    report_view(ctx, &self.views, &service, at.expect("set"));
                }
            }
            at = Some(event.revision);
            let set = self.views.entry(service.to_string()).or_default();
            if deleted {
                set.remove(instance);
            } else {
                set.insert(instance.to_string());
            }
            dirty.insert(service.to_string());
        }
        for service in dirty {
            report_view(ctx, &self.views, &service, at.expect("set"));
        }
        self.views_seq = machine.next_seq();
    }

    /// The planted bug `watch-lost-on-leader-change`: on a new term, every watch registered
    /// here is forgotten without a word (the correct server keeps them: watches fire from the
    /// applied log, which a leader change does not interrupt).
    fn drop_watches_on_new_term(&mut self) {
        let term = self.node.term();
        if term != self.watch_term {
            if self.bugs.watch_lost_on_leader_change && self.watch_term != 0 {
                self.watches.clear();
            }
            self.watch_term = term;
        }
    }

    // ----- storage facts -----

    fn report_facts(&mut self, ctx: &mut Context<'_>) {
        let machine = self.node.state_machine().machine();
        let mut reported = false;
        for event in machine.events_from(self.facts_seq) {
            if let EventKind::Write {
                writer,
                token,
                accepted,
                highest,
            } = event.kind
            {
                reported = true;
                if accepted {
                    ctx.observe(Observation::WriteAccepted {
                        client: writer,
                        token,
                    });
                } else {
                    ctx.observe(Observation::WriteRefused {
                        client: writer,
                        token,
                        highest,
                    });
                }
            }
        }
        self.facts_seq = self.facts_seq.max(machine.next_seq());
        if reported {
            ctx.disk().write(FACTS_KEY, self.facts_seq.to_string());
            ctx.disk().sync();
        }
    }

    // ----- watch hub -----

    fn register_watch(&mut self, ctx: &mut Context<'_>, client: NodeId, watch: Watch) {
        self.watches
            .retain(|_, w| !(w.client == client && w.watch == watch.watch));
        while self.watches.len() >= self.config.max_watches as usize {
            let (_, dropped) = self.watches.pop_first().expect("non-empty");
            let revision = self.machine().revision();
            Self::send_fire(ctx, &dropped, (dropped.key.clone(), false, revision, true));
        }
        self.watches.insert(self.next_watch, watch);
        self.next_watch += 1;
        self.notify_watches(ctx);
    }

    fn send_fire(ctx: &mut Context<'_>, w: &Watch, (key, deleted, revision, compacted): Fire) {
        ctx.send(
            w.client,
            CoordMessage::WatchEvent {
                watch: w.watch,
                key,
                deleted,
                revision,
                compacted,
            },
        );
    }

    /// What a watch whose past is known to this replica fires with now, if anything (see the
    /// module docs).
    fn past_change(machine: &CoordMachine, w: &Watch) -> Option<Fire> {
        let from_state = || match machine.key(&w.key) {
            None => Some((w.key.clone(), true, machine.revision(), false)),
            Some(k) if k.create_revision > w.after_revision => {
                Some((w.key.clone(), false, k.create_revision, false))
            }
            Some(_) => None,
        };
        if w.after_revision < machine.compacted_revision() {
            return if w.prefix {
                Some((w.key.clone(), false, machine.revision(), true))
            } else {
                from_state()
            };
        }
        let logged = machine
            .events_from(machine.first_seq())
            .find_map(|e| Self::fire_for(w, e));
        if logged.is_some() || w.prefix {
            return logged;
        }
        from_state()
    }

    /// The notification `event` gives watch `w`, if it is a matching change after its revision.
    fn fire_for(w: &Watch, event: &Event) -> Option<Fire> {
        let (key, deleted) = match &event.kind {
            EventKind::Created { key } => (key, false),
            EventKind::Deleted { key } => (key, true),
            EventKind::Write { .. } => return None,
        };
        (event.revision > w.after_revision && w.matches(key))
            .then(|| (key.clone(), deleted, event.revision, false))
    }

    fn notify_watches(&mut self, ctx: &mut Context<'_>) {
        let machine = self.node.state_machine().machine();
        // Events were skipped (a snapshot was installed): armed watches look at their past.
        let gap = machine.first_seq() > self.seen_seq;
        let mut fired: Vec<(u64, Fire)> = Vec::new();
        for (&n, w) in self.watches.iter_mut() {
            let fire = if w.armed && !gap {
                machine
                    .events_from(self.seen_seq)
                    .find_map(|e| Self::fire_for(w, e))
            } else if w.armed || machine.revision() >= w.after_revision {
                w.armed = true;
                Self::past_change(machine, w)
            } else {
                None // this replica has not applied the watch's revision yet
            };
            if let Some(fire) = fire {
                fired.push((n, fire));
            }
        }
        self.seen_seq = machine.next_seq();
        self.seen_revision = machine.revision();
        for (n, fire) in fired {
            let w = self.watches.remove(&n).expect("registered");
            Self::send_fire(ctx, &w, fire);
        }
    }

    // ----- lessor -----

    /// Starts the lessor when this node becomes leader (Promote), drops it when it stops
    /// leading, and matches it with the machine's leases after every change.
    fn track_leadership(&mut self, ctx: &mut Context<'_>) {
        if self.node.role() != Role::Leader {
            self.lessor = None;
            return;
        }
        let term = self.node.term();
        let now = ctx.local_time_ns();
        let machine = self.node.state_machine().machine();
        let ttl_ns = |ttl_ms: u64| (ttl_ms as i64).saturating_mul(1_000_000);
        match &mut self.lessor {
            Some(lessor) if lessor.term == term => {
                if lessor.synced_revision != machine.revision() {
                    lessor.synced_revision = machine.revision();
                    let leases = machine.leases();
                    lessor.expiry.retain(|l, _| leases.contains_key(l));
                    lessor.revoking.retain(|l, _| leases.contains_key(l));
                    for (&l, lease) in leases {
                        if !lessor.revoking.contains_key(&l) {
                            lessor
                                .expiry
                                .entry(l)
                                .or_insert_with(|| now.saturating_add(ttl_ns(lease.ttl_ms)));
                        }
                    }
                }
            }
            _ => {
                // Promote: every lease gets a full TTL from now.
                self.lessor = Some(Lessor {
                    term,
                    expiry: machine
                        .leases()
                        .iter()
                        .map(|(&l, lease)| (l, now.saturating_add(ttl_ns(lease.ttl_ms))))
                        .collect(),
                    revoking: BTreeMap::new(),
                    synced_revision: machine.revision(),
                    proposals: 0,
                });
                ctx.set_timer(
                    self.config.lease_check_interval.to_std(),
                    CoordTimer::LeaseCheck { term },
                );
            }
        }
    }

    /// The lessor's periodic check: proposes the revoke of every lease past its deadline.
    fn check_leases(&mut self, ctx: &mut Context<'_>, term: u64) {
        let now = ctx.local_time_ns();
        let Some(lessor) = self.lessor.as_mut().filter(|l| l.term == term) else {
            return; // a timer of an earlier leadership
        };
        let machine = self.node.state_machine().machine();
        let mut revoke: Vec<LeaseId> = Vec::new();
        let expired: Vec<LeaseId> = lessor
            .expiry
            .iter()
            .filter(|&(_, &deadline)| deadline <= now)
            .map(|(&l, _)| l)
            .collect();
        for lease in expired {
            lessor.expiry.remove(&lease);
            lessor.revoking.insert(lease, now);
            let ttl_ms = machine.lease(lease).map_or(0, |l| l.ttl_ms);
            ctx.observe(Observation::LeaseExpired { lease, ttl_ms });
            revoke.push(lease);
        }
        for (&lease, proposed_at) in lessor.revoking.iter_mut() {
            let ttl_ns = machine
                .lease(lease)
                .map_or(0, |l| (l.ttl_ms as i64).saturating_mul(1_000_000));
            if *proposed_at < now && now - *proposed_at >= ttl_ns && !revoke.contains(&lease) {
                *proposed_at = now; // not applied a TTL later: propose it again
                revoke.push(lease);
            }
        }
        for lease in revoke {
            let lessor = self.lessor.as_mut().expect("checked above");
            lessor.proposals += 1;
            let id = (term << 32) | (lessor.proposals & 0xffff_ffff);
            self.node
                .on_request(ctx, self.id, (id, CoordCommand::LeaseRevoke { lease }));
        }
        ctx.set_timer(
            self.config.lease_check_interval.to_std(),
            CoordTimer::LeaseCheck { term },
        );
    }

    /// A client's keep-alive (see the module docs).
    fn keep_alive(&mut self, ctx: &mut Context<'_>, client: NodeId, lease: LeaseId) {
        if self.node.role() != Role::Leader {
            let leader = self.node.leader().filter(|&l| l != self.id);
            return ctx.send(client, CoordMessage::KeepAliveRedirect { lease, leader });
        }
        let node = &self.node;
        if node.log().term_at(node.commit_index()) != Some(node.term()) {
            return; // not yet caught up with its predecessors' grants: the client retries
        }
        let now = ctx.local_time_ns();
        let ttl_ms = self.machine().lease(lease).map(|l| l.ttl_ms);
        let Some(lessor) = self.lessor.as_mut() else {
            return;
        };
        let (found, ttl_ms) = match ttl_ms {
            Some(ttl_ms) if !lessor.revoking.contains_key(&lease) => {
                let deadline = now.saturating_add((ttl_ms as i64).saturating_mul(1_000_000));
                lessor.expiry.insert(lease, deadline);
                (true, ttl_ms)
            }
            _ => (false, 0),
        };
        ctx.send(
            client,
            CoordMessage::KeepAliveAck {
                lease,
                found,
                ttl_ms,
            },
        );
    }

    fn on_coord_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: CoordMessage) {
        match message {
            CoordMessage::Request { id, command } => {
                if let Some(request) = self.local_read(ctx, from, id, command) {
                    self.node.on_request(ctx, from, request);
                }
            }
            CoordMessage::KeepAlive { lease } => self.keep_alive(ctx, from, lease),
            CoordMessage::Watch {
                watch,
                key,
                prefix,
                after_revision,
            } => {
                let w = Watch {
                    client: from,
                    watch,
                    key,
                    prefix,
                    after_revision,
                    armed: false,
                };
                self.register_watch(ctx, from, w);
            }
            // Replies to this server's own revokes, and messages only clients take.
            CoordMessage::Reply { .. }
            | CoordMessage::KeepAliveAck { .. }
            | CoordMessage::KeepAliveRedirect { .. }
            | CoordMessage::WatchEvent { .. } => {}
        }
    }
}

impl AnyProcess for CoordServer {
    fn start(&mut self, ctx: &mut Context<'_>) {
        self.node.on_start(ctx);
        let machine = self.node.state_machine().machine();
        self.seen_seq = machine.next_seq();
        self.watch_term = self.node.term();
        self.facts_seq = ctx
            .disk()
            .read(FACTS_KEY)
            .and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
            .unwrap_or(0);
        self.report_views(ctx); // the state loaded from disk
        self.after_step(ctx);
    }

    fn message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Message,
    ) -> Result<(), Message> {
        match message.downcast::<CoordMessage>() {
            Ok(m) => self.on_coord_message(ctx, from, m),
            Err(other) => self.node.message(ctx, from, other)?,
        }
        self.after_step(ctx);
        Ok(())
    }

    fn timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Timer) -> Result<(), Timer> {
        match timer.downcast::<CoordTimer>() {
            Ok(CoordTimer::LeaseCheck { term }) => self.check_leases(ctx, term),
            Err(other) => self.node.timer(ctx, id, other)?,
        }
        self.after_step(ctx);
        Ok(())
    }
}

/// Name of the protocol.
pub const PROTOCOL_NAME: &str = "coordination";

/// The `coordination` protocol: etcd's and ZooKeeper's data model on Raft. Raft's checks and
/// the lock family's `fenced-writes` apply to its roles (`built_on`).
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: PROTOCOL_NAME,
    summary: "a coordination service (etcd's keys, revisions, leases and watches; ZooKeeper's sessions, ephemeral sequential nodes) replicated by Raft, with the leader's lessor",
    serves: &["etcd-lock", "zk-lock", "discovery"],
    bugs: &BUGS,
    built_on: &[raft::PROTOCOL.name, super::super::FENCED_STORAGE.name],
    configure,
};

/// Planted bug: a `consistent` read is served from the receiving server's applied state, like
/// a `stale` one (a follower's or a deposed leader's old data passes for linearizable).
pub const BUG_STALE_READ_AS_CONSISTENT: &str = "stale-read-as-consistent";
/// Planted bug: a server forgets every watch it holds when it sees a new term, silently.
pub const BUG_WATCH_LOST_ON_LEADER_CHANGE: &str = "watch-lost-on-leader-change";

/// The coordination server's own planted bugs (its `bugs` option also takes Raft's).
pub const BUGS: [Bug; 2] = [
    Bug {
        name: BUG_STALE_READ_AS_CONSISTENT,
        summary: "a consistent read is answered from the receiving server's applied state, so a minority-side or deposed server serves stale data as linearizable",
        caught_by: "registry-linearizable",
    },
    Bug {
        name: BUG_WATCH_LOST_ON_LEADER_CHANGE,
        summary: "a server silently forgets its registered watches when it sees a new term, so a watching client's view freezes",
        caught_by: "registry-convergence",
    },
];

/// The instances of every service under [`SERVICES_PREFIX`] in `machine`.
fn services_of(machine: &CoordMachine) -> BTreeMap<String, BTreeSet<String>> {
    let mut services: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if let CoordOutcome::Keys { keys, .. } = machine.range(SERVICES_PREFIX, false) {
        for k in keys {
            if let Some((service, instance)) = service_key(&k.key) {
                services
                    .entry(service.to_string())
                    .or_default()
                    .insert(instance.to_string());
            }
        }
    }
    services
}

/// `(service, instance)` of a key `/services/<service>/<instance>`; `None` for any other key.
pub fn service_key(key: &str) -> Option<(&str, &str)> {
    let (service, instance) = key.strip_prefix(SERVICES_PREFIX)?.split_once('/')?;
    (!service.is_empty() && !instance.is_empty() && !instance.contains('/'))
        .then_some((service, instance))
}

/// Observes `service`'s instances in `views` at `revision` (see `CoordServer::report_views`).
fn report_view(
    ctx: &mut Context<'_>,
    views: &BTreeMap<String, BTreeSet<String>>,
    service: &str,
    revision: u64,
) {
    let instances: Vec<String> = views
        .get(service)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    ctx.observe(registry::Observation::ServerView {
        service: service.to_string(),
        instances: instances.clone(),
    });
    ctx.observe(registry::cp::Observation::Applied {
        service: service.to_string(),
        revision,
        instances,
    });
}

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    let config = CoordConfig::parse(ctx.options)?;
    if ctx.checking {
        let errors = validate(&config, ctx);
        if !errors.is_empty() {
            return Err(errors);
        }
    }
    let mut options = family::resolved_options(&config);
    options.remove("state_machine"); // the machine is the coordination machine
    Ok(Configured {
        options,
        build: Arc::new(move |setup: &NodeSetup| {
            Box::new(CoordServer::new(setup, config.clone())) as Box<dyn AnyProcess>
        }),
    })
}

/// Every problem with a `coordination` role's options: Raft's rules, `state_machine` (which
/// does not apply), and the lessor's and watch hub's limits.
fn validate(c: &CoordConfig, ctx: &RoleContext<'_>) -> Vec<OptionError> {
    let mut errors = raft::validate(&c.raft, ctx);
    // `bugs` takes Raft's planted bugs and the server's own.
    errors.retain(|e| e.path.first().is_none_or(|k| k != "bugs"));
    let known: Vec<Bug> = raft::PROTOCOL.bugs.iter().chain(&BUGS).copied().collect();
    errors.extend(family::check_bugs(&c.raft.bugs, &known, PROTOCOL_NAME));
    if ctx.options.contains_key("state_machine") {
        errors.retain(|e| e.path.first().is_none_or(|k| k != "state_machine"));
        errors.push(OptionError::at(
            "state_machine",
            "a coordination role replicates the coordination machine; remove state_machine",
        ));
    }
    let interval = c.lease_check_interval;
    if interval < Duration::from_millis(1) || interval > Duration::from_secs(3600) {
        errors.push(OptionError::at(
            "lease_check_interval",
            format!("expected from 1ms to 1h, found {interval}"),
        ));
    }
    if !(1..=MAX_WATCHES_LIMIT).contains(&c.max_watches) {
        errors.push(OptionError::at(
            "max_watches",
            format!(
                "expected between 1 and {MAX_WATCHES_LIMIT}, found {}",
                c.max_watches
            ),
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, VecDeque};

    use super::*;
    use crate::families::lock::coord::{CoordAnswer, CoordOutcome};
    use crate::process::{CommonObservation, Effect, NodeRole, Payload, TestContext};

    const MS: i64 = 1_000_000;
    /// The client node of the tests (after the servers).
    const CLIENT: NodeId = NodeId(9);

    /// Coordination servers driven by hand: messages are delivered at once (FIFO), timers fire
    /// in local-time order, every clock reads the same global time.
    struct Cluster {
        servers: Vec<CoordServer>,
        ctxs: Vec<TestContext>,
        config: CoordConfig,
        /// Pending timers per server: id -> (payload, deadline).
        timers: Vec<BTreeMap<TimerId, (Payload, i64)>>,
        inflight: VecDeque<(NodeId, NodeId, Payload)>,
        /// Messages to the client, with their sender.
        to_client: Vec<(NodeId, CoordMessage)>,
        /// Lock-family facts, with the observing server and its time.
        facts: Vec<(NodeId, i64, Observation)>,
        /// When each server last became leader.
        became_leader: BTreeMap<NodeId, i64>,
        /// The CP registry's facts, with the observing server.
        applied: Vec<(NodeId, registry::cp::Observation)>,
        /// Registry server views, with the observing server.
        views: Vec<(NodeId, registry::Observation)>,
        /// Servers cut off from everyone.
        isolated: BTreeSet<NodeId>,
        now: i64,
    }

    impl Cluster {
        fn new(n: u32, config: CoordConfig) -> Cluster {
            let mut c = Cluster {
                servers: Vec::new(),
                ctxs: Vec::new(),
                config,
                timers: Vec::new(),
                inflight: VecDeque::new(),
                to_client: Vec::new(),
                facts: Vec::new(),
                became_leader: BTreeMap::new(),
                applied: Vec::new(),
                views: Vec::new(),
                isolated: BTreeSet::new(),
                now: 0,
            };
            for i in 0..n {
                c.servers.push(c.fresh(i as usize, n));
                c.ctxs.push(TestContext::new(NodeId(i), u64::from(i) + 1));
                c.timers.push(BTreeMap::new());
            }
            for i in 0..n as usize {
                c.servers[i].start(&mut c.ctxs[i].ctx());
                c.collect(i);
            }
            c
        }

        fn fresh(&self, i: usize, n: u32) -> CoordServer {
            let servers = (0..n).map(NodeId).collect();
            CoordServer::new(
                &NodeSetup::server(NodeId(i as u32), servers),
                self.config.clone(),
            )
        }

        fn collect(&mut self, i: usize) {
            let from = NodeId(i as u32);
            for effect in self.ctxs[i].take_effects() {
                match effect {
                    Effect::Send { to, message } => {
                        if to.index() < self.servers.len() {
                            self.inflight.push_back((from, to, message));
                        } else if let Some(m) = message.downcast_ref::<CoordMessage>() {
                            self.to_client.push((from, m.clone()));
                        }
                    }
                    Effect::SetTimer { id, delay, timer } => {
                        self.timers[i].insert(id, (timer, self.now + delay.as_nanos() as i64));
                    }
                    Effect::CancelTimer { id } => {
                        self.timers[i].remove(&id);
                    }
                    Effect::Observe(o) => {
                        if let Some(f) = o.downcast_ref::<Observation>() {
                            self.facts.push((from, self.now, f.clone()));
                        }
                        if let Some(f) = o.downcast_ref::<registry::cp::Observation>() {
                            self.applied.push((from, f.clone()));
                        }
                        if let Some(f) = o.downcast_ref::<registry::Observation>() {
                            self.views.push((from, f.clone()));
                        }
                        if let Some(CommonObservation::Role {
                            role: NodeRole::Leader,
                            ..
                        }) = o.downcast_ref::<CommonObservation>()
                        {
                            self.became_leader.insert(from, self.now);
                        }
                    }
                    Effect::History(_) => panic!("a server records no history"),
                }
            }
        }

        /// Delivers everything in flight, and what it causes, until quiet.
        fn settle(&mut self) {
            let mut steps = 0;
            while let Some((from, to, m)) = self.inflight.pop_front() {
                steps += 1;
                assert!(steps < 100_000, "the cluster never went quiet");
                if from != to && (self.isolated.contains(&from) || self.isolated.contains(&to)) {
                    continue;
                }
                let i = to.index();
                self.servers[i]
                    .message(&mut self.ctxs[i].ctx(), from, m)
                    .expect("a server handles every message it gets here");
                self.collect(i);
            }
        }

        /// Runs until global time `until_ms`, firing timers in time order.
        fn run_until(&mut self, until_ms: i64) {
            let end = until_ms * MS;
            loop {
                self.settle();
                let next = (0..self.servers.len())
                    .flat_map(|i| self.timers[i].iter().map(move |(id, (_, d))| (*d, i, *id)))
                    .filter(|&(d, _, _)| d <= end)
                    .min();
                let Some((deadline, i, id)) = next else { break };
                self.set_now(deadline.max(self.now));
                let (timer, _) = self.timers[i].remove(&id).expect("pending");
                self.servers[i]
                    .timer(&mut self.ctxs[i].ctx(), id, timer)
                    .expect("a server handles its timers");
                self.collect(i);
            }
            self.set_now(end.max(self.now));
        }

        fn set_now(&mut self, now: i64) {
            self.now = now;
            for ctx in &mut self.ctxs {
                ctx.local_time_ns = now;
            }
        }

        fn leader(&self) -> usize {
            let leaders: Vec<usize> = (0..self.servers.len())
                .filter(|&i| {
                    !self.isolated.contains(&NodeId(i as u32))
                        && self.servers[i].node().role() == Role::Leader
                })
                .collect();
            assert_eq!(leaders.len(), 1, "one leader among the connected servers");
            leaders[0]
        }

        /// The client sends `message` to server `i`; everything it causes is delivered.
        fn send(&mut self, i: usize, message: CoordMessage) {
            self.servers[i]
                .message(&mut self.ctxs[i].ctx(), CLIENT, Payload::new(message))
                .expect("handled");
            self.collect(i);
            self.settle();
        }

        /// Runs `command` on the leader as request `id` and returns its outcome.
        fn request(&mut self, id: u64, command: CoordCommand) -> CoordOutcome {
            let leader = self.leader();
            self.send(leader, CoordMessage::Request { id, command });
            // A read waits for a heartbeat round; a write for one round trip.
            let until = self.now / MS + 60;
            self.run_until(until);
            self.to_client
                .iter()
                .rev()
                .find_map(|(_, m)| match m {
                    CoordMessage::Reply {
                        id: r,
                        answer: CoordAnswer::Done { outcome },
                    } if *r == id => Some(outcome.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no answer to request {id}: {:?}", self.to_client))
        }

        fn grant(&mut self, id: u64, ttl_ms: u64) -> LeaseId {
            match self.request(id, CoordCommand::LeaseGrant { ttl_ms }) {
                CoordOutcome::Lease { lease, .. } => lease,
                other => panic!("grant answered {other:?}"),
            }
        }

        /// Creates keys `/other/<id>` through `leader` (request ids from `first_id`) until
        /// more events than the machine keeps have passed: earlier events are compacted away.
        fn create_past_compaction(&mut self, leader: usize, first_id: u64) {
            use crate::families::lock::coord::machine::MAX_EVENTS;
            for id in first_id..(MAX_EVENTS as u64 + 150) {
                let command = CoordCommand::Create {
                    key: format!("/other/{id}"),
                    value: String::new(),
                    lease: None,
                    sequential: false,
                };
                self.servers[leader]
                    .message(
                        &mut self.ctxs[leader].ctx(),
                        CLIENT,
                        Payload::new(CoordMessage::Request { id, command }),
                    )
                    .unwrap();
                self.collect(leader);
                self.settle();
            }
        }

        fn create(&mut self, id: u64, key: &str, lease: Option<LeaseId>) -> u64 {
            let command = CoordCommand::Create {
                key: key.into(),
                value: "c".into(),
                lease,
                sequential: false,
            };
            match self.request(id, command) {
                CoordOutcome::Created { revision, .. } => revision,
                other => panic!("create answered {other:?}"),
            }
        }

        fn watch_events(&self) -> Vec<(u64, String, bool, bool)> {
            self.to_client
                .iter()
                .filter_map(|(_, m)| match m {
                    CoordMessage::WatchEvent {
                        watch,
                        key,
                        deleted,
                        compacted,
                        ..
                    } => Some((*watch, key.clone(), *deleted, *compacted)),
                    _ => None,
                })
                .collect()
        }

        fn crash_restart(&mut self, i: usize) {
            self.ctxs[i].crash();
            self.timers[i].clear();
            self.inflight.retain(|(_, to, _)| to.index() != i);
            self.servers[i] = self.fresh(i, self.servers.len() as u32);
            self.servers[i].start(&mut self.ctxs[i].ctx());
            self.collect(i);
        }
    }

    fn watch(watch: u64, key: &str, prefix: bool, after_revision: u64) -> CoordMessage {
        CoordMessage::Watch {
            watch,
            key: key.into(),
            prefix,
            after_revision,
        }
    }

    /// Three servers with a leader elected by 1s.
    fn cluster() -> Cluster {
        let mut c = Cluster::new(3, CoordConfig::default());
        c.run_until(1000);
        c.leader();
        c
    }

    #[test]
    fn keep_alives_are_answered_by_the_leader_and_redirected_by_followers() {
        let mut c = cluster();
        let leader = c.leader();
        let follower = (leader + 1) % 3;
        let lease = c.grant(1, 500);
        c.to_client.clear();
        c.send(follower, CoordMessage::KeepAlive { lease });
        c.send(leader, CoordMessage::KeepAlive { lease });
        c.send(leader, CoordMessage::KeepAlive { lease: 999 });
        let leader_id = Some(NodeId(leader as u32));
        assert_eq!(
            c.to_client,
            vec![
                (
                    NodeId(follower as u32),
                    CoordMessage::KeepAliveRedirect {
                        lease,
                        leader: leader_id
                    }
                ),
                (
                    NodeId(leader as u32),
                    CoordMessage::KeepAliveAck {
                        lease,
                        found: true,
                        ttl_ms: 500
                    }
                ),
                (
                    NodeId(leader as u32),
                    CoordMessage::KeepAliveAck {
                        lease: 999,
                        found: false,
                        ttl_ms: 0
                    }
                ),
            ]
        );
        assert_eq!(
            c.servers[leader].lease_deadline(lease),
            Some(c.now + 500 * MS)
        );
        assert_eq!(
            c.servers[follower].lease_deadline(lease),
            None,
            "no lessor on a follower"
        );
    }

    #[test]
    fn an_expired_lease_is_revoked_by_the_leader_and_its_keys_go_on_every_replica() {
        let mut c = cluster();
        let leader = c.leader();
        let lease = c.grant(1, 500);
        c.create(2, "/lock/a", Some(lease));
        c.create(3, "/plain", None);
        // Kept alive every 200ms for 2s: never expires.
        let mut last = 0;
        for _ in 0..10 {
            c.send(leader, CoordMessage::KeepAlive { lease });
            last = c.now;
            let next = c.now / MS + 200;
            c.run_until(next);
        }
        assert!(
            !c.facts
                .iter()
                .any(|(_, _, f)| matches!(f, Observation::LeaseExpired { .. }))
        );
        assert!(
            c.servers
                .iter()
                .all(|s| s.machine().key("/lock/a").is_some())
        );
        // Silent from now on.
        let end = c.now / MS + 1000;
        c.run_until(end);
        let expired: Vec<_> = c
            .facts
            .iter()
            .filter(|(_, _, f)| matches!(f, Observation::LeaseExpired { .. }))
            .collect();
        assert_eq!(expired.len(), 1, "{expired:?}");
        let (by, at, fact) = expired[0];
        assert_eq!(
            *by,
            NodeId(leader as u32),
            "only the leader's lessor expires leases"
        );
        assert_eq!(*fact, Observation::LeaseExpired { lease, ttl_ms: 500 });
        let granularity = c.config.lease_check_interval.as_nanos() as i64;
        assert!(
            *at >= last + 500 * MS && *at <= last + 500 * MS + granularity,
            "expired at {at}, last keep-alive at {last}"
        );
        for s in &c.servers {
            assert!(s.machine().lease(lease).is_none());
            assert!(
                s.machine().key("/lock/a").is_none(),
                "the lease's key is gone"
            );
            assert!(s.machine().key("/plain").is_some(), "other keys stay");
        }
        // A keep-alive for the revoked lease is refused.
        c.to_client.clear();
        c.send(leader, CoordMessage::KeepAlive { lease });
        assert_eq!(
            c.to_client,
            vec![(
                NodeId(leader as u32),
                CoordMessage::KeepAliveAck {
                    lease,
                    found: false,
                    ttl_ms: 0
                }
            )]
        );
    }

    #[test]
    fn a_new_leader_gives_every_lease_a_full_ttl_from_its_promotion() {
        let mut c = cluster();
        let old = c.leader();
        let lease = c.grant(1, 2000);
        c.create(2, "/lock/a", Some(lease));
        let old_deadline = c.servers[old].lease_deadline(lease).unwrap();
        let cut_at = c.now / MS + 1500;
        c.run_until(cut_at);
        c.isolated.insert(NodeId(old as u32));
        let end = cut_at + 1500;
        c.run_until(end);
        let new = c.leader();
        assert_ne!(new, old);
        let promoted = c.became_leader[&NodeId(new as u32)];
        assert!(promoted > cut_at * MS, "promoted after the cut");
        assert_eq!(
            c.servers[new].lease_deadline(lease),
            Some(promoted + 2000 * MS),
            "Promote: a full TTL from the new leader's start"
        );
        assert!(c.now > old_deadline, "past the old leader's deadline");
        assert!(
            c.servers[new].machine().key("/lock/a").is_some(),
            "not expired on the old leader's deadline"
        );
        let later = promoted / MS + 2000 + 100;
        c.run_until(later);
        assert!(
            c.servers[new].machine().key("/lock/a").is_none(),
            "expired by the new leader"
        );
    }

    #[test]
    fn a_watch_fires_once() {
        let mut c = cluster();
        let leader = c.leader();
        let follower = (leader + 1) % 3;
        let revision = c.create(1, "/lock/a", None);
        c.send(follower, watch(7, "/lock/a", false, revision));
        c.send(leader, watch(8, "/lock/", true, revision));
        assert!(c.watch_events().is_empty(), "nothing changed yet");
        c.request(
            2,
            CoordCommand::Delete {
                key: "/lock/a".into(),
            },
        );
        c.create(3, "/lock/a", None);
        c.request(
            4,
            CoordCommand::Delete {
                key: "/lock/a".into(),
            },
        );
        assert_eq!(
            c.watch_events(),
            vec![
                (8, "/lock/a".to_string(), true, false),
                (7, "/lock/a".to_string(), true, false)
            ],
            "each watch fired once, on the first change"
        );
        assert_eq!(c.servers[follower].watch_count(), 0);
    }

    #[test]
    fn a_watch_on_an_already_deleted_key_fires_at_once() {
        let mut c = cluster();
        let leader = c.leader();
        let revision = c.create(1, "/lock/a", None);
        c.request(
            2,
            CoordCommand::Delete {
                key: "/lock/a".into(),
            },
        );
        c.send(leader, watch(1, "/lock/a", false, revision));
        c.send(leader, watch(2, "/lock/never", false, 0));
        c.send(leader, watch(3, "/lock/", true, revision));
        assert_eq!(
            c.watch_events(),
            vec![
                (1, "/lock/a".to_string(), true, false),
                (2, "/lock/never".to_string(), true, false),
                (3, "/lock/a".to_string(), true, false)
            ]
        );
    }

    #[test]
    fn a_watch_on_a_lagging_replica_waits_until_it_has_applied_the_watched_revision() {
        let mut c = cluster();
        let leader = c.leader();
        let lagging = (leader + 1) % 3;
        c.isolated.insert(NodeId(lagging as u32));
        let revision = c.create(1, "/lock/a", None);
        // The lagging replica has not seen the create: the key is absent there, yet it must
        // not report it deleted.
        assert!(c.servers[lagging].machine().key("/lock/a").is_none());
        c.send(lagging, watch(5, "/lock/a", false, revision));
        assert!(c.watch_events().is_empty());
        c.isolated.clear();
        let t = c.now / MS + 200;
        c.run_until(t);
        assert!(c.servers[lagging].machine().key("/lock/a").is_some());
        assert!(c.watch_events().is_empty(), "caught up: the key exists");
        c.request(
            2,
            CoordCommand::Delete {
                key: "/lock/a".into(),
            },
        );
        assert_eq!(
            c.watch_events(),
            vec![(5, "/lock/a".to_string(), true, false)]
        );
    }

    /// Three servers snapshotting every `snapshot_every` entries; a follower holds an exact
    /// watch (1) on `/lock/a` and a prefix watch (2) on `/lock/` from the key's create revision,
    /// is cut off, and the key is deleted. Returns the cluster, the leader, the cut-off
    /// follower and the revision.
    fn lagging_watchers(snapshot_every: u32) -> (Cluster, usize, usize, u64) {
        let mut config = CoordConfig::default();
        config.raft.snapshot_threshold_entries = snapshot_every;
        let mut c = Cluster::new(3, config);
        c.run_until(1000);
        let leader = c.leader();
        let lagging = (leader + 1) % 3;
        let revision = c.create(1, "/lock/a", None);
        c.send(lagging, watch(1, "/lock/a", false, revision));
        c.send(lagging, watch(2, "/lock/", true, revision));
        c.isolated.insert(NodeId(lagging as u32));
        c.request(
            2,
            CoordCommand::Delete {
                key: "/lock/a".into(),
            },
        );
        (c, leader, lagging, revision)
    }

    #[test]
    fn a_watch_on_a_replica_that_installs_a_snapshot_still_fires() {
        let (mut c, _, lagging, _) = lagging_watchers(5);
        for id in 3..20 {
            c.create(id, &format!("/other/{id}"), None);
        }
        c.isolated.clear();
        let t = c.now / MS + 300;
        c.run_until(t);
        let installed = c.servers[lagging].node().log().snapshot_index() > 0;
        assert!(installed, "the lagging replica caught up from a snapshot");
        assert!(c.servers[lagging].machine().key("/lock/a").is_none());
        // The delete is still in the event log (not compacted): both watches see it.
        assert_eq!(
            c.watch_events(),
            vec![
                (1, "/lock/a".to_string(), true, false),
                (2, "/lock/a".to_string(), true, false)
            ]
        );
    }

    #[test]
    fn watches_whose_events_were_compacted_away_fire_from_the_key_or_as_compacted() {
        let (mut c, leader, lagging, revision) = lagging_watchers(100);
        // More events than the log keeps: the delete is compacted away.
        // The snapshot the lagging replica installs must itself miss it: well past MAX_EVENTS.
        c.create_past_compaction(leader, 3);
        assert!(c.servers[leader].machine().compacted_revision() > revision + 1);
        c.isolated.clear();
        let t = c.now / MS + 300;
        c.run_until(t);
        assert!(
            c.servers[lagging].machine().key("/other/100").is_some(),
            "caught up"
        );
        assert_eq!(
            c.watch_events(),
            vec![
                (1, "/lock/a".to_string(), true, false),
                (2, "/lock/".to_string(), false, true)
            ],
            "the exact key is gone (deleted); the prefix watch must read again (compacted)"
        );
    }

    #[test]
    fn the_oldest_watch_is_dropped_beyond_max_watches_and_told_compacted() {
        let config = CoordConfig {
            max_watches: 2,
            ..CoordConfig::default()
        };
        let mut c = Cluster::new(3, config);
        c.run_until(1000);
        let leader = c.leader();
        let revision = c.create(1, "/lock/a", None);
        for w in 1..=3 {
            c.send(leader, watch(w, "/lock/a", false, revision));
        }
        assert_eq!(
            c.watch_events(),
            vec![(1, "/lock/a".to_string(), false, true)]
        );
        assert_eq!(c.servers[leader].watch_count(), 2);
    }

    #[test]
    fn every_replica_reports_each_guarded_write_once_even_after_a_restart() {
        let mut c = cluster();
        let leader = c.leader();
        let lease = c.grant(1, 1000);
        let token = c.create(2, "/lock/a", Some(lease));
        let txn = |guard_revision, token| CoordCommand::Txn {
            guard_key: "/lock/a".into(),
            guard_revision,
            key: "/resource".into(),
            value: "x".into(),
            writer: CLIENT,
            token,
        };
        assert!(matches!(
            c.request(3, txn(token, token)),
            CoordOutcome::TxnDone {
                succeeded: true,
                ..
            }
        ));
        assert!(matches!(
            c.request(4, txn(token - 1, token - 1)),
            CoordOutcome::TxnDone {
                succeeded: false,
                ..
            }
        ));
        let t = c.now / MS + 100;
        c.run_until(t);
        let facts_of = |c: &Cluster, i: usize| -> Vec<Observation> {
            c.facts
                .iter()
                .filter(|(n, _, f)| {
                    n.index() == i
                        && matches!(
                            f,
                            Observation::WriteAccepted { .. } | Observation::WriteRefused { .. }
                        )
                })
                .map(|(_, _, f)| f.clone())
                .collect()
        };
        let expected = vec![
            Observation::WriteAccepted {
                client: CLIENT,
                token,
            },
            Observation::WriteRefused {
                client: CLIENT,
                token: token - 1,
                highest: token,
            },
        ];
        for i in 0..3 {
            assert_eq!(facts_of(&c, i), expected, "replica {i}");
        }
        // A follower restarts and applies its log again: nothing is reported twice.
        let follower = (leader + 1) % 3;
        c.crash_restart(follower);
        let t = c.now / MS + 500;
        c.run_until(t);
        assert!(
            c.servers[follower].machine().key("/resource").is_some(),
            "re-applied"
        );
        assert_eq!(facts_of(&c, follower), expected);
    }

    #[test]
    fn lessor_revokes_use_request_ids_unique_across_terms() {
        let mut c = cluster();
        let leader = c.leader();
        let term = c.servers[leader].node().term();
        let a = c.grant(1, 100);
        let b = c.grant(2, 100);
        let t = c.now / MS + 300;
        c.run_until(t);
        let revoked = |c: &Cluster| {
            c.servers
                .iter()
                .all(|s| s.machine().lease(a).is_none() && s.machine().lease(b).is_none())
        };
        assert!(revoked(&c));
        let sessions = c.servers[leader].node().state_machine();
        let own = crate::families::replicated::CommandId {
            client: NodeId(leader as u32),
            request: (term << 32) | 2,
        };
        assert!(
            matches!(
                sessions.cached(own),
                Some(CoordOutcome::Revoked { existed: true })
            ),
            "the leader's second revoke of term {term} ran under its own id"
        );
    }

    #[test]
    fn options_are_raft_options_plus_the_lessor_and_watch_limits() {
        let table: toml::Table =
            toml::from_str("heartbeat_interval = \"20ms\"\nmax_watches = 10").unwrap();
        let c = CoordConfig::parse(&table).unwrap();
        assert_eq!(c.raft.heartbeat_interval, Duration::from_millis(20));
        assert_eq!(c.max_watches, 10);
        assert_eq!(c.lease_check_interval, Duration::from_millis(50));
        let table: toml::Table = toml::from_str("heartbeat_intervall = \"20ms\"").unwrap();
        let errors = CoordConfig::parse(&table).unwrap_err();
        assert_eq!(errors[0].path, vec!["heartbeat_intervall".to_string()]);
        assert!(
            errors[0].message.starts_with("unknown field"),
            "{:?}",
            errors[0]
        );
        assert!(errors[0].at_key, "{:?}", errors[0]);
        for key in [
            "`heartbeat_interval`",
            "`lease_check_interval`",
            "`max_watches`",
            "`bugs`",
        ] {
            assert!(errors[0].message.contains(key), "{key}: {:?}", errors[0]);
        }
        assert!(
            !errors[0].message.contains("state_machine"),
            "{:?}",
            errors[0]
        );
    }

    fn range(prefix: &str, consistency: Consistency) -> CoordMessage {
        CoordMessage::Request {
            id: 77,
            command: CoordCommand::Range {
                prefix: prefix.into(),
                consistency,
                with_values: true,
            },
        }
    }

    /// What server `i` answered request 77 with right away (None: no answer yet).
    fn read_at(c: &mut Cluster, i: usize, consistency: Consistency) -> Option<CoordAnswer> {
        c.to_client.clear();
        c.send(i, range("/services/web/", consistency));
        c.to_client.iter().find_map(|(from, m)| match m {
            CoordMessage::Reply { id: 77, answer } if from.index() == i => Some(answer.clone()),
            _ => None,
        })
    }

    fn keys_of(answer: Option<CoordAnswer>) -> (Vec<(String, Option<String>)>, u64) {
        match answer {
            Some(CoordAnswer::Done {
                outcome: CoordOutcome::Keys { keys, revision },
            }) => (
                keys.into_iter().map(|k| (k.key, k.value)).collect(),
                revision,
            ),
            other => panic!("expected keys, got {other:?}"),
        }
    }

    fn bugged(bug: &str) -> CoordConfig {
        let mut config = CoordConfig::default();
        config.raft.bugs = vec![bug.to_string()];
        config
    }

    #[test]
    fn default_reads_are_served_by_the_leader_stale_reads_by_any_server_consistent_by_read_index() {
        let mut c = cluster();
        let leader = c.leader();
        let follower = (leader + 1) % 3;
        c.create(1, "/services/web/a", None);
        let leader_id = Some(NodeId(leader as u32));
        // At once, without a heartbeat round: the leader at default, anyone at stale.
        let (keys, revision) = keys_of(read_at(&mut c, leader, Consistency::Default));
        assert_eq!(
            keys,
            vec![("/services/web/a".to_string(), Some("c".to_string()))]
        );
        assert_eq!(revision, 1);
        // A follower knows the commit from the next heartbeat.
        let run = c.now / MS + 100;
        c.run_until(run);
        assert_eq!(keys_of(read_at(&mut c, follower, Consistency::Stale)).1, 1);
        assert_eq!(
            read_at(&mut c, follower, Consistency::Default),
            Some(CoordAnswer::Redirect { leader: leader_id })
        );
        assert_eq!(
            read_at(&mut c, follower, Consistency::Consistent),
            Some(CoordAnswer::Redirect { leader: leader_id })
        );
        // A consistent read waits for a round a majority answers (ReadIndex)...
        c.isolated.insert(NodeId(follower as u32));
        c.isolated.insert(NodeId(((leader + 2) % 3) as u32));
        assert_eq!(read_at(&mut c, leader, Consistency::Consistent), None);
        let later = c.now / MS + 100;
        c.run_until(later);
        assert!(
            !c.to_client
                .iter()
                .any(|(_, m)| matches!(m, CoordMessage::Reply { id: 77, .. })),
            "a leader cut off from its majority never answers a consistent read"
        );
        // ...while the cut-off leader still answers default and stale reads from its state.
        assert_eq!(keys_of(read_at(&mut c, leader, Consistency::Default)).1, 1);
        assert_eq!(keys_of(read_at(&mut c, leader, Consistency::Stale)).1, 1);
    }

    #[test]
    fn stale_read_as_consistent_lets_a_follower_answer_a_consistent_read() {
        let mut c = Cluster::new(3, bugged(BUG_STALE_READ_AS_CONSISTENT));
        c.run_until(1000);
        let follower = (c.leader() + 1) % 3;
        c.create(1, "/services/web/a", None);
        assert_eq!(
            keys_of(read_at(&mut c, follower, Consistency::Consistent)).1,
            0,
            "the follower answers at once from its state, which lags the commit"
        );
    }

    #[test]
    fn every_replica_reports_each_service_change_with_its_revision_and_lock_keys_report_nothing() {
        let mut c = cluster();
        let lease = c.grant(1, 60_000);
        c.create(2, "/lock/x", Some(lease));
        c.create(3, "/services/web/a", Some(lease));
        c.create(4, "/services/web/b", None);
        c.create(5, "/services/db/c", Some(lease));
        c.create(6, "/services/web/a/deeper", None);
        c.request(7, CoordCommand::LeaseRevoke { lease });
        let run = c.now / MS + 200;
        c.run_until(run);
        let applied =
            |r: u64, service: &str, instances: &[&str]| registry::cp::Observation::Applied {
                service: service.into(),
                revision: r,
                instances: instances.iter().map(|s| s.to_string()).collect(),
            };
        let expected = vec![
            applied(3, "web", &["a"]),
            applied(4, "web", &["a", "b"]),
            applied(5, "db", &["c"]),
            // One revoke, one revision, both services.
            applied(7, "db", &[]),
            applied(7, "web", &["b"]),
        ];
        for i in 0..3 {
            let mine: Vec<_> = c
                .applied
                .iter()
                .filter(|(n, _)| n.index() == i)
                .map(|(_, o)| o.clone())
                .collect();
            assert_eq!(mine, expected, "replica {i}");
            let views = c.views.iter().filter(|(n, _)| n.index() == i).count();
            assert_eq!(views, expected.len(), "a ServerView beside each");
        }
        // A restarted replica reports its state again as it rebuilds it.
        c.applied.clear();
        c.crash_restart(0);
        let run = c.now / MS + 1000;
        c.run_until(run);
        let last = c.applied.iter().rev().find(|(n, _)| n.index() == 0);
        assert_eq!(
            last.map(|(_, o)| o.clone()),
            Some(applied(7, "web", &["b"]))
        );
    }

    /// A watch on a follower's service prefix, then a new term, then a change: does it fire?
    fn watch_across_a_new_term(config: CoordConfig) -> bool {
        let mut c = Cluster::new(3, config);
        c.run_until(1000);
        let old = c.leader();
        let watcher = (old + 1) % 3;
        c.create(1, "/services/web/a", None);
        c.send(watcher, watch(5, "/services/web/", true, 1));
        assert_eq!(c.servers[watcher].watch_count(), 1);
        c.isolated.insert(NodeId(old as u32));
        let run = c.now / MS + 2000;
        c.run_until(run);
        assert_ne!(c.leader(), old, "a new leader in a new term");
        c.create(2, "/services/web/b", None);
        c.watch_events().iter().any(|(w, _, _, _)| *w == 5)
    }

    #[test]
    fn watches_survive_a_leader_change_unless_watch_lost_on_leader_change() {
        assert!(watch_across_a_new_term(CoordConfig::default()));
        assert!(!watch_across_a_new_term(bugged(
            BUG_WATCH_LOST_ON_LEADER_CHANGE
        )));
    }

    #[test]
    fn service_keys_parse_as_service_and_instance() {
        assert_eq!(service_key("/services/web/a"), Some(("web", "a")));
        for other in [
            "/services/web/",
            "/services//a",
            "/services/web/a/b",
            "/lock/a",
            "/services/web",
        ] {
            assert_eq!(service_key(other), None, "{other}");
        }
    }

    #[test]
    fn a_replica_that_catches_up_past_compacted_events_reports_the_services_as_they_are_now() {
        let mut config = CoordConfig::default();
        config.raft.snapshot_threshold_entries = 100;
        let mut c = Cluster::new(3, config);
        c.run_until(1000);
        let leader = c.leader();
        let lagging = (leader + 1) % 3;
        c.create(1, "/services/web/a", None);
        let run = c.now / MS + 100;
        c.run_until(run);
        c.isolated.insert(NodeId(lagging as u32));
        c.request(
            2,
            CoordCommand::Delete {
                key: "/services/web/a".into(),
            },
        );
        let b = c.create(3, "/services/web/b", None);
        c.create_past_compaction(leader, 4);
        assert!(c.servers[leader].machine().compacted_revision() > b);
        c.applied.clear();
        c.isolated.clear();
        let t = c.now / MS + 300;
        c.run_until(t);
        let mine: Vec<_> = c
            .applied
            .iter()
            .filter(|(n, _)| n.index() == lagging)
            .map(|(_, o)| o.clone())
            .collect();
        let registry::cp::Observation::Applied {
            service,
            revision,
            instances,
        } = &mine[..]
            .first()
            .unwrap_or_else(|| panic!("the lagging replica reported nothing: {mine:?}"))
        else {
            panic!("{mine:?}")
        };
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert_eq!(
            (service.as_str(), instances.clone()),
            ("web", vec!["b".to_string()])
        );
        assert!(*revision >= b, "read at the snapshot's revision");
    }
}
