//! What a run produces: the [`RunRecord`] handed to checkers and reports, and its parts
//! (counters, observations, lifecycle changes, partitions, a halt, an exceeded event limit).

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::history::{CompactHistory, Events};
use crate::process::NodeId;
pub use crate::process::fold::{Fold, LifecycleKind, LifecycleRecord, ObservationRecord};
use crate::scenario::Scenario;
use crate::scenario::topology::Topology;
use crate::sim::host::Status;
use crate::sim::{faults, trace};

/// A run stopped because it reached one of its [`EventLimits`](crate::sim::EventLimits): the scenario asks for more work
/// than faultline allows (most often a cycle of messages and timers that takes no simulated
/// time). The record up to the stop is kept, but no verdict is given on it: `faultline run`
/// reports this as bad input (exit 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LimitExceeded {
    /// The limit's name: `events_per_run`, `events_per_instant` or `records_per_run`.
    pub limit: &'static str,
    /// Its value.
    pub value: u64,
    /// Global simulated time at which the run stopped.
    pub t_ns: u64,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = crate::scenario::Duration(self.t_ns);
        match self.limit {
            "events_per_instant" => write!(
                f,
                "the run stopped at {at} of simulated time: more than {} events (the limit events_per_instant) at that one instant; something repeats without simulated time passing (for example a latency of 0 with a zero think_time or retry_delay, or a protocol message answered at once forever)",
                self.value
            ),
            "records_per_run" => write!(
                f,
                "the run stopped at {at} of simulated time: it kept more than {} records for its checks (history events and observations; the limit records_per_run); shorten `duration`, or use fewer clients",
                self.value
            ),
            _ => write!(
                f,
                "the run stopped at {at} of simulated time: more than {} events (the limit {}); shorten `duration`, or slow the work down (latency, think_time, rate_per_s, timers)",
                self.value, self.limit
            ),
        }
    }
}

/// Counters of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Messages handed to the network.
    pub messages_sent: u64,
    /// Bytes of the messages handed to the network: the sum over `messages_sent` of each
    /// message's canonical binary encoding (postcard, the record the trace hash covers; not
    /// the longer JSON of a trace `send` line). Duplicates made by the network are not counted.
    pub message_bytes_sent: u64,
    /// Messages handled by their receiver.
    pub messages_delivered: u64,
    /// Extra copies created by duplication.
    pub messages_duplicated: u64,
    /// Dropped messages by reason: `loss`, `partition` (a cut link at arrival), `node-down`
    /// (receiver crashed at arrival), `node-crashed` (queued when the receiver crashed),
    /// `wrong-protocol`.
    pub messages_dropped: BTreeMap<String, u64>,
    /// Messages still in flight when the run ended.
    pub messages_in_flight_at_end: u64,
    /// Timers that fired and were handled.
    pub timers_fired: u64,
    /// Faults started.
    pub faults_applied: u64,
    /// Faults skipped (e.g. no leader to target).
    pub faults_skipped: u64,
    /// Faults undone at the end of their duration.
    pub faults_undone: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Node restarts.
    pub restarts: u64,
    /// Node pauses.
    pub pauses: u64,
    /// Observations emitted.
    pub observations: u64,
    /// History events recorded.
    pub history_events: u64,
    /// Trace lines written.
    pub trace_lines: u64,
    /// Simulation events fired (message arrivals, timer firings, fault starts and ends): the
    /// count that [`EventLimits::per_run`](crate::sim::EventLimits::per_run) bounds.
    pub events: u64,
}

/// One set of cut links, from the fault that cut them to its heal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionRecord {
    /// The fault that cut them.
    pub fault_id: u64,
    /// When the cut started.
    pub start_ns: u64,
    /// When it healed (`None`: still cut at the end).
    pub end_ns: Option<u64>,
    /// For side-based partitions (groups, halves, random halves, isolate): the server sides.
    pub sides: Option<Vec<Vec<NodeId>>>,
    /// Every directed link cut.
    pub cut_links: Vec<(NodeId, NodeId)>,
}

