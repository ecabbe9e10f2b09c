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

/// The variables through which the host gives a message its link to an owner page (a survey
/// invitation's `link`, an event announcement's `event.rsvp_link`), as templates write them:
/// `wuyed check` looks for them to tell whether a workflow's messages carry such links.
pub const OWNER_LINK_VARIABLES: [&str; 2] = ["link", "event.rsvp_link"];
