//! The models: register, compare-and-set register, key-value store, mutex and multi-register.
//! Each is a small [`Model`] implementation. Values are interned ([`Interner`]) so that states
//! are a few integers.

use smallvec::SmallVec;

use super::budget::{Budget, Exhausted};
use super::model::{Interner, Model, Operation, RawOp, RawOutcome, SharedValues};
use super::read_mapping::{Access as Mapped, BaseId, TokenId};
use crate::history::{Function, Value};

// ---------------------------------------------------------------------------------------------
// Register and CAS register (Knossos `register` / `cas-register`).

/// A register operation: read, write, or compare-and-set (`[expected new]`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// Read; the output is the value read.
    Read,
    /// Write a value.
    Write(u32),
    /// Set to `.1` if the value is `.0`.
    Cas(u32, u32),
}

/// A single register starting at `initial` (Knossos `register`, or `cas-register` when `cas` is
/// allowed). Functions `read`/`get`, `write`/`put` and, with `cas`, `cas` with value
/// `[expected new]`; a successful (`ok`) cas requires the expected value.
#[derive(Clone, Debug)]
pub struct Register {
    values: Interner,
    initial: u32,
    cas: bool,
}

impl Register {
    /// A register (`cas: false`) or CAS register starting at `initial`.
    pub fn new(initial: &Value, cas: bool) -> Self {
        let mut values = Interner::default();
        let initial = values.intern(initial);
        Register {
            values,
            initial,
            cas,
        }
    }
}

fn cas_pair(v: &Value) -> Option<(&Value, &Value)> {
    match v {
        Value::List(items) if items.len() == 2 => Some((&items[0], &items[1])),
        _ => None,
    }
}

impl Model for Register {
    type Input = RegisterOp;
    type Output = u32;
    type State = u32;

    fn convert(&mut self, op: &RawOp<'_>) -> Result<(RegisterOp, Option<u32>), String> {
        match op.f {
            Function::Read | Function::Get => Ok((
                RegisterOp::Read,
                match op.outcome {
                    RawOutcome::Ok(v) => Some(self.values.intern(v)),
                    RawOutcome::Unknown | RawOutcome::CasFalse => None,
                },
            )),
            Function::Write | Function::Put => {
                let v = self.values.intern(op.invoke);
                Ok((RegisterOp::Write(v), ok_unit(op)))
            }
            Function::Cas if self.cas => {
                let (from, to) = cas_pair(op.invoke).ok_or_else(|| {
                    format!("a cas value of `{}`; expected [expected new]", op.invoke)
                })?;
                let (from, to) = (self.values.intern(from), self.values.intern(to));
                Ok((RegisterOp::Cas(from, to), ok_unit(op)))
            }
            f => Err(format!(
                "the function {}, which this model does not have; expected read or write{}",
                f.name(),
                if self.cas { " or cas" } else { "" }
            )),
        }
    }

    fn init(&self) -> u32 {
        self.initial
    }

    fn step(&mut self, state: &u32, input: &RegisterOp, output: Option<&u32>) -> Option<u32> {
        match *input {
            RegisterOp::Read => match output {
                Some(v) if v != state => None,
                _ => Some(*state),
            },
            RegisterOp::Write(v) => Some(v),
            RegisterOp::Cas(from, _) if output == Some(&CAS_FALSE) => {
                (*state != from).then_some(*state)
            }
            RegisterOp::Cas(from, to) => (*state == from).then_some(to),
        }
    }

    fn is_read_only(&self, input: &RegisterOp) -> bool {
        *input == RegisterOp::Read
    }

    /// An unknown-outcome write (or cas) of `v` is unobservable if no read that returned after
    /// its call returned `v` and no cas that could run after its call expects `v`. Off when a
    /// cas may have returned false (such a cas observes the value by its inequality).
    fn unobservable(
        &self,
        ops: &[Operation<RegisterOp, u32>],
        budget: &Budget,
    ) -> Result<Vec<bool>, Exhausted> {
        // Only unknown-outcome writes are marked: without any, nothing to look for.
        if !ops
            .iter()
            .any(|o| o.output.is_none() && o.input != RegisterOp::Read)
            || ops
                .iter()
                .any(|o| matches!(o.input, RegisterOp::Cas(..)) && o.output == Some(CAS_FALSE))
        {
            return Ok(vec![false; ops.len()]);
        }
        // Per value: the latest time a read or cas could observe it.
        let mut seen: rustc_hash::FxHashMap<u32, usize> = Default::default();
        for o in ops {
            let observed = match (o.input, o.output) {
                (RegisterOp::Read, Some(v)) | (RegisterOp::Cas(v, _), _) => v,
                _ => continue,
            };
            let until = o.ret.unwrap_or(usize::MAX);
            let e = seen.entry(observed).or_insert(until);
            *e = (*e).max(until);
        }
        budget.check_time()?;
        Ok(ops
            .iter()
            .map(|x| match x.input {
                RegisterOp::Write(v) | RegisterOp::Cas(_, v) if x.output.is_none() => {
                    seen.get(&v).is_none_or(|&until| until <= x.call)
                }
                _ => false,
            })
            .collect())
    }

