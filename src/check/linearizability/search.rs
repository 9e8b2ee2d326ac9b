//! The search: Wing & Gong's backtracking algorithm with Lowe's memoisation.
//!
//! Sources: J. M. Wing and C. Gong, "Testing and verifying concurrent objects", JPDC 17 (1993),
//! §4; G. Lowe, "Testing for linearizability", CCPE 29 (2017), §3 (the cache of configurations,
//! here a hash set of (linearized set, state) pairs) and §4 (the "just-in-time" view that an
//! operation must be linearized before the first pending return); the doubly-linked list of
//! call/return entries with lift/unlift follows Porcupine (A. Athalye, 2017).
//!
//! The history is a list of entries in real-time order: a *call* per operation and a *return*
//! per operation whose outcome is known. Scanning from the head, every call before the first
//! return is a candidate: if the model accepts it in the current state and the resulting
//! configuration is new, it is linearized (removed from the list) and the scan restarts. Reaching
//! a return means its operation cannot be linearized yet in this configuration: undo the last
//! choice and try the next candidate. The history is linearizable when every operation with a
//! known outcome has been linearized.
//!
//! Operations with an unknown outcome (`info`, or no completion) have no return entry: they may
//! be linearized at any point after their call, or never (Jepsen/Knossos semantics), so they
//! never force a backtrack and the search does not wait for them.
//!
//! Refinements beyond the papers, each sound:
//! - unknown-outcome operations with identical inputs are interchangeable once both are called
//!   (their returns are both "never"), so only the earliest-called unlinearized one of each
//!   input is tried (symmetry reduction; it cuts the 2^n subsets of timed-out writes of etcd
//!   histories to counts);
//! - each configuration tries its known-outcome candidates before its unknown-outcome ones, and
//!   the memo prunes by dominance: a configuration is dead if a *finished* configuration with the
//!   same known-outcome set and state had linearized a subset of its unknown-outcome operations
//!   (those need never take effect, so the smaller set can do anything the larger can). With
//!   the known-first order the smaller sets tend to finish first; a timed-out write that is
//!   overwritten before anyone reads it is then pruned at once. Each (known set, state) keeps
//!   only the antichain of minimal finished sets;
//! - pruning by later reads ([`Model::can_grow_into`]): for appends, the state must stay a
//!   prefix of the value read by the unlinearized read that returned first, while no put or cas
//!   can come before that read (`LaterReads`);
//! - the linearized set is a bitset with incremental Zobrist hashing; memo keys store only the
//!   window between the first unlinearized and the last linearized operation (everything before
//!   it is linearized), so memory per configuration is proportional to concurrency, not to the
//!   history's length.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use smallvec::SmallVec;

use super::budget::{Budget, Exhausted};
use super::model::{Model, Operation};

/// How a search ended.
#[derive(Debug)]
pub enum SearchResult<S> {
    /// Every operation with a known outcome was linearized.
    Linearizable,
    /// No order works; the deepest point the search reached.
    Violation(Deepest<S>),
    /// The budget ran out first; the deepest point so far, if any backtrack happened.
    Exhausted(Exhausted, Option<Deepest<S>>),
}

/// The deepest configuration from which the search had to backtrack: the longest linearizable
/// prefix found, and the operation whose return ended it.
#[derive(Clone, Debug)]
pub struct Deepest<S> {
    /// Indices of the linearized operations, in linearization order.
    pub prefix: Vec<usize>,
    /// The state after the prefix.
    pub state: S,
    /// The operation that could not be linearized before its return.
    pub blocked: usize,
}

/// Counters of one search.
#[derive(Copy, Clone, Debug, Default)]
pub struct SearchStats {
    /// Operations the model was asked to apply.
    pub steps: u64,
    /// Configurations stored in the memo table.
    pub configurations: u64,
    /// Bytes the memo table held at its largest.
    pub memo_bytes: usize,
}

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

/// Deterministic 64-bit mixing (splitmix64), for Zobrist keys and hash finalisation.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The linearized set: region A holds the operations with a known outcome (ordered by call),
/// region B the unknown ones. `low` is the first word of A that is not full and `high` is one
/// past the last non-zero word of A (at least `low`), so that A is canonically described by
/// `(low, words[low..high])`.
struct Bits {
    words: Vec<u64>,
    /// Words in region A.
    na: usize,
    /// Bits in region A.
    nc: usize,
    low: usize,
    high: usize,
    zobrist: Vec<u64>,
    hash: u64,
}

