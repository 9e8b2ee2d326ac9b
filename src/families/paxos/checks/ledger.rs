//! The [`Ledger`]: what the Paxos checks read of a run, one [`Instance`] per instance or slot,
//! built once and shared by the checks. In a simulated run it is built while the run goes, by
//! [`fold`], which consumes the `paxos` observations it summarizes, so that a long run's record
//! does not hold one observation per acceptance, proposal, learn and application.
//!
//! **Memory.** An instance holds every distinct proposal accepted in it (with every acceptor
//! and the time of its first acceptance), the distinct values proposed and learned there (each
//! learned value with its first learn), and its first application: what the checks' evidence
//! may cite, whatever comes later. That is a summary per instance, not per observation: a
//! Multi-Paxos slot is about eleven observations (five `accepted`, one `proposed`, five
//! `applied`) and one [`Instance`]. Instances more than [`WINDOW`] below the highest one seen
//! are held packed (a compact byte encoding, see [`Packed`]), and unpacked again if a late
//! observation touches one, so packing loses nothing. The ledger still grows with the number
//! of instances, by tens of bytes each once packed.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::families::paxos::checks::{Choice, decision};
use crate::families::paxos::{self, Ballot, Observation, ValueName};
use crate::process::NodeId;
use crate::scenario::Scenario;
use crate::scenario::topology::Topology;
use crate::sim::{Fold, LifecycleKind, LifecycleRecord, ObservationRecord, RunRecord};

/// Instances this far below the highest instance seen are held packed.
pub const WINDOW: u64 = 1024;

/// Most `applied-prefix` problems kept for the evidence (the rest are counted).
pub const MAX_PROBLEMS: usize = 10;

/// One proposal (ballot, value) that at least one acceptor accepted in an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    /// Its ballot.
    pub ballot: Ballot,
    /// Its value.
    pub value: ValueName,
    /// Every acceptor that accepted it, with the time (global ns) of its first acceptance,
    /// ordered by node.
    pub acceptors: Vec<(NodeId, u64)>,
    /// If a majority of acceptors accepted it: when the acceptance that completed the majority
    /// was observed (global ns), and how many proposals of the instance were chosen before it.
    pub chosen: Option<(u64, u32)>,
}

/// A value learned (or applied) by a node at a time (global ns).
#[derive(Clone, Debug, PartialEq)]
pub struct Learn {
    /// The value.
    pub value: ValueName,
    /// When.
    pub t_ns: u64,
    /// By whom.
    pub node: NodeId,
}

/// What the checks need of one instance (single-decree) or slot (Multi-Paxos).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Instance {
    /// Every proposal an acceptor accepted, in the order of their first acceptance.
    pub proposals: Vec<Proposal>,
    /// How many of them were chosen.
    pub chosen: u32,
    /// The distinct values proposers introduced (`proposed`), in the order first proposed.
    pub proposed: Vec<ValueName>,
    /// The first learn of each distinct value learned (`learned`, and `applied`, which stands
    /// for learning in Multi-Paxos), in the order of those first learns.
    pub learned: Vec<Learn>,
    /// Each node's first learn, in order (kept only when `decision` runs, which reads it).
    pub learners: Vec<(NodeId, u64)>,
    /// The first application of the slot (Multi-Paxos).
    pub applied: Option<Learn>,
}

impl Instance {
    /// The chosen proposals of instance `instance`, in the order they became chosen.
    pub fn choices(&self, instance: u64) -> Vec<Choice> {
        let mut chosen: Vec<(u32, Choice)> = self
            .proposals
            .iter()
            .filter_map(|p| {
                let (t, rank) = p.chosen?;
                Some((
                    rank,
                    Choice {
                        instance,
                        ballot: p.ballot,
                        value: p.value.clone(),
                        chosen_ns: t,
                        acceptors: p.acceptors.clone(),
                    },
                ))
            })
            .collect();
        chosen.sort_by_key(|c| c.0);
        chosen.into_iter().map(|c| c.1).collect()
    }

    /// Whether a value was chosen here.
    pub fn is_chosen(&self) -> bool {
        self.chosen > 0
    }
}

