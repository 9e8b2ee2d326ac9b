//! `faultline test PATH... [--seeds A..B] [--twins]`: run every scenario found and compare it
//! with its `[expect]` block, at its own seed or over a seed sweep.
//!
//! A sweep prints, per scenario, at how many seeds the run met its expectation (for a
//! planted-bug scenario: its catch rate) and the seeds where it did not. `--twins` also runs the
//! correct twin of every planted-bug scenario (the same scenario with every planted bug switched
//! off, see [`twin`]), which must `pass`. The catch-rate tables in `docs/` come from
//! `faultline test --seeds 1..20 --twins scenarios/<protocol>/bugs`.

use std::path::{Path, PathBuf};

use clap::Args;
use rayon::prelude::*;

use crate::check::{overall, run_checks};
use crate::cli::exit;
use crate::cli::run::run_and_check;
use crate::report::{expectation_problems, verdict_word};
use crate::scenario::{Expect, Scenario};
use crate::sim::{self, RunOptions};

/// Most seeds one `--seeds` sweep may name.
pub const MAX_SWEEP_SEEDS: u64 = 10_000;

/// Arguments of `faultline test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Scenario files or folders (searched recursively for *.toml).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Run every scenario at each of these seeds instead of its own: `A..B` (both ends
    /// included, at most 10000 seeds) or one seed `N`.
    #[arg(long, value_parser = parse_seeds)]
    pub seeds: Option<SeedRange>,
    /// With `--seeds`: also run the correct twin of every planted-bug scenario (its bugs
    /// switched off), which must pass at every seed.
    #[arg(long, requires = "seeds")]
    pub twins: bool,
}

pub use crate::sweep::SeedRange;

/// Parses `--seeds`: `A..B` or `A..=B` (both include `B`), or a single seed `N`. Errors say
/// what was expected; ranges are limited to [`MAX_SWEEP_SEEDS`] seeds (`faultline sweep` takes
/// longer ranges: `crate::sweep::parse_seed_range`).
pub fn parse_seeds(text: &str) -> Result<SeedRange, String> {
    crate::sweep::parse_seed_range(text, MAX_SWEEP_SEEDS)
}

/// Whether the scenario switches on any planted bug (in a role's or a client group's options).
pub fn has_bugs(s: &Scenario) -> bool {
    let roles = s.cluster.roles.iter().map(|r| &r.options);
    roles.chain(s.clients.iter().map(|g| &g.options)).any(|o| {
        o.get("bugs")
            .and_then(toml::Value::as_array)
            .is_some_and(|b| !b.is_empty())
    })
}

/// The correct twin of a planted-bug scenario: the same scenario with every planted bug
/// switched off (in roles and client groups), expected to `pass` (an `unknown` verdict does not
/// meet that expectation).
pub fn twin(s: &Scenario) -> Scenario {
    let mut t = s.clone();
    for role in &mut t.cluster.roles {
        role.options.remove("bugs");
    }
    for group in &mut t.clients {
        group.options.remove("bugs");
    }
    t.expect = Expect::default();
    t
}

/// Runs `scenario` at `seed` (trace hashed, not kept), checks it, and returns how the run
/// differs from the scenario's `[expect]`: empty if every part of it held. A run stopped at an
/// event limit gets no verdict (as in a plain `faultline test`): its one problem says why.
pub fn problems_at(scenario: &Scenario, seed: u64) -> Vec<String> {
    let record = sim::run(scenario, seed, &RunOptions::hash_only());
    if let Some(limit) = &record.limit_exceeded {
        return vec![limit.to_string()];
    }
    let checks = run_checks(&record);
    expectation_problems(&scenario.expect, overall(&checks), &checks)
}

/// One scenario (or its twin) over a seed sweep.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The scenario file.
    pub file: PathBuf,
    /// Whether this is the correct twin of the file's planted-bug scenario.
    pub twin: bool,
    /// Seeds swept.
    pub seeds: SeedRange,
    /// The seeds where the run did not meet the expectation, each with how it differed.
    pub missed: Vec<(u64, Vec<String>)>,
}

impl Sweep {
    /// At how many seeds the run met its expectation.
    pub fn met(&self) -> u64 {
        self.seeds.len() - self.missed.len() as u64
    }
}

