//! Every scenario under `scenarios/` is run at its own seed and must meet its `[expect]` block;
//! every planted bug of every protocol has a scenario, caught over a 20-seed sweep at the rate
//! the docs state, whose correct twin passes at every seed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use faultline::cli::run::run_and_check;
use faultline::cli::test::{SeedRange, find_scenarios, has_bugs, sweep};
use faultline::families;
use faultline::scenario::Scenario;
use rayon::prelude::*;

#[test]
fn every_shipped_scenario_meets_its_expectation() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let files = find_scenarios(&[root]).expect("scenarios folder is readable");
    assert!(!files.is_empty(), "no scenarios found");
    let failures: Vec<String> = files
        .par_iter()
        .filter_map(|file| match run_and_check(file, None) {
            Ok((_, report)) if report.expectation_met() => None,
            Ok((_, report)) => Some(format!(
                "{}: {} ({})",
                file.display(),
                report.expectation_problems.join("; "),
                report.reproduce
            )),
            Err(e) => Some(format!("{e}")),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// Seeds of the planted-bug sweep, and of the catch-rate tables in the docs.
const SWEEP: SeedRange = SeedRange { first: 1, last: 20 };
/// How many seeds below its documented catch rate a planted bug may be caught at.
const MARGIN: u64 = 1;

/// Every planted-bug scenario under `scenarios/*/bugs/`, loaded.
fn bug_scenarios() -> Vec<(PathBuf, Scenario)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let files = find_scenarios(&[root]).expect("scenarios folder is readable");
    files
        .into_iter()
        .filter(|f| f.parent().is_some_and(|p| p.ends_with("bugs")))
        .map(|f| {
            let s = Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
            (f, s)
        })
        .collect()
}

/// The catch rates the docs state: every table row `` | `scenarios/...toml` | N/20 | `` in
/// `docs/*.md`, by path relative to the repository.
fn documented_rates() -> BTreeMap<String, u64> {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut rates = BTreeMap::new();
    for entry in std::fs::read_dir(docs).expect("docs/ is readable") {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for line in text.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 4 || !cells[1].starts_with("`scenarios/") {
                continue;
            }
            let Some((n, of)) = cells[2].split_once('/') else {
                continue;
            };
            if of != SWEEP.len().to_string() {
                continue;
            }
            let path = cells[1].trim_matches('`').to_string();
            let n: u64 = n.parse().unwrap_or_else(|_| panic!("a count in {line:?}"));
            assert!(rates.insert(path, n).is_none(), "stated twice: {line}");
        }
    }
    rates
}

/// Every planted bug of every protocol (in a role) and of every workload (in a client group) has a
/// scenario under `scenarios/<protocol>/bugs/` that switches on that bug alone and expects the
/// check the bug list names to fail.
#[test]
fn every_planted_bug_has_a_scenario_that_expects_its_check_to_fail() {
    let scenarios = bug_scenarios();
    let registry = families::builtin();
    // Each protocol's bugs are switched on in the roles that run it, each workload's in the
    // client groups that run it.
    let protocols = registry.protocols().map(|p| (p.name, p.bugs, true));
    let owners = protocols.chain(registry.workloads().map(|w| (w.name, w.bugs, false)));
    for (owner, bugs, is_protocol) in owners {
        let switched_on = |s: &Scenario| -> Vec<String> {
            let roles = s
                .cluster
                .roles
                .iter()
                .filter(|r| is_protocol && r.protocol == owner);
            let groups = s
                .clients
                .iter()
                .filter(|g| !is_protocol && g.workload == owner);
            roles
                .map(|r| &r.options)
                .chain(groups.map(|g| &g.options))
                .filter_map(|o| o.get("bugs").and_then(|b| b.as_array()))
                .flatten()
                .filter_map(|b| b.as_str().map(str::to_string))
                .collect()
        };
        for bug in bugs {
            let found = scenarios.iter().any(|(_, s)| {
                switched_on(s) == [bug.name.to_string()]
                    && s.expect.failing_checks.iter().any(|c| c == bug.caught_by)
            });
            assert!(
                found,
                "{owner}: bug {} has no scenario under scenarios/*/bugs expecting {} to fail",
                bug.name, bug.caught_by
            );
        }
    }
    // The same for the planted bugs of client workloads, switched on in client groups.
    for workload in families::builtin().workloads() {
        for bug in workload.bugs {
            let found = scenarios.iter().any(|(_, s)| {
                let on: Vec<String> = s
                    .clients
                    .iter()
                    .filter(|g| g.workload == workload.name)
                    .filter_map(|g| g.options.get("bugs").and_then(|b| b.as_array()))
                    .flatten()
                    .filter_map(|b| b.as_str().map(str::to_string))
                    .collect();
                on == [bug.name.to_string()]
                    && s.expect.failing_checks.iter().any(|c| c == bug.caught_by)
            });
            assert!(
                found,
                "{}: bug {} has no scenario under scenarios/*/bugs expecting {} to fail",
                workload.name, bug.name, bug.caught_by
            );
        }
    }
    for (file, s) in &scenarios {
        assert!(
            has_bugs(s),
            "{}: switches on no planted bug",
            file.display()
        );
    }
}

