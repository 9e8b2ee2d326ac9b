//! `faultline sweep SCENARIO... --seeds A..B [--jobs N] [--until-fail|--keep-going]
//! [--shard K/N] [--out DIR] [--json] [--check-determinism] [--max-reports N] [--quiet]` and
//! `faultline sweep merge DIR... [--out DIR] [--json]`: thin layers over [`crate::sweep`]
//! (which documents the results, resuming, shards and summaries); `docs/sweeping.md` is the
//! user's guide.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::exit;
use crate::cli::test::scenario_files_or_exit;
use crate::scenario::Scenario;
use crate::sweep::{
    self, Job, JobSpace, Manifest, Next, Plan, Results, ScenarioEntry, SeedLine, SeedRange,
    SeedVerdict, Shard, Summary,
};
use crate::wall::{elapsed_ms, wall_now};

/// Where a sweep's folder goes when `--out` is not given: `sweeps/<first scenario's name>`
/// (with `-shard-K-of-N` after it for a shard).
pub const DEFAULT_OUT_ROOT: &str = "sweeps";
/// Report folders a sweep writes by default (`--max-reports`): a failing seed's trace can be
/// tens of megabytes. The smallest seed of every signature group gets one in any case.
pub const DEFAULT_MAX_REPORTS: u64 = 20;

/// Arguments of `faultline sweep`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    /// `merge`: merge the results of shards.
    #[command(subcommand)]
    pub command: Option<SweepCommand>,
    /// Scenario files or folders (searched recursively for *.toml).
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Seeds: `A..B` (both ends included) or one seed `N`; at most 10^9 seeds, and at most
    /// 10^9 (scenario, seed) jobs in all.
    #[arg(long, required = true, value_parser = parse_sweep_seeds)]
    pub seeds: Option<SeedRange>,
    /// Worker threads (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
    /// Stop taking new seeds at the first seed that does not pass (seeds under way finish and
    /// are recorded).
    #[arg(long, conflicts_with = "keep_going")]
    pub until_fail: bool,
    /// Run every seed of the range (the default).
    #[arg(long)]
    pub keep_going: bool,
    /// Run only shard K of N of the seeds (1-based; round robin over the range).
    #[arg(long, value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// The sweep's folder (default: sweeps/<first scenario name>[-shard-K-of-N]); running the
    /// same sweep into it again resumes it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the summary as JSON (and no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Run each seed twice on two different workers and compare trace hashes.
    #[arg(long)]
    pub check_determinism: bool,
    /// Most report folders to write for seeds that do not pass (the smallest seed of each
    /// signature group always gets one).
    #[arg(long, default_value_t = DEFAULT_MAX_REPORTS)]
    pub max_reports: u64,
    /// Show no progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Subcommands of `faultline sweep`.
#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// Merge the results of sweeps of the same scenarios (the shards of a sweep) into one
    /// summary.
    Merge(MergeArgs),
}

/// Arguments of `faultline sweep merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The sweeps' folders.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Write summary.json into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses `--seeds` of a sweep (at most [`sweep::MAX_SWEEP_JOBS`] seeds).
pub fn parse_sweep_seeds(text: &str) -> Result<SeedRange, String> {
    sweep::parse_seed_range(text, sweep::MAX_SWEEP_JOBS)
}

/// `faultline sweep ...` as a parser of its own, for checking command lines (the deployment
/// examples in `deploy/` are checked with it).
#[derive(Parser, Debug)]
#[command(name = "faultline")]
pub struct SweepCommandLine {
    #[command(subcommand)]
    command: SweepOnly,
}

#[derive(Subcommand, Debug)]
enum SweepOnly {
    Sweep(SweepArgs),
}

impl SweepCommandLine {
    /// Parses `faultline sweep ARGS...` (the first word is the program's name).
    pub fn parse_words<I, T>(words: I) -> Result<SweepArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        SweepCommandLine::try_parse_from(words).map(|c| match c.command {
            SweepOnly::Sweep(args) => args,
        })
    }
}

