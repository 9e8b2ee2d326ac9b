//! `faultline shrink SCENARIO [--seed N] [--check NAME]... [--out FILE] [--max-runs N]
//! [--max-seconds S] [--seed-tries K] [--quiet]`: a smaller scenario that still fails the same
//! checks (the algorithm is `crate::shrink`; the guide is `docs/shrinking.md`).
//!
//! Exit codes: 0 a shrunk scenario was written; 1 the original run does not fail (or not the named
//! checks); 2 bad input, before any run.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::check::checks_for;
use crate::cli::exit;
use crate::cli::run::{exportable, load_or_report, write_scenario_file};
use crate::outcome::run_seed;
use crate::report::{self, verdict_word};
use crate::scenario::limits::MAX_NAME_CHARS;
use crate::scenario::{Expect, Scenario, Verdict, valid_scenario_name};
use crate::shrink::{Budget, Failing, Judge, Judged, RunJudge, Size, shrink};
use crate::sim::RunOptions;
use crate::sim::export::scripted_scenario;
use crate::wall::{elapsed_ms, wall_now};

/// Arguments of `faultline shrink`.
#[derive(Args, Debug)]
pub struct ShrinkArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// The failing seed (default: the scenario's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A check that must keep failing (repeatable). Default: every check that failed in the
    /// original run.
    #[arg(long = "check", value_name = "NAME")]
    pub checks: Vec<String>,
    /// Where to write the shrunk scenario (default: shrunk/<name>-seed-<N>.toml).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Most runs of candidate scenarios (the search is deterministic for a given budget).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_runs: u64,
    /// Most wall-clock seconds of searching (off by default; with it the result depends on the
    /// machine's speed).
    #[arg(long, value_name = "S")]
    pub max_seconds: Option<f64>,
    /// Other seeds (seed + 1, ...) tried for a smaller candidate that no longer fails at the
    /// current seed.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub seed_tries: u64,
    /// Print no progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Where `shrink` writes when `--out` is not given: `shrunk/<name>-seed-<N>.toml`.
pub const DEFAULT_OUT_ROOT: &str = "shrunk";

