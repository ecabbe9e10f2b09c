//! Configuration: read the files, check everything, hand the daemon a [`Settings`] it can trust.
//!
//! A config directory holds `wuyed.toml` (the daemon), `communities/*.toml` (one file per
//! community, read in name order) and `calendars/<name>.toml` (business calendars, read by
//! [`wuye_schedule::Calendar`]).
//!
//! Each component's settings live here too, with the rules that check them: `[delivery]`
//! ([`delivery`], the quiet-hour window in [`quiet`]), the message templates under
//! `templates/` ([`templates`]), `[plugins]` and a community's `[limits]` ([`plugin_limits`]),
//! and `[http]` ([`http`]). They are plain data with pure checks, so `wuyed check` refuses
//! exactly what a component would refuse at start, and this crate depends on nothing above the
//! core and the schedule. The components re-export them under the names their callers know.
//!
//! Loading is two stages, as in Vector: the files are deserialised into the `*File` types of
//! `model.rs` (strictly, every struct with `deny_unknown_fields`; see `source.rs` for how one file
//! yields all its errors), then compiled into [`Settings`] by small `check_*` rules
//! (`compile.rs`). Every error names the file, the dotted key and the line where known, and all
//! of them are collected, never just the first. [`check`] returns errors and warnings (what
//! `wuyed check` prints); [`load`] returns the settings or the errors. A reload runs the same path
//! and swaps only when it succeeded.
//!
//! Environment overrides (layered with the `config` crate over the files, see [`LoadOptions`]):
//!
//! - `WUYE_<SECTION>__<KEY>[__<KEY>...]` sets a key of `wuyed.toml`:
//!   `WUYE_DAEMON__DATA_DIR=/var/lib/wuye` sets `daemon.data_dir`, `WUYE_HTTP__LISTEN=0.0.0.0:8760`
//!   sets `http.listen`.
//! - `WUYE_COMMUNITY__<ID>__<KEY>[__<KEY>...]` sets a key of the community whose `id` is `<ID>`
//!   (case-insensitive, `-` in the id written `_`): `WUYE_COMMUNITY__SHUIPAN__QUIET_HOURS__START=22:00`.
//! - A number as a key selects an array item: `WUYE_COMMUNITY__SHUIPAN__STAFF__0__PHONE=...`.
//! - Values are strings; a value starting with `[` or `{` is read as a TOML array or inline table
//!   (`WUYE_COMMUNITY__SHUIPAN__WORKFLOWS__HEARTBEAT__NOTIFIES='["supervisor"]'`,
//!   `WUYE_DELIVERY__EMAIL__SMTP__PASSWORD='{ file = "/run/secrets/smtp" }'`) and replaces the
//!   value in the file whole.
//! - `WUYE_` variables without a `__` (such as `WUYE_CONFIG`) are not overrides.
//!
//! Keys are lowercase in the files, so a key with capitals (inside plugin `params`) cannot be
//! overridden; in a file that has overrides, TOML dates in `params` reach the plugin as strings
//! (the `config` crate has no date type). A file must be valid on its own: an override changes a
//! value, it does not repair a file. An error in a value set by a variable names the variable.

mod compile;
pub mod delivery;
pub mod http;
mod model;
pub mod plugin_limits;
pub mod quiet;
pub mod secret;
mod source;
pub mod templates;

pub use model::*;
/// The 1-based line of a byte offset, for other readers of text files (CSV imports).
pub use source::line_at;
pub use source::{KeyPath, Seg};

pub use compile::DAEMON_FILE;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;

use crate::quiet::QuietWindow;
use wuye_core::domain::Language;
use wuye_schedule::{Calendar, Schedule};

/// The checked configuration the daemon runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config directory everything relative is resolved against.
    pub dir: PathBuf,
    pub daemon: DaemonFile,
    /// `daemon.timezone`, parsed: the zone of days that belong to no one community (the
    /// outbox listing without `--community`, for one).
    pub tz: Tz,
    /// `daemon.data_dir`, resolved.
    pub data_dir: PathBuf,
    pub communities: Vec<Arc<Community>>,
}