/// Runs `faultline sweep` (or `sweep merge`); returns the exit code.
pub fn sweep(args: &SweepArgs) -> u8 {
    if let Some(SweepCommand::Merge(m)) = &args.command {
        return merge(m);
    }
    let seeds = args
        .seeds
        .expect("clap requires --seeds without a subcommand");
    let shard = args.shard.unwrap_or(Shard::WHOLE);
    let files = match scenario_files_or_exit(&args.scenarios) {
        Ok(files) => files,
        Err(code) => return code,
    };
    let Some((scenarios, entries)) = load_scenarios(&files) else {
        return exit::BAD_INPUT;
    };
    let space = JobSpace {
        scenarios: scenarios.len(),
        seeds,
        shard,
    };
    if let Err(e) = sweep::check_size(scenarios.len(), seeds.len()) {
        eprintln!("faultline: {e}");
        return exit::BAD_INPUT;
    }
    if space.is_empty() {
        eprintln!(
            "faultline: shard {}/{} of seeds {}..{} holds no seed",
            shard.index, shard.count, seeds.first, seeds.last
        );
        return exit::BAD_INPUT;
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let mut name = scenarios[0].name.clone();
        if shard != Shard::WHOLE {
            name = format!("{name}-shard-{}-of-{}", shard.index, shard.count);
        }
        Path::new(DEFAULT_OUT_ROOT).join(name)
    });
    let manifest = Manifest::new(entries, seeds, shard);
    let (results, done) = match sweep::open_results(&out, &manifest, &space) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("faultline: {e}");
            return exit::BAD_INPUT;
        }
    };
    let workers = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |n| n as usize,
    );
    let to_run = space.len() - results.already_done;
    if results.already_done > 0 && !args.json {
        eprintln!(
            "resuming {}: {} of {} seeds already done",
            out.display(),
            results.already_done,
            space.len()
        );
    }
    let bar = progress_bar(to_run, args.quiet || args.json);
    let start = wall_now();
    let ran = AtomicU64::new(0);
    let failures = AtomicU64::new(0);
    let reports = AtomicU64::new(0);
    let write_failed = std::sync::Mutex::new(None);
    let record = |job: Job, outcome: sweep::SeedOutcome| {
        let file = &files[job.scenario];
        let (outcome, report) = with_report(
            &results,
            file,
            &scenarios[job.scenario],
            job.seed,
            outcome,
            || reports.fetch_add(1, Ordering::Relaxed) < args.max_reports,
        );
        if outcome.verdict != SeedVerdict::Pass {
            failures.fetch_add(1, Ordering::Relaxed);
        }
        let line = SeedLine::new(&file.display().to_string(), job.seed, outcome, report);
        ran.fetch_add(1, Ordering::Relaxed);
        bar.set_message(format!("{} not passing", failures.load(Ordering::Relaxed)));
        bar.inc(1);
        if let Err(e) = results.append(&line) {
            *write_failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            return Next::Stop;
        }
        Next::Continue
    };
    sweep::execute(
        &Plan {
            scenarios: &scenarios,
            space,
            workers,
            until_fail: args.until_fail,
            check_determinism: args.check_determinism,
            done: Some(&done),
        },
        &record,
    );
    bar.finish_and_clear();
    if let Some(e) = write_failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        eprintln!("faultline: {e}");
        return exit::BAD_INPUT;
    }
    let summary = match finish(&results, &files, &scenarios) {
        Ok(mut s) => {
            let wall = elapsed_ms(start);
            s.wall_time_ms = Some(wall);
            s.seeds_per_s = Some(ran.load(Ordering::Relaxed) as f64 / (wall.max(1) as f64 / 1e3));
            s
        }
        Err(e) => {
            eprintln!("faultline: {e}");
            return exit::BAD_INPUT;
        }
    };
    let mut json = serde_json::to_vec_pretty(&summary).expect("summaries serialize");
    json.push(b'\n');
    if let Err(e) = sweep::write_atomically(results.dir(), sweep::SUMMARY_FILE, &json) {
        eprintln!("faultline: {e}");
        return exit::BAD_INPUT;
    }
    if args.json {
        print!("{}", String::from_utf8_lossy(&json));
    } else {
        print!("{}", summary_text(&summary, Some(results.dir())));
    }
    summary.exit_code()
}

