//! `[plugins]` in wuyed.toml and `[limits]` in a community file: how much CPU, memory, output and
//! storage one plugin run may use.
//!
//! A community's administrator may lower the daemon's limits for its own plugins, never raise
//! them, and the daemon's administrator may loosen the defaults only up to the hard ceilings
//! below. The rules are here, with the configuration, so `wuyed check` and the plugin host apply
//! the same ones: the check refuses what a run would.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Hard ceilings no configuration can exceed: a community's admin can make its plugins stricter,
/// and the daemon's admin can loosen defaults, but only up to here.
pub mod ceiling {
    pub const DEADLINE_MS: u64 = 10_000;
    pub const MEMORY_MIB: u64 = 512;
    pub const MAX_INTENTS: u32 = 100_000;
    pub const MAX_PAYLOAD_BYTES: u32 = 1024 * 1024;
    pub const MAX_LOG_BYTES: u32 = 1024 * 1024;
    /// How far ahead a plugin may set a timer: a timer asked for later fires at this horizon
    /// (the plugin can set the next one then). A year and a bit, so an annual reminder fits.
    pub const TIMER_HORIZON_DAYS: i64 = 400;
    /// Timers one workflow of one community may have pending at once. A run that would pass it
    /// fails whole, so a plugin that sets timers in a loop cannot fill the database.
    pub const PENDING_TIMERS: i64 = 10_000;
    /// Bytes one run may hand the host in all (see `plugins.max_run_bytes`).
    pub const MAX_RUN_BYTES: u32 = 256 * 1024 * 1024;
    /// Bytes (keys and values) one plugin may keep in one community's kv store.
    pub const KV_MAX_BYTES: u32 = 1024 * 1024 * 1024;
    /// Keys one plugin may keep in one community's kv store.
    pub const KV_MAX_KEYS: u32 = 5_000_000;
}

/// How often the epoch ticks: the granularity of the CPU deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// `[plugins]` in wuyed.toml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// Where plugin names (`plugin = "fee_reminder"`) are looked up as `<dir>/<name>.wasm`;
    /// relative to the config directory.
    #[serde(default = "default_plugin_dir")]
    pub dir: PathBuf,
    /// CPU time one hook call may take, in milliseconds (default 1000, at most 10000). Enforced by
    /// epoch interruption in 10 ms ticks.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Linear memory one plugin instance may use, in MiB (default 64, at most 512).
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Intents (messages, notices, timers, tickets, kv writes) one run may produce (default 30000).
    #[serde(default = "default_max_intents")]
    pub max_intents: u32,
    /// Size of one intent (template variables, timer payload, kv value), in bytes (default 65536).
    #[serde(default = "default_max_payload_bytes")]
    pub max_payload_bytes: u32,
    /// Log output of one run, in bytes (default 65536); beyond it lines are truncated with a marker.
    #[serde(default = "default_max_log_bytes")]
    pub max_log_bytes: u32,
    /// Every string one run hands the host, added up (default 32 MiB, at most 256 MiB): message
    /// variables, recipients, ticket text, kv keys and values, timer payloads, the log lines and
    /// fields it keeps. Each intent is also held to `max_payload_bytes`, and their number to
    /// `max_intents`; this bounds what they add up to, which those two alone let reach 640 MiB.
    #[serde(default = "default_max_run_bytes")]
    pub max_run_bytes: u32,
    /// What one plugin may keep in one community's kv store: keys and values, in bytes (default
    /// 32 MiB, at most 1 GiB). A run that would leave more fails whole.
    #[serde(default = "default_kv_max_bytes")]
    pub kv_max_bytes: u32,
    /// Keys one plugin may keep in one community's kv store (default 200000, at most 5000000).
    #[serde(default = "default_kv_max_keys")]
    pub kv_max_keys: u32,
    /// After this many failed runs in a row a workflow is paused for its community and its staff
    /// are told (default 3).
    #[serde(default = "default_pause_after")]
    pub pause_after_failures: u32,
}

impl Default for PluginSettings {
    fn default() -> Self {
        PluginSettings {
            dir: default_plugin_dir(),
            deadline_ms: default_deadline_ms(),
            memory_mib: default_memory_mib(),
            max_intents: default_max_intents(),
            max_payload_bytes: default_max_payload_bytes(),
            max_log_bytes: default_max_log_bytes(),
            max_run_bytes: default_max_run_bytes(),
            kv_max_bytes: default_kv_max_bytes(),
            kv_max_keys: default_kv_max_keys(),
            pause_after_failures: default_pause_after(),
        }
    }
}

