//! The wasmtime host for community plugins.
//!
//! Community rules (who gets a reminder and when, escalation intervals, wording) are wasm
//! components written against the versioned WIT package in `plugin-sdk/wit/`. They decide; the
//! daemon acts: a hook reads its community through [`data::CommunityData`] and answers with
//! [`intent::Intent`]s that are buffered and applied in the transaction that completes the run
//! (a run's effects commit with it or not at all), so a plugin that traps half-way has done
//! nothing.
//!
//! A buggy or hostile plugin must be harmless to owners and to other communities, hence: a WASI
//! context with nothing in it (no files, env, sockets; clocks are the daemon's [`wuye_core::clock`]),
//! a CPU deadline by epoch interruption, a memory cap, caps on intents, payloads, logs and on
//! everything a run hands over added up, a quota on what a plugin keeps in each community's kv
//! store, and a fresh instance per run. What a run asks for may name only its own community's
//! households, owners, bills and tickets (checked when it commits, `daemon/src/wiring/scope.rs`). Limits
//! come from `[plugins]` in wuyed.toml and may be lowered, never raised, per community
//! (`[limits]`), always within the hard ceilings (`wuye_config::plugin_limits::ceiling`, where `wuyed check` applies
//! the same rules).
//!
//! - [`host`]: the engine, loading (with an on-disk compile cache and hot reload) and running a hook.
//! - [`wit`]: one binding module per supported WIT version, adapting each to the current types.
//! - [`data`]: what a plugin may read, as a trait bound to one community, plus an in-memory one.
//! - [`intent`]: what a plugin may ask for, and the sink the daemon applies it through.
//! - [`executor`]: the scheduler's [`wuye_scheduler::Executor`] backed by plugins.
//! - [`fixture`]: the TOML fixtures of `wuyed plugin test`.
//! - [`manifest`]: what a plugin declares it needs (params, templates), for `wuyed check`.

pub mod data;
pub mod executor;
pub mod fixture;
pub mod host;
pub mod intent;
pub mod manifest;
mod sandbox_io;
pub mod wit;

#[cfg(test)]
mod sandbox_tests;
#[cfg(any(test, feature = "test-plugins"))]
pub mod test_plugins;

pub use data::{CommunityData, DataSource, KvRead, KvUsage, MemoryData, MemoryKv};
pub use executor::{PluginExecutor, ReloadSummary};
pub use host::{
    Hook, LoadError, LoadedPlugin, PluginHost, Reload, RunFailure, RunInput, RunReport,
};
pub use intent::{Intent, IntentSink};
pub use wit::{SUPPORTED_VERSIONS, WitVersion};
/// The limits are configuration, checked by `wuyed check` with the same rules a run applies.
pub use wuye_config::plugin_limits::{EPOCH_TICK, LimitOverrides, Limits, PluginSettings, ceiling};

/// Loads, type-checks and links a plugin file against the supported WIT worlds, for
/// `config::LoadOptions::plugin_check` (`wuyed check`, and every config load of the daemon). The
/// message does not repeat the path: the caller names the file.
pub fn check_file(path: &std::path::Path) -> Result<(), String> {
    static HOST: std::sync::OnceLock<Result<PluginHost, String>> = std::sync::OnceLock::new();
    let host = HOST
        .get_or_init(|| PluginHost::new(host::HostOptions::default()).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| format!("the plugin host cannot start: {e}"))?;
    match host.check(path) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            let prefix = format!("{}: ", path.display());
            Err(text.strip_prefix(&prefix).unwrap_or(&text).to_string())
        }
    }
}
