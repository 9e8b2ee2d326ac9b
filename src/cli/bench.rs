//! `faultline bench [TARGET]`: speed measurements. Targets: `checker` (the linearizability
//! checker, see `bench_checker`). The simulator target is not built yet.

use clap::Args;

use crate::cli::exit;

/// Arguments of `faultline bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure: `checker`.
    pub target: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmarks.
pub fn bench(args: &BenchArgs) -> u8 {
    match args.target.as_deref() {
        Some("checker") => crate::cli::bench_checker::bench_checker(args.json),
        _ => {
            eprintln!(
                "faultline bench: targets: checker (the simulator benchmark is not built yet)"
            );
            exit::BAD_INPUT
        }
    }
}
