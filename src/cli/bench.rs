//! `faultline bench [TARGET] [--json]`: how fast the simulator and checkers run.
//!
//! Build with `--release`; numbers from debug builds are meaningless. Each figure is the median
//! of several repetitions, measured with the wall clock (`crate::wall`; never read inside a simulation).
//!
//! - `kernel`: the same work three ways, in one process, one after the other: the bare
//!   deterministic event loop ([`bare_loop_pingpong`]: a binary heap of timed deliveries and
//!   seeded ChaCha8 latency draws, nothing else; the reference, the most a single-threaded
//!   discrete-event simulator can do for this work), a ping-pong between two faultline
//!   processes through faultline's network (with the trace hash computed, as in every run;
//!   [`RunOptions::hash_only`]), and the same number of messages ping-ponged over bare madsim
//!   (`Endpoint`s and tasks only). All three use uniform 1-10 ms latency (madsim's default)
//!   and carry the same number of messages, one in flight at a time. Prints delivered messages
//!   per wall-clock second of each, the ratio faultline / bare loop (target: at least 0.25,
//!   i.e. within 4x of the bare loop) and faultline / bare madsim (target: at least 0.7), plus
//!   a standard 5-node broadcast scenario.
//! - `checker`: the linearizability checker (see `bench_checker`): corpus files and a generated
//!   1,000,000-operation key-value history, with peak memory. Not part of `all`.
//! - `raft`: a 5-node Raft key-value cluster serving 100 client operations per simulated second
//!   (5 open-loop clients at 20/s each) for 60 simulated seconds, with the default `[raft]`
//!   options and 1-5 ms links. Prints wall time, the simulated-to-wall ratio (target: at least
//!   1000x faster than real time) and simulation events (message deliveries, timer firings,
//!   faults) per wall-clock second. Only the simulation is timed, as for `kernel`; the checks
//!   run once afterwards and must pass.
//! - `paxos`: the same figure for Multi-Paxos (default `[multi-paxos]` options), so the two
//!   compare directly.
//! - `lock`: one figure per lock design (see [`LOCK_DESIGNS`]), each 5 lock servers and 20 lock
//!   clients for 60 simulated seconds over 1-5 ms links, with the same figures as `raft`
//!   (target: at least 1000x faster than real time). `single-instance`: the `lock-server` role
//!   with 5 nodes, each client using one of them (round robin), so 5 independent locks;
//!   `redlock`: 20 Redlock clients contending for one lock on all 5; `etcd-lock`, `zk-lock`: a
//!   5-node `coordination` role (Raft), the 20 clients contending for one lock.
//! - `balancing`: the load-balancing family at load: 10 backends, 1 balancer (peak EWMA, one
//!   retry) and 50 clients at 40 requests per simulated second each (2,000 requests per second)
//!   for 60 simulated seconds over 1-3 ms links ([`balancing_scenario`], the same as
//!   `scenarios/balancing/bench-2000rps.toml`). Same figures as `raft` (target: at least 100x
//!   faster than real time).
//! - `sweep`: [`SWEEP_BENCH_SEEDS`] seeds of `scenarios/raft/leader-isolated.toml` (embedded)
//!   run by `crate::sweep::execute` (no files written) on 1 worker, then on 2; prints seeds per
//!   second for each and the parallel efficiency `t1 / (2 * t2)` (target: at least 0.9 on 2
//!   idle cores). Not part of `all`.
//! - `scale`: how one run's cost grows with nodes, clients and simulated time (see
//!   `bench_scale`): steady-state Raft from 5 nodes and 5 clients to 50 clients and 600
//!   simulated seconds, and Multi-Paxos at 50 clients for 60 s and 5 clients for 600 s; for each
//!   load the simulation alone, the full `faultline run` (in a child process) with its wall
//!   time, peak RSS and trace size, and the verdict. Takes minutes and gigabytes of temporary
//!   disk: not part of `all`; `--quick` shortens every load to seconds.

use std::path::Path;

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::cli::exit;
use crate::scenario::Scenario;
use crate::sim::{self, RunOptions};
use crate::wall::wall_now;

