//! The `faultline` command. Thin: parsing, dispatch and exit codes live in `faultline::cli`.

fn main() -> std::process::ExitCode {
    faultline::cli::main()
}

/// mimalloc: the simulator allocates many small, short-lived objects (messages, effects, trace
/// chunks); it is markedly faster than the system allocator for that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