/// A run that stopped early because a process panicked (one of its invariants broke).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Halt {
    /// When.
    pub t_ns: u64,
    /// Which node.
    pub node: String,
    /// The panic message.
    pub message: String,
}

/// Everything a run produced, for checkers and reports.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// The scenario that ran.
    pub scenario: Arc<Scenario>,
    /// The seed it ran with.
    pub seed: u64,
    /// Its nodes.
    pub topology: Arc<Topology>,
    /// Global time at which the run ended.
    pub end_ns: u64,
    /// The trace, as JSON lines (possibly truncated, see `trace_truncated`).
    pub trace_jsonl: trace::TraceBytes,
    /// Hex XXH3-128 of every trace line's binary record (see [`trace`]): the run's fingerprint.
    pub trace_hash: String,
    /// True if trace lines were hashed but not kept.
    pub trace_truncated: bool,
    /// The client history, held compactly (32 bytes an event): read it through
    /// [`Events`](crate::history::Events) (`record.history.iter()`, `event(i)`), or
    /// [`CompactHistory::to_event`] for an owned event.
    pub history: CompactHistory,
    /// Every observation, in order (in chunks: see [`Records`]).
    pub observations: Records<ObservationRecord>,
    /// Crashes, restarts, pauses and resumes, in order.
    pub lifecycle: Vec<LifecycleRecord>,
    /// Cut links over time.
    pub partitions: Vec<PartitionRecord>,
    /// The fault timeline that was planned.
    pub faults: Vec<faults::PlannedFault>,
    /// When the last fault affecting connectivity or liveness ended, if everything was healed
    /// (no cut link, no degraded link, no paused node) at the end; `Some(0)` if there were no
    /// such faults.
    pub final_heal_ns: Option<u64>,
    /// Each node's state at the end.
    pub final_status: Vec<Status>,
    /// Each node's durable bytes at the end (keys and values on its disk, as a `start` trace
    /// line's `durable_bytes`), indexed by node.
    pub final_durable_bytes: Vec<u64>,
    /// Counters.
    pub stats: Stats,
    /// Set if a process panicked and the run stopped early.
    pub halt: Option<Halt>,
    /// Set if the run stopped early at one of its [`EventLimits`](crate::sim::EventLimits) (no verdict then).
    pub limit_exceeded: Option<LimitExceeded>,
    /// What checkers derived from this record once for several checks (see
    /// [`RunRecord::derived`]).
    pub derived: Derived,
}

impl RunRecord {
    /// The `T` built from this record by `build`, built once and shared by every check that asks
    /// (Raft's five safety checks share one replay of the observations instead of replaying the
    /// run five times). `T` is the key: one value per type. A value is built again if the
    /// record's lists changed length since (tests extend a record between checks); editing a
    /// record in place after a check ran is not noticed.
    ///
    /// A value [folded](Fold) while the run went is the record's for good: it is returned as it
    /// is, and `build` is not called (the fold may have consumed observations the record no
    /// longer holds).
    pub fn derived<T: Any + Send + Sync>(&self, build: impl FnOnce(&RunRecord) -> T) -> Arc<T> {
        let key = TypeId::of::<T>();
        if let Some(v) = self.derived.folded.get(&key) {
            return v.clone().downcast().expect("keyed by its type");
        }
        let shape = self.shape();
        if let Some((built_for, v)) = self.derived.lock().get(&key)
            && *built_for == shape
        {
            return v.clone().downcast().expect("keyed by its type");
        }
        // Built without the lock held: `build` may ask for other derived values.
        let value = Arc::new(build(self));
        self.derived.lock().insert(key, (shape, value.clone()));
        value
    }

    /// The lengths a derived value was built for.
    fn shape(&self) -> [usize; 4] {
        [
            self.observations.len(),
            Events::len(&self.history),
            self.lifecycle.len(),
            self.partitions.len(),
        ]
    }
}

