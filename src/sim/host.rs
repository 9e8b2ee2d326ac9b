//! One host: the state of a node that outlives its process, and its lifecycle.
//!
//! A node's [`NodeState`] holds its [`Status`], its inbox (inputs waiting for a resume or a
//! boot), its pending timers, its disk, its local clock, its RNG stream and the running
//! incarnation's process (built by its driver task, `sim::node`). A crash destroys the process
//! and unsynced writes; everything else here survives it.
//!
//! The transitions of a host are methods of [`World`] (they trace, count and schedule): booting
//! a fresh process (called by its driver), crash, restart, pause, resume, clock jumps and drift
//! (which reschedule the pending timers), and the wait of the central task for booting drivers.

use std::collections::{BTreeMap, VecDeque};

use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::process::disk::Disk;
use crate::process::{AnyProcess, Message, NodeId, NodeRole, Timer, TimerId};
use crate::sim::clock::Clock;
use crate::sim::faults::PlannedFault;
use crate::sim::record::LifecycleKind;
use crate::sim::world::{Event, World};

/// A node's lifecycle state.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Running.
    Up,
    /// Stopped by a crash; its volatile state is gone.
    Crashed,
    /// Frozen: nothing is processed; messages and timers queue.
    Paused,
}

/// Something queued for a node that cannot handle it yet (paused, or not yet booted).
#[derive(Debug)]
pub enum Input {
    /// A message that arrived.
    Message {
        /// Its id in the trace.
        msg_id: u64,
        /// Sender.
        from: NodeId,
        /// The message.
        message: Message,
    },
    /// A timer that expired.
    Timer {
        /// Its id.
        id: TimerId,
        /// Its payload.
        timer: Timer,
    },
}

#[derive(Debug)]
pub(super) struct PendingTimer {
    pub(super) local_deadline_ns: i64,
    pub(super) timer: Timer,
    pub(super) generation: u64,
}

/// Per-node state that outlives the process object (which a crash destroys).
pub struct NodeState {
    /// Lifecycle state.
    pub status: Status,
    /// Number of boots so far (1 after the first `on_start`).
    pub incarnation: u32,
    pub(super) disk: Disk,
    pub(super) clock: Clock,
    pub(super) rng: ChaCha8Rng,
    pub(super) next_timer_id: u64,
    pub(super) timers: BTreeMap<TimerId, PendingTimer>,
    pub(super) inbox: VecDeque<Input>,
    /// The running incarnation's process (empty while crashed or not yet booted, and while
    /// one of its handlers runs: the world takes it out for the call).
    pub(super) process: Option<Box<dyn AnyProcess>>,
    pub(super) madsim_id: Option<madsim::task::NodeId>,
    pub(super) last_role: Option<(NodeRole, u64)>,
    /// False from a (re)start until the new process has run `on_start`.
    pub(super) booted: bool,
}

/// True if `status` means the node is running (for checkers).
pub fn is_up(status: Status) -> bool {
    status == Status::Up
}

impl World {
    // ----- booting: the drivers' side -----

    /// Records the madsim node backing `node` (for kill, restart, pause, resume).
    pub fn set_madsim_id(&mut self, node: NodeId, id: madsim::task::NodeId) {
        self.nodes[node.index()].madsim_id = Some(id);
    }

