//! The model interface (a sequential specification) and the operations the search works on.
//!
//! A model is a deterministic state machine: [`Model::init`] gives the starting state and
//! [`Model::step`] applies one operation with its observed output, returning the next state, or
//! `None` if the output is impossible in that state (Herlihy & Wing 1990, §2: a history is
//! linearizable if its operations can be ordered, respecting real time, so that every output is
//! the one the sequential specification gives). States must be `Eq + Hash`: the search memoises
//! (linearized set, state) pairs (Lowe 2017, §3).

use std::fmt::Debug;
use std::hash::Hash;

use super::budget::{Budget, Exhausted};
use crate::history::{Function, Value};

/// How an operation ended, as far as the checker is concerned.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum RawOutcome<'a> {
    /// `ok`, with the completion's value (the value read, for a read).
    Ok(&'a Value),
    /// `info`, or no completion at all: it may have taken effect at any time after its invoke,
    /// or never.
    Unknown,
    /// A `fail`ed compare-and-set read as Porcupine does: it took effect and returned false, so
    /// the value differed from the expected one at that instant. Only produced when
    /// [`super::Options::failed_cas_returns_false`] is set.
    CasFalse,
}

/// One operation of a history, paired from its invoke and completion events (failed operations
/// are already gone: they did not take effect).
#[derive(Copy, Clone, Debug)]
pub struct RawOp<'a> {
    /// The client process.
    pub process: u64,
    /// The function.
    pub f: Function,
    /// The key, for keyed operations.
    pub key: Option<&'a str>,
    /// The invoke's value (the argument).
    pub invoke: &'a Value,
    /// The outcome.
    pub outcome: RawOutcome<'a>,
    /// Position of the invoke event in the history (real-time order).
    pub call: usize,
    /// Position of the completion event; `None` if the outcome is unknown (pending forever).
    pub ret: Option<usize>,
    /// Ids of `invoke` and of the completion's value (of `invoke` again without a completion)
    /// in the history's interner ([`crate::history::Events::interner`]), when the history
    /// keeps one: a model given that interner uses them instead of interning the values again.
    pub value_ids: Option<[u32; 2]>,
}

/// Operations to check, by position: a slice of [`RawOp`]s, or a history's operations paired
/// as positions ([`super::ops::PairedOps`]), each made into a [`RawOp`] when asked.
pub trait RawOps<'a>: Sync {
    /// Number of operations.
    fn len(&self) -> usize;
    /// Operation `i` (`i < len()`; panics otherwise).
    fn op(&self, i: usize) -> RawOp<'a>;
    /// True if there is no operation.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a> RawOps<'a> for &[RawOp<'a>] {
    fn len(&self) -> usize {
        <[RawOp<'a>]>::len(self)
    }

    fn op(&self, i: usize) -> RawOp<'a> {
        self[i]
    }
}

/// An operation ready for the search: a model's input and output plus its real-time interval.
#[derive(Clone, Debug)]
pub struct Operation<I, O> {
    /// The model's input (what was asked).
    pub input: I,
    /// The model's output (what was observed); `None` if the outcome is unknown.
    pub output: Option<O>,
    /// Position of the invoke event.
    pub call: usize,
    /// Position of the completion; `None`: pending forever (outcome unknown).
    pub ret: Option<usize>,
    /// The client process.
    pub process: u64,
}

impl<I, O> Operation<I, O> {
    /// The operation `raw` as `model` reads it ([`Model::convert`]), keeping its interval and
    /// process. Errors: the model's description of what it could not read.
    pub fn convert<M: Model<Input = I, Output = O>>(
        model: &mut M,
        raw: &RawOp<'_>,
    ) -> Result<Self, String> {
        let (input, output) = model.convert(raw)?;
        Ok(Operation {
            input,
            output,
            call: raw.call,
            ret: raw.ret,
            process: raw.process,
        })
    }
}

/// A sequential specification for the linearizability search.
///
/// Implementing a new model means: converting a history operation to an input/output
/// ([`Model::convert`]), a starting state, a step function, and text for counterexamples.
/// Optionally a partition key (P-compositionality, Horn & Kroening 2015, §3: a history is
/// linearizable iff each of its per-key sub-histories is), a read-only test (unknown-outcome
/// reads are dropped), and an early impossibility test ([`Model::impossible`]).
///
/// A model value is cloned once per partition before conversion, so it may keep per-partition
/// tables (interned values) that `convert` and `step` fill in.
pub trait Model: Clone + Send + Sync {
    /// What an operation asks for.
    type Input: Clone + Eq + Hash + Debug + Send + Sync;
    /// What an operation observed.
    type Output: Clone + Debug + Send + Sync;
    /// The specification's state.
    type State: Clone + Eq + Hash + Debug + Send;

