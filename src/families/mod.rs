//! The protocol families faultline can run.
//!
//! Each protocol is a sans-IO state machine ([`crate::process::Process`]) in its family's
//! folder, with its own message, timer and observation types; the simulator carries them erased
//! ([`crate::payload::Payload`]), so one cluster can mix roles without the kernel knowing any
//! family.

pub mod broadcast;
pub mod chatter;
pub mod kv;
pub mod paxos;
pub mod pingpong;
pub mod raft;
pub mod replicated;

use crate::process::{AnyProcess, NodeId};
use crate::scenario::{Scenario, ScenarioError};

/// Which client workload a protocol serves (and so which operations its clients issue).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// The protocol serves no clients (`[workload] clients` must be 0).
    None,
    /// `broadcast` and `read` of integers (Maelstrom's broadcast).
    Broadcast,
    /// `get`, `put`, `append`, `cas` on string keys.
    KeyValue,
}

impl WorkloadKind {
    /// The operation names a `[workload] mix` may use, with their default weights.
    pub fn default_mix(self) -> &'static [(&'static str, f64)] {
        match self {
            WorkloadKind::None => &[],
            WorkloadKind::Broadcast => &[("broadcast", 0.8), ("read", 0.2)],
            WorkloadKind::KeyValue => &[("get", 0.4), ("put", 0.3), ("append", 0.2), ("cas", 0.1)],
        }
    }
}

/// A planted bug: a named switch that breaks a protocol on purpose, so that a checker can be shown
/// to catch it.
#[derive(Copy, Clone, Debug)]
pub struct Bug {
    /// The switch's name, as written in the protocol's `bugs = [...]`.
    pub name: &'static str,
    /// What it breaks.
    pub summary: &'static str,
    /// The check expected to catch it.
    pub caught_by: &'static str,
}

/// What a process factory gets to build one node.
#[derive(Clone, Debug)]
pub struct NodeSetup {
    /// The node being built.
    pub id: NodeId,
    /// Every server node, in scenario order.
    pub servers: Vec<NodeId>,
    /// For a client, the server it talks to first.
    pub home: Option<NodeId>,
}

impl NodeSetup {
    /// Every server but this node, in scenario order.
    pub fn peers(&self) -> Vec<NodeId> {
        self.servers
            .iter()
            .copied()
            .filter(|&s| s != self.id)
            .collect()
    }
}

/// A protocol faultline can run on server nodes.
pub struct ProtocolInfo {
    /// Name used in `[cluster] protocol`.
    pub name: &'static str,
    /// One line for `faultline list`.
    pub summary: &'static str,
    /// The client workload it serves.
    pub workload: WorkloadKind,
    /// Its planted bugs.
    pub bugs: &'static [Bug],
    /// Builds a fresh server process (at boot and after every restart).
    pub build: fn(&NodeSetup, &Scenario) -> Box<dyn AnyProcess>,
    /// Checks the protocol's own scenario section and returns every problem found (none: valid);
    /// each error carries a key path and a message.
    pub validate: fn(&Scenario, &str, &std::path::Path) -> Vec<ScenarioError>,
}

/// Every protocol, in `faultline list` order.
pub static PROTOCOLS: &[ProtocolInfo] = &[
    broadcast::PROTOCOL,
    chatter::PROTOCOL,
    paxos::multi::PROTOCOL,
    paxos::synod::PROTOCOL,
    pingpong::PROTOCOL,
    raft::PROTOCOL,
];

/// Looks a protocol up by name.
pub fn protocol(name: &str) -> Option<&'static ProtocolInfo> {
    PROTOCOLS.iter().find(|p| p.name == name)
}
