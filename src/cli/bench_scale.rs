//! `faultline bench scale [--quick] [--json]`: how the cost of one run grows with nodes, clients
//! and simulated time. Build with `--release`.
//!
//! Each load ([`LOADS`]) is `scenarios/raft/steady-state.toml` (embedded) with its protocol
//! (Raft, or Multi-Paxos for the last two loads), nodes, clients and duration changed
//! ([`load_scenario_text`]), at its seed 1. For each load:
//!
//! - the full run in a child process: this program again as `faultline run SCENARIO --out DIR
//!   --json --quiet` (every check, `trace.jsonl` and the report written into a temporary
//!   folder, removed afterwards), timed from spawn to exit. Its peak resident memory is the
//!   child's `ru_maxrss` as `wait4(2)` returns it (the kernel's high-water mark of the child's
//!   resident set over its whole life, what `/usr/bin/time -f %M` prints; Linux counts it in
//!   KiB);
//! - the simulation alone, in this process: one run with the trace hashed, not kept
//!   ([`RunOptions::hash_only`]), timed with the wall clock; no checks.
//!
//! Every full run goes first, then every simulation alone. A child's `ru_maxrss` also covers
//! its life before `exec`, in this process's memory (Linux keeps the high-water mark of the
//! memory it leaves at `exec`; `posix_spawn` and `vfork` share this process's), so a child
//! spawned after an in-process simulation reported at least that simulation's peak: the
//! Multi-Paxos loads showed 588 MiB where `/usr/bin/time faultline run` measured 117 MiB.
//! Spawned first, the children inherit only this process's start (a few MiB);
//! - the size of the child's `trace.jsonl`, and the verdict of its checks: `pass`, `fail`,
//!   `unknown`, or `limit-exceeded` when the run stopped at an event limit (`faultline run`
//!   then exits 2 and says which limit; see `docs/scenario-format.md`, "Limits"), or `error` if
//!   the child could not run.
//!
//! One run of each, not a median: the loads are long enough to be steady, and the whole bench
//! takes minutes (so it is not part of `bench all`). It needs disk for the largest trace (about
//! 1 GB per 10 simulated minutes of the 5-client load, 12 GB per 10 minutes of 50 clients).
//! `--quick` runs every load for a few simulated seconds instead ([`Load::quick_ms`]: 4 and 6 s,
//! past the 3 s the liveness check needs to judge an operation), for tests.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use serde::Serialize;

use crate::cli::exit;
use crate::scenario::Scenario;
use crate::sim::{self, RunOptions};
use crate::wall::wall_now;

/// One load: a steady-state cluster of `nodes` servers of `protocol` and `clients` clients for
/// `duration_s` simulated seconds (the scenario's workload otherwise: 2 outstanding operations
/// per client, 10 ms think time, 5 keys, 1-5 ms links).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Load {
    /// The protocol (`[cluster] protocol`): `raft` or `multi-paxos`.
    pub protocol: &'static str,
    /// Servers.
    pub nodes: u32,
    /// Clients.
    pub clients: u32,
    /// Simulated time, in seconds.
    pub duration_s: u64,
    /// Simulated time under `--quick`, in milliseconds.
    pub quick_ms: u64,
}

/// The loads of `faultline bench scale`: the table of issue 18 (Raft with 5 to 50 clients, 5
/// and 15 nodes, 60 and 600 simulated seconds), then Multi-Paxos with 50 clients for 60 s and 5
/// clients for 600 s.
pub const LOADS: &[Load] = &[
    Load::new("raft", 5, 5, 60, 4_000),
    Load::new("raft", 5, 20, 60, 4_000),
    Load::new("raft", 15, 20, 60, 4_000),
    Load::new("raft", 5, 50, 60, 4_000),
    Load::new("raft", 5, 5, 600, 6_000),
    Load::new("raft", 5, 50, 600, 6_000),
    Load::new("multi-paxos", 5, 50, 60, 4_000),
    Load::new("multi-paxos", 5, 5, 600, 6_000),
];

