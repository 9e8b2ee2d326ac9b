//! A coordination service on faultline's Raft: etcd's and ZooKeeper's data model (keys with
//! revisions, leases or sessions that expire, sequential ephemeral keys, watches), replicated by
//! the Raft family's node unchanged, and the two lock recipes people run on it: etcd's
//! `concurrency.Mutex` (workload `etcd-lock`) and ZooKeeper's "Recipes and Solutions: Locks"
//! (workload `zk-lock`).
//!
//! This module holds the vocabulary shared by the service and its clients: the machine's
//! commands ([`CoordCommand`]) and outcomes ([`CoordOutcome`]), and the wire messages between
//! clients and servers ([`CoordMessage`]). The replicated machine is in `machine`, the server
//! (a Raft node plus the leader's lessor and the watch hub) in `server`, the clients in
//! `client`.
//!
//! Sources: etcd's documentation (API: KV, Lease, Watch, Txn; `clientv3/concurrency` Mutex and
//! Session), ZooKeeper's Programmer's Guide (sessions, ephemeral and sequential nodes, watches)
//! and "ZooKeeper Recipes and Solutions: Locks", Jepsen's analysis of etcd 3.4.3 (2020).
//!
//! # Revisions, leases and sessions
//!
//! The machine has one revision counter, raised by every change (etcd's store revision,
//! ZooKeeper's zxid). A key remembers the revision that created it (`create_revision`, etcd's
//! `CreateRevision`, ZooKeeper's `czxid`): the fencing token of a lock recipe. A lease (etcd) or
//! session (ZooKeeper; the same thing here) has a TTL; keys attached to it are deleted when it
//! is revoked. Expiry is decided by the Raft leader on its local clock and replicated as a
//! [`CoordCommand::LeaseRevoke`], never by the machine itself (which has no clock): this is
//! etcd's lessor and ZooKeeper's leader-side session tracker.

pub mod client;
pub mod machine;
pub mod server;
#[cfg(test)]
mod sim_tests;

use serde::{Deserialize, Serialize};

use crate::families::registry::Consistency;
use crate::process::NodeId;

pub use machine::CoordMachine;
pub use server::{CoordConfig, CoordServer};

/// A lease id (etcd) or session id (ZooKeeper): the revision that granted it.
pub type LeaseId = u64;

/// A command of the coordination machine, ordered by Raft's log (or, for
/// [`CoordCommand::Range`], read by ReadIndex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum CoordCommand {
    /// Grants a lease (etcd `LeaseGrant`) or opens a session (ZooKeeper `createSession`) of
    /// `ttl_ms`. Answers [`CoordOutcome::Lease`]; the lease id is the revision of the grant.
    LeaseGrant {
        /// The lease's TTL in milliseconds.
        ttl_ms: u64,
    },
    /// Revokes a lease and deletes every key attached to it (etcd `LeaseRevoke`; ZooKeeper's
    /// `closeSession`, which deletes the session's ephemeral nodes). Proposed by the leader when
    /// the lease expires, or by a client that gives its lease up. Answers
    /// [`CoordOutcome::Revoked`] (`existed = false` if it was already gone).
    LeaseRevoke {
        /// The lease.
        lease: LeaseId,
    },
    /// Creates `key` if it does not exist (etcd's
    /// `Txn(If(CreateRevision(key) == 0)).Then(Put(key, value, WithLease(lease)))`; ZooKeeper's
    /// `create`). With `sequential`, the key is `key` followed by a 10-digit sequence number
    /// (ZooKeeper's SEQUENTIAL flag; the number is the new revision, so it grows). With
    /// `lease`, the key is deleted when the lease is revoked (an ephemeral node). Answers
    /// [`CoordOutcome::Created`], or [`CoordOutcome::Exists`] with the existing key's create
    /// revision, or [`CoordOutcome::Error`] if the lease does not exist.
    Create {
        /// The key (the prefix of a sequential key).
        key: String,
        /// Its value (opaque; the recipes store the client's name).
        value: String,
        /// The lease (session) the key is attached to, if any.
        lease: Option<LeaseId>,
        /// Append a sequence number to the key.
        sequential: bool,
    },
    /// Deletes `key`. Answers [`CoordOutcome::Deleted`].
    Delete {
        /// The key.
        key: String,
    },
    /// Reads every key starting with `prefix`, in key order (read-only: etcd's `Range` with a
    /// prefix; ZooKeeper's `getChildren`). Answers [`CoordOutcome::Keys`].
    Range {
        /// The prefix.
        prefix: String,
        /// How fresh the answer must be (see [`Consistency`]; default and what the lock
        /// recipes use: `consistent`, a ReadIndex read on the leader). `default` is answered
        /// by the leader from its applied state without confirming it still leads; `stale` by
        /// any server from its own applied state. Left out of the wire form when
        /// `consistent`.
        #[serde(default = "consistent", skip_serializing_if = "is_consistent")]
        consistency: Consistency,
        /// Answer each key's value too (etcd's `RangeRequest.keys_only`, inverted; the lock
        /// recipes read keys only). Left out of the wire form when false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        with_values: bool,
    },
    /// A guarded write (etcd `Txn(If(CreateRevision(guard_key) == guard_revision)).Then(Put(key,
    /// value))`): the lock holder's write to a resource kept in the service, applied only while
    /// the holder's lock key still exists with the revision it was created with. `writer` and
    /// `token` name the writer and its fencing token for the lock checks (each replica reports
    /// the writes it applies as a fenced storage would). With `guard_key` empty the put is
    /// unconditional (the planted bug `lease-no-keepalive-check` writes that way). Answers
    /// [`CoordOutcome::TxnDone`].
    Txn {
        /// The lock key whose existence guards the write ("" for none).
        guard_key: String,
        /// The create revision the guard key must have.
        guard_revision: u64,
        /// The resource key written.
        key: String,
        /// The value written.
        value: String,
        /// The writing client.
        writer: NodeId,
        /// The writer's fencing token (its lock key's create revision).
        token: u64,
    },
}

