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

use wuye_config::{Community, Workflow};
pub use wuye_store::runs::{EffectSummary, Effects, Trigger};

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

/// Carries out runs. The plugin host is the real one; tests and the foundation use simpler ones.
pub trait Executor: Send + Sync + 'static {
    fn execute(
        &self,
        run: RunRequest,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Effects>> + Send + '_>>;
}

#[cfg(test)]
mod tests;
