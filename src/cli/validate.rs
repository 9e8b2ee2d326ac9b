//! `faultline validate FILE...`.

use std::path::PathBuf;

use crate::cli::exit;
use crate::scenario::Scenario;

/// Validates each file; prints one `file:line:col: message` per invalid file.
pub fn validate(files: &[PathBuf]) -> u8 {
    let mut code = exit::PASS;
    for file in files {
        if let Err(e) = Scenario::load(file) {
            eprintln!("{e}");
            code = exit::BAD_INPUT;
        }
    }
    code
}