/// An `applied-prefix` violation, in the order found.
#[derive(Clone, Debug, PartialEq)]
pub enum AppliedProblem {
    /// `node` applied `slot` at `t_ns` when its next slot was `expected`.
    OutOfOrder {
        /// The replica.
        node: NodeId,
        /// The slot it applied.
        slot: u64,
        /// When.
        t_ns: u64,
        /// The slot it should have applied.
        expected: u64,
    },
    /// `node` applied `value` at `slot` where `first` had applied `first_value` before.
    Differs {
        /// The slot.
        slot: u64,
        /// The replica, what it applied and when.
        applied: Learn,
        /// The first application of the slot.
        first: Learn,
    },
}

/// The replay of the replicas' applications (`applied` observations and crashes, in order) that
/// `applied-prefix` judges.
#[derive(Clone, Debug, Default)]
pub struct Replicas {
    /// Each replica's next slot to apply (1 after a crash, the slot after a snapshot
    /// installed).
    next: BTreeMap<NodeId, u64>,
    /// The highest slot each replica applied.
    pub longest: BTreeMap<NodeId, u64>,
    /// Applications in all.
    pub applications: u64,
    /// Distinct slots applied.
    pub slots: u64,
    /// The first [`MAX_PROBLEMS`] problems found.
    pub problems: Vec<AppliedProblem>,
    /// Problems found in all.
    pub problem_count: usize,
}

impl Replicas {
    fn problem(&mut self, p: AppliedProblem) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(p);
        }
    }
}

/// Everything the Paxos checks need of a run (see the module documentation).
#[derive(Clone, Debug)]
pub struct Ledger {
    /// The instances below `live_from` that were seen, packed.
    packed: BTreeMap<u64, Box<[u8]>>,
    /// The instances from `live_from` to the highest one seen, unpacked: `live[i]` is instance
    /// `live_from + i` (`None`: not seen). At most `window + 1` long, and indexed, not searched:
    /// nearly every observation lands here.
    live: VecDeque<Option<Box<Instance>>>,
    /// The first instance held unpacked: the highest instance seen minus `window` (0 before
    /// that).
    live_from: u64,
    /// How far below the highest instance instances are packed ([`WINDOW`]).
    window: u64,
    /// The replicas' applications.
    pub replicas: Replicas,
    acceptors: Vec<NodeId>,
    rules: Rules,
}

/// How the ledger counts, fixed for a run.
#[derive(Copy, Clone, Debug)]
struct Rules {
    /// The acceptors (distinct).
    acceptors: usize,
    /// How many acceptors choose a proposal.
    majority: usize,
    /// Whether [`Instance::learners`] is kept.
    track_learners: bool,
}

impl Ledger {
    /// An empty ledger for a run of `scenario`.
    pub fn empty(scenario: &Scenario, topology: &Topology) -> Ledger {
        let mut acceptors = paxos::acceptors(scenario, topology);
        let majority = acceptors.len() / 2 + 1;
        acceptors.sort();
        acceptors.dedup();
        let decision = &decision::CHECK;
        let rules = Rules {
            acceptors: acceptors.len(),
            majority,
            track_learners: (decision.applies_to)(scenario) && decision.is_enabled_in(scenario),
        };
        Ledger {
            packed: BTreeMap::new(),
            live: VecDeque::new(),
            live_from: 0,
            window: WINDOW,
            replicas: Replicas::default(),
            acceptors,
            rules,
        }
    }

    /// The ledger of `record`, built once and shared by the checks (see
    /// [`RunRecord::derived`]); in a simulated run it was built while the run went, by [`fold`].
    pub fn of(record: &RunRecord) -> Arc<Ledger> {
        record.derived(Ledger::new)
    }

    /// Builds the ledger from a run record's observations and crashes, in their global order.
    pub fn new(record: &RunRecord) -> Ledger {
        Ledger::packing(record, WINDOW)
    }

    /// Builds the ledger from a run record, packing the instances more than `window` below the
    /// highest one seen (for tests: the window changes what is packed, never what is found).
    fn packing(record: &RunRecord, window: u64) -> Ledger {
        let mut ledger = Ledger::empty(&record.scenario, &record.topology);
        ledger.window = window;
        let mut crashes = record
            .lifecycle
            .iter()
            .filter(|l| l.kind == LifecycleKind::Crash)
            .peekable();
        for o in record.observations.iter() {
            while let Some(l) = crashes.next_if(|l| l.seq < o.seq) {
                ledger.crash(l.node);
            }
            if let Some(obs) = o.get::<Observation>() {
                ledger.observe(o.t_ns, o.node, obs);
            }
        }
        for l in crashes {
            ledger.crash(l.node);
        }
        ledger
    }