/// One community as the daemon runs it: every value parsed and checked once, by `compile`, so
/// no component parses text from a community file again (and none can fall back to a default
/// in silence when a value is bad: that was a `wuyed check` error).
#[derive(Debug, Clone)]
pub struct Community {
    /// The file it came from, for messages.
    pub file: PathBuf,
    pub id: String,
    pub name: String,
    pub tz: Tz,
    pub calendar: Option<Arc<Calendar>>,
    /// `locale`: the language of messages to owners who have none, and of reports.
    pub locale: Language,
    /// `quiet_hours`, in the community's zone.
    pub quiet: QuietWindow,
    /// How long after quiet hours the held messages are spread over: the community's
    /// `delivery.quiet_spread`, else the daemon's.
    pub quiet_spread: chrono::Duration,
    /// `staff`, phones kept as the bare number (`+` and digits) delivery sends to.
    pub staff: Vec<StaffMember>,
    /// `limits`: the community's lowering of plugin limits (held against `[plugins]` by
    /// `wuyed check` and at each run, see `crate::plugin_limits::Limits::resolve`).
    pub limits: Option<crate::plugin_limits::LimitOverrides>,
    /// `[delivery]` (sender, SMS provider, fallback); defaults when the file has none.
    pub delivery: crate::delivery::CommunityDelivery,
    /// The enabled workflows, by name; a disabled one is checked but not listed here.
    pub workflows: Vec<Workflow>,
    /// `workflows.callback_escalation.params`, enabled or not: the callbacks report judges
    /// by its SLA keys even where the escalation itself is switched off (`report::sla_of`).
    pub callback_params: Option<toml::Table>,
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
    /// Roles notified (each staffed, with its escalation ladder).
    pub notifies: Vec<Role>,
    /// Event kinds and families it reacts to (each one the daemon emits).
    pub events: Vec<String>,
    /// `params`, as written: their meaning is the plugin's, and its declaration
    /// (`plugin::manifest`) is held against them by `wuyed check` (`plugin_needs`).
    pub params: toml::Table,
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path as the user gave it (the config directory as given, joined with the file's name).
    /// `environment` for a variable that matches no file.
    pub file: PathBuf,
    /// Dotted key path (`workflows.fee_reminder.schedule`), empty for a whole-file problem.
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

/// `FILE:LINE: KEY: MESSAGE`, leaving out what is unknown; the form `wuyed check` prints and
/// editors can jump to.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found; never empty.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} configuration error{}",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// What a load depends on besides the files, so `wuyed check`, the daemon and tests can each
/// give their own.
#[derive(Clone)]
pub struct LoadOptions {
    /// The environment: `WUYE_` overrides and `{ env = "..." }` secrets are read from it.
    pub env: BTreeMap<String, String>,
    /// Checks a workflow's plugin file once it is known to exist (the plugin host may validate
    /// the component); the message says what is wrong with it.
    pub plugin_check: fn(&Path) -> Result<(), String>,
    /// Today, for warnings such as a calendar that does not cover next year.
    pub today: NaiveDate,
    /// Whether `{ env = ... }` / `{ file = ... }` secrets (API tokens, the SMTP password, SMS
    /// keys) are read and checked. `wuyed run` and `wuyed check` need them; the offline
    /// commands (report, import, outbox, simulate, next) never send or serve anything, so an
    /// administrator can run them from a shell that lacks the daemon's credentials.
    pub resolve_secrets: bool,
}

impl fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The environment may hold secrets: show names only.
        f.debug_struct("LoadOptions")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("today", &self.today)
            .field("resolve_secrets", &self.resolve_secrets)
            .finish_non_exhaustive()
    }
}

impl LoadOptions {
    /// The process environment and today's date from `clock`, secrets resolved: what the
    /// daemon runs on.
    pub fn from_env(clock: &dyn wuye_core::clock::Clock) -> Self {
        LoadOptions {
            env: std::env::vars().collect(),
            plugin_check: plugin_exists,
            today: clock.now().date_naive(),
            resolve_secrets: true,
        }
    }

