//! The Paxos acceptor (§2.2 phases 1b and 2b), shared by single-decree Paxos and Multi-Paxos.
//!
//! State, per instance (slot): the highest ballot promised and the proposal accepted. In
//! [`Scope::PerInstance`] (single-decree Paxos, many independent instances) each instance has its
//! own promise. In [`Scope::AllSlots`] (Multi-Paxos) one promise covers every slot: a leader runs
//! phase 1 once for all slots (§3), and accepting a ballot in any slot raises that promise.
//! In both, accepting `(b, v)` also promises `b` (a standard strengthening: the acceptor then
//! never accepts below a ballot it accepted).
//!
//! Durability: every promise and acceptance is written to the node's disk and synced *before*
//! the acceptor answers, and only then observed. On restart the acceptor reloads exactly what was
//! synced. Disk keys:
//! - [`Scope::PerInstance`]: `acceptor/promise/<instance>` (JSON: the ballot) and
//!   `acceptor/accepted/<instance>` (JSON: `[ballot, value]`), one record per instance,
//!   overwritten; instance numbers are zero-padded to 20 digits so keys sort numerically.
//! - [`Scope::AllSlots`]: `acceptor/promise-all` (the ballot) and one write-ahead log of
//!   acceptances, `acceptor/accepted-log`: a line `[slot, ballot, value]` appended per
//!   acceptance, the last line of a slot being its accepted proposal (as in Raft, where the log
//!   is one file appended to; thousands of slots as thousands of files cost a key, a record and
//!   a map entry each). An acceptance the acceptor already holds (the same ballot and value,
//!   e.g. a retransmitted accept) is answered without a new line, so a leader repeating its
//!   window cannot grow the log.
//!
//! Compaction (Multi-Paxos): once its replica holds a durable snapshot of the state machine
//! through slot `s` (every slot up to `s` is chosen, and applied there),
//! [`Acceptor::compact_through`] forgets the proposals accepted in slots up to `s`, in memory and
//! on disk (the log is rewritten with the slots above `s` only, and
//! `acceptor/compacted-through` records `s`), so the log's length is bounded by the slots
//! between two snapshots. From then on the acceptor reports `s` with
//! every promise instead of those proposals, and takes no part in those slots: an `accept` there
//! is neither accepted nor refused. A new leader treats every slot up to the highest compaction
//! point among its promises as chosen and proposes nothing there (quorum intersection: any slot
//! chosen is either reported by some promiser or compacted by one), so forgetting cannot change
//! a chosen value.
//!
//! Planted bugs handled here: `acceptor-omits-accepted` (a promise reports nothing),
//! `accept-ignores-promise` (a ballot below the promise is accepted anyway) and
//! `promise-not-persisted` (promises live in memory only: after a restart the acceptor has
//! promised nothing, although it still holds the proposals it accepted, so it accepts any
//! ballot, even one below a proposal it accepted before the crash).

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::families::paxos::{Ballot, Bugs, Observation, ValueId, ValueName};
use crate::process::Context;
use crate::process::disk::Disk;

const PROMISE_ALL_KEY: &str = "acceptor/promise-all";
const PROMISE_PREFIX: &str = "acceptor/promise/";
const ACCEPTED_PREFIX: &str = "acceptor/accepted/";
const ACCEPTED_LOG_KEY: &str = "acceptor/accepted-log";
const COMPACTED_KEY: &str = "acceptor/compacted-through";

/// What one promise covers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One promise per instance (single-decree Paxos).
    PerInstance,
    /// One promise for every slot (Multi-Paxos).
    AllSlots,
}

/// One acceptor's durable state. See the module docs.
#[derive(Clone, Debug)]
pub struct Acceptor<V> {
    scope: Scope,
    bugs: Bugs,
    promised_all: Ballot,
    promised: BTreeMap<u64, Ballot>,
    accepted: BTreeMap<u64, (Ballot, V)>,
    /// The first slot not compacted away (0: none is; see the module docs).
    kept_from: u64,
    /// Instances whose state changed since the last [`Acceptor::check_invariants`].
    touched: Vec<u64>,
    /// Where a disk record is encoded before it is copied out at its exact size (its buffer
    /// serves every acceptance).
    record: Vec<u8>,
    /// The names of the values one [`Acceptor::accept`] accepted, observed once they are synced
    /// (its buffer serves every call).
    names: Vec<ValueName>,
}

