//! `faultline test PATH...`: run every scenario found and compare it with its `[expect]` block.

use std::path::{Path, PathBuf};

use clap::Args;
use rayon::prelude::*;

use crate::cli::exit;
use crate::cli::run::run_and_check;
use crate::report::verdict_word;

/// Arguments of `faultline test`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Scenario files or folders (searched recursively for *.toml).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
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
pub fn test(args: &TestArgs) -> u8 {
    let files = match scenario_files_or_exit(&args.paths) {
        Ok(files) => files,
        Err(code) => return code,
    };
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
