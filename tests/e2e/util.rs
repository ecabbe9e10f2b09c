//! Shared helpers for the end-to-end tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `wuyed` binary cargo built for this test run.
pub fn wuyed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wuyed"))
}

/// The repository root (for the shipped `config/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("daemon/ has a parent")
        .to_path_buf()
}

/// Runs `wuyed` with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    wuyed().args(args).output().expect("failed to start wuyed")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
