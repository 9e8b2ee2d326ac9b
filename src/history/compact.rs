//! Histories held compactly, and read access to any history's events by position.
//!
//! A checker reads a history through [`Events`]: a run's history or one read from a file (both
//! a [`CompactHistory`]), a part of one ([`Subset`], positions only), or plain
//! `[HistoryEvent]`s (tests). A [`CompactHistory`] keeps each event in 32 bytes (keys, node
//! names and error texts interned once, values interned once in an [`Interner`], so a value
//! written and then read back is stored once) instead of a [`HistoryEvent`] of about 136 bytes
//! plus three heap strings: a 50-client, 600-second run records about 5 million events.

use std::hash::Hasher;

use super::{EventType, Function, HistoryEvent, ImportedHistory, Value, ValueRef};

/// One event as a checker sees it, borrowed from wherever the history is held.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct EventRef<'a> {
    /// The logical client process.
    pub process: u64,
    /// invoke, ok, fail or info.
    pub kind: EventType,
    /// The operation.
    pub f: Function,
    /// The key, for keyed operations.
    pub key: Option<&'a str>,
    /// Argument (invoke) or result (ok).
    pub value: &'a Value,
    /// Global time of the event, nanoseconds (0 if the history has none).
    pub time_ns: u64,
    /// The client node that recorded it (empty if the history names none).
    pub node: &'a str,
    /// Why the operation failed or is unknown (`fail`/`info`), e.g. `"timeout"`.
    pub error: Option<&'a str>,
}

impl EventRef<'_> {
    /// The event as an owned [`HistoryEvent`] at position `index` (what `history.jsonl` holds).
    pub fn to_event(&self, index: u64) -> HistoryEvent {
        HistoryEvent {
            index,
            time_ns: self.time_ns,
            process: self.process,
            node: self.node.to_string(),
            kind: self.kind,
            f: self.f,
            key: self.key.map(str::to_string),
            value: self.value.clone(),
            error: self.error.map(str::to_string),
        }
    }
}

impl<'a> From<&'a HistoryEvent> for EventRef<'a> {
    fn from(e: &'a HistoryEvent) -> Self {
        EventRef {
            process: e.process,
            kind: e.kind,
            f: e.f,
            key: e.key.as_deref(),
            value: &e.value,
            time_ns: e.time_ns,
            node: &e.node,
            error: e.error.as_deref(),
        }
    }
}

/// A history's events by position (0-based, real-time order), however they are held.
pub trait Events: Sync {
    /// Number of events.
    fn len(&self) -> usize;
    /// Event `i` (`i < len()`; panics otherwise, like slice indexing).
    fn event(&self, i: usize) -> EventRef<'_>;
    /// True if there are no events.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every event, in order. (Not named `iter`: for a `Vec` of events that name would hide
    /// the slice's own `iter`.)
    fn events(&self) -> EventIter<'_, Self> {
        EventIter {
            events: self,
            next: 0,
        }
    }
    /// The last event, if any.
    fn last_event(&self) -> Option<EventRef<'_>> {
        self.len().checked_sub(1).map(|i| self.event(i))
    }
    /// The interner holding the history's values, if it keeps one ([`CompactHistory`]); a
    /// checker's model may then use its ids ([`Events::value_id`]) instead of interning the
    /// values again. The default: none.
    fn interner(&self) -> Option<&Interner> {
        None
    }
    /// The id of event `i`'s value in [`Events::interner`] (`None` exactly when that is `None`).
    fn value_id(&self, _i: usize) -> Option<u32> {
        None
    }
}

/// The events of an [`Events`], in order ([`Events::events`]).
pub struct EventIter<'a, E: Events + ?Sized> {
    events: &'a E,
    next: usize,
}

impl<'a, E: Events + ?Sized> Iterator for EventIter<'a, E> {
    type Item = EventRef<'a>;

