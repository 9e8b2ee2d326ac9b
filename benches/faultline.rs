//! `cargo bench`: every faultline benchmark in one go, as `faultline bench all` followed by
//! `faultline bench checker` (the same code, see `faultline::cli::bench`): the kernel's ping-pong
//! against the bare event loop and bare madsim, the 5-node broadcast, the Raft and Multi-Paxos key-value figures, the lock
//! designs (5 lock servers, 20 clients), the balancing family at 2,000 requests per simulated
//! second (10 backends, 1 balancer, 50 clients), and the
//! linearizability checker on the corpus (read from `FAULTLINE_CORPUS`, default
//! `../shared/corpus`) and on a generated 1,000,000-operation history with its peak memory.
//! Runs with the release-like `bench` profile; the median of 5 repetitions per figure.

use std::process::ExitCode;

use faultline::cli::bench::{BenchArgs, Target, bench};
use faultline::cli::bench_checker::CHILD_ENV;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = |target| BenchArgs {
        target,
        json: false,
        repeat: 5,
        quick: false,
    };
    // The checker benchmark re-runs this program as its memory-measuring child.
    let targets: &[Target] = if std::env::var_os(CHILD_ENV).is_some() {
        &[Target::Checker]
    } else {
        &[Target::All, Target::Checker]
    };
    let mut worst = 0;
    for &target in targets {
        worst = worst.max(bench(&args(target)));
    }
    ExitCode::from(worst)
}
