//! The world: the state of one simulated run, its event queue, delivery and effects.
//!
//! The world owns the global event queue (message arrivals, timer expiries, fault starts and
//! ends, ordered by `(time, sequence)`), every node's [`NodeState`] (see [`host`](super::host)),
//! the network, the trace and what the run record collects. Two kinds of madsim task act on it:
//!
//! - the *central* task (`sim::run`) advances virtual time to the next event, sets
//!   [`World::now_ns`] to its time and fires it: an arriving message is checked against cuts and
//!   crashes and handed to the receiving process's handler, as is an expired timer; the handler's
//!   recorded effects are applied here (sends, timers, observations, history); a fault is applied
//!   by [`nemesis`](super::nemesis) (the network, a clock, or a node's lifecycle);
//! - one *driver* task per node (`sim::node`) builds the node's process object and boots it
//!   when madsim starts (or restarts) the node. The world then owns the process (in its
//!   [`NodeState`]) and the central task calls its handlers directly, so an event costs no
//!   task switch and no lock or reference count; a crash drops the process, volatile state
//!   and all, and kills the madsim node.
//!
//! A message or timer for a node that is paused, or restarted but not yet booted, waits in the
//! node's inbox and is handled (in order) when it resumes or boots.
//!
//! Simulated time is `now_ns`, the time of the latest fired event, in integer nanoseconds; it only
//! grows, so the trace is ordered by time. Handlers run at that time.
//!
//! `impl World` is spread by concept: this file holds the state, the queue, delivery and
//! effects; [`host`](super::host) one node's boot and lifecycle (crash, restart, pause, resume,
//! clock changes); [`nemesis`](super::nemesis) applying and undoing faults; [`run`](super::run)
//! the end of the run and the record it hands over.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Waker;

use rand_chacha::ChaCha8Rng;

use crate::history::{CompactHistory, Events};
use crate::process::disk::Disk;
use crate::process::{
    AnyProcess, CommonObservation, Context, Effect, Message, NodeId, Timer, TimerId,
};
use crate::scenario::topology::Topology;
use crate::scenario::{Scenario, limits};
use crate::sim::clock::Clock;
use crate::sim::faults::PlannedFault;
use crate::sim::host::{Input, NodeState, PendingTimer, Status};
use crate::sim::nemesis::Undo;
use crate::sim::network::{Fate, Network};
use crate::sim::queue::EventQueue;
use crate::sim::record::{
    Fold, Halt, LifecycleKind, LifecycleRecord, LimitExceeded, ObservationRecord, PartitionRecord,
    Records, Stats,
};
use crate::sim::trace::Trace;

/// Bounds on the events one run may fire (arrivals, timer firings, fault starts and ends). A run
/// that would fire more stops there with [`RunRecord::limit_exceeded`](crate::sim::RunRecord::limit_exceeded) set.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EventLimits {
    /// Most events in the run.
    pub per_run: u64,
    /// Most events at one instant of simulated time.
    pub per_instant: u64,
    /// Most records kept for the checks (history events plus observations no fold consumed).
    pub records_per_run: u64,
}

impl Default for EventLimits {
    /// [`limits::MAX_EVENTS_PER_RUN`], [`limits::MAX_EVENTS_PER_INSTANT`] and
    /// [`limits::MAX_RECORDS_PER_RUN`].
    fn default() -> Self {
        EventLimits {
            per_run: limits::MAX_EVENTS_PER_RUN,
            per_instant: limits::MAX_EVENTS_PER_INSTANT,
            records_per_run: limits::MAX_RECORDS_PER_RUN,
        }
    }
}

/// A queued event. Kept small, 16 bytes (the queue moves events on every push and pop): an
/// arriving message waits in [`World::in_flight`] with its id and ends and the event holds its
/// slot; a timer's generation is the sequence number of its queue entry ([`Scheduled::seq`]).
#[derive(Copy, Clone, Debug)]
pub(super) enum Event {
    Arrive { slot: u32 },
    Timer { node: NodeId, id: TimerId },
    FaultStart { index: u32 },
    FaultEnd { index: u32 },
}

/// A slot of [`World::in_flight`]: a message on its way (what an [`Event::Arrive`] points
/// to), or a free slot (`message` is `None`). The message waits here from its send to its
/// delivery, where its handler takes its value straight out of the slot.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) msg_id: u64,
    pub(super) from: NodeId,
    pub(super) to: NodeId,
    pub(super) message: Option<Message>,
}

