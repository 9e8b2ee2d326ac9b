//! What a replica stores per key, and how two copies merge.
//!
//! One [`State`] kind per conflict-resolution mode, each with a merge that is commutative,
//! associative and idempotent (so replicas may exchange copies in any order, any number of
//! times, and agree once they have seen the same writes):
//!
//! - **`lww`** (last write wins, Dynamo §4.4's "last write wins" option, Cassandra's only mode):
//!   one value with a [`Stamp`] (the coordinator's *local* clock reading, then its node index
//!   to break ties). Merge keeps the higher stamp. A coordinator whose clock is behind gives a
//!   later write a lower stamp, and the merge silently drops it.
//! - **`version-vectors`** (Dynamo §4.4, kept as Riak does with dotted version vectors,
//!   Preguiça et al. 2012, in the causal-context form of Almeida, Shoker and Baquero, "Delta
//!   state replicated data types", 2018, their multi-value register): a set of **siblings**, each
//!   a value with a [`Dot`] (its coordinator's node index and a counter), plus the state's
//!   [`CausalContext`]: the set of every dot the state has seen, surviving or superseded. A
//!   write carries the causal context its client read (Dynamo's "context"); the coordinator
//!   gives the new version a fresh dot, and the write is the state {that sibling} with context
//!   "what the client read, plus the new dot". A sibling is superseded exactly when the other
//!   state's context holds its dot without the sibling, so a write replaces what its client saw
//!   and stays concurrent with everything else. Merge keeps the siblings both states hold and
//!   each sibling the other state has not seen, and unites the contexts. Because a context is a
//!   set of dots (not one vector folded over a sibling's dot, which would claim that sibling's
//!   writer saw every earlier dot of its coordinator) and belongs to the whole state (so the
//!   knowledge a superseded sibling carried outlives it), this is a join: the state is the pair
//!   (seen, seen minus siblings), merged by union on both.
//! - **`counter`** (a PN-counter, Shapiro et al. 2011, §3.1.2): for each node, the total it
//!   added (`p`) and subtracted (`n`); merge is the entrywise maximum; the value is
//!   `Σp − Σn`. Each coordinator only ever raises its own entries, from a durable total of its
//!   own, so no increment is counted twice or lost by a merge.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// A last-write-wins timestamp: the coordinator's local clock (ns) when it took the write, then
/// its node index. Ordered lexicographically.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Stamp {
    /// The coordinator's local clock reading, in nanoseconds.
    pub time_ns: i64,
    /// The coordinator's node index (tie-break).
    pub node: u32,
}

/// A version vector: node index → a counter (absent entries are 0). In a [`CausalContext`] it
/// says that every dot of that node up to the counter was seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VClock(pub BTreeMap<u32, u64>);

impl VClock {
    /// The entry of `node` (0 if absent).
    pub fn get(&self, node: u32) -> u64 {
        self.0.get(&node).copied().unwrap_or(0)
    }
}

/// One write's identity under version vectors: its coordinator's node index and that node's
/// counter for the key (unique per key in a run: see [`State::next_counter`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dot {
    /// The coordinator's node index.
    pub node: u32,
    /// Its counter, from 1.
    pub counter: u64,
}