fn default_plugin_dir() -> PathBuf {
    PathBuf::from("../target/wasm32-wasip2/release")
}
fn default_deadline_ms() -> u64 {
    1000
}
fn default_memory_mib() -> u64 {
    64
}
/// Messages and kv writes count together, and a fee run writes one of each per household (the
/// reminder and its ladder entry): 30,000 carries a 10,000-household community with room for
/// the run's notices and timers (10,000 refused such a run at its 5,000th household). Raised
/// rather than split into a second cap: what the count guards against is a run holding too
/// much until it commits, whatever kind of intent it is, and `max_run_bytes` bounds the bytes.
fn default_max_intents() -> u32 {
    30_000
}
fn default_max_payload_bytes() -> u32 {
    64 * 1024
}
fn default_max_log_bytes() -> u32 {
    64 * 1024
}
/// A run to a few thousand households carries a few MiB; 32 leaves room for 20,000 bill notices
/// and keeps a run that pushes every intent to its payload cap from holding 640 MiB.
fn default_max_run_bytes() -> u32 {
    32 * 1024 * 1024
}
/// The standard plugins keep a key per unpaid bill or open ticket, tens of bytes each: 32 MiB
/// and 200,000 keys hold a 100,000-household community's ladder several times over.
fn default_kv_max_bytes() -> u32 {
    32 * 1024 * 1024
}
fn default_kv_max_keys() -> u32 {
    200_000
}
fn default_pause_after() -> u32 {
    3
}

/// `[limits]` in a community file: each may only lower the daemon's `[plugins]` value.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub max_intents: Option<u32>,
    pub max_payload_bytes: Option<u32>,
    pub max_log_bytes: Option<u32>,
    pub max_run_bytes: Option<u32>,
    pub kv_max_bytes: Option<u32>,
    pub kv_max_keys: Option<u32>,
}

/// The limits one hook call runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub deadline: Duration,
    pub memory_bytes: usize,
    pub max_intents: usize,
    pub max_payload_bytes: usize,
    pub max_log_bytes: usize,
    pub max_run_bytes: usize,
    /// What the plugin may keep in this community's kv store: bytes (keys and values), keys.
    pub kv_max_bytes: usize,
    pub kv_max_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::resolve(&PluginSettings::default(), None).expect("defaults are within ceilings")
    }
}

impl PluginSettings {
    /// Every value above its hard ceiling, as `plugins.<key>` messages.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut above = |key: &str, got: u64, max: u64| {
            if got > max {
                errors.push(format!(
                    "plugins.{key} = {got} is above the hard ceiling {max}"
                ));
            }
            if got == 0 {
                errors.push(format!("plugins.{key} must be greater than 0"));
            }
        };
        above("deadline_ms", self.deadline_ms, ceiling::DEADLINE_MS);
        above("memory_mib", self.memory_mib, ceiling::MEMORY_MIB);
        above(
            "max_intents",
            self.max_intents.into(),
            ceiling::MAX_INTENTS.into(),
        );
        above(
            "max_payload_bytes",
            self.max_payload_bytes.into(),
            ceiling::MAX_PAYLOAD_BYTES.into(),
        );
        above(
            "max_log_bytes",
            self.max_log_bytes.into(),
            ceiling::MAX_LOG_BYTES.into(),
        );
        above(
            "max_run_bytes",
            self.max_run_bytes.into(),
            ceiling::MAX_RUN_BYTES.into(),
        );
        above(
            "kv_max_bytes",
            self.kv_max_bytes.into(),
            ceiling::KV_MAX_BYTES.into(),
        );
        above(
            "kv_max_keys",
            self.kv_max_keys.into(),
            ceiling::KV_MAX_KEYS.into(),
        );
        errors
    }
}

