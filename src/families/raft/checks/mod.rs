//! Raft's safety properties (paper, Figure 3), each checked from observations alone, never from
//! a node's claims about other nodes.
//!
//! [`Replay`] rebuilds, from the `raft` observations, `role` observations and lifecycle records
//! in their global order, what each node's log was at every moment. Entries are identified
//! exactly by their whole prefix: an entry's identity is interned from (identity of the entry
//! before it, term, command), so two entries have the same identity if and only if the two logs
//! agree on that entry and on everything before it. With that:
//!
//! - `election-safety`: at most one node becomes leader in a term;
//! - `log-matching`: two entries with the same index and term have the same identity (so the
//!   same command and the same prefix);
//! - `leader-completeness`: every committed entry is in the log of every leader of a later
//!   term, from the moment it is elected;
//! - `state-machine-safety`: no two nodes apply different entries at an index, and each node
//!   applies indexes in order without gaps (from its snapshot on, after every restart or
//!   snapshot installation);
//! - `leader-append-only`: a leader never deletes or overwrites entries in its log.
//!
//! **Committed, without trusting anyone.** The leader's commit index is its belief about other
//! nodes, so the checks derive commitment themselves, from the argument of §5.4.3: an entry of
//! term T at index k is committed once a majority of servers have each appended it *while their
//! current term was T* (they got it from the leader of T, in term T; each of them will only vote
//! in a later term for a candidate whose log holds it, as long as logs stay matching). Entries
//! before a committed entry are committed too (they are its prefix, i.e. part of its identity).
//! Under correct Raft this is exactly the set of entries that can never be lost; an entry that a
//! majority merely stores, like index 2 in Figure 8 (c), is not committed by this rule.
//!
//! **Memory.** The replay is built while the run goes ([`fold`]) and forgets what lies below
//! every server's snapshot, so it holds a window of entries however long the run (the argument
//! that no check needs what it forgets is at [`Replay`]).

pub mod election_safety;
pub mod leader_append_only;
pub mod leader_completeness;
pub mod log_matching;
pub mod state_machine_safety;

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::check::ms;
use crate::families::kv::CommandId;
use crate::families::raft::{EntryRef, Observation as RaftObservation};
use crate::process::NodeId;
use crate::process::{CommonObservation, NodeRole};
use crate::scenario::Scenario;
use crate::scenario::topology::Topology;
use crate::sim::{Fold, LifecycleKind, LifecycleRecord, ObservationRecord, RunRecord};

/// The exact identity of an entry together with its whole prefix (0: the empty log).
pub type EntryId = u32;

/// Where and when something was observed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The node.
    pub node: NodeId,
    /// Global time.
    pub t_ns: u64,
}

/// One distinct entry (with its prefix).
#[derive(Clone, Debug)]
pub struct EntryInfo {
    /// Its index.
    pub index: u64,
    /// Its term and command.
    pub entry: EntryRef,
    /// The entry before it (possibly forgotten: see [`Replay::horizon`]).
    pub parent: EntryId,
    /// The first node that appended it, and when.
    pub first: Seen,
    /// Committed by the majority rule.
    committed: bool,
    /// How many distinct entries follow it.
    children: u32,
}

/// A node's leadership: elected in `term` at `at`, with a log ending at entry `last`.
#[derive(Clone, Debug)]
pub struct Election {
    /// The new leader and when it announced it.
    pub at: Seen,
    /// Its term.
    pub term: u64,
    /// The last entry of its log at that moment (0: empty), which identifies the whole log.
    pub last: EntryId,
    /// The length of its log at that moment.
    pub len: u64,
}

/// An entry found committed by the majority rule.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The entry.
    pub id: EntryId,
    /// Its index.
    pub index: u64,
    /// Its term.
    pub term: u64,
    /// When the last needed server appended it.
    pub t_ns: u64,
    /// The servers that appended it in its term, in order.
    pub holders: Vec<NodeId>,
}

/// An application of an entry at an index by a node.
#[derive(Clone, Debug)]
pub struct Applied {
    /// Who and when.
    pub at: Seen,
    /// What.
    pub entry: EntryRef,
}

/// A violation found while replaying, for the check that owns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The check.
    pub check: &'static str,
    /// Global time of the violating event.
    pub t_ns: u64,
    /// The evidence sentence.
    pub text: String,
}

#[derive(Clone, Debug, Default)]
struct NodeState {
    /// Its log above the horizon: the identities of indexes `horizon + 1 ..`, in order (every
    /// server's log holds the horizon entry at the horizon index).
    log: Vec<EntryId>,
    term: u64,
    leading: Option<u64>,
    applied: u64,
    /// The last index of its latest durable snapshot (taken, installed or restored from).
    snapshot: u64,
}

/// The first and the last distinct entry seen at an (index, term).
#[derive(Copy, Clone, Debug)]
struct Position {
    first: EntryId,
    last: EntryId,
}

/// Counts of what a [`Replay`] holds, for tests and memory estimates.
#[cfg(test)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct Held {
    /// Entries held (of [`Replay::entry_count`]).
    pub entries: usize,
    /// Interned keys held.
    pub interned: usize,
    /// (index, term) positions held.
    pub positions: usize,
    /// First applications held.
    pub applied: usize,
    /// Committed entries held (of [`Replay::committed_count`]).
    pub committed: usize,
    /// Entries with holders short of a majority.
    pub holders: usize,
    /// Leaderships still checked against later commits.
    pub pending: usize,
    /// Entries of every node's log, summed.
    pub log_entries: usize,
}

