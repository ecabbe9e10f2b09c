//! The one source of time for everything in the daemon.
//!
//! Schedules, timers, quiet hours and retries all ask a [`Clock`], never `Utc::now()` or
//! `tokio::time` directly. That is what lets `wuyed simulate` run a year in seconds and lets tests
//! move time instead of sleeping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// Wall-clock time, injectable.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Waits until `now() >= deadline`. Returns early never; callers that must also wake on
    /// other events `select!` on this future.
    fn sleep_until(
        &self,
        deadline: DateTime<Utc>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

pub type SharedClock = Arc<dyn Clock>;

/// How often a sleeper on the [`SystemClock`] re-reads the wall clock: the most a slot or a
/// message held by quiet hours can be late after the clock jumps forward. Far below the
/// scheduler's "late" threshold (2 minutes), so a jump of a few minutes still runs slots as on
/// time; a wake-up every few seconds that only compares two instants costs nothing measurable.
/// (It was a minute, so a slot could fire a minute late after a step; tests/e2e/clock.rs jumps
/// the clock of a real daemon.)
pub const WALL_CLOCK_RECHECK: Duration = Duration::from_secs(5);

/// The real clock, optionally shifted by a fixed offset (`wuyed run --clock-start`), so an
/// end-to-end test can start a real daemon "on" a chosen date and still let real time pass.
#[derive(Debug, Clone, Default)]
pub struct SystemClock {
    offset: chrono::Duration,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock::default()
    }

    /// A clock that reads `start` right now and then advances in real time.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        SystemClock {
            offset: start - Utc::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    fn sleep_until(
        &self,
        deadline: DateTime<Utc>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // Sleep in slices: tokio sleeps on the monotonic clock, which does not follow
            // wall-clock jumps (an NTP step, a VM resumed, an administrator's `date -s`), so
            // re-reading the wall clock bounds how late a wake can be after a jump forward. A
            // backward jump needs nothing: the deadline is simply further away when re-read.
            loop {
                let now = self.now();
                if now >= deadline {
                    return;
                }
                let left = (deadline - now)
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(WALL_CLOCK_RECHECK);
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// A clock that only moves when told to. Sleepers wake as soon as [`ManualClock::set`] or
/// [`ManualClock::advance`] passes their deadline.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    now: Mutex<DateTime<Utc>>,
    tick: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        let (tick, _) = watch::channel(start);
        ManualClock {
            inner: Arc::new(ManualInner {
                now: Mutex::new(start),
                tick,
            }),
        }
    }

    /// Moves the clock to `to` (never backwards) and wakes every sleeper whose deadline passed.
    pub fn set(&self, to: DateTime<Utc>) {
        let mut now = self.inner.now.lock().expect("clock poisoned");
        if to > *now {
            *now = to;
            self.inner.tick.send_replace(to);
        }
    }

    pub fn advance(&self, by: chrono::Duration) {
        let to = self.now() + by;
        self.set(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.inner.now.lock().expect("clock poisoned")
    }

    fn sleep_until(
        &self,
        deadline: DateTime<Utc>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        let mut rx = self.inner.tick.subscribe();
        Box::pin(async move {
            loop {
                if *rx.borrow_and_update() >= deadline {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The clock is gone: nothing will ever wake us, which is what "never" means.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_when_moved_past_their_deadline() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = ManualClock::new(start);
        let c2 = clock.clone();
        let sleeper = tokio::spawn(async move {
            c2.sleep_until(start + chrono::Duration::hours(1)).await;
            c2.now()
        });
        tokio::task::yield_now().await;
        clock.advance(chrono::Duration::minutes(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before its deadline");
        clock.advance(chrono::Duration::minutes(45));
        let woke_at = tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper never woke")
            .unwrap();
        assert_eq!(woke_at, start + chrono::Duration::minutes(75));
    }
}
