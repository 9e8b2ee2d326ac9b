//! The run loop: building a run's world and madsim runtime, the central task that fires the
//! world's events in time order, and the end of the run (shutting down, taking the record).
//!
//! Seeds: the run seed keys one ChaCha8 generator per purpose (distinct `set_stream` numbers):
//! madsim's scheduler seed, the fault stream, the network stream and one stream per node. A new
//! message or timer in one protocol never shifts the fault schedule.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::history::{EventType, Events};
use crate::process::NodeId;
use crate::scenario::Scenario;
use crate::scenario::topology::Topology;
use crate::sim::host::Status;
use crate::sim::node::Driver;
use crate::sim::record::{Derived, RunRecord};
use crate::sim::trace::Trace;
use crate::sim::world::{Event, EventLimits, World};
use crate::sim::{faults, lock, network, trace};

/// Stream numbers of the run seed's generators.
mod stream {
    pub const MADSIM: u64 = 0;
    pub const FAULTS: u64 = 1;
    pub const NETWORK: u64 = 2;
    pub const NODE_BASE: u64 = 1 << 32;
}

/// The generator for one purpose of a run seed.
pub fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Knobs of a run that are not part of the scenario.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Trace bytes kept in memory (the hash always covers every line). 0: keep nothing (for
    /// runs whose trace is never written: benchmarks, `faultline test`, sweeps).
    pub trace_limit_bytes: usize,
    /// Where kept trace lines go: `None` keeps them in memory (in the record); `Some(path)`
    /// streams them to that file as the run goes (the record names the file), so memory does
    /// not grow with the trace (see [`trace::Trace::to_file`]).
    pub trace_file: Option<std::path::PathBuf>,
    /// The run's event limits (default: the documented ones in `scenario::limits`).
    pub event_limits: EventLimits,
    /// Where the run publishes how far it got, for a progress display outside the simulation
    /// (`None`: nowhere). Publishing never changes the run.
    pub progress: Option<Arc<RunProgress>>,
    /// Keep every observation in the record, also those a check's [`Fold`](crate::sim::Fold)
    /// consumed while the run went (default false: a long run's record holds only what no fold
    /// consumed, e.g. no Raft log facts). For programs that read a family's facts from the
    /// record themselves; the run, its checks and its hash are the same either way.
    pub keep_all_observations: bool,
    /// A reader of the kept trace lines while the run goes, on a thread of its own (see
    /// [`trace::TraceTap`]; `None`: none). It never changes the run.
    pub trace_tap: Option<trace::TraceTap>,
}

/// How far a running simulation got, published every [`PROGRESS_EVERY`] instants for a display
/// that reads it from another thread (the CLI's progress line). The run only stores into it; a
/// reader never influences the run.
#[derive(Debug, Default)]
pub struct RunProgress {
    /// Simulated time reached (ns).
    pub now_ns: AtomicU64,
    /// Simulated time the run ends at (ns).
    pub end_ns: AtomicU64,
    /// Events fired so far.
    pub events: AtomicU64,
    /// Messages sent so far.
    pub messages_sent: AtomicU64,
    /// Set when the simulation is over (checks and reports may follow).
    pub finished: AtomicBool,
}

/// Instants fired between two publications of [`RunProgress`].
pub const PROGRESS_EVERY: u64 = 4096;

impl RunOptions {
    /// Options for a run whose trace is streamed, without a cap, to the file `path` (created
    /// or truncated; see [`RunOptions::trace_file`]).
    pub fn streaming_to(path: std::path::PathBuf) -> RunOptions {
        RunOptions {
            trace_limit_bytes: usize::MAX,
            trace_file: Some(path),
            ..RunOptions::default()
        }
    }

    /// Options for a run whose trace is only hashed, never written.
    pub fn hash_only() -> RunOptions {
        RunOptions {
            trace_limit_bytes: 0,
            ..RunOptions::default()
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            trace_limit_bytes: trace::DEFAULT_TRACE_LIMIT_BYTES,
            trace_file: None,
            event_limits: EventLimits::default(),
            progress: None,
            keep_all_observations: false,
            trace_tap: None,
        }
    }
}

/// The error of the `info` event the simulator records for every operation still open when the
/// run ends.
pub const UNANSWERED_AT_END: &str = "unanswered at end of run";