/// An event in the queue ([`EventQueue`]): fired in `(t_ns, seq)` order.
#[derive(Copy, Clone, Debug)]
pub(super) struct Scheduled {
    pub(super) t_ns: u64,
    /// Unique, in scheduling order: breaks ties between events at one instant.
    pub(super) seq: u64,
    pub(super) event: Event,
}

const _: () = assert!(std::mem::size_of::<Event>() == 16);

/// The state of one run. See the module docs.
pub struct World {
    /// Current simulated time (global), in nanoseconds.
    pub now_ns: u64,
    /// When the run ends.
    pub end_ns: u64,
    pub(super) scenario: Arc<Scenario>,
    pub(super) seed: u64,
    pub(super) topology: Arc<Topology>,
    pub(super) nodes: Vec<NodeState>,
    pub(super) network: Network,
    pub(super) queue: EventQueue,
    /// Messages on their way, by slot (see [`Event::Arrive`] and [`InFlight`]).
    pub(super) in_flight: Vec<InFlight>,
    /// Free slots of `in_flight`.
    pub(super) free_slots: Vec<u32>,
    pub(super) next_seq: u64,
    pub(super) next_msg_id: u64,
    pub(super) faults: Vec<PlannedFault>,
    pub(super) active: BTreeMap<u64, Undo>,
    pub(super) trace: Trace,
    pub(super) stats: Stats,
    pub(super) history: CompactHistory,
    pub(super) observations: Records<ObservationRecord>,
    /// The checks' readers of observations and lifecycle records while the run goes.
    pub(super) folds: Vec<Box<dyn Fold>>,
    /// Keep observations the folds consumed too (`RunOptions::keep_all_observations`).
    pub(super) keep_all_observations: bool,
    pub(super) lifecycle: Vec<LifecycleRecord>,
    pub(super) partitions: Vec<PartitionRecord>,
    pub(super) last_heal_ns: u64,
    pub(super) record_seq: u64,
    pub(super) central_waker: Option<Waker>,
    pub(super) central_waits_for_drivers: bool,
    pub(super) halt: Option<Halt>,
    pub(super) effects: Vec<Effect>,
    pub(super) event_limits: EventLimits,
    /// The instant of the latest events fired, and how many fired at it.
    pub(super) instant_ns: u64,
    pub(super) events_at_instant: u64,
    pub(super) limit_exceeded: Option<LimitExceeded>,
}

impl World {
    /// A world at time 0 with every node up (drivers not yet started) and the fault timeline
    /// queued. `node_rngs` holds one stream per node.
    pub fn new(
        scenario: Arc<Scenario>,
        seed: u64,
        topology: Arc<Topology>,
        network: Network,
        faults: Vec<PlannedFault>,
        node_rngs: Vec<ChaCha8Rng>,
        trace: Trace,
    ) -> World {
        let nodes = node_rngs
            .into_iter()
            .enumerate()
            .map(|(i, rng)| {
                let clock = scenario
                    .clock
                    .get(&topology.names[i])
                    .map_or(Clock::new(0, 0.0), |c| Clock::new(c.offset.0, c.drift));
                NodeState {
                    status: Status::Up,
                    incarnation: 0,
                    disk: Disk::default(),
                    clock,
                    rng,
                    next_timer_id: 0,
                    timers: BTreeMap::new(),
                    inbox: VecDeque::new(),
                    process: None,
                    madsim_id: None,
                    last_role: None,
                    booted: false,
                }
            })
            .collect();
        let mut world = World {
            now_ns: 0,
            end_ns: scenario.duration.as_nanos(),
            scenario,
            seed,
            topology,
            nodes,
            network,
            queue: EventQueue::default(),
            in_flight: Vec::new(),
            free_slots: Vec::new(),
            next_seq: 0,
            next_msg_id: 0,
            faults,
            active: BTreeMap::new(),
            trace,
            stats: Stats::default(),
            history: CompactHistory::default(),
            observations: Records::default(),
            folds: Vec::new(),
            keep_all_observations: false,
            lifecycle: Vec::new(),
            partitions: Vec::new(),
            last_heal_ns: 0,
            record_seq: 0,
            central_waker: None,
            central_waits_for_drivers: false,
            halt: None,
            effects: Vec::new(),
            event_limits: EventLimits::default(),
            instant_ns: 0,
            events_at_instant: 0,
            limit_exceeded: None,
        };
        for index in 0..world.faults.len() {
            let at = world.faults[index].at_ns;
            let index32 = u32::try_from(index).expect("a run's faults are bounded");
            world.schedule(at, Event::FaultStart { index: index32 });
            if let Some(end) = world.faults[index].undo_at_ns {
                world.schedule(end, Event::FaultEnd { index: index32 });
            }
        }
        world
    }

