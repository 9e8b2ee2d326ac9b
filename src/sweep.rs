//! Seed sweeps: many scenarios at many seeds on every core, recorded in a results file that an
//! interrupted sweep resumes from, sliced into shards for other machines and merged back.
//! `faultline sweep` (`src/cli/sweep.rs`) is a thin layer over this module; `docs/sweeping.md`
//! is the user's guide.
//!
//! - A sweep's *jobs* are (scenario, seed) pairs: every scenario at every seed of a shard of an
//!   inclusive seed range ([`JobSpace`]), numbered so that job `i` is scenario `i % S` at the
//!   `i / S`-th seed of the shard. At most [`MAX_SWEEP_JOBS`] jobs per sweep; the memory a
//!   sweep holds is bounded by that count (one bit per job for the seeds already done), never
//!   one record per job.
//! - [`execute`] runs the jobs on worker threads (one madsim runtime per run on its worker's
//!   thread), each seed with [`outcome::run_seed`] keeping no trace, so a panic or an event
//!   limit is that seed's result ([`SeedVerdict::Error`]).
//! - Results stream to `sweep.jsonl` ([`RESULTS_FILE`]), one [`SeedLine`] per job in completion
//!   order, beside a manifest `sweep.json` ([`MANIFEST_FILE`], a [`Manifest`]) naming the
//!   faultline version, the scenarios (with a hash of each file's bytes), the seeds and the shard.
//!   [`open_results`] resumes a folder of the same sweep, skipping every job already recorded.
//! - [`summarize`] reads the results of one folder (or of the shards of a sweep) into a
//!   [`Summary`]: counts per scenario, failures grouped by signature with the smallest seed of
//!   each group. It is an order-independent aggregation (counts and minima), so it does not
//!   depend on the order the lines were written in, nor on how the seeds were split into shards.

use std::fs::{self, File};
use std::io::{self, BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::check::signature::{Signature, evidence_kind};
use crate::outcome::{self, Checked, SeedError};
use crate::report::{self, Report, Staging};
use crate::scenario::{Scenario, Verdict};
use crate::sim::RunOptions;
use crate::wall::{elapsed_ms, wall_now};

/// Most jobs (scenarios × seeds of the shard) one sweep may name: a resumed sweep holds one bit
/// per job (at most 125 MB), a summary two.
pub const MAX_SWEEP_JOBS: u64 = 1_000_000_000;
/// The results file in a sweep's folder: one [`SeedLine`] per line.
pub const RESULTS_FILE: &str = "sweep.jsonl";
/// The manifest in a sweep's folder: a [`Manifest`].
pub const MANIFEST_FILE: &str = "sweep.json";
/// The summary in a sweep's folder: a [`Summary`], rewritten at the end of every sweep.
pub const SUMMARY_FILE: &str = "summary.json";
/// The lock file in a sweep's folder, locked while a sweep writes there.
pub const LOCK_FILE: &str = ".lock";

/// An inclusive range of seeds, `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    /// First seed.
    pub first: u64,
    /// Last seed (included).
    pub last: u64,
}

impl SeedRange {
    /// The seeds, in order.
    pub fn iter(self) -> std::ops::RangeInclusive<u64> {
        self.first..=self.last
    }

    /// How many seeds the range holds (saturating at `u64::MAX` for `0..u64::MAX`).
    pub fn len(self) -> u64 {
        (self.last - self.first).saturating_add(1)
    }

    /// Never true (a range holds at least one seed); for clippy's `len_without_is_empty`.
    pub fn is_empty(self) -> bool {
        false
    }

    /// The smallest range holding both.
    pub fn hull(self, other: SeedRange) -> SeedRange {
        SeedRange {
            first: self.first.min(other.first),
            last: self.last.max(other.last),
        }
    }
}

/// Parses a seed range: `A..B` or `A..=B` (both include `B`), or a single seed `N`, naming at
/// most `max` seeds. Errors say what was expected.
pub fn parse_seed_range(text: &str, max: u64) -> Result<SeedRange, String> {
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("expected a seed range like 1..20 or a seed, found {text:?}"))
    };
    let (first, last) = match text.split_once("..") {
        Some((a, b)) => (number(a)?, number(b.strip_prefix('=').unwrap_or(b))?),
        None => {
            let n = number(text)?;
            (n, n)
        }
    };
    if last < first {
        return Err(format!(
            "expected the first seed at most the last, found {text:?}"
        ));
    }
    if last - first >= max {
        return Err(format!("expected at most {max} seeds, found {text:?}"));
    }
    Ok(SeedRange { first, last })
}

/// A deterministic slice of a seed range: shard `index` of `count` (1-based, as
/// `cargo nextest --partition count:K/N`) holds the seeds whose position in the range, counted
/// from 0, is `index - 1` modulo `count` (round robin), so every shard gets about as many seeds
/// and the shards together hold each seed once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, from 1.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

impl Shard {
    /// The whole range, as one shard.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Parses `K/N` with `1 <= K <= N`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let expected =
            || format!("expected a shard K/N with 1 <= K <= N, like 2/8, found {text:?}");
        let (k, n) = text.split_once('/').ok_or_else(expected)?;
        let (index, count) = (
            k.trim().parse::<u64>().map_err(|_| expected())?,
            n.trim().parse::<u64>().map_err(|_| expected())?,
        );
        if index == 0 || index > count {
            return Err(expected());
        }
        Ok(Shard { index, count })
    }

    /// How many seeds of `seeds` this shard holds.
    pub fn len(self, seeds: SeedRange) -> u64 {
        seeds
            .len()
            .saturating_sub(self.index - 1)
            .div_ceil(self.count)
    }

    /// Never true for a shard of a range with at least `count` seeds; for clippy.
    pub fn is_empty(self, seeds: SeedRange) -> bool {
        self.len(seeds) == 0
    }

    /// The `i`-th seed of this shard of `seeds` (`i < self.len(seeds)`).
    pub fn seed(self, seeds: SeedRange, i: u64) -> u64 {
        seeds.first + i * self.count + (self.index - 1)
    }

    /// The position of `seed` among this shard's seeds of `seeds`, if it is one of them.
    pub fn position(self, seeds: SeedRange, seed: u64) -> Option<u64> {
        if seed < seeds.first || seed > seeds.last {
            return None;
        }
        let offset = seed - seeds.first;
        (offset % self.count == self.index - 1).then_some(offset / self.count)
    }

    /// `K/N`, or `None` for the whole range.
    pub fn describe(self) -> Option<String> {
        (self != Shard::WHOLE).then(|| format!("{}/{}", self.index, self.count))
    }
}

