//! The sans-IO process interface every protocol implements.
//!
//! A protocol node is a state machine. The simulator feeds it inputs (start, a peer message, a
//! timer, a client request or reply) together with a [`Context`]; the node reacts only by
//! recording effects in that context (send, set or cancel a timer, reply, observe, record a
//! history event) and by using the context's disk, local clock and RNG. It owns no socket, thread,
//! clock or random generator, so the same code runs in the simulator and in unit tests.
//!
//! Model: raft-rs `RawNode` (step -> Ready) and stateright's `Actor` (handlers record commands
//! into `Out`). See `../shared/ARCHITECTURE.md`, part 3.
//!
//! Contract (the driver in `sim::node` relies on it):
//! - a handler MUST NOT block or loop waiting for anything; it returns after recording effects;
//! - effects are applied in the order they were recorded, after the handler returns;
//! - after a crash the process object is dropped; on restart a fresh one is built and
//!   [`Process::on_start`] sees only what was synced to disk before the crash;
//! - a process MAY panic (`assert!`) when one of its own invariants breaks: the run stops and the
//!   report shows a failed `node-invariants` check with the panic message.

pub mod disk;
pub mod fold;

use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::history::HistoryEvent;
pub use crate::payload::{Payload, Wire};
use disk::Disk;

/// Builds a fresh process for a node (at boot and at every restart).
pub type ProcessFactory = std::sync::Arc<dyn Fn() -> Box<dyn AnyProcess> + Send + Sync>;

/// A message on the simulated network: any family's value, erased (see [`crate::payload`]).
pub type Message = Payload;
/// A timer payload, erased.
pub type Timer = Payload;
/// A protocol fact for the checkers, erased. The kernel reads one kind itself:
/// [`CommonObservation`].
pub type Observation = Payload;

/// A node of the simulated cluster: its index in the scenario's node list (servers first, then
/// clients). Names (`"n1"`, `"c2"`) live in the world's topology; traces use the names.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The index as a `usize`, for indexing per-node vectors.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Identifies one timer set by one node. Ids are unique per node for the whole run (they are not
/// reused after a restart), so a stale id can never cancel a newer timer.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TimerId(pub u64);

/// A protocol node (or a client) as a sans-IO state machine. See the module docs for the contract.
///
/// The associated types are the process's own message and timer vocabularies: the simulator
/// carries them erased ([`Payload`]) and hands each back as its type. A message of another type
/// goes to [`Process::on_other`] (a server's client traffic, a client's replies from a second
/// role); one nobody handles is dropped by the driver and traced with the reason
/// `wrong-protocol`.
pub trait Process: Send + 'static {
    /// Messages this process exchanges with its peers.
    type Message: Wire;
    /// Timer payloads this process sets and receives back when they fire.
    type Timer: Wire;

    /// Boot, or reboot after a crash. `ctx.disk()` holds exactly the durable (synced) state.
    fn on_start(&mut self, ctx: &mut Context<'_>);

    /// A peer message arrived (after the network decided its fate).
    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: Self::Message);

    /// A timer set with [`Context::set_timer`] fired (in this node's local-clock time).
    fn on_timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Self::Timer);

    /// A message of another vocabulary than [`Process::Message`] arrived (e.g. a client's
    /// request to a server). Returns it unhandled (the default) if this process does not speak
    /// it; the driver then drops it as `wrong-protocol`.
    fn on_other(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Message,
    ) -> Result<(), Message> {
        let _ = (ctx, from);
        Err(message)
    }
}

/// A [`Process`] with its message and timer types erased: what the simulator's driver holds for
/// each node. Implemented for every `Process`. `Send` because the world (shared with the driver
/// tasks) holds a handle to it; every process is plain data.
pub trait AnyProcess: Send {
    /// See [`Process::on_start`].
    fn start(&mut self, ctx: &mut Context<'_>);
    /// Routes a message to its handler; gives it back if nothing in the process handles it.
    fn message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Message,
    ) -> Result<(), Message>;
    /// [`AnyProcess::message`] with the message lent where it waits (the simulator's
    /// in-flight slot) rather than passed by value: `message` MUST hold a message; the process
    /// takes it out (`None` afterwards). False if nothing in the process handles it (the
    /// message is dropped then). The default moves the message out and calls
    /// [`AnyProcess::message`]; every [`Process`] overrides it to copy only its own value out
    /// of the slot ([`Payload::take_from`]), not the payload around it.
    fn message_lent(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: &mut Option<Message>,
    ) -> bool {
        let message = message.take().expect("a message to route");
        self.message(ctx, from, message).is_ok()
    }
    /// Routes a timer to [`Process::on_timer`]; gives it back if it is not the process's type.
    fn timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Timer) -> Result<(), Timer>;
}

