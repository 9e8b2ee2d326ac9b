//! `faultline bench checker`: times the linearizability checker (see
//! `crate::check::linearizability::bench`).

/// Runs the checker benchmarks and prints them (JSON with `json`); returns the exit code.
pub fn bench_checker(json: bool) -> u8 {
    let _ = json;
    crate::cli::exit::BAD_INPUT
}