/// A set of dots: what a state (or the client that read it) has seen. Held compactly and
/// canonically (so equal sets compare equal): `vv` holds, per node, the longest run of
/// counters `1..=vv[node]` in the set, and `cloud` every other dot of the set (each beyond its
/// node's run by at least 2). This is the causal context of Almeida, Shoker and Baquero (2018),
/// the version vector plus "dot cloud" of Riak's `riak_dt`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CausalContext {
    /// Node index → every counter from 1 to this one is in the set (no zero entries).
    pub vv: VClock,
    /// The set's other dots, sorted.
    pub cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// True if `dot` is in the set.
    pub fn contains(&self, dot: Dot) -> bool {
        dot.counter <= self.vv.get(dot.node) || self.cloud.contains(&dot)
    }

    /// The highest counter of `node` in the set (0 if none).
    pub fn max_counter(&self, node: u32) -> u64 {
        let in_cloud = self
            .cloud
            .range(
                Dot { node, counter: 0 }..=Dot {
                    node,
                    counter: u64::MAX,
                },
            )
            .next_back()
            .map_or(0, |d| d.counter);
        self.vv.get(node).max(in_cloud)
    }

    /// Adds `dot`.
    pub fn insert(&mut self, dot: Dot) {
        if !self.contains(dot) {
            self.cloud.insert(dot);
            self.compact();
        }
    }

    /// Adds every dot of `other` (set union).
    pub fn union(&mut self, other: &CausalContext) {
        for (&node, &c) in &other.vv.0 {
            let e = self.vv.0.entry(node).or_insert(0);
            *e = (*e).max(c);
        }
        self.cloud.extend(other.cloud.iter().copied());
        self.compact();
    }

    /// Restores the canonical form: moves every dot that extends its node's run into `vv` and
    /// drops cloud dots the run covers.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for dot in cloud {
            let run = self.vv.get(dot.node);
            if dot.counter == run + 1 {
                self.vv.0.insert(dot.node, dot.counter);
            } else if dot.counter > run + 1 {
                self.cloud.insert(dot);
            }
        }
    }
}

/// One version of a key under version vectors.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sibling {
    /// The write's identity.
    pub dot: Dot,
    /// The value written.
    pub value: String,
}

/// A PN-counter's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Node index → total added by that node.
    pub p: BTreeMap<u32, u64>,
    /// Node index → total subtracted by that node.
    pub n: BTreeMap<u32, u64>,
}

impl Counter {
    /// The counter's value, `Σp − Σn`.
    pub fn value(&self) -> i64 {
        self.p.values().sum::<u64>() as i64 - self.n.values().sum::<u64>() as i64
    }
}

/// A replica's state of one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum State {
    /// Last write wins.
    Lww {
        /// The winning write's stamp.
        stamp: Stamp,
        /// Its value.
        value: String,
    },
    /// Version vectors: the surviving siblings and every dot the state has seen (each
    /// sibling's dot among them).
    Siblings {
        /// The concurrent versions, sorted by dot.
        versions: Vec<Sibling>,
        /// Every dot seen: the siblings' and those of the versions they superseded.
        seen: CausalContext,
    },
    /// A PN-counter.
    Counter(Counter),
}

/// How merges behave: correct, or with a planted bug.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeRules {
    /// Planted bug `drop-siblings`: of concurrent versions keep only the one with the greatest
    /// dot, as if the others were superseded (their dots stay seen).
    pub drop_siblings: bool,
}

impl State {
    /// Merges `other` into `self` (both must be of the same kind; a mismatch keeps `self`).
    pub fn merge(&mut self, other: &State, rules: MergeRules) {
        match (self, other) {
            (
                State::Lww { stamp, value },
                State::Lww {
                    stamp: s2,
                    value: v2,
                },
                // Equal stamps (one coordinator, two writes at one instant) fall to the value, so
                // the merge stays commutative.
            ) if (s2, v2) > (&*stamp, &*value) => {
                *stamp = *s2;
                value.clone_from(v2);
            }
            (State::Lww { .. }, State::Lww { .. }) => {}
            (
                State::Siblings { versions, seen },
                State::Siblings {
                    versions: theirs,
                    seen: their_seen,
                },
            ) => {
                // A sibling survives if the other state holds it too or has never seen its dot.
                let survives = |s: &Sibling, others: &[Sibling], others_seen: &CausalContext| {
                    !others_seen.contains(s.dot) || others.iter().any(|o| o.dot == s.dot)
                };
                let mut kept: Vec<Sibling> = versions
                    .iter()
                    .filter(|s| survives(s, theirs, their_seen))
                    .chain(theirs.iter().filter(|t| {
                        !versions.iter().any(|s| s.dot == t.dot) && survives(t, versions, seen)
                    }))
                    .cloned()
                    .collect();
                kept.sort();
                if rules.drop_siblings && kept.len() > 1 {
                    kept.drain(..kept.len() - 1);
                }
                *versions = kept;
                seen.union(their_seen);
            }
            (State::Counter(a), State::Counter(b)) => {
                for (mine, theirs) in [(&mut a.p, &b.p), (&mut a.n, &b.n)] {
                    for (&node, &c) in theirs {
                        let e = mine.entry(node).or_insert(0);
                        *e = (*e).max(c);
                    }
                }
            }
            _ => {}
        }
    }