    /// True while some running node has not yet booted (its driver has not run since madsim
    /// started it). Time must not advance then: a node boots at exactly the time it was started.
    /// (madsim advances its own clock a little with every task poll, so without this wait the
    /// central task could fire a later event first.) Paused and crashed nodes do not count.
    pub fn drivers_busy(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| n.status == Status::Up && !n.booted)
    }

    /// Called by a driver when it has booted its process: wakes the central task if it was
    /// waiting for the drivers and they are now all idle.
    pub fn driver_idle(&mut self) {
        if self.central_waits_for_drivers && !self.drivers_busy() {
            self.central_waits_for_drivers = false;
            if let Some(waker) = self.central_waker.take() {
                waker.wake();
            }
        }
    }

    /// Boots `process`, freshly built for `node` by its driver: traces `start`, runs
    /// `on_start`, then handles anything that queued for it. The world keeps the process until
    /// the node crashes (or the run ends).
    pub fn boot(&mut self, node: NodeId, mut process: Box<dyn AnyProcess>) {
        if self.halt.is_some() {
            return;
        }
        let state = &mut self.nodes[node.index()];
        state.incarnation += 1;
        state.booted = true;
        let incarnation = state.incarnation;
        let durable_bytes = state.disk.durable_bytes() as u64;
        self.trace
            .line(self.now_ns, Some(node), "start")
            .u64("incarnation", u64::from(incarnation))
            .u64("durable_bytes", durable_bytes)
            .end();
        if let Some(local_ns) = self.call(node, |ctx| {
            process.start(ctx);
            Ok(())
        }) {
            self.apply_effects(node, local_ns);
        }
        self.drain_inbox(node, process.as_mut());
        self.put_back(node, process);
    }

    // ----- lifecycle -----

    pub(super) fn madsim(&self) -> madsim::runtime::Handle {
        madsim::runtime::Handle::current()
    }

    fn record_lifecycle(&mut self, node: NodeId, kind: LifecycleKind, origin: &str) {
        self.trace
            .line(self.now_ns, Some(node), kind.name())
            .name("origin", origin)
            .end();
        self.push_lifecycle(node, kind);
    }

    /// Crashes `node`: drops its queued inputs, timers and unsynced writes, kills its tasks.
    /// Returns false if it was already crashed.
    pub(super) fn crash(&mut self, node: NodeId, fault: &PlannedFault) -> bool {
        if self.nodes[node.index()].status == Status::Crashed {
            return false;
        }
        let state = &mut self.nodes[node.index()];
        state.status = Status::Crashed;
        state.timers.clear();
        state.process = None;
        state.last_role = None;
        let lost_writes = state.disk.crash() as u64;
        let queued: Vec<Input> = state.inbox.drain(..).collect();
        let madsim_id = state.madsim_id;
        self.trace
            .line(self.now_ns, Some(node), "crash")
            .name("origin", &fault.origin)
            .u64("lost_writes", lost_writes)
            .end();
        self.push_lifecycle(node, LifecycleKind::Crash);
        for input in queued {
            if let Input::Message { msg_id, from, .. } = input {
                self.drop_message(msg_id, from, node, "node-crashed");
            }
        }
        self.stats.crashes += 1;
        if let Some(id) = madsim_id {
            self.madsim().kill(id);
        }
        true
    }

    pub(super) fn restart(&mut self, node: NodeId, origin: &str) {
        if self.nodes[node.index()].status != Status::Crashed {
            return;
        }
        self.nodes[node.index()].status = Status::Up;
        self.nodes[node.index()].booted = false;
        self.last_heal_ns = self.now_ns;
        self.stats.restarts += 1;
        self.record_lifecycle(node, LifecycleKind::Restart, origin);
        if let Some(id) = self.nodes[node.index()].madsim_id {
            self.madsim().restart(id); // re-runs the node's init: a new driver boots a new process
        }
    }

    pub(super) fn pause(&mut self, node: NodeId, origin: &str) -> bool {
        if self.nodes[node.index()].status != Status::Up {
            return false;
        }
        self.nodes[node.index()].status = Status::Paused;
        self.stats.pauses += 1;
        self.record_lifecycle(node, LifecycleKind::Pause, origin);
        if let Some(id) = self.nodes[node.index()].madsim_id {
            self.madsim().pause(id);
        }
        true
    }

    pub(super) fn resume(&mut self, node: NodeId, origin: &str) {
        if self.nodes[node.index()].status != Status::Paused {
            return;
        }
        self.nodes[node.index()].status = Status::Up;
        self.last_heal_ns = self.now_ns;
        self.record_lifecycle(node, LifecycleKind::Resume, origin);
        if let Some(id) = self.nodes[node.index()].madsim_id {
            self.madsim().resume(id);
        }
        self.dispatch(node);
    }

    pub(super) fn clock_jump(&mut self, node: NodeId, delta_ns: i64, origin: &str) {
        let now = self.now_ns;
        self.nodes[node.index()].clock.jump(now, delta_ns);
        let local = self.nodes[node.index()].clock.local_at(now);
        self.trace
            .line(now, Some(node), "clock-jump")
            .name("origin", origin)
            .i64("delta_ns", delta_ns)
            .i64("local_ns", local)
            .end();
        self.reschedule_timers(node);
    }

    pub(super) fn clock_drift(&mut self, node: NodeId, drift: f64, origin: &str) {
        let now = self.now_ns;
        self.nodes[node.index()].clock.set_drift(now, drift);
        self.trace
            .line(now, Some(node), "clock-drift")
            .name("origin", origin)
            .json("drift", &drift)
            .end();
        self.reschedule_timers(node);
    }

    /// After a clock change, every pending timer of `node` gets a new global deadline (the old
    /// queue entries become stale through the generation number).
    fn reschedule_timers(&mut self, node: NodeId) {
        let now = self.now_ns;
        let state = &self.nodes[node.index()];
        let deadlines: Vec<(TimerId, u64)> = state
            .timers
            .iter()
            .map(|(&id, pending)| (id, state.clock.global_when(pending.local_deadline_ns, now)))
            .collect();
        for (id, at) in deadlines {
            let generation = self.schedule(at, Event::Timer { node, id });
            if let Some(pending) = self.nodes[node.index()].timers.get_mut(&id) {
                pending.generation = generation;
            }
        }
    }
}