/// One job: a scenario (its index in the sweep's list) at a seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Job {
    /// Index of the scenario in the sweep's list.
    pub scenario: usize,
    /// The seed.
    pub seed: u64,
}

/// The jobs of a sweep: every scenario at every seed of a shard of a range. Job `i` is scenario
/// `i % scenarios` at the shard's `i / scenarios`-th seed, so the scenarios advance together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobSpace {
    /// How many scenarios (at least 1).
    pub scenarios: usize,
    /// The seed range.
    pub seeds: SeedRange,
    /// The shard of the range.
    pub shard: Shard,
}

impl JobSpace {
    /// How many jobs.
    pub fn len(&self) -> u64 {
        (self.scenarios as u64).saturating_mul(self.shard.len(self.seeds))
    }

    /// True if there is no job (a shard beyond the range's seeds).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Job number `i` (`i < self.len()`).
    pub fn job(&self, i: u64) -> Job {
        let s = self.scenarios as u64;
        Job {
            scenario: (i % s) as usize,
            seed: self.shard.seed(self.seeds, i / s),
        }
    }

    /// The number of `job`, if it is one of this space's.
    pub fn index(&self, job: Job) -> Option<u64> {
        if job.scenario >= self.scenarios {
            return None;
        }
        let position = self.shard.position(self.seeds, job.seed)?;
        Some(position * self.scenarios as u64 + job.scenario as u64)
    }
}

/// A set of numbers below a bound, one bit each.
#[derive(Clone, Debug, Default)]
pub struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    /// An empty set of numbers below `bound`.
    pub fn new(bound: u64) -> BitSet {
        BitSet {
            words: vec![0; bound.div_ceil(64) as usize],
        }
    }

    /// Adds `i`; returns false if it was already there.
    pub fn insert(&mut self, i: u64) -> bool {
        let (word, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        let new = self.words[word] & bit == 0;
        self.words[word] |= bit;
        new
    }

    /// Whether `i` is in the set (false for numbers beyond the bound).
    pub fn contains(&self, i: u64) -> bool {
        self.words
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }
}

/// A seed's result in a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedVerdict {
    /// Every check passed.
    Pass,
    /// A check failed.
    Fail,
    /// A check could not decide, and none failed.
    Unknown,
    /// No verdict: the run panicked, stopped at an event limit, or was not deterministic.
    Error,
}

impl SeedVerdict {
    /// `pass`, `fail`, `unknown` or `error`.
    pub fn word(self) -> &'static str {
        match self {
            SeedVerdict::Pass => "pass",
            SeedVerdict::Fail => "fail",
            SeedVerdict::Unknown => "unknown",
            SeedVerdict::Error => "error",
        }
    }
}

impl From<Verdict> for SeedVerdict {
    fn from(v: Verdict) -> SeedVerdict {
        match v {
            Verdict::Pass => SeedVerdict::Pass,
            Verdict::Fail => SeedVerdict::Fail,
            Verdict::Unknown => SeedVerdict::Unknown,
        }
    }
}

/// What one run of a seed gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedOutcome {
    /// The verdict.
    pub verdict: SeedVerdict,
    /// The checks of the signature: failing ones for `fail`, undecided ones for `unknown`;
    /// empty otherwise.
    pub failing_checks: Vec<String>,
    /// The signature's evidence kind (`check::signature`); for an `error`, the kind of the error
    /// message; empty for a `pass`.
    pub evidence_kind: String,
    /// The run's trace hash; empty if the run did not end (a panic or an event limit).
    pub trace_hash: String,
    /// Wall time of the run and its checks, in milliseconds. Not deterministic.
    pub wall_ms: u64,
    /// Why there is no verdict (for an `error`).
    pub error: Option<String>,
}

impl SeedOutcome {
    /// The outcome of a checked run (or of its error), which took `wall_ms`.
    pub fn of(result: &Result<Checked, SeedError>, wall_ms: u64) -> SeedOutcome {
        match result {
            Ok(checked) => {
                let signature = checked.signature();
                SeedOutcome {
                    verdict: checked.verdict().into(),
                    failing_checks: signature
                        .as_ref()
                        .map_or_else(Vec::new, |s| s.checks.clone()),
                    evidence_kind: signature.map_or_else(String::new, |s| s.evidence_kind),
                    trace_hash: checked.record.trace_hash.clone(),
                    wall_ms,
                    error: None,
                }
            }
            Err(e) => SeedOutcome::error(e.to_string(), String::new(), wall_ms),
        }
    }

    /// An `error` outcome saying `message`.
    pub fn error(message: String, trace_hash: String, wall_ms: u64) -> SeedOutcome {
        SeedOutcome {
            verdict: SeedVerdict::Error,
            failing_checks: Vec::new(),
            evidence_kind: evidence_kind(&message),
            trace_hash,
            wall_ms,
            error: Some(message),
        }
    }

    /// The `error` outcome of a seed whose two runs gave different trace hashes.
    pub fn not_deterministic(first: &str, second: &str, how: &str, wall_ms: u64) -> SeedOutcome {
        SeedOutcome::error(
            format!("not deterministic: {how} gave trace hashes {first} and {second}"),
            first.to_string(),
            wall_ms,
        )
    }
}

/// Runs `scenario` at `seed` keeping no trace, and judges it.
pub fn run_job(scenario: &Scenario, seed: u64) -> SeedOutcome {
    let start = wall_now();
    let result = outcome::run_seed(scenario, seed, &RunOptions::hash_only());
    SeedOutcome::of(&result, elapsed_ms(start))
}