/// Shrinks a failing scenario; returns the exit code.
pub fn shrink_command(args: &ShrinkArgs) -> u8 {
    let scenario = match load_or_report(&args.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let seed = args.seed.unwrap_or(scenario.seed);
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new(DEFAULT_OUT_ROOT).join(format!("{}-seed-{seed}.toml", scenario.name))
    });
    if let Err(e) = usable(args, &scenario, seed, &out) {
        eprintln!("faultline shrink: {e}");
        return exit::BAD_INPUT;
    }
    let start = wall_now();
    let path = args.scenario.display();
    let original = match run_seed(&scenario, seed, &RunOptions::hash_only()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "faultline shrink: {path} seed {seed} has no verdict ({e}); nothing to shrink"
            );
            return exit::FAIL;
        }
    };
    let failed = failed_checks(&original);
    if failed.is_empty() {
        eprintln!(
            "faultline shrink: {path} does not fail at seed {seed} (verdict {}); nothing to shrink",
            verdict_word(original.verdict())
        );
        return exit::FAIL;
    }
    let checks = if args.checks.is_empty() {
        failed.clone()
    } else {
        args.checks.clone()
    };
    let budget = Budget {
        max_runs: args.max_runs,
        max_seconds: args.max_seconds,
    };
    let mut judge = RunJudge::new(checks.clone(), &args.scenario, budget);
    if !judge.shows(&original) {
        eprintln!(
            "faultline shrink: {path} at seed {seed} does not fail {} (it fails {})",
            checks.join(", "),
            failed.join(", ")
        );
        return exit::FAIL;
    }
    let exported = scripted_scenario(&scenario, &original.record.faults, seed);
    let before = Size::of(&exported);
    let progress = |step: &str, f: &Failing, runs: u64| {
        if !args.quiet {
            eprintln!(
                "shrink: {step}: run {runs}: {}, seed {}",
                Size::of(&f.scenario),
                f.seed
            );
        }
    };
    progress(
        "exported",
        &Failing {
            scenario: exported.clone(),
            seed,
        },
        judge.runs(),
    );
    if judge.judge(&exported, seed) != Judged::Fails {
        eprintln!(
            "faultline shrink: {path} seed {seed}: the run's fault schedule written as [[fault]] \
             entries no longer fails {} (a faultline bug: please report it)",
            checks.join(", ")
        );
        return exit::FAIL;
    }
    let shrunk = shrink(
        Failing {
            scenario: exported,
            seed,
        },
        &mut judge,
        args.seed_tries,
        &mut |step, f, runs| progress(step, f, runs),
    );
    let runs = judge.runs();
    // The file is what gets confirmed: loaded back from its text and run once more.
    let confirmed = judge
        .reload(&shrunk.scenario)
        .and_then(|s| judge.run_unbudgeted(&s, shrunk.seed).map(|c| (s, c)));
    let Some((mut result, checked)) = confirmed.filter(|(_, c)| judge.shows(c)) else {
        eprintln!(
            "faultline shrink: the shrunk scenario did not fail again at seed {} (a faultline \
             bug: please report it)",
            shrunk.seed
        );
        return exit::FAIL;
    };
    let after = Size::of(&result);
    let signature = checked.signature().expect("it failed");
    let evidence = checked
        .checks
        .iter()
        .find(|c| c.name == checks[0])
        .and_then(|c| c.evidence.first())
        .map(|e| {
            e.lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>()
        })
        .unwrap_or_default();
    let name = format!(
        "{}-shrunk",
        scenario
            .name
            .chars()
            .take(MAX_NAME_CHARS - "-shrunk".len())
            .collect::<String>()
    );
    result.name = if valid_scenario_name(&name) {
        name
    } else {
        "shrunk".into()
    };
    result.description = format!("{} shrunk to fail {}", scenario.name, checks.join(", "));
    result.seed = shrunk.seed;
    result.expect = Expect {
        verdict: Verdict::Fail,
        failing_checks: checks.clone(),
    };
    let header = format!(
        "Shrunk by faultline {} (faultline shrink) from {path}, seed {seed}.\n\
         It still shows: {}\n  first evidence: {evidence}\n\
         Before: {before} (the run's fault schedule as scripted faults).\n\
         After:  {after}, at seed {} (`seed` below).\n\
         Search: {runs} runs (budget {}): shortest failing prefix, ddmin over the faults, greedy reductions; see \
         docs/shrinking.md.\n\
         `faultline run` on this file fails {}; `faultline test` expects it to.",
        env!("CARGO_PKG_VERSION"),
        signature.describe(),
        shrunk.seed,
        args.max_runs,
        checks.join(", "),
    );
    if let Err(e) = write_scenario_file(&out, &header, &result) {
        eprintln!("faultline shrink: cannot write {}: {e}", out.display());
        return exit::BAD_INPUT;
    }
    println!(
        "shrunk {path} (seed {seed}) in {runs} runs, {:.1}s:\n  before: {before}\n  after:  {after}, seed {}\n  still fails: {}\nwrote {}\nreproduce: {}",
        elapsed_ms(start) as f64 / 1000.0,
        shrunk.seed,
        signature.describe(),
        out.display(),
        report::reproduce_command(&out, shrunk.seed),
    );
    exit::PASS
}

/// Every problem found before any run: the checks, the output file, the seed, the budget.
fn usable(args: &ShrinkArgs, scenario: &Scenario, seed: u64, out: &Path) -> Result<(), String> {
    let known: Vec<&str> = checks_for(scenario).iter().map(|c| c.name).collect();
    for name in &args.checks {
        if !known.contains(&name.as_str()) {
            return Err(format!(
                "--check {name}: no such check runs in {}; expected one of: {}",
                args.scenario.display(),
                known.join(", ")
            ));
        }
    }
    if let Some(s) = args.max_seconds
        && !(s.is_finite() && s > 0.0)
    {
        return Err(format!(
            "--max-seconds {s}: expected a positive number of seconds"
        ));
    }
    exportable(seed)?;
    report::output::prepare_file(out).map_err(|e| format!("--out: {e}"))
}

/// The names of the checks that failed in a run, in report order.
fn failed_checks(checked: &crate::outcome::Checked) -> Vec<String> {
    checked
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.name.clone())
        .collect()
}
