//! An outbox message as the store keeps it: the row, its states and the vocabulary its columns
//! are written in (category, channel, status), and the idempotency key that makes it unique.
//!
//! These live with the table rather than with the dispatcher that works it, so the store depends
//! on nothing above it; `deliver` re-exports them under the names its callers know.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How much a message matters, which decides quiet hours, opt-out and validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Bills, callbacks: owners cannot opt out; waits for quiet hours to end.
    Transactional,
    /// Water cut-off, lift out of order: goes at once, day or night.
    Urgent,
    /// Surveys, events: owners may opt out per channel.
    Informational,
}

/// A way to reach someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

/// Where a message is in its life. `unknown` is explicit: the daemon handed a message over and
/// lost the answer, which must never be mistaken for "not sent" (duplicate SMS) or "sent" (lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    /// Waiting for quiet hours to end or a provider limit to pass.
    Deferred,
    Sending,
    Sent,
    /// A temporary failure; retried at `next_attempt_at`.
    Failed,
    /// Dead letter: a permanent failure, with the server's reason.
    Dead,
    Expired,
    Cancelled,
    Unknown,
}

macro_rules! string_enum {
    ($t:ty, $($v:ident = $s:literal),+ $(,)?) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$v),)+
                    _ => Err(format!("expected one of {}, got {s:?}", [$($s),+].join(", "))),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    Category,
    Transactional = "transactional",
    Urgent = "urgent",
    Informational = "informational"
);
string_enum!(Channel, Email = "email", Sms = "sms");
string_enum!(
    Status,
    Pending = "pending",
    Deferred = "deferred",
    Sending = "sending",
    Sent = "sent",
    Failed = "failed",
    Dead = "dead",
    Expired = "expired",
    Cancelled = "cancelled",
    Unknown = "unknown",
);

impl Status {
    /// Every state, in a message's usual order of life.
    pub const ALL: [Status; 9] = [
        Status::Pending,
        Status::Deferred,
        Status::Sending,
        Status::Sent,
        Status::Failed,
        Status::Dead,
        Status::Expired,
        Status::Cancelled,
        Status::Unknown,
    ];

    /// What the state means for an administrator, and what to do about it (`wuyed outbox
    /// list`'s legend).
    pub fn meaning(self) -> &'static str {
        match self {
            Status::Pending => "queued, goes out at its next try",
            Status::Deferred => "held back by quiet hours or a provider's limit; goes out later",
            Status::Sending => "handed to the mail server or SMS provider, answer awaited",
            Status::Sent => "accepted by the mail server or SMS provider",
            Status::Failed => "a temporary failure; tried again automatically at its next try",
            Status::Dead => {
                "given up: refused for good or too many failed tries (see the note); fix the \
                 cause, then `wuyed outbox retry ID`"
            }
            Status::Expired => "not sent within its category's validity; no longer sent",
            Status::Cancelled => {
                "not sent: its reason went away (bill paid), an opt-out, or an administrator"
            }
            Status::Unknown => {
                "the send was interrupted and the outcome is not known: check with the provider, \
                 then `wuyed outbox retry ID` or `cancel ID`"
            }
        }
    }
}

impl Channel {
    pub fn other(self) -> Channel {
        match self {
            Channel::Email => Channel::Sms,
            Channel::Sms => Channel::Email,
        }
    }
}

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