    fn impossible(&self, ops: &[Operation<RegisterOp, u32>]) -> Option<(usize, String)> {
        let accesses: Vec<Access> = ops
            .iter()
            .enumerate()
            .filter_map(|(i, o)| {
                let kind = match (o.input, o.output) {
                    (RegisterOp::Read, Some(v)) => AccessKind::Read(v),
                    (RegisterOp::Read, None) => return None,
                    (RegisterOp::Cas(..), Some(CAS_FALSE)) => return None,
                    (RegisterOp::Write(v) | RegisterOp::Cas(_, v), _) => AccessKind::Write(v),
                };
                Some(Access {
                    op: i,
                    call: o.call,
                    ret: o.ret,
                    known: o.output.is_some(),
                    kind,
                })
            })
            .collect();
        refute_reads(self.initial, &accesses, |v| {
            self.values.value(v).to_string()
        })
    }

    /// Each value written names its writer (ids shifted by one: base 0 is the initial value);
    /// declines when a cas may have returned false.
    fn map_reads(&self, ops: &[Operation<RegisterOp, u32>]) -> Option<Vec<Mapped>> {
        let base = |v: u32| if v == self.initial { 0 } else { v + 1 };
        let written = |v: u32| (v != self.initial).then_some(v + 1);
        ops.iter()
            .map(|o| {
                Some(match (o.input, o.output) {
                    (RegisterOp::Read, Some(v)) => Mapped::Read {
                        cell: 0,
                        base: base(v),
                        tokens: Box::default(),
                    },
                    (RegisterOp::Read, None) => Mapped::Skip,
                    (RegisterOp::Write(v), _) => Mapped::Put {
                        cell: 0,
                        base: written(v)?,
                    },
                    (RegisterOp::Cas(_, _), Some(CAS_FALSE)) => return None,
                    (RegisterOp::Cas(from, to), _) => Mapped::Cas {
                        cell: 0,
                        base: base(from),
                        tokens: Box::default(),
                        to: written(to)?,
                    },
                })
            })
            .collect()
    }

    fn describe_state(&self, state: &u32) -> String {
        self.values.value(*state).to_string()
    }

    fn describe_op(&self, input: &RegisterOp, output: Option<&u32>) -> String {
        let v = |id: u32| self.values.value(id).to_string();
        match *input {
            RegisterOp::Read => match output {
                Some(o) => format!("read -> {}", v(*o)),
                None => "read -> ?".into(),
            },
            RegisterOp::Write(x) => format!("write {}", v(x)),
            RegisterOp::Cas(a, b) if output == Some(&CAS_FALSE) => {
                format!("cas {} -> {} (returned false)", v(a), v(b))
            }
            RegisterOp::Cas(a, b) => format!("cas {} -> {}", v(a), v(b)),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.values.heap_bytes()
    }
}

/// The output of a write-like operation: `Some(0)` done, `Some(CAS_FALSE)` a cas that returned
/// false, `None` unknown.
fn ok_unit(op: &RawOp<'_>) -> Option<u32> {
    match op.outcome {
        RawOutcome::Ok(_) => Some(0),
        RawOutcome::CasFalse => Some(CAS_FALSE),
        RawOutcome::Unknown => None,
    }
}

/// The output of a cas that took effect and returned false (Porcupine's reading of `:fail`).
const CAS_FALSE: u32 = 1;

/// One access to a register-like cell (a register, or one key without appends), for
/// [`refute_reads`].
struct Access {
    op: usize,
    call: usize,
    ret: Option<usize>,
    /// The outcome is known (`ok`); unknown-outcome writes may take effect at any time or never.
    known: bool,
    kind: AccessKind,
}

enum AccessKind {
    /// A read that returned this value.
    Read(u32),
    /// A write (or a cas that took effect, or may have) of this value.
    Write(u32),
}

/// The read that cannot be placed in any order and returned first, found without searching, and
/// why. A cell's value is the last value written to it, so:
/// 1. a read of `v` (not the initial value) needs a write of `v` invoked before the read returned;
/// 2. a *stale* read: if exactly one operation writes `v`, it completed, and a write of another
///    value was invoked after that and completed before the read began, the read cannot return
///    `v` (nothing writes `v` again). For the initial value, any completed write before the read
///    began does, if no operation writes the initial value.
///
/// Both rules are sound; the second relies on values written being unique per cell, which it
/// checks (faultline's clients write unique values; Jepsen's register tests often do not, and then
/// it simply finds nothing).
fn refute_reads(
    initial: u32,
    accesses: &[Access],
    describe: impl Fn(u32) -> String,
) -> Option<(usize, String)> {
    // Per value: how many operations write it, the earliest call, and (if one, known) its return.
    let mut writers: rustc_hash::FxHashMap<u32, (usize, usize, Option<usize>)> = Default::default();
    // Writes that certainly took effect, by call: (call, ret, value).
    let mut completed: Vec<(usize, usize, u32)> = Vec::new();
    for a in accesses {
        if let AccessKind::Write(v) = a.kind {
            let e = writers.entry(v).or_insert((0, a.call, None));
            e.0 += 1;
            e.1 = e.1.min(a.call);
            e.2 = if e.0 == 1 && a.known { a.ret } else { None };
            if let (true, Some(ret)) = (a.known, a.ret) {
                completed.push((a.call, ret, v));
            }
        }
    }
    completed.sort_unstable();
    // suffix_min[i]: the completed write (ret, value) returning first among completed[i..].
    let mut suffix_min: Vec<(usize, u32)> = vec![(usize::MAX, 0); completed.len() + 1];
    for i in (0..completed.len()).rev() {
        let (_, ret, v) = completed[i];
        suffix_min[i] = suffix_min[i + 1].min((ret, v));
    }
    // The first completed write invoked strictly after position `after` (or any, if `None`).
    let first_completed_after = |after: Option<usize>| {
        let from = after.map_or(0, |a| completed.partition_point(|&(call, _, _)| call <= a));
        suffix_min[from]
    };
    let mut worst: Option<(usize, usize, String)> = None;
    for a in accesses {
        let (AccessKind::Read(v), Some(ret)) = (&a.kind, a.ret) else {
            continue;
        };
        let v = *v;
        let why = match writers.get(&v) {
            None if v != initial => Some(format!(
                "it read {}, but no operation invoked before it returned writes {}",
                describe(v),
                describe(v)
            )),
            Some(&(_, first_call, _)) if v != initial && first_call > ret => Some(format!(
                "it read {}, but no operation invoked before it returned writes {}",
                describe(v),
                describe(v)
            )),
            // The initial value, never written again: any completed write before the read began.
            None => {
                let (over_ret, over) = first_completed_after(None);
                (over_ret < a.call).then(|| {
                    format!(
                        "it read the initial value {}, but a write of {} had completed before the read began",
                        describe(v),
                        describe(over)
                    )
                })
            }
            // The only write of v completed; was v overwritten before the read began?
            Some(&(1, _, Some(written_ret))) => {
                let (over_ret, over) = first_completed_after(Some(written_ret));
                (over_ret < a.call).then(|| {
                    format!(
                        "it read {}, but the only write of {} had completed before a write of {} was invoked, which completed before the read began",
                        describe(v),
                        describe(v),
                        describe(over)
                    )
                })
            }
            _ => None,
        };
        if let Some(why) = why
            && worst.as_ref().is_none_or(|(r, _, _)| ret < *r)
        {
            worst = Some((ret, a.op, why));
        }
    }
    worst.map(|(_, op, why)| (op, why))
}

// ---------------------------------------------------------------------------------------------
// Key-value store.

/// A key-value operation on a key (a partition-local key number).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvOp {
    /// Key number (local to the partition).
    pub key: u32,
    /// What is done to it.
    pub action: KvAction,
}