/// Everything the Raft checks need, replayed once from a run record.
///
/// **Memory bounded by the horizon.** A run makes entries without end, so the replay forgets
/// the ones no check can need again. The horizon `H` is the lowest durable snapshot index of the
/// Raft servers, once every server's log holds one same entry `h` there, and every entry found
/// committed at an index up to `H` is an ancestor of `h` (the horizon only moves up). Why
/// nothing at or below `H` is needed again:
/// - A server changes its log only above its commit index (it asserts it), which is never below
///   its snapshot index, so never at or below `H`: no append, truncation or snapshot
///   installation there, so no new identity, (index, term) position, holder or commitment at or
///   below `H`. Every server's log keeps `h` at `H`.
/// - It applies only above its snapshot (after a restart, from the snapshot it restored), so no
///   application at or below `H`: the first applications there can go.
/// - A leader elected later holds `h`, hence (identities capture the prefix) every entry below
///   it, and so every committed entry at or below `H`: leader-completeness has nothing to find
///   there, and checks each leadership as it is elected against the committed entries above
///   `H`, and each entry committed later against the leaderships of later terms still open
///   (whose logs, identified by their last entry, are walked above `H`). A leadership of term
///   U is closed once every server's term is at least U: an entry of an earlier term then never
///   gains the holders it needs to become committed.
/// - An entry above `H` whose prefix left `h`'s chain below `H` (an entry no log holds any
///   more) is kept with its prefix from the branch point, and so is the entry of `h`'s chain at
///   that branch point, so that a later log-matching violation at its position still cites the
///   index where the two prefixes differ, and both entries there.
///
/// What goes: `h`'s ancestors below `H` (bar branch points), the positions and applications at
/// or below `H`, the committed entries at or below `H`. Counts keep the figures of the pass
/// summaries. A node that changes or applies its log at or below `H` anyway (impossible for
/// this Raft, whose logs and state machines never go below their own snapshot) is reported
/// as a violation, since the entries it replaced were snapshotted by every server.
#[derive(Debug)]
pub struct Replay {
    /// The entries held: every entry at or above the horizon, the prefixes of those that left
    /// the horizon's chain below it, and the chain's entries where they left it (branch
    /// points); `entries[&0]` is the empty log.
    pub entries: BTreeMap<EntryId, EntryInfo>,
    /// Distinct entries ever seen (the empty log aside); also the last identity given.
    pub entry_count: u64,
    interned: BTreeMap<(EntryId, u64, Option<CommandId>), EntryId>,
    /// The first and last distinct entry at each (index, term) at or above the horizon.
    by_position: BTreeMap<(u64, u64), Position>,
    /// Distinct (index, term) positions ever seen.
    pub position_count: u64,
    /// Every leadership, in order.
    pub elections: Vec<Election>,
    /// Leaderships (positions in `elections`) without a leader-completeness finding yet, whose
    /// term some server has not reached.
    pending: Vec<usize>,
    /// Entries committed by the majority rule above the horizon, in the order they became
    /// committed.
    pub committed: Vec<Committed>,
    /// Entries ever committed by the majority rule.
    pub committed_count: u64,
    /// The servers that appended each entry in its term, until it is committed.
    holders: BTreeMap<EntryId, Vec<NodeId>>,
    /// The first application of each index above the horizon.
    pub applied: BTreeMap<u64, Applied>,
    /// Indexes ever applied.
    pub applied_count: u64,
    /// The horizon: its index and the entry every server's log holds there (0, 0 at first).
    pub horizon: (u64, EntryId),
    /// Entries of the horizon's chain below it that were kept as branch points, by index.
    branch_points: BTreeMap<u64, EntryId>,
    /// Violations found on the way (by the check that reports them).
    pub findings: Vec<Finding>,
    /// Number of raft observations replayed.
    pub observations: usize,
}

/// The entry of a log at one index, for comparing prefixes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Slot {
    /// A held entry.
    Held(EntryId),
    /// The horizon chain's entry there, forgotten.
    Forgotten,
}

enum Step<'a> {
    Role(NodeRole, u64),
    Raft(&'a RaftObservation),
    Life(LifecycleKind),
}

/// The `role` and `raft` observations and the lifecycle records of a run, merged in their
/// global order (both lists are in `seq` order already), as (time, node, step).
fn steps(record: &RunRecord) -> impl Iterator<Item = (u64, NodeId, Step<'_>)> {
    let observations = record.observations.iter().filter_map(|o| {
        let step = if let Some(CommonObservation::Role { role, term }) = o.get() {
            Step::Role(*role, *term)
        } else {
            Step::Raft(o.get::<RaftObservation>()?)
        };
        Some((o.seq, o.t_ns, o.node, step))
    });
    let mut observations = observations.peekable();
    let mut lifecycle = record
        .lifecycle
        .iter()
        .map(|l| (l.seq, l.t_ns, l.node, Step::Life(l.kind)))
        .peekable();
    std::iter::from_fn(move || {
        let next = match (observations.peek(), lifecycle.peek()) {
            (Some(o), Some(l)) if l.0 < o.0 => lifecycle.next(),
            (Some(_), _) => observations.next(),
            (None, _) => lifecycle.next(),
        };
        next.map(|(_, t, node, step)| (t, node, step))
    })
}

/// A [`Replay`] being built, one step at a time: from a finished record ([`Replay::new`]) or
/// while the run goes ([`fold`]); the same steps in the same order give the same replay.
struct Replayer {
    replay: Replay,
    nodes: Vec<NodeState>,
    /// The Raft servers (the nodes of the roles running Raft).
    servers: Vec<NodeId>,
    /// Whether a node outside `servers` reported a log fact (then the horizon stays put).
    strangers: bool,
    /// A majority of the Raft cluster.
    majority: usize,
    /// Whether the horizon moves (always, but in tests comparing with a replay that keeps all).
    forget: bool,
    topology: Arc<Topology>,
}

impl Replayer {
    fn new(scenario: &Scenario, topology: Arc<Topology>) -> Replayer {
        // The majority is of the Raft cluster: the nodes of the roles running Raft (or a
        // protocol built on it), not every server of the scenario (a CP registry's cluster
        // also holds service instances, a lock scenario fenced storage).
        let mut servers: Vec<NodeId> = scenario
            .roles_running(crate::families::raft::PROTOCOL.name)
            .iter()
            .flat_map(|r| topology.groups.get(&r.name).into_iter().flatten().copied())
            .collect();
        servers.sort();
        servers.dedup();
        let mut entries = BTreeMap::new();
        entries.insert(
            0,
            EntryInfo {
                index: 0,
                entry: EntryRef { term: 0, cmd: None },
                parent: 0,
                first: Seen {
                    node: NodeId(0),
                    t_ns: 0,
                },
                committed: false,
                children: 0,
            },
        );
        let replay = Replay {
            entries,
            entry_count: 0,
            interned: BTreeMap::new(),
            by_position: BTreeMap::new(),
            position_count: 0,
            elections: Vec::new(),
            pending: Vec::new(),
            committed: Vec::new(),
            committed_count: 0,
            holders: BTreeMap::new(),
            applied: BTreeMap::new(),
            applied_count: 0,
            horizon: (0, 0),
            branch_points: BTreeMap::new(),
            findings: Vec::new(),
            observations: 0,
        };
        Replayer {
            replay,
            nodes: vec![NodeState::default(); topology.len()],
            majority: servers.len().max(1) / 2 + 1,
            servers,
            strangers: false,
            forget: true,
            topology,
        }
    }