impl Bits {
    fn new(nc: usize, nu: usize) -> Self {
        let na = nc.div_ceil(64);
        let nb = nu.div_ceil(64);
        Bits {
            words: vec![0; na + nb],
            na,
            nc,
            low: 0,
            high: 0,
            zobrist: (0..(nc + nu) as u64)
                .map(|i| splitmix(i ^ 0x5eed))
                .collect(),
            hash: 0,
        }
    }

    fn word_index(&self, op: usize) -> (usize, u64) {
        if op < self.nc {
            (op / 64, 1u64 << (op % 64))
        } else {
            let j = op - self.nc;
            (self.na + j / 64, 1u64 << (j % 64))
        }
    }

    fn full_mask(&self, w: usize) -> u64 {
        if w + 1 == self.na && !self.nc.is_multiple_of(64) {
            (1u64 << (self.nc % 64)) - 1
        } else {
            u64::MAX
        }
    }

    fn get(&self, op: usize) -> bool {
        let (w, bit) = self.word_index(op);
        self.words[w] & bit != 0
    }

    fn set(&mut self, op: usize) {
        let (w, bit) = self.word_index(op);
        self.words[w] |= bit;
        if op < self.nc {
            self.hash ^= self.zobrist[op];
            if w == self.low {
                while self.low < self.na && self.words[self.low] == self.full_mask(self.low) {
                    self.low += 1;
                }
            }
            self.high = self.high.max(w + 1).max(self.low);
        }
    }

    fn clear(&mut self, op: usize) {
        let (w, bit) = self.word_index(op);
        self.words[w] &= !bit;
        if op < self.nc {
            self.hash ^= self.zobrist[op];
            if w < self.low {
                self.low = w;
            }
            if w + 1 == self.high && self.words[w] == 0 {
                while self.high > self.low && self.words[self.high - 1] == 0 {
                    self.high -= 1;
                }
            }
        }
    }

    /// True if region A equals `(low, stored)`.
    fn a_eq(&self, low: u32, len_a: u32, stored: &[u64]) -> bool {
        low as usize == self.low
            && len_a as usize == self.high - self.low
            && *stored == self.words[self.low..self.high]
    }

    /// Region B (the unknown-outcome operations).
    fn b_words(&self) -> &[u64] {
        &self.words[self.na..]
    }
}

/// Configurations with the same linearized known-outcome operations and the same state. They
/// differ only in the set of linearized unknown-outcome operations (region B); `finished` holds
/// the minimal region-B sets among those whose exploration has finished (an antichain, `nb`
/// words per set, flattened).
struct Bucket<S> {
    hash: u64,
    low: u32,
    len_a: u32,
    offset_a: usize,
    state: S,
    finished: SmallVec<[u64; 1]>,
}

/// The memo table of configurations (Lowe's cache, keyed by the known-outcome set and state),
/// with region-A key words in one arena.
///
/// Beyond Lowe's exact matching it prunes by dominance: a configuration whose linearized
/// unknown-outcome operations are a superset of those of a finished configuration with the same
/// known-outcome set and state can do nothing the finished one could not (the extra operations
/// need never take effect), so it fails too. Only finished configurations (popped from the search
/// stack, their whole subtree explored) dominate, which keeps the argument a plain induction on
/// finishing order. An exact repeat of a finished configuration is the special case of equal
/// sets; a repeat of one still on the stack cannot occur (its descendants have strictly more
/// linearized operations).
struct Memo<S> {
    table: HashTable<u32>,
    buckets: Vec<Bucket<S>>,
    arena: Vec<u64>,
    hasher: rustc_hash::FxBuildHasher,
    finished_words: usize,
}

fn is_subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x & !y == 0)
}

impl<S: Eq + Hash + Clone> Memo<S> {
    fn new() -> Self {
        Memo {
            table: HashTable::new(),
            buckets: Vec::new(),
            arena: Vec::new(),
            hasher: rustc_hash::FxBuildHasher,
            finished_words: 0,
        }
    }

