//! Paxos integration tests: every planted bug is caught across a seed sweep while its correct
//! twin (the same scenario without the bug) passes at every seed of the sweep; every listed bug
//! has such a scenario; and the teaching claims of the shipped scenarios hold.

use std::path::{Path, PathBuf};

use faultline::check::{overall, paxos::choices, run_checks};
use faultline::protocols::{self, paxos};
use faultline::scenario::{Scenario, Verdict};
use faultline::sim::{RunOptions, run};
use rayon::prelude::*;

fn paxos_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/paxos")
}

fn bug_scenarios() -> Vec<(PathBuf, Scenario)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(paxos_dir().join("bugs"))
        .expect("scenarios/paxos/bugs exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let s = Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
            (f, s)
        })
        .collect()
}

fn bugs_of(s: &Scenario) -> &[String] {
    if s.cluster.protocol == paxos::synod::PROTOCOL.name {
        &s.paxos.bugs
    } else {
        &s.multi_paxos.bugs
    }
}

/// The same scenario without its planted bug.
fn twin(s: &Scenario) -> Scenario {
    let mut t = s.clone();
    t.paxos.bugs.clear();
    t.multi_paxos.bugs.clear();
    t
}

/// Seeds swept per scenario: more for the fast single-decree runs.
fn seeds(s: &Scenario) -> std::ops::RangeInclusive<u64> {
    if s.cluster.protocol == paxos::synod::PROTOCOL.name {
        1..=8
    } else {
        1..=3
    }
}

/// The checks that failed in one run.
fn failing(s: &Scenario, seed: u64) -> Vec<String> {
    let record = run(s, seed, &RunOptions::default());
    let checks = run_checks(&record);
    assert_eq!(
        overall(&checks) == Verdict::Pass,
        checks.iter().all(|c| c.verdict == Verdict::Pass)
    );
    checks
        .into_iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .map(|c| c.name)
        .collect()
}

#[test]
fn every_planted_bug_is_caught_in_a_seed_sweep_and_its_twin_never_fails() {
    let jobs: Vec<(usize, bool, u64)> = bug_scenarios()
        .iter()
        .enumerate()
        .flat_map(|(i, (_, s))| seeds(s).flat_map(move |seed| [(i, true, seed), (i, false, seed)]))
        .collect();
    let scenarios = bug_scenarios();
    let results: Vec<(usize, bool, u64, Vec<String>)> = jobs
        .par_iter()
        .map(|&(i, buggy, seed)| {
            let s = &scenarios[i].1;
            let s = if buggy { s.clone() } else { twin(s) };
            (i, buggy, seed, failing(&s, seed))
        })
        .collect();
    let mut problems = Vec::new();
    for (i, (file, s)) in scenarios.iter().enumerate() {
        let name = file.file_name().unwrap().to_string_lossy();
        let expected = &s.expect.failing_checks;
        assert!(!expected.is_empty(), "{name}: names no failing check");
        let caught: Vec<u64> = results
            .iter()
            .filter(|r| r.0 == i && r.1 && expected.iter().all(|c| r.3.contains(c)))
            .map(|r| r.2)
            .collect();
        let twin_failures: Vec<String> = results
            .iter()
            .filter(|r| r.0 == i && !r.1 && !r.3.is_empty())
            .map(|r| format!("seed {} failed {:?}", r.2, r.3))
            .collect();
        let swept = seeds(s).count();
        eprintln!(
            "{name}: {:?} caught at {} of {swept} seeds {caught:?}; twin failed at {} of {swept}",
            bugs_of(s),
            caught.len(),
            twin_failures.len()
        );
        if caught.is_empty() {
            problems.push(format!(
                "{name}: the bug was caught at no seed of {:?}",
                seeds(s)
            ));
        }
        if !twin_failures.is_empty() {
            problems.push(format!(
                "{name}: the correct twin failed: {twin_failures:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_listed_bug_has_a_scenario_that_names_its_check() {
    let scenarios = bug_scenarios();
    for name in [paxos::synod::PROTOCOL.name, paxos::multi::PROTOCOL.name] {
        let protocol = protocols::protocol(name).expect("registered");
        for bug in protocol.bugs {
            let found = scenarios.iter().any(|(_, s)| {
                s.cluster.protocol == name
                    && bugs_of(s) == [bug.name.to_string()]
                    && s.expect.failing_checks.iter().any(|c| c == bug.caught_by)
            });
            assert!(
                found,
                "{name}: bug {} has no scenario under scenarios/paxos/bugs expecting {}",
                bug.name, bug.caught_by
            );
        }
    }
    assert_eq!(protocols::protocol("paxos").unwrap().bugs.len(), 7);
}

#[test]
fn nothing_is_chosen_while_no_side_holds_a_majority_then_the_majority_decides() {
    let s = Scenario::load(&paxos_dir().join("partition-2-2-1.toml")).unwrap();
    let record = run(&s, s.seed, &RunOptions::default());
    let chosen = choices(&record);
    let first = |i: u64| chosen.get(&i).and_then(|l| l.first()).map(|c| c.chosen_ns);
    for i in 0..u64::from(s.paxos.instances) {
        let t = first(i).unwrap_or_else(|| panic!("instance {i} was never chosen"));
        // 2|2|1 until 3s: no majority anywhere. 3|2 until 6s: {n1, n2, n3} decides.
        assert!(
            (3_000_000_000..6_000_000_000).contains(&t),
            "instance {i} chosen at {t} ns"
        );
        let c = &chosen[&i][0];
        let acceptors: Vec<&str> = c
            .acceptors
            .iter()
            .filter(|(_, at)| *at <= t)
            .map(|(n, _)| record.topology.name(*n))
            .collect();
        assert!(
            acceptors.iter().all(|n| ["n1", "n2", "n3"].contains(n)),
            "instance {i} chosen by {acceptors:?}"
        );
    }
    assert_eq!(overall(&run_checks(&record)), Verdict::Pass);
}

#[test]
fn paxos_runs_are_deterministic() {
    for file in ["dueling-proposers.toml", "multi-paxos-nemesis.toml"] {
        let s = Scenario::load(&paxos_dir().join(file)).unwrap();
        let a = run(&s, 3, &RunOptions::default());
        let b = run(&s, 3, &RunOptions::default());
        assert_eq!(a.trace_hash, b.trace_hash, "{file}");
        assert!(a.stats.messages_delivered > 1000, "{file}: a real run");
    }
}