/// How to run a sweep's jobs.
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    /// The scenarios, in the sweep's order.
    pub scenarios: &'a [Scenario],
    /// The jobs.
    pub space: JobSpace,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Stop taking new jobs once one does not pass (jobs under way finish and are recorded).
    pub until_fail: bool,
    /// Run each job twice, on two different workers when there are two or more (on the one
    /// worker otherwise), and make a difference in trace hash the job's result (an `error`).
    pub check_determinism: bool,
    /// Jobs (numbers in `space`) to skip: already recorded.
    pub done: Option<&'a BitSet>,
}

/// What the recorder of [`execute`] tells the workers after a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Go on.
    Continue,
    /// Take no new job (e.g. the results can no longer be written).
    Stop,
}

/// Runs the jobs of `plan` and hands each job's outcome to `record`, on the worker that ran it,
/// in completion order. Workers take jobs in their numbered order from a shared counter (with
/// `check_determinism`: worker `w` of `N` runs the first run of every job `i` with
/// `i % N == w` and the second run of every job with `(i + 1) % N == w`, so the two runs of a
/// job are on different workers whenever `N >= 2`). While it runs, the process's panic hook is
/// replaced by a silent one (a panic is the seed's result, said in its outcome); the previous
/// hook is restored at the end.
pub fn execute(plan: &Plan<'_>, record: &(dyn Fn(Job, SeedOutcome) -> Next + Sync)) {
    let _hook = SilentPanics::install();
    let stop = AtomicBool::new(false);
    let workers = plan.workers.max(1);
    let total = plan.space.len();
    let skip = |i: u64| plan.done.is_some_and(|d| d.contains(i));
    let finish = |job: Job, outcome: SeedOutcome| {
        let failed = outcome.verdict != SeedVerdict::Pass;
        if record(job, outcome) == Next::Stop || (failed && plan.until_fail) {
            stop.store(true, Ordering::Relaxed);
        }
    };
    if plan.check_determinism {
        let halves: Mutex<std::collections::BTreeMap<u64, SeedOutcome>> = Mutex::default();
        std::thread::scope(|s| {
            for w in 0..workers as u64 {
                let (halves, finish, stop) = (&halves, &finish, &stop);
                s.spawn(move || {
                    let n = workers as u64;
                    for i in 0..total {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let copies = u64::from(i % n == w) + u64::from((i + 1) % n == w);
                        if copies == 0 || skip(i) {
                            continue;
                        }
                        let job = plan.space.job(i);
                        for _ in 0..copies {
                            let outcome = run_job(&plan.scenarios[job.scenario], job.seed);
                            let other = {
                                let mut halves = halves.lock().expect("no worker panics");
                                match halves.remove(&i) {
                                    Some(other) => Some(other),
                                    None => {
                                        halves.insert(i, outcome.clone());
                                        None
                                    }
                                }
                            };
                            if let Some(other) = other {
                                finish(job, compare_runs(other, outcome));
                            }
                        }
                    }
                });
            }
        });
    } else {
        let next = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        if skip(i) {
                            continue;
                        }
                        let job = plan.space.job(i);
                        finish(job, run_job(&plan.scenarios[job.scenario], job.seed));
                    }
                });
            }
        });
    }
}

/// The result of a job run twice: the first run's, or an `error` if the two differ.
fn compare_runs(first: SeedOutcome, second: SeedOutcome) -> SeedOutcome {
    if first.trace_hash == second.trace_hash && first.verdict == second.verdict {
        return first;
    }
    let hash = |o: &SeedOutcome| {
        if o.trace_hash.is_empty() {
            format!("<none: {}>", o.error.as_deref().unwrap_or("no hash"))
        } else {
            o.trace_hash.clone()
        }
    };
    SeedOutcome::not_deterministic(
        &hash(&first),
        &hash(&second),
        "two runs on two workers",
        first.wall_ms + second.wall_ms,
    )
}

/// A panic hook, as `std::panic::take_hook` returns it.
type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Replaces the panic hook with a silent one while it lives.
struct SilentPanics {
    previous: Option<PanicHook>,
}

impl SilentPanics {
    fn install() -> SilentPanics {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        SilentPanics {
            previous: Some(previous),
        }
    }
}

impl Drop for SilentPanics {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            std::panic::set_hook(previous);
        }
    }
}

/// One line of `sweep.jsonl`: one job's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedLine {
    /// The scenario file as given on the command line (as in the manifest).
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// `pass`, `fail`, `unknown` or `error`.
    pub verdict: SeedVerdict,
    /// The checks of the failure's signature (see [`SeedOutcome::failing_checks`]).
    pub failing_checks: Vec<String>,
    /// The signature's evidence kind (see [`SeedOutcome::evidence_kind`]).
    pub evidence_kind: String,
    /// The run's trace hash (hex XXH3-128; empty if the run did not end).
    pub trace_hash: String,
    /// Wall time of the run, in milliseconds (not deterministic).
    pub wall_ms: u64,
    /// Why there is no verdict (for an `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The seed's report folder, relative to the sweep's folder, if one was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl SeedLine {
    /// The line of `outcome` for the scenario file `scenario` at `seed`.
    pub fn new(scenario: &str, seed: u64, outcome: SeedOutcome, report: Option<String>) -> Self {
        SeedLine {
            scenario: scenario.to_string(),
            seed,
            verdict: outcome.verdict,
            failing_checks: outcome.failing_checks,
            evidence_kind: outcome.evidence_kind,
            trace_hash: outcome.trace_hash,
            wall_ms: outcome.wall_ms,
            error: outcome.error,
            report,
        }
    }
}

/// One scenario of a sweep, in its manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioEntry {
    /// The file as given on the command line.
    pub file: String,
    /// The scenario's name.
    pub name: String,
    /// Hex XXH3-128 of the file's bytes.
    pub content_hash: String,
}

