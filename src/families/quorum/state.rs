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
//! - **`version-vectors`** (Dynamo §4.4): a set of **siblings**. A write carries the context
//!   its client read (the merged [`VClock`] of the siblings it saw, Dynamo's "context"); the
//!   coordinator gives the new version a fresh [`Dot`] (its node index and the next value of a
//!   durable per-node counter) and keeps the context beside it. A sibling is superseded exactly
//!   when another's context covers its dot, so a write replaces what its client saw and stays
//!   concurrent with everything else. This is the dotted version vector of Preguiça et al.
//!   (2012), which Riak adopted: with a plain vector advanced at the coordinator, a write whose
//!   client saw nothing would wrongly dominate an unseen version coordinated by the same node.
//!   Merge is the union by dot minus every superseded sibling.
//! - **`counter`** (a PN-counter, Shapiro et al. 2011, §3.1.2): for each node, the total it
//!   added (`p`) and subtracted (`n`); merge is the entrywise maximum; the value is
//!   `Σp − Σn`. Each coordinator only ever raises its own entries, from a durable total of its
//!   own, so no increment is counted twice or lost by a merge.

use std::collections::BTreeMap;

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

/// A version vector: node index → the number of versions that node coordinated (Dynamo's
/// "vector clock", §4.4). Absent entries are 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VClock(pub BTreeMap<u32, u64>);

impl VClock {
    /// The entry of `node` (0 if absent).
    pub fn get(&self, node: u32) -> u64 {
        self.0.get(&node).copied().unwrap_or(0)
    }

    /// True if every entry of `self` is at most the one of `other` (`self` happened before or
    /// equals `other`).
    pub fn le(&self, other: &VClock) -> bool {
        self.0.iter().all(|(&n, &c)| c <= other.get(n))
    }

    /// True if `self` happened strictly before `other`.
    pub fn lt(&self, other: &VClock) -> bool {
        self.le(other) && self != other
    }

    /// The entrywise maximum with `other`.
    pub fn merge(&mut self, other: &VClock) {
        for (&n, &c) in &other.0 {
            let e = self.0.entry(n).or_insert(0);
            *e = (*e).max(c);
        }
    }
}

/// One write's identity under version vectors: its coordinator's node index and that node's
/// counter for it (unique in a run: the counter is durable and only grows).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dot {
    /// The coordinator's node index.
    pub node: u32,
    /// Its counter, from 1.
    pub counter: u64,
}

/// One version of a key under version vectors.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sibling {
    /// The write's identity.
    pub dot: Dot,
    /// What the write's client had read: the versions it supersedes.
    pub context: VClock,
    /// The value written.
    pub value: String,
}

impl Sibling {
    /// True if `other`'s context covers this sibling's dot (`other` supersedes it).
    pub fn superseded_by(&self, other: &Sibling) -> bool {
        other.context.get(self.dot.node) >= self.dot.counter
    }

    /// The version's clock: its context with its dot.
    pub fn clock(&self) -> VClock {
        let mut c = self.context.clone();
        c.merge(&VClock([(self.dot.node, self.dot.counter)].into()));
        c
    }
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
    /// Version vectors: the siblings, sorted by clock, none dominating another.
    Siblings {
        /// The concurrent versions.
        versions: Vec<Sibling>,
    },
    /// A PN-counter.
    Counter(Counter),
}

