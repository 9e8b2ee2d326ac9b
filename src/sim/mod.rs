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
pub mod network;
pub mod node;
pub mod topology;
pub mod trace;
pub mod world;

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::family::{NodeSetup, ProtocolInfo, RoleContext};
use crate::history::HistoryEvent;
use crate::process::NodeId;
use crate::process::{Observation, Wire};
use crate::scenario::{Scenario, limits};
use node::{Driver, ProcessFactory};
use topology::{Role, Topology};
use world::{Status, World};

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

/// A run stopped because it reached one of its [`EventLimits`]: the scenario asks for more work
/// than faultline allows (most often a cycle of messages and timers that takes no simulated
/// time). The record up to the stop is kept, but no verdict is given on it: `faultline run`
/// reports this as bad input (exit 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LimitExceeded {
    /// The limit's name: `events_per_run` or `events_per_instant`.
    pub limit: &'static str,
    /// Its value.
    pub value: u64,
    /// Global simulated time at which the run stopped.
    pub t_ns: u64,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = crate::scenario::Duration(self.t_ns);
        match self.limit {
            "events_per_instant" => write!(
                f,
                "the run stopped at {at} of simulated time: more than {} events (the limit events_per_instant) at that one instant; something repeats without simulated time passing (for example a latency of 0 with a zero think_time or retry_delay, or a protocol message answered at once forever)",
                self.value
            ),
            _ => write!(
                f,
                "the run stopped at {at} of simulated time: more than {} events (the limit {}); shorten `duration`, or slow the work down (latency, think_time, rate_per_s, timers)",
                self.value, self.limit
            ),
        }
    }
}

/// Counters of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Messages handed to the network.
    pub messages_sent: u64,
    /// Bytes of the messages handed to the network: the sum over `messages_sent` of each
    /// message's canonical binary encoding (postcard, the record the trace hash covers; not
    /// the longer JSON of a trace `send` line). Duplicates made by the network are not counted.
    pub message_bytes_sent: u64,
    /// Messages handled by their receiver.
    pub messages_delivered: u64,
    /// Extra copies created by duplication.
    pub messages_duplicated: u64,
    /// Dropped messages by reason: `loss`, `partition` (a cut link at arrival), `node-down`
    /// (receiver crashed at arrival), `node-crashed` (queued when the receiver crashed),
    /// `wrong-protocol`.
    pub messages_dropped: std::collections::BTreeMap<String, u64>,
    /// Messages still in flight when the run ended.
    pub messages_in_flight_at_end: u64,
    /// Timers that fired and were handled.
    pub timers_fired: u64,
    /// Faults started.
    pub faults_applied: u64,
    /// Faults skipped (e.g. no leader to target).
    pub faults_skipped: u64,
    /// Faults undone at the end of their duration.
    pub faults_undone: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Node restarts.
    pub restarts: u64,
    /// Node pauses.
    pub pauses: u64,
    /// Observations emitted.
    pub observations: u64,
    /// History events recorded.
    pub history_events: u64,
    /// Trace lines written.
    pub trace_lines: u64,
    /// Simulation events fired (message arrivals, timer firings, fault starts and ends): the
    /// count that [`EventLimits::per_run`] bounds.
    pub events: u64,
}

/// An observation with its global time and node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObservationRecord {
    /// Order among observations and lifecycle records (they share one counter).
    pub seq: u64,
    /// Global simulated time.
    pub t_ns: u64,
    /// The observing node.
    pub node: NodeId,
    /// The fact.
    pub observation: Observation,
}

impl ObservationRecord {
    /// The fact if it is a `T` (a family's observation type, or [`crate::process::CommonObservation`]).
    pub fn get<T: Wire>(&self) -> Option<&T> {
        self.observation.downcast_ref()
    }
}

/// Lifecycle changes of a node.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleKind {
    /// Crashed.
    Crash,
    /// Restarted after a crash.
    Restart,
    /// Paused.
    Pause,
    /// Resumed.
    Resume,
}

impl LifecycleKind {
    /// The trace kind.
    pub fn name(self) -> &'static str {
        match self {
            LifecycleKind::Crash => "crash",
            LifecycleKind::Restart => "restart",
            LifecycleKind::Pause => "pause",
            LifecycleKind::Resume => "resume",
        }
    }
}

/// A node lifecycle change at a time.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LifecycleRecord {
    /// Order among observations and lifecycle records (they share one counter).
    pub seq: u64,
    /// Global simulated time.
    pub t_ns: u64,
    /// The node.
    pub node: NodeId,
    /// What happened.
    pub kind: LifecycleKind,
}

/// One set of cut links, from the fault that cut them to its heal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionRecord {
    /// The fault that cut them.
    pub fault_id: u64,
    /// When the cut started.
    pub start_ns: u64,
    /// When it healed (`None`: still cut at the end).
    pub end_ns: Option<u64>,
    /// For side-based partitions (groups, halves, random halves, isolate): the server sides.
    pub sides: Option<Vec<Vec<NodeId>>>,
    /// Every directed link cut.
    pub cut_links: Vec<(NodeId, NodeId)>,
}

/// A run that stopped early because a process panicked (one of its invariants broke).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Halt {
    /// When.
    pub t_ns: u64,
    /// Which node.
    pub node: String,
    /// The panic message.
    pub message: String,
}

