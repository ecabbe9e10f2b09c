//! placeholder
pub struct PluginExecutor;
