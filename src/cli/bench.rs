//! `faultline bench`: simulator speed (see `crate::bench`).

use clap::Args;

use crate::cli::exit;

/// Arguments of `faultline bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the benchmarks.
pub fn bench(args: &BenchArgs) -> u8 {
    let _ = args.json;
    eprintln!("faultline bench: not built yet");
    exit::BAD_INPUT
}
