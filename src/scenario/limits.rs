//! Every limit on what a scenario may ask for, in one place (STYLE.md rule 16: bound
//! everything). `validate` checks each static limit before a run starts and names the key and the
//! limit when one is exceeded; the simulator enforces the event limits while it runs (a run that
//! reaches one stops with [`crate::sim::LimitExceeded`], which `faultline run` reports as bad
//! input, exit 2). The table in `docs/scenario-format.md` ("Limits") lists the same values: keep
//! the two in step.

use super::Duration;

/// Largest scenario file, in bytes.
pub const MAX_SCENARIO_BYTES: u64 = 4 << 20;
/// Longest scenario `name`, in characters (it names the report folder).
pub const MAX_NAME_CHARS: usize = 100;
/// Longest node or group name, in characters.
pub const MAX_NODE_NAME_CHARS: usize = 64;
/// Most server nodes, over every role (`[cluster] nodes`, `[[cluster.role]] nodes`).
pub const MAX_SERVERS: u32 = 256;
/// Most client nodes, over every client group (`[workload] clients`, `[[clients]] count`).
pub const MAX_CLIENTS: u32 = 256;
/// Most roles (`[[cluster.role]]`).
pub const MAX_ROLES: usize = 64;
/// Most client groups (`[[clients]]`).
pub const MAX_CLIENT_GROUPS: usize = 64;
/// Most named groups (`[cluster] groups`).
pub const MAX_GROUPS: usize = 1_000;
/// Most logical processes per client (`[workload] concurrency`).
pub const MAX_CONCURRENCY: u32 = 64;
/// Highest open-loop rate per client, in operations per simulated second
/// (`[workload] rate_per_s`).
pub const MAX_RATE_PER_S: f64 = 1e6;
/// Most keys in a key-value workload (`[workload] keys`).
pub const MAX_KEYS: u32 = 100_000;
/// Longest run, in simulated time (`duration`).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Longest one-way latency any distribution may produce.
pub const MAX_LATENCY: Duration = Duration::from_secs(3600);
/// Largest clock drift (`[clock.<node>] drift`, a `clock-drift` fault's `drift`); the smallest is
/// above -1 (a clock always moves forward).
pub const MAX_DRIFT: f64 = 100.0;
/// Most link overrides (`[[network.link]]`).
pub const MAX_LINKS: usize = 1_000;
/// Most scripted faults (`[[fault]]`).
pub const MAX_FAULTS: usize = 10_000;
/// Most faults the nemesis may plan, counted in the worst case: gaps of `interval / 2` between
/// faults of `fault_duration` from `start` to `duration - final_heal`.
pub const MAX_NEMESIS_FAULTS: u64 = 10_000;
/// Largest memory budget of the linearizability search (`[check.linearizability]
/// memory_limit_mib`), in MiB.
pub const MAX_CHECK_MEMORY_MIB: u64 = 64 * 1024;
/// Most simulation events (message arrivals, timer firings, fault starts and ends) in one run:
/// enough for 5 Raft servers and 50 clients for 10 simulated minutes (about 24 million events).
/// What a run keeps in memory is bounded by [`MAX_RECORDS_PER_RUN`] (and the trace goes to its
/// file), so this limit bounds the run's time: about two minutes of one core (measured; see
/// `docs/scenario-format.md`, "Limits").
pub const MAX_EVENTS_PER_RUN: u64 = 30_000_000;
/// Most records one run keeps for its checks: history events plus the observations no check
/// [folded](crate::process::fold::Fold) away as they came. Each is tens to a few hundred bytes,
/// so this bounds a run's record at a few GiB whatever the family; a 5-server, 50-client,
/// 600-second Raft run keeps about 5 million (Raft's checks fold their observations), a
/// Multi-Paxos run about one record per event.
pub const MAX_RECORDS_PER_RUN: u64 = 10_000_000;
/// Most simulation events at one instant of simulated time. Reaching it means something
/// repeats without time passing (a zero-time cycle, e.g. zero latency with zero think time).
pub const MAX_EVENTS_PER_INSTANT: u64 = 1_000_000;
/// Most trace bytes kept in memory by a run that keeps its trace there (a library run without
/// `RunOptions::trace_file`); later lines are hashed but not kept (`trace_truncated`); the
/// default of `sim::trace::DEFAULT_TRACE_LIMIT_BYTES`. `faultline run` streams the trace to its
/// file instead, with no cap unless `--trace-limit-bytes` sets one.
pub const MAX_TRACE_BYTES: usize = 1 << 30;