fn consistent() -> Consistency {
    Consistency::Consistent
}

fn is_consistent(c: &Consistency) -> bool {
    *c == Consistency::Consistent
}

impl CoordCommand {
    /// A linearizable read of every key under `prefix` (what the lock recipes send).
    pub fn range(prefix: impl Into<String>) -> CoordCommand {
        CoordCommand::Range {
            prefix: prefix.into(),
            consistency: Consistency::Consistent,
            with_values: false,
        }
    }
}

/// One key as [`CoordCommand::Range`] reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The full key.
    pub key: String,
    /// The revision that created it (etcd `CreateRevision`, ZooKeeper `czxid`).
    pub create_revision: u64,
    /// The lease (session) it is attached to, if any.
    pub lease: Option<LeaseId>,
    /// Its value, when the range asked for values (`with_values`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// What a [`CoordCommand`] answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum CoordOutcome {
    /// A lease was granted.
    Lease {
        /// Its id.
        lease: LeaseId,
        /// Its TTL in milliseconds.
        ttl_ms: u64,
    },
    /// A lease was revoked (`existed`) or was already gone.
    Revoked {
        /// The lease existed and is now gone with its keys.
        existed: bool,
    },
    /// A key was created.
    Created {
        /// The full key (with the sequence number of a sequential key).
        key: String,
        /// Its create revision.
        revision: u64,
    },
    /// The key already exists (nothing changed).
    Exists {
        /// The existing key's create revision.
        create_revision: u64,
    },
    /// A key was deleted (`existed`) or was absent.
    Deleted {
        /// The key existed.
        existed: bool,
    },
    /// The keys under a prefix, in key order, at `revision`.
    Keys {
        /// The keys.
        keys: Vec<KeyInfo>,
        /// The machine's revision when read.
        revision: u64,
    },
    /// A guarded write ran (`succeeded`) or its guard failed (nothing changed).
    TxnDone {
        /// The guard held and the value was written.
        succeeded: bool,
        /// The machine's revision after it.
        revision: u64,
    },
    /// The command could not run (e.g. its lease does not exist); nothing changed.
    Error {
        /// Why.
        error: String,
    },
}

/// How a server answered a client's [`CoordMessage::Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum CoordAnswer {
    /// The command ran (or was read) with this outcome.
    Done {
        /// The outcome.
        outcome: CoordOutcome,
    },
    /// This server is not the leader; try `leader` (a hint) or another server. Not executed.
    Redirect {
        /// The leader, if this server knows it.
        leader: Option<NodeId>,
    },
    /// Refused before it was proposed (overloaded, unsupported); certainly not executed.
    Fail {
        /// Why.
        error: String,
    },
    /// The server does not know whether the command ran.
    Unknown {
        /// Why.
        error: String,
    },
}

/// Messages between coordination clients and servers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum CoordMessage {
    /// Client to server: run `command` (through the leader's log; a `range` by ReadIndex).
    /// `id` is unique per client node and kept across retries (the server runs it once).
    Request {
        /// The client's request id.
        id: u64,
        /// The command.
        command: CoordCommand,
    },
    /// Server to client: the answer to request `id`.
    Reply {
        /// The request answered.
        id: u64,
        /// The answer.
        answer: CoordAnswer,
    },
    /// Client to leader: keep `lease` alive (etcd `LeaseKeepAlive`, ZooKeeper's ping). Handled
    /// by the leader's lessor in memory, not through the log (as etcd does). A leader that has
    /// not yet committed an entry of its term does not answer (it may not have applied every
    /// grant yet): the client sends it again.
    KeepAlive {
        /// The lease.
        lease: LeaseId,
    },
    /// Leader to client: the answer to a keep-alive.
    KeepAliveAck {
        /// The lease.
        lease: LeaseId,
        /// The lease exists and its expiry was pushed to now + its TTL on the leader's clock.
        found: bool,
        /// Its TTL in milliseconds (0 when not found).
        ttl_ms: u64,
    },
    /// A server that is not the leader, to a client's keep-alive: try `leader`.
    KeepAliveRedirect {
        /// The lease.
        lease: LeaseId,
        /// The leader, if this server knows it.
        leader: Option<NodeId>,
    },
    /// Client to any server: notify once when `key` (or, with `prefix`, any key under it) is
    /// created or deleted after `after_revision` (ZooKeeper's one-shot watch; etcd's watch
    /// from a revision). If such a change already happened, the notification comes at once;
    /// so does a deletion (at the current revision) for an exact `key` that does not exist
    /// once the server has applied `after_revision` (ZooKeeper's `exists` finding no node: the
    /// recipes watch a key to learn that it is gone). A server that has not applied
    /// `after_revision` yet waits until it has. Kept in the receiving server's memory only.
    Watch {
        /// The client's id for this watch.
        watch: u64,
        /// The watched key or prefix.
        key: String,
        /// Watch every key under `key` (ZooKeeper's `getChildren` watch on the parent).
        prefix: bool,
        /// Changes at or before this revision are not reported.
        after_revision: u64,
    },
    /// Server to client: a watched change (or `compacted`: the server no longer has the events
    /// after `after_revision`; the client must read again).
    WatchEvent {
        /// The watch.
        watch: u64,
        /// The changed key.
        key: String,
        /// The key was deleted (else created).
        deleted: bool,
        /// The change's revision.
        revision: u64,
        /// The events since the watch's revision were compacted away.
        compacted: bool,
    },
}