    /// `a` merged with `b` (either may be absent).
    pub fn merged(a: Option<&State>, b: Option<&State>, rules: MergeRules) -> Option<State> {
        match (a, b) {
            (Some(a), Some(b)) => {
                let mut m = a.clone();
                m.merge(b, rules);
                Some(m)
            }
            (Some(x), None) | (None, Some(x)) => Some(x.clone()),
            (None, None) => None,
        }
    }

    /// A 64-bit digest of the state (anti-entropy compares digests before shipping states).
    pub fn digest(&self) -> u64 {
        xxh3_64(&serde_json::to_vec(self).expect("states serialize"))
    }

    /// The state a version-vectors write makes: the sibling `dot` = `value`, having seen what
    /// its client read (`context`) and itself.
    pub fn write(context: &CausalContext, dot: Dot, value: &str) -> State {
        let mut seen = context.clone();
        seen.insert(dot);
        State::Siblings {
            versions: vec![Sibling {
                dot,
                value: value.to_string(),
            }],
            seen,
        }
    }

    /// The counter a new version of this key coordinated by `node` gets, given the context its
    /// client read: one past the highest of `node`'s dots that either has seen. A coordinator
    /// keeps every version it makes in its own durable copy of the key, whose context therefore
    /// holds all its dots for the key: counters never repeat, and stay contiguous per key so
    /// contexts stay compact.
    pub fn next_counter(own: Option<&State>, context: &CausalContext, node: u32) -> u64 {
        own.map_or(0, |s| s.context().max_counter(node))
            .max(context.max_counter(node))
            + 1
    }

    /// Every dot the state has seen: the context a client reading it writes back (empty for
    /// other kinds).
    pub fn context(&self) -> CausalContext {
        match self {
            State::Siblings { seen, .. } => seen.clone(),
            _ => CausalContext::default(),
        }
    }

