//! Ping-pong: the smallest protocol, for benchmarks and as a template.
//!
//! The first server sends `ping 0` to the second; each node answers `ping n` with `pong n` and
//! `pong n` with `ping n+1`, forever. One message is in flight at a time, so the message rate
//! measures the simulator's per-message cost. It keeps no state on disk and serves no clients.
//!
//! Invariant: a node only receives the sequence number it expects next (checked by assertion),
//! which holds on a FIFO network without loss or duplication.

use serde::{Deserialize, Serialize};

use crate::family::{self, Configured, OptionError, ProtocolInfo, RoleContext};
use crate::process::{Context, NodeId, Process, TimerId};

/// The registry entry.
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: "pingpong",
    summary: "two nodes bounce one message forever (benchmarks; the smallest protocol)",
    serves: &[],
    bugs: &[],
    built_on: &[],
    configure,
};

/// Ping-pong has no options.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    family::configure(
        ctx,
        |_: &Config, ctx| {
            if ctx.nodes.len() < 2 {
                vec![OptionError::of_role(
                    "nodes",
                    "pingpong needs at least 2 nodes",
                )]
            } else {
                Vec::new()
            }
        },
        |setup, _| {
            Box::new(Node {
                id: setup.id,
                peer: setup.servers.iter().copied().find(|&s| s != setup.id),
                first: setup.servers.first() == Some(&setup.id),
                expected: 0,
            })
        },
    )
}

/// Peer messages.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// Please answer with `pong seq`.
    Ping {
        /// Sequence number.
        seq: u64,
    },
    /// The answer to `ping seq`.
    Pong {
        /// Sequence number of the ping answered.
        seq: u64,
    },
}

/// Ping-pong sets no timers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Timer {}

/// One ping-pong node.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    peer: Option<NodeId>,
    first: bool,
    expected: u64,
}

impl Process for Node {
    type Message = Message;
    type Timer = Timer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        if let (true, Some(peer)) = (self.first, self.peer) {
            ctx.send(peer, Message::Ping { seq: 0 });
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: Message) {
        match message {
            Message::Ping { seq } => {
                assert_eq!(
                    seq, self.expected,
                    "{:?} got ping {seq} out of order",
                    self.id
                );
                self.expected = seq + 1;
                ctx.send(from, Message::Pong { seq });
            }
            Message::Pong { seq } => {
                assert_eq!(
                    seq, self.expected,
                    "{:?} got pong {seq} out of order",
                    self.id
                );
                self.expected = seq + 1;
                ctx.send(from, Message::Ping { seq: seq + 1 });
            }
        }
    }

    fn on_timer(&mut self, _ctx: &mut Context<'_>, _id: TimerId, timer: Timer) {
        match timer {}
    }
}
