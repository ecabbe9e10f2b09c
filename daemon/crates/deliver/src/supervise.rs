//! Keeping the dispatcher alive, and telling `/healthz` whether it is.
//!
//! The dispatcher is one task. Before this module, an error it returned or a panic in it ended
//! delivery for good while the rest of the daemon (scheduler, API, systemd's watchdog) went on
//! looking healthy: runs kept queuing messages nobody sent. Now the task is restarted with
//! backoff (1 s doubling to 60 s, back to 1 s after it has run a minute), each stop logged at
//! error, and its liveness is a heartbeat (each turn of its loop, each second while it sleeps)
//! that `/healthz` reads, so a monitor sees "dispatcher down" or "stuck" with the reason.
//!
//! A restart is a fresh start of the dispatcher: like a start of the daemon, it recovers what
//! the stopped task left `sending` (email resent with its Message-ID, SMS held or looked up).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// First pause before restarting a stopped dispatcher; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A dispatcher that ran this long before stopping is restarted after [`FIRST_BACKOFF`] again:
/// its stop is a new incident, not the same one repeating.
const RAN_WELL: Duration = Duration::from_secs(60);

/// How long the dispatcher may go without a turn before `/healthz` calls it stuck. It turns at
/// least every second while idle, and after every answer while sending; the longest legitimate
/// gap is a batch whose every send waits out the SMTP or SMS timeout (30 s by default).
pub const STALL_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
enum State {
    Starting,
    Turned(Instant),
    Down { since: Instant, why: String },
    Stopped,
}

/// The dispatcher's liveness: written by its loop and its supervisor, read by `/healthz`.
#[derive(Debug, Clone)]
pub struct DispatcherHealth(Arc<Mutex<State>>);

impl Default for DispatcherHealth {
    fn default() -> Self {
        DispatcherHealth(Arc::new(Mutex::new(State::Starting)))
    }
}

impl DispatcherHealth {
    fn set(&self, state: State) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// A turn of the dispatcher's loop.
    pub fn beat(&self) {
        self.set(State::Turned(Instant::now()));
    }

    fn down(&self, why: String) {
        self.set(State::Down {
            since: Instant::now(),
            why,
        });
    }

    /// `Ok` while the dispatcher turns; otherwise why not, for `/healthz`.
    pub fn verdict(&self) -> Result<(), String> {
        self.verdict_at(Instant::now())
    }

    fn verdict_at(&self, now: Instant) -> Result<(), String> {
        match &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            State::Starting => Ok(()),
            State::Turned(at) if now - *at <= STALL_AFTER => Ok(()),
            State::Turned(at) => Err(format!(
                "outbox dispatcher has not turned for {} s (a send or another process's \
                 database lock may be holding it; see the log)",
                (now - *at).as_secs()
            )),
            State::Down { since, why } => Err(format!(
                "outbox dispatcher is down since {} s ago and being restarted: {why}",
                (now - *since).as_secs()
            )),
            State::Stopped => Err("outbox dispatcher stopped: the daemon is stopping".into()),
        }
    }
}

/// The daemon's dispatcher health, for the HTTP API started beside it (`http::start`).
static PUBLISHED: Mutex<Option<DispatcherHealth>> = Mutex::new(None);

/// Makes `health` the one `/healthz` reports (`wuyed run` does, once).
pub fn publish(health: DispatcherHealth) {
    *PUBLISHED.lock().unwrap_or_else(|p| p.into_inner()) = Some(health);
}

/// The health [`publish`]ed in this process, if any.
pub fn published() -> Option<DispatcherHealth> {
    PUBLISHED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Runs the task `start` makes until it returns `Ok` (asked to stop) or `stop` resolves;
/// restarts it with backoff when it returns an error or panics, logging each stop at error and
/// marking `health` down meanwhile.
pub async fn supervise<F, Fut>(health: DispatcherHealth, start: F, stop: impl Future<Output = ()>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::pin!(stop);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let mut task = tokio::spawn(start());
        let why = tokio::select! {
            joined = &mut task => match joined {
                Ok(Ok(())) => break,
                Ok(Err(e)) => format!("stopped with an error: {e:#}"),
                Err(e) => wuye_core::blocking::join_error_message(e),
            },
            () = &mut stop => {
                // The task got the same signal and is finishing its sends; let it.
                let _ = task.await;
                break;
            }
        };
        if started.elapsed() >= RAN_WELL {
            backoff = FIRST_BACKOFF;
        }
        tracing::error!(
            error = %why,
            restart_in_s = backoff.as_secs(),
            "outbox dispatcher stopped; restarting it"
        );
        health.down(why);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = &mut stop => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    health.set(State::Stopped);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn until(what: &str, mut condition: impl FnMut() -> bool) -> Instant {
        for _ in 0..1000 {
            if condition() {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not within 10 s: {what}");
    }

    /// A task that panics, then fails, then runs until stopped: restarted after 1 s, then after
    /// 2 s, reported down meanwhile with the reason, healthy again once it turns, and not
    /// restarted once told to stop.
    #[tokio::test]
    async fn a_dispatcher_that_panics_or_fails_is_restarted_with_backoff_and_reported_down() {
        let health = DispatcherHealth::default();
        let starts = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let start = {
            let (starts, health, stop_rx) = (starts.clone(), health.clone(), stop_rx.clone());
            move || {
                let n = starts.fetch_add(1, Ordering::SeqCst);
                let (health, mut stop_rx) = (health.clone(), stop_rx.clone());
                async move {
                    match n {
                        0 => panic!("outbox row with an impossible status"),
                        1 => anyhow::bail!("database disk image is malformed"),
                        _ => {
                            health.beat();
                            let _ = stop_rx.wait_for(|s| *s).await;
                            Ok(())
                        }
                    }
                }
            }
        };
        let mut stop = stop_rx.clone();
        let supervisor = tokio::spawn(supervise(health.clone(), start, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        let first = until("down after the panic", || {
            health
                .verdict()
                .is_err_and(|why| why.contains("down") && why.contains("impossible status"))
        })
        .await;
        let second = until("down after the error", || {
            health.verdict().is_err_and(|why| why.contains("malformed"))
        })
        .await;
        let third = until("healthy once it turns", || health.verdict().is_ok()).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert!(
            second - first >= Duration::from_millis(900),
            "first pause 1 s"
        );
        assert!(
            third - second >= Duration::from_millis(1900),
            "second pause 2 s"
        );
        stop_tx.send(true).unwrap();
        supervisor.await.unwrap();
        assert_eq!(
            starts.load(Ordering::SeqCst),
            3,
            "not restarted after a stop"
        );
        assert!(health.verdict().unwrap_err().contains("stopping"));
    }

    #[test]
    fn a_dispatcher_that_stops_turning_is_reported_stuck() {
        let health = DispatcherHealth::default();
        assert_eq!(health.verdict(), Ok(()), "starting counts as alive");
        health.beat();
        let now = Instant::now();
        assert_eq!(
            health.verdict_at(now + STALL_AFTER - Duration::from_secs(1)),
            Ok(())
        );
        let why = health
            .verdict_at(now + STALL_AFTER + Duration::from_secs(5))
            .unwrap_err();
        assert!(why.contains("has not turned for 12"), "{why}");
        health.beat();
        assert_eq!(health.verdict(), Ok(()));
    }
}