    /// Every instance seen, in order (packed ones unpacked one at a time).
    pub fn instances(&self) -> impl Iterator<Item = (u64, Cow<'_, Instance>)> + '_ {
        let packed = self.packed.iter().map(|(&i, b)| (i, Cow::Owned(unpack(b))));
        let live = self.live.iter().zip(self.live_from..);
        let live = live.filter_map(|(inst, i)| Some((i, Cow::Borrowed(&**inst.as_ref()?))));
        packed.chain(live)
    }

    /// Instances seen (by any observation the ledger reads).
    pub fn len(&self) -> usize {
        self.packed.len() + self.live()
    }

    /// Whether no instance was seen.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many instances are held unpacked.
    pub fn live(&self) -> usize {
        self.live.iter().flatten().count()
    }

    /// Makes room for `instance` among the live ones if it is above them, packing those that
    /// fall more than `window` below it.
    fn reach(&mut self, instance: u64) {
        let top = self.live_from + self.live.len() as u64; // one past the highest live
        if instance < top && !self.live.is_empty() {
            return;
        }
        // The window only moves up: `from` is at least `live_from`.
        let from = instance.saturating_sub(self.window);
        let fallen = ((from - self.live_from) as usize).min(self.live.len());
        for (inst, i) in self.live.drain(..fallen).zip(self.live_from..) {
            if let Some(inst) = inst {
                self.packed.insert(i, pack(&inst));
            }
        }
        self.live_from = from;
        self.live
            .resize_with((instance - from + 1) as usize, || None);
    }

    /// A replica crashed: it applies again from slot 1.
    fn crash(&mut self, node: NodeId) {
        self.replicas.next.insert(node, 1);
    }

    /// Reads one `paxos` observation of `node` at `t` (global ns).
    fn observe(&mut self, t: u64, node: NodeId, obs: &Observation) {
        let instance = match obs {
            Observation::Accepted { instance, .. } => {
                if self.acceptors.binary_search(&node).is_err() {
                    return;
                }
                *instance
            }
            Observation::Proposed { instance, .. } | Observation::Learned { instance, .. } => {
                *instance
            }
            Observation::Applied { slot, .. } => *slot,
            Observation::SnapshotInstalled { slot } => {
                // Applied through `slot` by the snapshot: it applies `slot + 1` next.
                let r = &mut self.replicas;
                r.next.insert(node, slot + 1);
                let l = r.longest.entry(node).or_default();
                *l = (*l).max(*slot);
                return;
            }
            Observation::Promise { .. }
            | Observation::PromiseFrom { .. }
            | Observation::SnapshotTaken { .. } => return,
        };
        self.reach(instance);
        if instance >= self.live_from {
            let live = &mut self.live[(instance - self.live_from) as usize];
            let inst = live.get_or_insert_with(Box::default);
            record(inst, t, node, obs, self.rules, &mut self.replicas);
        } else {
            // A late observation of a packed instance: unpacked, updated and packed again.
            let packed = self.packed.get(&instance);
            let mut inst = packed.map(|b| unpack(b)).unwrap_or_default();
            record(&mut inst, t, node, obs, self.rules, &mut self.replicas);
            self.packed.insert(instance, pack(&inst));
        }
    }
}

/// Records `obs`, an observation of `node` at `t` about `inst`, in `inst` and `r`.
fn record(
    inst: &mut Instance,
    t: u64,
    node: NodeId,
    obs: &Observation,
    rules: Rules,
    r: &mut Replicas,
) {
    match obs {
        Observation::Accepted { ballot, value, .. } => {
            let i = match inst
                .proposals
                .iter()
                .position(|p| p.ballot == *ballot && p.value == *value)
            {
                Some(i) => i,
                None => {
                    inst.proposals.push(Proposal {
                        ballot: *ballot,
                        value: value.clone(),
                        acceptors: Vec::with_capacity(rules.acceptors),
                        chosen: None,
                    });
                    inst.proposals.len() - 1
                }
            };
            let p = &mut inst.proposals[i];
            if let Err(k) = p.acceptors.binary_search_by_key(&node, |a| a.0) {
                p.acceptors.insert(k, (node, t));
                if p.acceptors.len() == rules.majority {
                    p.chosen = Some((t, inst.chosen));
                    inst.chosen += 1;
                }
            }
        }
        Observation::Proposed { value, .. } => {
            if !inst.proposed.contains(value) {
                inst.proposed.push(value.clone());
            }
        }
        Observation::Learned { value, .. } => {
            learn(inst, rules.track_learners, value, t, node);
        }
        Observation::Applied { slot, value } => {
            learn(inst, rules.track_learners, value, t, node);
            let slot = *slot;
            r.applications += 1;
            let expected = *r.next.get(&node).unwrap_or(&1);
            if slot != expected {
                r.problem(AppliedProblem::OutOfOrder {
                    node,
                    slot,
                    t_ns: t,
                    expected,
                });
            }
            r.next.insert(node, slot + 1);
            let l = r.longest.entry(node).or_default();
            *l = (*l).max(slot);
            let applied = Learn {
                value: value.clone(),
                t_ns: t,
                node,
            };
            match &inst.applied {
                None => {
                    inst.applied = Some(applied);
                    r.slots += 1;
                }
                Some(first) if first.value != *value => {
                    let first = first.clone();
                    r.problem(AppliedProblem::Differs {
                        slot,
                        applied,
                        first,
                    });
                }
                Some(_) => {}
            }
        }
        Observation::Promise { .. }
        | Observation::PromiseFrom { .. }
        | Observation::SnapshotTaken { .. }
        | Observation::SnapshotInstalled { .. } => {}
    }
}

/// Records a learn of `value` by `node` at `t` in `inst`.
fn learn(inst: &mut Instance, track_learners: bool, value: &ValueName, t: u64, node: NodeId) {
    if !inst.learned.iter().any(|l| l.value == *value) {
        inst.learned.push(Learn {
            value: value.clone(),
            t_ns: t,
            node,
        });
    }
    if track_learners && !inst.learners.iter().any(|l| l.0 == node) {
        inst.learners.push((node, t));
    }
}

/// An [`Instance`] in a compact form: each distinct value once, values referred to by their
/// position, times as differences from one base time; encoded with `postcard` (variable-length
/// integers), so that a typical Multi-Paxos slot takes about 70 bytes.
#[derive(Serialize, Deserialize)]
struct Packed {
    base: u64,
    values: Vec<ValueName>,
    proposals: Vec<PackedProposal>,
    chosen: u32,
    proposed: Vec<u32>,
    learned: Vec<(u32, i64, NodeId)>,
    learners: Vec<(NodeId, i64)>,
    applied: Option<(u32, i64, NodeId)>,
}

#[derive(Serialize, Deserialize)]
struct PackedProposal {
    ballot: Ballot,
    value: u32,
    acceptors: Vec<(NodeId, i64)>,
    chosen: Option<(i64, u32)>,
}

fn pack(inst: &Instance) -> Box<[u8]> {
    let base = inst
        .proposals
        .iter()
        .flat_map(|p| p.acceptors.first().map(|a| a.1))
        .chain(inst.learned.iter().map(|l| l.t_ns))
        .chain(inst.applied.iter().map(|l| l.t_ns))
        .next()
        .unwrap_or(0);
    let rel = |t: u64| t as i64 - base as i64;
    let mut values: Vec<ValueName> = Vec::new();
    let mut id = |v: &ValueName| -> u32 {
        match values.iter().position(|x| x == v) {
            Some(i) => i as u32,
            None => {
                values.push(v.clone());
                (values.len() - 1) as u32
            }
        }
    };
    let proposals = inst
        .proposals
        .iter()
        .map(|p| PackedProposal {
            ballot: p.ballot,
            value: id(&p.value),
            acceptors: p.acceptors.iter().map(|&(n, t)| (n, rel(t))).collect(),
            chosen: p.chosen.map(|(t, r)| (rel(t), r)),
        })
        .collect();
    let proposed = inst.proposed.iter().map(&mut id).collect();
    let learned = inst
        .learned
        .iter()
        .map(|l| (id(&l.value), rel(l.t_ns), l.node))
        .collect();
    let applied = inst
        .applied
        .as_ref()
        .map(|l| (id(&l.value), rel(l.t_ns), l.node));
    let packed = Packed {
        base,
        proposals,
        chosen: inst.chosen,
        proposed,
        learned,
        learners: inst.learners.iter().map(|&(n, t)| (n, rel(t))).collect(),
        applied,
        values,
    };
    postcard::to_stdvec(&packed)
        .expect("an in-memory encoding does not fail")
        .into_boxed_slice()
}

fn unpack(bytes: &[u8]) -> Instance {
    let p: Packed = postcard::from_bytes(bytes).expect("packed by `pack`");
    let abs = |d: i64| (p.base as i64 + d) as u64;
    let value = |i: u32| p.values[i as usize].clone();
    Instance {
        proposals: p
            .proposals
            .iter()
            .map(|q| Proposal {
                ballot: q.ballot,
                value: value(q.value),
                acceptors: q.acceptors.iter().map(|&(n, d)| (n, abs(d))).collect(),
                chosen: q.chosen.map(|(d, r)| (abs(d), r)),
            })
            .collect(),
        chosen: p.chosen,
        proposed: p.proposed.iter().map(|&i| value(i)).collect(),
        learned: p
            .learned
            .iter()
            .map(|&(i, d, node)| Learn {
                value: value(i),
                t_ns: abs(d),
                node,
            })
            .collect(),
        learners: p.learners.iter().map(|&(n, d)| (n, abs(d))).collect(),
        applied: p.applied.map(|(i, d, node)| Learn {
            value: value(i),
            t_ns: abs(d),
            node,
        }),
    }
}

/// The Paxos family's [`Fold`]: the [`Ledger`] built while the run goes, for a scenario where
/// one of the family's checks runs. It consumes every `paxos` observation, but `learned` and
/// `applied` ones when `no-decision` runs (the family's `decisions` read them); role
/// observations and lifecycle records are left in the record.
pub fn fold(scenario: &Scenario, topology: &Arc<Topology>) -> Option<Box<dyn Fold>> {
    let checked = paxos::FAMILY
        .checks
        .iter()
        .any(|c| (c.applies_to)(scenario) && c.is_enabled_in(scenario));
    let keep_decisions = crate::check::no_decision::CHECK.is_enabled_in(scenario);
    checked.then(|| {
        Box::new(LedgerFold {
            ledger: Ledger::empty(scenario, topology),
            keep_decisions,
        }) as Box<dyn Fold>
    })
}

struct LedgerFold {
    ledger: Ledger,
    /// Whether `learned` and `applied` observations stay in the record (for `no-decision`).
    keep_decisions: bool,
}

impl Fold for LedgerFold {
    fn observation(&mut self, o: &ObservationRecord) -> bool {
        let Some(obs) = o.get::<Observation>() else {
            return false;
        };
        self.ledger.observe(o.t_ns, o.node, obs);
        !(self.keep_decisions
            && matches!(
                obs,
                Observation::Learned { .. } | Observation::Applied { .. }
            ))
    }

