//! Where blocking work runs: a plugin's run, the commit of a run's effects.
//!
//! The daemon hands such work to tokio's blocking pool, so the scheduler, the dispatcher and the
//! HTTP API go on answering while a plugin computes or SQLite commits. `wuyed simulate` runs
//! each part of a simulation on a thread of its own that has nothing else to answer, and there
//! the hand-off is pure cost: every simulated run woke two pool threads and was woken back
//! twice, on the path of the simulated clock, for a fifth of a simulated year's time. There the
//! work runs in place, on the thread that awaits it.

use std::panic::AssertUnwindSafe;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Blocking {
    /// On tokio's blocking pool (the daemon).
    #[default]
    Pool,
    /// On the awaiting thread (a single-threaded runtime with nothing else to serve).
    InPlace,
}

impl Blocking {
    /// Runs `f` and returns its value, or the message of its panic: a panicking plugin host or
    /// commit fails its run, never the scheduler.
    pub async fn run<T, F>(self, f: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self {
            Blocking::Pool => tokio::task::spawn_blocking(f)
                .await
                .map_err(join_error_message),
            Blocking::InPlace => {
                std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(panic_message)
            }
        }
    }
}

/// Runs `f`, which may block this thread for long (waiting for a database lock another process
/// holds), where it is called. On a worker of a multi-threaded runtime the worker first hands
/// its other tasks to another thread (`block_in_place`), so the API, the dispatcher and the
/// scheduler are not stuck behind it; elsewhere (a blocking-pool thread, a single-threaded
/// runtime, no runtime) it simply runs.
pub fn may_block<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// What a task's `JoinError` says: the panic's message, or why it did not finish.
pub fn join_error_message(err: tokio::task::JoinError) -> String {
    if err.is_panic() {
        panic_message(err.into_panic())
    } else {
        err.to_string()
    }
}

pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    format!("panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_ways_return_the_value_and_turn_a_panic_into_its_message() {
        for way in [Blocking::Pool, Blocking::InPlace] {
            assert_eq!(way.run(|| 6 * 7).await, Ok(42));
            let err = way
                .run(|| -> u8 { panic!("plugin host broke") })
                .await
                .unwrap_err();
            assert_eq!(err, "panicked: plugin host broke", "{way:?}");
        }
    }
}