/// `prefix` and `instance` zero-padded to 20 digits (as `format!("{prefix}{instance:020}")`,
/// without the formatting machinery: a key is built for every acceptance).
fn key(prefix: &str, instance: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(instance);
    let mut key = String::with_capacity(prefix.len() + 20);
    key.push_str(prefix);
    key.extend(std::iter::repeat_n('0', 20 - digits.len()));
    key.push_str(digits);
    key
}

fn parse_instance(key: &str, prefix: &str) -> u64 {
    key[prefix.len()..]
        .parse()
        .expect("acceptor keys end with an instance number")
}

/// A value an acceptor accepts: kept in its state, reported in promises, and written to its disk
/// record as JSON.
pub trait Proposal: Clone + Serialize + DeserializeOwned + ValueId {
    /// Appends the value's JSON, exactly as `serde_json` writes it, to `out`. The default
    /// encodes it; a value that every acceptor of a cluster stores may encode once and copy.
    fn write_json(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("proposals serialize");
    }
}

/// Single-decree values.
impl Proposal for String {}

/// Appends the JSON of `ballot` (`{"round":R,"node":N}`, as its `Serialize` writes it) to `out`.
fn write_ballot_json(ballot: Ballot, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"round":"#);
    out.extend_from_slice(itoa::Buffer::new().format(ballot.round).as_bytes());
    out.extend_from_slice(br#","node":"#);
    out.extend_from_slice(itoa::Buffer::new().format(ballot.node.0).as_bytes());
    out.push(b'}');
}

/// Appends an acceptance record to `out`, as `serde_json` writes the tuple: `[ballot,value]`
/// (a per-instance key) or, with a slot, `[slot,ballot,value]` and a newline (a line of the
/// acceptance log). Written for every acceptance, so without serde's machinery.
fn write_acceptance<V: Proposal>(slot: Option<u64>, ballot: Ballot, value: &V, out: &mut Vec<u8>) {
    out.push(b'[');
    if let Some(slot) = slot {
        out.extend_from_slice(itoa::Buffer::new().format(slot).as_bytes());
        out.push(b',');
    }
    write_ballot_json(ballot, out);
    out.push(b',');
    value.write_json(out);
    out.push(b']');
    if slot.is_some() {
        out.push(b'\n');
    }
}

/// The acceptances in the log on `disk`, oldest first (see the module docs).
fn read_acceptance_log<V: DeserializeOwned>(disk: &Disk) -> Vec<(u64, Ballot, V)> {
    let Some(log) = disk.read(ACCEPTED_LOG_KEY) else {
        return Vec::new();
    };
    log.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("acceptance log lines are valid JSON"))
        .collect()
}

fn read_json<T: DeserializeOwned>(disk: &Disk, key: &str) -> Option<T> {
    let bytes = disk.read(key)?;
    Some(serde_json::from_slice(&bytes).expect("acceptor state on disk is valid JSON"))
}

impl<V: Proposal> Acceptor<V> {
    /// Reloads the acceptor from `disk` (at boot: the disk holds exactly the synced state).
    pub fn load(disk: &Disk, scope: Scope, bugs: Bugs) -> Self {
        let mut acceptor = Acceptor {
            scope,
            bugs,
            promised_all: read_json(disk, PROMISE_ALL_KEY).unwrap_or(Ballot::ZERO),
            promised: BTreeMap::new(),
            accepted: BTreeMap::new(),
            kept_from: read_json(disk, COMPACTED_KEY).map_or(0, |through: u64| through + 1),
            touched: Vec::new(),
            record: Vec::new(),
            names: Vec::new(),
        };
        for k in disk.keys_with_prefix(PROMISE_PREFIX) {
            let ballot: Ballot = read_json(disk, &k).expect("listed key");
            acceptor
                .promised
                .insert(parse_instance(&k, PROMISE_PREFIX), ballot);
        }
        let keyed = disk.keys_with_prefix(ACCEPTED_PREFIX).into_iter().map(|k| {
            let (ballot, value): (Ballot, V) = read_json(disk, &k).expect("listed key");
            (parse_instance(&k, ACCEPTED_PREFIX), ballot, value)
        });
        // The log's last line of a slot is its proposal: later lines replace earlier ones.
        for (instance, ballot, value) in keyed.chain(read_acceptance_log(disk)) {
            // Accepting a ballot promised it (see the module docs); under the bug that promise,
            // like every other, lived in memory only.
            if !bugs.promise_not_persisted {
                acceptor.raise_promise(instance, ballot);
            }
            acceptor.accepted.insert(instance, (ballot, value));
        }
        acceptor
    }

