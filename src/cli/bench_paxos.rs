//! `faultline bench paxos`: the Multi-Paxos figure, on the same workload as the Raft one so the
//! two compare directly: a 5-node key-value cluster serving 100 client operations per simulated
//! second (5 open-loop clients at 20/s each, up to 4 outstanding per client) for 60 simulated
//! seconds, over 1-5 ms links, with the default `[multi-paxos]` options. Only the simulation is
//! timed (median of `--repeat` runs); the checks run once afterwards on the last run and must
//! pass. Reports wall time, the simulated-to-wall ratio and simulation events (message
//! deliveries, timer firings, faults) per wall-clock second.

use serde::Serialize;

use crate::check::{overall, run_checks};
use crate::cli::bench::{measure, scenario};
use crate::history::EventType;
use crate::report::verdict_word;
use crate::scenario::Scenario;
use crate::sim::{self, RunOptions};

/// The Multi-Paxos figure.
#[derive(Clone, Debug, Serialize)]
pub struct PaxosFigure {
    /// What was measured.
    pub name: String,
    /// Median wall time of one run (simulation only), in milliseconds.
    pub wall_ms: f64,
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

/// The standard Multi-Paxos benchmark: 5 nodes, 100 client operations per simulated second,
/// 60 s (the Raft benchmark's workload).
pub fn multi_paxos_scenario() -> Scenario {
    scenario(
        "name = \"bench-multi-paxos\"\nduration = \"60s\"\n[cluster]\nprotocol = \"multi-paxos\"\nnodes = 5\n\
         [network]\nlatency = { distribution = \"uniform\", min = \"1ms\", max = \"5ms\" }\n\
         [workload]\nclients = 5\nrate_per_s = 20.0\nconcurrency = 4\n",
    )
}

/// Measures the Multi-Paxos figure.
pub fn multi_paxos(repeat: u32) -> PaxosFigure {
    let sc = multi_paxos_scenario();
    let options = RunOptions::hash_only();
    let mut last = None;
    let (_, wall_ms, sim_ns) = measure(repeat, || {
        let r = sim::run(&sc, 1, &options);
        let end = r.end_ns;
        last = Some(r);
        (0, end)
    });
    let record = last.expect("measured at least once");
    let s = &record.stats;
    let events = s.messages_delivered + s.timers_fired + s.faults_applied + s.faults_undone;
    let verdict = verdict_word(overall(&run_checks(&record))).to_string();
    let ops_ok = record
        .history
        .iter()
        .filter(|e| e.kind == EventType::Ok)
        .count() as u64;
    let simulated_ms = sim_ns as f64 / 1e6;
    PaxosFigure {
        name: "multi-paxos kv, 5 nodes, 100 ops/s, 60 s".into(),
        wall_ms,
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

/// Prints the figure for people.
pub fn print(figure: &PaxosFigure, repeat: u32) {
    println!("multi-paxos (median of {repeat} runs, simulation only):");
    println!(
        "  {:<46} {:.1} ms wall; {:.0}x faster than real time; {:.0} events/s ({} events, {} messages, {} ok ops, {} trace lines; checks: {})",
        figure.name,
        figure.wall_ms,
        figure.sim_to_wall,
        figure.events_per_s,
        figure.events,
        figure.messages_sent,
        figure.ops_ok,
        figure.trace_lines,
        figure.verdict
    );
}
