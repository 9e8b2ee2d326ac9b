//! The consistent-hash ring and the quorum arithmetic (Dynamo §4.2, §4.3, §4.5).
//!
//! Every node of the role owns `vnodes` tokens on a 64-bit ring: token `v` of the node at
//! position `i` in the role is `xxh3_64("node-<i>/vnode-<v>")`, and a key sits at
//! `xxh3_64("key/<key>")`. XXH3 is fixed (no per-process seed, unlike std's `RandomState`), so
//! the ring is the same in every run, on every machine, and in the checks that rebuild it. The
//! **preference list** of a key is the first `n` *distinct* nodes met walking clockwise from the
//! key's position (§4.3: virtual nodes of a node already listed are skipped); walking further
//! gives the **fallback** nodes that a sloppy quorum uses (§4.6).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::xxh3_64;

use crate::process::NodeId;

/// The ring of one role: its nodes' tokens, sorted.
#[derive(Clone, Debug)]
pub struct Ring {
    /// (token, node), ascending by token (ties by node, which cannot matter in practice).
    tokens: Vec<(u64, NodeId)>,
    /// The distinct nodes, in role order.
    nodes: Vec<NodeId>,
}

/// The ring position of `key`.
pub fn key_position(key: &str) -> u64 {
    xxh3_64(format!("key/{key}").as_bytes())
}

impl Ring {
    /// The ring of `nodes` (the role's nodes in scenario order), `vnodes` tokens each (at
    /// least 1).
    pub fn new(nodes: &[NodeId], vnodes: u32) -> Ring {
        let mut tokens = Vec::with_capacity(nodes.len() * vnodes as usize);
        for (i, &node) in nodes.iter().enumerate() {
            for v in 0..vnodes.max(1) {
                tokens.push((xxh3_64(format!("node-{i}/vnode-{v}").as_bytes()), node));
            }
        }
        tokens.sort_unstable();
        Ring {
            tokens,
            nodes: nodes.to_vec(),
        }
    }

    /// Every distinct node met walking clockwise from `key`'s position: the first `n` are its
    /// preference list, the rest its fallbacks in order. Always holds every node once.
    pub fn walk(&self, key: &str) -> Vec<NodeId> {
        let position = key_position(key);
        let start = self.tokens.partition_point(|&(t, _)| t < position);
        let mut out: Vec<NodeId> = Vec::with_capacity(self.nodes.len());
        for k in 0..self.tokens.len() {
            let node = self.tokens[(start + k) % self.tokens.len()].1;
            if !out.contains(&node) {
                out.push(node);
                if out.len() == self.nodes.len() {
                    break;
                }
            }
        }
        out
    }

    /// The preference list of `key`: its first `n` distinct nodes clockwise (all nodes if `n`
    /// exceeds their number).
    pub fn preference(&self, key: &str, n: usize) -> Vec<NodeId> {
        let mut walk = self.walk(key);
        walk.truncate(n);
        walk
    }

    /// The role's nodes.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }
}

/// A consistency level: how many of a key's `n` replicas must answer (Cassandra's names for
/// Dynamo's R and W). Written `"one"`, `"quorum"`, `"all"` or a number.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Level {
    /// One replica.
    One,
    /// A majority of the `n` replicas: `n / 2 + 1`.
    Quorum,
    /// All `n` replicas.
    All,
    /// This many replicas (1..=n).
    Count(u32),
}

impl Level {
    /// How many replicas out of `n` this level needs.
    pub fn of(self, n: u32) -> u32 {
        match self {
            Level::One => 1,
            Level::Quorum => n / 2 + 1,
            Level::All => n,
            Level::Count(c) => c,
        }
    }

    /// The level as written in a scenario.
    pub fn name(self) -> String {
        match self {
            Level::One => "one".into(),
            Level::Quorum => "quorum".into(),
            Level::All => "all".into(),
            Level::Count(c) => c.to_string(),
        }
    }
}

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Level::Count(c) => s.serialize_u32(*c),
            other => s.serialize_str(&other.name()),
        }
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Level;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"one\", \"quorum\", \"all\" or a positive integer")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Level, E> {
                match v {
                    "one" => Ok(Level::One),
                    "quorum" => Ok(Level::Quorum),
                    "all" => Ok(Level::All),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Level, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|&c| c > 0)
                    .map(Level::Count)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Level, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(-1))
            }
        }
        d.deserialize_any(V)
    }
}