/// What a key-value operation does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvAction {
    /// Read; the output is the value read.
    Get,
    /// Write a value.
    Put(u32),
    /// Append a string to the value (absent counts as empty).
    Append(u32),
    /// Set to `.1` if the value is `.0` (absent never equals).
    Cas(u32, u32),
}

/// The values of the partition's keys, by local key number.
pub type KvState = SmallVec<[u32; 16]>;

/// A key-value store of string values: `get`, `put`, `append` (string concatenation; an absent
/// key counts as empty) and `cas` with value `[expected new]`. Every key starts at `initial`
/// (`nil` = absent for faultline's histories, `""` for Porcupine's). Partitioned by key when
/// `partitioned` (P-compositionality).
#[derive(Clone, Debug)]
pub struct KeyValue<'h> {
    values: SharedValues<'h>,
    initial: u32,
    partitioned: bool,
    keys: Vec<String>,
    key_ids: rustc_hash::FxHashMap<String, u32>,
    appends: rustc_hash::FxHashMap<(u32, u32), u32>,
}

impl KeyValue<'static> {
    /// A store whose keys start at `initial`; `partitioned` checks each key separately.
    pub fn new(initial: &Value, partitioned: bool) -> Self {
        KeyValue::sharing(initial, partitioned, None)
    }
}

impl<'h> KeyValue<'h> {
    /// [`KeyValue::new`] using the ids of `shared`, the interner of the history checked
    /// ([`crate::history::Events::interner`]): operations are converted by their
    /// [`RawOp::value_ids`], without interning their values again. The operations converted
    /// MUST come from that history (their ids are `shared`'s).
    pub fn sharing(initial: &Value, partitioned: bool, shared: Option<&'h Interner>) -> Self {
        let mut values = SharedValues::new(shared);
        let initial = values.intern(initial);
        KeyValue {
            values,
            initial,
            partitioned,
            keys: Vec::new(),
            key_ids: Default::default(),
            appends: Default::default(),
        }
    }

    /// The ids of `op`'s invoke and completion values, if they are ids of this model's values.
    fn ids(&self, op: &RawOp<'_>) -> Option<[u32; 2]> {
        self.values.shared().and(op.value_ids)
    }