impl<P: Process> AnyProcess for P {
    fn start(&mut self, ctx: &mut Context<'_>) {
        self.on_start(ctx);
    }

    fn message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Message,
    ) -> Result<(), Message> {
        match message.downcast::<P::Message>() {
            Ok(message) => {
                self.on_message(ctx, from, message);
                Ok(())
            }
            Err(other) => self.on_other(ctx, from, other),
        }
    }

    fn message_lent(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: &mut Option<Message>,
    ) -> bool {
        if let Some(own) = Payload::take_from::<P::Message>(message) {
            self.on_message(ctx, from, own);
            return true;
        }
        let other = message.take().expect("a message to route");
        self.on_other(ctx, from, other).is_ok()
    }

    fn timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Timer) -> Result<(), Timer> {
        self.on_timer(ctx, id, timer.downcast::<P::Timer>()?);
        Ok(())
    }
}

/// The role a node holds, as protocols report it in [`CommonObservation::Role`]. The world
/// resolves the fault target `leader` from these observations (the node whose latest role is
/// [`NodeRole::Leader`], with the highest term), so a family that reports roles gets
/// leader-targeted faults and the generic liveness check for free.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeRole {
    /// Follows a leader (Raft follower; a Multi-Paxos replica that accepts another's ballot).
    Follower,
    /// Asking for pre-votes (Raft thesis §9.6).
    PreCandidate,
    /// Asking for votes (Raft) or running phase 1 (Multi-Paxos).
    Candidate,
    /// Leads its term or ballot.
    Leader,
}

impl NodeRole {
    /// The kebab-case name used in traces and reports.
    pub fn name(self) -> &'static str {
        match self {
            NodeRole::Follower => "follower",
            NodeRole::PreCandidate => "pre-candidate",
            NodeRole::Candidate => "candidate",
            NodeRole::Leader => "leader",
        }
    }
}

impl std::fmt::Display for NodeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for NodeRole {
    /// As its name (a string, in JSON and in the trace's binary record).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Facts any family may report that the kernel and the generic checks understand.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fact", rename_all = "kebab-case")]
pub enum CommonObservation {
    /// The node now has `role` in `term` (Raft's term, or a Paxos ballot's round).
    Role {
        /// The role.
        role: NodeRole,
        /// The term (Raft) or ballot round (Paxos) it holds the role in.
        term: u64,
    },
}

/// One action a handler recorded. The driver applies them in order once the handler returns.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send a message to a node through the simulated network.
    Send {
        /// Receiver.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// Arm timer `id` to fire after `delay` of this node's local clock.
    SetTimer {
        /// Its id (from [`Context::set_timer`]).
        id: TimerId,
        /// Local-clock time until it fires.
        delay: Duration,
        /// The payload handed back to [`Process::on_timer`].
        timer: Timer,
    },
    /// Disarm a timer; cancelling a timer that already fired or never existed is a no-op.
    CancelTimer {
        /// The timer.
        id: TimerId,
    },
    /// Record a protocol fact for the checkers (and the trace).
    Observe(Observation),
    /// Record a client history event (clients only); the world stamps it with global time.
    /// Boxed: it is the largest effect, and every effect moves at the size of the largest
    /// (twice per sent message, on the hottest path of a run).
    History(Box<HistoryEvent>),
}

/// What a handler may use and do. Built by the simulator's driver for each input, or by
/// [`TestContext`] in unit tests.
pub struct Context<'a> {
    node: NodeId,
    local_time_ns: i64,
    disk: &'a mut Disk,
    rng: &'a mut ChaCha8Rng,
    next_timer_id: &'a mut u64,
    effects: &'a mut Vec<Effect>,
}

impl<'a> Context<'a> {
    /// Builds a context. `local_time_ns` is this node's local clock reading (see `sim::clock`);
    /// timer ids are drawn from `next_timer_id`; effects are appended to `effects`.
    pub fn new(
        node: NodeId,
        local_time_ns: i64,
        disk: &'a mut Disk,
        rng: &'a mut ChaCha8Rng,
        next_timer_id: &'a mut u64,
        effects: &'a mut Vec<Effect>,
    ) -> Self {
        Context {
            node,
            local_time_ns,
            disk,
            rng,
            next_timer_id,
            effects,
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.node
    }

    /// This node's local clock in nanoseconds. It may be offset, drift and jump relative to global
    /// simulated time (clock faults), and may even go backwards after a backward jump.
    pub fn local_time_ns(&self) -> i64 {
        self.local_time_ns
    }

    /// This node's disk: reads see unsynced writes; only [`Disk::sync`]ed data survives a crash.
    pub fn disk(&mut self) -> &mut Disk {
        self.disk
    }

    /// This node's own random stream, derived from the run seed and the node id.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        self.rng
    }