impl Limits {
    /// The daemon's limits, lowered by a community's `[limits]`. Raising one is an error naming
    /// the key (`limits.memory_mib = 128 is above plugins.memory_mib = 64 ...`).
    pub fn resolve(
        settings: &PluginSettings,
        overrides: Option<&LimitOverrides>,
    ) -> Result<Limits, Vec<String>> {
        let mut errors = settings.check();
        let o = overrides.cloned().unwrap_or_default();
        let mut pick = |key: &str, base: u64, over: Option<u64>| -> u64 {
            match over {
                Some(v) if v > base => {
                    errors.push(format!(
                        "limits.{key} = {v} is above plugins.{key} = {base}: a community may only lower plugin limits"
                    ));
                    base
                }
                Some(0) => {
                    errors.push(format!("limits.{key} must be greater than 0"));
                    base
                }
                Some(v) => v,
                None => base,
            }
        };
        let deadline_ms = pick("deadline_ms", settings.deadline_ms, o.deadline_ms);
        let memory_mib = pick("memory_mib", settings.memory_mib, o.memory_mib);
        let max_intents = pick(
            "max_intents",
            settings.max_intents.into(),
            o.max_intents.map(u64::from),
        );
        let max_payload = pick(
            "max_payload_bytes",
            settings.max_payload_bytes.into(),
            o.max_payload_bytes.map(u64::from),
        );
        let max_log = pick(
            "max_log_bytes",
            settings.max_log_bytes.into(),
            o.max_log_bytes.map(u64::from),
        );
        let max_run = pick(
            "max_run_bytes",
            settings.max_run_bytes.into(),
            o.max_run_bytes.map(u64::from),
        );
        let kv_bytes = pick(
            "kv_max_bytes",
            settings.kv_max_bytes.into(),
            o.kv_max_bytes.map(u64::from),
        );
        let kv_keys = pick(
            "kv_max_keys",
            settings.kv_max_keys.into(),
            o.kv_max_keys.map(u64::from),
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Limits {
            deadline: Duration::from_millis(deadline_ms.min(ceiling::DEADLINE_MS)),
            memory_bytes: (memory_mib.min(ceiling::MEMORY_MIB) * 1024 * 1024) as usize,
            max_intents: max_intents as usize,
            max_payload_bytes: max_payload as usize,
            max_log_bytes: max_log as usize,
            max_run_bytes: max_run as usize,
            kv_max_bytes: kv_bytes as usize,
            kv_max_keys: kv_keys as usize,
        })
    }

    /// The deadline in epoch ticks (at least one).
    pub fn deadline_ticks(&self) -> u64 {
        (self.deadline.as_millis() as u64)
            .div_ceil(EPOCH_TICK.as_millis() as u64)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_community_may_lower_limits_but_not_raise_them() {
        let settings = PluginSettings::default();
        let lowered = LimitOverrides {
            memory_mib: Some(16),
            deadline_ms: Some(200),
            ..LimitOverrides::default()
        };
        let l = Limits::resolve(&settings, Some(&lowered)).unwrap();
        assert_eq!(l.memory_bytes, 16 * 1024 * 1024);
        assert_eq!(l.deadline_ticks(), 20);
        assert_eq!(l.max_intents, 30_000);

        let raised = LimitOverrides {
            memory_mib: Some(128),
            ..LimitOverrides::default()
        };
        let err = Limits::resolve(&settings, Some(&raised)).unwrap_err();
        assert_eq!(
            err,
            vec![
                "limits.memory_mib = 128 is above plugins.memory_mib = 64: a community may only lower plugin limits"
                    .to_string()
            ]
        );
    }

    /// The run's total and the kv quota follow the same rules as every other limit.
    #[test]
    fn run_bytes_and_kv_quota_are_lowered_per_community_and_held_to_their_ceilings() {
        let settings = PluginSettings::default();
        let lowered = LimitOverrides {
            kv_max_keys: Some(500),
            max_run_bytes: Some(1 << 20),
            ..LimitOverrides::default()
        };
        let l = Limits::resolve(&settings, Some(&lowered)).unwrap();
        assert_eq!(
            (l.kv_max_keys, l.kv_max_bytes, l.max_run_bytes),
            (500, 32 << 20, 1 << 20)
        );
        let raised = LimitOverrides {
            kv_max_bytes: Some(64 << 20),
            ..LimitOverrides::default()
        };
        assert_eq!(
            Limits::resolve(&settings, Some(&raised)).unwrap_err(),
            vec![
                "limits.kv_max_bytes = 67108864 is above plugins.kv_max_bytes = 33554432: a community may only lower plugin limits"
                    .to_string()
            ]
        );
        let settings = PluginSettings {
            kv_max_keys: 0,
            max_run_bytes: u32::MAX,
            ..PluginSettings::default()
        };
        assert_eq!(
            settings.check(),
            vec![
                "plugins.max_run_bytes = 4294967295 is above the hard ceiling 268435456"
                    .to_string(),
                "plugins.kv_max_keys must be greater than 0".to_string(),
            ]
        );
    }

    #[test]
    fn the_daemon_cannot_go_past_the_hard_ceilings() {
        let settings = PluginSettings {
            deadline_ms: 60_000,
            ..PluginSettings::default()
        };
        assert_eq!(
            settings.check(),
            vec!["plugins.deadline_ms = 60000 is above the hard ceiling 10000".to_string()]
        );
    }
}