    /// The text of value `id` as appends see it: a string's characters, `""` for `nil`, the
    /// printed form of anything else.
    fn text(&self, id: u32) -> std::borrow::Cow<'_, str> {
        match self.values.value(id) {
            Value::Str(s) => std::borrow::Cow::Borrowed(s.as_str()),
            Value::Nil => std::borrow::Cow::Borrowed(""),
            other => std::borrow::Cow::Owned(other.to_string()),
        }
    }

    fn append(&mut self, current: u32, suffix: u32) -> u32 {
        if let Some(&id) = self.appends.get(&(current, suffix)) {
            return id;
        }
        let (a, b) = (self.text(current), self.text(suffix));
        let mut joined = String::with_capacity(a.len() + b.len());
        joined.push_str(&a);
        joined.push_str(&b);
        let id = self.values.intern_owned(Value::Str(joined));
        self.appends.insert((current, suffix), id);
        id
    }

    /// Per key: the values its puts and cas operations may write (bases) and the strings its
    /// appends may add, as [`Decomposer`]s (a cas that returned false writes nothing), ready to
    /// decompose values ([`KeyValue::version`]). `None` where values cannot name their writers:
    /// a written value that is not a non-empty string, or equals the initial value, or more than
    /// [`MAX_DISTINCT_LENGTHS`] lengths on a key.
    fn versions(&self, ops: &[Operation<KvOp, u32>]) -> Option<Versions<'_>> {
        let initial_text = self.text(self.initial);
        let initial_text: &[u8] = match initial_text {
            std::borrow::Cow::Borrowed(t) => t.as_bytes(),
            // Only values that are neither strings nor `nil` print as owned text; their keys
            // cannot be decomposed.
            std::borrow::Cow::Owned(_) => return None,
        };
        let mut cells: rustc_hash::FxHashMap<u32, Decomposer<'_>> = Default::default();
        for o in ops {
            let (v, is_token) = match (o.input.action, o.output) {
                (KvAction::Cas(..), Some(CAS_FALSE)) | (KvAction::Get, _) => continue,
                (KvAction::Put(v) | KvAction::Cas(_, v), _) => (v, false),
                (KvAction::Append(v), _) => (v, true),
            };
            let Value::Str(text) = self.values.value(v) else {
                return None;
            };
            if text.is_empty() || v == self.initial {
                return None;
            }
            let d = cells
                .entry(o.input.key)
                .or_insert_with(|| Decomposer::new(initial_text));
            let (table, lengths) = if is_token {
                (&mut d.tokens, &mut d.token_lengths)
            } else {
                (&mut d.bases, &mut d.base_lengths)
            };
            table.insert(text.as_bytes(), v);
            if !lengths.contains(&text.len()) {
                lengths.push(text.len());
                if lengths.len() > MAX_DISTINCT_LENGTHS {
                    return None;
                }
            }
        }
        Some(Versions {
            cells,
            parsed: Default::default(),
        })
    }

    /// How value `v` of key `key` splits into what `versions` can write, decomposed once per
    /// (key, value): the initial value is base 0; a key nothing writes, and a value that is not
    /// a string, have no other state.
    fn version<'v>(&self, versions: &'v mut Versions<'_>, key: u32, v: u32) -> &'v Decomposed {
        let Versions { cells, parsed } = versions;
        parsed.entry((key, v)).or_insert_with(|| {
            if v == self.initial {
                return Decomposed::One(0, Box::default());
            }
            match (self.values.value(v), cells.get(&key)) {
                (Value::Str(text), Some(d)) => d.decompose(text.as_bytes()),
                _ => Decomposed::None,
            }
        })
    }
}

/// A part's [`Decomposer`]s by key, and the values decomposed so far ([`KeyValue::versions`]).
struct Versions<'a> {
    cells: rustc_hash::FxHashMap<u32, Decomposer<'a>>,
    parsed: rustc_hash::FxHashMap<(u32, u32), Decomposed>,
}