/// Loads every scenario and its manifest entry; on any problem, lists every invalid file (and
/// names two scenarios with the same name) on stderr and returns `None`.
fn load_scenarios(files: &[PathBuf]) -> Option<(Vec<Scenario>, Vec<ScenarioEntry>)> {
    let mut scenarios = Vec::new();
    let mut entries = Vec::new();
    let mut invalid = 0;
    for f in files {
        let loaded = std::fs::read(f)
            .map_err(|e| vec![crate::scenario::ScenarioError::at(f, 1, 1, e.to_string())])
            .and_then(|bytes| Scenario::parse_all(f, &bytes).map(|s| (s, bytes)));
        match loaded {
            Ok((s, bytes)) => {
                let name_ok = crate::report::out_dir(None, Path::new(DEFAULT_OUT_ROOT), &s.name, 0);
                if let Err(e) = name_ok {
                    invalid += 1;
                    eprintln!("INVALID {}: {e}", f.display());
                    continue;
                }
                if let Some(i) = scenarios.iter().position(|o: &Scenario| o.name == s.name) {
                    invalid += 1;
                    eprintln!(
                        "INVALID {}: the scenario name {:?} is also the name of {} (each \
                         scenario of a sweep has its own report folder, named after it)",
                        f.display(),
                        s.name,
                        files[i].display()
                    );
                    continue;
                }
                entries.push(ScenarioEntry::new(f, &s.name, &bytes));
                scenarios.push(s);
            }
            Err(errors) => {
                invalid += 1;
                for e in errors {
                    eprintln!("INVALID {e}");
                }
            }
        }
    }
    if invalid > 0 {
        eprintln!("{invalid} invalid scenario(s): nothing was run");
        return None;
    }
    Some((scenarios, entries))
}

/// A progress bar over `total` seeds on stderr, hidden with `hidden` or when stderr is not a
/// terminal.
fn progress_bar(total: u64, hidden: bool) -> ProgressBar {
    if hidden || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:24.cyan/blue} {pos}/{len} seeds · {msg} · {per_sec} · ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message("0 not passing");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// For a seed that did not pass, writes its report folder if `allowed()` says so; returns the
/// seed's outcome (an `error` if the re-run differed) and the folder, relative to the sweep's.
fn with_report(
    results: &Results,
    file: &Path,
    scenario: &Scenario,
    seed: u64,
    outcome: sweep::SeedOutcome,
    allowed: impl FnOnce() -> bool,
) -> (sweep::SeedOutcome, Option<String>) {
    let wants = matches!(outcome.verdict, SeedVerdict::Fail | SeedVerdict::Unknown);
    if !wants || !allowed() {
        return (outcome, None);
    }
    match sweep::write_seed_report(results.dir(), file, scenario, seed, &outcome.trace_hash) {
        Ok(folder) => (outcome, Some(folder)),
        Err(changed) => (changed, None),
    }
}

/// Summarizes the sweep's folder; first writes the report folder of the smallest seed of every
/// group that has none (past `--max-reports`), recording a re-run that differs as a second line
/// for the seed (the summary then counts it as not deterministic).
fn finish(
    results: &Results,
    files: &[PathBuf],
    scenarios: &[Scenario],
) -> Result<Summary, sweep::SweepError> {
    let dirs = [results.dir().to_path_buf()];
    let manifests = [sweep::read_manifest(results.dir())?];
    let summary = sweep::summarize(&dirs, &manifests)?;
    let mut appended = false;
    for group in &summary.groups {
        let wants = matches!(group.verdict, SeedVerdict::Fail | SeedVerdict::Unknown);
        if !wants || group.report.is_some() {
            continue;
        }
        let Some(i) = files
            .iter()
            .position(|f| f.display().to_string() == group.scenario)
        else {
            continue;
        };
        let first = sweep::run_job(&scenarios[i], group.smallest_seed);
        let (outcome, report) = with_report(
            results,
            &files[i],
            &scenarios[i],
            group.smallest_seed,
            first,
            || true,
        );
        if report.is_none() {
            let line = SeedLine::new(&group.scenario, group.smallest_seed, outcome, None);
            results.append(&line)?;
            appended = true;
        }
    }
    if appended || summary.groups.iter().any(|g| g.report.is_none()) {
        sweep::summarize(&dirs, &manifests)
    } else {
        Ok(summary)
    }
}

