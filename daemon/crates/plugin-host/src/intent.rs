//! What a plugin may ask for, in the host's current types (every WIT version is adapted to these),
//! and [`IntentSink`], through which the daemon applies them when the run commits.
//!
//! Intents name owners and households by id and staff by role; resolving contacts, opt-outs,
//! quiet hours, rate limits and idempotency is the delivery side's job.

use std::any::Any;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use wuye_config::Role;
use wuye_scheduler::{EffectSummary, RunRequest};
use wuye_store::Tx;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Transactional,
    Urgent,
    Informational,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Preferred,
    Email,
    Sms,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    Owner(String),
    Household(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub to: Recipient,
    pub template: String,
    pub vars: Vec<(String, String)>,
    pub channel: Channel,
    pub category: Category,
    /// Ladder rung; part of the idempotency key.
    pub step: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffNotice {
    pub role: Role,
    pub template: String,
    pub vars: Vec<(String, String)>,
    pub step: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewTicket {
    pub household: Option<String>,
    pub kind: String,
    pub summary: String,
}

/// One decision of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "intent", rename_all = "snake_case")]
pub enum Intent {
    Send(Message),
    NotifyStaff(StaffNotice),
    SetTimer { at: DateTime<Utc>, payload: String },
    CreateTicket(NewTicket),
}

impl Intent {
    /// Every byte of text the plugin put into it, recipient and ticket household included:
    /// what is held to `max_payload_bytes` alone and counted towards `max_run_bytes`.
    pub fn payload_len(&self) -> usize {
        let vars = |v: &[(String, String)]| v.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        match self {
            Intent::Send(m) => {
                let to = match &m.to {
                    Recipient::Owner(id) | Recipient::Household(id) => id.len(),
                };
                to + m.template.len() + m.step.len() + vars(&m.vars)
            }
            Intent::NotifyStaff(n) => n.template.len() + n.step.len() + vars(&n.vars),
            Intent::SetTimer { payload, .. } => payload.len(),
            Intent::CreateTicket(t) => {
                t.household.as_ref().map_or(0, String::len) + t.kind.len() + t.summary.len()
            }
        }
    }

    /// What it is, for an error naming it.
    pub fn what(&self) -> &'static str {
        match self {
            Intent::Send(_) => "message",
            Intent::NotifyStaff(_) => "staff notice",
            Intent::SetTimer { .. } => "timer payload",
            Intent::CreateTicket(_) => "ticket",
        }
    }
}

pub use wuye_store::plugin_kv::KvWrite;

/// Applies a run's intents inside the transaction that completes it: messages and staff notices
/// into the outbox, timers into the scheduler's timer table, tickets into the desk's queue.
///
/// WIRING (lead): the daemon connects this to the delivery outbox, the scheduler's timers and the
/// domain's tickets. Key-value writes are not here: the plugin executor writes them itself
/// (store/plugin_kv.rs).
pub trait IntentSink: Send + Sync + 'static {
    /// `prepared` is what [`IntentSink::prepare`]'s [`Preparation`] made of these intents while
    /// the plugin ran, if anything.
    fn apply(
        &self,
        tx: &Tx<'_>,
        run: &RunRequest,
        intents: &[Intent],
        prepared: Option<Prepared>,
    ) -> anyhow::Result<EffectSummary>;

    /// Work the sink can do on a run's intents as the plugin asks for them, outside the
    /// transaction and on its own thread (rendering a large run's messages), so that less is
    /// left for the transaction. `None` (the default): nothing ahead of [`IntentSink::apply`].
    fn prepare(&self, run: &RunRequest) -> Option<Arc<dyn Preparation>> {
        let _ = run;
        None
    }
}

/// Watches a run's intents as the plugin asks for them (see [`IntentSink::prepare`]). Called
/// from the thread running the plugin, so `observe` must return quickly.
pub trait Preparation: Send + Sync {
    /// The run's `index`th intent (its position in what [`IntentSink::apply`] gets).
    fn observe(&self, index: usize, intent: &Intent);
    /// The plugin is done: waits for the work under way and hands it over.
    fn finish(&self) -> Prepared;
    /// The run failed: stops the work, of which nothing will be applied.
    fn abandon(&self);
}

/// What a [`Preparation`] made, for the [`IntentSink`] that started it; opaque to the executor.
pub struct Prepared(pub Box<dyn Any + Send>);