impl Model for KeyValue<'_> {
    type Input = KvOp;
    type Output = u32;
    type State = KvState;

    fn partition_key<'a>(&self, op: &RawOp<'a>) -> Option<&'a str> {
        if self.partitioned { op.key } else { None }
    }

    fn convert(&mut self, op: &RawOp<'_>) -> Result<(KvOp, Option<u32>), String> {
        let Some(key) = op.key else {
            let name = op.f.name();
            let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            return Err(format!("{article} {name} without a key; expected a key"));
        };
        let key = match self.key_ids.get(key) {
            Some(&k) => k,
            None => {
                let k = self.keys.len() as u32;
                self.keys.push(key.to_string());
                self.key_ids.insert(key.to_string(), k);
                k
            }
        };
        let (action, output) = match op.f {
            Function::Get | Function::Read => (
                KvAction::Get,
                match op.outcome {
                    RawOutcome::Ok(v) => Some(match self.ids(op) {
                        Some([_, id]) => id,
                        None => self.values.intern(v),
                    }),
                    RawOutcome::Unknown | RawOutcome::CasFalse => None,
                },
            ),
            Function::Put | Function::Write => {
                let v = match self.ids(op) {
                    Some([id, _]) => id,
                    None => self.values.intern(op.invoke),
                };
                (KvAction::Put(v), ok_unit(op))
            }
            Function::Append => {
                if !matches!(op.invoke, Value::Str(_)) {
                    return Err(format!("an append of `{}`; expected a string", op.invoke));
                }
                let v = match self.ids(op) {
                    Some([id, _]) => id,
                    None => self.values.intern(op.invoke),
                };
                (KvAction::Append(v), ok_unit(op))
            }
            Function::Cas => {
                let (from, to) = cas_pair(op.invoke).ok_or_else(|| {
                    format!("a cas value of `{}`; expected [expected new]", op.invoke)
                })?;
                (
                    KvAction::Cas(self.values.intern(from), self.values.intern(to)),
                    ok_unit(op),
                )
            }
            f => {
                return Err(format!(
                    "the function {}; expected get, put, append or cas",
                    f.name()
                ));
            }
        };
        Ok((KvOp { key, action }, output))
    }

    fn init(&self) -> KvState {
        SmallVec::from_elem(self.initial, self.keys.len())
    }

    fn step(&mut self, state: &KvState, input: &KvOp, output: Option<&u32>) -> Option<KvState> {
        let k = input.key as usize;
        let cur = state[k];
        let new = match input.action {
            KvAction::Get => {
                return match output {
                    Some(v) if *v != cur => None,
                    _ => Some(state.clone()),
                };
            }
            KvAction::Put(v) => v,
            KvAction::Append(s) => self.append(cur, s),
            KvAction::Cas(from, _) if output == Some(&CAS_FALSE) => {
                return (cur != from || cur == 0).then(|| state.clone());
            }
            KvAction::Cas(from, to) => {
                if cur != from || cur == 0 {
                    return None;
                }
                to
            }
        };
        let mut next = state.clone();
        next[k] = new;
        Some(next)
    }

    fn is_read_only(&self, input: &KvOp) -> bool {
        input.action == KvAction::Get
    }

    /// An unknown-outcome put, append or cas writing text `t` is unobservable if no read that
    /// returned after its call returned a value containing `t`, and no cas that could run after
    /// its call expects a value containing `t`. While such an operation's effect is visible
    /// (until the key is overwritten) every value of the key contains `t`, so nothing read or
    /// matched it: removing it leaves every other operation's outcome possible. Empty texts are
    /// never marked. Off when a cas may have returned false (it observes by inequality).
    ///
    /// Cost: an observed text that is a prefix of a longer one of the same key (the reads of an
    /// append-only key) is merged into it, keeping the later of their times (which can only mark
    /// fewer), so each unknown-outcome write is looked for in the few texts left, not in every
    /// read.
    fn unobservable(
        &self,
        ops: &[Operation<KvOp, u32>],
        budget: &Budget,
    ) -> Result<Vec<bool>, Exhausted> {
        use std::borrow::Cow;
        use std::ops::Bound;
        // Only unknown-outcome writes are marked: without any (a history without timeouts),
        // nothing to look for.
        if !ops
            .iter()
            .any(|o| o.output.is_none() && o.input.action != KvAction::Get)
            || ops
                .iter()
                .any(|o| matches!(o.input.action, KvAction::Cas(..)) && o.output == Some(CAS_FALSE))
        {
            return Ok(vec![false; ops.len()]);
        }
        // What later operations could observe, per key: read values (deduplicated) and cas
        // expectations, each with the latest time it could be observed at.
        let mut seen: rustc_hash::FxHashMap<(u32, u32), usize> = Default::default();
        for o in ops {
            let observed = match (o.input.action, o.output) {
                (KvAction::Get, Some(v)) => v,
                (KvAction::Cas(from, _), _) => from,
                _ => continue,
            };
            let until = o.ret.unwrap_or(usize::MAX);
            let e = seen.entry((o.input.key, observed)).or_insert(until);
            *e = (*e).max(until);
        }
        let mut observed: Vec<(u32, Cow<'_, str>, usize)> = seen
            .into_iter()
            .map(|((key, v), until)| (key, self.text(v), until))
            .collect();
        // Per key, longest first, so that a text meets every longer text before it.
        observed.sort_unstable_by(|a, b| (a.0, b.1.len(), &a.1).cmp(&(b.0, a.1.len(), &b.1)));
        let mut kept: std::collections::BTreeMap<
            u32,
            std::collections::BTreeMap<Cow<'_, str>, usize>,
        > = Default::default();
        for (i, (key, text, until)) in observed.into_iter().enumerate() {
            budget.poll(i)?;
            let texts = kept.entry(key).or_default();
            // If `text` is a prefix of a kept text, the first kept text not below it is one.
            let covering = texts
                .range_mut::<str, _>((Bound::Included(&*text), Bound::Unbounded))
                .next()
                .filter(|(k, _)| k.starts_with(&*text));
            match covering {
                Some((_, u)) => *u = (*u).max(until),
                None => {
                    texts.insert(text, until);
                }
            }
        }
        let mut marks = Vec::with_capacity(ops.len());
        for x in ops {
            let written = match x.input.action {
                KvAction::Put(v) | KvAction::Append(v) | KvAction::Cas(_, v)
                    if x.output.is_none() =>
                {
                    self.text(v)
                }
                _ => {
                    marks.push(false);
                    continue;
                }
            };
            budget.check_time()?;
            marks.push(
                !written.is_empty()
                    && !kept.get(&x.input.key).is_some_and(|texts| {
                        texts
                            .iter()
                            .any(|(t, until)| *until > x.call && t.contains(&*written))
                    }),
            );
        }
        Ok(marks)
    }

    /// Each key is a cell. A value read decomposes into a base (the initial value, or the value
    /// of a put or cas) followed by appended strings; declines unless every value read
    /// decomposes in exactly one way, every written value and appended string is a non-empty
    /// string, no cas may have returned false, and no `ok` cas expects the absent value. A cas of
    /// unknown outcome whose expected value no operation makes (the absent value, say) never took
    /// effect: it constrains nothing.
    fn map_reads(&self, ops: &[Operation<KvOp, u32>]) -> Option<Vec<Mapped>> {
        let mut versions = self.versions(ops)?;
        let mut version = |key: u32, v: u32| self.version(&mut versions, key, v).clone();
        ops.iter()
            .map(|o| {
                let cell = o.input.key;
                Some(match (o.input.action, o.output) {
                    (KvAction::Get, Some(v)) => {
                        let Decomposed::One(base, tokens) = version(cell, v) else {
                            return None;
                        };
                        Mapped::Read { cell, base, tokens }
                    }
                    (KvAction::Get, None) => Mapped::Skip,
                    (KvAction::Put(v), _) => Mapped::Put { cell, base: v + 1 },
                    (KvAction::Append(v), _) => Mapped::Append { cell, token: v },
                    (KvAction::Cas(_, _), Some(CAS_FALSE)) => return None,
                    (KvAction::Cas(0, _), None) => Mapped::Skip,
                    (KvAction::Cas(0, _), _) => return None,
                    (KvAction::Cas(from, to), output) => match version(cell, from) {
                        Decomposed::One(base, tokens) => Mapped::Cas {
                            cell,
                            base,
                            tokens,
                            to: to + 1,
                        },
                        Decomposed::None if output.is_none() => Mapped::Skip,
                        _ => return None,
                    },
                })
            })
            .collect()
    }

    fn witnesses_growth(&self, input: &KvOp, _output: &u32) -> bool {
        input.action == KvAction::Get
    }

    /// A put, or a cas that may have succeeded, sets its key to any value; an append only
    /// extends its key's text, and a get or a cas that returned false changes nothing.
    fn may_shrink(&self, input: &KvOp, output: Option<&u32>) -> bool {
        match input.action {
            KvAction::Put(_) => true,
            KvAction::Cas(..) => output != Some(&CAS_FALSE),
            KvAction::Get | KvAction::Append(_) => false,
        }
    }

    /// Appends only extend a key's text, so the read's key must hold a prefix of the text read.
    fn can_grow_into(&mut self, state: &KvState, input: &KvOp, output: &u32) -> bool {
        let current = state[input.key as usize];
        current == *output || self.text(*output).starts_with(&*self.text(current))
    }

    /// Keys without appends: [`refute_reads`]. Keys with appends: a value read (or replaced by
    /// an `ok` cas) that no operation that may have taken effect makes, neither a value written
    /// nor one followed by appended strings, is impossible (each such value's first read or cas
    /// to complete is a candidate).
    fn impossible(&self, ops: &[Operation<KvOp, u32>]) -> Option<(usize, String)> {
        let mut keys: Vec<u32> = ops.iter().map(|o| o.input.key).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut worst: Option<(usize, usize, String)> = None; // (ret, op, why)
        let unmade = |worst: &mut Option<(usize, usize, String)>, op: usize, why: String| {
            let ret = ops[op].ret.unwrap_or(usize::MAX);
            if worst.as_ref().is_none_or(|(r, _, _)| ret < *r) {
                *worst = Some((ret, op, why));
            }
        };
        let mut versions = None;
        for key in keys {
            let on_key = ops.iter().enumerate().filter(|(_, o)| o.input.key == key);
            if on_key
                .clone()
                .any(|(_, o)| matches!(o.input.action, KvAction::Append(_)))
            {
                let Some(versions) = versions.get_or_insert_with(|| self.versions(ops)) else {
                    continue;
                };
                for (i, o) in on_key {
                    let (v, what) = match (o.input.action, o.output) {
                        (KvAction::Get, Some(v)) => (v, "read"),
                        (KvAction::Cas(v, _), Some(0)) => (v, "replaced"),
                        _ => continue,
                    };
                    if v != self.initial
                        && v != 0
                        && matches!(self.version(versions, key, v), Decomposed::None)
                    {
                        let why = format!(
                            "it {what} {}, but no operation that may have taken effect writes that value or makes it by appending (key {:?})",
                            self.values.value(v),
                            self.keys[key as usize]
                        );
                        unmade(&mut worst, i, why);
                    }
                }
                continue;
            }
            let accesses: Vec<Access> = on_key
                .filter_map(|(i, o)| {
                    let kind = match (o.input.action, o.output) {
                        (KvAction::Get, Some(v)) => AccessKind::Read(v),
                        (KvAction::Get, None) => return None,
                        (KvAction::Cas(..), Some(CAS_FALSE)) => return None,
                        (KvAction::Put(v) | KvAction::Cas(_, v), _) => AccessKind::Write(v),
                        (KvAction::Append(_), _) => unreachable!("keys with appends are skipped"),
                    };
                    Some(Access {
                        op: i,
                        call: o.call,
                        ret: o.ret,
                        known: o.output.is_some(),
                        kind,
                    })
                })
                .collect();
            let describe = |v: u32| self.values.value(v).to_string();
            if let Some((op, why)) = refute_reads(self.initial, &accesses, describe) {
                let why = format!("{why} (key {:?})", self.keys[key as usize]);
                unmade(&mut worst, op, why);
            }
        }
        worst.map(|(_, op, why)| (op, why))
    }

    fn describe_state(&self, state: &KvState) -> String {
        if state.len() == 1 {
            return format!("{:?} = {}", self.keys[0], self.values.value(state[0]));
        }
        describe_keyed(&self.keys, state, |k, v| {
            format!("{k:?} = {}", self.values.value(v))
        })
    }

    fn describe_op(&self, input: &KvOp, output: Option<&u32>) -> String {
        let v = |id: u32| self.values.value(id).to_string();
        let key = &self.keys[input.key as usize];
        match input.action {
            KvAction::Get => match output {
                Some(o) => format!("get {key:?} -> {}", v(*o)),
                None => format!("get {key:?} -> ?"),
            },
            KvAction::Put(x) => format!("put {key:?} {}", v(x)),
            KvAction::Append(x) => format!("append {key:?} {}", v(x)),
            KvAction::Cas(a, b) if output == Some(&CAS_FALSE) => {
                format!("cas {key:?} {} -> {} (returned false)", v(a), v(b))
            }
            KvAction::Cas(a, b) => format!("cas {key:?} {} -> {}", v(a), v(b)),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.values.heap_bytes() + self.appends.len() * 24
    }
}

/// Most distinct lengths of written values (or of appended strings) of one key that the read
/// mapping decomposes values with; past it the model declines and the search decides.
const MAX_DISTINCT_LENGTHS: usize = 64;

/// Decomposes one key's values read into a base and appended strings
/// ([`KeyValue::map_reads`]). Base ids are value ids plus one (0 is the initial value); token ids
/// are the appended strings' value ids.
struct Decomposer<'a> {
    /// The initial value's text (`""` for absent).
    initial: &'a [u8],
    bases: rustc_hash::FxHashMap<&'a [u8], u32>,
    base_lengths: Vec<usize>,
    tokens: rustc_hash::FxHashMap<&'a [u8], u32>,
    token_lengths: Vec<usize>,
}

