//! The tunable quorum store: a Dynamo-style key-value store (DeCandia et al., "Dynamo: Amazon's
//! Highly Available Key-value Store", SOSP 2007), the AP side of faultline's CAP lessons.
//!
//! **Placement** (§4.2, §4.3; [`ring`]): every node owns `vnodes` tokens on a consistent-hash
//! ring (a fixed XXH3 hash, never std's `RandomState`); a key's **preference list** is the first
//! `n` distinct nodes clockwise from its hash.
//!
//! **Requests** (§4.5): any node coordinates the request a client sends it, whether or not it is
//! in the key's preference list. A write becomes a new version (see below), goes to the `n`
//! preference nodes (the coordinator applies it at once if it is one of them), and is answered
//! `ok` after `w` acknowledgements; a read asks the `n` nodes and answers the merge of the first
//! `r` replies. Replicas sync to disk before acknowledging. After `coordinator_timeout` without
//! enough answers a read fails and a write ends `info` (some replicas may hold it).
//!
//! **Sloppy quorum and hinted handoff** (§4.6, option `sloppy_quorum`): `fallback_after` into a
//! request, every preference node that has not answered is replaced by the next node on the ring
//! beyond the preference list, which stores the write as a *hint* naming the owner (in a store
//! of its own, answered to sloppy reads only) and counts towards `w`; every `handoff_interval` a
//! node offers its hints to their owners and drops each one its owner acknowledged. Writes then
//! succeed on both sides of a partition, and a later strict read may miss them until handoff.
//!
//! **Read repair** (§5, option `read_repair`): replicas whose reply differs from the merged
//! state get the merge, including replies that arrive after the client was answered.
//!
//! **Anti-entropy** (§4.7, option `anti_entropy_interval`): every interval a node sends one
//! co-replica (in turn) a digest (XXH3 of the state) of every key both replicate; the receiver
//! ships back the states whose digests differ or that the sender lacks and asks for the
//! sender's. This is a per-key digest comparison, not Dynamo's Merkle tree: its cost grows with
//! the keys held, which is small here (`keys` ≤ the workload's limit).
//!
//! **Conflict resolution** (option `resolution`; [`state`]): `lww` (the coordinator's *local*
//! clock stamps each write, so clock skew silently loses writes), `version-vectors` (siblings
//! returned to clients, writes carry the context they read, §4.4) or `counter` (a PN-counter
//! CRDT, Shapiro et al. 2011).
//!
//! **Clients.** `kv` clients (get, put) are served in `lww` mode, so `linearizability` and
//! `stale-read` judge them; the `siblings` workload ([`client`]) reads siblings with their
//! context and writes back with it; the `counter` workload adds and reads.
//!
//! **Checks** ([`checks`]): `lost-writes` (an acknowledged write that no read can ever see again:
//! not in the final merge of the key's replicas, nor superseded by a write that knew it),
//! `replica-convergence` (after the final heal, every up replica of a key holds the same state)
//! and `staleness` (how far behind the acknowledged writes each read was, in versions and time).
//!
//! **Planted bugs**: `ignore-hints` (hints are stored but never handed back, so a write
//! acknowledged only by fallbacks never reaches its replicas: `lost-writes`) and `drop-siblings`
//! (the merge keeps one of two concurrent versions: `lost-writes`).

pub mod checks;
pub mod client;
pub mod narrate;
pub mod ring;
pub mod server;
pub mod state;

#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::families::kv;
use crate::family::{self, Bug, Family, ProtocolInfo};
use crate::process::NodeId;

pub use server::{Config, Resolution, Server};
pub use state::{CausalContext, Dot, State, VClock};

/// The protocol's name.
pub const PROTOCOL_NAME: &str = "quorum-store";
/// Planted bug: hints are never handed back.
pub const BUG_IGNORE_HINTS: &str = "ignore-hints";
/// Planted bug: concurrent siblings are collapsed to one.
pub const BUG_DROP_SIBLINGS: &str = "drop-siblings";

/// The registry entry: the quorum store, its two workloads and its three checks.
pub static FAMILY: Family = Family {
    name: "quorum",
    summary: "a Dynamo-style tunable quorum store: N/R/W on a consistent-hash ring, sloppy quorums, hinted handoff, read repair, anti-entropy; LWW, version vectors or a PN-counter",
    protocols: &[PROTOCOL],
    workloads: &[client::SIBLINGS_WORKLOAD, client::COUNTER_WORKLOAD],
    checks: &[
        checks::LOST_WRITES_CHECK,
        checks::CONVERGENCE_CHECK,
        checks::STALENESS_CHECK,
    ],
    decisions: None,
    narrator: Some(narrate::narrator),
    fold: None,
};

/// The `quorum-store` protocol.
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: PROTOCOL_NAME,
    summary: "Dynamo: N replicas per key on a hash ring, R/W quorums at any coordinator, sloppy quorums with hinted handoff, read repair, anti-entropy",
    serves: &[
        kv::WORKLOAD_NAME,
        client::SIBLINGS_WORKLOAD_NAME,
        client::COUNTER_WORKLOAD_NAME,
    ],
    bugs: &[
        Bug {
            name: BUG_IGNORE_HINTS,
            summary: "fallback nodes keep their hints forever instead of handing them back, so a write acknowledged by fallbacks never reaches its replicas",
            caught_by: "lost-writes",
        },
        Bug {
            name: BUG_DROP_SIBLINGS,
            summary: "merging concurrent versions keeps only one of them, silently discarding the other",
            caught_by: "lost-writes",
        },
    ],
    built_on: &[],
    configure: |ctx| {
        family::configure(ctx, server::validate, |setup, c: &Config| {
            Box::new(Server::new(setup, c.clone()))
        })
    },
};