    /// Replays one step of `node` at `t`.
    fn step(&mut self, t: u64, node: NodeId, step: Step<'_>) {
        let Replayer {
            replay: r,
            nodes,
            majority,
            topology,
            ..
        } = self;
        let seen = Seen { node, t_ns: t };
        let name = topology.name(node);
        let state = &mut nodes[node.index()];
        let mut snapshot = false;
        match step {
            Step::Role(role, term) => {
                state.term = state.term.max(term);
                if role == NodeRole::Leader {
                    state.leading = Some(term);
                    r.elect(state, seen, term, topology);
                } else {
                    state.leading = None;
                }
            }
            Step::Life(LifecycleKind::Crash) => state.leading = None,
            Step::Life(_) => {}
            Step::Raft(obs) => {
                r.observations += 1;
                match obs {
                    RaftObservation::HardState { term, .. } => state.term = state.term.max(*term),
                    RaftObservation::Append { index, entries } => {
                        for (i, e) in entries.iter().enumerate() {
                            r.append(state, seen, topology, index + i as u64, *e, *majority);
                        }
                    }
                    RaftObservation::Truncate { index, last } => {
                        if let Some(term) = state.leading {
                            r.findings.push(Finding {
                                check: leader_append_only::CHECK.name,
                                t_ns: t,
                                text: format!(
                                    "{name}, leader of term {term}, deleted entries {index}..={last} at {}",
                                    ms(t)
                                ),
                            });
                        }
                        if r.below_horizon(*index, log_matching::CHECK.name, seen, || {
                            format!("{name} deleted entries {index}..={last}")
                        }) {
                            state.log.clear();
                        } else {
                            state.log.truncate((*index - 1 - r.horizon.0) as usize);
                        }
                    }
                    RaftObservation::SnapshotInstalled {
                        index,
                        term,
                        leader,
                    } => {
                        if let Some(lt) = state.leading {
                            r.findings.push(Finding {
                                check: leader_append_only::CHECK.name,
                                t_ns: t,
                                text: format!(
                                    "{name}, leader of term {lt}, replaced its log with a snapshot from {} at {}",
                                    topology.name(*leader),
                                    ms(t)
                                ),
                            });
                        }
                        r.install(state, seen, name, *index, *term);
                        state.snapshot = *index;
                        snapshot = true;
                    }
                    RaftObservation::Restored { snapshot_index, .. } => {
                        state.applied = *snapshot_index;
                        state.snapshot = *snapshot_index;
                        snapshot = true;
                    }
                    RaftObservation::SnapshotTaken { index, .. } => {
                        state.snapshot = *index;
                        snapshot = true;
                    }
                    RaftObservation::Apply { index, entries } => {
                        for (i, e) in entries.iter().enumerate() {
                            r.apply(state, seen, name, topology, index + i as u64, *e);
                        }
                    }
                    RaftObservation::Commit { .. } => {}
                }
                if self.servers.binary_search(&node).is_err() {
                    self.strangers = true;
                }
            }
        }
        if snapshot && self.forget {
            self.advance();
        }
    }

