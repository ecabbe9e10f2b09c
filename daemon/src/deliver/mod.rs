//! Getting messages to owners and staff: outbox, channels, templates, quiet hours, retries.

use serde::{Deserialize, Serialize};

/// `[delivery]` in wuyed.toml.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {}

/// `[delivery]` in a community file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityDelivery {}