/// What to measure.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Every simulator figure (kernel, raft, paxos, lock, balancing).
    All,
    /// The linearizability checker on the corpus and a generated 1M-operation history
    /// (see `bench_checker`; reads the corpus from `FAULTLINE_CORPUS`).
    Checker,
    /// faultline's network vs bare madsim, and a 5-node broadcast.
    Kernel,
    /// A 5-node Raft key-value cluster at 100 operations per simulated second.
    Raft,
    /// A 5-node Multi-Paxos key-value cluster at 100 operations per simulated second.
    Paxos,
    /// Each lock design with 5 lock servers and 20 clients.
    Lock,
    /// 10 backends, 1 balancer and 50 clients at 2,000 requests per simulated second.
    Balancing,
    /// `faultline sweep`'s parallel efficiency: the same seeds of a shipped Raft scenario on 1
    /// worker, then on 2 (see [`sweep_bench`]). Not part of `all`.
    Sweep,
    /// Steady-state Raft from 5 to 50 clients, 5 and 15 nodes, 60 and 600 simulated seconds,
    /// and Multi-Paxos at 50 clients (60 s) and 5 clients (600 s): simulation speed, full-run
    /// wall time, peak RSS (of a child process), trace size and verdict per load (see
    /// `bench_scale`). Minutes long: not part of `all`.
    Scale,
}

/// Arguments of `faultline bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value = "all")]
    pub target: Target,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Repetitions per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeat: u32,
    /// `scale` only: run every load for a few simulated seconds (for tests), not 60 or 600.
    #[arg(long)]
    pub quick: bool,
}

/// One measured figure.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// Messages delivered in one repetition.
    pub messages: u64,
    /// Median wall time of one repetition, in milliseconds.
    pub wall_ms: f64,
    /// Median CPU time of one repetition (the measuring thread's), in milliseconds: the figure
    /// to compare on a machine shared with other work, where wall time includes waiting.
    pub cpu_ms: f64,
    /// Simulated time of one repetition, in milliseconds.
    pub simulated_ms: f64,
    /// Delivered messages per wall-clock second.
    pub messages_per_s: f64,
    /// Delivered messages per second of CPU time.
    pub messages_per_cpu_s: f64,
    /// Simulated time per wall-clock time.
    pub sim_to_wall: f64,
}

impl Figure {
    fn new(name: &str, m: &Measured) -> Figure {
        let (messages, simulated_ns) = m.last;
        let simulated_ms = simulated_ns as f64 / 1e6;
        Figure {
            name: name.into(),
            messages,
            wall_ms: m.wall_ms,
            cpu_ms: m.cpu_ms,
            simulated_ms,
            messages_per_s: messages as f64 / (m.wall_ms / 1e3),
            messages_per_cpu_s: messages as f64 / (m.cpu_ms / 1e3),
            sim_to_wall: simulated_ms / m.wall_ms,
        }
    }

    fn line(&self) -> String {
        format!(
            "{:<46} {:>9.0} msgs/s  ({} msgs in {:.1} ms wall, {:.1} ms CPU; {:.0}x faster than real time)",
            self.name,
            self.messages_per_s,
            self.messages,
            self.wall_ms,
            self.cpu_ms,
            self.sim_to_wall
        )
    }
}

/// The figures of `faultline bench kernel` (its `--json` object `kernel`).
#[derive(Serialize)]
struct KernelReport {
    /// The bare event loop's ping-pong ([`bare_loop_pingpong`]): the reference.
    pingpong_bare_loop: Figure,
    /// faultline's ping-pong (2 `pingpong` nodes, trace hashed).
    pingpong_faultline: Figure,
    /// The same number of messages over bare madsim endpoints.
    pingpong_madsim: Figure,
    /// faultline / bare loop, in messages per second (target: at least 0.25).
    ratio_to_bare_loop: f64,
    /// The same ratio in messages per CPU second (the same on an idle machine; steadier on a
    /// shared one).
    ratio_to_bare_loop_cpu: f64,
    /// faultline / bare madsim, in messages per second (target: at least 0.7).
    ratio: f64,
    /// The 5-node broadcast scenario ([`broadcast_scenario`]).
    broadcast: Figure,
}

/// What [`measure`] found: the last repetition's result and the medians of its timings.
struct Measured {
    /// (messages, simulated ns) of the last repetition.
    last: (u64, u64),
    /// Median wall time of one repetition, in milliseconds.
    wall_ms: f64,
    /// Median CPU time of the measuring thread in one repetition, in milliseconds.
    cpu_ms: f64,
}

