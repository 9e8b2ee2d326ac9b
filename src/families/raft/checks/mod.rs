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

pub mod election_safety;
pub mod leader_append_only;
pub mod leader_completeness;
pub mod log_matching;
pub mod state_machine_safety;

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
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
    /// The entry before it.
    pub parent: EntryId,
    /// The first node that appended it, and when.
    pub first: Seen,
}

/// A node's leadership: elected in `term` at `at`, with this log.
#[derive(Clone, Debug)]
pub struct Election {
    /// The new leader and when it announced it.
    pub at: Seen,
    /// Its term.
    pub term: u64,
    /// Its log at that moment (entry identities, index 1 first).
    pub log: Vec<EntryId>,
}

/// An entry found committed by the majority rule.
#[derive(Clone, Debug)]
pub struct Committed {
    /// The entry.
    pub id: EntryId,
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
    log: Vec<EntryId>,
    term: u64,
    leading: Option<u64>,
    applied: u64,
}

/// Everything the Raft checks need, replayed once from a run record.
#[derive(Debug, Default)]
pub struct Replay {
    /// Every distinct entry; `entries[0]` is the empty log.
    pub entries: Vec<EntryInfo>,
    interned: BTreeMap<(EntryId, u64, Option<CommandId>), EntryId>,
    /// The first distinct entry seen at each (index, term): under correct Raft the only one.
    pub by_position: BTreeMap<(u64, u64), EntryId>,
    /// Every distinct entry, in identity order, at each (index, term) that saw more than one
    /// (a log-matching violation); kept apart so a long run holds one identity per position.
    pub diverging: BTreeMap<(u64, u64), Vec<EntryId>>,
    /// Every leadership, in order.
    pub elections: Vec<Election>,
    /// Entries committed by the majority rule, in the order they became committed.
    pub committed: Vec<Committed>,
    /// The servers that appended each entry in its term, until it is committed.
    holders: BTreeMap<EntryId, Vec<NodeId>>,
    /// Whether each entry (by identity) is committed by the majority rule.
    is_committed: Vec<bool>,
    /// The first application of each index.
    pub applied: BTreeMap<u64, Applied>,
    /// Violations found on the way (by the check that reports them).
    pub findings: Vec<Finding>,
    /// Number of raft observations replayed.
    pub observations: usize,
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
    /// A majority of the Raft cluster.
    majority: usize,
    topology: Arc<Topology>,
}

impl Replayer {
    fn new(scenario: &Scenario, topology: Arc<Topology>) -> Replayer {
        // The majority is of the Raft cluster: the nodes of the roles running Raft (or a
        // protocol built on it), not every server of the scenario (a CP registry's cluster
        // also holds service instances, a lock scenario fenced storage).
        let servers: usize = scenario
            .roles_running(crate::families::raft::PROTOCOL.name)
            .iter()
            .map(|r| topology.groups.get(&r.name).map_or(0, Vec::len))
            .sum();
        let mut replay = Replay::default();
        replay.is_committed.push(false);
        replay.entries.push(EntryInfo {
            index: 0,
            entry: EntryRef { term: 0, cmd: None },
            parent: 0,
            first: Seen {
                node: NodeId(0),
                t_ns: 0,
            },
        });
        Replayer {
            replay,
            nodes: vec![NodeState::default(); topology.len()],
            majority: servers.max(1) / 2 + 1,
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
        } = self;
        let seen = Seen { node, t_ns: t };
        let name = topology.name(node);
        let state = &mut nodes[node.index()];
        match step {
            Step::Role(role, term) => {
                state.term = state.term.max(term);
                if role == NodeRole::Leader {
                    state.leading = Some(term);
                    r.elections.push(Election {
                        at: seen,
                        term,
                        log: state.log.clone(),
                    });
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
                            r.append(state, seen, name, index + i as u64, *e, *majority);
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
                        state.log.truncate((*index).saturating_sub(1) as usize);
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
                    }
                    RaftObservation::Restored { snapshot_index, .. } => {
                        state.applied = *snapshot_index;
                    }
                    RaftObservation::Apply { index, entries } => {
                        for (i, e) in entries.iter().enumerate() {
                            r.apply(state, seen, name, topology, index + i as u64, *e);
                        }
                    }
                    RaftObservation::Commit { .. } | RaftObservation::SnapshotTaken { .. } => {}
                }
            }
        }
    }
}

/// Raft's [`Fold`]: the [`Replay`] built while the run goes, for a scenario where one of Raft's
/// safety checks runs. It consumes every `raft` observation except `commit` (which the family's
/// `decisions` read for `no-decision`), so a long run's record does not hold its logs' facts;
/// `role` observations and lifecycle records are read and left in the record.
pub fn fold(scenario: &Scenario, topology: &Arc<Topology>) -> Option<Box<dyn Fold>> {
    let checked = crate::families::raft::FAMILY
        .checks
        .iter()
        .any(|c| (c.applies_to)(scenario) && c.is_enabled_in(scenario));
    checked
        .then(|| Box::new(ReplayFold(Replayer::new(scenario, topology.clone()))) as Box<dyn Fold>)
}

struct ReplayFold(Replayer);

