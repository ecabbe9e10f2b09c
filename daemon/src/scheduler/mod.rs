//! The daemon's heart: plans due runs, records them exactly once, runs them.
//!
//! The contract between the scheduler and what executes a run (the plugin host): the scheduler
//! hands a [`RunRequest`] to an [`Executor`], which decides without side effects and returns
//! [`Effects`]; the scheduler applies them in the transaction that marks the run done, so a crash
//! mid-run leaves nothing behind and the run is simply redone.
//!
//! The runtime ([`Scheduler`], in `runtime.rs`) keeps no state that matters in memory: cursors,
//! run rows and timers are in the store, so a restart, a reload or a second handle on the
//! database cannot plan a slot twice. It sleeps until the earliest thing it knows is coming (a
//! slot, a planned run's jittered start, a timer) on the injected clock, and wakes early only for
//! a finished run, a reload, a shutdown or an explicit [`SchedulerHandle::wake`].

pub mod events;
mod log_executor;
mod runtime;

pub use log_executor::LogExecutor;
pub use runtime::{
    Liveness, NextSlot, Scheduler, SchedulerHandle, SlotSource, Status, configured_slots,
};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::{Community, Workflow};
use crate::store::Tx;

/// Why a run happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A schedule slot came due.
    Schedule,
    /// A durable timer set by a plugin fired; the payload is the plugin's.
    Timer { timer_id: i64, payload: String },
    /// Something happened (ticket closed, payment posted, survey answered).
    Event { kind: String, payload: String },
}

/// Everything an executor needs to carry out one run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub run_id: i64,
    pub community: Arc<Community>,
    pub workflow: Workflow,
    /// The slot (or timer/event instant) the run belongs to: part of every idempotency key.
    pub due_at: DateTime<Utc>,
    pub trigger: Trigger,
}

/// The decisions of a run, applied atomically with its completion.
pub type Effects = Box<dyn FnOnce(&Tx<'_>) -> anyhow::Result<EffectSummary> + Send>;

/// What a run did, for the audit table and the log.
#[derive(Debug, Clone, Default)]
pub struct EffectSummary {
    pub messages: usize,
    pub timers: usize,
    pub notes: Vec<String>,
}

impl EffectSummary {
    /// One line for the audit table and the log: `2 message(s), 1 timer(s); note; note`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} message(s), {} timer(s)", self.messages, self.timers);
        for note in &self.notes {
            text.push_str("; ");
            text.push_str(note);
        }
        text
    }
}

/// Carries out runs. The plugin host is the real one; tests and the foundation use simpler ones.
pub trait Executor: Send + Sync + 'static {
    fn execute(
        &self,
        run: RunRequest,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Effects>> + Send + '_>>;
}

#[cfg(test)]
mod tests;
