//! Determinism: the same scenario and seed give the same trace hash, on any thread and after
//! any number of earlier runs in the same process; different seeds give different runs.

use std::collections::BTreeSet;
use std::path::Path;

use faultline::scenario::Scenario;
use faultline::sim::{RunOptions, run};
use rayon::prelude::*;

/// A short broadcast run under a busy random nemesis (every fault kind), loss and duplication.
fn scenario() -> Scenario {
    let text = r#"
duration = "4s"
[cluster]
protocol = "broadcast"
nodes = 5
[network]
latency = { distribution = "exponential", min = "1ms", mean = "5ms", max = "50ms" }
loss_probability = 0.05
duplicate_probability = 0.05
reorder = true
[nemesis]
faults = ["partition", "isolate", "crash", "crash-leader", "pause", "clock-jump", "clock-drift"]
interval = "300ms"
fault_duration = "400ms"
final_heal = "1s"
[workload]
clients = 3
concurrency = 2
think_time = "20ms"
"#;
    Scenario::parse(Path::new("determinism.toml"), text.as_bytes()).expect("valid")
}

#[test]
fn a_hundred_seeds_each_reproduce_their_trace_hash_and_differ_from_each_other() {
    let s = scenario();
    let options = RunOptions::default();
    // Each seed runs twice, on whichever rayon threads pick the jobs up, interleaved with other
    // seeds' runs in the same process.
    let runs: Vec<(u64, String, String, u64)> = (0..100u64)
        .into_par_iter()
        .map(|seed| {
            let a = run(&s, seed, &options);
            let b = run(&s, seed, &options);
            (seed, a.trace_hash, b.trace_hash, a.stats.faults_applied)
        })
        .collect();
    for (seed, first, second, _) in &runs {
        assert_eq!(first, second, "seed {seed} is not deterministic");
    }
    let distinct: BTreeSet<&String> = runs.iter().map(|r| &r.1).collect();
    assert_eq!(
        distinct.len(),
        runs.len(),
        "different seeds give different runs"
    );
    assert!(runs.iter().all(|r| r.3 > 0), "every seed applied faults");
}

#[test]
fn keeping_the_trace_does_not_change_its_hash() {
    let kept = run(&scenario(), 9, &RunOptions::default());
    let hashed = run(&scenario(), 9, &RunOptions::hash_only());
    assert!(!kept.trace_truncated && hashed.trace_truncated);
    assert!(hashed.trace_jsonl.is_empty());
    assert_eq!(
        kept.trace_jsonl.lines().count() as u64,
        kept.stats.trace_lines
    );
    assert_eq!(kept.trace_hash, hashed.trace_hash);
    assert_eq!(kept.trace_hash.len(), 32, "hex XXH3-128");
}

#[test]
fn publishing_progress_does_not_change_the_run_and_ends_at_its_totals() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    let counters = Arc::new(faultline::sim::RunProgress::default());
    let watched = run(
        &scenario(),
        9,
        &RunOptions {
            progress: Some(counters.clone()),
            ..RunOptions::hash_only()
        },
    );
    let plain = run(&scenario(), 9, &RunOptions::hash_only());
    assert_eq!(watched.trace_hash, plain.trace_hash);
    assert!(counters.finished.load(Ordering::Relaxed));
    assert_eq!(counters.now_ns.load(Ordering::Relaxed), watched.end_ns);
    assert_eq!(counters.end_ns.load(Ordering::Relaxed), 4_000_000_000);
    assert_eq!(
        counters.events.load(Ordering::Relaxed),
        watched.stats.events
    );
    assert_eq!(
        counters.messages_sent.load(Ordering::Relaxed),
        watched.stats.messages_sent
    );
}