/// Every planted-bug scenario of every protocol, over seeds 1-20: its whole `[expect]` (the
/// `fail` verdict and every check it lists as failing) holds at no fewer seeds than the docs
/// state (minus `MARGIN`), and its correct twin (the same scenario with the bug switched off)
/// passes (not `unknown`) at every one of the 20 seeds. The same numbers as
/// `faultline test --seeds 1..20 --twins scenarios/<protocol>/bugs`.
#[test]
fn every_planted_bug_is_caught_at_its_documented_rate_and_its_twin_passes_every_seed() {
    let scenarios = bug_scenarios();
    assert!(
        scenarios.len() >= 19,
        "bug scenarios found: {}",
        scenarios.len()
    );
    let rates = documented_rates();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for sweep in sweep(&scenarios, SWEEP, true) {
        let rel = sweep
            .file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let missed: Vec<String> = sweep
            .missed
            .iter()
            .map(|(seed, why)| format!("seed {seed}: {}", why.join("; ")))
            .collect();
        if sweep.twin {
            eprintln!("twin of {rel}: passed at {}/{}", sweep.met(), SWEEP.len());
            if !missed.is_empty() {
                problems.push(format!(
                    "the correct twin of {rel} did not pass: {missed:?}"
                ));
            }
            continue;
        }
        eprintln!("{rel}: caught at {}/{}", sweep.met(), SWEEP.len());
        let Some(&stated) = rates.get(&rel) else {
            problems.push(format!(
                "{rel}: the docs state no catch rate over seeds 1-20"
            ));
            continue;
        };
        if sweep.met() + MARGIN < stated || sweep.met() == 0 {
            problems.push(format!(
                "{rel}: caught at {}/{} seeds, the docs state {stated}/{}: {missed:?}",
                sweep.met(),
                SWEEP.len(),
                SWEEP.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every lesson under `scenarios/lessons/` opens with the headings a class reads first (what
/// happens, what to look for, what to predict), a `Run:` line naming its own file, a name
/// starting with `lesson-`, and a row in docs/teaching.md's table.
#[test]
fn every_lesson_says_what_to_look_for_and_what_to_predict_and_is_in_the_teaching_guide() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/teaching.md")).expect("docs/teaching.md");
    let files = find_scenarios(&[root.join("scenarios/lessons")]).expect("lessons folder");
    assert!(files.len() >= 9, "the lesson series is missing");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        for heading in ["# What happens:", "# Look for:", "# Predict"] {
            assert!(text.contains(heading), "{name} has no {heading:?}");
        }
        let run = format!("# Run:     faultline run scenarios/lessons/{name}");
        assert!(text.contains(&run), "{name} has no line {run:?}");
        let scenario = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            scenario.name.starts_with("lesson-"),
            "{name}: name {:?}",
            scenario.name
        );
        assert!(
            guide.contains(&format!("| `{name}` |")),
            "docs/teaching.md has no row for {name}"
        );
    }
}