/// True if every read quorum meets every write quorum (`r + w > n`, Dynamo §4.5): a read then
/// asks at least one replica that acknowledged the last completed write (strict quorums only;
/// a sloppy quorum voids it).
pub fn quorums_overlap(n: u32, r: u32, w: u32) -> bool {
    r + w > n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(k: u32) -> Vec<NodeId> {
        (0..k).map(NodeId).collect()
    }

    #[test]
    fn preference_lists_hold_n_distinct_nodes_and_extend_to_fallbacks() {
        let ring = Ring::new(&nodes(5), 16);
        for k in 0..50 {
            let key = format!("k{k}");
            let walk = ring.walk(&key);
            assert_eq!(walk.len(), 5, "every node once: {walk:?}");
            let mut sorted = walk.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 5);
            assert_eq!(ring.preference(&key, 3), walk[..3].to_vec());
            assert_eq!(ring.preference(&key, 9).len(), 5);
        }
    }

    #[test]
    fn the_ring_is_the_same_in_every_build_and_spreads_keys() {
        // Fixed hash: the same key lands on the same nodes whenever the ring is rebuilt.
        let a = Ring::new(&nodes(5), 8);
        let b = Ring::new(&nodes(5), 8);
        let mut first = [0u32; 5];
        for k in 0..200 {
            let key = format!("k{k}");
            assert_eq!(a.walk(&key), b.walk(&key));
            first[a.walk(&key)[0].0 as usize] += 1;
        }
        assert!(
            first.iter().all(|&c| c >= 10),
            "every node coordinates a share of keys: {first:?}"
        );
        // Pinned value: changing the hash or the token names moves every key.
        assert_eq!(key_position("k1"), xxh3_64(b"key/k1"));
    }

    #[test]
    fn k1_on_five_nodes_lives_where_the_shipped_scenarios_put_their_partitions() {
        // scenarios/quorum/{sloppy-quorum-partition,counter-partition,bugs/ignore-hints}.toml
        // cut n2 and n5 (positions 1 and 4) away from k1's three replicas.
        let ring = Ring::new(&nodes(5), 16);
        assert_eq!(
            ring.walk("k1"),
            vec![NodeId(3), NodeId(2), NodeId(0), NodeId(1), NodeId(4)]
        );
    }

    #[test]
    fn levels_count_replicas_and_quorums_overlap_only_when_r_plus_w_exceeds_n() {
        assert_eq!(Level::One.of(3), 1);
        assert_eq!(Level::Quorum.of(3), 2);
        assert_eq!(Level::Quorum.of(4), 3);
        assert_eq!(Level::Quorum.of(5), 3);
        assert_eq!(Level::All.of(5), 5);
        assert_eq!(Level::Count(2).of(5), 2);
        assert!(quorums_overlap(3, 2, 2));
        assert!(!quorums_overlap(3, 1, 2));
        assert!(!quorums_overlap(3, 1, 1));
        for n in 1..9 {
            let q = Level::Quorum.of(n);
            assert!(
                quorums_overlap(n, q, q),
                "quorum reads meet quorum writes at n = {n}"
            );
        }
    }

    #[test]
    fn levels_parse_names_and_numbers_and_refuse_the_rest() {
        #[derive(Deserialize, Serialize)]
        struct T {
            l: Level,
        }
        let p = |s: &str| toml::from_str::<T>(s).map(|t| t.l);
        assert_eq!(p("l = \"one\"").unwrap(), Level::One);
        assert_eq!(p("l = \"quorum\"").unwrap(), Level::Quorum);
        assert_eq!(p("l = \"all\"").unwrap(), Level::All);
        assert_eq!(p("l = 2").unwrap(), Level::Count(2));
        assert!(p("l = 0").is_err());
        assert!(p("l = \"most\"").is_err());
        assert_eq!(
            toml::to_string(&T { l: Level::Count(3) }).unwrap().trim(),
            "l = 3"
        );
    }
}
