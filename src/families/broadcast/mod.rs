//! Gossip broadcast, as in Maelstrom's broadcast workload.
//!
//! Clients submit integer values to any node (`broadcast`) and ask a node for everything it holds
//! (`read`). Every node must end up holding every value that was acknowledged to a client.
//!
//! Algorithm (eager push plus anti-entropy):
//! - On a new value (from a client or a peer) a node stores it, syncs it to disk, acknowledges it,
//!   and immediately pushes it to every other server.
//! - Each node keeps, per peer, the values that peer has not acknowledged (`GossipOk`) or sent
//!   itself. Every `gossip_interval` it resends them, in batches of at most `batch_limit`. This
//!   retransmission is what survives loss and partitions.
//! - On restart a node reloads its synced values and learns nothing else until gossip reaches it.
//!
//! Invariants:
//! - a node acknowledges a value (to a client or a peer) only after it is durable on its disk;
//! - a node never forgets a value except by crashing, and it syncs before acknowledging, so a
//!   crash never loses an acknowledged value;
//! - after the network heals and every node is up, every node holds every acknowledged value
//!   within a few gossip intervals (checked by `convergence`).
//!
//! Planted bug `no-retransmit`: the periodic retransmission is switched off, so a value whose
//! eager push was lost (loss, partition, crashed peer) never reaches that peer: `convergence`
//! fails.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::families::kv;
use crate::families::kv::{ClientContext, Op, OpValue, Outcome, Reply, Request, into_request};

pub mod convergence;
pub mod narrate;

/// The registry entry: the broadcast protocol, its workload and the convergence check.
pub static FAMILY: family::Family = family::Family {
    name: "broadcast",
    summary: "gossip broadcast of integers, as in Maelstrom",
    protocols: &[PROTOCOL],
    workloads: &[kv::BROADCAST_WORKLOAD],
    checks: &[convergence::CHECK],
    decisions: None,
    narrator: Some(narrate::narrator),
    fold: None,
};
use crate::family::{self, Bug, Configured, NodeSetup, OptionError, ProtocolInfo, RoleContext};
use crate::process::{Context, NodeId, Process, TimerId};
use crate::scenario::Duration;

/// Planted bug: no periodic retransmission.
pub const BUG_NO_RETRANSMIT: &str = "no-retransmit";

/// The registry entry.
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: "broadcast",
    summary: "gossip broadcast of integers (eager push + anti-entropy), as in Maelstrom",
    serves: &[kv::BROADCAST_WORKLOAD_NAME],
    bugs: &[Bug {
        name: BUG_NO_RETRANSMIT,
        summary: "values are pushed once and never retransmitted, so a lost push is never repaired",
        caught_by: "convergence",
    }],
    built_on: &[],
    configure,
};

/// `[broadcast]` options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Period of the anti-entropy retransmission (local-clock time).
    #[serde(default = "default_gossip_interval")]
    pub gossip_interval: Duration,
    /// Most values per gossip message.
    #[serde(default = "default_batch_limit")]
    pub batch_limit: u32,
    /// Planted bugs to switch on (see `faultline list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
}

fn default_gossip_interval() -> Duration {
    Duration::from_millis(200)
}

fn default_batch_limit() -> u32 {
    256
}

impl Default for Config {
    fn default() -> Self {
        Config {
            gossip_interval: default_gossip_interval(),
            batch_limit: default_batch_limit(),
            bugs: Vec::new(),
        }
    }
}

/// Peer messages.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// "I hold these values."
    Gossip {
        /// Values the sender holds durably.
        values: Vec<u64>,
    },
    /// "I now durably hold these values."
    GossipOk {
        /// Values the sender now holds durably.
        values: Vec<u64>,
    },
}

/// Timers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum Timer {
    /// Time to retransmit unacknowledged values.
    Gossip,
}

/// Facts for the `convergence` check.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fact", rename_all = "kebab-case")]
pub enum Observation {
    /// The node durably holds `value` (emitted when it learns it, and again for every value it
    /// reloads after a restart).
    Holds {
        /// The value.
        value: u64,
    },
}