/// Messages between `quorum-store` nodes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// Coordinator → replica: merge `state` into `key` (as a hint for `hint` if set) and
    /// acknowledge.
    Write {
        /// The coordinator's operation id.
        op: u64,
        /// The key.
        key: String,
        /// The new version.
        state: State,
        /// The preference-list node this fallback stands in for.
        hint: Option<NodeId>,
    },
    /// Replica → coordinator: the write is durable here.
    WriteAck {
        /// The operation id.
        op: u64,
    },
    /// Coordinator → replica: send your state of `key` (a fallback: your hints for it).
    Read {
        /// The operation id.
        op: u64,
        /// The key.
        key: String,
        /// True if the receiver is asked as a fallback.
        fallback: bool,
    },
    /// Replica → coordinator: its state (absent: never written).
    ReadReply {
        /// The operation id.
        op: u64,
        /// The state.
        state: Option<State>,
    },
    /// Read repair: merge this state.
    Repair {
        /// The key.
        key: String,
        /// The merged state the coordinator read.
        state: State,
    },
    /// Hinted handoff: a fallback hands a hint to its owner.
    Handoff {
        /// The key.
        key: String,
        /// The hinted state.
        state: State,
    },
    /// The owner merged the hint whose state had this digest.
    HandoffAck {
        /// The key.
        key: String,
        /// The digest of the state handed off.
        digest: u64,
    },
    /// Anti-entropy: the sender's digest of each key both replicate.
    Digest {
        /// (key, digest of the sender's state).
        entries: Vec<(String, u64)>,
    },
    /// Anti-entropy: states to merge, and keys whose states the receiver should send back.
    Sync {
        /// (key, state).
        states: Vec<(String, State)>,
        /// Keys to send back.
        want: Vec<String>,
    },
}

/// Timers of a `quorum-store` node.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum Timer {
    /// Operation `op` has waited `coordinator_timeout`.
    Coordinator {
        /// The operation id.
        op: u64,
    },
    /// Operation `op` has waited `fallback_after` (sloppy quorum).
    Fallback {
        /// The operation id.
        op: u64,
    },
    /// Offer hints to their owners.
    Handoff,
    /// Start an anti-entropy exchange.
    AntiEntropy,
}

/// Facts for the family's checks.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fact", rename_all = "kebab-case")]
pub enum Observation {
    /// The node's own (durable) state of `key` is now `state` (also emitted for every key
    /// reloaded after a restart).
    Stored {
        /// The key.
        key: String,
        /// The state.
        state: State,
    },
    /// The node durably holds a hint for `owner`.
    Hinted {
        /// The key.
        key: String,
        /// The preference-list node the hint is for.
        owner: NodeId,
    },
    /// Version vectors: the coordinator made the version `dot` with `value`.
    Versioned {
        /// The key.
        key: String,
        /// The value written.
        value: String,
        /// The version's identity.
        dot: Dot,
        /// The causal context its client read: the versions it supersedes.
        context: CausalContext,
    },
}

/// A `siblings` or `counter` client's operation.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum QOp {
    /// Read a key's siblings (or, in `lww` mode, its value).
    Get {
        /// The key.
        key: String,
    },
    /// Write a value with the context the client read (empty: a blind write).
    Put {
        /// The key.
        key: String,
        /// The value (unique in the run).
        value: String,
        /// The causal context the client read (every version it saw).
        context: CausalContext,
    },
    /// Add `delta` to a counter.
    Add {
        /// The key.
        key: String,
        /// The amount (negative: subtract).
        delta: i64,
    },
    /// Read a counter.
    Read {
        /// The key.
        key: String,
    },
}

impl QOp {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            QOp::Get { key } | QOp::Put { key, .. } | QOp::Add { key, .. } | QOp::Read { key } => {
                key
            }
        }
    }
}

/// A coordinator's answer to a `siblings` or `counter` client.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Answer {
    /// A write took effect.
    Done,
    /// A read's siblings (sorted) and the merged state's causal context, the context for the
    /// next write.
    Siblings {
        /// The values.
        values: Vec<String>,
        /// The context.
        context: CausalContext,
    },
    /// A counter read.
    Count {
        /// The counter's value.
        value: i64,
    },
    /// Certainly not done.
    Fail {
        /// Why.
        error: String,
    },
    /// Maybe done.
    Unknown {
        /// Why.
        error: String,
    },
}

/// A `siblings` or `counter` client's request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Request {
    /// Unique per client node.
    pub id: u64,
    /// The operation.
    pub op: QOp,
}

/// A coordinator's reply.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reply {
    /// The request id it answers.
    pub id: u64,
    /// The answer.
    pub answer: Answer,
}

/// Traffic between `siblings`/`counter` clients and `quorum-store` nodes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// Client → coordinator.
    Request(Request),
    /// Coordinator → client.
    Reply(Reply),
}