    /// The run's topology.
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }

    pub(super) fn next_record_seq(&mut self) -> u64 {
        self.record_seq += 1;
        self.record_seq
    }

    /// Records a lifecycle change of `node` now (after its trace line), for the folds and the
    /// record.
    pub(super) fn push_lifecycle(&mut self, node: NodeId, kind: LifecycleKind) {
        let record = LifecycleRecord {
            seq: self.next_record_seq(),
            t_ns: self.now_ns,
            node,
            kind,
        };
        for fold in &mut self.folds {
            fold.lifecycle(&record);
        }
        self.lifecycle.push(record);
    }

    pub(super) fn name(&self, node: NodeId) -> &str {
        &self.topology.names[node.index()]
    }

    /// Queues `event` at `t_ns`; returns its sequence number (a timer's generation). Inlined,
    /// so that the event reaches the queue in registers (passed by reference, it was read back
    /// from the stack with a wider load than it was written with, a stall of the store buffer).
    #[inline(always)]
    pub(super) fn schedule(&mut self, t_ns: u64, event: Event) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Scheduled { t_ns, seq, event });
        seq
    }

    // ----- the central task's side -----

    /// Time of the earliest queued event.
    pub fn next_event_ns(&self) -> Option<u64> {
        self.queue.peek().map(|s| s.t_ns)
    }

    /// Sets the run's event limits (default: the documented ones).
    pub fn set_event_limits(&mut self, limits: EventLimits) {
        self.event_limits = limits;
    }

    /// True if the run stopped early: a process panicked or an event limit was reached.
    pub fn halted(&self) -> bool {
        self.halt.is_some() || self.limit_exceeded.is_some()
    }

    /// Counts one more event at `t_ns`; false (and the run stopped) if that is over a limit.
    fn count_event(&mut self, t_ns: u64) -> bool {
        if t_ns != self.instant_ns {
            self.instant_ns = t_ns;
            self.events_at_instant = 0;
        }
        let over = if self.stats.events >= self.event_limits.per_run {
            Some(("events_per_run", self.event_limits.per_run))
        } else if self.events_at_instant >= self.event_limits.per_instant {
            Some(("events_per_instant", self.event_limits.per_instant))
        } else if (self.observations.len() + self.history.len()) as u64
            >= self.event_limits.records_per_run
        {
            Some(("records_per_run", self.event_limits.records_per_run))
        } else {
            None
        };
        if let Some((limit, value)) = over {
            self.limit_exceeded = Some(LimitExceeded { limit, value, t_ns });
            return false;
        }
        self.stats.events += 1;
        self.events_at_instant += 1;
        true
    }

    pub(super) fn set_central_waker(&mut self, waker: &Waker) {
        match &self.central_waker {
            Some(w) if w.will_wake(waker) => {}
            _ => self.central_waker = Some(waker.clone()),
        }
    }

    /// The current global time (ns): the instant of the events being fired.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Parks the central task until the drivers are idle ([`World::drivers_busy`] is false) or
    /// the run halts.
    pub fn wait_for_drivers(&mut self, waker: &Waker) {
        self.central_waits_for_drivers = true;
        self.set_central_waker(waker);
    }

    /// Advances to `t_ns` and fires every event queued for that instant, in queue order.
    pub fn fire_events_at(&mut self, t_ns: u64) {
        debug_assert!(t_ns >= self.now_ns, "time never goes back");
        self.now_ns = t_ns;
        while self.queue.peek().is_some_and(|s| s.t_ns == t_ns) {
            if !self.count_event(t_ns) {
                return;
            }
            let scheduled = self.queue.pop().expect("peeked");
            match scheduled.event {
                Event::Arrive { slot } => self.arrive(slot),
                Event::Timer { node, id } => self.timer_expired(node, id, scheduled.seq),
                Event::FaultStart { index } => self.fault_start(index as usize),
                Event::FaultEnd { index } => self.fault_end(index as usize),
            }
            if self.halt.is_some() {
                return;
            }
        }
    }

    /// The message in `slot` arrives: it is delivered, or dropped if its link is cut or its
    /// receiver crashed. The slot is free again afterwards.
    fn arrive(&mut self, slot: u32) {
        let InFlight {
            msg_id, from, to, ..
        } = self.in_flight[slot as usize];
        let reason = if self.network.is_cut(from, to) {
            Some("partition")
        } else if self.nodes[to.index()].status == Status::Crashed {
            Some("node-down")
        } else {
            None
        };
        match reason {
            Some(reason) => self.drop_message(msg_id, from, to, reason),
            None => self.deliver_message(to, msg_id, from, slot),
        }
        self.release(slot);
    }

    pub(super) fn drop_message(
        &mut self,
        msg_id: u64,
        from: NodeId,
        to: NodeId,
        reason: &'static str,
    ) {
        *self
            .stats
            .messages_dropped
            .entry(reason.to_string())
            .or_default() += 1;
        self.trace
            .line(self.now_ns, Some(to), "drop")
            .node("from", from)
            .u64("msg_id", msg_id)
            .name("reason", reason)
            .end();
    }

    fn timer_expired(&mut self, node: NodeId, id: TimerId, generation: u64) {
        let state = &mut self.nodes[node.index()];
        if let Entry::Occupied(entry) = state.timers.entry(id)
            && entry.get().generation == generation
        {
            let pending = entry.remove();
            match self.ready(node) {
                Some(mut process) => {
                    self.handle_timer(node, process.as_mut(), id, pending.timer);
                    self.put_back(node, process);
                }
                None => self.nodes[node.index()].inbox.push_back(Input::Timer {
                    id,
                    timer: pending.timer,
                }),
            }
        }
    }

    /// Hands the message arriving in `slot` to `node`'s process now if it is
    /// [`World::ready`]; otherwise queues it (for its resume or boot). The handler takes the
    /// message's value straight from its in-flight slot (the payload around it is never
    /// moved), never through an [`Input`] unless it waits.
    fn deliver_message(&mut self, node: NodeId, msg_id: u64, from: NodeId, slot: u32) {
        match self.ready(node) {
            Some(mut process) => {
                self.handle_message(node, process.as_mut(), msg_id, from, Lent::Slot(slot));
                self.put_back(node, process);
            }
            None => {
                let message = self.in_flight[slot as usize]
                    .message
                    .take()
                    .expect("a queued message is in flight");
                self.nodes[node.index()].inbox.push_back(Input::Message {
                    msg_id,
                    from,
                    message,
                });
            }
        }
    }

    /// Takes `node`'s process out to run a handler now, if the node is up, booted and has
    /// nothing queued (and the run goes on); give it back with [`World::put_back`].
    #[inline]
    fn ready(&mut self, node: NodeId) -> Option<Box<dyn AnyProcess>> {
        let state = &mut self.nodes[node.index()];
        if self.halt.is_none()
            && state.status == Status::Up
            && state.booted
            && state.inbox.is_empty()
        {
            state.process.take()
        } else {
            None
        }
    }

    /// Runs `node`'s queued inputs through its process now, if it is up and booted (otherwise
    /// they wait for its resume or boot).
    pub(super) fn dispatch(&mut self, node: NodeId) {
        let state = &self.nodes[node.index()];
        if state.status != Status::Up || !state.booted {
            return;
        }
        let Some(mut process) = self.nodes[node.index()].process.take() else {
            return;
        };
        self.drain_inbox(node, process.as_mut());
        self.put_back(node, process);
    }

    /// Gives `node` back the process taken out of its state to run a handler (which cannot
    /// change the node's lifecycle: only faults crash, restart or pause it).
    pub(super) fn put_back(&mut self, node: NodeId, process: Box<dyn AnyProcess>) {
        let slot = &mut self.nodes[node.index()].process;
        debug_assert!(slot.is_none(), "a handler never replaces its own process");
        *slot = Some(process);
    }

    /// Runs every queued input of `node` through `process`. Each input is traced (`deliver` or
    /// `timer`) before the effects of its handler.
    pub(super) fn drain_inbox(&mut self, node: NodeId, process: &mut dyn AnyProcess) {
        while self.halt.is_none() && self.nodes[node.index()].status == Status::Up {
            let Some(input) = self.nodes[node.index()].inbox.pop_front() else {
                break;
            };
            self.handle(node, process, input);
        }
    }

    /// Runs one input through `process`: traces it (`deliver` or `timer`), then applies the
    /// handler's effects.
    fn handle(&mut self, node: NodeId, process: &mut dyn AnyProcess, input: Input) {
        match input {
            Input::Message {
                msg_id,
                from,
                message,
            } => {
                let mut message = Some(message);
                self.handle_message(node, process, msg_id, from, Lent::Owned(&mut message));
            }
            Input::Timer { id, timer } => self.handle_timer(node, process, id, timer),
        }
    }

    /// Runs an arrived message through `process` (see [`World::handle`]).
    fn handle_message(
        &mut self,
        node: NodeId,
        process: &mut dyn AnyProcess,
        msg_id: u64,
        from: NodeId,
        message: Lent<'_>,
    ) {
        let outcome = self.call_lending(node, message, |ctx, message| {
            if process.message_lent(ctx, from, message) {
                Ok(())
            } else {
                Err(())
            }
        });
        match outcome {
            Some(local_ns) => {
                self.stats.messages_delivered += 1;
                self.trace
                    .line(self.now_ns, Some(node), "deliver")
                    .node("from", from)
                    .u64("msg_id", msg_id)
                    .end();
                self.apply_effects(node, local_ns);
            }
            None if self.halt.is_none() => self.drop_message(msg_id, from, node, "wrong-protocol"),
            None => {}
        }
    }

    /// Runs an expired timer through `process` (see [`World::handle`]).
    fn handle_timer(
        &mut self,
        node: NodeId,
        process: &mut dyn AnyProcess,
        id: TimerId,
        timer: Timer,
    ) {
        self.stats.timers_fired += 1;
        self.trace
            .line(self.now_ns, Some(node), "timer")
            .u64("timer_id", id.0)
            .payload("timer", &timer)
            .end();
        match self.call(node, |ctx| process.timer(ctx, id, timer).map_err(|_| ())) {
            Some(local_ns) => self.apply_effects(node, local_ns),
            None => self.halt_with(
                node,
                "a timer of another protocol reached this process".into(),
            ),
        }
    }

    /// Runs one handler with a fresh context; its effects are left in `self.effects`. A panic
    /// (a broken process invariant) halts the run. Returns the local time the handler saw, or
    /// `None` if it refused its input or panicked (no effects are kept then).
    pub(super) fn call(
        &mut self,
        node: NodeId,
        handler: impl FnOnce(&mut Context<'_>) -> Result<(), ()>,
    ) -> Option<i64> {
        let mut none = None;
        self.call_lending(node, Lent::Owned(&mut none), |ctx, _| handler(ctx))
    }

    /// [`World::call`] for a handler that is lent a message: the one in `message`, which may
    /// be an in-flight slot of the world itself (lent alongside the context).
    fn call_lending(
        &mut self,
        node: NodeId,
        message: Lent<'_>,
        handler: impl FnOnce(&mut Context<'_>, &mut Option<Message>) -> Result<(), ()>,
    ) -> Option<i64> {
        let state = &mut self.nodes[node.index()];
        let local_ns = state.clock.local_at(self.now_ns);
        let effects = &mut self.effects;
        let message = match message {
            Lent::Slot(slot) => &mut self.in_flight[slot as usize].message,
            Lent::Owned(message) => message,
        };
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Context::new(
                node,
                local_ns,
                &mut state.disk,
                &mut state.rng,
                &mut state.next_timer_id,
                effects,
            );
            handler(&mut ctx, message)
        }));
        match result {
            Ok(Ok(())) => Some(local_ns),
            Ok(Err(())) => {
                self.effects.clear();
                None
            }
            Err(panic) => {
                self.effects.clear();
                self.halt_with(node, panic_message(&*panic));
                None
            }
        }
    }

    /// Applies the effects the last handler recorded, in order.
    ///
    /// A sent message is moved once, from its effect straight into its in-flight slot
    /// ([`World::send`]): taking each effect out by value first copied its 112 bytes to the
    /// stack and on through the calls to the slot, three copies per message, one of them
    /// stalled on the store buffer (about a tenth of the kernel ping-pong's time).
    pub(super) fn apply_effects(&mut self, node: NodeId, local_ns: i64) {
        let mut effects = std::mem::take(&mut self.effects);
        let count = effects.len();
        let base = effects.as_mut_ptr();
        // SAFETY: the vector forgets its elements before any is moved out; each of the `count`
        // initialized elements is then moved out exactly once below (a `Send`'s message by
        // `send`, any other effect whole), so none is dropped twice. If applying one panicked,
        // the rest would leak, never be dropped twice.
        unsafe { effects.set_len(0) };
        for i in 0..count {
            // SAFETY: `i < count`, the initialized length, and element `i` is not yet moved.
            let effect = unsafe { base.add(i) };
            // SAFETY: as above; only read through this reference before being moved out.
            if let Effect::Send { to, message } = unsafe { &*effect } {
                let to = *to;
                // SAFETY: the message is moved out of the effect exactly once (see above).
                self.send(node, to, unsafe { Moved::new(message) });
            } else {
                // SAFETY: as above.
                self.apply(node, local_ns, unsafe { effect.read() });
            }
        }
        self.effects = effects;
    }

    /// Applies one effect other than a send (sends are moved in place by
    /// [`World::apply_effects`]).
    fn apply(&mut self, node: NodeId, local_ns: i64, effect: Effect) {
        match effect {
            Effect::Send { .. } => unreachable!("apply_effects moves sends in place"),
            Effect::SetTimer { id, delay, timer } => {
                let deadline = local_ns.saturating_add(delay.as_nanos() as i64);
                let state = &mut self.nodes[node.index()];
                let fire_at = state.clock.global_when(deadline, self.now_ns);
                let generation = self.schedule(fire_at, Event::Timer { node, id });
                self.nodes[node.index()].timers.insert(
                    id,
                    PendingTimer {
                        local_deadline_ns: deadline,
                        timer,
                        generation,
                    },
                );
            }
            Effect::CancelTimer { id } => {
                self.nodes[node.index()].timers.remove(&id);
            }
            Effect::Observe(observation) => {
                self.stats.observations += 1;
                self.trace
                    .line(self.now_ns, Some(node), "observe")
                    .payload("obs", &observation)
                    .end();
                if let Some(&CommonObservation::Role { role, term }) = observation.downcast_ref() {
                    self.nodes[node.index()].last_role = Some((role, term));
                }
                let seq = self.next_record_seq();
                let record = ObservationRecord {
                    seq,
                    t_ns: self.now_ns,
                    node,
                    observation,
                };
                let mut consumed = false;
                for fold in &mut self.folds {
                    consumed |= fold.observation(&record);
                }
                if !consumed || self.keep_all_observations {
                    self.observations.push(record);
                }
            }
            Effect::History(event) => {
                let mut event = *event;
                event.index = Events::len(&self.history) as u64;
                event.time_ns = self.now_ns;
                event.node = self.topology.names[node.index()].clone();
                self.trace
                    .line(self.now_ns, Some(node), "history")
                    .json("op", &event)
                    .end();
                self.history.push_event(event);
            }
        }
    }

    /// Sends `message` from `from` to `to`: it is moved into its in-flight slot (the only
    /// copy of its payload on the way), traced from there and given its fate.
    fn send(&mut self, from: NodeId, to: NodeId, message: Moved<'_>) {
        if to.index() >= self.nodes.len() {
            drop(message.take());
            self.halt_with(
                from,
                format!("sent a message to {to:?}, which is not a node of this cluster"),
            );
            return;
        }
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        self.stats.messages_sent += 1;
        // The message goes to its in-flight slot first and is traced from there: it is moved
        // once, from the effect to the slot.
        let slot = self.hold(msg_id, from, to, message);
        let held = self.in_flight[slot as usize]
            .message
            .as_ref()
            .expect("just held");
        self.trace
            .line(self.now_ns, Some(from), "send")
            .node("to", to)
            .u64("msg_id", msg_id)
            .payload_counting_bytes("msg", held, &mut self.stats.message_bytes_sent)
            .end();
        match self.network.fate(from, to, self.now_ns) {
            Fate::Lost => {
                self.release(slot);
                self.drop_message(msg_id, from, to, "loss");
            }
            Fate::Arrives {
                at_ns,
                duplicate_at_ns,
            } => {
                if let Some(second) = duplicate_at_ns {
                    let copy_id = self.next_msg_id;
                    self.next_msg_id += 1;
                    self.stats.messages_duplicated += 1;
                    self.trace
                        .line(self.now_ns, Some(from), "duplicate")
                        .u64("msg_id", copy_id)
                        .u64("of", msg_id)
                        .end();
                    self.schedule(at_ns, Event::Arrive { slot });
                    let copy = self.in_flight[slot as usize]
                        .message
                        .clone()
                        .expect("just held");
                    let copy = std::mem::ManuallyDrop::new(copy);
                    // SAFETY: `copy` is never used or dropped again: `hold` moves it out.
                    let copy_slot = self.hold(copy_id, from, to, unsafe { Moved::new(&copy) });
                    self.schedule(second, Event::Arrive { slot: copy_slot });
                } else {
                    self.schedule(at_ns, Event::Arrive { slot });
                }
            }
        }
    }

    /// Keeps a message in flight; returns its slot.
    ///
    /// A free slot is filled field by field, not by moving a whole [`InFlight`] in: a struct
    /// built on the stack with narrow stores and then copied with wide loads stalls the
    /// processor (its store buffer cannot forward them); `perf` put most of this function's
    /// samples on that copy.
    /// The message is moved straight from where it was (its effect) into the slot.
    #[inline(always)]
    fn hold(&mut self, msg_id: u64, from: NodeId, to: NodeId, message: Moved<'_>) -> u32 {
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                self.in_flight.push(InFlight {
                    msg_id,
                    from,
                    to,
                    message: None,
                });
                u32::try_from(self.in_flight.len() - 1).expect("messages in flight fit a u32")
            }
        };
        let held = &mut self.in_flight[slot as usize];
        held.msg_id = msg_id;
        held.from = from;
        held.to = to;
        message.into_slot(&mut held.message);
        slot
    }

    /// Frees an in-flight slot (dropping its message if it still holds one).
    #[inline]
    fn release(&mut self, slot: u32) {
        self.in_flight[slot as usize].message = None;
        self.free_slots.push(slot);
    }

    pub(super) fn halt_with(&mut self, node: NodeId, message: String) {
        if self.halt.is_some() {
            return;
        }
        self.trace
            .line(self.now_ns, Some(node), "panic")
            .str("message", &message)
            .end();
        self.halt = Some(Halt {
            t_ns: self.now_ns,
            node: self.name(node).to_string(),
            message,
        });
        if let Some(waker) = self.central_waker.take() {
            waker.wake();
        }
    }
}

