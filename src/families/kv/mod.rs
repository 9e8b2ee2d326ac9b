//! The key-value family: the replicated key-value state machine ([`store`]: [`KvMachine`], with
//! client sessions [`KvStore`]; the registry of machines served to key-value clients,
//! [`STATE_MACHINES`]), the workload's operations, requests and replies ([`op`]), and the client
//! process that issues them and records the history ([`client`]). The consensus families (Raft,
//! Multi-Paxos) replicate this store by default (`state_machine = "kv"`); the broadcast family reuses the client with its own
//! operations.
//!
//! Clients are ordinary processes on simulated nodes, so partitions, latency and loss apply to
//! them too. Each client node runs `concurrency` logical processes (Jepsen's `:process`); a
//! process has at most one operation outstanding, and after an operation ends in `info` it is
//! replaced by a fresh process id. The history uses global simulated time (stamped by the world).
//!
//! Leader discovery: a client sends to its last known leader (initially its home server). A
//! `redirect` with a hint goes straight to the hinted node; without a hint, or when an attempt
//! is not answered within `attempt_timeout`, the client tries the next server with the same
//! request id (servers deduplicate by (client, id)). When `request_timeout` passes the operation
//! is recorded as `info`: its outcome is unknown and is never guessed.

pub mod client;
pub mod op;
pub mod store;
pub mod workload;

pub use client::{Client, ClientTimer};
pub use op::{ClientContext, ClientMessage, Op, OpValue, Outcome, Reply, Request, into_request};
pub use store::*;
pub use workload::{
    BROADCAST_WORKLOAD, BROADCAST_WORKLOAD_NAME, KV_WORKLOAD, WORKLOAD_NAME, WorkloadKind,
    WorkloadOptions,
};

/// The registry entry: the key-value workload (served by the consensus families).
pub static FAMILY: crate::family::Family = crate::family::Family {
    name: "kv",
    summary: "the replicated key-value store's client workload: get, put, append, cas",
    protocols: &[],
    workloads: &[KV_WORKLOAD],
    checks: &[],
    decisions: None,
    narrator: None,
    fold: None,
};