/// One broadcast server.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    peers: Vec<NodeId>,
    config: Config,
    retransmit: bool,
    values: BTreeSet<u64>,
    /// For each peer, the values it has not acknowledged yet (what anti-entropy resends).
    unacked: BTreeMap<NodeId, BTreeSet<u64>>,
}

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    family::configure(ctx, validate, |setup, c: &Config| {
        Box::new(Node::new(setup, c.clone()))
    })
}

fn validate(config: &Config, _: &RoleContext<'_>) -> Vec<OptionError> {
    let mut errors = Vec::new();
    if config.gossip_interval.as_nanos() == 0 {
        errors.push(OptionError::at(
            "gossip_interval",
            "expected a positive duration",
        ));
    }
    if config.batch_limit == 0 {
        errors.push(OptionError::at("batch_limit", "expected at least 1"));
    }
    errors.extend(family::check_bugs(
        &config.bugs,
        PROTOCOL.bugs,
        PROTOCOL.name,
    ));
    errors
}

const VALUE_KEY_PREFIX: &str = "value/";

impl Node {
    /// A fresh node (nothing loaded yet: that happens in `on_start`).
    pub fn new(setup: &NodeSetup, config: Config) -> Self {
        let retransmit = !config.bugs.iter().any(|b| b == BUG_NO_RETRANSMIT);
        Node {
            id: setup.id,
            peers: setup.peers(),
            config,
            retransmit,
            values: BTreeSet::new(),
            unacked: BTreeMap::new(),
        }
    }

    /// Stores new values durably, observes them, and returns them (already-held ones excluded).
    fn learn(&mut self, ctx: &mut Context<'_>, values: &[u64]) -> Vec<u64> {
        let new: Vec<u64> = values
            .iter()
            .copied()
            .filter(|v| !self.values.contains(v))
            .collect();
        if new.is_empty() {
            return new;
        }
        for &value in &new {
            ctx.disk()
                .write(format!("{VALUE_KEY_PREFIX}{value:020}"), Vec::new());
        }
        ctx.disk().sync();
        for &value in &new {
            self.values.insert(value);
            ctx.observe(Observation::Holds { value });
        }
        for peer in &self.peers {
            self.unacked
                .entry(*peer)
                .or_default()
                .extend(new.iter().copied());
        }
        new
    }

    /// `peer` durably holds `values`: stop resending them to it.
    fn acknowledged(&mut self, peer: NodeId, values: &[u64]) {
        if let Some(pending) = self.unacked.get_mut(&peer) {
            for v in values {
                pending.remove(v);
            }
        }
    }

    fn push(&self, ctx: &mut Context<'_>, values: &[u64], except: Option<NodeId>) {
        for &peer in self.peers.iter().filter(|&&p| Some(p) != except) {
            ctx.send(
                peer,
                Message::Gossip {
                    values: values.to_vec(),
                },
            );
        }
    }
}

impl Process for Node {
    type Message = Message;
    type Timer = Timer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        for key in ctx.disk().keys_with_prefix(VALUE_KEY_PREFIX) {
            let value = key[VALUE_KEY_PREFIX.len()..]
                .parse()
                .expect("value keys hold integers");
            self.values.insert(value);
            ctx.observe(Observation::Holds { value });
        }
        // After a restart nothing is known about what peers hold: offer them everything.
        for peer in &self.peers {
            self.unacked.insert(*peer, self.values.clone());
        }
        ctx.set_timer(self.config.gossip_interval.to_std(), Timer::Gossip);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: Message) {
        match message {
            Message::Gossip { values } => {
                let new = self.learn(ctx, &values);
                // The sender holds what it gossips, durably: no need to send it back.
                self.acknowledged(from, &values);
                ctx.send(from, Message::GossipOk { values });
                if !new.is_empty() {
                    self.push(ctx, &new, Some(from));
                }
            }
            Message::GossipOk { values } => self.acknowledged(from, &values),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, timer: Timer) {
        match timer {
            Timer::Gossip => {
                if self.retransmit {
                    let limit = self.config.batch_limit as usize;
                    for (&peer, pending) in &self.unacked {
                        if !pending.is_empty() {
                            let values = pending.iter().copied().take(limit).collect();
                            ctx.send(peer, Message::Gossip { values });
                        }
                    }
                }
                ctx.set_timer(self.config.gossip_interval.to_std(), Timer::Gossip);
            }
        }
    }

    fn on_other(
        &mut self,
        ctx: &mut Context<'_>,
        client: NodeId,
        message: crate::process::Message,
    ) -> Result<(), crate::process::Message> {
        let request = into_request(message)?;
        self.on_request(ctx, client, request);
        Ok(())
    }
}