/// CPU time consumed so far by the calling thread, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`).
/// Unlike the wall clock it does not count the time the thread waits for a core, so on a
/// machine shared with other work it still measures the work done (a measurement only, never
/// read inside a simulation).
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        return 0;
    }
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Median wall and thread CPU time of repeated runs of `f`, which returns (messages, simulated
/// ns).
fn measure(repeat: u32, mut f: impl FnMut() -> (u64, u64)) -> Measured {
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut last = (0, 0);
    for _ in 0..repeat.max(1) {
        let (start, cpu_start) = (wall_now(), thread_cpu_ns());
        last = f();
        cpu.push(thread_cpu_ns().saturating_sub(cpu_start) as f64 / 1e6);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    Measured {
        last,
        wall_ms: times[times.len() / 2],
        cpu_ms: cpu[cpu.len() / 2],
    }
}

fn scenario(text: &str) -> Scenario {
    Scenario::parse(Path::new("<bench>"), text.as_bytes()).expect("bench scenarios are valid")
}

/// The ping-pong through faultline's network: `duration_s` of simulated time.
fn pingpong_scenario(duration_s: u64) -> Scenario {
    scenario(&format!(
        "name = \"bench-pingpong\"\nduration = \"{duration_s}s\"\n[cluster]\nprotocol = \"pingpong\"\nnodes = 2\n\
         [network]\nlatency = {{ distribution = \"uniform\", min = \"1ms\", max = \"10ms\" }}\n[workload]\nclients = 0\n"
    ))
}

/// The standard broadcast benchmark: 5 nodes, 3 clients, 60 s, 2% loss.
pub fn broadcast_scenario() -> Scenario {
    scenario(
        "name = \"bench-broadcast\"\nduration = \"60s\"\n[cluster]\nprotocol = \"broadcast\"\nnodes = 5\n\
         [network]\nlatency = { distribution = \"uniform\", min = \"1ms\", max = \"10ms\" }\nloss_probability = 0.02\n\
         [workload]\nclients = 3\nconcurrency = 2\nthink_time = \"20ms\"\n",
    )
}

/// Latency bounds of the kernel ping-pongs, in nanoseconds: uniform 1-10 ms (madsim's default).
const PINGPONG_LATENCY_NS: (u64, u64) = (1_000_000, 10_000_000);

/// The bare deterministic event loop, the kernel figure's reference: ping-pongs `messages`
/// messages between two nodes with nothing but a binary heap of timed deliveries (ordered by
/// time, then sequence number) and latency draws from a ChaCha8 stream seeded with `seed`,
/// uniform in [`PINGPONG_LATENCY_NS`] as faultline's network draws them. Each delivery
/// schedules the answer. Returns (messages delivered, simulated ns at the last delivery).
pub fn bare_loop_pingpong(messages: u64, seed: u64) -> (u64, u64) {
    use rand::{Rng, SeedableRng};
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let (min, max) = PINGPONG_LATENCY_NS;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // (arrival ns, sequence, receiver, ping-pong number)
    let mut queue: BinaryHeap<Reverse<(u64, u64, u32, u64)>> = BinaryHeap::new();
    let mut seq = 0;
    if messages > 0 {
        queue.push(Reverse((rng.gen_range(min..=max), seq, 1, 0)));
    }
    let (mut delivered, mut now_ns) = (0, 0);
    while let Some(Reverse((t_ns, _, to, n))) = queue.pop() {
        now_ns = t_ns;
        delivered += 1;
        if delivered == messages {
            break;
        }
        seq += 1;
        let answer_at = t_ns + rng.gen_range(min..=max);
        queue.push(Reverse((answer_at, seq, 1 - to, n + 1)));
    }
    std::hint::black_box(&queue);
    (delivered, now_ns)
}

/// Ping-pongs `messages` messages over bare madsim endpoints; returns (messages, simulated ns).
fn madsim_pingpong(messages: u64) -> (u64, u64) {
    use madsim::net::Endpoint;
    let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
    let simulated = runtime.block_on(async move {
        let handle = madsim::runtime::Handle::current();
        let a = handle
            .create_node()
            .name("a")
            .ip("10.0.0.1".parse().expect("ip"))
            .build();
        let b = handle
            .create_node()
            .name("b")
            .ip("10.0.0.2".parse().expect("ip"))
            .build();
        let start = madsim::time::TimeHandle::current().now_instant();
        let server = b.spawn(async move {
            let ep = Endpoint::bind("10.0.0.2:1").await.expect("bind");
            let mut buf = [0u8; 16];
            loop {
                let (n, from) = ep.recv_from(1, &mut buf).await.expect("recv");
                ep.send_to(from, 1, &buf[..n]).await.expect("send");
            }
        });
        let client = a.spawn(async move {
            let ep = Endpoint::bind("10.0.0.1:1").await.expect("bind");
            madsim::time::sleep(std::time::Duration::from_millis(10)).await;
            let mut buf = [0u8; 16];
            for i in 0..messages / 2 {
                ep.send_to("10.0.0.2:1", 1, &i.to_le_bytes())
                    .await
                    .expect("send");
                ep.recv_from(1, &mut buf).await.expect("recv");
            }
        });
        client.await.expect("client ran");
        drop(server);
        (madsim::time::TimeHandle::current().now_instant() - start).as_nanos() as u64
    });
    (messages / 2 * 2, simulated)
}

fn kernel(repeat: u32) -> KernelReport {
    let pp = pingpong_scenario(1100);
    let options = RunOptions::hash_only();
    let m = measure(repeat, || {
        let r = sim::run(&pp, 1, &options);
        (r.stats.messages_delivered, r.end_ns)
    });
    let messages = m.last.0;
    let pingpong_faultline = Figure::new("ping-pong, faultline network (2 nodes)", &m);
    let m = measure(repeat, || {
        std::hint::black_box(bare_loop_pingpong(std::hint::black_box(messages), 1))
    });
    let pingpong_bare_loop = Figure::new("ping-pong, bare event loop (heap + ChaCha8)", &m);
    let m = measure(repeat, || madsim_pingpong(messages));
    let pingpong_madsim = Figure::new("ping-pong, bare madsim endpoints (2 nodes)", &m);
    let bc = broadcast_scenario();
    let m = measure(repeat, || {
        let r = sim::run(&bc, 1, &options);
        (r.stats.messages_delivered, r.end_ns)
    });
    let broadcast = Figure::new("broadcast, 5 nodes + 3 clients, 60 s", &m);
    KernelReport {
        ratio_to_bare_loop: pingpong_faultline.messages_per_s / pingpong_bare_loop.messages_per_s,
        ratio_to_bare_loop_cpu: pingpong_faultline.messages_per_cpu_s
            / pingpong_bare_loop.messages_per_cpu_s,
        ratio: pingpong_faultline.messages_per_s / pingpong_madsim.messages_per_s,
        pingpong_bare_loop,
        pingpong_faultline,
        pingpong_madsim,
        broadcast,
    }
}

/// The figure of one scenario's run: a consensus key-value cluster (Raft or Multi-Paxos, same
/// workload) or a lock design.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioFigure {
    /// What was measured.
    pub name: String,
    /// Median wall time of one run (simulation only), in milliseconds.
    pub wall_ms: f64,
    /// Median CPU time of one run (simulation only, the measuring thread's), in milliseconds.
    pub cpu_ms: f64,
    /// Simulated time per CPU time (what `sim_to_wall` is on an idle machine).
    pub sim_to_cpu: f64,
    /// Simulated time of one run, in milliseconds.
    pub simulated_ms: f64,
    /// Simulated time per wall-clock time.
    pub sim_to_wall: f64,
    /// Simulation events of one run: message deliveries, timer firings and faults.
    pub events: u64,
    /// Events per wall-clock second.
    pub events_per_s: f64,
    /// Messages sent in one run.
    pub messages_sent: u64,
    /// Client operations completed `ok` in one run.
    pub ops_ok: u64,
    /// Trace lines of one run.
    pub trace_lines: u64,
    /// The overall verdict of the checks on the last run.
    pub verdict: String,
}

impl ScenarioFigure {
    /// One line for people.
    fn line(&self, target: &str) -> String {
        format!(
            "{:<46} {:.1} ms wall; {:.0}x faster than real time{target}; {:.1} ms CPU ({:.0}x); {:.0} events/s ({} events, {} messages, {} ok ops, {} trace lines; checks: {})",
            self.name,
            self.wall_ms,
            self.sim_to_wall,
            self.cpu_ms,
            self.sim_to_cpu,
            self.events_per_s,
            self.events,
            self.messages_sent,
            self.ops_ok,
            self.trace_lines,
            self.verdict
        )
    }
}

/// The standard consensus benchmark for `protocol` (`raft` or `multi-paxos`): 5 nodes, 100
/// client operations per simulated second (5 open-loop clients at 20/s, up to 4 outstanding
/// each), 60 s, over 1-5 ms links, with the protocol's default options.
pub fn kv_scenario(protocol: &str) -> Scenario {
    scenario(&format!(
        "name = \"bench-{protocol}\"\nduration = \"60s\"\n[cluster]\nprotocol = \"{protocol}\"\nnodes = 5\n\
         [network]\nlatency = {{ distribution = \"uniform\", min = \"1ms\", max = \"5ms\" }}\n\
         [workload]\nclients = 5\nrate_per_s = 20.0\nconcurrency = 4\n",
    ))
}

/// A lock design of the benchmark: its name and its scenario.
pub type LockDesign = (&'static str, fn() -> Scenario);

/// The lock designs `faultline bench lock` measures: (name, scenario). Each runs 5 lock
/// servers and 20 lock clients for 60 simulated seconds over 1-5 ms links.
pub const LOCK_DESIGNS: &[LockDesign] = &[
    ("single-instance", single_instance_lock_scenario),
    ("redlock", redlock_scenario),
    ("etcd-lock", || coordination_lock_scenario("etcd-lock")),
    ("zk-lock", || coordination_lock_scenario("zk-lock")),
];

/// The single-instance lock benchmark: the `lock-server` role with 5 nodes and the
/// `fenced-storage` role with 5 nodes; the 20 clients use them round robin (client i the i-th
/// modulo 5 of each), so the run holds 5 independent locks of 4 clients each. That is why
/// `mutual-exclusion` (which treats all clients as contending for one lock) and linearizability
/// (one mutex) are off; `fenced-writes` runs, and `lock-bounds` reports the lock measurements.
pub fn single_instance_lock_scenario() -> Scenario {
    scenario(
        "name = \"bench-lock-single-instance\"\nduration = \"60s\"\n\
         [network]\nlatency = { distribution = \"uniform\", min = \"1ms\", max = \"5ms\" }\n\
         [[cluster.role]]\nname = \"locks\"\nprotocol = \"lock-server\"\nnodes = 5\noptions = { ttl = \"2s\" }\n\
         [[cluster.role]]\nname = \"storage\"\nprotocol = \"fenced-storage\"\nnodes = 5\n\
         [[clients]]\nname = \"workers\"\nworkload = \"lock\"\ncount = 20\ntalks_to = [\"locks\", \"storage\"]\n\
         options = { hold = \"100ms\", writes_per_hold = 2, think_time = \"50ms\", retry_delay_min = \"10ms\", retry_delay_max = \"200ms\", validity_check = true }\n\
         [check.mutual-exclusion]\nenabled = false\n[check.linearizability]\nenabled = false\n\
         [check.lock-bounds]\ncritical_sections_per_second_min = 1.0\n",
    )
}

/// The Redlock benchmark: the `lock-server` role with 5 nodes (no persistence needed: nothing
/// crashes), one `fenced-storage` node, and 20 `redlock` clients contending for the one lock on
/// all 5 servers. `fenced-writes` is off: Redlock has no fencing token, and the largest of the
/// granted tokens that faultline's Redlock client writes with is reused under this contention
/// (two clients holding one after the other with the same largest token; docs/locks.md).
pub fn redlock_scenario() -> Scenario {
    scenario(
        "name = \"bench-lock-redlock\"\nduration = \"60s\"\n\
         [network]\nlatency = { distribution = \"uniform\", min = \"1ms\", max = \"5ms\" }\n\
         [[cluster.role]]\nname = \"locks\"\nprotocol = \"lock-server\"\nnodes = 5\noptions = { ttl = \"2s\" }\n\
         [[cluster.role]]\nname = \"storage\"\nprotocol = \"fenced-storage\"\nnodes = 1\n\
         [[clients]]\nname = \"workers\"\nworkload = \"redlock\"\ncount = 20\ntalks_to = [\"locks\", \"storage\"]\n\
         options = { hold = \"100ms\", writes_per_hold = 2, think_time = \"50ms\", retry_delay_min = \"10ms\", retry_delay_max = \"200ms\" }\n\
         [check.fenced-writes]\nenabled = false\n\
         [check.lock-bounds]\ncritical_sections_per_second_min = 1.0\n",
    )
}

/// The consensus lock benchmark for `workload` (`etcd-lock` or `zk-lock`): a 5-node
/// `coordination` role (Raft with the default options) and 20 clients contending for one lock
/// (2 s sessions), each hold 100 ms with 2 writes (`zk-lock`: to a 1-node `fenced-storage`
/// role). All checks run: one lock, so mutual-exclusion and linearizability judge it.
pub fn coordination_lock_scenario(workload: &str) -> Scenario {
    let (ttl, storage, talks_to) = if workload == "zk-lock" {
        (
            "session_timeout",
            "[[cluster.role]]\nname = \"storage\"\nprotocol = \"fenced-storage\"\nnodes = 1\n",
            "[\"coord\", \"storage\"]",
        )
    } else {
        ("ttl", "", "[\"coord\"]")
    };
    scenario(&format!(
        "name = \"bench-lock-{workload}\"\nduration = \"60s\"\n\
         [network]\nlatency = {{ distribution = \"uniform\", min = \"1ms\", max = \"5ms\" }}\n\
         [[cluster.role]]\nname = \"coord\"\nprotocol = \"coordination\"\nnodes = 5\n{storage}\
         [[clients]]\nname = \"workers\"\nworkload = \"{workload}\"\ncount = 20\ntalks_to = {talks_to}\n\
         options = {{ {ttl} = \"2s\", hold = \"100ms\", writes_per_hold = 2, think_time = \"50ms\" }}\n\
         [check.lock-bounds]\ncritical_sections_per_second_min = 1.0\n",
    ))
}

/// The balancing benchmark: 10 backends (exponential service time, mean 10 ms, capacity 200),
/// one balancer (peak EWMA, 1 s timeout, one retry) and 50 `requests` clients at 40 requests
/// per simulated second each, 60 s over 1-3 ms links; `balancing-bounds` judges the success
/// rate and the p99. `scenarios/balancing/bench-2000rps.toml` is the same scenario as a file.
pub fn balancing_scenario() -> Scenario {
    scenario(
        "name = \"bench-balancing\"\nduration = \"60s\"\n\
         [network]\nlatency = { distribution = \"uniform\", min = \"1ms\", max = \"3ms\" }\n\
         [[cluster.role]]\nname = \"web\"\nprotocol = \"backend\"\nnodes = 10\n\
         options = { latency = { distribution = \"exponential\", mean = \"10ms\", min = \"2ms\", max = \"200ms\" }, capacity = 200 }\n\
         [[cluster.role]]\nname = \"lb\"\nprotocol = \"balancer\"\nnodes = 1\n\
         options = { balancing = { strategy = \"peak-ewma\" }, timeout = \"1s\", retry = { max_attempts = 2, base = \"10ms\" } }\n\
         [[clients]]\nname = \"users\"\nworkload = \"requests\"\ncount = 50\ntalks_to = [\"lb\"]\noptions = { rate = 40 }\n\
         [check.balancing-bounds]\nuntil = \"59s\"\nsuccess_rate_min = 0.999\np99_max = \"100ms\"\n",
    )
}

/// Measures the consensus figure of `protocol` (see [`kv_scenario`]).
fn kv_figure(protocol: &str, repeat: u32) -> ScenarioFigure {
    scenario_figure(
        &format!("{protocol} kv, 5 nodes, 100 ops/s, 60 s"),
        &kv_scenario(protocol),
        repeat,
    )
}

/// Measures `sc` at seed 1 under the figure name `name`: only the simulation is timed; the
/// checks run once afterwards on the last run.
fn scenario_figure(name: &str, sc: &Scenario, repeat: u32) -> ScenarioFigure {
    let options = RunOptions::hash_only();
    let mut last = None;
    let m = measure(repeat, || {
        let r = sim::run(sc, 1, &options);
        let end = r.end_ns;
        last = Some(r);
        (0, end)
    });
    let (wall_ms, cpu_ms, sim_ns) = (m.wall_ms, m.cpu_ms, m.last.1);
    let record = last.expect("measured at least once");
    let s = &record.stats;
    let events = s.messages_delivered + s.timers_fired + s.faults_applied + s.faults_undone;
    let checks = crate::check::run_checks(&record);
    let verdict = crate::report::verdict_word(crate::check::overall(&checks)).to_string();
    let ops_ok = record
        .history
        .iter()
        .filter(|e| e.kind == crate::history::EventType::Ok)
        .count() as u64;
    let simulated_ms = sim_ns as f64 / 1e6;
    ScenarioFigure {
        name: name.to_string(),
        wall_ms,
        cpu_ms,
        sim_to_cpu: simulated_ms / cpu_ms,
        simulated_ms,
        sim_to_wall: simulated_ms / wall_ms,
        events,
        events_per_s: events as f64 / (wall_ms / 1e3),
        messages_sent: s.messages_sent,
        ops_ok,
        trace_lines: s.trace_lines,
        verdict,
    }
}

/// Runs the chosen benchmarks and prints them.
pub fn bench(args: &BenchArgs) -> u8 {
    if cfg!(debug_assertions) {
        eprintln!(
            "faultline bench: warning: this is a debug build; use `cargo run --release -- bench`"
        );
    }
    if args.target == Target::Checker {
        return crate::cli::bench_checker::bench_checker(args.json);
    }
    if args.target == Target::Scale {
        return crate::cli::bench_scale::bench_scale(args.quick, args.json);
    }
    if args.target == Target::Sweep {
        let b = sweep_bench(args.repeat);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&b).expect("serializes"));
        } else {
            println!(
                "sweep: {} seeds of {} (median of {} runs each):",
                b.seeds, b.scenario, args.repeat
            );
            println!("  {} of {} seeds passed", b.passed, b.seeds);
            println!(
                "  1 worker:  {:>8.1} seeds/s ({:.0} ms)",
                b.seeds_per_s_1, b.wall_ms_1
            );
            println!(
                "  2 workers: {:>8.1} seeds/s ({:.0} ms)",
                b.seeds_per_s_2, b.wall_ms_2
            );
            println!(
                "  parallel efficiency t1 / (2 t2) = {:.2} (target >= 0.90 on 2 idle cores)",
                b.efficiency
            );
        }
        return exit::PASS;
    }
    let mut json = serde_json::Map::new();
    if matches!(args.target, Target::All | Target::Kernel) {
        let k = kernel(args.repeat);
        if !args.json {
            println!("kernel (median of {} runs):", args.repeat);
            println!("  {}", k.pingpong_bare_loop.line());
            println!("  {}", k.pingpong_faultline.line());
            println!("  {}", k.pingpong_madsim.line());
            println!(
                "  faultline / bare loop = {:.2} (target >= 0.25; {:.2} by CPU time)",
                k.ratio_to_bare_loop, k.ratio_to_bare_loop_cpu
            );
            println!(
                "  faultline / bare madsim = {:.2} (target >= 0.70)",
                k.ratio
            );
            println!("  {}", k.broadcast.line());
        }
        json.insert(
            "kernel".into(),
            serde_json::to_value(&k).expect("serializes"),
        );
    }
    if matches!(args.target, Target::All | Target::Raft) {
        let r = kv_figure("raft", args.repeat);
        if !args.json {
            println!("raft (median of {} runs, simulation only):", args.repeat);
            println!("  {}", r.line(" (target >= 1000x)"));
        }
        json.insert("raft".into(), serde_json::to_value(&r).expect("serializes"));
    }
    if matches!(args.target, Target::All | Target::Paxos) {
        let p = kv_figure("multi-paxos", args.repeat);
        if !args.json {
            println!(
                "multi-paxos (median of {} runs, simulation only):",
                args.repeat
            );
            println!("  {}", p.line(""));
        }
        json.insert(
            "paxos".into(),
            serde_json::to_value(&p).expect("serializes"),
        );
    }
    if matches!(args.target, Target::All | Target::Lock) {
        let mut figures = serde_json::Map::new();
        if !args.json {
            println!("lock (median of {} runs, simulation only):", args.repeat);
        }
        for (design, build) in LOCK_DESIGNS {
            let name = format!("lock {design}, 5 servers, 20 clients, 60 s");
            let f = scenario_figure(&name, &build(), args.repeat);
            if !args.json {
                println!("  {}", f.line(" (target >= 1000x)"));
            }
            figures.insert(
                (*design).into(),
                serde_json::to_value(&f).expect("serializes"),
            );
        }
        json.insert("lock".into(), figures.into());
    }
    if matches!(args.target, Target::All | Target::Balancing) {
        let f = scenario_figure(
            "balancing, 10 backends, 1 balancer, 50 clients, 2000 req/s, 60 s",
            &balancing_scenario(),
            args.repeat,
        );
        if !args.json {
            println!(
                "balancing (median of {} runs, simulation only):",
                args.repeat
            );
            println!("  {}", f.line(" (target >= 100x)"));
        }
        json.insert(
            "balancing".into(),
            serde_json::to_value(&f).expect("serializes"),
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("serializes")
        );
    }
    exit::PASS
}