    /// Moves the horizon up to the servers' lowest snapshot index, if every server's log holds
    /// one same entry there and every entry committed up to there is on its chain (see
    /// [`Replay`]); forgets what lies below.
    fn advance(&mut self) {
        let Replayer {
            replay: r,
            nodes,
            servers,
            ..
        } = self;
        let (old, _) = r.horizon;
        let Some(target) = servers.iter().map(|s| nodes[s.index()].snapshot).min() else {
            return;
        };
        if self.strangers || target <= old {
            return;
        }
        // The horizon chain, from a server's log: identities of indexes old + 1 ..= target.
        let first = &nodes[servers[0].index()].log;
        if ((first.len() as u64) < target - old)
            || servers.iter().any(|s| {
                let log = &nodes[s.index()].log;
                (log.len() as u64) < target - old
                    || log[(target - old - 1) as usize] != first[(target - old - 1) as usize]
            })
        {
            return;
        }
        let chain: Vec<EntryId> = first[..(target - old) as usize].to_vec();
        let on_chain =
            |c: &Committed| c.index > target || chain[(c.index - old - 1) as usize] == c.id;
        if !r.committed.iter().all(on_chain) {
            return;
        }
        // Branch points: entries of the chain whose parent has another child (kept, the new
        // horizon entry too, so that it stays when the horizon moves on).
        let mut parent = r.horizon.1;
        for (k, id) in (old + 1..=target).zip(chain.iter().copied()) {
            if r.entries[&parent].children > 1 {
                r.branch_points.insert(k, id);
            }
            parent = id;
        }
        // Entries off the chain below the new horizon that are in the prefix of an entry at or
        // above it (kept, to compare that entry's prefix with others).
        let on_chain: BTreeSet<EntryId> = std::iter::once(r.horizon.1)
            .chain(chain.iter().copied())
            .chain(r.branch_points.values().copied())
            .collect();
        let mut prefixes = BTreeSet::new();
        for e in r.entries.values().filter(|e| e.index == target) {
            let mut p = e.parent;
            while !on_chain.contains(&p) && r.entries.contains_key(&p) && prefixes.insert(p) {
                p = r.entries[&p].parent;
            }
        }
        // Forget every other entry below the new horizon.
        let forgotten: Vec<EntryId> = r
            .entries
            .iter()
            .filter(|(id, e)| {
                e.index < target
                    && **id != 0
                    && !prefixes.contains(*id)
                    && r.branch_points.get(&e.index) != Some(*id)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in forgotten {
            let info = r.entries.remove(&id).expect("listed");
            r.interned
                .remove(&(info.parent, info.entry.term, info.entry.cmd));
        }
        // Branch points below the horizon stay while an entry off the chain is held there.
        let off_chain: BTreeSet<u64> = prefixes.iter().map(|p| r.entries[p].index).collect();
        r.branch_points
            .retain(|k, _| *k >= target || off_chain.contains(k));
        r.horizon = (target, chain[chain.len() - 1]);
        r.by_position = r.by_position.split_off(&(target, 0));
        r.applied = r.applied.split_off(&(target + 1));
        r.committed.retain(|c| c.index > target);
        let entries = &r.entries;
        r.holders
            .retain(|id, _| entries.get(id).is_some_and(|e| e.index > target));
        for s in servers.iter() {
            nodes[s.index()].log.drain(..(target - old) as usize);
        }
        let min_term = servers.iter().map(|s| nodes[s.index()].term).min();
        let elections = &r.elections;
        r.pending
            .retain(|&e| min_term.is_none_or(|m| elections[e].term > m));
    }

    /// The bytes of what the replay holds, by the sizes of its keys and values (B-tree nodes
    /// and vectors add up to about as much again in slack).
    #[cfg(test)]
    fn payload_bytes(&self) -> usize {
        use std::mem::size_of;
        let r = &self.replay;
        let h = self.held();
        h.entries * (size_of::<EntryId>() + size_of::<EntryInfo>())
            + h.interned * (size_of::<(EntryId, u64, Option<CommandId>)>() + size_of::<EntryId>())
            + h.positions * (size_of::<(u64, u64)>() + size_of::<Position>())
            + h.applied * (size_of::<u64>() + size_of::<Applied>())
            + r.committed
                .iter()
                .map(|c| size_of::<Committed>() + c.holders.len() * size_of::<NodeId>())
                .sum::<usize>()
            + h.holders * (size_of::<EntryId>() + size_of::<Vec<NodeId>>())
            + h.log_entries * size_of::<EntryId>()
            + r.elections.len() * size_of::<Election>()
    }

    /// What the replay holds (with every node's log).
    #[cfg(test)]
    fn held(&self) -> Held {
        let r = &self.replay;
        Held {
            entries: r.entries.len(),
            interned: r.interned.len(),
            positions: r.by_position.len(),
            applied: r.applied.len(),
            committed: r.committed.len(),
            holders: r.holders.len(),
            pending: r.pending.len(),
            log_entries: self.nodes.iter().map(|n| n.log.len()).sum(),
        }
    }
}

/// Raft's [`Fold`]: the [`Replay`] built while the run goes, for a scenario where one of Raft's
/// safety checks runs. It consumes every `raft` observation, but `commit` ones when
/// `no-decision` runs (the family's `decisions` read them), so a long run's record does not
/// hold its logs' facts; `role` observations and lifecycle records are read and left in the
/// record.
pub fn fold(scenario: &Scenario, topology: &Arc<Topology>) -> Option<Box<dyn Fold>> {
    let checked = crate::families::raft::FAMILY
        .checks
        .iter()
        .any(|c| (c.applies_to)(scenario) && c.is_enabled_in(scenario));
    let keep_commits = crate::check::no_decision::CHECK.is_enabled_in(scenario);
    checked.then(|| {
        Box::new(ReplayFold {
            replayer: Replayer::new(scenario, topology.clone()),
            keep_commits,
        }) as Box<dyn Fold>
    })
}

struct ReplayFold {
    replayer: Replayer,
    /// Whether `commit` observations stay in the record (for `no-decision`).
    keep_commits: bool,
}

impl Fold for ReplayFold {
    fn observation(&mut self, o: &ObservationRecord) -> bool {
        if let Some(&CommonObservation::Role { role, term }) = o.get() {
            self.replayer.step(o.t_ns, o.node, Step::Role(role, term));
            return false;
        }
        let Some(obs) = o.get::<RaftObservation>() else {
            return false;
        };
        self.replayer.step(o.t_ns, o.node, Step::Raft(obs));
        !(self.keep_commits && matches!(obs, RaftObservation::Commit { .. }))
    }

    fn lifecycle(&mut self, l: &LifecycleRecord) {
        self.replayer.step(l.t_ns, l.node, Step::Life(l.kind));
    }

    fn finish(self: Box<Self>) -> (TypeId, Arc<dyn Any + Send + Sync>) {
        (TypeId::of::<Replay>(), Arc::new(self.replayer.replay))
    }
}

impl Replay {
    /// The replay of `record`, built once and shared by the checks that need it (see
    /// [`RunRecord::derived`]); in a simulated run it was built while the run went, by [`fold`].
    pub fn of(record: &RunRecord) -> std::sync::Arc<Replay> {
        record.derived(Replay::new)
    }

    /// Replays a run from its record.
    pub fn new(record: &RunRecord) -> Replay {
        let mut replayer = Replayer::new(&record.scenario, record.topology.clone());
        for (t, node, step) in steps(record) {
            replayer.step(t, node, step);
        }
        replayer.replay
    }

    /// The length of a server's log.
    fn len_of(&self, state: &NodeState) -> u64 {
        self.horizon.0 + state.log.len() as u64
    }

    /// The entry of a server's log at `index` (at or above the horizon; 0: the empty log).
    fn entry_of(&self, state: &NodeState, index: u64) -> Option<EntryId> {
        let (h, id) = self.horizon;
        match index.checked_sub(h + 1) {
            None if index == h => Some(id),
            None => None,
            Some(i) => state.log.get(i as usize).copied(),
        }
    }

    /// Whether `index` is at or below the horizon (and above 0); if so, reports `what` as a
    /// violation of `check`: the entries there were in every server's snapshot.
    fn below_horizon(
        &mut self,
        index: u64,
        check: &'static str,
        seen: Seen,
        what: impl FnOnce() -> String,
    ) -> bool {
        let h = self.horizon.0;
        if index == 0 || index > h {
            return false;
        }
        self.findings.push(Finding {
            check,
            t_ns: seen.t_ns,
            text: format!(
                "{} at {}, at or below index {h}, which every server had already snapshotted",
                what(),
                ms(seen.t_ns)
            ),
        });
        true
    }

    /// The entries of the log ending at `id`, from `id`'s index down to index 1 (a forgotten
    /// entry of the horizon chain as [`Slot::Forgotten`], or the branch point kept there).
    fn slots(&self, id: EntryId) -> impl Iterator<Item = Slot> + '_ {
        let mut cur = Some(id);
        let mut k = self.entries.get(&id).map_or(0, |e| e.index);
        std::iter::from_fn(move || {
            if k == 0 {
                return None;
            }
            let slot = match cur.and_then(|c| self.entries.get(&c).map(|e| (c, e))) {
                Some((c, e)) => {
                    cur = Some(e.parent);
                    Slot::Held(c)
                }
                None => {
                    cur = None;
                    self.branch_points
                        .get(&k)
                        .map_or(Slot::Forgotten, |&c| Slot::Held(c))
                }
            };
            k -= 1;
            Some(slot)
        })
    }

    /// The entry at `index` of the log ending at `id` (`None`: the log is shorter).
    fn ancestor(&self, id: EntryId, index: u64) -> Option<Slot> {
        let len = self.entries.get(&id).map_or(0, |e| e.index);
        let skip = len.checked_sub(index)?;
        self.slots(id).nth(skip as usize)
    }

    fn describe_slot(&self, slot: Slot, index: u64) -> String {
        match slot {
            Slot::Held(id) => self.describe(id),
            Slot::Forgotten => format!("entry {index} (forgotten below the horizon)"),
        }
    }

    fn intern(
        &mut self,
        parent: EntryId,
        index: u64,
        entry: EntryRef,
        seen: Seen,
        topology: &Topology,
    ) -> EntryId {
        let key = (parent, entry.term, entry.cmd);
        if let Some(&id) = self.interned.get(&key) {
            return id;
        }
        self.entry_count += 1;
        let id = self.entry_count as EntryId;
        self.entries.insert(
            id,
            EntryInfo {
                index,
                entry,
                parent,
                first: seen,
                committed: false,
                children: 0,
            },
        );
        if let Some(p) = self.entries.get_mut(&parent) {
            p.children += 1;
        }
        self.interned.insert(key, id);
        match self.by_position.entry((index, entry.term)) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(Position {
                    first: id,
                    last: id,
                });
                self.position_count += 1;
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let before = o.get().last;
                o.get_mut().last = id;
                self.diverged(before, id, topology);
            }
        }
        id
    }

    /// Reports two distinct entries `a` and `b` (in identity order) at one (index, term): who
    /// held each first, and the lowest index where their prefixes differ.
    fn diverged(&mut self, a: EntryId, b: EntryId, topology: &Topology) {
        let (ea, eb) = (&self.entries[&a], &self.entries[&b]);
        let (index, term) = (ea.index, ea.entry.term);
        let mut differ = (index, Slot::Held(a), Slot::Held(b));
        for (k, (x, y)) in (1..=index).rev().zip(self.slots(a).zip(self.slots(b))) {
            if x == y {
                break;
            }
            differ = (k, x, y);
        }
        let t = ea.first.t_ns.max(eb.first.t_ns);
        let text = format!(
            "index {index}, term {term}: {} held one version at {} and {} another at {}; they differ at index {}: {} vs {}",
            topology.name(ea.first.node),
            ms(ea.first.t_ns),
            topology.name(eb.first.node),
            ms(eb.first.t_ns),
            differ.0,
            self.describe_slot(differ.1, differ.0),
            self.describe_slot(differ.2, differ.0),
        );
        self.findings.push(Finding {
            check: log_matching::CHECK.name,
            t_ns: t,
            text,
        });
    }

    fn append(
        &mut self,
        state: &mut NodeState,
        seen: Seen,
        topology: &Topology,
        index: u64,
        entry: EntryRef,
        majority: usize,
    ) {
        let name = topology.name(seen.node);
        let len = self.len_of(state);
        if index > len + 1 {
            self.findings.push(Finding {
                check: log_matching::CHECK.name,
                t_ns: seen.t_ns,
                text: format!(
                    "{name} appended entry {index} at {} although its log ended at {len} (a gap)",
                    ms(seen.t_ns)
                ),
            });
            return;
        }
        if index <= len {
            if let Some(term) = state.leading {
                self.findings.push(Finding {
                    check: leader_append_only::CHECK.name,
                    t_ns: seen.t_ns,
                    text: format!(
                        "{name}, leader of term {term}, overwrote entry {index} at {}",
                        ms(seen.t_ns)
                    ),
                });
            }
            if self.below_horizon(index, log_matching::CHECK.name, seen, || {
                format!("{name} replaced entry {index}")
            }) {
                return;
            }
            state.log.truncate((index - 1 - self.horizon.0) as usize);
        }
        let parent = self
            .entry_of(state, index - 1)
            .expect("the log reaches index - 1");
        let id = self.intern(parent, index, entry, seen, topology);
        state.log.push(id);
        if state.term == entry.term && !self.entries[&id].committed {
            let holders = self.holders.entry(id).or_default();
            if !holders.contains(&seen.node) {
                holders.push(seen.node);
                if holders.len() == majority {
                    let holders = self.holders.remove(&id).expect("just filled");
                    self.entries.get_mut(&id).expect("held").committed = true;
                    self.committed_count += 1;
                    self.committed.push(Committed {
                        id,
                        index,
                        term: entry.term,
                        t_ns: seen.t_ns,
                        holders,
                    });
                    self.check_pending(topology);
                }
            }
        }
    }

    /// A leadership of `term` by the node of `state`: judged at once against every entry
    /// committed so far, and kept to judge against later ones if none was missing.
    fn elect(&mut self, state: &NodeState, seen: Seen, term: u64, topology: &Topology) {
        let len = self.len_of(state);
        let last = self.entry_of(state, len).expect("the log reaches its end");
        self.elections.push(Election {
            at: seen,
            term,
            last,
            len,
        });
        let e = self.elections.len() - 1;
        // Every committed entry at or below the horizon is on the horizon's chain, which this
        // log holds: only the entries above it can be missing.
        let missing = self.committed.iter().find_map(|c| {
            let has = self.entry_of(state, c.index);
            (c.term < term && has != Some(c.id)).then(|| (c, has.map(Slot::Held)))
        });
        match missing {
            Some((c, has)) => {
                let text = self.incomplete(e, c, has, topology);
                self.findings.push(text);
            }
            None => self.pending.push(e),
        }
    }

    /// Judges the last committed entry against the open leaderships of later terms.
    fn check_pending(&mut self, topology: &Topology) {
        let c = self.committed.last().expect("just committed");
        let mut found = Vec::new();
        let mut pending = std::mem::take(&mut self.pending);
        pending.retain(|&e| {
            let election = &self.elections[e];
            if election.term <= c.term {
                return true;
            }
            // A log that reaches c's index holds entries above the horizon there (c is), all
            // held.
            let has = if c.index > election.len {
                None
            } else {
                self.ancestor(election.last, c.index)
            };
            if has == Some(Slot::Held(c.id)) {
                return true;
            }
            found.push((e, has));
            false
        });
        self.pending = pending;
        for (e, has) in found {
            let finding = self.incomplete(e, self.committed.last().expect("held"), has, topology);
            self.findings.push(finding);
        }
    }

    /// The leader-completeness finding: leadership `e` lacks committed entry `c`, holding
    /// `has` at its index.
    fn incomplete(
        &self,
        e: usize,
        c: &Committed,
        has: Option<Slot>,
        topology: &Topology,
    ) -> Finding {
        let election = &self.elections[e];
        let what = match has {
            None => format!("its log ended at index {}", election.len),
            Some(other) => format!("it held {} instead", self.describe_slot(other, c.index)),
        };
        Finding {
            check: leader_completeness::CHECK.name,
            t_ns: election.at.t_ns,
            text: format!(
                "{} became leader of term {} at {} without {}, which is committed ({} appended it in term {}, the majority complete at {}); {what}",
                topology.name(election.at.node),
                election.term,
                ms(election.at.t_ns),
                self.describe(c.id),
                topology.names_of(&c.holders).join(", "),
                c.term,
                ms(c.t_ns),
            ),
        }
    }

    fn install(&mut self, state: &mut NodeState, seen: Seen, name: &str, index: u64, term: u64) {
        if index < self.horizon.0
            && self.below_horizon(index, log_matching::CHECK.name, seen, || {
                format!("{name} installed a snapshot ending at entry {index} (term {term})")
            })
        {
            state.applied = index;
            return;
        }
        let Some(&Position { first: id, .. }) = self.by_position.get(&(index, term)) else {
            self.findings.push(Finding {
                check: log_matching::CHECK.name,
                t_ns: seen.t_ns,
                text: format!(
                    "{name} installed a snapshot ending at entry {index} (term {term}) at {}, an entry no node ever appended",
                    ms(seen.t_ns)
                ),
            });
            return;
        };
        // The log ending at `id`, above the horizon; it must pass through the horizon entry.
        let h = self.horizon.0;
        let mut log: Vec<EntryId> = Vec::with_capacity((index - h) as usize);
        let mut slots = self.slots(id);
        for _ in h..index {
            match slots.next() {
                Some(Slot::Held(c)) => log.push(c),
                _ => break,
            }
        }
        let through = (h == 0 || slots.next() == Some(Slot::Held(self.horizon.1)))
            && log.len() as u64 == index - h;
        drop(slots);
        if !through {
            self.findings.push(Finding {
                check: log_matching::CHECK.name,
                t_ns: seen.t_ns,
                text: format!(
                    "{name} installed a snapshot ending at entry {index} (term {term}) at {}, whose log does not hold entry {h}, which every server had already snapshotted",
                    ms(seen.t_ns)
                ),
            });
        }
        log.reverse();
        if self.len_of(state) > index {
            log.extend_from_slice(&state.log[(index - h) as usize..]);
        }
        state.log = log;
        state.applied = index;
    }

    fn apply(
        &mut self,
        state: &mut NodeState,
        seen: Seen,
        name: &str,
        topology: &Topology,
        index: u64,
        entry: EntryRef,
    ) {
        if index != state.applied + 1 {
            self.findings.push(Finding {
                check: state_machine_safety::CHECK.name,
                t_ns: seen.t_ns,
                text: format!(
                    "{name} applied index {index} at {} right after index {} (applications must be in order, without gaps)",
                    ms(seen.t_ns),
                    state.applied
                ),
            });
        }
        state.applied = index;
        if self.below_horizon(index, state_machine_safety::CHECK.name, seen, || {
            format!("{name} applied {entry} at index {index}")
        }) {
            return;
        }
        match self.applied.get(&index) {
            None => {
                self.applied.insert(index, Applied { at: seen, entry });
                self.applied_count += 1;
            }
            Some(first) if first.entry != entry => {
                self.findings.push(Finding {
                    check: state_machine_safety::CHECK.name,
                    t_ns: seen.t_ns,
                    text: format!(
                        "{name} applied {entry} at index {index} at {}, but {} had applied {} there at {}",
                        ms(seen.t_ns),
                        topology.name(first.at.node),
                        first.entry,
                        ms(first.at.t_ns)
                    ),
                });
            }
            Some(_) => {}
        }
    }

    /// Describes an entry for evidence: `entry 7 = 5#3 (term 2)`.
    pub fn describe(&self, id: EntryId) -> String {
        let e = &self.entries[&id];
        format!("entry {} = {}", e.index, e.entry)
    }

    /// The findings of one check, in time order.
    pub fn findings_of(&self, check: &str) -> Vec<&Finding> {
        let mut f: Vec<&Finding> = self.findings.iter().filter(|f| f.check == check).collect();
        f.sort_by_key(|f| f.t_ns);
        f
    }

    /// The evidence texts of one check's findings, in time order.
    pub fn finding_texts(&self, check: &str) -> Vec<String> {
        self.findings_of(check)
            .into_iter()
            .map(|f| f.text.clone())
            .collect()
    }

    /// The evidence texts of one check's findings, sorted by time, then text.
    pub fn sorted_finding_texts(&self, check: &str) -> Vec<String> {
        let mut f: Vec<(u64, &String)> = self
            .findings
            .iter()
            .filter(|f| f.check == check)
            .map(|f| (f.t_ns, &f.text))
            .collect();
        f.sort();
        f.into_iter().map(|f| f.1.clone()).collect()
    }
}

