//! `faultline run SCENARIO [--seed N] [--out DIR] [--json] [--check-determinism]`.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::check::run_checks;
use crate::cli::{elapsed_ms, exit, verdict_code, wall_now};
use crate::report::{self, Report};
use crate::scenario::Scenario;
use crate::sim::{self, RunOptions, RunRecord};

/// Arguments of `faultline run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Seed (default: the scenario's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output folder (default: reports/<scenario name>/seed-<N>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print report.json to stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Run twice and compare trace hashes; on a difference print the first differing line.
    #[arg(long)]
    pub check_determinism: bool,
}

/// Runs a scenario and writes its outputs; returns the exit code.
pub fn run(args: &RunArgs) -> u8 {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return exit::BAD_INPUT;
        }
    };
    let seed = args.seed.unwrap_or(scenario.seed);
    let start = wall_now();
    let record = sim::run(&scenario, seed, &RunOptions::default());
    if let Some(limit) = &record.limit_exceeded {
        eprintln!("{}", over_limit(&args.scenario, limit));
        return exit::BAD_INPUT;
    }
    if args.check_determinism {
        let again = sim::run(&scenario, seed, &RunOptions::default());
        if let Some(message) = first_difference(&record, &again) {
            eprintln!(
                "faultline: NOT DETERMINISTIC: {} seed {seed}\n{message}",
                args.scenario.display()
            );
            return exit::FAIL;
        }
        if !args.json {
            println!(
                "determinism: two runs of seed {seed} gave the same trace_hash {}",
                record.trace_hash
            );
        }
    }
    let checks = run_checks(&record);
    let report = Report::new(&record, checks, &args.scenario, elapsed_ms(start));
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| report::default_out_dir(&scenario, seed));
    let path = match report::write_run(&dir, &report, &record) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "faultline: cannot write the report to {}: {e}",
                dir.display()
            );
            return exit::BAD_INPUT;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialize")
        );
    } else {
        print!("{}", report::summary(&report, Some(&path)));
    }
    verdict_code(report.verdict)
}

/// Describes the first difference between two runs' traces, or `None` if the hashes agree.
pub fn first_difference(a: &RunRecord, b: &RunRecord) -> Option<String> {
    if a.trace_hash == b.trace_hash {
        return None;
    }
    let mut lines_a = a.trace_jsonl.lines();
    let mut lines_b = b.trace_jsonl.lines();
    let mut n = 1usize;
    loop {
        match (lines_a.next(), lines_b.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            (x, y) => {
                return Some(format!(
                    "trace hashes differ ({} vs {}); first differing line {n}:\n  run 1: {}\n  run 2: {}",
                    a.trace_hash,
                    b.trace_hash,
                    x.unwrap_or("<end of trace>"),
                    y.unwrap_or("<end of trace>")
                ));
            }
        }
    }
}

/// Loads, runs and checks a scenario without writing anything (the trace is hashed, not kept):
/// for `faultline test` and tests. A run that stops at an event limit is an error (no verdict).
pub fn run_and_check(
    path: &Path,
    seed: Option<u64>,
) -> Result<(RunRecord, Report), crate::scenario::ScenarioError> {
    let scenario = Scenario::load(path)?;
    let seed = seed.unwrap_or(scenario.seed);
    let start = wall_now();
    let record = sim::run(&scenario, seed, &RunOptions::hash_only());
    if let Some(limit) = &record.limit_exceeded {
        return Err(over_limit(path, limit));
    }
    let checks = run_checks(&record);
    let report = Report::new(&record, checks, path, elapsed_ms(start));
    Ok((record, report))
}

/// The error of a run that stopped at an event limit: the scenario asked for more work than the
/// limits allow (reported like a bad scenario, before any verdict).
fn over_limit(path: &Path, limit: &sim::LimitExceeded) -> crate::scenario::ScenarioError {
    crate::scenario::ScenarioError::at(path, 1, 1, limit.to_string())
}