    /// The values a client sees: the LWW value, or the siblings' values sorted (empty for a
    /// counter).
    pub fn values(&self) -> Vec<String> {
        match self {
            State::Lww { value, .. } => vec![value.clone()],
            State::Siblings { versions, .. } => {
                let mut v: Vec<String> = versions.iter().map(|s| s.value.clone()).collect();
                v.sort();
                v
            }
            State::Counter(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dot(node: u32, counter: u64) -> Dot {
        Dot { node, counter }
    }

    fn merge(a: &State, b: &State) -> State {
        State::merged(Some(a), Some(b), MergeRules::default()).unwrap()
    }

    #[test]
    fn lww_keeps_the_higher_stamp_even_when_it_arrives_first() {
        let early = State::Lww {
            stamp: Stamp {
                time_ns: 5,
                node: 1,
            },
            value: "a".into(),
        };
        let late = State::Lww {
            stamp: Stamp {
                time_ns: 9,
                node: 0,
            },
            value: "b".into(),
        };
        let mut s = late.clone();
        s.merge(&early, MergeRules::default());
        assert_eq!(s, late);
        let mut s = early;
        s.merge(&late, MergeRules::default());
        assert_eq!(s, late);
    }

    #[test]
    fn version_vectors_keep_concurrent_siblings_and_drop_dominated_ones() {
        let nothing = CausalContext::default();
        let base = State::write(&nothing, dot(0, 1), "a");
        let left = State::write(&base.context(), dot(1, 1), "b");
        let right = State::write(&base.context(), dot(2, 1), "c");
        let s = merge(&merge(&base, &left), &right);
        assert_eq!(
            s.values(),
            vec!["b", "c"],
            "a is superseded, b and c are concurrent"
        );
        let mut all = CausalContext::default();
        for d in [dot(0, 1), dot(1, 1), dot(2, 1)] {
            all.insert(d);
        }
        assert_eq!(s.context(), all);
        // A write with the merged context supersedes both.
        let resolved = State::write(&s.context(), dot(0, 2), "d");
        let s = merge(&s, &resolved);
        assert_eq!(s.values(), vec!["d"]);
        // A blind write (empty context) at node 0 does not hide d, though its dot is the
        // highest node 0 made: the dot, not a vector, says what it supersedes.
        let blind = State::write(&nothing, dot(0, 3), "e");
        assert_eq!(merge(&s, &blind).values(), vec!["d", "e"]);
        // The planted bug keeps one of two concurrent siblings.
        let bugged = State::merged(
            Some(&left),
            Some(&right),
            MergeRules {
                drop_siblings: true,
            },
        )
        .unwrap();
        assert_eq!(bugged.values().len(), 1);
    }

    /// The case proptest shrank the old merge's failure to (dots folded into contiguous vectors,
    /// knowledge dropped with the siblings that carried it): w1 ‖ w3; w2 saw w1; w4 saw w3; w5
    /// saw w4 but not w2. Every order of merging must give {w2, w5}: w2 was never seen by w5's
    /// writer, though it is an earlier dot of w5's coordinator, and w1 stays superseded by w2
    /// even in a state where w2 arrives after the sibling that knew it.
    #[test]
    fn merge_keeps_an_unseen_earlier_dot_and_what_superseded_siblings_knew() {
        let nothing = CausalContext::default();
        let w1 = State::write(&nothing, dot(1, 1), "w1");
        let w2 = State::write(&w1.context(), dot(0, 2), "w2");
        let w3 = State::write(&nothing, dot(2, 1), "w3");
        let w4 = State::write(&w3.context(), dot(0, 3), "w4");
        let w5 = State::write(&merge(&w3, &w4).context(), dot(0, 4), "w5");
        let a = merge(&w4, &w1);
        let b = w5.clone();
        let c = merge(&w2, &w3);
        let left = merge(&merge(&a, &b), &c);
        let right = merge(&a, &merge(&b, &c));
        assert_eq!(left, right);
        assert_eq!(left.values(), vec!["w2", "w5"]);
        assert_eq!(merge(&merge(&a, &c), &b), left);
    }

    #[test]
    fn causal_contexts_are_canonical_whatever_the_insertion_order() {
        let mut x = CausalContext::default();
        for d in [dot(0, 3), dot(0, 1), dot(1, 2), dot(0, 2), dot(0, 5)] {
            x.insert(d);
        }
        assert_eq!(x.vv, VClock([(0, 3)].into()));
        assert_eq!(x.cloud, [dot(0, 5), dot(1, 2)].into());
        assert!(x.contains(dot(0, 2)) && x.contains(dot(0, 5)) && !x.contains(dot(0, 4)));
        assert_eq!(
            (x.max_counter(0), x.max_counter(1), x.max_counter(2)),
            (5, 2, 0)
        );
        let mut y = CausalContext::default();
        y.insert(dot(1, 1));
        y.insert(dot(0, 4));
        y.union(&x);
        assert_eq!(y.vv, VClock([(0, 5), (1, 2)].into()));
        assert!(y.cloud.is_empty());
    }

    #[test]
    fn counters_merge_by_entrywise_maximum() {
        let a = State::Counter(Counter {
            p: [(0, 3), (1, 1)].into(),
            n: [(0, 1)].into(),
        });
        let b = State::Counter(Counter {
            p: [(0, 2), (2, 4)].into(),
            n: BTreeMap::new(),
        });
        let m = State::merged(Some(&a), Some(&b), MergeRules::default()).unwrap();
        let State::Counter(c) = &m else { panic!() };
        assert_eq!(c.value(), 3 + 1 + 4 - 1);
    }

    fn arb_state(kind: u8) -> BoxedStrategy<State> {
        match kind {
            0 => (0i64..5, 0u32..3, "[ab]")
                .prop_map(|(t, n, v)| State::Lww {
                    stamp: Stamp {
                        time_ns: t,
                        node: n,
                    },
                    value: format!("{v}{t}{n}"),
                })
                .boxed(),
            _ => (
                proptest::collection::btree_map(0u32..3, 0u64..5, 0..3),
                proptest::collection::btree_map(0u32..3, 0u64..5, 0..3),
            )
                .prop_map(|(p, n)| State::Counter(Counter { p, n }))
                .boxed(),
        }
    }

    /// Three sibling states made of writes from one causal history (as a run makes them):
    /// write `i` goes to node `node`, whose client read the merge of the earlier writes in the
    /// bit mask `seen`; each state holds the writes in its own mask, merged. Dots are unique but,
    /// unlike a run's, need not follow their node's earlier dots into every state. Also gives
    /// each write's dot and the context its client read.
    fn sibling_history() -> impl Strategy<Value = (Vec<(Dot, CausalContext)>, [State; 3])> {
        (
            proptest::collection::vec((0u32..3, 0u32..255), 6),
            [0u32..64, 0u32..64, 0u32..64],
        )
            .prop_map(|(writes, keeps)| {
                let mut counters = [0u64; 3];
                let mut made: Vec<State> = Vec::new();
                let mut reads: Vec<(Dot, CausalContext)> = Vec::new();
                let merge_of = |made: &[State], mask: u32| {
                    made.iter()
                        .enumerate()
                        .filter(|(j, _)| mask & (1 << j) != 0)
                        .fold(None, |acc, (_, w)| {
                            State::merged(acc.as_ref(), Some(w), MergeRules::default())
                        })
                };
                for (i, &(node, seen)) in writes.iter().enumerate() {
                    let context = merge_of(&made, seen)
                        .map(|s| s.context())
                        .unwrap_or_default();
                    counters[node as usize] += 1;
                    let d = dot(node, counters[node as usize]);
                    made.push(State::write(&context, d, &format!("w{i}")));
                    reads.push((d, context));
                }
                let state = |keep: u32| {
                    merge_of(&made, keep).unwrap_or(State::Siblings {
                        versions: Vec::new(),
                        seen: CausalContext::default(),
                    })
                };
                (reads, keeps.map(state))
            })
    }

    fn three_sibling_states() -> impl Strategy<Value = (State, State, State)> {
        sibling_history().prop_map(|(_, [a, b, c])| (a, b, c))
    }

    fn three() -> impl Strategy<Value = (State, State, State)> {
        prop_oneof![
            (arb_state(0), arb_state(0), arb_state(0)),
            (arb_state(2), arb_state(2), arb_state(2)),
            three_sibling_states(),
        ]
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_and_idempotent((a, b, c) in three()) {
            let r = MergeRules::default();
            let m = |x: &State, y: &State| State::merged(Some(x), Some(y), r).unwrap();
            prop_assert_eq!(m(&a, &b), m(&b, &a));
            prop_assert_eq!(m(&m(&a, &b), &c), m(&a, &m(&b, &c)));
            prop_assert_eq!(m(&a, &a), a.clone());
            prop_assert_eq!(m(&m(&a, &b), &b), m(&a, &b));
        }

        /// What `lost-writes` demands of the merge: every write any state holds is, in the
        /// merge, a sibling or read by the client of a write the merge has seen.
        #[test]
        fn merge_keeps_every_write_no_later_writer_read((reads, states) in sibling_history()) {
            let r = MergeRules::default();
            let all = states.iter().fold(None, |acc, s| State::merged(acc.as_ref(), Some(s), r));
            let Some(State::Siblings { versions: merged, seen }) = all else {
                panic!("sibling states merge to a sibling state")
            };
            for s in &states {
                let State::Siblings { versions, .. } = s else { panic!() };
                for v in versions {
                    let kept = merged.iter().any(|m| m.dot == v.dot)
                        || reads.iter().any(|(d, c)| seen.contains(*d) && c.contains(v.dot));
                    prop_assert!(kept, "{:?} vanished from {:?}", v, merged);
                }
            }
        }
    }
}
