//! Helpers shared by the integration tests that drive the built `faultline` binary (each test
//! file uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `faultline ARGS...`, run from the repository's root, not yet started.
pub fn faultline_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faultline"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// `faultline ARGS...`, run from the repository's root, to its end.
pub fn faultline(args: &[&str]) -> Output {
    faultline_command(args).output().expect("the binary runs")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A path inside the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}