/// Runs a validated scenario with `seed` and returns what happened. Deterministic: the same
/// scenario, seed and faultline version give the same record (and `trace_hash`).
pub fn run(scenario: &Scenario, seed: u64, options: &RunOptions) -> RunRecord {
    let scenario = Arc::new(scenario.clone());
    let topology = Arc::new(Topology::new(&scenario));
    let faults = faults::plan(&scenario, &topology, &mut stream_rng(seed, stream::FAULTS));
    let network = network::Network::new(
        &scenario.network,
        &topology,
        stream_rng(seed, stream::NETWORK),
    );
    let node_rngs = (0..topology.len() as u64)
        .map(|i| stream_rng(seed, stream::NODE_BASE + i))
        .collect();
    let mut trace = match &options.trace_file {
        Some(path) if options.trace_limit_bytes > 0 => {
            trace::Trace::to_file(path, options.trace_limit_bytes, topology.names.clone())
        }
        _ => trace::Trace::new(options.trace_limit_bytes, topology.names.clone()),
    };
    if let Some(tap) = &options.trace_tap {
        trace.tap(tap.clone());
    }
    let world = Arc::new(Mutex::new(World::new(
        scenario.clone(),
        seed,
        topology.clone(),
        network,
        faults,
        node_rngs,
        trace,
    )));
    lock(&world).set_event_limits(options.event_limits);
    lock(&world).folds = scenario.families.folds(&scenario, &topology);
    lock(&world).keep_all_observations = options.keep_all_observations;
    let madsim_seed = rand::RngCore::next_u64(&mut stream_rng(seed, stream::MADSIM));
    let runtime =
        madsim::runtime::Runtime::with_seed_and_config(madsim_seed, madsim::Config::default());
    let main_world = world.clone();
    let progress = options.progress.clone();
    runtime.block_on(async move {
        let handle = madsim::runtime::Handle::current();
        let factories = scenario.families.factories(&scenario, &topology);
        for (i, make) in factories.into_iter().enumerate() {
            let id = NodeId(i as u32);
            let init_world = main_world.clone();
            let node = handle
                .create_node()
                .name(topology.name(id))
                .init(move || Driver::new(init_world.clone(), id, make.clone()))
                .build();
            lock(&main_world).set_madsim_id(id, node.id());
        }
        central(&main_world, progress.as_deref()).await;
        lock(&main_world).shut_down();
        // Let madsim drop the killed tasks before the runtime goes (MADSIM-NOTES: leaks).
        madsim::time::sleep(std::time::Duration::from_millis(1)).await;
    });
    drop(runtime);
    let record = lock(&world).take_record();
    if let Some(p) = &options.progress {
        p.now_ns.store(record.end_ns, Ordering::Relaxed);
        p.events.store(record.stats.events, Ordering::Relaxed);
        p.messages_sent
            .store(record.stats.messages_sent, Ordering::Relaxed);
        p.finished.store(true, Ordering::Relaxed);
    }
    record
}

/// The central task: fires the world's queued events in time order until the end of the run
/// (or a halt). It runs without yielding except while a node is being booted by its driver task
/// (at the start and after each restart), which must happen at the instant it was started.
///
/// madsim's clock is moved with `madsim::time::advance`, and only when madsim is about to run
/// something (before yielding to a booting driver) and at the end of the run: the world's queue
/// already knows every instant, nothing else in a run reads madsim's clock (processes see the
/// world's time through their context), and a madsim timer per instant (a timer, a wake-up and a
/// poll, at least 1 ms each), or even an `advance` per instant, cost more than the events. So
/// whenever madsim runs a task its clock reads the time of the current event (or slightly more:
/// madsim adds a little time per task poll), and the run ends with it at the run's end.
async fn central(world: &Arc<Mutex<World>>, progress: Option<&RunProgress>) {
    let time = madsim::time::TimeHandle::current();
    let start = time.now_instant();
    if let Some(p) = progress {
        p.end_ns.store(lock(world).end_ns, Ordering::Relaxed);
    }
    let mut instants: u64 = 0;
    std::future::poll_fn(|cx| {
        let mut w = lock(world);
        loop {
            instants += 1;
            if let Some(p) = progress
                && instants.is_multiple_of(PROGRESS_EVERY)
            {
                w.publish_progress(p);
            }
            if w.halted() {
                advance_to(&time, start, w.now_ns());
                return Poll::Ready(());
            }
            if w.drivers_busy() {
                advance_to(&time, start, w.now_ns());
                w.wait_for_drivers(cx.waker());
                return Poll::Pending;
            }
            let target = match w.next_event_ns() {
                Some(next) if next <= w.end_ns => next,
                _ => {
                    advance_to(&time, start, w.end_ns);
                    return Poll::Ready(());
                }
            };
            w.fire_events_at(target);
        }
    })
    .await;
}

