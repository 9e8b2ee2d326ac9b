//! Protocols for testing and benchmarking the simulator itself: `pingpong` (one message bouncing
//! between two nodes: the per-message cost) and `chatter` (random notes between servers: the
//! network's latency, ordering, loss and duplication in the trace). They serve no clients and
//! have no checks beyond the node invariants.

pub mod chatter;
pub mod pingpong;

use crate::family::Family;

/// The registry entry.
pub static FAMILY: Family = Family {
    name: "testing",
    summary: "pingpong and chatter: traffic for benchmarks and network tests",
    protocols: &[chatter::PROTOCOL, pingpong::PROTOCOL],
    workloads: &[],
    checks: &[],
    decisions: None,
    narrator: None,
    fold: None,
};