/// A message being moved from where it was recorded (an effect) to where it waits (an
/// in-flight slot) without passing through the stack: a borrowed place whose value is
/// moved out once, by [`Moved::into_slot`] or [`Moved::take`].
struct Moved<'a> {
    message: &'a Message,
}

impl<'a> Moved<'a> {
    /// # Safety
    ///
    /// The value at `message` is moved out by this `Moved` (which always moves it, even when
    /// dropped unused): the caller MUST NOT use or drop it afterwards.
    #[inline(always)]
    unsafe fn new(message: &'a Message) -> Moved<'a> {
        Moved { message }
    }

    /// Moves the message into `slot`, which MUST be empty (a free in-flight slot).
    #[inline(always)]
    fn into_slot(self, slot: &mut Option<Message>) {
        debug_assert!(slot.is_none(), "a free slot holds no message");
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `Moved::new`'s caller gave up the value, and `this` is not dropped, so it is
        // moved exactly once; `slot` is empty, so overwriting it drops nothing.
        unsafe { std::ptr::write(slot, Some(std::ptr::read(this.message))) }
    }

    /// Moves the message out.
    #[inline(always)]
    fn take(self) -> Message {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: as in `into_slot`.
        unsafe { std::ptr::read(this.message) }
    }
}

impl Drop for Moved<'_> {
    /// A message moved nowhere is dropped, once.
    fn drop(&mut self) {
        // SAFETY: as in `into_slot` (`into_slot` and `take` do not run this).
        drop(unsafe { std::ptr::read(self.message) });
    }
}

/// A message lent to a handler: in an in-flight slot of the world, or held by the caller.
enum Lent<'a> {
    Slot(u32),
    Owned(&'a mut Option<Message>),
}

/// The message of a caught panic (`&str` or `String` payloads; otherwise a placeholder): the
/// text of a process panic in the trace, and of a seed's panic in `outcome`, so keep its wording.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