    /// The promise that binds `instance`: no ballot below it may be accepted there.
    pub fn promised(&self, instance: u64) -> Ballot {
        match self.scope {
            Scope::AllSlots => self.promised_all,
            Scope::PerInstance => self
                .promised
                .get(&instance)
                .copied()
                .unwrap_or(Ballot::ZERO),
        }
    }

    /// The proposal accepted in `instance`, if any.
    pub fn accepted(&self, instance: u64) -> Option<&(Ballot, V)> {
        self.accepted.get(&instance)
    }

    /// Number of instances with an accepted proposal.
    pub fn accepted_count(&self) -> usize {
        self.accepted.len()
    }

    /// The last slot compacted away (0: none): see the module docs.
    pub fn compacted_through(&self) -> u64 {
        self.kept_from.saturating_sub(1)
    }

    /// Forgets the proposals accepted in slots up to `slot` (Multi-Paxos), in memory and on
    /// `disk`, and records `slot` as compacted (see the module docs). The caller syncs, in the
    /// same step as the write of the snapshot through `slot`, which MUST already be on `disk`
    /// (so the two become durable together). No effect if `slot` is not above the last
    /// compaction point.
    pub fn compact_through(&mut self, disk: &mut Disk, slot: u64) {
        assert_eq!(self.scope, Scope::AllSlots, "only Multi-Paxos compacts");
        if slot < self.kept_from {
            return;
        }
        self.kept_from = slot + 1;
        self.accepted = self.accepted.split_off(&self.kept_from);
        // The log keeps the proposals above `slot` only: a record each, rewritten.
        self.record.clear();
        for (&instance, (ballot, value)) in &self.accepted {
            write_acceptance(Some(instance), *ballot, value, &mut self.record);
        }
        disk.write(ACCEPTED_LOG_KEY, self.record.as_slice());
        disk.write(COMPACTED_KEY, slot.to_string());
    }

    fn raise_promise(&mut self, instance: u64, ballot: Ballot) {
        self.touched.push(instance);
        match self.scope {
            Scope::AllSlots => self.promised_all = self.promised_all.max(ballot),
            Scope::PerInstance => {
                let p = self.promised.entry(instance).or_insert(Ballot::ZERO);
                *p = (*p).max(ballot);
            }
        }
    }

    /// Phase 1b for one instance (single-decree): promises `ballot` if no higher ballot was
    /// promised, durably, and returns the accepted proposal to report (none under the
    /// `acceptor-omits-accepted` bug); otherwise returns the promise that refuses it.
    pub fn prepare(
        &mut self,
        ctx: &mut Context<'_>,
        instance: u64,
        ballot: Ballot,
    ) -> Result<Option<(Ballot, V)>, Ballot> {
        assert_eq!(self.scope, Scope::PerInstance, "per-instance prepare");
        let promised = self.promised(instance);
        if ballot < promised {
            return Err(promised);
        }
        if ballot > promised {
            self.raise_promise(instance, ballot);
            if !self.bugs.promise_not_persisted {
                let bytes = serde_json::to_vec(&ballot).expect("ballots serialize");
                ctx.disk().write(key(PROMISE_PREFIX, instance), bytes);
                ctx.disk().sync();
            }
        }
        ctx.observe(Observation::Promise { instance, ballot });
        if self.bugs.acceptor_omits_accepted {
            return Ok(None);
        }
        Ok(self.accepted.get(&instance).cloned())
    }