    fn next(&mut self) -> Option<EventRef<'a>> {
        (self.next < self.events.len()).then(|| {
            self.next += 1;
            self.events.event(self.next - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.events.len() - self.next;
        (left, Some(left))
    }
}

impl<E: Events + ?Sized> ExactSizeIterator for EventIter<'_, E> {}

/// Some of a history's events, by position (4 bytes each, nothing copied), e.g. the events of
/// one model's clients. Positions are in increasing order.
pub struct Subset<'a, E: Events + ?Sized> {
    base: &'a E,
    positions: Vec<u32>,
}

impl<'a, E: Events + ?Sized> Subset<'a, E> {
    /// The events of `base` that `keep` accepts, in order.
    pub fn filter(base: &'a E, mut keep: impl FnMut(&EventRef<'_>) -> bool) -> Self {
        let positions = (0..base.len())
            .filter(|&i| keep(&base.event(i)))
            .map(|i| u32::try_from(i).expect("a history holds fewer than 2^32 events"))
            .collect();
        Subset { base, positions }
    }
}

impl<E: Events + ?Sized> Events for Subset<'_, E> {
    fn len(&self) -> usize {
        self.positions.len()
    }
    fn event(&self, i: usize) -> EventRef<'_> {
        self.base.event(self.positions[i] as usize)
    }
    fn interner(&self) -> Option<&Interner> {
        self.base.interner()
    }
    fn value_id(&self, i: usize) -> Option<u32> {
        self.base.value_id(self.positions[i] as usize)
    }
}

impl Events for [HistoryEvent] {
    fn len(&self) -> usize {
        <[HistoryEvent]>::len(self)
    }
    fn event(&self, i: usize) -> EventRef<'_> {
        (&self[i]).into()
    }
}

impl Events for Vec<HistoryEvent> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn event(&self, i: usize) -> EventRef<'_> {
        (&self[i]).into()
    }
}

impl<const N: usize> Events for [HistoryEvent; N] {
    fn len(&self) -> usize {
        N
    }
    fn event(&self, i: usize) -> EventRef<'_> {
        (&self[i]).into()
    }
}

impl Events for [&HistoryEvent] {
    fn len(&self) -> usize {
        <[&HistoryEvent]>::len(self)
    }
    fn event(&self, i: usize) -> EventRef<'_> {
        self[i].into()
    }
}

impl Events for Vec<&HistoryEvent> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn event(&self, i: usize) -> EventRef<'_> {
        self[i].into()
    }
}

/// Interns history values as small integers so that states are cheap to copy, hash and compare.
/// Id 0 is always `nil`. Each value is stored once.
#[derive(Clone, Debug)]
pub struct Interner {
    /// (32-bit hash, id) of every value ([`short_hash`]): growing the table rehashes from the
    /// stored hashes, without reading the values (two cache misses each).
    ids: hashbrown::HashTable<(u32, u32)>,
    values: Vec<Value>,
    bytes: usize,
}

impl Default for Interner {
    fn default() -> Self {
        let mut i = Interner {
            ids: hashbrown::HashTable::new(),
            values: Vec::new(),
            bytes: 0,
        };
        i.intern(&Value::Nil);
        i
    }
}

/// A value's 64-bit hash folded to the 32 bits the interner keeps.
fn short_hash(hash: u64) -> u32 {
    (hash >> 32) as u32 ^ hash as u32
}

/// The table's hash of a value whose [`short_hash`] is `short`: its 32 bits in both halves, so
/// that the table's bucket (low bits) and tag (top bits) both come from them.
fn table_hash(short: u32) -> u64 {
    (u64::from(short) << 32) | u64::from(short)
}

/// One level of a value's shape, the same for an owned [`Value`] and a borrowed [`ValueRef`]:
/// what the interner's hash walks, so that both forms of a value hash alike.
enum Level<'v, T> {
    Nil,
    Int(i64),
    Str(&'v str),
    List(&'v [T]),
    Bool(bool),
}

/// A value the interner can hash ([`Value`], [`ValueRef`]).
trait Shaped: Sized {
    fn level(&self) -> Level<'_, Self>;
}

impl Shaped for Value {
    fn level(&self) -> Level<'_, Self> {
        match self {
            Value::Nil => Level::Nil,
            Value::Int(i) => Level::Int(*i),
            Value::Str(s) => Level::Str(s),
            Value::List(items) => Level::List(items),
            Value::Bool(b) => Level::Bool(*b),
        }
    }
}

