//! wuye: the service desk's routine work for property-management communities, on schedule,
//! exactly once, politely, at sane hours.
//!
//! The `wuyed` binary is a thin shell over this library (see `main.rs`). The layers below the
//! CLI are crates of their own (`daemon/crates/`, docs/ARCHITECTURE.md), named here as modules:
//!
//! - [`config`]: the TOML files, validated up front, and each component's typed settings.
//! - [`schedule`]: crontab, timezones, business calendars, catch-up: pure functions of time.
//! - [`store`]: SQLite, the only place that writes SQL.
//! - [`scheduler`]: turns schedules into run rows exactly once and executes them.
//! - [`plugin`]: the sandboxed wasm host community rules run in.
//! - [`deliver`]: the outbox and the channels that get messages to owners.
//! - [`http`]: the API billing and desk systems push to, and owners' survey answers.
//! - [`metrics`]: what Prometheus scrapes at `/metrics`.
//! - [`clock`]: the one injectable source of time.
//!
//! What stays in this crate is what needs several of them at once:
//!
//! - [`wiring`]: plugins reading the store and their intents becoming outbox rows.
//! - [`domain`]: the service desk's values, plus the CSV importer and the contact directory.
//! - [`report`]: satisfaction, callback and fee reports for the monthly report.
//! - [`cli`]: one module per subcommand.
//! - [`systemd`]: readiness notification under systemd.

// The layers below, as their own crates: named here as modules so paths read the same everywhere
// (`crate::store::Tx`, `wuye::deliver::Dispatcher`).
pub use wuye_config as config;
pub use wuye_core::{blocking, clock, exit, privacy};
pub use wuye_deliver as deliver;
pub use wuye_http as http;
pub use wuye_metrics as metrics;
pub use wuye_plugin_host as plugin;
pub use wuye_schedule as schedule;
pub use wuye_scheduler as scheduler;
pub use wuye_store as store;

pub mod cli;
pub mod domain;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod logging;
pub mod report;
pub mod systemd;
pub mod wiring;

/// mimalloc rather than the system allocator, for every binary built on this library (the
/// daemon, its tests and benchmarks). A large run renders on one thread and frees on another,
/// and glibc's arenas made that hand-over cost as much as the rendering (the workflows bench,
/// docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