impl Load {
    const fn new(
        protocol: &'static str,
        nodes: u32,
        clients: u32,
        duration_s: u64,
        quick_ms: u64,
    ) -> Load {
        Load {
            protocol,
            nodes,
            clients,
            duration_s,
            quick_ms,
        }
    }

    /// Simulated time of this load, in milliseconds (`quick`: [`Load::quick_ms`]).
    pub fn duration_ms(&self, quick: bool) -> u64 {
        if quick {
            self.quick_ms
        } else {
            self.duration_s * 1000
        }
    }

    /// `5 nodes, 20 clients, 60 s` (Raft), `multi-paxos, 5 nodes, 50 clients, 60 s`.
    pub fn label(&self, quick: bool) -> String {
        let ms = self.duration_ms(quick);
        let time = if ms.is_multiple_of(1000) {
            format!("{} s", ms / 1000)
        } else {
            format!("{ms} ms")
        };
        let protocol = if self.protocol == "raft" {
            String::new()
        } else {
            format!("{}, ", self.protocol)
        };
        format!(
            "{protocol}{} nodes, {} clients, {time}",
            self.nodes, self.clients
        )
    }
}

/// The scenario of `load`: `scenarios/raft/steady-state.toml` with `name`, `duration`,
/// `[cluster] protocol`, `[cluster] nodes` and `[workload] clients` replaced, as TOML text (what
/// the child process runs; the in-process simulation parses the same text).
pub fn load_scenario_text(load: &Load, quick: bool) -> String {
    let mut doc: toml::Table = include_str!("../../scenarios/raft/steady-state.toml")
        .parse()
        .expect("the shipped steady-state scenario is TOML");
    let ms = load.duration_ms(quick);
    doc.insert(
        "name".into(),
        format!(
            "bench-scale-{}-n{}-c{}-{}ms",
            load.protocol, load.nodes, load.clients, ms
        )
        .into(),
    );
    doc.insert("duration".into(), format!("{ms}ms").into());
    let mut set = |table: &str, key: &str, value: toml::Value| {
        doc.get_mut(table)
            .and_then(toml::Value::as_table_mut)
            .expect("steady-state has the table")
            .insert(key.into(), value);
    };
    set("cluster", "protocol", load.protocol.into());
    set("cluster", "nodes", load.nodes.into());
    set("workload", "clients", load.clients.into());
    toml::to_string(&doc).expect("a TOML table serializes")
}

/// The figures of one load.
#[derive(Clone, Debug, Serialize)]
pub struct LoadFigure {
    /// `5 nodes, 20 clients, 60 s`.
    pub name: String,
    /// The protocol: `raft` or `multi-paxos`.
    pub protocol: String,
    /// Servers.
    pub nodes: u32,
    /// Clients.
    pub clients: u32,
    /// Simulated time the scenario asks for, in milliseconds.
    pub simulated_ms: f64,
    /// Simulation alone: wall time of the run (trace hashed only, no checks), in milliseconds.
    pub sim_wall_ms: f64,
    /// Simulation alone: simulated time reached per wall-clock time (the run's end, or where
    /// an event limit stopped it).
    pub sim_to_wall: f64,
    /// Simulation alone: events (message deliveries, timer firings, faults).
    pub sim_events: u64,
    /// Simulation alone: messages delivered.
    pub sim_messages_delivered: u64,
    /// Simulation alone: the event limit that stopped it, in words, if one did.
    pub sim_limit_exceeded: Option<String>,
    /// Full run (child process): wall time from spawn to exit, in milliseconds.
    pub run_wall_ms: f64,
    /// Full run: simulated time per wall-clock time (`simulated_ms / run_wall_ms`; `None` if
    /// the run stopped at a limit or could not run).
    pub run_sim_to_wall: Option<f64>,
    /// Full run: the child's peak resident memory in bytes (`wait4`'s `ru_maxrss`; `None`
    /// where the platform does not report it).
    pub peak_rss_bytes: Option<u64>,
    /// Full run: size of `trace.jsonl`, in bytes (0 if none was written: a run stopped at an
    /// event limit writes no report folder).
    pub trace_bytes: u64,
    /// Full run: `pass`, `fail`, `unknown`, `limit-exceeded` or `error`.
    pub verdict: String,
    /// Why the verdict is `limit-exceeded` or `error` (the child's message).
    pub note: Option<String>,
}