impl Shaped for ValueRef<'_> {
    fn level(&self) -> Level<'_, Self> {
        match self {
            ValueRef::Nil => Level::Nil,
            ValueRef::Int(i) => Level::Int(*i),
            ValueRef::Str(s) => Level::Str(s),
            ValueRef::List(items) => Level::List(items),
            ValueRef::Bool(b) => Level::Bool(*b),
        }
    }
}

/// FxHash of a value's shape.
fn hash_shape<T: Shaped>(value: &T) -> u64 {
    fn feed<T: Shaped>(value: &T, h: &mut rustc_hash::FxHasher) {
        match value.level() {
            Level::Nil => h.write_u8(0),
            Level::Int(i) => {
                h.write_u8(1);
                h.write_i64(i);
            }
            Level::Str(s) => {
                h.write_u8(2);
                h.write(s.as_bytes());
                h.write_u8(0xff);
            }
            Level::List(items) => {
                h.write_u8(3);
                h.write_usize(items.len());
                items.iter().for_each(|i| feed(i, h));
            }
            Level::Bool(b) => {
                h.write_u8(4);
                h.write_u8(u8::from(b));
            }
        }
    }
    let mut h = rustc_hash::FxHasher::default();
    feed(value, &mut h);
    h.finish()
}

/// The interner's hash of `value` (equal to [`value_ref_hash`] of the same value borrowed).
fn hash_value(value: &Value) -> u64 {
    hash_shape(value)
}

/// The interner's hash of a borrowed value: [`hash_value`] of its owned form, computed without
/// making it (a reader computes it on its own threads, [`Interner::intern_ref`] takes it).
pub(crate) fn value_ref_hash(value: &ValueRef<'_>) -> u64 {
    hash_shape(value)
}

impl Interner {
    /// The id of `value`, adding it if new.
    pub fn intern(&mut self, value: &Value) -> u32 {
        let hash = short_hash(hash_value(value));
        if let Some(&(_, id)) = self.ids.find(table_hash(hash), |&(h, id)| {
            h == hash && self.values[id as usize] == *value
        }) {
            return id;
        }
        self.insert_new(hash, value.clone())
    }

    /// The id of `value` (owned), adding it if new.
    pub fn intern_owned(&mut self, value: Value) -> u32 {
        let hash = short_hash(hash_value(&value));
        if let Some(&(_, id)) = self.ids.find(table_hash(hash), |&(h, id)| {
            h == hash && self.values[id as usize] == value
        }) {
            return id;
        }
        self.insert_new(hash, value)
    }

    /// The id of a borrowed `value` whose [`value_ref_hash`] is `hash`, adding it (owned) if new:
    /// a value seen before costs a lookup, no allocation.
    pub(crate) fn intern_ref(&mut self, value: &ValueRef<'_>, hash: u64) -> u32 {
        debug_assert_eq!(hash, value_ref_hash(value));
        let hash = short_hash(hash);
        if let Some(&(_, id)) = self.ids.find(table_hash(hash), |&(h, id)| {
            h == hash && value.is(&self.values[id as usize])
        }) {
            return id;
        }
        self.insert_new(hash, value.clone().into_owned())
    }

    fn insert_new(&mut self, hash: u32, value: Value) -> u32 {
        let id = self.values.len() as u32;
        self.bytes += std::mem::size_of::<Value>() + value_heap(&value) + 8;
        self.values.push(value);
        self.ids
            .insert_unique(table_hash(hash), (hash, id), |&(h, _)| table_hash(h));
        id
    }

    /// The id of `value` if it is interned (a lookup: nothing is added).
    pub fn get(&self, value: &Value) -> Option<u32> {
        let hash = short_hash(hash_value(value));
        self.ids
            .find(table_hash(hash), |&(h, id)| {
                h == hash && self.values[id as usize] == *value
            })
            .map(|&(_, id)| id)
    }

