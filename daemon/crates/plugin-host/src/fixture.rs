//! Fixtures for `wuyed plugin test`: one community's data, the run to make, and the virtual time
//! it happens at, in one TOML file a plugin author writes by hand.
//!
//! ```toml
//! [run]
//! hook = "schedule"              # schedule | timer | event
//! now = "2026-09-23T01:00:00Z"   # the virtual clock (UTC)
//! params = { notify = "manager" }
//!
//! [kv]
//! beats = "41"
//!
//! [community]
//! id = "lakeside"
//! [[community.households]]
//! id = "1-101"
//! owners = ["o1"]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use super::LimitOverrides;
use super::data::MemoryData;
use super::host::Hook;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    #[serde(default)]
    pub run: FixtureRun,
    /// Lower the limits for this test (same keys as a community's `[limits]`).
    #[serde(default)]
    pub limits: Option<LimitOverrides>,
    /// The plugin's key-value store before the run.
    #[serde(default)]
    pub kv: BTreeMap<String, String>,
    pub community: MemoryData,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureRun {
    /// Workflow name; defaults to the plugin's file stem.
    pub workflow: Option<String>,
    #[serde(default)]
    pub hook: HookKind,
    /// Virtual time of the run (default 2026-01-01T00:00:00Z).
    #[serde(default = "default_now")]
    pub now: DateTime<Utc>,
    /// The slot the run belongs to (default: `now`).
    pub due_at: Option<DateTime<Utc>>,
    /// Timer or event payload.
    #[serde(default)]
    pub payload: String,
    /// Event kind (`ticket.closed`), for `hook = "event"`.
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub params: toml::Table,
}

impl Default for FixtureRun {
    fn default() -> Self {
        FixtureRun {
            workflow: None,
            hook: HookKind::Schedule,
            now: default_now(),
            due_at: None,
            payload: String::new(),
            event: String::new(),
            params: toml::Table::new(),
        }
    }
}

fn default_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    #[default]
    Schedule,
    Timer,
    Event,
}

impl FixtureRun {
    pub fn hook(&self) -> Hook {
        match self.hook {
            HookKind::Schedule => Hook::Schedule,
            HookKind::Timer => Hook::Timer {
                payload: self.payload.clone(),
            },
            HookKind::Event => Hook::Event {
                kind: self.event.clone(),
                payload: self.payload.clone(),
            },
        }
    }
}

impl Fixture {
    /// Reads a fixture; errors name the file, and toml's message names the key and line.
    pub fn load(path: &Path) -> anyhow::Result<Fixture> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read fixture: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}