/// Seeds of the sweep benchmark: a few seconds on one worker of a release build.
pub const SWEEP_BENCH_SEEDS: u64 = 200;

/// The result of `faultline bench sweep`.
#[derive(Clone, Debug, Serialize)]
pub struct SweepBench {
    /// The scenario swept.
    pub scenario: String,
    /// Seeds swept (1..=seeds).
    pub seeds: u64,
    /// Median wall time on 1 worker, in milliseconds.
    pub wall_ms_1: f64,
    /// Median wall time on 2 workers, in milliseconds.
    pub wall_ms_2: f64,
    /// Seeds per wall-clock second on 1 worker.
    pub seeds_per_s_1: f64,
    /// Seeds per wall-clock second on 2 workers.
    pub seeds_per_s_2: f64,
    /// `wall_ms_1 / (2 * wall_ms_2)`: 1.0 is a perfect 2x.
    pub efficiency: f64,
    /// Seeds that passed (the others failed, were unknown or errors; they count the same).
    pub passed: u64,
}

/// Sweeps [`SWEEP_BENCH_SEEDS`] seeds of the shipped `raft/leader-isolated.toml` on 1 then 2
/// workers (`repeat` times each, the median kept).
pub fn sweep_bench(repeat: u32) -> SweepBench {
    let sc = scenario(include_str!("../../scenarios/raft/leader-isolated.toml"));
    let scenarios = [sc];
    let time = |workers: usize| {
        let plan = crate::sweep::Plan {
            scenarios: &scenarios,
            space: crate::sweep::JobSpace {
                scenarios: 1,
                seeds: crate::sweep::SeedRange {
                    first: 1,
                    last: SWEEP_BENCH_SEEDS,
                },
                shard: crate::sweep::Shard::WHOLE,
            },
            workers,
            until_fail: false,
            check_determinism: false,
            done: None,
        };
        measure(repeat, || {
            let passed = std::sync::atomic::AtomicU64::new(0);
            crate::sweep::execute(&plan, &|_, o| {
                if o.verdict == crate::sweep::SeedVerdict::Pass {
                    passed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                crate::sweep::Next::Continue
            });
            (passed.into_inner(), 0)
        })
    };
    let (m1, m2) = (time(1), time(2));
    let (passed, t1, t2) = (m1.last.0, m1.wall_ms, m2.wall_ms);
    let rate = |ms: f64| SWEEP_BENCH_SEEDS as f64 / (ms / 1e3);
    SweepBench {
        scenario: "scenarios/raft/leader-isolated.toml".into(),
        seeds: SWEEP_BENCH_SEEDS,
        wall_ms_1: t1,
        wall_ms_2: t2,
        seeds_per_s_1: rate(t1),
        seeds_per_s_2: rate(t2),
        efficiency: t1 / (2.0 * t2),
        passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balancing_bench_is_the_shipped_bench_scenario() {
        let file = Scenario::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/balancing/bench-2000rps.toml"
        )))
        .expect("the shipped scenario loads");
        let bench = balancing_scenario();
        assert_eq!(bench.duration, file.duration);
        // The same roles, clients and network, compared in their serialized (resolved) form.
        let json = |a: &Scenario| {
            serde_json::to_string(&(&a.cluster.roles, &a.clients, &a.network)).expect("serializes")
        };
        assert_eq!(json(&bench), json(&file));
        let rate: f64 = bench
            .clients
            .iter()
            .map(|g| {
                let rate = &g.options["rate"];
                g.count as f64
                    * rate
                        .as_float()
                        .or(rate.as_integer().map(|r| r as f64))
                        .unwrap_or(0.0)
            })
            .sum();
        assert_eq!(rate, 2000.0, "requests per simulated second");
    }

    #[test]
    fn the_bare_loop_reference_does_the_work_of_faultlines_pingpong() {
        let (delivered, end_ns) = bare_loop_pingpong(3000, 1);
        assert_eq!(delivered, 3000);
        assert_eq!(
            bare_loop_pingpong(3000, 1),
            (delivered, end_ns),
            "deterministic"
        );
        assert_ne!(
            bare_loop_pingpong(3000, 2).1,
            end_ns,
            "the seed draws the latencies"
        );
        let (min, max) = PINGPONG_LATENCY_NS;
        assert!((delivered * min..=delivered * max).contains(&end_ns));
        assert_eq!(bare_loop_pingpong(0, 1), (0, 0));
        // faultline's ping-pong over the same simulated time delivers about as many messages
        // (same latency distribution, one message in flight).
        let r = sim::run(&pingpong_scenario(20), 1, &RunOptions::hash_only());
        let faultline = r.stats.messages_delivered;
        let (_, bare_ns) = bare_loop_pingpong(faultline, 1);
        let ratio = bare_ns as f64 / r.end_ns as f64;
        assert!(
            (0.95..=1.05).contains(&ratio),
            "{faultline} messages: {bare_ns} ns vs 20 s"
        );
    }

    #[test]
    fn lock_bench_scenarios_are_valid_with_5_servers_and_20_clients() {
        for (design, build) in LOCK_DESIGNS {
            let s = build();
            assert_eq!(
                s.duration,
                crate::scenario::Duration::from_secs(60),
                "{design}"
            );
            let clients: u32 = s.clients.iter().map(|g| g.count).sum();
            assert_eq!(clients, 20, "{design}");
            let servers = s
                .cluster
                .roles
                .iter()
                .find(|r| r.protocol == "lock-server" || r.protocol == "coordination")
                .map(|r| r.nodes.clone());
            assert!(
                matches!(servers, Some(crate::scenario::NodeList::Count(5))),
                "{design}"
            );
        }
    }
}