    /// The value of `id`.
    pub fn value(&self, id: u32) -> &Value {
        &self.values[id as usize]
    }

    /// Number of distinct values (with `nil`).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Never true: `nil` is always there.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Bytes held (estimate).
    pub fn heap_bytes(&self) -> usize {
        self.bytes
    }
}

fn value_heap(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len(),
        Value::List(items) => items
            .iter()
            .map(|i| std::mem::size_of::<Value>() + value_heap(i))
            .sum(),
        _ => 0,
    }
}

/// `CompactEvent::key` of an event without a key.
const NO_KEY: u32 = u32::MAX;

/// One event of a [`CompactHistory`]: 32 bytes.
#[derive(Copy, Clone, Debug)]
struct CompactEvent {
    time_ns: u64,
    process: u64,
    /// Id in [`CompactHistory::values`].
    value: u32,
    /// Id in [`CompactHistory::names`], or [`NO_KEY`].
    key: u32,
    /// Id in [`CompactHistory::names`].
    node: u32,
    kind: EventType,
    f: Function,
}

/// A history held compactly: a run's client history ([`RunRecord::history`], filled by the
/// world as clients record events) or one `check-history` reads from a file, in order. Keys,
/// node names and error texts are stored once each, values once each ([`Interner`]). Events
/// read from a file ([`CompactHistory::push`]) carry the 1-based line each starts on
/// ([`CompactHistory::lines`]) and no error text (the checker reads none); the file's `index`
/// is not kept (an event's index is its position). Read it through [`Events`].
///
/// [`RunRecord::history`]: crate::sim::RunRecord::history
#[derive(Clone, Debug, Default)]
pub struct CompactHistory {
    events: Vec<CompactEvent>,
    values: Interner,
    names: Vec<Box<str>>,
    /// Lookups only: its order never reaches a result. Emptied by [`CompactHistory::finish`]
    /// and rebuilt if events are added after.
    name_ids: rustc_hash::FxHashMap<Box<str>, u32>,
    /// The events that carry an error: (position, id in `names`), by position (few: timeouts
    /// and operations left open at the end).
    errors: Vec<(u32, u32)>,
    /// `lines[i]` is the 1-based line of event `i` (empty for a run's history).
    pub lines: Vec<u32>,
}

impl CompactHistory {
    fn name(&mut self, name: &str) -> u32 {
        if self.name_ids.len() < self.names.len() {
            self.name_ids = (0..)
                .zip(&self.names)
                .map(|(id, n)| (n.clone(), id))
                .collect();
        }
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.name_ids.insert(name.into(), id);
        id
    }

