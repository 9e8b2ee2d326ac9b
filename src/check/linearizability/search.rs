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
//! - the linearized set is a bitset with incremental Zobrist hashing; memo keys store only the
//!   window between the first unlinearized and the last linearized operation (everything before
//!   it is linearized), so memory per configuration is proportional to concurrency, not to the
//!   history's length.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

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
        if w + 1 == self.na && self.nc % 64 != 0 {
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
        self.hash ^= self.zobrist[op];
        if op < self.nc {
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
        self.hash ^= self.zobrist[op];
        if op < self.nc {
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

    fn key_eq(&self, low: u32, len_a: u32, stored: &[u64]) -> bool {
        let la = self.high - self.low;
        low as usize == self.low
            && len_a as usize == la
            && stored[..la] == self.words[self.low..self.high]
            && stored[la..] == self.words[self.na..]
    }
}

struct Entry<S> {
    hash: u64,
    low: u32,
    len_a: u32,
    offset: usize,
    state: S,
}

/// The memo table of configurations (Lowe's cache), with key words in one arena.
struct Memo<S> {
    table: HashTable<Entry<S>>,
    arena: Vec<u64>,
    hasher: rustc_hash::FxBuildHasher,
    accounted: usize,
}

impl<S: Eq + Hash> Memo<S> {
    fn new() -> Self {
        Memo {
            table: HashTable::new(),
            arena: Vec::new(),
            hasher: rustc_hash::FxBuildHasher,
            accounted: 0,
        }
    }

    fn bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<Entry<S>>() + 1) + self.arena.capacity() * 8
    }

    /// Inserts the configuration (bits, state); false if it was already there.
    fn insert(&mut self, bits: &Bits, state: &S) -> bool
    where
        S: Clone,
    {
        let hash = splitmix(bits.hash ^ self.hasher.hash_one(state));
        let found = self.table.find(hash, |e| {
            e.hash == hash
                && e.state == *state
                && bits.key_eq(
                    e.low,
                    e.len_a,
                    &self.arena[e.offset..e.offset + bits.key_len_for(e)],
                )
        });
        if found.is_some() {
            return false;
        }
        let offset = self.arena.len();
        self.arena
            .extend_from_slice(&bits.words[bits.low..bits.high]);
        self.arena.extend_from_slice(&bits.words[bits.na..]);
        self.table.insert_unique(
            hash,
            Entry {
                hash,
                low: bits.low as u32,
                len_a: (bits.high - bits.low) as u32,
                offset,
                state: state.clone(),
            },
            |e| e.hash,
        );
        true
    }
}

impl Bits {
    fn key_len_for<S>(&self, e: &Entry<S>) -> usize {
        e.len_a as usize + (self.words.len() - self.na)
    }
}

/// Options of one search.
pub struct SearchOptions<'a> {
    /// The shared budget.
    pub budget: &'a Budget,
    /// Stop after this many model steps (a deterministic limit for counterexample searches).
    pub step_limit: Option<u64>,
    /// Polled now and then; `true` stops the search (its result is then not used).
    pub cancelled: &'a (dyn Fn() -> bool + Sync),
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
    let mut memo_claim = 0usize;
    let result = run(model, ops, options, &mut memo_claim);
    options.budget.release(memo_claim);
    result
}

fn run<M: Model>(
    model: &mut M,
    ops: &[Operation<M::Input, M::Output>],
    options: &SearchOptions<'_>,
    memo_claim: &mut usize,
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

    let mut bits = Bits::new(nc, n - nc);
    let mut memo: Memo<M::State> = Memo::new();
    let mut state = model.init();
    let mut stack: Vec<(u32, M::State)> = Vec::new();
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
            let exhausted = if bytes > memo.accounted {
                options.budget.reserve(bytes - memo.accounted).map(|()| {
                    *memo_claim += bytes - memo.accounted;
                    memo.accounted = bytes;
                })
            } else {
                Ok(())
            }
            .and_then(|()| options.budget.check_time());
            if let Err(why) = exhausted {
                stats.memo_bytes = stats.memo_bytes.max(memo.bytes());
                return (SearchResult::Exhausted(why, deepest(&best, &saved)), stats);
            }
            if (options.cancelled)() {
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
            // A call: try to linearize operation k now.
            let allowed = k < nc || sym_prev[k] == NIL || bits.get(sym_prev[k] as usize);
            if allowed {
                stats.steps += 1;
                if let Some(limit) = options.step_limit {
                    if stats.steps > limit {
                        stats.memo_bytes = stats.memo_bytes.max(memo.bytes());
                        return (
                            SearchResult::Exhausted(
                                Exhausted::Steps(limit),
                                deepest(&best, &saved),
                            ),
                            stats,
                        );
                    }
                }
                let o = op(k);
                if let Some(new_state) = model.step(&state, &o.input, o.output.as_ref()) {
                    bits.set(k);
                    if memo.insert(&bits, &new_state) {
                        stats.configurations += 1;
                        let old = std::mem::replace(&mut state, new_state);
                        stack.push((k as u32, old));
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
                }
            }
            cur = next[node as usize];
        } else {
            // The return of operation k: it cannot be linearized in this configuration.
            let depth = stack_ids.len();
            if best.as_ref().is_none_or(|b| depth > b.0) {
                saved.truncate(saved_low.min(saved.len()));
                saved.extend_from_slice(&stack_ids[saved.len()..]);
                saved_low = depth;
                best = Some((depth, state.clone(), k));
            }
            let Some((j, old)) = stack.pop() else {
                stats.memo_bytes = stats.memo_bytes.max(memo.bytes());
                let d = deepest(&best, &saved).expect("recorded above");
                return (SearchResult::Violation(d), stats);
            };
            stack_ids.pop();
            saved_low = saved_low.min(stack_ids.len());
            state = old;
            let j = j as usize;
            bits.clear(j);
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
