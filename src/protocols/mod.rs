//! The protocols faultline can run, and the crate-wide wire vocabulary that carries them.
//!
//! Each protocol is a sans-IO state machine ([`crate::process::Process`]) in its own module, with
//! its own message, timer and observation types. The simulator carries them inside the enums
//! below, so one cluster can mix roles without the kernel knowing any protocol. Adding a protocol
//! means: a module, one variant in each enum (with [`wire_variant!`]), and an entry in
//! [`PROTOCOLS`]. Nothing in `sim/` changes.

pub mod broadcast;
pub mod chatter;
pub mod kv;
pub mod paxos;
pub mod pingpong;
pub mod raft;

use serde::Serialize;

use crate::process::{AnyProcess, NodeId};
use crate::scenario::{Scenario, ScenarioError};
use crate::workload::{Reply, Request};

/// Every message the simulated network can carry.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Message {
    /// Client-server traffic (any protocol).
    Client(ClientMessage),
    /// The gossip broadcast protocol.
    Broadcast(broadcast::Message),
    /// Ping-pong.
    PingPong(pingpong::Message),
    /// Chatter.
    Chatter(chatter::Message),
    /// Raft.
    Raft(raft::Message),
    /// Single-decree Paxos.
    Paxos(paxos::synod::Message),
    /// Multi-Paxos.
    MultiPaxos(paxos::multi::Message),
}

/// Requests and replies between clients and servers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// A client's request to a server.
    Request(Request),
    /// A server's reply to a client.
    Reply(Reply),
}

impl Message {
    /// Wraps a request.
    pub fn request(request: Request) -> Message {
        Message::Client(ClientMessage::Request(request))
    }
    /// Wraps a reply.
    pub fn reply(reply: Reply) -> Message {
        Message::Client(ClientMessage::Reply(reply))
    }
}

/// Every timer payload a process can set.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Timer {
    /// Workload clients.
    Client(crate::workload::ClientTimer),
    /// The gossip broadcast protocol.
    Broadcast(broadcast::Timer),
    /// Ping-pong (it sets none).
    PingPong(pingpong::Timer),
    /// Chatter.
    Chatter(chatter::Timer),
    /// Raft.
    Raft(raft::Timer),
    /// Single-decree Paxos.
    Paxos(paxos::synod::Timer),
    /// Multi-Paxos.
    MultiPaxos(paxos::multi::Timer),
}

/// Every protocol fact a process can observe for the checkers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Observation {
    /// Facts any protocol may report.
    Common(CommonObservation),
    /// The gossip broadcast protocol.
    Broadcast(broadcast::Observation),
    /// Raft.
    Raft(raft::Observation),
    /// Single-decree Paxos and Multi-Paxos.
    Paxos(paxos::Observation),
}

/// Facts shared by protocols; the world uses [`CommonObservation::Role`] to resolve fault targets
/// such as `"leader"`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fact", rename_all = "kebab-case")]
pub enum CommonObservation {
    /// The node now has `role` (e.g. `"leader"`, `"follower"`) in `term` (or ballot round).
    Role {
        /// The role's name.
        role: String,
        /// The term (Raft) or ballot round (Paxos) it holds the role in.
        term: u64,
    },
}

/// Implements `From<$inner> for $outer` and `TryFrom<$outer> for $inner` for a newtype variant,
/// so a protocol can use its own types with [`crate::process::Context`] and the driver can route
/// them back. A failed `try_from` returns the original value.
#[macro_export]
macro_rules! wire_variant {
    ($outer:ty, $variant:path, $inner:ty) => {
        impl From<$inner> for $outer {
            fn from(inner: $inner) -> $outer {
                $variant(inner)
            }
        }
        impl TryFrom<$outer> for $inner {
            type Error = $outer;
            fn try_from(outer: $outer) -> Result<$inner, $outer> {
                match outer {
                    $variant(inner) => Ok(inner),
                    #[allow(unreachable_patterns)]
                    other => Err(other),
                }
            }
        }
    };
}

wire_variant!(Message, Message::Broadcast, broadcast::Message);
wire_variant!(Message, Message::Client, ClientMessage);
wire_variant!(Timer, Timer::Broadcast, broadcast::Timer);
wire_variant!(Timer, Timer::Client, crate::workload::ClientTimer);
wire_variant!(Message, Message::PingPong, pingpong::Message);
wire_variant!(Timer, Timer::PingPong, pingpong::Timer);
wire_variant!(Message, Message::Chatter, chatter::Message);
wire_variant!(Timer, Timer::Chatter, chatter::Timer);
wire_variant!(Observation, Observation::Broadcast, broadcast::Observation);
wire_variant!(Observation, Observation::Common, CommonObservation);
wire_variant!(Message, Message::Raft, raft::Message);
wire_variant!(Timer, Timer::Raft, raft::Timer);
wire_variant!(Observation, Observation::Raft, raft::Observation);
wire_variant!(Message, Message::Paxos, paxos::synod::Message);
wire_variant!(Timer, Timer::Paxos, paxos::synod::Timer);
wire_variant!(Message, Message::MultiPaxos, paxos::multi::Message);
wire_variant!(Timer, Timer::MultiPaxos, paxos::multi::Timer);
wire_variant!(Observation, Observation::Paxos, paxos::Observation);

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
