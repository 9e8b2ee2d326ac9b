//! The `faultline` command line: parses arguments, calls the library, maps outcomes to exit
//! codes. Only this module formats errors for people; it reads the wall clock (to report wall
//! time) through `crate::wall`, which no simulation uses. Exit codes (documented in the README):
//!
//! | code | meaning                                                                           |
//! |------|-----------------------------------------------------------------------------------|
//! | 0    | pass (every check passed / every expectation held)                               |
//! | 1    | a check failed, or an expectation was not met                                     |
//! | 2    | bad input or usage (malformed scenario, unreadable file, flag, unusable output folder, a run stopped at an event limit) |
//! | 3    | inconclusive: a check returned unknown                                            |

// Standard output may be a pipe its reader closed (`faultline list | head`): `print!` and
// `println!` of std would then panic (exit 101). Every command's output goes through these two
// macros instead, which shadow std's in this module and all its submodules (macro_rules scope
// is textual and reaches the `mod` files declared below): a closed pipe is ignored and the
// command ends with its own exit code; any other write error is reported on stderr.
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}
macro_rules! println {
    () => {
        $crate::cli::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub mod bench;
pub mod bench_checker;
pub mod bench_scale;
mod check_history;
pub mod explain;
mod list;
mod progress;
pub mod run;
mod shrink;
pub mod sweep;
pub mod test;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::scenario::Verdict;

/// `mi_option_purge_delay` in mimalloc's `mimalloc.h` (v2 and v3): the delay, in milliseconds,
/// before freed memory goes back to the operating system (default 10). libmimalloc-sys does not
/// name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc (the `faultline` binary's allocator) to give freed memory back at once, for
/// the phases after a simulation. Checking a run and writing its report each build large
/// structures and free them; with the default delay the process kept them all resident, so its
/// peak was the sum of the phases, not the largest (a 600-second Raft run: 629 MiB with the
/// delay, 549 MiB without; docs/performance.md). It is not set for the simulation itself, nor
/// for `check-history`: there freed memory is reused at once, and with no delay each reuse
/// faulted in and zeroed fresh pages (10-40% of the CPU of a Multi-Paxos run, a fifth of
/// checking a 1,000,000-operation history).
pub(crate) fn return_freed_memory_promptly() {
    // SAFETY: sets one of mimalloc's global options to a documented value; mimalloc reads its
    // options atomically and allows setting them at any time. Where mimalloc is linked but not
    // the allocator (the library's tests), it only sets an unused option.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// Exit codes.
pub mod exit {
    /// Pass.
    pub const PASS: u8 = 0;
    /// A check failed, or an expectation was not met.
    pub const FAIL: u8 = 1;
    /// Bad input or usage.
    pub const BAD_INPUT: u8 = 2;
    /// Inconclusive.
    pub const UNKNOWN: u8 = 3;
}

/// The exit code of a verdict.
pub fn verdict_code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Pass => exit::PASS,
        Verdict::Fail => exit::FAIL,
        Verdict::Unknown => exit::UNKNOWN,
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "faultline",
    version,
    about = "A deterministic distributed-systems simulator: protocols, faults, checkers, reports.",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario under one seed, check it, and write report.json, trace.jsonl, history.jsonl.
    Run(run::RunArgs),
    /// Check scenario files (and every *.toml under folders); print every problem as
    /// file:line:col: key: message (exit 2) or nothing (exit 0).
    Validate {
        /// Scenario files or folders (searched recursively for *.toml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run every scenario found under the paths and compare each with its [expect] block.
    Test(test::TestArgs),
    /// List protocols, fault kinds, partition shapes, nemesis faults, checks and planted bugs.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure simulator speed (build with --release).
    Bench(bench::BenchArgs),
    /// Check a history file for linearizability (exit 0 yes, 1 no, 3 unknown, 2 unreadable).
    CheckHistory(check_history::CheckHistoryArgs),
    /// Shrink a failing scenario: a smaller one (fewer and shorter faults, a shorter run, fewer
    /// clients and nodes) that still fails the same checks, written as a scenario file.
    Shrink(shrink::ShrinkArgs),
    /// Tell the story of a run (a report folder, or a scenario run in memory), one line per
    /// event; filter by time, node, topic, or the check a story should explain.
    Explain(explain::ExplainArgs),
    /// Run scenarios over a seed range on every core (or a shard of it), recording every
    /// seed's result in a resumable sweep.jsonl; `sweep merge` merges shards' results.
    Sweep(sweep::SweepArgs),
}

/// Turns transparent huge pages off for this process, for every command (Linux
/// `prctl(PR_SET_THP_DISABLE)`). mimalloc asks for them (`madvise(MADV_HUGEPAGE)`), and on a
/// machine whose memory earlier work fragmented, the kernel compacts memory to find each 2 MiB
/// page before handing it out. `check-history` of a 1,000,000-operation history spent 0.39-0.69 s
/// of kernel time, against 0.16-0.23 s with 4 KiB pages, and peaked at 248-256 MiB instead of
/// 218-229 MiB (runs alternating, one core busy); a full 5-node, 50-client, 60 s `faultline run`
/// peaks at 105-109 MiB instead of 137-150 MiB (2 MiB pages round partly used memory up), with
/// the same wall time. Elsewhere, and where the call fails, nothing changes.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and unused zero arguments; it only sets a
    // flag of this process and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::PASS
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let code = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Validate { paths } => validate::validate(&paths),
        Command::Test(args) => test::test(&args),
        Command::List { json } => list::list(json),
        Command::Bench(args) => bench::bench(&args),
        Command::CheckHistory(args) => check_history::check_history(&args),
        Command::Explain(args) => explain::explain(&args),
        Command::Shrink(args) => shrink::shrink_command(&args),
        Command::Sweep(args) => sweep::sweep(&args),
    };
    ExitCode::from(code)
}

/// Writes to standard output; a reader that closed the pipe is not an error (see `println!`
/// above).
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args)
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("faultline: cannot write to standard output: {e}");
    }
}