impl ScenarioEntry {
    /// The entry of the scenario file `file` whose bytes are `bytes` and name is `name`.
    pub fn new(file: &Path, name: &str, bytes: &[u8]) -> ScenarioEntry {
        ScenarioEntry {
            file: file.display().to_string(),
            name: name.to_string(),
            content_hash: format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes)),
        }
    }
}

/// `sweep.json`: what a sweep's folder holds the results of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The faultline version that ran the seeds (runs of other versions may differ).
    pub faultline_version: String,
    /// The scenarios, in the sweep's order.
    pub scenarios: Vec<ScenarioEntry>,
    /// The seeds: the range of the command, or (after a resumed sweep named another range) the
    /// smallest range holding every range run into this folder.
    pub seeds: SeedRange,
    /// The shard of the range this folder holds.
    pub shard: Shard,
}

impl Manifest {
    /// The manifest of a sweep of `scenarios` over `seeds` (shard `shard`) by this faultline.
    pub fn new(scenarios: Vec<ScenarioEntry>, seeds: SeedRange, shard: Shard) -> Manifest {
        Manifest {
            faultline_version: env!("CARGO_PKG_VERSION").to_string(),
            scenarios,
            seeds,
            shard,
        }
    }

    /// Why `other` is not a run of the same sweep (another version, other scenarios or their
    /// contents, another shard), or `None`. The seed ranges may differ.
    pub fn mismatch(&self, other: &Manifest, shards_may_differ: bool) -> Option<String> {
        if self.faultline_version != other.faultline_version {
            return Some(format!(
                "it was made by faultline {}, this is {}",
                other.faultline_version, self.faultline_version
            ));
        }
        if self.scenarios != other.scenarios {
            let list = |m: &Manifest| {
                m.scenarios
                    .iter()
                    .map(|s| {
                        format!(
                            "{} ({})",
                            s.file,
                            &s.content_hash[..s.content_hash.len().min(8)]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Some(format!(
                "it holds scenarios [{}], not [{}] (files and contents must be the same)",
                list(other),
                list(self)
            ));
        }
        if !shards_may_differ && self.shard != other.shard {
            let word = |s: Shard| s.describe().unwrap_or_else(|| "all seeds".into());
            return Some(format!(
                "it holds shard {}, not {}",
                word(other.shard),
                word(self.shard)
            ));
        }
        None
    }
}

/// Why a sweep's folder cannot be used or read.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A file-system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The folder exists and holds something other than a sweep.
    #[error(
        "the sweep folder {path} is not a faultline sweep folder ({why}); choose another --out \
         or remove it"
    )]
    NotASweepFolder {
        /// The folder.
        path: String,
        /// What is in the way.
        why: String,
    },
    /// The folder holds another sweep.
    #[error(
        "the sweep folder {path} holds a different sweep ({why}); choose another --out, or \
         remove it to start again"
    )]
    DifferentSweep {
        /// The folder.
        path: String,
        /// How it differs.
        why: String,
    },
    /// A line of a results file or a manifest cannot be read.
    #[error("{path}:{line}: {why}")]
    BadFile {
        /// The file.
        path: String,
        /// The line (1-based).
        line: u64,
        /// What was expected.
        why: String,
    },
    /// Another sweep is writing into the folder.
    #[error("the sweep folder {path} is in use by another faultline sweep")]
    Busy {
        /// The folder.
        path: String,
    },
    /// Too many jobs.
    #[error(
        "{scenarios} scenario(s) × {seeds} seed(s) is more than {MAX_SWEEP_JOBS} jobs in one sweep"
    )]
    TooManyJobs {
        /// Scenarios.
        scenarios: u64,
        /// Seeds.
        seeds: u64,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SweepError {
    let path = path.display().to_string();
    move |source| SweepError::Io {
        action,
        path,
        source,
    }
}

/// Checks that a sweep of `scenarios` scenarios over `seeds` seeds is within [`MAX_SWEEP_JOBS`].
pub fn check_size(scenarios: usize, seeds: u64) -> Result<(), SweepError> {
    if (scenarios as u64).saturating_mul(seeds) > MAX_SWEEP_JOBS {
        return Err(SweepError::TooManyJobs {
            scenarios: scenarios as u64,
            seeds,
        });
    }
    Ok(())
}

/// Reads a folder's manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest, SweepError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = fs::read(&path).map_err(io_error("read", &path))?;
    serde_json::from_slice(&bytes).map_err(|e| SweepError::BadFile {
        path: path.display().to_string(),
        line: e.line() as u64,
        why: format!("not a sweep manifest: {e}"),
    })
}