    /// The partition an operation belongs to, or `None` for a model that does not partition.
    /// Every operation of a partitioned model must return `Some`.
    fn partition_key<'a>(&self, _op: &RawOp<'a>) -> Option<&'a str> {
        None
    }

    /// Converts an operation; `Ok(output)` is `None` exactly when the outcome is unknown.
    ///
    /// # Errors
    /// A sentence saying what the operation's value should have been.
    fn convert(&mut self, op: &RawOp<'_>) -> Result<(Self::Input, Option<Self::Output>), String>;

    /// The starting state.
    fn init(&self) -> Self::State;

    /// Applies `input` with observed `output` (`None`: any output is acceptable) to `state`;
    /// `None` if that output cannot be observed in `state` (or, for an unknown outcome, if the
    /// operation cannot take effect in `state`).
    fn step(
        &mut self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// True if the operation never changes the state (an unknown-outcome read can then be
    /// dropped: it constrains nothing).
    fn is_read_only(&self, _input: &Self::Input) -> bool {
        false
    }

    /// Marks unknown-outcome operations whose effect no other operation can observe; they are
    /// dropped before the search. Sound when, for each marked operation X: any linearization
    /// that places X somewhere stays valid with X removed (nothing that ran while X's effect was
    /// visible saw it), and any linearization without X extends by placing X last, or nowhere
    /// (an unknown outcome may never take effect). The default marks nothing.
    ///
    /// # Errors
    /// [`Exhausted::Time`] if `budget`'s time limit passes first (implementations poll it).
    fn unobservable(
        &self,
        ops: &[Operation<Self::Input, Self::Output>],
        _budget: &Budget,
    ) -> Result<Vec<bool>, Exhausted> {
        Ok(vec![false; ops.len()])
    }

    /// An operation that cannot be linearized in any order, found without searching (e.g. a
    /// read of a value that no operation invoked before the read returned could have written),
    /// as its index in `ops` and a sentence saying why. Must only return operations that are
    /// certainly impossible.
    fn impossible(&self, _ops: &[Operation<Self::Input, Self::Output>]) -> Option<(usize, String)> {
        None
    }

    /// The read mapping (optional; [`super::read_mapping`]): every operation as an
    /// [`Access`](super::read_mapping::Access) naming the versions it reads and writes, or
    /// `None` when values do not name their writers (the search then decides). The default:
    /// `None`.
    fn map_reads(
        &self,
        _ops: &[Operation<Self::Input, Self::Output>],
    ) -> Option<Vec<super::read_mapping::Access>> {
        None
    }

    /// Pruning by later reads (optional; with [`Model::may_shrink`] and
    /// [`Model::can_grow_into`]): true if this known-outcome operation is a read whose output
    /// shows how far the state has grown (key-value: a get, whose value holds every append
    /// before it, in order). The default: none.
    fn witnesses_growth(&self, _input: &Self::Input, _output: &Self::Output) -> bool {
        false
    }

    /// True if the operation may make the state anything other than a growth of the current
    /// one (key-value: a put or a cas that may have succeeded; an append only extends its
    /// key's text, a get or a cas that returned false changes nothing). `output` is `None` for
    /// an unknown outcome. The default: every operation may.
    fn may_shrink(&self, _input: &Self::Input, _output: Option<&Self::Output>) -> bool {
        true
    }

    /// Whether `state` can still grow, by operations that [`Model::may_shrink`] does not mark,
    /// into a state in which the witness read `input`/`output` succeeds (key-value: the text of
    /// the read's key is a prefix of the value read). Must be true whenever such a growth
    /// exists; the search prunes a configuration when it is false for an unlinearized witness
    /// read that every unlinearized shrinking operation was invoked after (so none of them can
    /// come before it). The default: true (no pruning).
    fn can_grow_into(
        &mut self,
        _state: &Self::State,
        _input: &Self::Input,
        _output: &Self::Output,
    ) -> bool {
        true
    }

    /// The state as text for counterexamples (e.g. `3`, `{x 1, y 2}`).
    fn describe_state(&self, state: &Self::State) -> String;

    /// The operation as text for counterexamples (e.g. `read -> 3`, `cas 1 -> 2`).
    fn describe_op(&self, input: &Self::Input, output: Option<&Self::Output>) -> String;

    /// Bytes held by the model's own tables (counted against the memory budget).
    fn heap_bytes(&self) -> usize {
        0
    }
}

/// Values interned as small integers; it lives with histories (a compact history holds one).
pub use crate::history::compact::Interner;

/// A model's value ids: the history's own ids where the history keeps an interner (shared, so
/// each key's model copies and hashes none of the values it reads), then ids of the values only
/// the model makes (an append's result, an initial value the history never names), numbered
/// after the shared ones. Without a shared interner it is a plain [`Interner`].
#[derive(Clone, Debug, Default)]
pub struct SharedValues<'h> {
    shared: Option<&'h Interner>,
    own: Interner,
}

impl<'h> SharedValues<'h> {
    /// Ids of `shared` (if any), then of the model's own values.
    pub fn new(shared: Option<&'h Interner>) -> Self {
        SharedValues {
            shared,
            own: Interner::default(),
        }
    }

    /// The shared interner, if any: ids of [`RawOp::value_ids`] are its ids.
    pub fn shared(&self) -> Option<&'h Interner> {
        self.shared
    }

    fn offset(&self) -> u32 {
        self.shared.map_or(0, |s| s.len() as u32)
    }

    /// The id of `value`, adding it to the model's own values if the shared interner lacks it.
    pub fn intern(&mut self, value: &Value) -> u32 {
        if let Some(id) = self.shared.and_then(|s| s.get(value)) {
            return id;
        }
        self.offset() + self.own.intern(value)
    }

    /// [`SharedValues::intern`] of an owned value.
    pub fn intern_owned(&mut self, value: Value) -> u32 {
        if let Some(id) = self.shared.and_then(|s| s.get(&value)) {
            return id;
        }
        self.offset() + self.own.intern_owned(value)
    }

    /// The value of `id`.
    pub fn value(&self, id: u32) -> &Value {
        match self.shared {
            Some(s) if (id as usize) < s.len() => s.value(id),
            _ => self.own.value(id - self.offset()),
        }
    }

    /// Bytes held by the model's own values (the shared ones belong to the history).
    pub fn heap_bytes(&self) -> usize {
        self.own.heap_bytes()
    }
}