    /// Appends an event found on `line` (1-based).
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        line: u32,
        process: u64,
        kind: EventType,
        f: Function,
        key: Option<&str>,
        value: Value,
        time_ns: u64,
        node: &str,
    ) {
        let value = self.values.intern_owned(value);
        self.push_interned(line, process, kind, f, key, value, time_ns, node);
    }

    /// [`CompactHistory::push`] of a value already in [`CompactHistory::values_mut`] (its id).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_interned(
        &mut self,
        line: u32,
        process: u64,
        kind: EventType,
        f: Function,
        key: Option<&str>,
        value: u32,
        time_ns: u64,
        node: &str,
    ) {
        self.push_compact(process, kind, f, key, value, time_ns, node);
        self.lines.push(line);
    }

    /// Appends `event` (its `index` is not kept: an event's index is its position). A history
    /// holds at most 2^32 - 1 events: a run stops far earlier (the limits in
    /// `scenario::limits`), and a file that large is refused when read.
    pub fn push_event(&mut self, event: HistoryEvent) {
        if let Some(error) = &event.error {
            let position = u32::try_from(self.events.len()).expect("fewer than 2^32 events");
            let id = self.name(error);
            self.errors.push((position, id));
        }
        let value = self.values.intern_owned(event.value);
        self.push_compact(
            event.process,
            event.kind,
            event.f,
            event.key.as_deref(),
            value,
            event.time_ns,
            &event.node,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn push_compact(
        &mut self,
        process: u64,
        kind: EventType,
        f: Function,
        key: Option<&str>,
        value: u32,
        time_ns: u64,
        node: &str,
    ) {
        debug_assert!((value as usize) < self.values.len());
        let key = key.map_or(NO_KEY, |k| self.name(k));
        let node = self.name(node);
        self.events.push(CompactEvent {
            time_ns,
            process,
            value,
            key,
            node,
            kind,
            f,
        });
    }

    /// Makes room for `additional` more events read from a file (with their lines), so that
    /// reading them does not grow the tables step by step (each growth copies them into fresh
    /// memory). [`CompactHistory::finish`] gives back what was not used. A hint the allocator
    /// cannot meet (a size far larger than the text) is ignored: the tables then grow as needed.
    pub fn reserve(&mut self, additional: usize) {
        if self.events.try_reserve(additional).is_ok() {
            let _ = self.lines.try_reserve(additional);
        }
    }

    /// Removes every event (names and values stay interned).
    pub fn clear(&mut self) {
        self.events.clear();
        self.errors.clear();
        self.lines.clear();
    }

    /// The values' interner, for a reader that interns values itself
    /// ([`CompactHistory::push_interned`]).
    pub(crate) fn values_mut(&mut self) -> &mut Interner {
        &mut self.values
    }

    /// Frees what only reading needed (the name lookup table, spare capacity).
    pub fn finish(&mut self) {
        self.name_ids = Default::default();
        self.events.shrink_to_fit();
        self.errors.shrink_to_fit();
        self.lines.shrink_to_fit();
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True if it holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Every event, in order ([`Events::events`]).
    pub fn iter(&self) -> EventIter<'_, Self> {
        self.events()
    }

    /// Event `i` as an owned [`HistoryEvent`] (`index` = `i`).
    pub fn to_event(&self, i: usize) -> HistoryEvent {
        self.event(i).to_event(i as u64)
    }
}

impl From<Vec<HistoryEvent>> for CompactHistory {
    fn from(events: Vec<HistoryEvent>) -> Self {
        let mut h = CompactHistory::default();
        h.extend(events);
        h
    }
}

impl Extend<HistoryEvent> for CompactHistory {
    fn extend<I: IntoIterator<Item = HistoryEvent>>(&mut self, events: I) {
        for e in events {
            self.push_event(e);
        }
    }
}

impl<'a> From<&'a CompactHistory> for std::borrow::Cow<'a, CompactHistory> {
    fn from(h: &'a CompactHistory) -> Self {
        std::borrow::Cow::Borrowed(h)
    }
}

impl From<CompactHistory> for std::borrow::Cow<'_, CompactHistory> {
    fn from(h: CompactHistory) -> Self {
        std::borrow::Cow::Owned(h)
    }
}

/// Serialized as the list of its events, each as a [`HistoryEvent`] (`index`: its position), as
/// `history.jsonl` holds them.
impl serde::Serialize for CompactHistory {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(Events::len(self)))?;
        for (i, e) in self.iter().enumerate() {
            seq.serialize_element(&e.to_event(i as u64))?;
        }
        seq.end()
    }
}

impl<'a> IntoIterator for &'a CompactHistory {
    type Item = EventRef<'a>;
    type IntoIter = EventIter<'a, CompactHistory>;

    fn into_iter(self) -> Self::IntoIter {
        self.events()
    }
}

/// Two histories are equal if they hold the same events in the same order (however their
/// names and values were interned) and the same lines.
impl PartialEq for CompactHistory {
    fn eq(&self, other: &Self) -> bool {
        Events::len(self) == Events::len(other)
            && self.lines == other.lines
            && self.iter().eq(other.iter())
    }
}

impl From<ImportedHistory> for CompactHistory {
    fn from(imported: ImportedHistory) -> Self {
        let mut h = CompactHistory::default();
        for (e, line) in imported.events.into_iter().zip(imported.lines) {
            h.push(
                line,
                e.process,
                e.kind,
                e.f,
                e.key.as_deref(),
                e.value,
                e.time_ns,
                &e.node,
            );
        }
        h.finish();
        h
    }
}

