//! Every scenario under `scenarios/` is run at its own seed and must meet its `[expect]` block.

use std::path::PathBuf;

use faultline::cli::run::run_and_check;
use faultline::cli::test::find_scenarios;
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
