//! Chatter: random traffic between servers, to exercise and demonstrate the network layer.
//!
//! Every node sends a numbered note to a random other server after each gap drawn uniformly
//! from `[0, 2 * interval]` (local-clock time), and counts what it receives. With many notes in
//! flight at once it shows latency distributions, FIFO or reordering, loss, duplication,
//! partitions and crashes in the trace; faultline's network tests run it. It keeps no state on
//! disk and serves no clients.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::family::{self, Configured, OptionError, ProtocolInfo, RoleContext};
use crate::process::{Context, NodeId, Process, TimerId};
use crate::scenario::Duration;

/// The registry entry.
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: "chatter",
    summary: "random notes between servers (exercises and demonstrates the network layer)",
    serves: &[],
    bugs: &[],
    built_on: &[],
    configure,
};

/// `[chatter]` options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Mean gap between two notes from the same node (local-clock time).
    #[serde(default = "default_interval")]
    pub interval: Duration,
}

fn default_interval() -> Duration {
    Duration::from_millis(10)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: default_interval(),
        }
    }
}

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    family::configure(
        ctx,
        |c: &Config, _| {
            if c.interval.as_nanos() == 0 {
                vec![OptionError::at("interval", "expected a positive duration")]
            } else {
                Vec::new()
            }
        },
        |setup, c| {
            Box::new(Node {
                peers: setup.peers(),
                interval_ns: c.interval.as_nanos(),
                sent: 0,
                received: 0,
            })
        },
    )
}

/// Peer messages.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// The sender's `seq`-th note (numbered from 0 per sender and incarnation).
    Note {
        /// Sequence number.
        seq: u64,
    },
}

/// Timers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum Timer {
    /// Time to send the next note.
    Send,
}

/// One chatter node.
#[derive(Debug)]
pub struct Node {
    peers: Vec<NodeId>,
    interval_ns: u64,
    sent: u64,
    received: u64,
}

impl Node {
    fn arm(&self, ctx: &mut Context<'_>) {
        let gap = ctx.rng().gen_range(0..=2 * self.interval_ns);
        ctx.set_timer(std::time::Duration::from_nanos(gap), Timer::Send);
    }
}

impl Process for Node {
    type Message = Message;
    type Timer = Timer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.arm(ctx);
    }

    fn on_message(&mut self, _ctx: &mut Context<'_>, _from: NodeId, _message: Message) {
        self.received += 1;
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, _timer: Timer) {
        if !self.peers.is_empty() {
            let to = self.peers[ctx.rng().gen_range(0..self.peers.len())];
            ctx.send(to, Message::Note { seq: self.sent });
            self.sent += 1;
        }
        self.arm(ctx);
    }
}
