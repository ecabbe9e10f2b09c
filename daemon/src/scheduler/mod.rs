//! The daemon's heart: plans due runs, records them exactly once, runs them.
//!
//! CONTRACT (filled by the scheduler work) between the scheduler and what executes a run (the
//! plugin host): the scheduler hands a [`RunRequest`] to an [`Executor`], which decides without
//! side effects and returns [`Effects`]; the scheduler applies them in the transaction that marks
//! the run done.

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

/// Carries out runs. The plugin host is the real one; tests and the foundation use simpler ones.
pub trait Executor: Send + Sync + 'static {
    fn execute(
        &self,
        run: RunRequest,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Effects>> + Send + '_>>;
}
