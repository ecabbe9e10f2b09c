//! Where the daemon's parts meet: the plugin host reads community data from the domain store
//! ([`StoreData`]) and its intents become outbox messages, durable timers and desk tickets
//! ([`OutboxSink`]), all inside the transaction that completes the run (a large run's messages
//! are rendered before it, while the plugin still decides: `ahead`).
//!
//! Each part defines the narrow trait it needs (`plugin::DataSource`, `plugin::IntentSink`,
//! `deliver::Directory`) and stays testable alone; only this module knows all of them.

mod ahead;
mod data;
mod records;
mod scope;
mod sink;

pub use data::StoreData;
pub use sink::{OutboxSink, host_variables, variables as template_variables};

pub use crate::config::templates::OWNER_LINK_VARIABLES;