/// The result of `faultline bench scale` (its `--json` object `scale`).
#[derive(Clone, Debug, Serialize)]
pub struct ScaleReport {
    /// The scenario the loads are made from.
    pub scenario: String,
    /// True under `--quick` (every load shortened to [`Load::quick_ms`]).
    pub quick: bool,
    /// How `peak_rss_bytes` is measured.
    pub peak_rss_source: String,
    /// One figure per load of [`LOADS`], in order.
    pub loads: Vec<LoadFigure>,
}

/// How the child's peak RSS is read, for the report.
const PEAK_RSS_SOURCE: &str = "ru_maxrss of the full-run child process, from wait4(2), children spawned before any in-process run";

/// Runs every load of [`LOADS`] and prints the table (or, with `json`, `{"scale": ...}`).
/// Exit 0 when every load ran (whatever its verdict: the verdicts are figures here), 2 if
/// this program cannot be found to run the children.
pub fn bench_scale(quick: bool, json: bool) -> u8 {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("faultline bench scale: cannot find this program to run the loads: {e}");
            return exit::BAD_INPUT;
        }
    };
    if !json {
        println!(
            "scale: {} (seed 1), one run per load; full runs in a child process, peak RSS = {PEAK_RSS_SOURCE}",
            "scenarios/raft/steady-state.toml"
        );
        println!(
            "  {:<43} {:>18} {:>10} {:>10} {:>10} {:>10}  verdict",
            "load", "simulation alone", "full run", "full x", "peak RSS", "trace"
        );
    }
    let texts: Vec<String> = LOADS
        .iter()
        .map(|load| load_scenario_text(load, quick))
        .collect();
    // The children first, while this process is small (see the module docs).
    let full_runs: Vec<FullRun> = texts.iter().map(|text| full_run(&exe, text)).collect();
    let mut loads = Vec::new();
    for ((load, text), full) in LOADS.iter().zip(&texts).zip(full_runs) {
        let figure = measure_load(load, quick, text, full);
        if !json {
            println!("  {}", line(&figure));
        }
        loads.push(figure);
    }
    let report = ScaleReport {
        scenario: "scenarios/raft/steady-state.toml".into(),
        quick,
        peak_rss_source: PEAK_RSS_SOURCE.into(),
        loads,
    };
    if json {
        let mut top = serde_json::Map::new();
        top.insert(
            "scale".into(),
            serde_json::to_value(&report).expect("serializes"),
        );
        println!(
            "{}",
            serde_json::to_string_pretty(&top).expect("serializes")
        );
    } else {
        for f in report.loads.iter().filter(|f| f.note.is_some()) {
            println!("  {}: {}", f.name, f.note.as_deref().unwrap_or(""));
        }
    }
    exit::PASS
}

/// One row of the text table.
fn line(f: &LoadFigure) -> String {
    let mib = |b: u64| format!("{:.0} MiB", b as f64 / f64::from(1u32 << 20));
    format!(
        "{:<43} {:>8.1}x ({:>5.1} s) {:>8.1} s {:>10} {:>10} {:>10}  {}",
        f.name,
        f.sim_to_wall,
        f.sim_wall_ms / 1e3,
        f.run_wall_ms / 1e3,
        f.run_sim_to_wall
            .map_or_else(|| "-".to_string(), |x| format!("{x:.1}x")),
        f.peak_rss_bytes.map_or_else(|| "-".to_string(), mib),
        mib(f.trace_bytes),
        f.verdict
    )
}