/// `faultline sweep merge`.
fn merge(args: &MergeArgs) -> u8 {
    let mut manifests = Vec::new();
    for dir in &args.dirs {
        match sweep::read_manifest(dir) {
            Ok(m) => manifests.push(m),
            Err(e) => {
                eprintln!("faultline: {e}");
                return exit::BAD_INPUT;
            }
        }
    }
    for (dir, m) in args.dirs.iter().zip(&manifests).skip(1) {
        if let Some(why) = manifests[0].mismatch(m, true) {
            eprintln!(
                "faultline: {} is not a shard of the same sweep as {}: {why}",
                dir.display(),
                args.dirs[0].display()
            );
            return exit::BAD_INPUT;
        }
    }
    let summary = match sweep::summarize(&args.dirs, &manifests) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("faultline: {e}");
            return exit::BAD_INPUT;
        }
    };
    let mut json = serde_json::to_vec_pretty(&summary).expect("summaries serialize");
    json.push(b'\n');
    if let Some(out) = &args.out {
        let written = std::fs::create_dir_all(out)
            .map_err(|e| format!("cannot create the folder {}: {e}", out.display()))
            .and_then(|()| {
                sweep::write_atomically(out, sweep::SUMMARY_FILE, &json).map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            eprintln!("faultline: {e}");
            return exit::BAD_INPUT;
        }
    }
    if args.json {
        print!("{}", String::from_utf8_lossy(&json));
    } else {
        print!("{}", summary_text(&summary, args.out.as_deref()));
    }
    summary.exit_code()
}

/// The summary for people.
fn summary_text(s: &Summary, dir: Option<&Path>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let counts = |c: &sweep::ScenarioCounts| {
        format!(
            "{} pass, {} fail, {} unknown, {} error",
            c.pass, c.fail, c.unknown, c.error
        )
    };
    let shards = if s.shards.is_empty() {
        String::new()
    } else {
        format!(" (shards {})", s.shards.join(", "))
    };
    let _ = writeln!(
        out,
        "sweep of seeds {}..{}{shards}: {} seeds: {}",
        s.seeds.first,
        s.seeds.last,
        s.total.seeds(),
        counts(&s.total)
    );
    for c in &s.scenarios {
        let _ = writeln!(out, "  {}: {}", c.file, counts(c));
    }
    if !s.groups.is_empty() {
        let _ = writeln!(out, "seeds that did not pass, by signature:");
    }
    for g in &s.groups {
        let _ = writeln!(out, "  {:>6} × {}  [{}]", g.count, g.signature, g.scenario);
        let folder = g.report.as_deref().unwrap_or("(no report folder)");
        let _ = writeln!(out, "         smallest seed {}: {folder}", g.smallest_seed);
        let _ = writeln!(out, "         reproduce: {}", g.reproduce);
    }
    for n in &s.nondeterministic {
        let _ = writeln!(
            out,
            "NOT DETERMINISTIC: {} seed {}: trace hashes {}",
            n.scenario,
            n.seed,
            n.trace_hashes.join(", ")
        );
    }
    if let (Some(wall), Some(rate)) = (s.wall_time_ms, s.seeds_per_s) {
        let _ = writeln!(
            out,
            "this run: {:.1} s wall, {rate:.1} seeds/s",
            wall as f64 / 1e3
        );
    }
    if let Some(dir) = dir {
        let _ = writeln!(
            out,
            "results: {}  summary: {}",
            dir.join(sweep::RESULTS_FILE).display(),
            dir.join(sweep::SUMMARY_FILE).display()
        );
    }
    out
}