impl Node {
    fn on_request(&mut self, ctx: &mut Context<'_>, client: NodeId, request: Request) {
        let outcome = match &request.op {
            Op::Broadcast { value } => {
                let new = self.learn(ctx, &[*value]);
                if !new.is_empty() {
                    self.push(ctx, &new, None);
                }
                Outcome::Ok {
                    value: OpValue::Done,
                }
            }
            Op::Read => Outcome::Ok {
                value: OpValue::Values(self.values.iter().copied().collect()),
            },
            _ => Outcome::Fail {
                error: "unsupported".into(),
            },
        };
        debug_assert!(
            !ctx.disk().has_unsynced(),
            "{:?} acknowledges only durable values",
            self.id
        );
        ctx.reply(
            client,
            Reply {
                id: request.id,
                outcome,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Payload;
    use crate::process::{Effect, TestContext};

    fn setup() -> NodeSetup {
        NodeSetup::server(NodeId(0), vec![NodeId(0), NodeId(1), NodeId(2)])
    }

    fn sends(effects: &[Effect]) -> Vec<(NodeId, Payload)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { to, message } => Some((*to, message.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_client_value_is_synced_acknowledged_and_pushed_to_every_peer() {
        let mut tc = TestContext::new(NodeId(0), 1);
        let mut node = Node::new(&setup(), Config::default());
        node.on_start(&mut tc.ctx());
        tc.take_effects();
        node.on_request(
            &mut tc.ctx(),
            NodeId(3),
            Request {
                id: 7,
                op: Op::Broadcast { value: 42 },
            },
        );
        let effects = tc.take_effects();
        assert!(
            effects.contains(&Effect::Observe(Payload::new(Observation::Holds {
                value: 42
            })))
        );
        let sent = sends(&effects);
        assert_eq!(sent.len(), 3, "two pushes and one reply: {sent:?}");
        assert!(sent.contains(&(
            NodeId(1),
            Payload::new(Message::Gossip { values: vec![42] })
        )));
        assert!(sent.contains(&(
            NodeId(2),
            Payload::new(Message::Gossip { values: vec![42] })
        )));
        tc.crash();
        let mut node = Node::new(&setup(), Config::default());
        node.on_start(&mut tc.ctx());
        assert!(
            node.values.contains(&42),
            "the acknowledged value survives a crash"
        );
    }

    #[test]
    fn retransmission_resends_only_unacknowledged_values_and_the_bug_switches_it_off() {
        for (bugs, expect_resend) in [(vec![], true), (vec![BUG_NO_RETRANSMIT.to_string()], false)]
        {
            let config = Config {
                bugs,
                ..Config::default()
            };
            let mut tc = TestContext::new(NodeId(0), 1);
            let mut node = Node::new(&setup(), config);
            node.on_start(&mut tc.ctx());
            node.on_message(
                &mut tc.ctx(),
                NodeId(1),
                Message::Gossip { values: vec![5] },
            );
            node.on_message(
                &mut tc.ctx(),
                NodeId(2),
                Message::GossipOk { values: vec![5] },
            );
            tc.take_effects();
            node.on_timer(&mut tc.ctx(), TimerId(0), Timer::Gossip);
            let sent = sends(&tc.take_effects());
            // Node 1 sent the value (so holds it) and node 2 acknowledged it: nothing to resend.
            assert!(sent.is_empty(), "{sent:?}");
            node.on_request(
                &mut tc.ctx(),
                NodeId(3),
                Request {
                    id: 1,
                    op: Op::Broadcast { value: 6 },
                },
            );
            tc.take_effects();
            node.on_timer(&mut tc.ctx(), TimerId(1), Timer::Gossip);
            let sent = sends(&tc.take_effects());
            assert_eq!(!sent.is_empty(), expect_resend, "{sent:?}");
            if expect_resend {
                assert_eq!(sent.len(), 2);
                assert!(
                    sent.iter()
                        .all(|(_, m)| *m == Payload::new(Message::Gossip { values: vec![6] }))
                );
            }
        }
    }
}