/// Sweeps every scenario (and, with `twins`, the correct twin of every planted-bug scenario)
/// over `seeds`, in parallel; the result is in the order of `scenarios`, each twin after its
/// scenario.
pub fn sweep(scenarios: &[(PathBuf, Scenario)], seeds: SeedRange, twins: bool) -> Vec<Sweep> {
    let variants: Vec<(usize, bool, Scenario)> = scenarios
        .iter()
        .enumerate()
        .flat_map(|(i, (_, s))| {
            let mut v = vec![(i, false, s.clone())];
            if twins && has_bugs(s) {
                v.push((i, true, twin(s)));
            }
            v
        })
        .collect();
    let jobs: Vec<(usize, u64)> = (0..variants.len())
        .flat_map(|v| seeds.iter().map(move |seed| (v, seed)))
        .collect();
    let results: Vec<(usize, u64, Vec<String>)> = jobs
        .par_iter()
        .map(|&(v, seed)| (v, seed, problems_at(&variants[v].2, seed)))
        .collect();
    variants
        .iter()
        .enumerate()
        .map(|(v, (i, is_twin, _))| Sweep {
            file: scenarios[*i].0.clone(),
            twin: *is_twin,
            seeds,
            missed: results
                .iter()
                .filter(|r| r.0 == v && !r.2.is_empty())
                .map(|r| (r.1, r.2.clone()))
                .collect(),
        })
        .collect()
}

/// `faultline test --seeds`: one line per scenario (and twin) with the number of seeds that
/// met the expectation, and the seeds that did not; exit 0 iff every run met it, 2 (before any
/// run) if a scenario is invalid, every invalid one being listed.
fn test_sweep(files: &[PathBuf], seeds: SeedRange, twins: bool) -> u8 {
    let mut scenarios = Vec::new();
    let mut invalid = 0;
    for f in files {
        match Scenario::load(f) {
            Ok(s) => scenarios.push((f.clone(), s)),
            Err(e) => {
                invalid += 1;
                println!("INVALID {e}");
            }
        }
    }
    if invalid > 0 {
        println!("{invalid} invalid scenario(s): nothing was run");
        return exit::BAD_INPUT;
    }
    let sweeps = sweep(&scenarios, seeds, twins);
    for s in &sweeps {
        let what = if s.twin {
            format!("twin of {}", s.file.display())
        } else {
            s.file.display().to_string()
        };
        let missed: Vec<String> = s.missed.iter().map(|(seed, _)| seed.to_string()).collect();
        let tail = if missed.is_empty() {
            String::new()
        } else {
            format!("  missed at seeds {}", missed.join(" "))
        };
        println!("{:>5}/{}  {what}{tail}", s.met(), seeds.len());
    }
    let all = sweeps.iter().filter(|s| s.missed.is_empty()).count();
    println!(
        "{} scenarios over seeds {}..{}: {all} met their expectations at every seed",
        sweeps.len(),
        seeds.first,
        seeds.last
    );
    if all == sweeps.len() {
        exit::PASS
    } else {
        exit::FAIL
    }
}