/// Writes `bytes` to `dir/name` atomically (a temporary file in `dir`, renamed).
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SweepError> {
    let path = dir.join(name);
    let mut file = tempfile::Builder::new()
        .prefix(".faultline-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_error("create a temporary file in", dir))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(io_error("write", &path))?;
    file.persist(&path)
        .map_err(|e| io_error("write", &path)(e.error))?;
    Ok(())
}

/// A sweep's folder open for writing: the results file (appended to, one line per write) and
/// the folder's lock, held while this lives.
#[derive(Debug)]
pub struct Results {
    dir: PathBuf,
    file: Mutex<File>,
    _lock: File,
    /// How many jobs of the sweep's [`JobSpace`] the file already held when it was opened.
    pub already_done: u64,
}

impl Results {
    /// The sweep's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `line` with one write (the line and its newline).
    pub fn append(&self, line: &SeedLine) -> Result<(), SweepError> {
        let mut bytes = serde_json::to_vec(line).expect("seed lines serialize");
        bytes.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(&bytes)
            .and_then(|()| file.flush())
            .map_err(io_error("write", &self.dir.join(RESULTS_FILE)))
    }
}

/// Opens (making it if needed) the folder `dir` for the sweep `manifest` over `space`, and
/// returns it with the set of jobs of `space` already recorded there (to skip).
///
/// - A missing or empty folder is made a sweep folder: the manifest is written (atomically).
/// - A folder with a manifest of the same sweep ([`Manifest::mismatch`]) is resumed: its
///   `sweep.jsonl` is read, a last line without its newline (a write cut short by a kill) is
///   dropped, the file truncated after the last whole line. If the seed range differs, the
///   manifest's range becomes the smallest range holding both.
///
/// Errors (all before any run): [`SweepError::NotASweepFolder`] (a file, or a folder holding
/// other things), [`SweepError::DifferentSweep`], [`SweepError::Busy`] (another sweep writes
/// there), [`SweepError::BadFile`] (a line that is not a seed line, or names a scenario not in
/// the manifest), [`SweepError::TooManyJobs`] (the widened range), [`SweepError::Io`].
pub fn open_results(
    dir: &Path,
    manifest: &Manifest,
    space: &JobSpace,
) -> Result<(Results, BitSet), SweepError> {
    let not_ours = |why: String| SweepError::NotASweepFolder {
        path: dir.display().to_string(),
        why,
    };
    match fs::symlink_metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(not_ours("it is not a folder".into())),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io_error("create the folder", dir))?;
        }
        Err(e) => return Err(io_error("inspect", dir)(e)),
    }
    let lock_path = dir.join(LOCK_FILE);
    let has_manifest = dir.join(MANIFEST_FILE).exists();
    if !has_manifest {
        let first = fs::read_dir(dir)
            .map_err(io_error("list", dir))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n != LOCK_FILE);
        if let Some(name) = first {
            return Err(not_ours(format!(
                "it holds {name:?} and no {MANIFEST_FILE}"
            )));
        }
    }
    let lock = File::create(&lock_path).map_err(io_error("create", &lock_path))?;
    if lock.try_lock().is_err() {
        return Err(SweepError::Busy {
            path: dir.display().to_string(),
        });
    }
    let mut manifest = manifest.clone();
    if has_manifest {
        let old = read_manifest(dir)?;
        if let Some(why) = manifest.mismatch(&old, false) {
            return Err(SweepError::DifferentSweep {
                path: dir.display().to_string(),
                why,
            });
        }
        manifest.seeds = old.seeds.hull(manifest.seeds);
        check_size(manifest.scenarios.len(), manifest.seeds.len())?;
    }
    let mut json = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
    json.push(b'\n');
    write_atomically(dir, MANIFEST_FILE, &json)?;

    let path = dir.join(RESULTS_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&path)
        .map_err(io_error("open", &path))?;
    let mut done = BitSet::new(space.len());
    let mut already_done = 0;
    let whole = for_each_line(&mut file, &path, |_, line| {
        let job = job_of(&manifest, &line).ok_or_else(|| {
            format!(
                "names the scenario {:?}, which is not in {MANIFEST_FILE}",
                line.scenario
            )
        })?;
        if let Some(i) = space.index(job)
            && done.insert(i)
        {
            already_done += 1;
        }
        Ok(())
    })?;
    let len = file.metadata().map_err(io_error("inspect", &path))?.len();
    if whole < len {
        file.set_len(whole).map_err(io_error("truncate", &path))?;
    }
    Ok((
        Results {
            dir: dir.to_path_buf(),
            file: Mutex::new(file),
            _lock: lock,
            already_done,
        },
        done,
    ))
}

/// The job a line records, by its scenario file's place in `manifest`.
fn job_of(manifest: &Manifest, line: &SeedLine) -> Option<Job> {
    let scenario = manifest
        .scenarios
        .iter()
        .position(|s| s.file == line.scenario)?;
    Some(Job {
        scenario,
        seed: line.seed,
    })
}

/// Calls `f` with (line number, line) for every whole line of a results file, from its start;
/// returns the byte length of the whole lines (a last line without its newline is not read).
/// A line that is not a [`SeedLine`], or that `f` refuses, is a [`SweepError::BadFile`].
fn for_each_line(
    file: &mut File,
    path: &Path,
    mut f: impl FnMut(u64, SeedLine) -> Result<(), String>,
) -> Result<u64, SweepError> {
    file.rewind().map_err(io_error("read", path))?;
    let mut reader = io::BufReader::new(&*file);
    let mut buf = Vec::new();
    let (mut whole, mut number) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(io_error("read", path))?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Ok(whole);
        }
        number += 1;
        let bad = |why: String| SweepError::BadFile {
            path: path.display().to_string(),
            line: number,
            why,
        };
        let line: SeedLine = serde_json::from_slice(&buf)
            .map_err(|e| bad(format!("expected one seed's result as JSON: {e}")))?;
        f(number, line).map_err(bad)?;
        whole += n as u64;
    }
}

/// Writes the full report folder of `scenario` at `seed` into `dir/<scenario name>/seed-<N>`
/// (replaced as a whole, as `faultline run` does): the seed is run again keeping its trace.
/// Returns the folder relative to `dir`, or the seed's new outcome if the re-run's trace hash is
/// not `first_hash` (an `error`: not deterministic) or it could not be written (also an `error`:
/// the seed's verdict cannot be shown).
pub fn write_seed_report(
    dir: &Path,
    file: &Path,
    scenario: &Scenario,
    seed: u64,
    first_hash: &str,
) -> Result<String, SeedOutcome> {
    let relative = Path::new(&scenario.name).join(format!("seed-{seed}"));
    let start = wall_now();
    let failed = |message: String| SeedOutcome::error(message, first_hash.to_string(), 0);
    let staging = report::out_dir(None, dir, &scenario.name, seed)
        .and_then(|target| Staging::prepare(&target))
        .map_err(|e| failed(format!("cannot write the report folder: {e}")))?;
    let options = RunOptions::streaming_to(staging.file_path("trace.jsonl"));
    let (record, checks) = match outcome::run_seed(scenario, seed, &options) {
        Ok(checked) => (checked.record, checked.checks),
        Err(e) => {
            return Err(SeedOutcome::not_deterministic(
                first_hash,
                &format!("<none: {e}>"),
                "the run and its re-run for the report",
                elapsed_ms(start),
            ));
        }
    };
    if record.trace_hash != first_hash {
        return Err(SeedOutcome::not_deterministic(
            first_hash,
            &record.trace_hash,
            "the run and its re-run for the report",
            elapsed_ms(start),
        ));
    }
    let report = Report::new(&record, checks, file, elapsed_ms(start));
    report::write_run(staging, &report, &record, true, None)
        .map_err(|e| failed(format!("cannot write the report folder: {e}")))?;
    Ok(relative.display().to_string())
}