    /// Phase 1b for every slot from `from_slot` on (Multi-Paxos, §3): promises `ballot` for all
    /// slots if no higher ballot was promised, durably, and returns every proposal accepted in
    /// those slots as `(slot, ballot, value)` (none under `acceptor-omits-accepted`); otherwise
    /// returns the promise that refuses it. Slots compacted away are not reported: the promise
    /// carries [`Acceptor::compacted_through`] instead.
    pub fn prepare_from(
        &mut self,
        ctx: &mut Context<'_>,
        from_slot: u64,
        ballot: Ballot,
    ) -> Result<Vec<(u64, Ballot, V)>, Ballot> {
        assert_eq!(self.scope, Scope::AllSlots, "all-slots prepare");
        if ballot < self.promised_all {
            return Err(self.promised_all);
        }
        if ballot > self.promised_all {
            self.promised_all = ballot;
            if !self.bugs.promise_not_persisted {
                let bytes = serde_json::to_vec(&ballot).expect("ballots serialize");
                ctx.disk().write(PROMISE_ALL_KEY, bytes);
                ctx.disk().sync();
            }
        }
        ctx.observe(Observation::PromiseFrom { from_slot, ballot });
        if self.bugs.acceptor_omits_accepted {
            return Ok(Vec::new());
        }
        Ok(self
            .accepted
            .range(from_slot.max(self.kept_from)..)
            .map(|(&slot, (b, v))| (slot, *b, v.clone()))
            .collect())
    }

