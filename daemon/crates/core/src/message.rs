//! The vocabulary of an outbox message: how much it matters (category), how it goes (channel)
//! and where it is in its life (status).
//!
//! They sit at the bottom because every layer speaks them: the configuration sets validity and
//! quiet-hour rules per category, templates are written per channel, the store writes all three
//! into its columns, and delivery moves a message from one status to the next.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
