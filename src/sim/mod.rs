//! The simulated world: one madsim runtime per run, driven by a scenario and a seed.
//!
//! madsim supplies the executor (seeded random scheduling of ready tasks), virtual time (which
//! the central task brings to the current event's time whenever madsim runs a task) and the
//! node lifecycle (kill, restart, pause, resume; a node's driver task owns its process).
//! faultline supplies everything a fault touches: the network ([`network`]), disks ([`disk`]),
//! clocks ([`clock`]) and the fault schedule ([`faults`]), all in [`world::World`]. See
//! `../shared/ARCHITECTURE.md`, part 2.
//!
//! Seeds: the run seed keys one ChaCha8 generator per purpose (distinct `set_stream` numbers):
//! madsim's scheduler seed, the fault stream, the network stream and one stream per node. A new
//! message or timer in one protocol never shifts the fault schedule.

pub mod clock;
pub mod disk;
pub mod faults;
pub mod host;
pub mod nemesis;
pub mod network;
pub mod node;
pub mod record;
pub mod topology;
pub mod trace;
pub mod world;

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::process::{AnyProcess, NodeId};
use crate::protocols::{self, NodeSetup};
use crate::scenario::{Scenario, limits};
use crate::workload::Client;
use node::{Driver, ProcessFactory};
use topology::{Role, Topology};
use world::World;

pub use host::is_up;
pub use record::{
    Halt, LifecycleKind, LifecycleRecord, LimitExceeded, ObservationRecord, PartitionRecord,
    RunRecord, Stats,
};
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
    /// The run's event limits (default: the documented ones in `scenario::limits`).
    pub event_limits: EventLimits,
}

impl RunOptions {
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
            event_limits: EventLimits::default(),
        }
    }
}

/// Bounds on the events one run may fire (arrivals, timer firings, fault starts and ends). A run
/// that would fire more stops there with [`RunRecord::limit_exceeded`] set.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EventLimits {
    /// Most events in the run.
    pub per_run: u64,
    /// Most events at one instant of simulated time.
    pub per_instant: u64,
}

impl Default for EventLimits {
    /// [`limits::MAX_EVENTS_PER_RUN`] and [`limits::MAX_EVENTS_PER_INSTANT`].
    fn default() -> Self {
        EventLimits {
            per_run: limits::MAX_EVENTS_PER_RUN,
            per_instant: limits::MAX_EVENTS_PER_INSTANT,
        }
    }
}

/// Locks the world or a process cell; a poisoned lock (a panic elsewhere) is still usable
/// because every transition is applied whole or not at all before any panic can occur (handler
/// panics are caught inside the lock and halt the run).
pub(crate) fn lock<T: ?Sized>(cell: &Mutex<T>) -> MutexGuard<'_, T> {
    cell.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn factory(scenario: &Arc<Scenario>, topology: &Topology, node: NodeId) -> ProcessFactory {
    let setup = NodeSetup {
        id: node,
        servers: topology.servers.clone(),
        home: topology.homes[node.index()],
    };
    let scenario = scenario.clone();
    let protocol =
        protocols::protocol(&scenario.cluster.protocol).expect("validated: known protocol");
    match topology.roles[node.index()] {
        Role::Server => Arc::new(move || (protocol.build)(&setup, &scenario)),
        Role::Client => {
            let index = topology
                .clients
                .iter()
                .position(|&c| c == node)
                .expect("a client") as u32;
            let clients = topology.clients.len() as u32;
            Arc::new(move || -> Box<dyn AnyProcess> {
                Box::new(Client::new(
                    &setup,
                    index,
                    clients,
                    protocol.workload,
                    &scenario.workload,
                    scenario.duration.as_nanos(),
                ))
            })
        }
    }
}

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
    let trace = trace::Trace::new(options.trace_limit_bytes, topology.names.clone());
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
    let madsim_seed = rand::RngCore::next_u64(&mut stream_rng(seed, stream::MADSIM));
    let runtime =
        madsim::runtime::Runtime::with_seed_and_config(madsim_seed, madsim::Config::default());
    let main_world = world.clone();
    runtime.block_on(async move {
        let handle = madsim::runtime::Handle::current();
        for i in 0..topology.len() {
            let id = NodeId(i as u32);
            let make = factory(&scenario, &topology, id);
            let init_world = main_world.clone();
            let node = handle
                .create_node()
                .name(topology.name(id))
                .init(move || Driver::new(init_world.clone(), id, make.clone()))
                .build();
            lock(&main_world).set_madsim_id(id, node.id());
        }
        central(&main_world).await;
        lock(&main_world).shut_down();
        // Let madsim drop the killed tasks before the runtime goes (MADSIM-NOTES: leaks).
        madsim::time::sleep(std::time::Duration::from_millis(1)).await;
    });
    drop(runtime);
    lock(&world).take_record()
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
async fn central(world: &Arc<Mutex<World>>) {
    let time = madsim::time::TimeHandle::current();
    let start = time.now_instant();
    std::future::poll_fn(|cx| {
        let mut w = lock(world);
        loop {
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