/// One scenario's counts in a [`Summary`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioCounts {
    /// The scenario file.
    pub file: String,
    /// The scenario's name.
    pub name: String,
    /// Seeds that passed.
    pub pass: u64,
    /// Seeds that failed.
    pub fail: u64,
    /// Seeds with an `unknown` verdict.
    pub unknown: u64,
    /// Seeds with no verdict (panic, event limit, not deterministic).
    pub error: u64,
}

impl ScenarioCounts {
    fn add(&mut self, verdict: SeedVerdict) {
        *match verdict {
            SeedVerdict::Pass => &mut self.pass,
            SeedVerdict::Fail => &mut self.fail,
            SeedVerdict::Unknown => &mut self.unknown,
            SeedVerdict::Error => &mut self.error,
        } += 1;
    }

    /// Seeds counted.
    pub fn seeds(&self) -> u64 {
        self.pass + self.fail + self.unknown + self.error
    }
}

/// Seeds of one scenario that did not pass, with the same signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The scenario file.
    pub scenario: String,
    /// `fail`, `unknown` or `error`.
    pub verdict: SeedVerdict,
    /// The checks of the signature (empty for `error`).
    pub checks: Vec<String>,
    /// The evidence kind (for `error`: the kind of the error message).
    pub evidence_kind: String,
    /// The signature in words: `fail: election-safety (two leaders in term _ ...)`.
    pub signature: String,
    /// How many seeds.
    pub count: u64,
    /// The smallest of them.
    pub smallest_seed: u64,
    /// The report folder of the smallest seed (found in the swept folders), if there is one.
    pub report: Option<String>,
    /// The command that reproduces the smallest seed.
    pub reproduce: String,
}

/// A seed whose recorded runs gave different trace hashes (two lines for it in the results).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nondeterministic {
    /// The scenario file.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The distinct trace hashes recorded, in the order read.
    pub trace_hashes: Vec<String>,
}

/// `summary.json`: what a sweep (or the merge of its shards) found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The faultline version of the sweep.
    pub faultline_version: String,
    /// The smallest seed range holding the folders' ranges.
    pub seeds: SeedRange,
    /// The shards summarized (`K/N`), or empty for a whole range.
    pub shards: Vec<String>,
    /// Seeds recorded (each (scenario, seed) once).
    pub total: ScenarioCounts,
    /// Counts per scenario, in the sweep's order.
    pub scenarios: Vec<ScenarioCounts>,
    /// Seeds that did not pass, grouped by scenario and signature; sorted by scenario (the
    /// sweep's order), then verdict, checks and evidence kind.
    pub groups: Vec<Group>,
    /// Seeds recorded twice with different trace hashes (counted as `error`).
    pub nondeterministic: Vec<Nondeterministic>,
    /// Wall time spent running the recorded seeds, summed over them, in milliseconds.
    pub run_time_ms: u64,
    /// Wall time of this sweep command, in milliseconds (absent for a merge). Not
    /// deterministic.
    pub wall_time_ms: Option<u64>,
    /// Seeds run by this sweep command per wall-clock second (absent for a merge).
    pub seeds_per_s: Option<f64>,
}

impl Summary {
    /// The exit code: 1 if a seed failed or has no verdict, else 3 if one was `unknown`, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.total.fail > 0 || self.total.error > 0 {
            1
        } else if self.total.unknown > 0 {
            3
        } else {
            0
        }
    }
}

/// Summarizes the results of the folders `dirs` (one sweep's folder, or the folders of its
/// shards), whose manifests are `manifests` (same version and scenarios: see
/// [`Manifest::mismatch`]). A (scenario, seed) recorded more than once counts once: as its
/// first line if every line has the same trace hash, else as an `error` listed in
/// `nondeterministic`. Two passes over the files, holding two bits per job of the smallest range
/// holding every folder's.
pub fn summarize(dirs: &[PathBuf], manifests: &[Manifest]) -> Result<Summary, SweepError> {
    let first = &manifests[0];
    let seeds = manifests.iter().fold(first.seeds, |r, m| r.hull(m.seeds));
    check_size(first.scenarios.len(), seeds.len())?;
    let space = JobSpace {
        scenarios: first.scenarios.len(),
        seeds,
        shard: Shard::WHOLE,
    };
    let mut seen = BitSet::new(space.len());
    let mut twice = BitSet::new(space.len());
    let mut any_twice = false;
    let each_line = |f: &mut dyn FnMut(u64, SeedLine) -> Result<(), String>| {
        for dir in dirs {
            let path = dir.join(RESULTS_FILE);
            let mut file = File::open(&path).map_err(io_error("read", &path))?;
            for_each_line(&mut file, &path, &mut *f)?;
        }
        Ok::<(), SweepError>(())
    };
    each_line(&mut |_, line| {
        let i = job_of(first, &line)
            .and_then(|job| space.index(job))
            .ok_or_else(|| {
                format!(
                    "names {:?} at seed {}, not in the sweep",
                    line.scenario, line.seed
                )
            })?;
        if !seen.insert(i) {
            twice.insert(i);
            any_twice = true;
        }
        Ok(())
    })?;
    let mut tally = Tally::new(first, dirs);
    let mut repeated: std::collections::BTreeMap<u64, Vec<SeedLine>> = Default::default();
    each_line(&mut |_, line| {
        let job = job_of(first, &line).expect("checked in the first pass");
        let i = space.index(job).expect("checked in the first pass");
        if any_twice && twice.contains(i) {
            repeated.entry(i).or_default().push(line);
        } else {
            tally.add(job.scenario, &line);
        }
        Ok(())
    })?;
    for lines in repeated.into_values() {
        let mut hashes: Vec<String> = Vec::new();
        for l in &lines {
            if !hashes.contains(&l.trace_hash) {
                hashes.push(l.trace_hash.clone());
            }
        }
        let job = job_of(first, &lines[0]).expect("checked in the first pass");
        if hashes.len() == 1 {
            tally.add(job.scenario, &lines[0]);
            continue;
        }
        let outcome = SeedOutcome::not_deterministic(
            &hashes[0],
            &hashes[1],
            "two recorded runs",
            lines.iter().map(|l| l.wall_ms).sum(),
        );
        let line = SeedLine::new(&lines[0].scenario, lines[0].seed, outcome, None);
        tally.add(job.scenario, &line);
        tally.nondeterministic.push(Nondeterministic {
            scenario: line.scenario,
            seed: line.seed,
            trace_hashes: hashes,
        });
    }
    let mut shards: Vec<String> = manifests
        .iter()
        .filter_map(|m| m.shard.describe())
        .collect();
    shards.sort();
    shards.dedup();
    Ok(tally.finish(first, seeds, shards))
}