/// Moves madsim's clock forward to `t_ns` after `start` (never back).
fn advance_to(time: &madsim::time::TimeHandle, start: std::time::Instant, t_ns: u64) {
    let elapsed = (time.now_instant() - start).as_nanos() as u64;
    if t_ns > elapsed {
        time.advance(std::time::Duration::from_nanos(t_ns - elapsed));
    }
}

impl World {
    /// Publishes how far the run got (see [`RunProgress`]).
    fn publish_progress(&self, p: &RunProgress) {
        p.now_ns.store(self.now_ns(), Ordering::Relaxed);
        p.events.store(self.stats.events, Ordering::Relaxed);
        p.messages_sent
            .store(self.stats.messages_sent, Ordering::Relaxed);
    }

    // ----- end of run -----

    /// Ends the run: records `info` for every operation still pending, counts messages still in
    /// flight, kills every node's tasks, and traces `end`.
    pub fn shut_down(&mut self) {
        if !self.halted() {
            self.now_ns = self.now_ns.max(self.end_ns);
        }
        let mut open: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, e) in self.history.iter().enumerate() {
            match e.kind {
                EventType::Invoke => {
                    open.insert(e.process, i);
                }
                _ => {
                    open.remove(&e.process);
                }
            }
        }
        let mut pending: Vec<usize> = open.into_values().collect();
        pending.sort();
        for i in pending {
            let mut event = self.history.to_event(i);
            event.kind = EventType::Info;
            event.error = Some(UNANSWERED_AT_END.into());
            event.index = Events::len(&self.history) as u64;
            event.time_ns = self.now_ns;
            let node = self.topology.node(&event.node);
            self.trace
                .line(self.now_ns, node, "history")
                .json("op", &event)
                .end();
            self.history.push_event(event);
        }
        self.stats.messages_in_flight_at_end = self
            .queue
            .iter()
            .filter(|s| matches!(s.event, Event::Arrive { .. }))
            .count() as u64;
        let handle = self.madsim();
        for state in &mut self.nodes {
            state.process = None;
            if let (Some(id), false) = (state.madsim_id, state.status == Status::Crashed) {
                handle.kill(id);
            }
        }
        self.central_waker = None;
        self.trace
            .line(self.now_ns, None, "end")
            .u64("messages_sent", self.stats.messages_sent)
            .end();
    }

    /// Takes the run record out of the world (call after [`World::shut_down`]).
    pub fn take_record(&mut self) -> RunRecord {
        let trace = std::mem::replace(&mut self.trace, Trace::new(0, Vec::new()));
        let lines = trace.lines();
        let (trace_jsonl, trace_hash, truncated) = trace.finish();
        let mut stats = std::mem::take(&mut self.stats);
        stats.trace_lines = lines;
        stats.history_events = Events::len(&self.history) as u64;
        let healed = self.network.is_whole()
            && !self.network.is_degraded()
            && self.nodes.iter().all(|n| n.status != Status::Paused);
        RunRecord {
            scenario: self.scenario.clone(),
            seed: self.seed,
            topology: self.topology.clone(),
            end_ns: self.now_ns,
            trace_jsonl,
            trace_hash,
            trace_truncated: truncated,
            history: {
                let mut history = std::mem::take(&mut self.history);
                history.finish();
                history
            },
            observations: std::mem::take(&mut self.observations),
            lifecycle: std::mem::take(&mut self.lifecycle),
            partitions: std::mem::take(&mut self.partitions),
            faults: std::mem::take(&mut self.faults),
            final_heal_ns: healed.then_some(self.last_heal_ns),
            final_status: self.nodes.iter().map(|n| n.status).collect(),
            final_durable_bytes: self
                .nodes
                .iter()
                .map(|n| n.disk.durable_bytes() as u64)
                .collect(),
            stats,
            halt: self.halt.take(),
            limit_exceeded: self.limit_exceeded.take(),
            derived: Derived::folded(std::mem::take(&mut self.folds)),
        }
    }
}
