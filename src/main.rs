//! The `faultline` command. Thin: parsing, dispatch and exit codes live in `faultline::cli`.

fn main() -> std::process::ExitCode {
    faultline::cli::main()
}