/// Everything a run produced, for checkers and reports.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// The scenario that ran.
    pub scenario: Arc<Scenario>,
    /// The seed it ran with.
    pub seed: u64,
    /// Its nodes.
    pub topology: Arc<Topology>,
    /// Global time at which the run ended.
    pub end_ns: u64,
    /// The trace, as JSON lines (possibly truncated, see `trace_truncated`).
    pub trace_jsonl: trace::TraceBytes,
    /// Hex XXH3-128 of every trace line's binary record (see [`trace`]): the run's fingerprint.
    pub trace_hash: String,
    /// True if trace lines were hashed but not kept.
    pub trace_truncated: bool,
    /// The client history.
    pub history: Vec<HistoryEvent>,
    /// Every observation, in order.
    pub observations: Vec<ObservationRecord>,
    /// Crashes, restarts, pauses and resumes, in order.
    pub lifecycle: Vec<LifecycleRecord>,
    /// Cut links over time.
    pub partitions: Vec<PartitionRecord>,
    /// The fault timeline that was planned.
    pub faults: Vec<faults::PlannedFault>,
    /// When the last fault affecting connectivity or liveness ended, if everything was healed
    /// (no cut link, no degraded link, no paused node) at the end; `Some(0)` if there were no
    /// such faults.
    pub final_heal_ns: Option<u64>,
    /// Each node's state at the end.
    pub final_status: Vec<Status>,
    /// Each node's durable bytes at the end (keys and values on its disk, as a `start` trace
    /// line's `durable_bytes`), indexed by node.
    pub final_durable_bytes: Vec<u64>,
    /// Counters.
    pub stats: Stats,
    /// Set if a process panicked and the run stopped early.
    pub halt: Option<Halt>,
    /// Set if the run stopped early at one of its [`EventLimits`] (no verdict then).
    pub limit_exceeded: Option<LimitExceeded>,
}

/// Locks the world or a process cell; a poisoned lock (a panic elsewhere) is still usable
/// because every transition is applied whole or not at all before any panic can occur (handler
/// panics are caught inside the lock and halt the run).
pub(crate) fn lock<T: ?Sized>(cell: &Mutex<T>) -> MutexGuard<'_, T> {
    cell.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The process factory of every node, by id: each role and client group is configured once by
/// the family that owns its protocol or workload (the scenario was validated, so this succeeds).
fn factories(scenario: &Scenario, topology: &Arc<Topology>) -> Vec<ProcessFactory> {
    let registry = &scenario.registry;
    let nodes_of = |name: &str| topology.groups.get(name).cloned().unwrap_or_default();
    let mut role_builders = Vec::new();
    for role in &scenario.cluster.roles {
        let protocol = registry
            .protocol(&role.protocol)
            .expect("validated: a known protocol");
        let nodes = nodes_of(&role.name);
        let ctx = RoleContext {
            name: &role.name,
            options: &role.options,
            scenario,
            topology,
            nodes: &nodes,
            talks_to: &[],
            checking: false,
        };
        let configured = (protocol.configure)(&ctx).expect("validated: the role's options");
        role_builders.push((configured.build, nodes));
    }
    let mut group_builders = Vec::new();
    for group in &scenario.clients {
        let workload = registry
            .workload(&group.workload)
            .expect("validated: a known workload");
        let roles: Vec<&crate::scenario::RoleSpec> = group
            .talks_to
            .iter()
            .filter_map(|r| scenario.cluster.roles.iter().find(|x| &x.name == r))
            .collect();
        let protocols: Vec<&ProtocolInfo> = roles
            .iter()
            .filter_map(|r| registry.protocol(&r.protocol))
            .collect();
        let talks_to: Vec<(String, Vec<NodeId>)> = roles
            .iter()
            .map(|r| (r.name.clone(), nodes_of(&r.name)))
            .collect();
        let nodes = nodes_of(&group.name);
        let ctx = RoleContext {
            name: &group.name,
            options: &group.options,
            scenario,
            topology,
            nodes: &nodes,
            talks_to: &protocols,
            checking: false,
        };
        let configured = (workload.configure)(&ctx).expect("validated: the group's options");
        group_builders.push((configured.build, talks_to));
    }
    let client_count = topology.clients.len() as u32;
    (0..topology.len())
        .map(|i| {
            let id = NodeId(i as u32);
            let part = topology.part[i];
            let mut setup = NodeSetup {
                id,
                servers: Vec::new(),
                home: topology.homes[i],
                talks_to: Vec::new(),
                client_index: 0,
                client_count,
                end_ns: scenario.duration.as_nanos(),
                topology: topology.clone(),
            };
            let build = match topology.roles[i] {
                Role::Server => {
                    let (build, nodes) = &role_builders[part];
                    setup.servers = nodes.clone();
                    build.clone()
                }
                Role::Client => {
                    let (build, talks_to) = &group_builders[part];
                    setup.servers = talks_to.first().map(|t| t.1.clone()).unwrap_or_default();
                    setup.talks_to = talks_to.clone();
                    setup.client_index = (i - topology.servers.len()) as u32;
                    build.clone()
                }
            };
            Arc::new(move || build(&setup)) as ProcessFactory
        })
        .collect()
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
        let factories = factories(&scenario, &topology);
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

/// True if `status` means the node is running (for checkers).
pub fn is_up(status: Status) -> bool {
    status == Status::Up
}