impl<'a> Decomposer<'a> {
    fn new(initial: &'a [u8]) -> Self {
        Decomposer {
            initial,
            bases: Default::default(),
            base_lengths: Vec::new(),
            tokens: Default::default(),
            token_lengths: Vec::new(),
        }
    }

    /// How `text` (not the initial value itself) splits into a base followed by appended
    /// strings: in one way, in none (no state of the key is ever `text`), or in several.
    fn decompose(&self, text: &[u8]) -> Decomposed {
        if self.token_lengths.is_empty() {
            // No appends on this key (a register): a value read is a written value itself (the
            // initial value is not asked for; a longer text starting with it needs appends).
            return match self.bases.get(text) {
                Some(&v) => Decomposed::One(v + 1, Box::default()),
                None => Decomposed::None,
            };
        }
        let n = text.len();
        // ways[j]: decompositions of text[j..] into appended strings, counted up to 2.
        let mut ways = vec![0u8; n + 1];
        ways[n] = 1;
        for j in (0..n).rev() {
            let mut w = 0u8;
            for &l in &self.token_lengths {
                if j + l <= n && ways[j + l] > 0 && self.tokens.contains_key(&text[j..j + l]) {
                    w = (w + ways[j + l]).min(2);
                }
            }
            ways[j] = w;
        }
        // Where the appended strings start: after the initial value (with at least one string,
        // else the value would be the initial one), or after a written value.
        let mut starts: Vec<(BaseId, usize)> = Vec::new();
        if text.starts_with(self.initial) && self.initial.len() < n {
            starts.push((0, self.initial.len()));
        }
        for &l in &self.base_lengths {
            if l <= n
                && let Some(&v) = self.bases.get(&text[..l])
            {
                starts.push((v + 1, l));
            }
        }
        let mut total = 0u8;
        let mut found = None;
        for &(base, at) in &starts {
            if ways[at] > 0 {
                total = total.saturating_add(ways[at]);
                found = Some((base, at));
            }
        }
        let (base, mut at) = match (total, found) {
            (1, Some(found)) => found,
            (0, _) => return Decomposed::None,
            _ => return Decomposed::Several,
        };
        let mut tokens = Vec::new();
        while at < n {
            let Some((l, id)) = self.token_lengths.iter().find_map(|&l| {
                (at + l <= n && ways[at + l] > 0)
                    .then(|| self.tokens.get(&text[at..at + l]).map(|&id| (l, id)))
                    .flatten()
            }) else {
                unreachable!("ways[at] > 0 names a string that starts here")
            };
            tokens.push(id);
            at += l;
        }
        Decomposed::One(base, tokens.into_boxed_slice())
    }
}