impl CompactHistory {
    fn error_of(&self, i: usize) -> Option<&str> {
        if self.errors.is_empty() {
            return None;
        }
        let i = i as u32;
        self.errors
            .binary_search_by_key(&i, |&(position, _)| position)
            .ok()
            .map(|at| &*self.names[self.errors[at].1 as usize])
    }
}

impl Events for CompactHistory {
    fn len(&self) -> usize {
        self.events.len()
    }

    fn event(&self, i: usize) -> EventRef<'_> {
        let e = &self.events[i];
        EventRef {
            process: e.process,
            kind: e.kind,
            f: e.f,
            key: (e.key != NO_KEY).then(|| &*self.names[e.key as usize]),
            value: self.values.value(e.value),
            time_ns: e.time_ns,
            node: &self.names[e.node as usize],
            error: self.error_of(i),
        }
    }

    fn interner(&self) -> Option<&Interner> {
        Some(&self.values)
    }

    fn value_id(&self, i: usize) -> Option<u32> {
        Some(self.events[i].value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compact_history_gives_back_the_events_it_was_built_from() {
        let mut events = vec![
            HistoryEvent::new(
                3,
                EventType::Invoke,
                Function::Put,
                Some("k1".into()),
                Value::Str("v".into()),
            ),
            HistoryEvent::new(
                3,
                EventType::Ok,
                Function::Put,
                None,
                Value::Str("v".into()),
            ),
            HistoryEvent::new(4, EventType::Invoke, Function::Read, None, Value::Nil),
        ];
        events[1].time_ns = 7;
        events[2].node = "c2".into();
        let imported = ImportedHistory {
            events: events.clone(),
            lines: vec![1, 2, 5],
        };
        let compact = CompactHistory::from(imported);
        assert_eq!(Events::len(&compact), 3);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(compact.event(i), EventRef::from(e), "event {i}");
        }
        assert_eq!(compact.lines, vec![1, 2, 5]);
        // "v" is stored once, with nil: values are interned.
        assert_eq!(compact.values.len(), 2);
    }

    #[test]
    fn a_borrowed_value_hashes_and_interns_as_its_owned_form() {
        use std::borrow::Cow;
        let borrowed = [
            ValueRef::Nil,
            ValueRef::Int(-3),
            ValueRef::Int(3),
            ValueRef::Bool(true),
            ValueRef::Str(Cow::Borrowed("v1")),
            ValueRef::Str(Cow::Owned("v\"1".into())),
            ValueRef::Str(Cow::Borrowed("")),
            ValueRef::List(vec![
                ValueRef::Str(Cow::Borrowed("a")),
                ValueRef::List(vec![ValueRef::Nil]),
            ]),
            ValueRef::List(vec![]),
        ];
        let mut interner = Interner::default();
        let mut by_ref = Interner::default();
        for v in &borrowed {
            let owned = v.clone().into_owned();
            assert_eq!(value_ref_hash(v), hash_value(&owned), "{owned}");
            assert!(v.is(&owned));
            if owned != Value::Nil {
                // `nil` is always there (id 0); every other value is new here.
                assert_eq!(interner.get(&owned), None, "{owned}: not added yet");
            }
            let id = interner.intern(&owned);
            assert_eq!(interner.get(&owned), Some(id));
            assert_eq!(by_ref.intern_ref(v, value_ref_hash(v)), id, "{owned}");
        }
        // Seen again: the same ids, nothing added.
        for v in &borrowed {
            let id = interner.get(&v.clone().into_owned()).unwrap();
            assert_eq!(by_ref.intern_ref(v, value_ref_hash(v)), id);
        }
        assert_eq!(by_ref.len(), interner.len());
        // Nil was interned first (id 0), the rest in order.
        assert_eq!(interner.len(), borrowed.len());
        assert!(!ValueRef::Int(3).is(&Value::Str("3".into())));
    }
}