/// Measures one load's simulation alone in this process (its scenario `text`), and makes its
/// figure with its `full` run (in a child, measured before).
fn measure_load(load: &Load, quick: bool, text: &str, full: FullRun) -> LoadFigure {
    let scenario = Scenario::parse(Path::new("<bench scale>"), text.as_bytes())
        .expect("the scale loads are valid scenarios");
    let start = wall_now();
    let record = sim::run(&scenario, 1, &RunOptions::hash_only());
    let sim_wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let s = &record.stats;
    let sim_events = s.messages_delivered + s.timers_fired + s.faults_applied + s.faults_undone;
    let sim_messages_delivered = s.messages_delivered;
    let sim_limit_exceeded = record.limit_exceeded.as_ref().map(ToString::to_string);
    let reached_ms = record.end_ns as f64 / 1e6;
    drop(record);
    let simulated_ms = load.duration_ms(quick) as f64;
    LoadFigure {
        name: load.label(quick),
        protocol: load.protocol.into(),
        nodes: load.nodes,
        clients: load.clients,
        simulated_ms,
        sim_wall_ms,
        sim_to_wall: reached_ms / sim_wall_ms,
        sim_events,
        sim_messages_delivered,
        sim_limit_exceeded,
        run_wall_ms: full.wall_ms,
        run_sim_to_wall: matches!(full.verdict.as_str(), "pass" | "fail" | "unknown")
            .then(|| simulated_ms / full.wall_ms),
        peak_rss_bytes: full.peak_rss_bytes,
        trace_bytes: full.trace_bytes,
        verdict: full.verdict,
        note: full.note,
    }
}

/// What the full run of one load gave.
struct FullRun {
    wall_ms: f64,
    peak_rss_bytes: Option<u64>,
    trace_bytes: u64,
    verdict: String,
    note: Option<String>,
}

impl FullRun {
    fn error(wall_ms: f64, note: String) -> FullRun {
        FullRun {
            wall_ms,
            peak_rss_bytes: None,
            trace_bytes: 0,
            verdict: "error".into(),
            note: Some(note),
        }
    }
}

/// Runs `faultline run` on the scenario `text` in a child process, in a temporary folder
/// (removed on return).
fn full_run(exe: &Path, text: &str) -> FullRun {
    let prepared = tempfile::tempdir().and_then(|dir| {
        let scenario = dir.path().join("scenario.toml");
        std::fs::write(&scenario, text)?;
        let stdout = std::fs::File::create(dir.path().join("stdout.json"))?;
        let stderr = std::fs::File::create(dir.path().join("stderr.txt"))?;
        Ok((dir, scenario, stdout, stderr))
    });
    let (dir, scenario, stdout, stderr) = match prepared {
        Ok(p) => p,
        Err(e) => return FullRun::error(0.0, format!("cannot prepare a temporary folder: {e}")),
    };
    let out = dir.path().join("out");
    let start = wall_now();
    let child = Command::new(exe)
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .args(["--json", "--quiet"])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn();
    let waited = child.and_then(wait_with_peak_rss);
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let (status, peak_rss_bytes) = match waited {
        Ok(w) => w,
        Err(e) => return FullRun::error(wall_ms, format!("cannot run `faultline run`: {e}")),
    };
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let trace_bytes = std::fs::metadata(out.join("trace.jsonl")).map_or(0, |m| m.len());
    let (verdict, note) = classify(status.code(), &read("stdout.json"), &read("stderr.txt"));
    FullRun {
        wall_ms,
        peak_rss_bytes,
        trace_bytes,
        verdict,
        note,
    }
}

/// The verdict of a `faultline run --json` child from its exit code, standard output (the
/// report) and standard error: the report's `verdict`; `limit-exceeded` (with the message)
/// when it exited 2 saying an event limit stopped the run; `error` otherwise.
pub fn classify(code: Option<i32>, stdout: &str, stderr: &str) -> (String, Option<String>) {
    let reported = serde_json::from_str::<serde_json::Value>(stdout)
        .ok()
        .and_then(|r| r["verdict"].as_str().map(str::to_string));
    let message = stderr.trim().to_string();
    match (code, reported) {
        (Some(0 | 1 | 3), Some(verdict)) => (verdict, None),
        (Some(2), _) if message.contains("events (the limit ") => {
            ("limit-exceeded".into(), Some(message))
        }
        (code, _) => (
            "error".into(),
            Some(format!(
                "`faultline run` exited with {}: {message}",
                code.map_or_else(|| "a signal".to_string(), |c| format!("code {c}"))
            )),
        ),
    }
}

