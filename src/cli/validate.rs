//! `faultline validate PATH...`.

use std::path::PathBuf;

use crate::cli::exit;
use crate::cli::test::scenario_files_or_exit;
use crate::scenario::Scenario;

/// Validates each file, and every `*.toml` file under each folder (as `faultline test` finds
/// them); prints one `file:line:col: key: message` line per problem, every problem of every
/// file. Returns 0 if every file is valid, 2 otherwise (also when a folder holds no scenario).
pub fn validate(paths: &[PathBuf]) -> u8 {
    let files = match scenario_files_or_exit(paths) {
        Ok(files) => files,
        Err(code) => return code,
    };
    let mut code = exit::PASS;
    for file in &files {
        if let Err(errors) = Scenario::load_all(file) {
            for e in errors {
                eprintln!("{e}");
            }
            code = exit::BAD_INPUT;
        }
    }
    code
}
