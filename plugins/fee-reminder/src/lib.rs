//! fee-reminder: the standard fee reminder workflow, as shipped. The ladder, the late fee rule
//! and the balance alerts live in the `fee-ladder` library (see its docs for the rules owners
//! notice); this crate only exports them as a plugin. A community with its own rule builds its
//! plugin on `fee-ladder` the same way (see `payment-plan-reminder`).

pub use fee_ladder::*;

wuye_plugin_sdk::export_plugin!(FeeReminder);
wuye_plugin_sdk::manifest!(include_str!("../../fee-ladder/manifest.toml"));