impl Fold for ReplayFold {
    fn observation(&mut self, o: &ObservationRecord) -> bool {
        if let Some(&CommonObservation::Role { role, term }) = o.get() {
            self.0.step(o.t_ns, o.node, Step::Role(role, term));
            return false;
        }
        let Some(obs) = o.get::<RaftObservation>() else {
            return false;
        };
        self.0.step(o.t_ns, o.node, Step::Raft(obs));
        !matches!(obs, RaftObservation::Commit { .. })
    }

    fn lifecycle(&mut self, l: &LifecycleRecord) {
        self.0.step(l.t_ns, l.node, Step::Life(l.kind));
    }

    fn finish(self: Box<Self>) -> (TypeId, Arc<dyn Any + Send + Sync>) {
        (TypeId::of::<Replay>(), Arc::new(self.0.replay))
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

    fn intern(&mut self, parent: EntryId, index: u64, entry: EntryRef, seen: Seen) -> EntryId {
        let key = (parent, entry.term, entry.cmd);
        if let Some(&id) = self.interned.get(&key) {
            return id;
        }
        let id = self.entries.len() as EntryId;
        self.entries.push(EntryInfo {
            index,
            entry,
            parent,
            first: seen,
        });
        self.interned.insert(key, id);
        self.is_committed.push(false);
        match self.by_position.entry((index, entry.term)) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(id);
            }
            std::collections::btree_map::Entry::Occupied(first) => {
                let versions = self.diverging.entry(*first.key()).or_default();
                if versions.is_empty() {
                    versions.push(*first.get());
                }
                versions.push(id);
            }
        }
        id
    }

    fn append(
        &mut self,
        state: &mut NodeState,
        seen: Seen,
        name: &str,
        index: u64,
        entry: EntryRef,
        majority: usize,
    ) {
        let len = state.log.len() as u64;
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
            state.log.truncate((index - 1) as usize);
        }
        let parent = state.log.last().copied().unwrap_or(0);
        let id = self.intern(parent, index, entry, seen);
        state.log.push(id);
        if state.term == entry.term && !self.is_committed[id as usize] {
            let holders = self.holders.entry(id).or_default();
            if !holders.contains(&seen.node) {
                holders.push(seen.node);
                if holders.len() == majority {
                    let holders = self.holders.remove(&id).expect("just filled");
                    self.is_committed[id as usize] = true;
                    self.committed.push(Committed {
                        id,
                        t_ns: seen.t_ns,
                        holders,
                    });
                }
            }
        }
    }

    fn install(&mut self, state: &mut NodeState, seen: Seen, name: &str, index: u64, term: u64) {
        let Some(&id) = self.by_position.get(&(index, term)) else {
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
        let mut log = self.chain(id);
        if state.log.len() as u64 > index {
            log.extend_from_slice(&state.log[index as usize..]);
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
        match self.applied.get(&index) {
            None => {
                self.applied.insert(index, Applied { at: seen, entry });
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

    /// The log that ends with entry `id`: identities of indexes 1..=index.
    pub fn chain(&self, id: EntryId) -> Vec<EntryId> {
        let mut out = Vec::with_capacity(self.entries[id as usize].index as usize);
        let mut cur = id;
        while cur != 0 {
            out.push(cur);
            cur = self.entries[cur as usize].parent;
        }
        out.reverse();
        out
    }

    /// Describes an entry for evidence: `entry 7 = 5#3 (term 2)`.
    pub fn describe(&self, id: EntryId) -> String {
        let e = &self.entries[id as usize];
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

    #[test]
    fn the_replay_folded_during_a_run_is_the_replay_of_the_kept_observations() {
        let registry = crate::families::builtin();
        let path = std::path::Path::new("scenarios/raft/rolling-restarts.toml");
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
        let raft_facts = |r: &RunRecord| -> (usize, usize) {
            let facts: Vec<&O> = r.observations.iter().filter_map(|o| o.get::<O>()).collect();
            let commits = facts
                .iter()
                .filter(|o| matches!(o, O::Commit { .. }))
                .count();
            (facts.len() - commits, commits)
        };
        let (kept_facts, kept_commits) = raft_facts(&kept);
        assert!(
            kept_facts > 1000 && kept_commits > 100,
            "{kept_facts} {kept_commits}"
        );
        assert_eq!(
            raft_facts(&folded),
            (0, kept_commits),
            "the fold consumes every raft fact but the commits"
        );
        let from_fold = Replay::of(&folded);
        let from_record = Replay::new(&kept);
        assert!(from_record.elections.len() > 1 && from_record.committed.len() > 100);
        assert_eq!(from_fold.observations, from_record.observations);
        assert_eq!(format!("{:?}", *from_fold), format!("{from_record:?}"));
        // A copy of the folded record keeps its replay (its log facts are gone from it too).
        assert!(std::sync::Arc::ptr_eq(
            &Replay::of(&folded.clone()),
            &from_fold
        ));
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
        assert_eq!(r.chain(r.committed[1].id).len(), 2);
        // An old-term entry held by a majority in a later term is not committed (Figure 8).
        let mut rec3 = record(3, 0, "");
        role(&mut rec3, 1, 0, "leader", 2);
        append(&mut rec3, 2, 0, 1, &[e(1, 5)]);
        role(&mut rec3, 3, 1, "follower", 2);
        append(&mut rec3, 4, 1, 1, &[e(1, 5)]);
        assert!(Replay::new(&rec3).committed.is_empty());
    }
}
