//! Quiet hours: when a non-urgent message may go out, in the community's local time.
//!
//! A bill notice queued at 22:00 waits until the window opens (default 08:00), and the messages
//! held overnight go out spread over a period (default 30 minutes) rather than in one burst at
//! 08:00:00, which would swamp the desk's phone and trip provider rate limits. Each message's
//! place in the spread is derived from its idempotency key, so a restart gives the same time.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use wuye_core::message::Category;

/// The quiet window of one community: its `quiet_hours`, parsed once by the configuration
/// (`Community::quiet`), where a bad time is a `wuyed check` error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietWindow {
    pub tz: Tz,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietWindow {
    /// Whether `t` (local) is inside the quiet window. Equal start and end mean no quiet hours.
    pub fn is_quiet(&self, t: NaiveTime) -> bool {
        if self.start == self.end {
            false
        } else if self.start > self.end {
            t >= self.start || t < self.end
        } else {
            t >= self.start && t < self.end
        }
    }

    /// If `now` is quiet, the instant the window next opens; else `None`.
    pub fn opens_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.tz);
        if !self.is_quiet(local.time()) {
            return None;
        }
        let mut date = local.date_naive();
        if local.time() >= self.end {
            date = date.succ_opt()?;
        }
        let naive = date.and_time(self.end);
        // A DST gap swallowing the opening time: open an hour later.
        let open = self.tz.from_local_datetime(&naive).earliest().or_else(|| {
            self.tz
                .from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })?;
        Some(open.with_timezone(&Utc))
    }
}

/// When a message may go out at the earliest: `now`, or the next opening of the window plus its
/// place in the spread. Urgent messages ignore quiet hours.
pub fn earliest_send(
    now: DateTime<Utc>,
    category: Category,
    window: &QuietWindow,
    spread: Duration,
    key: &str,
) -> DateTime<Utc> {
    if category == Category::Urgent {
        return now;
    }
    match window.opens_after(now) {
        None => now,
        Some(open) => open + spread_offset(key, spread),
    }
}

/// A stable offset in `[0, spread)` from the key.
fn spread_offset(key: &str, spread: Duration) -> Duration {
    let ms = spread.num_milliseconds();
    if ms <= 0 {
        return Duration::zero();
    }
    let d = Sha256::digest(key.as_bytes());
    let v = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
    Duration::milliseconds((v % ms as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> QuietWindow {
        QuietWindow {
            tz: chrono_tz::Asia::Shanghai,
            start: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_reminder_queued_at_night_waits_for_8_local_and_is_spread() {
        let w = shanghai();
        // 22:30 in Shanghai.
        let now = at("2026-03-02T22:30:00+08:00");
        let spread = Duration::minutes(30);
        let times: Vec<_> = (0..50)
            .map(|i| earliest_send(now, Category::Transactional, &w, spread, &format!("k{i}")))
            .collect();
        let open = at("2026-03-03T08:00:00+08:00");
        assert!(
            times.iter().all(|t| *t >= open && *t < open + spread),
            "{times:?}"
        );
        let distinct: std::collections::BTreeSet<_> = times.iter().collect();
        assert!(distinct.len() > 40, "not spread: {distinct:?}");
        // Same key, same slot: a restart does not reshuffle.
        assert_eq!(
            earliest_send(now, Category::Transactional, &w, spread, "k1"),
            times[1]
        );
    }

    #[test]
    fn early_morning_waits_for_the_same_day_and_daytime_goes_now() {
        let w = shanghai();
        let now = at("2026-03-03T06:10:00+08:00");
        let t = earliest_send(now, Category::Informational, &w, Duration::zero(), "k");
        assert_eq!(t, at("2026-03-03T08:00:00+08:00"));
        let day = at("2026-03-03T10:00:00+08:00");
        assert_eq!(
            earliest_send(day, Category::Transactional, &w, Duration::minutes(30), "k"),
            day
        );
    }

    #[test]
    fn urgent_goes_at_once_at_night() {
        let w = shanghai();
        let now = at("2026-03-02T23:59:00+08:00");
        assert_eq!(
            earliest_send(now, Category::Urgent, &w, Duration::minutes(30), "k"),
            now
        );
    }
}