    fn bytes(&self) -> usize {
        self.table.capacity() * 5
            + self.buckets.capacity() * std::mem::size_of::<Bucket<S>>()
            + self.arena.capacity() * 8
            + self.finished_words * 8
    }

    /// Admits the configuration (bits, state) unless a finished one dominates it; returns its
    /// bucket.
    fn insert(&mut self, bits: &Bits, state: &S) -> Option<u32> {
        let hash = splitmix(bits.hash ^ self.hasher.hash_one(state));
        let arena = &self.arena;
        let buckets = &self.buckets;
        let found = self
            .table
            .find(hash, |&bi| {
                let b = &buckets[bi as usize];
                b.hash == hash
                    && b.state == *state
                    && bits.a_eq(
                        b.low,
                        b.len_a,
                        &arena[b.offset_a..b.offset_a + b.len_a as usize],
                    )
            })
            .copied();
        let current = bits.b_words();
        let nb = current.len();
        match found {
            Some(bi) => {
                let finished = &self.buckets[bi as usize].finished;
                let dominated = match nb {
                    0 => !finished.is_empty(),
                    1 => finished.iter().any(|&w| w & !current[0] == 0),
                    _ => finished.chunks_exact(nb).any(|w| is_subset(w, current)),
                };
                (!dominated).then_some(bi)
            }
            None => {
                let offset_a = self.arena.len();
                self.arena
                    .extend_from_slice(&bits.words[bits.low..bits.high]);
                let bi = self.buckets.len() as u32;
                self.buckets.push(Bucket {
                    hash,
                    low: bits.low as u32,
                    len_a: (bits.high - bits.low) as u32,
                    offset_a,
                    state: state.clone(),
                    finished: SmallVec::new(),
                });
                let buckets = &self.buckets;
                self.table
                    .insert_unique(hash, bi, |&i| buckets[i as usize].hash);
                Some(bi)
            }
        }
    }

    /// The configuration `bits` of bucket `bi` left the search stack: its subtree failed.
    fn finish(&mut self, bi: u32, bits: &Bits) {
        let current = bits.b_words();
        let nb = current.len();
        let b = &mut self.buckets[bi as usize];
        if nb == 0 {
            if b.finished.is_empty() {
                b.finished.push(0);
                self.finished_words += 1;
            }
            return;
        }
        if b.finished.chunks_exact(nb).any(|w| is_subset(w, current)) {
            return;
        }
        // Drop the finished sets that the new one makes redundant (its supersets).
        let before = b.finished.len();
        let mut kept: SmallVec<[u64; 1]> = SmallVec::with_capacity(before + nb);
        for w in b.finished.chunks_exact(nb) {
            if !is_subset(current, w) {
                kept.extend_from_slice(w);
            }
        }
        kept.extend_from_slice(current);
        self.finished_words = self.finished_words + kept.len() - before;
        b.finished = kept;
    }
}

/// Options of one search.
pub struct SearchOptions<'a> {
    /// The check's wall-clock budget (the user's time limit, if any).
    pub budget: &'a Budget,
    /// Stop after this many model steps (a deterministic limit).
    pub step_limit: Option<u64>,
    /// Stop when the memo table and the model's tables would hold more than this many bytes
    /// (an estimate that depends only on the search, so the verdict is reproducible).
    pub memory_limit_bytes: usize,
    /// Polled now and then with the steps taken so far; `true` stops the search (its result is
    /// then not used).
    pub cancelled: &'a (dyn Fn(u64) -> bool + Sync),
    /// Prune configurations that cannot grow into a read that must come later
    /// ([`Model::can_grow_into`]). Off only to compare with the plain search.
    pub prune_by_later_reads: bool,
}

/// A set of small integers `0..len` that answers "the first one not in the set" in amortized
/// constant time (`low` is the first word with a zero bit; bits past `len` are set).
struct FirstAbsent {
    words: Vec<u64>,
    low: usize,
}

impl FirstAbsent {
    fn new(len: usize) -> Self {
        let mut words = vec![0u64; len.div_ceil(64)];
        if !len.is_multiple_of(64)
            && let Some(last) = words.last_mut()
        {
            *last = !((1u64 << (len % 64)) - 1);
        }
        let mut f = FirstAbsent { words, low: 0 };
        f.advance();
        f
    }

    fn advance(&mut self) {
        while self.low < self.words.len() && self.words[self.low] == u64::MAX {
            self.low += 1;
        }
    }

    fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1u64 << (i % 64);
        self.advance();
    }

    fn remove(&mut self, i: usize) {
        self.words[i / 64] &= !(1u64 << (i % 64));
        self.low = self.low.min(i / 64);
    }

    fn first(&self) -> Option<usize> {
        let w = self.words.get(self.low)?;
        Some(self.low * 64 + (!w).trailing_zeros() as usize)
    }
}

/// Pruning by later reads. A known-outcome read R ([`Model::witnesses_growth`]) that is not yet
/// linearized must come after the current configuration. If no unlinearized operation that may
/// shrink the state ([`Model::may_shrink`]) was invoked before R returned, none of them can come
/// before R in any extension that respects real time, so the state must still be able to grow
/// into R's value ([`Model::can_grow_into`]); a configuration where it cannot is dead. For
/// appends this means the value so far must be a prefix of the value R read: a read spells out
/// the order of every append it contains (the order Elle infers from list-append reads, Kingsbury
/// & Alvaro, "Elle: inferring isolation anomalies from experimental observations", VLDB 2020,
/// §4.2). The read tested is the unlinearized one that returned first.
struct LaterReads {
    /// Witness reads (internal indices) in return order.
    reads: Vec<u32>,
    /// Shrinking operations (internal indices) in call order, with their calls.
    shrinks: Vec<(usize, u32)>,
    /// Per internal index: its position in `reads` or `shrinks` (NIL if neither).
    read_rank: Vec<u32>,
    shrink_rank: Vec<u32>,
    reads_done: FirstAbsent,
    shrinks_done: FirstAbsent,
}

impl LaterReads {
    /// `op(k)`: (call, ret, is a witness read, may shrink) of internal operation `k`.
    fn new(op: impl Fn(usize) -> (usize, Option<usize>, bool, bool), n: usize) -> Option<Self> {
        let mut reads: Vec<(usize, u32)> = Vec::new();
        let mut shrinks: Vec<(usize, u32)> = Vec::new();
        for k in 0..n {
            let (call, ret, witness, shrink) = op(k);
            if let (true, Some(ret)) = (witness, ret) {
                reads.push((ret, k as u32));
            }
            if shrink {
                shrinks.push((call, k as u32));
            }
        }
        if reads.is_empty() {
            return None;
        }
        reads.sort_unstable();
        shrinks.sort_unstable();
        let mut read_rank = vec![NIL; n];
        let mut shrink_rank = vec![NIL; n];
        for (r, &(_, k)) in reads.iter().enumerate() {
            read_rank[k as usize] = r as u32;
        }
        for (r, &(_, k)) in shrinks.iter().enumerate() {
            shrink_rank[k as usize] = r as u32;
        }
        Some(LaterReads {
            reads_done: FirstAbsent::new(reads.len()),
            shrinks_done: FirstAbsent::new(shrinks.len()),
            reads: reads.into_iter().map(|(_, k)| k).collect(),
            shrinks,
            read_rank,
            shrink_rank,
        })
    }

    fn linearize(&mut self, k: usize) {
        if self.read_rank[k] != NIL {
            self.reads_done.insert(self.read_rank[k] as usize);
        }
        if self.shrink_rank[k] != NIL {
            self.shrinks_done.insert(self.shrink_rank[k] as usize);
        }
    }

    fn unlinearize(&mut self, k: usize) {
        if self.read_rank[k] != NIL {
            self.reads_done.remove(self.read_rank[k] as usize);
        }
        if self.shrink_rank[k] != NIL {
            self.shrinks_done.remove(self.shrink_rank[k] as usize);
        }
    }

    /// The read that must come later and that no shrinking operation can precede, if any.
    fn witness(&self, ret_of: impl Fn(usize) -> usize) -> Option<usize> {
        let read = self.reads[self.reads_done.first()?] as usize;
        let shrink_call = self
            .shrinks_done
            .first()
            .map_or(usize::MAX, |r| self.shrinks[r].0);
        (ret_of(read) < shrink_call).then_some(read)
    }
}

