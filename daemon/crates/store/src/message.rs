//! An outbox message as the store keeps it: the row and the idempotency key that makes it unique.
//! The words its columns are written in (category, channel, status) are the core's
//! ([`wuye_core::message`]), re-exported here and by `deliver` under the names callers know.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

pub use wuye_core::message::{Category, Channel, Status};

/// One row of the outbox: a rendered message to one recipient on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: i64,
    pub community: String,
    pub workflow: String,
    /// The run's due instant (RFC 3339) or `timer:<id>`.
    pub slot: String,
    /// `household:<id>`, `owner:<id>` or `staff:<id>`.
    pub recipient: String,
    pub step: String,
    pub channel: Channel,
    /// Email address or phone number (E.164 or national).
    pub address: String,
    pub display_name: Option<String>,
    pub locale: String,
    pub category: Category,
    /// `<workflow>/<name>`, for the record and provider template lookup.
    pub template: String,
    pub subject: Option<String>,
    pub body_text: String,
    pub body_html: Option<String>,
    /// The SMS provider's approved template code, where it needs one.
    pub sms_code: Option<String>,
    /// The template's parameters in order, as (name, value).
    pub sms_params: Vec<(String, String)>,
    /// What the message is about, for the re-check before sending.
    pub reason: serde_json::Value,
    /// `<hex@domain>`, derived from the idempotency key: the same for every attempt.
    pub message_id: String,
    pub status: Status,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub provider_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl OutboxMessage {
    /// The idempotency key as one string (community, workflow, slot, recipient, step).
    pub fn idempotency_key(&self) -> String {
        idempotency_key(
            &self.community,
            &self.workflow,
            &self.slot,
            &self.recipient,
            &self.step,
        )
    }

    /// What picks the minute a message held by quiet hours goes out at, within the spread: the
    /// idempotency key without the store's row ids in it (a timer's id in the slot, an event
    /// run's id in the step). The minute is then the same in any copy of the store, so
    /// `wuyed simulate` running communities on separate copies shows the daemon's minutes. A
    /// scheduled message's seed is its key.
    pub fn spread_seed(&self) -> String {
        let slot = match self.slot.strip_prefix("timer:") {
            Some(_) => "timer",
            None => &self.slot,
        };
        let step = match self.step.rsplit_once("@run") {
            Some((base, id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => base,
            _ => &self.step,
        };
        idempotency_key(&self.community, &self.workflow, slot, &self.recipient, step)
    }

    /// The address as logs and the CLI may show it.
    pub fn masked_address(&self) -> String {
        mask_address(self.channel, &self.address)
    }
}

/// Masks an owner's address for logs and CLI output (`138****1234`, `z***@example.com`).
pub fn mask_address(channel: Channel, address: &str) -> String {
    match channel {
        Channel::Email => wuye_core::privacy::mask_email(address),
        Channel::Sms => wuye_core::privacy::mask_phone(address),
    }
}

pub fn idempotency_key(
    community: &str,
    workflow: &str,
    slot: &str,
    recipient: &str,
    step: &str,
) -> String {
    // The unit separator cannot appear in ids, so no two keys join to the same string.
    [community, workflow, slot, recipient, step].join("\u{1f}")
}

/// A short stable digest of the idempotency key: Message-ID, provider ids, file names.
pub fn key_digest(key: &str) -> String {
    let d = Sha256::digest(key.as_bytes());
    hex::encode(&d[..16])
}