/// Every `*.toml` file under `paths`, sorted.
pub fn find_scenarios(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    fn walk(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            entries.sort();
            for e in entries {
                walk(&e, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "toml") || !path.exists() {
            out.push(path.to_path_buf());
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    Ok(out)
}

/// The scenario files under `paths` (see [`find_scenarios`]), or the exit code after saying on
/// stderr why there are none (a folder that cannot be listed, or no `*.toml` file).
pub(crate) fn scenario_files_or_exit(paths: &[PathBuf]) -> Result<Vec<PathBuf>, u8> {
    match find_scenarios(paths) {
        Ok(files) if files.is_empty() => {
            eprintln!("faultline: no scenario files (*.toml) found");
            Err(exit::BAD_INPUT)
        }
        Ok(files) => Ok(files),
        Err(e) => {
            eprintln!("faultline: cannot list scenarios: {e}");
            Err(exit::BAD_INPUT)
        }
    }
}

/// Runs the scenarios in parallel and prints one line each; exit 0 iff all expectations hold.
/// With `--seeds`, sweeps them instead (see the module docs).
pub fn test(args: &TestArgs) -> u8 {
    let files = match scenario_files_or_exit(&args.paths) {
        Ok(files) => files,
        Err(code) => return code,
    };
    if let Some(seeds) = args.seeds {
        return test_sweep(&files, seeds, args.twins);
    }
    let outcomes: Vec<(PathBuf, Result<Vec<String>, String>, String)> = files
        .par_iter()
        .map(|f| match run_and_check(f, None) {
            Ok((_, report)) => {
                let line = format!(
                    "{} (seed {}, {} ms)",
                    verdict_word(report.verdict),
                    report.seed,
                    report.wall_time_ms
                );
                let problems = report.expectation_problems.clone();
                let problems = if problems.is_empty() {
                    problems
                } else {
                    let mut p = problems;
                    p.push(format!("reproduce: {}", report.reproduce));
                    p
                };
                (f.clone(), Ok(problems), line)
            }
            Err(e) => (f.clone(), Err(e.to_string()), String::new()),
        })
        .collect();
    let mut failed = 0;
    let mut invalid = 0;
    for (file, outcome, line) in &outcomes {
        match outcome {
            Ok(problems) if problems.is_empty() => println!("ok      {}  {line}", file.display()),
            Ok(problems) => {
                failed += 1;
                println!("FAILED  {}  {line}", file.display());
                for p in problems {
                    println!("          {p}");
                }
            }
            Err(e) => {
                invalid += 1;
                println!("INVALID {e}");
            }
        }
    }
    println!(
        "{} scenarios: {} met their expectations, {failed} did not, {invalid} invalid",
        outcomes.len(),
        outcomes.len() - failed - invalid
    );
    if invalid > 0 {
        exit::BAD_INPUT
    } else if failed > 0 {
        exit::FAIL
    } else {
        exit::PASS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_gives_no_verdict_on_a_run_stopped_at_an_event_limit() {
        let text = "duration = \"10s\"\n[cluster]\nprotocol = \"pingpong\"\nnodes = 2\n\
                    [network]\nlatency = \"0s\"\n[workload]\nclients = 0\n";
        let scenario = Scenario::parse(Path::new("zero.toml"), text.as_bytes()).unwrap();
        let problems = problems_at(&scenario, 1);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("events_per_instant"), "{problems:?}");
    }

    #[test]
    fn seed_ranges_include_both_ends_and_bad_ones_say_what_was_expected() {
        let r = parse_seeds("1..20").unwrap();
        assert_eq!((r.first, r.last, r.len()), (1, 20, 20));
        assert_eq!(
            parse_seeds("3..=5").unwrap().iter().collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert_eq!(parse_seeds("7").unwrap().len(), 1);
        for bad in ["", "a..b", "5..1", "1..", "0..10000", "-1..3"] {
            let e = parse_seeds(bad).unwrap_err();
            assert!(e.starts_with("expected"), "{bad:?}: {e}");
        }
        assert_eq!(parse_seeds("0..9999").unwrap().len(), MAX_SWEEP_SEEDS);
    }

    #[test]
    fn a_twin_switches_every_planted_bug_off_and_expects_a_pass() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/paxos/bugs/no-backoff.toml");
        let s = Scenario::load(&path).unwrap();
        assert!(has_bugs(&s));
        assert_eq!(s.expect.verdict, crate::scenario::Verdict::Fail);
        let t = twin(&s);
        assert!(!has_bugs(&t));
        assert_eq!(t.expect.verdict, crate::scenario::Verdict::Pass);
        assert!(t.expect.failing_checks.is_empty());
        assert_eq!(
            t.cluster.roles[0].options.get("instances"),
            s.cluster.roles[0].options.get("instances"),
            "otherwise the same scenario"
        );
    }

    #[test]
    fn a_twin_switches_off_planted_bugs_of_client_groups_too() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/locks/bugs/redlock-minority-ok.toml");
        let s = Scenario::load(&path).unwrap();
        assert!(
            s.cluster
                .roles
                .iter()
                .all(|r| !r.options.contains_key("bugs"))
        );
        assert!(has_bugs(&s), "a client group's bugs count");
        let t = twin(&s);
        assert!(!has_bugs(&t));
        assert!(t.clients.iter().all(|g| !g.options.contains_key("bugs")));
        assert_eq!(
            t.clients[0].options.get("hold"),
            s.clients[0].options.get("hold"),
            "otherwise the same scenario"
        );
    }
}
