//! The wasmtime host for community plugins.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[plugins]` in wuyed.toml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// Where plugin names (`plugin = "fee_reminder"`) are looked up as `<dir>/<name>.wasm`;
    /// relative to the config directory.
    #[serde(default = "default_plugin_dir")]
    pub dir: PathBuf,
}

impl Default for PluginSettings {
    fn default() -> Self {
        PluginSettings {
            dir: default_plugin_dir(),
        }
    }
}

fn default_plugin_dir() -> PathBuf {
    PathBuf::from("../target/wasm32-wasip2/release")
}

/// `[limits]` in a community file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {}