    /// Phase 2b: accepts `(ballot, value)` in each of `entries`' instances unless a higher
    /// ballot was promised there (accepted anyway under `accept-ignores-promise`). Writes every
    /// acceptance, syncs once, then observes them. Returns the instances accepted; if none was,
    /// the highest promise that refused them. Slots compacted away are skipped, neither accepted
    /// nor refused (an empty list if every entry was such a slot and the ballot is not below the
    /// promise).
    pub fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        ballot: Ballot,
        entries: impl IntoIterator<Item = (u64, V)>,
    ) -> Result<Vec<u64>, Ballot> {
        let entries = entries.into_iter();
        let mut instances = Vec::with_capacity(entries.size_hint().0);
        let mut refused_by = Ballot::ZERO;
        let mut skipped = false;
        self.record.clear();
        for (instance, value) in entries {
            let promised = self.promised(instance);
            if ballot < promised && !self.bugs.accept_ignores_promise {
                refused_by = refused_by.max(promised);
                continue;
            }
            if instance < self.kept_from {
                skipped = true;
                continue;
            }
            match self.scope {
                Scope::PerInstance => {
                    self.record.clear();
                    write_acceptance(None, ballot, &value, &mut self.record);
                    ctx.disk()
                        .write(key(ACCEPTED_PREFIX, instance), self.record.as_slice());
                }
                // One log line per acceptance, appended below in one piece; none for one the
                // acceptor already holds (the log already ends it).
                Scope::AllSlots => {
                    let held = self
                        .accepted
                        .get(&instance)
                        .is_some_and(|(b, v)| *b == ballot && v.value_id() == value.value_id());
                    if !held {
                        write_acceptance(Some(instance), ballot, &value, &mut self.record);
                    }
                }
            }
            self.raise_promise(instance, ballot);
            instances.push(instance);
            self.names.push(value.value_id());
            self.accepted.insert(instance, (ballot, value));
        }
        if instances.is_empty() {
            return if skipped && refused_by == Ballot::ZERO {
                Ok(instances)
            } else {
                Err(refused_by)
            };
        }
        if self.scope == Scope::AllSlots && !self.record.is_empty() {
            ctx.disk().append(ACCEPTED_LOG_KEY, self.record.as_slice());
            self.record.clear();
        }
        ctx.disk().sync();
        for (&instance, value) in instances.iter().zip(self.names.drain(..)) {
            ctx.observe(Observation::Accepted {
                instance,
                ballot,
                value,
            });
        }
        Ok(instances)
    }

    /// Asserts the acceptor's local invariant: every accepted ballot is at most the promise of
    /// its instance (accepting promises; promises only grow). Checks the instances changed since
    /// the last call (the others cannot have changed), so a step costs what it touched; call it
    /// after every step, and at boot to check the whole reloaded state.
    pub fn check_invariants(&mut self) {
        // Taken out and put back empty, so its buffer serves every step.
        let mut touched = std::mem::take(&mut self.touched);
        if !self.bugs.promise_not_persisted {
            // (An acceptor that keeps its promise in memory only has no such invariant after a
            // restart: that is the planted bug, and `agreement` is the check meant to catch it.)
            self.check_instances(&touched);
        }
        touched.clear();
        self.touched = touched;
    }

    /// Asserts the invariant in each of `touched`.
    fn check_instances(&self, touched: &[u64]) {
        for &instance in touched {
            let Some((ballot, _)) = self.accepted.get(&instance) else {
                continue;
            };
            assert!(
                *ballot <= self.promised(instance),
                "acceptor: accepted ballot {ballot} above the promise {} in instance {instance}",
                self.promised(instance)
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::process::{Effect, NodeId, TestContext};

    fn b(round: u64, node: u32) -> Ballot {
        Ballot {
            round,
            node: NodeId(node),
        }
    }

    /// The Paxos observations recorded in `tc` since the last take.
    pub(crate) fn observed(tc: &mut TestContext) -> Vec<Observation> {
        tc.take_effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Observe(o) => o.downcast().ok(),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn acceptance_records_are_the_tuples_as_serde_writes_them() {
        for ballot in [Ballot::ZERO, b(1, 2), b(u64::MAX, u32::MAX)] {
            let value = "a \"quoted\"\nline".to_string();
            let mut written = Vec::new();
            write_acceptance(None, ballot, &value, &mut written);
            assert_eq!(written, serde_json::to_vec(&(ballot, &value)).unwrap());
            for slot in [0, 9, u64::MAX] {
                written.clear();
                write_acceptance(Some(slot), ballot, &value, &mut written);
                let mut line = serde_json::to_vec(&(slot, ballot, &value)).unwrap();
                line.push(b'\n');
                assert_eq!(written, line, "one line, whatever the value holds");
            }
        }
    }

    #[test]
    fn disk_keys_pad_the_instance_to_20_digits() {
        for instance in [0, 7, 12_345, 10_000_000, u64::MAX] {
            assert_eq!(
                key(ACCEPTED_PREFIX, instance),
                format!("{ACCEPTED_PREFIX}{instance:020}")
            );
        }
        assert_eq!(
            key(PROMISE_PREFIX, 42),
            "acceptor/promise/00000000000000000042"
        );
    }

    #[test]
    fn phase_1b_promises_and_reports_the_accepted_proposal_durably() {
        let mut tc = TestContext::new(NodeId(0), 1);
        let mut a: Acceptor<String> = Acceptor::load(&tc.disk, Scope::PerInstance, Bugs::default());
        assert_eq!(a.prepare(&mut tc.ctx(), 7, b(1, 1)), Ok(None));
        assert!(!tc.disk.has_unsynced(), "synced before answering");
        assert_eq!(
            a.accept(&mut tc.ctx(), b(1, 1), vec![(7, "x".to_string())]),
            Ok(vec![7])
        );
        assert_eq!(
            tc.disk.read(&key(ACCEPTED_PREFIX, 7)).as_deref(),
            Some(&br#"[{"round":1,"node":1},"x"]"#[..]),
            "the record is the JSON of (ballot, value)"
        );
        assert_eq!(
            observed(&mut tc),
            vec![
                Observation::Promise {
                    instance: 7,
                    ballot: b(1, 1)
                },
                Observation::Accepted {
                    instance: 7,
                    ballot: b(1, 1),
                    value: "x".into()
                }
            ]
        );
        // A lower ballot is refused with the promise; instances are independent.
        assert_eq!(a.prepare(&mut tc.ctx(), 7, b(1, 0)), Err(b(1, 1)));
        assert_eq!(a.prepare(&mut tc.ctx(), 8, b(1, 0)), Ok(None));
        // A higher one learns the accepted proposal (§2.2 phase 1b).
        assert_eq!(
            a.prepare(&mut tc.ctx(), 7, b(2, 2)),
            Ok(Some((b(1, 1), "x".to_string())))
        );
        assert_eq!(
            a.accept(&mut tc.ctx(), b(1, 1), vec![(7, "y".to_string())]),
            Err(b(2, 2)),
            "phase 2b refuses a ballot below the promise"
        );
        // A crash keeps everything: it was synced.
        tc.crash();
        let mut a2: Acceptor<String> =
            Acceptor::load(&tc.disk, Scope::PerInstance, Bugs::default());
        assert_eq!(a2.promised(7), b(2, 2));
        assert_eq!(a2.accepted(7), Some(&(b(1, 1), "x".to_string())));
        a2.check_invariants();
    }

    #[test]
    fn the_acceptor_bugs_break_exactly_their_rule() {
        let bugs = |f: fn(&mut Bugs)| {
            let mut b = Bugs::default();
            f(&mut b);
            b
        };
        // acceptor-omits-accepted
        let mut tc = TestContext::new(NodeId(0), 1);
        let mut a: Acceptor<String> = Acceptor::load(
            &tc.disk,
            Scope::PerInstance,
            bugs(|b| b.acceptor_omits_accepted = true),
        );
        a.accept(&mut tc.ctx(), b(1, 1), vec![(0, "x".into())])
            .unwrap();
        assert_eq!(a.prepare(&mut tc.ctx(), 0, b(2, 2)), Ok(None));
        // accept-ignores-promise
        let mut tc = TestContext::new(NodeId(0), 1);
        let mut a: Acceptor<String> = Acceptor::load(
            &tc.disk,
            Scope::PerInstance,
            bugs(|b| b.accept_ignores_promise = true),
        );
        a.prepare(&mut tc.ctx(), 0, b(5, 1)).unwrap();
        assert_eq!(
            a.accept(&mut tc.ctx(), b(2, 2), vec![(0, "low".into())]),
            Ok(vec![0])
        );
        assert_eq!(a.promised(0), b(5, 1), "the promise itself does not drop");
        // promise-not-persisted
        let mut tc = TestContext::new(NodeId(0), 1);
        let mut a: Acceptor<String> = Acceptor::load(
            &tc.disk,
            Scope::PerInstance,
            bugs(|b| b.promise_not_persisted = true),
        );
        a.accept(&mut tc.ctx(), b(1, 1), vec![(0, "x".into())])
            .unwrap();
        a.prepare(&mut tc.ctx(), 0, b(4, 1)).unwrap();
        tc.crash();
        let mut a: Acceptor<String> = Acceptor::load(
            &tc.disk,
            Scope::PerInstance,
            bugs(|b| b.promise_not_persisted = true),
        );
        assert_eq!(a.promised(0), Ballot::ZERO, "the promise is forgotten");
        assert_eq!(a.accepted(0), Some(&(b(1, 1), "x".to_string())));
        assert!(
            a.accept(&mut tc.ctx(), b(0, 2), vec![(0, "y".into())])
                .is_ok(),
            "even a ballot below the accepted one"
        );
        // The correct acceptor refuses the same sequence.
        let mut tc = TestContext::new(NodeId(0), 1);
        let mut a: Acceptor<String> = Acceptor::load(&tc.disk, Scope::PerInstance, Bugs::default());
        a.prepare(&mut tc.ctx(), 0, b(4, 1)).unwrap();
        tc.crash();
        let mut a: Acceptor<String> = Acceptor::load(&tc.disk, Scope::PerInstance, Bugs::default());
        assert_eq!(
            a.accept(&mut tc.ctx(), b(2, 2), vec![(0, "y".into())]),
            Err(b(4, 1))
        );
    }

    /// The slots of the lines in `disk`'s acceptance log, in log order.
    pub(crate) fn logged_slots(disk: &Disk) -> Vec<u64> {
        read_acceptance_log::<serde_json::Value>(disk)
            .into_iter()
            .map(|(slot, _, _)| slot)
            .collect()
    }

    #[test]
    fn multi_paxos_acceptances_are_lines_of_one_log_whose_last_line_per_slot_counts() {
        let mut tc = TestContext::new(NodeId(0), 1);
        let mut a: Acceptor<String> = Acceptor::load(&tc.disk, Scope::AllSlots, Bugs::default());
        a.prepare_from(&mut tc.ctx(), 1, b(1, 0)).unwrap();
        let entries: Vec<(u64, String)> = (1..=3).map(|s| (s, format!("v{s}"))).collect();
        assert_eq!(a.accept(&mut tc.ctx(), b(1, 0), entries), Ok(vec![1, 2, 3]));
        assert!(!tc.disk.has_unsynced(), "synced before answering");
        assert_eq!(logged_slots(&tc.disk), vec![1, 2, 3]);
        assert!(tc.disk.keys_with_prefix(ACCEPTED_PREFIX).is_empty());
        observed(&mut tc);
        // A retransmitted accept is accepted again, and observed, without a new line.
        assert_eq!(
            a.accept(&mut tc.ctx(), b(1, 0), vec![(2, "v2".into())]),
            Ok(vec![2])
        );
        assert_eq!(logged_slots(&tc.disk), vec![1, 2, 3]);
        assert_eq!(observed(&mut tc).len(), 1);
        // A higher ballot's proposal in the same slot is a new line, and the one a restart keeps.
        a.prepare_from(&mut tc.ctx(), 1, b(2, 1)).unwrap();
        a.accept(
            &mut tc.ctx(),
            b(2, 1),
            vec![(2, "w".into()), (4, "v4".into())],
        )
        .unwrap();
        assert_eq!(logged_slots(&tc.disk), vec![1, 2, 3, 2, 4]);
        tc.crash();
        let mut a: Acceptor<String> = Acceptor::load(&tc.disk, Scope::AllSlots, Bugs::default());
        assert_eq!(a.accepted(2), Some(&(b(2, 1), "w".to_string())));
        assert_eq!(a.accepted(3), Some(&(b(1, 0), "v3".to_string())));
        assert_eq!(a.accepted_count(), 4);
        a.check_invariants();
        // Compaction rewrites the log with the slots above the point only.
        a.compact_through(&mut tc.disk, 2);
        tc.disk.sync();
        assert_eq!(logged_slots(&tc.disk), vec![3, 4]);
        let a: Acceptor<String> = Acceptor::load(&tc.disk, Scope::AllSlots, Bugs::default());
        assert_eq!(a.compacted_through(), 2);
        assert_eq!(a.accepted(2), None);
        assert_eq!(a.accepted(4), Some(&(b(2, 1), "v4".to_string())));
        assert_eq!(a.accepted_count(), 2);
    }

    #[test]
    fn one_promise_covers_every_slot_in_multi_paxos() {
        let mut tc = TestContext::new(NodeId(0), 1);
        let mut a: Acceptor<String> = Acceptor::load(&tc.disk, Scope::AllSlots, Bugs::default());
        assert_eq!(a.prepare_from(&mut tc.ctx(), 1, b(1, 0)), Ok(vec![]));
        let entries: Vec<(u64, String)> = (1..=4).map(|s| (s, format!("v{s}"))).collect();
        assert_eq!(
            a.accept(&mut tc.ctx(), b(1, 0), entries),
            Ok(vec![1, 2, 3, 4])
        );
        assert_eq!(
            a.prepare_from(&mut tc.ctx(), 3, b(2, 1)),
            Ok(vec![(3, b(1, 0), "v3".into()), (4, b(1, 0), "v4".into())])
        );
        assert_eq!(
            a.accept(&mut tc.ctx(), b(1, 0), vec![(9, "late".into())]),
            Err(b(2, 1)),
            "a slot never used before is covered by the promise too"
        );
        assert_eq!(a.prepare_from(&mut tc.ctx(), 1, b(1, 4)), Err(b(2, 1)));
        tc.crash();
        let a: Acceptor<String> = Acceptor::load(&tc.disk, Scope::AllSlots, Bugs::default());
        assert_eq!(a.promised(100), b(2, 1));
        assert_eq!(a.accepted_count(), 4);
    }
}