/// Values derived from a run record (see [`RunRecord::derived`]): the values [folds](Fold)
/// built while the run went, and the values built from the record afterwards, each with the
/// record's shape it was built for. A clone keeps the folded values (what they consumed is not in
/// the copy either) and starts the others empty: a copy of a record may be edited (tests do), so
/// nothing built from the original's lists carries over.
#[derive(Default)]
pub struct Derived {
    folded: BTreeMap<TypeId, Arc<dyn Any + Send + Sync>>,
    built: Mutex<DerivedValues>,
}

type DerivedValues = BTreeMap<TypeId, ([usize; 4], Arc<dyn Any + Send + Sync>)>;

impl Derived {
    /// The values of `folds`, finished at the end of a run.
    pub(crate) fn folded(folds: Vec<Box<dyn Fold>>) -> Derived {
        Derived {
            folded: folds.into_iter().map(|f| f.finish()).collect(),
            built: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DerivedValues> {
        self.built
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clone for Derived {
    fn clone(&self) -> Self {
        Derived {
            folded: self.folded.clone(),
            built: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Derived({} folded, {} built)",
            self.folded.len(),
            self.lock().len()
        )
    }
}

/// An append-only list built in fixed-size chunks, for the records a run accumulates
/// (observations, history events): growing it never copies what it holds, so a long run does not
/// peak at one and a half or two times its records while a `Vec` reallocates. Observations stay
/// in it for the checkers ([`RunRecord::observations`]); [`Records::into_vec`] hands records over
/// as one exact-size `Vec` where a slice is needed (the history).
#[derive(Clone, Debug, PartialEq)]
pub struct Records<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Records<T> {
    fn default() -> Self {
        Records {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Records<T> {
    /// Records per chunk (a chunk of observation records is about 7 MiB).
    const CHUNK_LEN: usize = 1 << 16;

    /// Appends `item`.
    pub fn push(&mut self, item: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < Self::CHUNK_LEN => chunk.push(item),
            _ => {
                let mut chunk = Vec::with_capacity(Self::CHUNK_LEN);
                chunk.push(item);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The record at `index`, if any.
    pub fn get(&self, index: usize) -> Option<&T> {
        self.chunks
            .get(index / Self::CHUNK_LEN)
            .and_then(|c| c.get(index % Self::CHUNK_LEN))
    }

    /// The last record, if any.
    pub fn last(&self) -> Option<&T> {
        self.chunks.last().and_then(|c| c.last())
    }

    /// The records in order.
    pub fn iter(&self) -> std::iter::Flatten<std::slice::Iter<'_, Vec<T>>> {
        self.chunks.iter().flatten()
    }

    /// Keeps only the records `keep` accepts, in order (for tests that edit a record).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let old = std::mem::take(self);
        for item in old.into_vec() {
            if keep(&item) {
                self.push(item);
            }
        }
    }

    /// Every record, in order, in a `Vec` of exactly their number; each chunk is freed as soon as
    /// it is moved.
    pub fn into_vec(self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len);
        for chunk in self.chunks {
            out.extend(chunk);
        }
        out
    }
}

impl<'a, T> IntoIterator for &'a Records<T> {
    type Item = &'a T;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Vec<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod records_tests {
    use super::Records;

    #[test]
    fn records_keep_order_and_index_across_chunk_boundaries() {
        let n = Records::<u32>::CHUNK_LEN * 2 + 7;
        let mut list = Records::default();
        for i in 0..n {
            list.push(i as u32);
        }
        assert_eq!(list.len(), n);
        assert_eq!(list.chunks.len(), 3);
        for i in [
            0,
            1,
            Records::<u32>::CHUNK_LEN - 1,
            Records::<u32>::CHUNK_LEN,
            n - 1,
        ] {
            assert_eq!(list.get(i), Some(&(i as u32)));
        }
        assert_eq!(list.get(n), None);
        assert!(list.iter().copied().eq(0..n as u32));
        let v = list.into_vec();
        assert_eq!(v.len(), n);
        assert_eq!(v.capacity(), n);
        assert!(v.into_iter().eq(0..n as u32));
    }
}