    /// Sends `message` to `to`. Its fate (latency, loss, duplication, partitions, crashes) is the
    /// network's business; sending to oneself also goes through the network.
    #[inline]
    pub fn send(&mut self, to: NodeId, message: impl Wire) {
        // Room first, then the effect is written where it goes, with no call in between: an
        // effect built on the stack and copied into the vector with wide loads stalled on the
        // store buffer (most of the ping-pong handler's time).
        self.effects.reserve(1);
        let len = self.effects.len();
        // SAFETY: `reserve(1)` left room for one more element at `len`, which is written
        // before the length covers it.
        unsafe {
            self.effects.as_mut_ptr().add(len).write(Effect::Send {
                to,
                message: Payload::new(message),
            });
            self.effects.set_len(len + 1);
        }
    }

    /// Arms a timer that fires after `delay` of local-clock time (a fast clock fires early in
    /// global time). Returns its id, for [`Context::cancel_timer`].
    pub fn set_timer(&mut self, delay: Duration, timer: impl Wire) -> TimerId {
        let id = TimerId(*self.next_timer_id);
        *self.next_timer_id += 1;
        self.effects.push(Effect::SetTimer {
            id,
            delay,
            timer: Payload::new(timer),
        });
        id
    }

    /// Disarms a timer. Safe to call with a timer that already fired.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.effects.push(Effect::CancelTimer { id });
    }

    /// Emits a protocol fact for the checkers, e.g. "became leader of term 7".
    pub fn observe(&mut self, observation: impl Wire) {
        self.effects
            .push(Effect::Observe(Payload::new(observation)));
    }

    /// Records a client history event (invoke / ok / fail / info). Its `time_ns` and `index` are
    /// filled in by the world with global simulated time and the history position.
    pub fn record(&mut self, event: HistoryEvent) {
        self.effects.push(Effect::History(Box::new(event)));
    }
}

/// The messages of type `M` among `effects` (e.g. from [`TestContext::take_effects`]), with
/// their receivers, for unit tests of a process.
pub fn sent_messages<M: Wire>(effects: &[Effect]) -> Vec<(NodeId, M)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to, message } => message.downcast_ref::<M>().map(|m| (*to, m.clone())),
            _ => None,
        })
        .collect()
}

/// The observations of type `O` among `effects`, for unit tests of a process.
pub fn observations<O: Wire>(effects: &[Effect]) -> Vec<O> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Observe(o) => o.downcast_ref::<O>().cloned(),
            _ => None,
        })
        .collect()
}

/// The timers of type `T` set among `effects`: (id, local-clock delay, payload), for unit tests
/// of a process.
pub fn timers_set<T: Wire>(effects: &[Effect]) -> Vec<(TimerId, Duration, T)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SetTimer { id, delay, timer } => {
                timer.downcast_ref::<T>().map(|t| (*id, *delay, t.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Owns everything a [`Context`] borrows, for unit tests of protocol state machines without a
/// simulator: call a handler with `tc.ctx()`, then inspect and drain `tc.effects`.
pub struct TestContext {
    /// The node the context speaks for.
    pub node: NodeId,
    /// The local clock reading handlers see, in nanoseconds; tests advance it by hand.
    pub local_time_ns: i64,
    /// The node's disk.
    pub disk: Disk,
    /// The node's RNG (seeded from `node` by [`TestContext::new`]).
    pub rng: ChaCha8Rng,
    /// Next timer id to hand out.
    pub next_timer_id: u64,
    /// Effects recorded so far.
    pub effects: Vec<Effect>,
}

impl TestContext {
    /// A context for `node` at local time 0 with an empty disk and an RNG seeded with `seed`.
    pub fn new(node: NodeId, seed: u64) -> Self {
        use rand::SeedableRng;
        TestContext {
            node,
            local_time_ns: 0,
            disk: Disk::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_timer_id: 0,
            effects: Vec::new(),
        }
    }

    /// A [`Context`] borrowing this test harness.
    pub fn ctx(&mut self) -> Context<'_> {
        Context::new(
            self.node,
            self.local_time_ns,
            &mut self.disk,
            &mut self.rng,
            &mut self.next_timer_id,
            &mut self.effects,
        )
    }

    /// Removes and returns the recorded effects.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Simulates a crash: drops unsynced disk writes and pending effects.
    pub fn crash(&mut self) {
        self.disk.crash();
        self.effects.clear();
    }
}