/// How merges behave: correct, or with a planted bug.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeRules {
    /// Planted bug `drop-siblings`: of two concurrent versions keep only the one with the
    /// greater (clock, value), as if the other were superseded.
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
            (State::Siblings { versions }, State::Siblings { versions: other }) => {
                let mut all: Vec<Sibling> =
                    versions.drain(..).chain(other.iter().cloned()).collect();
                all.sort();
                all.dedup_by(|a, b| a.dot == b.dot);
                let kept: Vec<Sibling> = all
                    .iter()
                    .filter(|s| !all.iter().any(|t| s.superseded_by(t)))
                    .cloned()
                    .collect();
                *versions = if rules.drop_siblings {
                    kept.into_iter().max().into_iter().collect()
                } else {
                    kept
                };
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

    /// The merged clock of every sibling: the context a client reading this state writes back
    /// (empty for other kinds).
    pub fn context(&self) -> VClock {
        let mut c = VClock::default();
        if let State::Siblings { versions } = self {
            for s in versions {
                c.merge(&s.clock());
            }
        }
        c
    }

    /// The values a client sees: the LWW value, or the siblings' values sorted (empty for a
    /// counter).
    pub fn values(&self) -> Vec<String> {
        match self {
            State::Lww { value, .. } => vec![value.clone()],
            State::Siblings { versions } => {
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

    fn vc(entries: &[(u32, u64)]) -> VClock {
        VClock(entries.iter().copied().collect())
    }

    fn sib(node: u32, counter: u64, context: &[(u32, u64)], value: &str) -> Sibling {
        Sibling {
            dot: Dot { node, counter },
            context: vc(context),
            value: value.into(),
        }
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
        let base = State::Siblings {
            versions: vec![sib(0, 1, &[], "a")],
        };
        let left = State::Siblings {
            versions: vec![sib(1, 1, &[(0, 1)], "b")],
        };
        let right = State::Siblings {
            versions: vec![sib(2, 1, &[(0, 1)], "c")],
        };
        let mut s = base.clone();
        s.merge(&left, MergeRules::default());
        s.merge(&right, MergeRules::default());
        assert_eq!(
            s.values(),
            vec!["b", "c"],
            "a is superseded, b and c are concurrent"
        );
        assert_eq!(s.context(), vc(&[(0, 1), (1, 1), (2, 1)]));
        // A write with the merged context supersedes both.
        let resolved = State::Siblings {
            versions: vec![sib(0, 2, &[(0, 1), (1, 1), (2, 1)], "d")],
        };
        s.merge(&resolved, MergeRules::default());
        assert_eq!(s.values(), vec!["d"]);
        // A blind write (empty context) at node 0 does not hide b or c, though its dot is the
        // highest node 0 made: the dot, not a vector, says what it supersedes.
        let blind = State::Siblings {
            versions: vec![sib(0, 3, &[], "e")],
        };
        s.merge(&blind, MergeRules::default());
        assert_eq!(s.values(), vec!["d", "e"]);
        // The planted bug keeps one of two concurrent siblings.
        let mut bugged = left;
        bugged.merge(
            &right,
            MergeRules {
                drop_siblings: true,
            },
        );
        assert_eq!(bugged.values().len(), 1);
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
    /// write `i` goes to node `node`, whose client read the earlier writes in the bit mask
    /// `seen`; each state holds the writes in its own mask, merged.
    fn three_sibling_states() -> impl Strategy<Value = (State, State, State)> {
        (
            proptest::collection::vec((0u32..3, 0u32..255), 6),
            [0u32..64, 0u32..64, 0u32..64],
        )
            .prop_map(|(writes, keeps)| {
                let mut counters = [0u64; 3];
                let mut made: Vec<Sibling> = Vec::new();
                for (i, &(node, seen)) in writes.iter().enumerate() {
                    let mut context = VClock::default();
                    for (j, w) in made.iter().enumerate() {
                        if seen & (1 << j) != 0 {
                            context.merge(&w.clock());
                        }
                    }
                    counters[node as usize] += 1;
                    made.push(Sibling {
                        dot: Dot {
                            node,
                            counter: counters[node as usize],
                        },
                        context,
                        value: format!("w{i}"),
                    });
                }
                let state = |keep: u32| {
                    let mut s = State::Siblings { versions: vec![] };
                    for (i, w) in made.iter().enumerate() {
                        if keep & (1 << i) != 0 {
                            s.merge(
                                &State::Siblings {
                                    versions: vec![w.clone()],
                                },
                                MergeRules::default(),
                            );
                        }
                    }
                    s
                };
                (state(keeps[0]), state(keeps[1]), state(keeps[2]))
            })
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
    }
}
