//! The stand-in executor used until the plugin host is wired in: it decides nothing and records
//! that the run happened, which is enough to see the scheduler at work on the demo config.

use std::future::Future;
use std::pin::Pin;

use super::{EffectSummary, Effects, Executor, RunRequest};

/// Logs each run and leaves an audit note "ran"; sends nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogExecutor;

impl Executor for LogExecutor {
    fn execute(
        &self,
        run: RunRequest,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Effects>> + Send + '_>> {
        Box::pin(async move {
            tracing::info!(
                community = %run.community.id,
                workflow = %run.workflow.name,
                run_id = run.run_id,
                trigger = ?run.trigger,
                "run executed by the log executor (no plugin host wired in)"
            );
            let effects: Effects = Box::new(|_tx| {
                Ok(EffectSummary {
                    notes: vec!["ran".to_string()],
                    ..EffectSummary::default()
                })
            });
            Ok(effects)
        })
    }
}