/// Waits for `child` and returns its exit status and peak resident memory in bytes, from the
/// `rusage` that `wait4(2)` fills in for it (`ru_maxrss`: KiB on Linux, bytes on macOS).
#[cfg(unix)]
fn wait_with_peak_rss(child: std::process::Child) -> std::io::Result<(ExitStatus, Option<u64>)> {
    use std::os::unix::process::ExitStatusExt;
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct of integers, for which all zero bytes are valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet waited for (`child` is consumed here and
        // never waited on by std); `status` and `usage` are valid for writes for the call.
        let r = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
    let peak = u64::try_from(usage.ru_maxrss).ok().map(|v| v * unit);
    Ok((ExitStatus::from_raw(status), peak))
}

/// Waits for `child`; no peak memory where `wait4` does not exist.
#[cfg(not(unix))]
fn wait_with_peak_rss(
    mut child: std::process::Child,
) -> std::io::Result<(ExitStatus, Option<u64>)> {
    child.wait().map(|s| (s, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_loads_are_steady_state_with_their_nodes_clients_and_duration() {
        let shipped = Scenario::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/raft/steady-state.toml"
        )))
        .expect("the shipped scenario loads");
        for load in LOADS {
            for quick in [false, true] {
                let text = load_scenario_text(load, quick);
                let s = Scenario::parse(Path::new("<load>"), text.as_bytes()).expect("valid");
                assert_eq!(
                    s.duration,
                    crate::scenario::Duration::from_millis(load.duration_ms(quick))
                );
                let topology = crate::scenario::topology::Topology::new(&s);
                assert_eq!(topology.servers.len(), load.nodes as usize, "{text}");
                let clients: u32 = s.clients.iter().map(|g| g.count).sum();
                assert_eq!(clients, load.clients);
                assert_eq!(s.cluster.roles[0].protocol, load.protocol, "{text}");
                // Everything else is the shipped scenario's.
                let json = |a: &Scenario| {
                    serde_json::to_string(&(&a.network, &a.clients[0].options, a.seed))
                        .expect("serializes")
                };
                assert_eq!(json(&s), json(&shipped));
            }
        }
        assert_eq!(LOADS.len(), 8);
        assert_eq!(LOADS[3].label(false), "5 nodes, 50 clients, 60 s");
        assert_eq!(LOADS[5].label(true), "5 nodes, 50 clients, 6 s");
        assert_eq!(
            LOADS[6].label(false),
            "multi-paxos, 5 nodes, 50 clients, 60 s"
        );
    }

    #[test]
    fn a_run_stopped_at_an_event_limit_is_classified_limit_exceeded() {
        let limit = sim::LimitExceeded {
            limit: "events_per_run",
            value: crate::scenario::limits::MAX_EVENTS_PER_RUN,
            t_ns: 412_000_000_000,
        };
        // What `faultline run` prints (file:line:col: message) and its exit code 2.
        let stderr = format!("/tmp/x/scenario.toml:1:1: {limit}\n");
        let (verdict, note) = classify(Some(2), "", &stderr);
        assert_eq!(verdict, "limit-exceeded");
        assert!(note.expect("a note").contains("events_per_run"));
        // Other bad input is an error, not a limit.
        let (verdict, _) = classify(Some(2), "", "x.toml:3:1: duration: expected a duration");
        assert_eq!(verdict, "error");
        // A report's verdict is taken as it is, with the exit codes that go with it.
        let (verdict, note) = classify(Some(3), r#"{"verdict": "unknown"}"#, "");
        assert_eq!((verdict.as_str(), note), ("unknown", None));
        let (verdict, _) = classify(None, "", "");
        assert_eq!(verdict, "error");
    }
}