/// Searches for a linearization of `ops` under `model`.
///
/// `ops` may be in any order; operations with `ret: None` have an unknown outcome. Returns the
/// result (indices in results refer to `ops`) and counters.
pub fn search<M: Model>(
    model: &mut M,
    ops: &[Operation<M::Input, M::Output>],
    options: &SearchOptions<'_>,
) -> (SearchResult<M::State>, SearchStats) {
    let mut stats = SearchStats::default();
    // Internal order: operations with a known outcome by call, then unknown ones by call.
    // Unknown-outcome reads constrain nothing and are dropped.
    let mut order: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].ret.is_some() || !model.is_read_only(&ops[i].input))
        .collect();
    order.sort_by_key(|&i| (ops[i].ret.is_none(), ops[i].call, i));
    let n = order.len();
    let nc = order.iter().filter(|&&i| ops[i].ret.is_some()).count();
    let op = |k: usize| &ops[order[k]];

    // Symmetry: for an unknown op, the latest earlier-called unknown op with the same input.
    let mut sym_prev: Vec<u32> = vec![NIL; n];
    {
        let mut last: rustc_hash::FxHashMap<&M::Input, u32> = Default::default();
        for (k, prev) in sym_prev.iter_mut().enumerate().skip(nc) {
            if let Some(p) = last.insert(&op(k).input, k as u32) {
                *prev = p;
            }
        }
    }

    // Entries: node 0 is the head; call of k is 1 + 2k, return of k is 2 + 2k.
    let mut events: Vec<(usize, u32)> = Vec::with_capacity(n + nc);
    for k in 0..n {
        events.push((op(k).call, 1 + 2 * k as u32));
        if let Some(r) = op(k).ret {
            events.push((r, 2 + 2 * k as u32));
        }
    }
    events.sort_unstable();
    let nodes = 1 + 2 * n;
    let mut next = vec![NIL; nodes];
    let mut prev = vec![NIL; nodes];
    let mut last = HEAD;
    for &(_, node) in &events {
        next[last as usize] = node;
        prev[node as usize] = last;
        last = node;
    }

    let mut later = if options.prune_by_later_reads {
        LaterReads::new(
            |k| {
                let o = op(k);
                let witness = o
                    .output
                    .as_ref()
                    .is_some_and(|out| model.witnesses_growth(&o.input, out));
                (
                    o.call,
                    o.ret,
                    witness,
                    model.may_shrink(&o.input, o.output.as_ref()),
                )
            },
            n,
        )
    } else {
        None
    };
    let ret_of = |k: usize| op(k).ret.unwrap_or(usize::MAX);

    let mut bits = Bits::new(nc, n - nc);
    let mut memo: Memo<M::State> = Memo::new();
    let mut state = model.init();
    let mut stack: Vec<(u32, M::State, u32, bool)> = Vec::new();
    // Each configuration tries its known-outcome candidates first, then its unknown-outcome
    // ones: an optional operation is used only where needed, so that the smaller sets of used
    // optional operations finish first and dominate the larger ones found later.
    let mut unknown_pass = false;
    let mut stack_ids: Vec<u32> = Vec::new();
    let mut remaining = nc;
    let mut cur = next[HEAD as usize];

    // The deepest backtrack so far: `saved` equals stack_ids[..saved_low] until the stack shrinks
    // below `saved_low`.
    let mut best: Option<(usize, M::State, usize)> = None; // (len, state, blocked)
    let mut saved: Vec<u32> = Vec::new();
    let mut saved_low = 0usize;
    let deepest = |best: &Option<(usize, M::State, usize)>, saved: &[u32]| {
        best.as_ref().map(|(len, s, blocked)| Deepest {
            prefix: saved[..*len].iter().map(|&k| order[k as usize]).collect(),
            state: s.clone(),
            blocked: order[*blocked],
        })
    };

    let mut tick: u32 = 0;
    loop {
        if remaining == 0 {
            stats.memo_bytes = stats.memo_bytes.max(memo.bytes());
            return (SearchResult::Linearizable, stats);
        }
        tick = tick.wrapping_add(1);
        if tick & 0x3ff == 0 {
            let bytes = memo.bytes() + model.heap_bytes();
            stats.memo_bytes = stats.memo_bytes.max(memo.bytes());
            let exhausted = if bytes > options.memory_limit_bytes {
                Err(Exhausted::Memory(options.memory_limit_bytes))
            } else {
                options.budget.check_time()
            };
            if let Err(why) = exhausted {
                stats.memo_bytes = stats.memo_bytes.max(memo.bytes());
                return (SearchResult::Exhausted(why, deepest(&best, &saved)), stats);
            }
            if (options.cancelled)(stats.steps) {
                return (
                    SearchResult::Exhausted(Exhausted::Steps(stats.steps), None),
                    stats,
                );
            }
        }
        debug_assert_ne!(
            cur, NIL,
            "a return entry always remains while remaining > 0"
        );
        let node = cur;
        let k = ((node - 1) / 2) as usize;
        if node % 2 == 1 {
            // A call: try to linearize operation k now (in its pass).
            if (k >= nc) != unknown_pass {
                cur = next[node as usize];
                continue;
            }
            let allowed = k < nc || sym_prev[k] == NIL || bits.get(sym_prev[k] as usize);
            if allowed {
                if let Some(limit) = options.step_limit
                    && stats.steps >= limit
                {
                    stats.memo_bytes = stats.memo_bytes.max(memo.bytes());
                    return (
                        SearchResult::Exhausted(Exhausted::Steps(limit), deepest(&best, &saved)),
                        stats,
                    );
                }
                stats.steps += 1;
                let o = op(k);
                let mut stepped = model.step(&state, &o.input, o.output.as_ref());
                if let (Some(new_state), Some(lr)) = (&stepped, &mut later) {
                    lr.linearize(k);
                    if let Some(r) = lr.witness(ret_of) {
                        let w = op(r);
                        let out = w.output.as_ref().expect("witness reads have an outcome");
                        if !model.can_grow_into(new_state, &w.input, out) {
                            lr.unlinearize(k);
                            stepped = None;
                        }
                    }
                }
                if let Some(new_state) = stepped {
                    bits.set(k);
                    if let Some(at) = memo.insert(&bits, &new_state) {
                        stats.configurations += 1;
                        let old = std::mem::replace(&mut state, new_state);
                        stack.push((k as u32, old, at, unknown_pass));
                        unknown_pass = false;
                        stack_ids.push(k as u32);
                        // lift: remove the call, then the return.
                        let c = node as usize;
                        next[prev[c] as usize] = next[c];
                        if next[c] != NIL {
                            prev[next[c] as usize] = prev[c];
                        }
                        if k < nc {
                            let r = c + 1;
                            next[prev[r] as usize] = next[r];
                            if next[r] != NIL {
                                prev[next[r] as usize] = prev[r];
                            }
                            remaining -= 1;
                        }
                        cur = next[HEAD as usize];
                        continue;
                    }
                    bits.clear(k);
                    if let Some(lr) = &mut later {
                        lr.unlinearize(k);
                    }
                }
            }
            cur = next[node as usize];
        } else {
            // The return of operation k: it cannot be linearized in this configuration.
            if !unknown_pass && n > nc {
                // Known-outcome candidates are exhausted; now the unknown-outcome ones.
                unknown_pass = true;
                cur = next[HEAD as usize];
                continue;
            }
            let depth = stack_ids.len();
            if best.as_ref().is_none_or(|b| depth > b.0) {
                saved.truncate(saved_low.min(saved.len()));
                saved.extend_from_slice(&stack_ids[saved.len()..]);
                saved_low = depth;
                best = Some((depth, state.clone(), k));
            }
            let Some((j, old, at, pass)) = stack.pop() else {
                stats.memo_bytes = stats.memo_bytes.max(memo.bytes());
                let d = deepest(&best, &saved).expect("recorded above");
                return (SearchResult::Violation(d), stats);
            };
            stack_ids.pop();
            memo.finish(at, &bits);
            unknown_pass = pass;
            saved_low = saved_low.min(stack_ids.len());
            state = old;
            let j = j as usize;
            bits.clear(j);
            if let Some(lr) = &mut later {
                lr.unlinearize(j);
            }
            // unlift: restore the return, then the call.
            let c = 1 + 2 * j;
            if j < nc {
                let r = c + 1;
                next[prev[r] as usize] = r as u32;
                if next[r] != NIL {
                    prev[next[r] as usize] = r as u32;
                }
                remaining += 1;
            }
            next[prev[c] as usize] = c as u32;
            if next[c] != NIL {
                prev[next[c] as usize] = c as u32;
            }
            cur = next[c];
        }
    }
}
