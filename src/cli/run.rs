//! `faultline run SCENARIO [--seed N] [--out DIR] [--json] [--check-determinism] [--no-trace]
//! [--trace-limit-bytes N] [--export-faults FILE] [--quiet]`.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::check::run_checks;
use crate::cli::progress::ProgressLine;
use crate::cli::{exit, verdict_code};
use crate::report::{self, Report, Staging};
use crate::scenario::Scenario;
use crate::sim::{self, RunOptions, RunRecord};
use crate::wall::{elapsed_ms, wall_now};

/// Arguments of `faultline run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Seed (default: the scenario's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output folder, replaced as a whole (default: reports/<scenario name>/seed-<N>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print report.json to stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Run twice and compare trace hashes; on a difference print the first differing line.
    #[arg(long)]
    pub check_determinism: bool,
    /// Write no trace.jsonl (the trace is still hashed): for seed sweeps.
    #[arg(long)]
    pub no_trace: bool,
    /// Show no progress line (it appears on a terminal once a run takes about a second).
    #[arg(long, short)]
    pub quiet: bool,
    /// Largest trace.jsonl to write, in bytes; later lines are hashed, not written, and the
    /// file ends with a `trace-truncated` line. Default: no limit (the trace is streamed to the
    /// file as the run goes, so its size costs disk, not memory).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub trace_limit_bytes: Option<u64>,
    /// Also write the run's fault schedule (the nemesis's draws and the scripted faults) as a
    /// runnable scenario: this one with every planned fault as a `[[fault]]` entry, no
    /// `[nemesis]`, and `seed` set to this run's seed.
    #[arg(long, value_name = "FILE")]
    pub export_faults: Option<PathBuf>,
}

/// Where `run` puts its folder when `--out` is not given: `reports/<name>/seed-<N>`.
pub const DEFAULT_OUT_ROOT: &str = "reports";

/// Runs a scenario and writes its outputs; returns the exit code. Every problem with the
/// scenario or the output folder is reported (exit 2) before the simulation starts.
pub fn run(args: &RunArgs) -> u8 {
    let scenario = match load_or_report(&args.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let seed = args.seed.unwrap_or(scenario.seed);
    if let Some(file) = &args.export_faults
        && let Err(e) = exportable(seed).and_then(|()| report::output::prepare_file(file))
    {
        eprintln!("faultline: --export-faults: {e}");
        return exit::BAD_INPUT;
    }
    let staging = match report::out_dir(
        args.out.as_deref(),
        Path::new(DEFAULT_OUT_ROOT),
        &scenario.name,
        seed,
    )
    .and_then(|dir| Staging::prepare(&dir))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", args.scenario.display());
            return exit::BAD_INPUT;
        }
    };
    let (progress, counters) = ProgressLine::start(args.quiet || args.json);
    // The report's view is built from the trace while the simulation runs (on the second core).
    let (live, tap) = if args.no_trace {
        (None, None)
    } else {
        let topology = crate::sim::topology::Topology::new(&scenario);
        let cast = crate::family::CastMember::cast(&scenario, &topology);
        let (live, tap) = report::view::LiveView::start(
            &scenario.registry(),
            &cast,
            scenario.duration.as_nanos(),
        );
        (Some(live), Some(tap))
    };
    let options = RunOptions {
        trace_limit_bytes: if args.no_trace {
            0
        } else {
            args.trace_limit_bytes
                .map_or(usize::MAX, |b| usize::try_from(b).unwrap_or(usize::MAX))
        },
        trace_file: Some(staging.file_path("trace.jsonl")),
        progress: counters,
        trace_tap: tap,
        ..RunOptions::default()
    };
    let start = wall_now();
    let record = sim::run(&scenario, seed, &options);
    super::return_freed_memory_promptly();
    if let Some(limit) = &record.limit_exceeded {
        eprintln!("{}", over_limit(&args.scenario, limit));
        return exit::BAD_INPUT;
    }
    if args.check_determinism {
        let again = sim::run(
            &scenario,
            seed,
            &RunOptions {
                trace_file: Some(staging.scratch_path("trace-again.jsonl")),
                trace_tap: None,
                ..options.clone()
            },
        );
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
    let mut report = Report::new(&record, checks, &args.scenario, elapsed_ms(start));
    if args.no_trace {
        report = report.without_trace();
    }
    let target = staging.target().to_path_buf();
    let written = report::write_run(staging, &report, &record, !args.no_trace, live);
    progress.stop();
    let path = match written {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "faultline: cannot write the report to {}: {e}",
                target.display()
            );
            return exit::BAD_INPUT;
        }
    };
    if let Some(file) = &args.export_faults {
        let scripted = crate::sim::export::scripted_scenario(&scenario, &record.faults, seed);
        let header = format!(
            "Exported by faultline {} (faultline run --export-faults) from {}, seed {seed}.\n\
             That run's verdict: {}. Its {} planned faults (nemesis draws included) are the \
             [[fault]] entries below,\nso `faultline run` on this file replays the same fault \
             schedule.",
            env!("CARGO_PKG_VERSION"),
            args.scenario.display(),
            report::verdict_word(report.verdict),
            record.faults.len(),
        );
        if let Err(e) = write_scenario_file(file, &header, &scripted) {
            eprintln!(
                "faultline: --export-faults: cannot write {}: {e}",
                file.display()
            );
            return exit::BAD_INPUT;
        }
    }
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

/// Loads a scenario, or prints every problem in it (`file:line:col: ...`) and gives the exit code
/// of bad input.
pub(crate) fn load_or_report(path: &Path) -> Result<Scenario, u8> {
    Scenario::load_all(path).map_err(|errors| {
        for e in errors {
            eprintln!("{e}");
        }
        exit::BAD_INPUT
    })
}

/// Seeds above `i64::MAX` have no TOML form, so no scenario file can hold them.
pub(crate) fn exportable(seed: u64) -> Result<(), String> {
    if i64::try_from(seed).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "seed {seed} cannot be written in a scenario file (TOML integers end at {})",
            i64::MAX
        ))
    }
}

/// Writes `scenario` as a scenario file (atomically) under `header` (lines of text, each written
/// as a `# ` comment).
pub(crate) fn write_scenario_file(
    path: &Path,
    header: &str,
    scenario: &Scenario,
) -> Result<(), String> {
    let body = scenario.to_toml_text().map_err(|e| e.to_string())?;
    let mut text = String::new();
    for line in header.lines() {
        text.push_str(format!("# {line}").trim_end());
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&body);
    report::output::write_file_atomically(path, &text).map_err(|e| e.to_string())
}

/// Describes the first difference between two runs' traces, or `None` if the hashes agree.
pub fn first_difference(a: &RunRecord, b: &RunRecord) -> Option<String> {
    if a.trace_hash == b.trace_hash {
        return None;
    }
    if a.trace_jsonl.is_empty() && b.trace_jsonl.is_empty() {
        return Some(format!(
            "trace hashes differ ({} vs {}); no trace was kept (run without --no-trace to see \
             the first differing line)",
            a.trace_hash, b.trace_hash
        ));
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
                    x.as_deref().unwrap_or("<end of trace>"),
                    y.as_deref().unwrap_or("<end of trace>")
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
    let report = Report::new(&record, checks, path, elapsed_ms(start)).without_trace();
    Ok((record, report))
}

/// The error of a run that stopped at an event limit: the scenario asked for more work than the
/// limits allow (reported like a bad scenario, before any verdict).
fn over_limit(path: &Path, limit: &sim::LimitExceeded) -> crate::scenario::ScenarioError {
    crate::scenario::ScenarioError::at(path, 1, 1, limit.to_string())
}
