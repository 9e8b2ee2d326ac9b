//! `faultline validate PATH...`.

use std::path::PathBuf;

use crate::cli::exit;
use crate::cli::test::find_scenarios;
use crate::scenario::Scenario;

/// Validates each file, and every `*.toml` file under each folder (as `faultline test` finds
/// them); prints one `file:line:col: key: message` line per problem, every problem of every
/// file. Returns 0 if every file is valid, 2 otherwise (also when a folder holds no scenario).
pub fn validate(paths: &[PathBuf]) -> u8 {
    let files = match find_scenarios(paths) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("faultline: cannot list scenarios: {e}");
            return exit::BAD_INPUT;
        }
    };
    if files.is_empty() {
        eprintln!("faultline: no scenario files (*.toml) found");
        return exit::BAD_INPUT;
    }
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