/// A group of [`Summary::groups`]: (scenario index, verdict, checks, evidence kind).
type GroupKey = (usize, SeedVerdict, Vec<String>, String);

/// The running aggregation of [`summarize`].
struct Tally<'a> {
    dirs: &'a [PathBuf],
    counts: Vec<ScenarioCounts>,
    /// (scenario, verdict, checks, kind) -> (count, smallest seed).
    groups: std::collections::BTreeMap<GroupKey, (u64, u64)>,
    nondeterministic: Vec<Nondeterministic>,
    run_time_ms: u64,
}

impl<'a> Tally<'a> {
    fn new(manifest: &Manifest, dirs: &'a [PathBuf]) -> Tally<'a> {
        Tally {
            dirs,
            counts: manifest
                .scenarios
                .iter()
                .map(|s| ScenarioCounts {
                    file: s.file.clone(),
                    name: s.name.clone(),
                    ..ScenarioCounts::default()
                })
                .collect(),
            groups: Default::default(),
            nondeterministic: Vec::new(),
            run_time_ms: 0,
        }
    }

    fn add(&mut self, scenario: usize, line: &SeedLine) {
        self.counts[scenario].add(line.verdict);
        self.run_time_ms += line.wall_ms;
        if line.verdict == SeedVerdict::Pass {
            return;
        }
        let key = (
            scenario,
            line.verdict,
            line.failing_checks.clone(),
            line.evidence_kind.clone(),
        );
        let group = self.groups.entry(key).or_insert((0, line.seed));
        group.0 += 1;
        group.1 = group.1.min(line.seed);
    }

    fn finish(mut self, manifest: &Manifest, seeds: SeedRange, shards: Vec<String>) -> Summary {
        let mut total = ScenarioCounts {
            file: String::new(),
            name: String::new(),
            ..ScenarioCounts::default()
        };
        for c in &self.counts {
            total.pass += c.pass;
            total.fail += c.fail;
            total.unknown += c.unknown;
            total.error += c.error;
        }
        let groups = std::mem::take(&mut self.groups)
            .into_iter()
            .map(|((scenario, verdict, checks, kind), (count, seed))| {
                let entry = &manifest.scenarios[scenario];
                let report = self.dirs.iter().find_map(|d| {
                    let folder = d.join(&entry.name).join(format!("seed-{seed}"));
                    folder
                        .join("report.json")
                        .is_file()
                        .then(|| folder.display().to_string())
                });
                Group {
                    scenario: entry.file.clone(),
                    verdict,
                    signature: describe(verdict, &checks, &kind),
                    checks,
                    evidence_kind: kind,
                    count,
                    smallest_seed: seed,
                    report,
                    reproduce: report::reproduce_command(Path::new(&entry.file), seed),
                }
            })
            .collect();
        self.nondeterministic
            .sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
        Summary {
            faultline_version: manifest.faultline_version.clone(),
            seeds,
            shards,
            total,
            scenarios: self.counts,
            groups,
            nondeterministic: self.nondeterministic,
            run_time_ms: self.run_time_ms,
            wall_time_ms: None,
            seeds_per_s: None,
        }
    }
}

/// A signature in words (as [`Signature::describe`], with `error` for seeds without a verdict).
fn describe(verdict: SeedVerdict, checks: &[String], kind: &str) -> String {
    let verdict = match verdict {
        SeedVerdict::Fail => Verdict::Fail,
        SeedVerdict::Unknown => Verdict::Unknown,
        SeedVerdict::Pass | SeedVerdict::Error => {
            return format!("{}: {kind}", verdict.word());
        }
    };
    Signature {
        verdict,
        checks: checks.to_vec(),
        evidence_kind: kind.to_string(),
    }
    .describe()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_a_range_round_robin_and_together_hold_every_seed_once() {
        let seeds = SeedRange {
            first: 10,
            last: 26,
        };
        let mut all = Vec::new();
        for k in 1..=4 {
            let shard = Shard { index: k, count: 4 };
            let mine: Vec<u64> = (0..shard.len(seeds))
                .map(|i| shard.seed(seeds, i))
                .collect();
            for (i, s) in mine.iter().enumerate() {
                assert_eq!(shard.position(seeds, *s), Some(i as u64));
                assert_eq!((s - 10) % 4, k - 1, "round robin");
            }
            all.extend(mine);
        }
        all.sort();
        assert_eq!(all, seeds.iter().collect::<Vec<_>>());
        assert_eq!(Shard { index: 1, count: 4 }.position(seeds, 11), None);
        let tiny = SeedRange { first: 1, last: 2 };
        assert!(
            Shard { index: 3, count: 3 }.is_empty(tiny),
            "more shards than seeds"
        );
    }

    #[test]
    fn a_shard_is_k_of_n_from_1_and_bad_ones_say_what_was_expected() {
        assert_eq!(Shard::parse("2/8"), Ok(Shard { index: 2, count: 8 }));
        assert_eq!(Shard::parse("1/1"), Ok(Shard::WHOLE));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "", "/"] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(e.starts_with("expected a shard"), "{bad}: {e}");
        }
    }

    #[test]
    fn job_numbers_and_jobs_are_inverse_over_a_shard() {
        let space = JobSpace {
            scenarios: 3,
            seeds: SeedRange { first: 1, last: 20 },
            shard: Shard { index: 2, count: 3 },
        };
        assert_eq!(space.len(), 3 * 7);
        for i in 0..space.len() {
            assert_eq!(space.index(space.job(i)), Some(i));
        }
        assert_eq!(
            space.job(0),
            Job {
                scenario: 0,
                seed: 2
            }
        );
        assert_eq!(
            space.job(4),
            Job {
                scenario: 1,
                seed: 5
            }
        );
        assert_eq!(
            space.index(Job {
                scenario: 0,
                seed: 3
            }),
            None,
            "other shard"
        );
        assert_eq!(
            space.index(Job {
                scenario: 3,
                seed: 2
            }),
            None,
            "no such scenario"
        );
    }

    #[test]
    fn sweep_seed_ranges_are_limited_to_the_number_asked() {
        assert_eq!(
            parse_seed_range("1..1000000000", MAX_SWEEP_JOBS)
                .unwrap()
                .len(),
            MAX_SWEEP_JOBS
        );
        assert!(parse_seed_range("0..1000000000", MAX_SWEEP_JOBS).is_err());
        let full = parse_seed_range("0..18446744073709551614", u64::MAX).unwrap();
        assert_eq!(full.len(), u64::MAX);
        assert!(check_size(2, MAX_SWEEP_JOBS).is_err());
        assert!(check_size(1, MAX_SWEEP_JOBS).is_ok());
    }

    #[test]
    fn a_bitset_remembers_what_was_inserted() {
        let mut set = BitSet::new(130);
        assert!(set.insert(129) && set.insert(0) && !set.insert(129));
        assert!(set.contains(0) && set.contains(129) && !set.contains(64));
        assert!(!set.contains(10_000), "beyond the bound");
    }

    fn event_limit_scenario() -> Scenario {
        let text = "duration = \"10s\"\n[cluster]\nprotocol = \"pingpong\"\nnodes = 2\n\
                    [network]\nlatency = \"0s\"\n[workload]\nclients = 0\n";
        Scenario::parse(Path::new("zero.toml"), text.as_bytes()).unwrap()
    }

    fn pingpong_scenario() -> Scenario {
        let text = "duration = \"200ms\"\n[cluster]\nprotocol = \"pingpong\"\nnodes = 2\n";
        Scenario::parse(Path::new("pp.toml"), text.as_bytes()).unwrap()
    }

    /// A plan over seeds `1..=last` of every scenario on `workers` workers, running each once.
    fn plan(scenarios: &[Scenario], last: u64, workers: usize) -> Plan<'_> {
        Plan {
            scenarios,
            space: JobSpace {
                scenarios: scenarios.len(),
                seeds: SeedRange { first: 1, last },
                shard: Shard::WHOLE,
            },
            workers,
            until_fail: false,
            check_determinism: false,
            done: None,
        }
    }

    fn collect(plan: &Plan<'_>) -> Vec<(Job, SeedOutcome)> {
        let got = Mutex::new(Vec::new());
        execute(plan, &|job, outcome| {
            got.lock().unwrap().push((job, outcome));
            Next::Continue
        });
        let mut got = got.into_inner().unwrap();
        got.sort_by_key(|(job, _)| *job);
        got
    }

    #[test]
    fn an_event_limit_is_that_seeds_error_and_the_other_jobs_still_run() {
        let scenarios = [event_limit_scenario(), pingpong_scenario()];
        let got = collect(&plan(&scenarios, 3, 2));
        assert_eq!(got.len(), 6, "every job once");
        for (job, outcome) in &got {
            if job.scenario == 0 {
                assert_eq!(outcome.verdict, SeedVerdict::Error, "{outcome:?}");
                assert!(
                    outcome
                        .error
                        .as_deref()
                        .unwrap()
                        .contains("events_per_instant")
                );
                assert!(outcome.trace_hash.is_empty());
            } else {
                assert_eq!(outcome.verdict, SeedVerdict::Pass, "{outcome:?}");
                assert_eq!(outcome.trace_hash.len(), 32);
            }
        }
    }

    #[test]
    fn until_fail_takes_no_new_job_after_the_first_that_does_not_pass() {
        let scenarios = [event_limit_scenario()];
        let plan = Plan {
            until_fail: true,
            ..plan(&scenarios, 50, 1)
        };
        assert_eq!(collect(&plan).len(), 1);
    }

    #[test]
    fn determinism_checking_runs_every_job_twice_and_skips_done_ones() {
        let scenarios = [pingpong_scenario()];
        let mut done = BitSet::new(5);
        done.insert(2);
        for workers in [1, 2, 3] {
            let plan = Plan {
                check_determinism: true,
                done: Some(&done),
                ..plan(&scenarios, 5, workers)
            };
            let got = collect(&plan);
            let seeds: Vec<u64> = got.iter().map(|(j, _)| j.seed).collect();
            assert_eq!(
                seeds,
                [1, 2, 4, 5],
                "{workers} workers: each job once, job 2 skipped"
            );
            assert!(got.iter().all(|(_, o)| o.verdict == SeedVerdict::Pass));
        }
    }

    #[test]
    fn two_runs_with_different_hashes_are_an_error_naming_both() {
        let a = SeedOutcome {
            verdict: SeedVerdict::Pass,
            failing_checks: vec![],
            evidence_kind: String::new(),
            trace_hash: "aaa".into(),
            wall_ms: 1,
            error: None,
        };
        let b = SeedOutcome {
            trace_hash: "bbb".into(),
            ..a.clone()
        };
        assert_eq!(compare_runs(a.clone(), a.clone()), a);
        let e = compare_runs(a, b);
        assert_eq!(e.verdict, SeedVerdict::Error);
        let message = e.error.unwrap();
        assert!(
            message.contains("aaa") && message.contains("bbb"),
            "{message}"
        );
    }
}