/// What [`Decomposer::decompose`] finds.
#[derive(Clone, Debug)]
enum Decomposed {
    /// No way: no operation that may take effect makes this value.
    None,
    /// Exactly one way: the base and the appended strings after it, in order.
    One(BaseId, Box<[TokenId]>),
    /// Several ways: the value does not name its writers.
    Several,
}

// ---------------------------------------------------------------------------------------------
// Mutex.

/// A mutex operation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MutexOp {
    /// Take the lock; needs it free.
    Acquire,
    /// Give the lock back; needs it held.
    Release,
}

/// A lock that starts free (Knossos `mutex`): `acquire` needs it free and takes it, `release`
/// needs it held and frees it. The state is `true` while held.
#[derive(Clone, Debug, Default)]
pub struct Mutex;

impl Model for Mutex {
    type Input = MutexOp;
    type Output = ();
    type State = bool;

    fn convert(&mut self, op: &RawOp<'_>) -> Result<(MutexOp, Option<()>), String> {
        let input = match op.f {
            Function::Acquire => MutexOp::Acquire,
            Function::Release => MutexOp::Release,
            f => {
                return Err(format!(
                    "the function {}; expected acquire or release",
                    f.name()
                ));
            }
        };
        Ok((input, matches!(op.outcome, RawOutcome::Ok(_)).then_some(())))
    }

    fn init(&self) -> bool {
        false
    }

    fn step(&mut self, held: &bool, input: &MutexOp, _output: Option<&()>) -> Option<bool> {
        match input {
            MutexOp::Acquire => (!*held).then_some(true),
            MutexOp::Release => (*held).then_some(false),
        }
    }

    fn describe_state(&self, held: &bool) -> String {
        if *held { "held" } else { "free" }.into()
    }