    fn lifecycle(&mut self, l: &LifecycleRecord) {
        if l.kind == LifecycleKind::Crash {
            self.ledger.crash(l.node);
        }
    }

    fn finish(self: Box<Self>) -> (TypeId, Arc<dyn Any + Send + Sync>) {
        (TypeId::of::<Ledger>(), Arc::new(self.ledger))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::check::CheckResult;
    use crate::families::paxos::checks::{
        agreement, applied_prefix, decision, learner_agreement, validity,
    };

    /// Runs `path` at its own seed twice: as usual (the fold consumes what it reads) and keeping
    /// every observation.
    fn folded_and_kept(path: &str) -> (RunRecord, RunRecord) {
        let registry = crate::families::builtin();
        let path = std::path::Path::new(path);
        let scenario = Scenario::load_all_with(path, &registry).unwrap_or_else(|e| panic!("{e:?}"));
        let folded = crate::sim::run(&scenario, scenario.seed, &crate::sim::RunOptions::default());
        let options = crate::sim::RunOptions {
            keep_all_observations: true,
            ..Default::default()
        };
        let kept = crate::sim::run(&scenario, scenario.seed, &options);
        assert_eq!(
            folded.trace_hash, kept.trace_hash,
            "the fold does not change the run"
        );
        (folded, kept)
    }

    /// `paxos` observations in a record: (all, learned or applied).
    fn facts(r: &RunRecord) -> (usize, usize) {
        let facts: Vec<&Observation> = r.observations.iter().filter_map(|o| o.get()).collect();
        let decided = facts
            .iter()
            .filter(|o| matches!(o, Observation::Learned { .. } | Observation::Applied { .. }))
            .count();
        (facts.len(), decided)
    }

    fn all(l: &Ledger) -> Vec<(u64, Instance)> {
        l.instances()
            .map(|(i, inst)| (i, inst.into_owned()))
            .collect()
    }

    /// Every check of the family on `record`, judged from `ledger`.
    fn judged(record: &RunRecord, ledger: &Ledger) -> Vec<CheckResult> {
        let mut out = vec![
            agreement::judge(record, ledger),
            validity::judge(record, ledger),
            learner_agreement::judge(record, ledger),
            applied_prefix::judge(record, ledger),
        ];
        if record.scenario.runs_protocol(paxos::synod::PROTOCOL.name) {
            out.push(decision::judge(record, ledger));
        }
        out
    }

    /// The record reading the ledger replaced (the checks' `choices` before it): every
    /// proposal accepted by a majority of acceptors, by instance, in the order chosen.
    fn choices_from_observations(record: &RunRecord) -> BTreeMap<u64, Vec<Choice>> {
        let acceptors = paxos::acceptors(&record.scenario, &record.topology);
        let majority = acceptors.len() / 2 + 1;
        let mut accepted: BTreeMap<(u64, Ballot, &str), BTreeMap<NodeId, u64>> = BTreeMap::new();
        let mut out: BTreeMap<u64, Vec<Choice>> = BTreeMap::new();
        for o in record.observations.iter() {
            let Some(Observation::Accepted {
                instance,
                ballot,
                value,
            }) = o.get()
            else {
                continue;
            };
            if !acceptors.contains(&o.node) {
                continue;
            }
            let by = accepted.entry((*instance, *ballot, &**value)).or_default();
            if by.contains_key(&o.node) {
                continue;
            }
            by.insert(o.node, o.t_ns);
            if by.len() == majority {
                out.entry(*instance).or_default().push(Choice {
                    instance: *instance,
                    ballot: *ballot,
                    value: value.clone(),
                    chosen_ns: o.t_ns,
                    acceptors: Vec::new(),
                });
            }
        }
        for list in out.values_mut() {
            for c in list.iter_mut() {
                c.acceptors = accepted[&(c.instance, c.ballot, &*c.value)]
                    .iter()
                    .map(|(n, t)| (*n, *t))
                    .collect();
            }
        }
        out
    }

    /// Every learn (`learned`, `applied`) by instance, in order, as the checks read them before.
    fn learns_from_observations(record: &RunRecord) -> BTreeMap<u64, Vec<Learn>> {
        let mut out: BTreeMap<u64, Vec<Learn>> = BTreeMap::new();
        for o in record.observations.iter() {
            let (instance, value) = match o.get() {
                Some(Observation::Learned { instance, value }) => (instance, value),
                Some(Observation::Applied { slot, value }) => (slot, value),
                _ => continue,
            };
            out.entry(*instance).or_default().push(Learn {
                value: value.clone(),
                t_ns: o.t_ns,
                node: o.node,
            });
        }
        out
    }

    /// The folded ledger is the ledger of the kept observations, it reads what the checks read
    /// before it existed, packing changes nothing the checks find, and the fold consumed the
    /// facts.
    fn assert_same(path: &str) -> (RunRecord, Vec<CheckResult>) {
        let (folded, kept) = folded_and_kept(path);
        let (kept_facts, kept_decided) = facts(&kept);
        assert!(kept_facts > 100, "{path}: {kept_facts}");
        let keeps_decisions = crate::check::no_decision::CHECK.is_enabled_in(&folded.scenario);
        let left = facts(&folded);
        if keeps_decisions {
            assert_eq!(left, (kept_decided, kept_decided), "{path}");
        } else {
            assert_eq!(left, (0, 0), "{path}: the fold consumes every paxos fact");
        }
        let from_fold = Ledger::of(&folded);
        let whole = Ledger::packing(&kept, u64::MAX);
        let tight = Ledger::packing(&kept, 1);
        assert_eq!(whole.live(), whole.len(), "nothing packed");
        assert!(tight.live() <= 2, "{path}: {} live", tight.live());
        assert_eq!(all(&from_fold), all(&whole), "{path}");
        assert_eq!(all(&tight), all(&whole), "{path}");
        // What the ledger holds is what the checks read from the observations before.
        assert_eq!(choices(&folded), choices_from_observations(&kept), "{path}");
        let learns = learns_from_observations(&kept);
        for (i, inst) in whole.instances() {
            let events = learns.get(&i).cloned().unwrap_or_default();
            let mut distinct: Vec<Learn> = Vec::new();
            for e in events {
                if !distinct.iter().any(|d| d.value == e.value) {
                    distinct.push(e);
                }
            }
            assert_eq!(inst.learned, distinct, "{path}: instance {i}");
        }
        let results = judged(&folded, &from_fold);
        assert_eq!(results, judged(&kept, &whole), "{path}");
        assert_eq!(results, judged(&kept, &tight), "{path}");
        (folded, results)
    }

    use crate::families::paxos::checks::choices;

    #[test]
    fn multi_paxos_violations_are_found_as_from_the_kept_observations() {
        for bug in [
            "multi-paxos-acceptor-omits-accepted",
            "multi-paxos-proposer-ignores-accepted",
            "multi-paxos-duplicate-ballots",
        ] {
            let (_, results) = assert_same(&format!("scenarios/paxos/bugs/{bug}.toml"));
            let failed: Vec<&str> = results
                .iter()
                .filter(|r| r.verdict == crate::scenario::Verdict::Fail)
                .map(|r| r.name.as_str())
                .collect();
            assert_eq!(
                failed,
                ["agreement", "learner-agreement", "applied-prefix"],
                "{bug}"
            );
        }
    }

    #[test]
    fn single_decree_runs_are_judged_as_from_the_kept_observations() {
        let (_, results) = assert_same("scenarios/paxos/bugs/acceptor-omits-accepted.toml");
        assert_eq!(results[0].verdict, crate::scenario::Verdict::Fail);
        let (_, results) = assert_same("scenarios/paxos/acceptor-crash-restart.toml");
        assert!(
            results
                .iter()
                .all(|r| r.verdict != crate::scenario::Verdict::Fail),
            "{results:#?}"
        );
        assert_same("scenarios/paxos/multi-paxos-nemesis.toml");
    }

    #[test]
    fn a_packed_instance_unpacks_to_itself() {
        let v = |s: &str| -> ValueName { s.into() };
        let b = |round, node| Ballot {
            round,
            node: NodeId(node),
        };
        let inst = Instance {
            proposals: vec![
                Proposal {
                    ballot: b(3, 1),
                    value: v("7#44"),
                    acceptors: vec![(NodeId(0), 5_000), (NodeId(2), 4_000), (NodeId(4), 9_000)],
                    chosen: Some((9_000, 0)),
                },
                Proposal {
                    ballot: b(4, 2),
                    value: v("noop"),
                    acceptors: vec![(NodeId(1), 12_000_000_000)],
                    chosen: None,
                },
            ],
            chosen: 1,
            proposed: vec![v("7#44"), v("x")],
            learned: vec![Learn {
                value: v("noop"),
                t_ns: 3,
                node: NodeId(3),
            }],
            learners: vec![(NodeId(3), 3), (NodeId(1), 7)],
            applied: Some(Learn {
                value: v("7#44"),
                t_ns: 10_000,
                node: NodeId(0),
            }),
        };
        let packed = pack(&inst);
        assert_eq!(unpack(&packed), inst);
        assert!(packed.len() < 80, "{} bytes", packed.len());
        assert_eq!(unpack(&pack(&Instance::default())), Instance::default());
    }
}
