//! Configuration: read the files, check everything, hand the daemon a [`Settings`] it can trust.
//!
//! Loading is two stages, as in Vector: the files are deserialised into the loose `*File` types
//! of [`model`], then compiled into [`Settings`], collecting every error (with file, key path and
//! line where known) instead of stopping at the first. A reload runs the same path and swaps only
//! when it succeeded.

mod model;
pub mod secret;

pub use model::*;

// CONTRACT (filled by the config work): `load`, `Settings`, `Community`, `Workflow`, `ConfigErrors`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono_tz::Tz;

use crate::schedule::{Calendar, Schedule};

/// The checked configuration the daemon runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config directory everything relative is resolved against.
    pub dir: PathBuf,
    pub daemon: DaemonFile,
    /// `daemon.data_dir`, resolved.
    pub data_dir: PathBuf,
    pub communities: Vec<Arc<Community>>,
}

#[derive(Debug, Clone)]
pub struct Community {
    /// The file it came from, for messages.
    pub file: PathBuf,
    pub id: String,
    pub name: String,
    pub tz: Tz,
    pub calendar: Option<Arc<Calendar>>,
    pub workflows: Vec<Workflow>,
    /// Everything else as written.
    pub raw: CommunityFile,
}

#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    /// Resolved path of the plugin's `.wasm`.
    pub plugin_path: PathBuf,
    /// None for a workflow that only reacts to events and timers.
    pub schedule: Option<Schedule>,
    pub catch_up: CatchUp,
    pub catch_up_window: chrono::Duration,
    pub jitter: chrono::Duration,
    pub raw: WorkflowFile,
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path as the user gave it (relative to where they ran the command when possible).
    pub file: PathBuf,
    /// Dotted key path (`workflows.fee_reminder.schedule`), empty for a whole-file problem.
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Every problem found; never empty.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} configuration error(s)", .0.len())]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// Reads and checks the configuration in `dir`.
pub fn load(dir: &Path) -> Result<Settings, ConfigErrors> {
    let _ = dir;
    todo!()
}