    fn describe_op(&self, input: &MutexOp, _output: Option<&()>) -> String {
        match input {
            MutexOp::Acquire => "acquire".into(),
            MutexOp::Release => "release".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Multi-register.

/// One micro-operation of a transaction: `(is_write, key, value)`; a read's value is in the
/// output.
pub type Micro = (bool, u32, u32);

/// A register per key, read and written by transactions (Knossos `multi-register`): `:txn` with
/// value `[[:read k v] [:write k v] ...]`, applied atomically in order. A read whose value is
/// `nil` accepts any value (Knossos reads `nil` as "not observed"). Every key starts at
/// `initial` (0 for the Knossos data).
#[derive(Clone, Debug)]
pub struct MultiRegister {
    values: Interner,
    initial: u32,
    keys: Vec<String>,
    key_ids: rustc_hash::FxHashMap<String, u32>,
}

impl MultiRegister {
    /// A multi-register whose keys start at `initial`.
    pub fn new(initial: &Value) -> Self {
        let mut values = Interner::default();
        let initial = values.intern(initial);
        MultiRegister {
            values,
            initial,
            keys: Vec::new(),
            key_ids: Default::default(),
        }
    }

    fn micro_ops(&mut self, v: &Value) -> Result<Vec<(bool, u32, u32)>, String> {
        let expected = "a transaction [[:read k v] [:write k v] ...]";
        let Value::List(items) = v else {
            return Err(format!("the value `{v}`; expected {expected}"));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Value::List(parts) = item else {
                return Err(format!("the micro-operation `{item}`; expected {expected}"));
            };
            let (write, key, value) = match parts.as_slice() {
                [Value::Str(f), key, value] if f == "read" || f == "write" => {
                    (f == "write", key, value)
                }
                _ => return Err(format!("the micro-operation `{item}`; expected {expected}")),
            };
            let key_text = match key {
                Value::Str(s) => s.clone(),
                other => other.to_string(),
            };
            let k = match self.key_ids.get(&key_text) {
                Some(&k) => k,
                None => {
                    let k = self.keys.len() as u32;
                    self.keys.push(key_text.clone());
                    self.key_ids.insert(key_text, k);
                    k
                }
            };
            out.push((write, k, self.values.intern(value)));
        }
        Ok(out)
    }
}

impl Model for MultiRegister {
    /// The micro-operations; a read's value here is ignored (it comes from the output).
    type Input = Vec<Micro>;
    /// The value each read observed (`0` = nil: any value), one per micro-operation.
    type Output = Vec<u32>;
    type State = SmallVec<[u32; 4]>;

    fn convert(&mut self, op: &RawOp<'_>) -> Result<(Vec<Micro>, Option<Vec<u32>>), String> {
        if op.f != Function::Txn {
            return Err(format!("the function {}; expected txn", op.f.name()));
        }
        let input = self.micro_ops(op.invoke)?;
        let output = match op.outcome {
            RawOutcome::Unknown | RawOutcome::CasFalse => None,
            RawOutcome::Ok(v) => {
                let done = self.micro_ops(v)?;
                if done.len() != input.len()
                    || done
                        .iter()
                        .zip(&input)
                        .any(|(d, i)| d.0 != i.0 || d.1 != i.1)
                {
                    return Err(format!(
                        "a completion `{v}` that does not match its invoke `{}`; expected the same micro-operations with the values read",
                        op.invoke
                    ));
                }
                Some(done.iter().map(|d| if d.0 { 0 } else { d.2 }).collect())
            }
        };
        let input = input
            .into_iter()
            .map(|(w, k, v)| (w, k, if w { v } else { 0 }))
            .collect();
        Ok((input, output))
    }

    fn init(&self) -> Self::State {
        SmallVec::from_elem(self.initial, self.keys.len())
    }

    fn step(
        &mut self,
        state: &Self::State,
        input: &Vec<Micro>,
        output: Option<&Vec<u32>>,
    ) -> Option<Self::State> {
        let mut next = state.clone();
        for (i, &(write, k, v)) in input.iter().enumerate() {
            if write {
                next[k as usize] = v;
            } else if let Some(read) = output.map(|o| o[i])
                && read != 0
                && read != next[k as usize]
            {
                return None;
            }
        }
        Some(next)
    }

    fn is_read_only(&self, input: &Vec<Micro>) -> bool {
        input.iter().all(|m| !m.0)
    }

    fn describe_state(&self, state: &Self::State) -> String {
        describe_keyed(&self.keys, state, |k, v| {
            format!("{k} {}", self.values.value(v))
        })
    }

    fn describe_op(&self, input: &Vec<Micro>, output: Option<&Vec<u32>>) -> String {
        let parts: Vec<String> = input
            .iter()
            .enumerate()
            .map(|(i, &(write, k, v))| {
                let key = &self.keys[k as usize];
                if write {
                    format!("[:write {key} {}]", self.values.value(v))
                } else {
                    let read = output.map(|o| o[i]).unwrap_or(0);
                    let shown = if read == 0 {
                        "?".to_string()
                    } else {
                        self.values.value(read).to_string()
                    };
                    format!("[:read {key} {shown}]")
                }
            })
            .collect();
        format!("txn [{}]", parts.join(" "))
    }

    fn heap_bytes(&self) -> usize {
        self.values.heap_bytes()
    }
}

/// `{a, b, ...}`: one `item(key, value id)` per key of a per-key state, in key order.
fn describe_keyed(keys: &[String], state: &[u32], item: impl Fn(&str, u32) -> String) -> String {
    let mut keyed: Vec<(&str, u32)> = keys
        .iter()
        .map(String::as_str)
        .zip(state.iter().copied())
        .collect();
    keyed.sort();
    let parts: Vec<String> = keyed.into_iter().map(|(k, v)| item(k, v)).collect();
    format!("{{{}}}", parts.join(", "))
}