    /// [`LoadOptions::from_env`] for a command that neither sends nor serves: secrets are left
    /// unread (see [`LoadOptions::resolve_secrets`]).
    pub fn offline(clock: &dyn wuye_core::clock::Clock) -> Self {
        LoadOptions {
            resolve_secrets: false,
            ..LoadOptions::from_env(clock)
        }
    }
}

/// The default plugin check: the file exists, which the loader already established.
pub fn plugin_exists(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// The outcome of checking a configuration directory: the settings when there is no error, and
/// every error and warning found either way.
#[derive(Debug)]
pub struct Report {
    pub settings: Option<Settings>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

/// Reads and checks the configuration in `dir` against the process environment, for the offline
/// commands: secrets are not read, so a missing `WUYE_TOKEN_...` or SMTP password does not stop
/// a report or an import. The daemon loads with [`LoadOptions::from_env`].
pub fn load(dir: &Path) -> Result<Settings, ConfigErrors> {
    load_with(
        dir,
        &LoadOptions::offline(&wuye_core::clock::SystemClock::new()),
    )
}

/// [`load`] with explicit options; warnings are dropped (see [`check`] to get them).
pub fn load_with(dir: &Path, options: &LoadOptions) -> Result<Settings, ConfigErrors> {
    let report = check(dir, options);
    match report.settings {
        Some(settings) if report.errors.is_empty() => Ok(settings),
        _ => Err(ConfigErrors(report.errors)),
    }
}

/// Reads and checks everything in `dir`, collecting every error and warning.
pub fn check(dir: &Path, options: &LoadOptions) -> Report {
    compile::compile(dir, options)
}

/// The line where a dotted key (`plugins.deadline_ms`, `limits.memory_mib`) is written in a
/// configuration file's `text`, or of its nearest written ancestor.
pub fn line_of(text: &str, dotted: &str) -> Option<usize> {
    source::line_of(text, &source::KeyPath::parse(dotted))
}

/// [`line_of`] for a key path built in code, whose keys may hold dots (workflow params).
pub fn line_of_key(text: &str, path: &KeyPath) -> Option<usize> {
    source::line_of(text, path)
}

impl Settings {
    /// The community with this id.
    pub fn community(&self, id: &str) -> Option<&Arc<Community>> {
        self.communities.iter().find(|c| c.id == id)
    }

    /// How many distinct business calendars the communities use.
    pub fn calendar_count(&self) -> usize {
        let mut names: Vec<&str> = self
            .communities
            .iter()
            .filter_map(|c| c.calendar.as_ref().map(|cal| cal.name.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }
}

impl Community {
    /// The enabled workflow with this name.
    pub fn workflow(&self, name: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|w| w.name == name)
    }

    /// A community with every default of an empty file (Shanghai time, no staff, no
    /// workflows), for tests that build settings without files.
    #[doc(hidden)]
    pub fn for_test(id: &str, name: &str) -> Community {
        let tz = chrono_tz::Asia::Shanghai;
        Community {
            file: PathBuf::from(format!("communities/{id}.toml")),
            id: id.to_string(),
            name: name.to_string(),
            tz,
            calendar: None,
            locale: Language::ZhCn,
            quiet: QuietWindow {
                tz,
                start: chrono::NaiveTime::from_hms_opt(21, 0, 0).expect("valid"),
                end: chrono::NaiveTime::from_hms_opt(8, 0, 0).expect("valid"),
            },
            quiet_spread: chrono::Duration::minutes(30),
            staff: Vec::new(),
            limits: None,
            delivery: Default::default(),
            workflows: Vec::new(),
            callback_params: None,
        }
    }
}

impl Workflow {
    /// A workflow of `plugin_path` without schedule, events or params, for tests.
    #[doc(hidden)]
    pub fn for_test(name: &str, plugin_path: &Path) -> Workflow {
        Workflow {
            name: name.to_string(),
            plugin_path: plugin_path.to_path_buf(),
            schedule: None,
            catch_up: CatchUp::default(),
            catch_up_window: chrono::Duration::days(1),
            jitter: chrono::Duration::zero(),
            notifies: Vec::new(),
            events: Vec::new(),
            params: toml::Table::new(),
        }
    }
}