/// Formats a check's findings as a result (fail with evidence, or pass with `pass_summary`).
pub fn verdict(
    name: &str,
    findings: Vec<String>,
    fail_summary: impl FnOnce(usize) -> String,
    pass_summary: String,
) -> crate::check::CheckResult {
    use crate::check::CheckResult;
    use crate::scenario::Verdict;
    if findings.is_empty() {
        CheckResult::new(name, Verdict::Pass, pass_summary)
    } else {
        let mut r = CheckResult::new(name, Verdict::Fail, fail_summary(findings.len()));
        r.evidence = findings.into_iter().take(10).collect();
        r
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::check::testing::{observe, record};
    use crate::families::raft::Observation as O;
    use crate::sim::RunRecord;

    /// Runs `path` under seed 1 with Raft's checks on (folded) and off (every observation
    /// kept).
    fn folded_and_kept(path: &str) -> (RunRecord, RunRecord) {
        let registry = crate::families::builtin();
        let path = std::path::Path::new(path);
        let scenario = Scenario::load_all_with(path, &registry).unwrap_or_else(|e| panic!("{e:?}"));
        let folded = crate::sim::run(&scenario, 1, &crate::sim::RunOptions::default());
        // The same run with Raft's checks off: no fold, every observation kept.
        let mut unchecked = scenario.clone();
        for c in crate::families::raft::FAMILY.checks {
            let mut off = toml::Table::new();
            off.insert("enabled".into(), false.into());
            unchecked.check.insert(c.name.to_string(), off);
        }
        let kept = crate::sim::run(&unchecked, 1, &crate::sim::RunOptions::default());
        assert_eq!(
            folded.trace_hash, kept.trace_hash,
            "the fold does not change the run"
        );
        assert_eq!(folded.lifecycle, kept.lifecycle);
        (folded, kept)
    }

    /// (raft facts but commits, commits) in a record.
    fn raft_facts(r: &RunRecord) -> (usize, usize) {
        let facts: Vec<&O> = r.observations.iter().filter_map(|o| o.get::<O>()).collect();
        let commits = facts
            .iter()
            .filter(|o| matches!(o, O::Commit { .. }))
            .count();
        (facts.len() - commits, commits)
    }

    #[test]
    fn the_replay_folded_during_a_run_is_the_replay_of_the_kept_observations() {
        let (folded, kept) = folded_and_kept("scenarios/raft/rolling-restarts.toml");
        let (kept_facts, kept_commits) = raft_facts(&kept);
        assert!(
            kept_facts > 1000 && kept_commits > 100,
            "{kept_facts} {kept_commits}"
        );
        assert_eq!(
            raft_facts(&folded),
            (0, 0),
            "without no-decision, the fold consumes every raft fact, commits too"
        );
        let from_fold = Replay::of(&folded);
        let from_record = Replay::new(&kept);
        assert!(from_record.elections.len() > 1 && from_record.committed_count > 100);
        assert!(
            from_record.horizon.0 > 1000,
            "the replay forgot the entries every server snapshotted: {:?}",
            from_record.horizon
        );
        assert_eq!(from_fold.observations, from_record.observations);
        assert_eq!(format!("{:?}", *from_fold), format!("{from_record:?}"));
        // A copy of the folded record keeps its replay (its log facts are gone from it too).
        assert!(std::sync::Arc::ptr_eq(
            &Replay::of(&folded.clone()),
            &from_fold
        ));
    }

    #[test]
    fn the_fold_keeps_the_commits_when_no_decision_runs() {
        let (folded, kept) = folded_and_kept("scenarios/raft/minority-does-not-decide.toml");
        let (_, kept_commits) = raft_facts(&kept);
        assert!(kept_commits > 10, "{kept_commits}");
        assert_eq!(raft_facts(&folded), (0, kept_commits));
        assert_eq!(
            crate::families::raft::decisions(&folded),
            crate::families::raft::decisions(&kept)
        );
        assert_eq!(
            format!("{:?}", *Replay::of(&folded)),
            format!("{:?}", Replay::new(&kept))
        );
    }

    /// Two replayers fed the same steps: one that forgets below the horizon, one that keeps
    /// everything (the replay as it was before it had a horizon).
    struct Twin {
        forgetting: Replayer,
        full: Replayer,
        t_ms: u64,
    }

    impl Twin {
        fn new(servers: u32) -> Twin {
            let rec = record(servers, 0, "");
            let mut full = Replayer::new(&rec.scenario, rec.topology.clone());
            full.forget = false;
            Twin {
                forgetting: Replayer::new(&rec.scenario, rec.topology.clone()),
                full,
                t_ms: 0,
            }
        }

        fn feed(&mut self, node: u32, step: impl Fn() -> Step<'static>) {
            self.t_ms += 1;
            for r in [&mut self.forgetting, &mut self.full] {
                r.step(self.t_ms * 1_000_000, NodeId(node), step());
            }
        }

        fn raft(&mut self, node: u32, o: O) {
            let o: &'static O = Box::leak(Box::new(o));
            self.feed(node, || Step::Raft(o));
        }

        fn role(&mut self, node: u32, role: NodeRole, term: u64) {
            self.feed(node, || Step::Role(role, term));
        }

        /// `nodes` append entries `from..=to` of `term` (command `base + index`) in batches of
        /// 10, then apply them (if `apply`), snapshotting at every 100th index.
        fn replicate(
            &mut self,
            nodes: &[u32],
            from: u64,
            to: u64,
            term: u64,
            base: u64,
            apply: bool,
        ) {
            let mut i = from;
            while i <= to {
                let last = (i + 9).min(to);
                let entries: Vec<EntryRef> = (i..=last).map(|k| e(term, base + k)).collect();
                for &n in nodes {
                    self.raft(
                        n,
                        O::Append {
                            index: i,
                            entries: entries.clone(),
                        },
                    );
                }
                if apply {
                    for &n in nodes {
                        self.raft(
                            n,
                            O::Apply {
                                index: i,
                                entries: entries.clone(),
                            },
                        );
                        if let Some(s) = (i..=last).rev().find(|k| k % 100 == 0) {
                            self.raft(n, O::SnapshotTaken { index: s, term });
                        }
                    }
                }
                i = last + 1;
            }
        }

        /// Every check's findings, sorted, from one replayer.
        fn findings(r: &Replayer) -> Vec<(u64, String)> {
            let mut f: Vec<(u64, String)> = r
                .replay
                .findings
                .iter()
                .map(|f| (f.t_ns, format!("{}: {}", f.check, f.text)))
                .collect();
            f.sort();
            f
        }

        /// The two replayers found the same, with the same figures.
        fn assert_same(&self) {
            let (a, b) = (&self.forgetting.replay, &self.full.replay);
            assert_eq!(Twin::findings(&self.forgetting), Twin::findings(&self.full));
            let figures = |r: &Replay| {
                (
                    r.entry_count,
                    r.position_count,
                    r.applied_count,
                    r.committed_count,
                    r.elections.len(),
                    r.observations,
                )
            };
            assert_eq!(figures(a), figures(b));
            assert_eq!(b.horizon, (0, 0), "the full replay never forgets");
        }
    }

    #[test]
    fn a_long_steady_run_holds_a_bounded_window() {
        let mut s = Twin::new(3);
        for n in 0..3 {
            s.role(n, NodeRole::Follower, 1);
        }
        s.role(0, NodeRole::Leader, 1);
        let mut most = Held::default();
        for round in 0..200 {
            let from = round * 250 + 1;
            s.replicate(&[0, 1, 2], from, from + 249, 1, 0, true);
            let held = s.forgetting.held();
            most = Held {
                entries: most.entries.max(held.entries),
                interned: most.interned.max(held.interned),
                positions: most.positions.max(held.positions),
                applied: most.applied.max(held.applied),
                committed: most.committed.max(held.committed),
                holders: most.holders.max(held.holders),
                pending: most.pending.max(held.pending),
                log_entries: most.log_entries.max(held.log_entries),
            };
        }
        let r = &s.forgetting.replay;
        assert_eq!(r.entry_count, 50_000);
        assert_eq!(r.committed_count, 50_000);
        assert_eq!(r.applied_count, 50_000);
        assert_eq!(r.horizon.0, 50_000);
        // At most the entries since the last snapshot (250 per round, snapshots every 100).
        assert!(most.entries <= 260, "{most:?}");
        assert!(most.interned <= 260 && most.positions <= 260, "{most:?}");
        assert!(most.applied <= 250 && most.committed <= 250, "{most:?}");
        assert!(
            most.log_entries <= 3 * 250 && most.holders <= 10,
            "{most:?}"
        );
        let full = s.full.held();
        assert!(
            full.entries > 50_000 && full.log_entries == 150_000,
            "{full:?}"
        );
        // The full replay holds about 280 bytes of keys and values per entry (with 3 servers'
        // logs); the forgetting one a window of a few hundred entries.
        let (kept, forgetting) = (s.full.payload_bytes(), s.forgetting.payload_bytes());
        eprintln!(
            "replay payload: {} bytes per entry kept whole, {forgetting} bytes in all forgetting",
            kept / 50_000
        );
        assert!(
            kept / 50_000 > 150 && forgetting < 100_000,
            "{kept} {forgetting}"
        );
        s.assert_same();
        let summary = |r: &Replay| {
            let rec = record(3, 0, "");
            [
                log_matching::judge(&rec, r).summary,
                leader_completeness::judge(&rec, r).summary,
                state_machine_safety::judge(r).summary,
            ]
        };
        assert_eq!(summary(&s.forgetting.replay), summary(&s.full.replay));
    }

    /// Three servers: n1 leads term 1 (entries 1..=4); n3 leads term 2 alone and appends a
    /// branch 5..=3000 of its own, never committed; n1 leads term 3 with n2 (5..=2650,
    /// committed, applied, snapshotted every 100); n3 drops its branch, catches up and
    /// snapshots at 2600: the horizon is at 2600.
    fn lost_branch() -> Twin {
        let mut s = Twin::new(3);
        for n in 0..3 {
            s.role(n, NodeRole::Follower, 1);
        }
        s.role(0, NodeRole::Leader, 1);
        s.replicate(&[0, 1, 2], 1, 4, 1, 0, true);
        s.role(2, NodeRole::Leader, 2);
        s.replicate(&[2], 5, 3000, 2, 100_000, false);
        s.role(1, NodeRole::Follower, 3);
        s.role(0, NodeRole::Leader, 3);
        s.replicate(&[0, 1], 5, 2650, 3, 0, true);
        s.role(2, NodeRole::Follower, 3);
        s.raft(
            2,
            O::Truncate {
                index: 5,
                last: 3000,
            },
        );
        s.replicate(&[2], 5, 2650, 3, 0, false);
        s.raft(
            2,
            O::Apply {
                index: 5,
                entries: (5..=2650).map(|k| e(3, k)).collect(),
            },
        );
        s.raft(
            2,
            O::SnapshotTaken {
                index: 2600,
                term: 3,
            },
        );
        assert_eq!(s.forgetting.replay.horizon.0, 2600);
        // Held: the empty log, the chain from the horizon (2600..=2650), the branch (its
        // entries above the horizon and their prefix down to index 5), and the chain's entry
        // at index 5, where the branch left it.
        assert_eq!(s.forgetting.held().entries, 1 + 51 + 2996 + 1);
        s.assert_same();
        assert!(s.full.replay.findings.is_empty());
        s
    }

    #[test]
    fn a_lost_branch_is_forgotten_once_the_horizon_passes_it() {
        let mut s = lost_branch();
        s.replicate(&[0, 1], 2651, 4000, 3, 0, true);
        s.replicate(&[2], 2651, 4000, 3, 0, true);
        assert_eq!(s.forgetting.replay.horizon.0, 4000);
        let held = s.forgetting.held();
        assert_eq!(
            (held.entries, held.positions, held.applied),
            (2, 1, 0),
            "{held:?}"
        );
        s.assert_same();
    }

    #[test]
    fn violations_above_the_horizon_are_found_as_without_one() {
        let mut s = lost_branch();
        // log-matching: n2 puts a term-2 entry at 2602, where n3's old branch (which left the
        // horizon's chain at index 5) had one.
        s.raft(
            1,
            O::Truncate {
                index: 2602,
                last: 2650,
            },
        );
        s.raft(
            1,
            O::Append {
                index: 2602,
                entries: vec![e(2, 777)],
            },
        );
        // state-machine-safety: n3 applies another entry at an index above the horizon.
        s.raft(
            2,
            O::Apply {
                index: 2645,
                entries: vec![e(3, 9)],
            },
        );
        // leader-completeness, later: n3 holds its own 2651 and leads term 4; then n1 and n2
        // commit another 2651 of term 3.
        s.raft(
            0,
            O::Append {
                index: 2651,
                entries: vec![e(3, 2651)],
            },
        );
        s.raft(
            2,
            O::Append {
                index: 2651,
                entries: vec![e(3, 999)],
            },
        );
        s.role(2, NodeRole::Leader, 4);
        s.raft(
            1,
            O::Truncate {
                index: 2602,
                last: 2602,
            },
        );
        s.replicate(&[1], 2602, 2651, 3, 0, false);
        // leader-completeness, at once: n2 drops committed entries and leads term 5.
        s.raft(
            1,
            O::Truncate {
                index: 2640,
                last: 2651,
            },
        );
        s.role(1, NodeRole::Leader, 5);
        s.assert_same();
        let texts = Twin::findings(&s.forgetting);
        let has = |needle: &str| {
            assert!(
                texts.iter().any(|t| t.1.contains(needle)),
                "{needle}: {texts:#?}"
            )
        };
        has("log-matching: index 2602, term 2: n3 held one version");
        has("they differ at index 5: entry 5 = 9#100005 (term 2) vs entry 5 = 9#5 (term 3)");
        has("state-machine-safety: n3 applied 9#9 (term 3) at index 2645");
        has("n3 became leader of term 4 at ");
        has("it held entry 2651 = 9#999 (term 3) instead");
        has("n2 became leader of term 5");
        has("its log ended at index 2639");
        // A log change below the horizon, which a Raft server never makes (its log only
        // changes above its commit index): the forgetting replay says so.
        s.raft(
            0,
            O::Truncate {
                index: 7,
                last: 2651,
            },
        );
        let texts = Twin::findings(&s.forgetting);
        assert!(
            texts
                .last()
                .unwrap()
                .1
                .contains("n1 deleted entries 7..=2651 at ")
                && texts.last().unwrap().1.ends_with(
                    ", at or below index 2600, which every server had already snapshotted"
                ),
            "{texts:#?}"
        );
    }

    /// An entry reference of `term` for client command `request` (0: the no-op).
    pub fn e(term: u64, request: u64) -> EntryRef {
        EntryRef {
            term,
            cmd: (request > 0).then_some(CommandId {
                client: NodeId(9),
                request,
            }),
        }
    }

    /// Node `node` becomes `role` in `term` at `t` ms.
    pub fn role(rec: &mut RunRecord, t: u64, node: u32, role: &str, term: u64) {
        observe(
            rec,
            t,
            node,
            CommonObservation::Role {
                role: match role {
                    "leader" => NodeRole::Leader,
                    "candidate" => NodeRole::Candidate,
                    _ => NodeRole::Follower,
                },
                term,
            },
        );
    }

    /// Node `node` appends `entries` from `index` at `t` ms.
    pub fn append(rec: &mut RunRecord, t: u64, node: u32, index: u64, entries: &[EntryRef]) {
        observe(
            rec,
            t,
            node,
            O::Append {
                index,
                entries: entries.to_vec(),
            },
        );
    }

    #[test]
    fn identities_capture_the_whole_prefix_and_majorities_in_term_commit() {
        let mut rec = record(3, 0, "");
        for n in 0..3 {
            role(&mut rec, 1, n, "follower", 1);
        }
        role(&mut rec, 2, 0, "leader", 1);
        append(&mut rec, 3, 0, 1, &[e(1, 0), e(1, 1)]);
        append(&mut rec, 4, 1, 1, &[e(1, 0)]);
        let r = Replay::new(&rec);
        assert_eq!(
            r.committed.len(),
            1,
            "two of three hold entry 1, one holds entry 2"
        );
        let mut rec2 = rec.clone();
        append(&mut rec2, 5, 1, 2, &[e(1, 1)]);
        let r = Replay::new(&rec2);
        assert_eq!(r.committed.len(), 2);
        assert_eq!(r.committed[1].holders, vec![NodeId(0), NodeId(1)]);
        assert_eq!(r.committed[1].index, 2);
        // An old-term entry held by a majority in a later term is not committed (Figure 8).
        let mut rec3 = record(3, 0, "");
        role(&mut rec3, 1, 0, "leader", 2);
        append(&mut rec3, 2, 0, 1, &[e(1, 5)]);
        role(&mut rec3, 3, 1, "follower", 2);
        append(&mut rec3, 4, 1, 1, &[e(1, 5)]);
        assert!(Replay::new(&rec3).committed.is_empty());
    }
}
