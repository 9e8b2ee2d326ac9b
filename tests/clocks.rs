//! Local clocks: timers are set in local time, so drift, offsets and jumps move their global
//! firing times. Checked on the `timer` lines of the broadcast protocol's gossip timer
//! (`gossip_interval` = 200ms of local time, re-armed each time it fires).

use std::path::Path;

use faultline::scenario::Scenario;
use faultline::sim::{RunOptions, run};

const MS: u64 = 1_000_000;

/// Global times at which `node`'s gossip timer fired.
fn gossip_times(extra: &str, node: &str) -> Vec<u64> {
    let text = format!(
        "duration = \"3s\"\n[cluster]\nprotocol = \"broadcast\"\nnodes = 3\n[workload]\nclients = 0\n{extra}"
    );
    let scenario = Scenario::parse(Path::new("clocks.toml"), text.as_bytes()).unwrap();
    let record = run(&scenario, 1, &RunOptions::default());
    record
        .trace_jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(&l).unwrap())
        .filter(|v| v["kind"] == "timer" && v["node"] == node)
        .map(|v| v["t_ns"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_fast_clock_fires_its_timers_early_in_global_time() {
    // 25% fast: 200ms of local time pass in 160ms of global time.
    let times = gossip_times("[clock.n2]\ndrift = 0.25\n", "n2");
    let expected: Vec<u64> = (1..=18).map(|k| k * 160 * MS).collect();
    assert_eq!(times[..18], expected[..]);
    // A node with an exact clock keeps 200ms.
    assert_eq!(
        gossip_times("[clock.n2]\ndrift = 0.25\n", "n1")[..3],
        [200 * MS, 400 * MS, 600 * MS]
    );
}

#[test]
fn a_slow_clock_fires_late_and_an_offset_changes_nothing_about_intervals() {
    let slow = gossip_times("[clock.n3]\ndrift = -0.5\n", "n3");
    assert_eq!(slow[..3], [400 * MS, 800 * MS, 1200 * MS]);
    let offset = gossip_times("[clock.n3]\noffset = \"-750ms\"\n", "n3");
    assert_eq!(offset[..3], [200 * MS, 400 * MS, 600 * MS]);
}

#[test]
fn clock_jumps_fire_pending_timers_at_once_or_postpone_them() {
    // Forward jump at 1050ms: the timer due at local 1200ms is already past: fires at 1050ms.
    let forward = gossip_times(
        "[[fault]]\nat = \"1050ms\"\nkind = \"clock-jump\"\ntarget = \"n1\"\ndelta = \"+1s\"\n",
        "n1",
    );
    assert_eq!(
        forward[..7],
        [
            200 * MS,
            400 * MS,
            600 * MS,
            800 * MS,
            1000 * MS,
            1050 * MS,
            1250 * MS
        ]
    );
    // Backward jump at 1050ms: local time goes back to 50ms; the timer due at local 1200ms now
    // needs 1150ms more: it fires at global 2200ms.
    let backward = gossip_times(
        "[[fault]]\nat = \"1050ms\"\nkind = \"clock-jump\"\ntarget = \"n1\"\ndelta = \"-1s\"\n",
        "n1",
    );
    assert_eq!(
        backward[..6],
        [200 * MS, 400 * MS, 600 * MS, 800 * MS, 1000 * MS, 2200 * MS]
    );
}

#[test]
fn a_drift_fault_changes_the_rate_from_its_start_and_its_end_restores_it() {
    // From 1000ms to 2000ms n1 runs twice as fast.
    let times = gossip_times(
        "[[fault]]\nat = \"1000ms\"\nkind = \"clock-drift\"\ntarget = \"n1\"\ndrift = 1.0\nduration = \"1s\"\n",
        "n1",
    );
    let expected = [
        200, 400, 600, 800, 1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800, 1900, 2000, 2200,
    ];
    assert_eq!(times[..16], expected.map(|t| t * MS)[..]);
}
