//! When things run: crontab expressions with Vixie cron's semantics, evaluated in a community's
//! IANA timezone, filtered by its business calendar, plus the catch-up rules after downtime.
//!
//! Everything here is pure: it takes instants and returns instants, never reads a clock, so the
//! same code answers `wuyed next`, drives the daemon and runs a simulated year.
//!
//! - [`cron`]: the crontab matcher and its DST rules (gap: once, at the end of the gap; repeat:
//!   once, at the earlier instant).
//! - [`calendar`]: holidays and make-up workdays (调休) per year.
//! - [`Schedule`]: both together, with `on_non_workday` (run / skip / shift).
//! - [`catch_up()`]: which of the slots missed during downtime still run, and why the others do not.
//! - [`jitter_for`]: a per-slot delay that is the same after a restart.
//! - [`parse_duration`]: `"90s"`, `"10m"`, `"6h"`, `"2d"`, `"1w"`.

pub mod calendar;
mod catch_up;
pub mod cron;
mod duration;
mod jitter;

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

pub use self::calendar::{Calendar, CalendarError, ListedDay};
pub use self::catch_up::{CatchUp, SlotFate, catch_up, catch_up_in};
pub use self::cron::{CronError, CronExpr};
pub use self::duration::text as duration_text;
pub use self::duration::{format_duration, parse_duration};
pub use self::jitter::jitter_for;
use serde::{Deserialize, Serialize};

/// What a workflow does on a day that is not a workday in the community's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NonWorkday {
    /// Run regardless of the calendar.
    #[default]
    Run,
    /// Do not run; the slot is recorded as skipped.
    Skip,
    /// Run at the same local time on the next workday.
    Shift,
}

/// A workflow's schedule with everything applied: crontab, zone, calendar.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub cron: CronExpr,
    pub tz: Tz,
    pub calendar: Option<Arc<Calendar>>,
    pub on_non_workday: NonWorkday,
}

/// One slot of a schedule as the scheduler meets it: due at `at`, or skipped with a reason that
/// goes into the missed-slots record (`on_non_workday = "skip"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub at: DateTime<Utc>,
    pub skipped: Option<String>,
}

/// How many days a search may walk over non-workdays before giving up. Far more than any run of
/// holidays; it only bounds a calendar that somehow has no workdays ahead.
const MAX_DAYS: usize = 1000;

impl Schedule {
    /// The next due instant strictly after `after`.
    ///
    /// With a calendar: `run` ignores it; `skip` drops slots on non-workdays; `shift` moves each
    /// slot on a non-workday to the same local time on the next workday, and slots that land on
    /// the same instant (Saturday's and Sunday's 09:00 both on Monday 09:00) fire once.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match (&self.calendar, self.on_non_workday) {
            (None, _) | (Some(_), NonWorkday::Run) => self.cron.next_after(after, self.tz),
            (Some(cal), NonWorkday::Skip) => self.next_on_workday(after, cal),
            (Some(cal), NonWorkday::Shift) => self.next_shifted(after, cal),
        }
    }

    /// Like [`Schedule::next_after`], but with `skip` also returns the slots it skips, each with
    /// its reason, so the scheduler can record them instead of dropping them silently.
    pub fn next_slot_after(&self, after: DateTime<Utc>) -> Option<Slot> {
        match (&self.calendar, self.on_non_workday) {
            (Some(cal), NonWorkday::Skip) => {
                let from = cron::first_local_candidate(after, self.tz)?;
                let (local, at) = self.cron.next_slot(after, from, self.tz)?;
                let skipped = cal
                    .non_workday_reason(local.date())
                    .map(|why| format!("skipped: {why} (on_non_workday = skip)"));
                Some(Slot { at, skipped })
            }
            _ => self.next_after(after).map(|at| Slot { at, skipped: None }),
        }
    }

    fn next_on_workday(&self, after: DateTime<Utc>, cal: &Calendar) -> Option<DateTime<Utc>> {
        let mut from = cron::first_local_candidate(after, self.tz)?;
        for _ in 0..MAX_DAYS {
            let (local, at) = self.cron.next_slot(after, from, self.tz)?;
            if cal.is_workday(local.date()) {
                return Some(at);
            }
            // Nothing else that day can run either: go straight to the next day.
            from = local.date().succ_opt()?.and_time(NaiveTime::MIN);
        }
        None
    }

    fn next_shifted(&self, after: DateTime<Utc>, cal: &Calendar) -> Option<DateTime<Utc>> {
        let start = cron::first_local_candidate(after, self.tz)?;
        let today = start.date();
        let mut workday = cal.next_workday_from(today)?;
        for _ in 0..MAX_DAYS {
            // The slots landing on `workday`: its own and those of the non-workdays right
            // before it, each at its own time of day.
            let mut first = workday;
            for _ in 0..MAX_DAYS {
                match first.pred_opt() {
                    Some(prev) if !cal.is_workday(prev) => first = prev,
                    _ => break,
                }
            }
            // On the day of `after`, times of day up to `after` are already past.
            let threshold = if workday == today {
                start.time()
            } else {
                NaiveTime::MIN
            };
            let mut best: Option<DateTime<Utc>> = None;
            let mut day = first;
            while day <= workday {
                if let Some(at) = self.first_on(day, threshold, workday, after) {
                    best = Some(best.map_or(at, |b| b.min(at)));
                }
                day = day.succ_opt()?;
            }
            if best.is_some() {
                return best;
            }
            // Jump over days without slots: the next workday that can receive one is the first
            // workday on or after the next slot's day.
            let next_raw = self
                .cron
                .next_local_from(workday.succ_opt()?.and_time(NaiveTime::MIN))?;
            workday = cal.next_workday_from(next_raw.date())?;
        }
        None
    }

    /// The earliest slot of `day` at or after `threshold` that, moved to the same time of day on
    /// `onto`, falls strictly after `after`.
    fn first_on(
        &self,
        day: NaiveDate,
        threshold: NaiveTime,
        onto: NaiveDate,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut from = day.and_time(threshold);
        loop {
            let local = self.cron.next_local_within(from, Some(day))?;
            let at = cron::local_slot_instant(self.tz, onto.and_time(local.time()))?;
            if at > after {
                return Some(at);
            }
            from = local + Duration::seconds(1);
            if from.date() != day {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;

    fn shipped() -> Arc<Calendar> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../config/calendars/cn-mainland.toml");
        Arc::new(Calendar::load(&path).unwrap())
    }

    fn schedule(expr: &str, tz: Tz, mode: NonWorkday) -> Schedule {
        Schedule {
            cron: CronExpr::parse(expr).unwrap(),
            tz,
            calendar: Some(shipped()),
            on_non_workday: mode,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next_n(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut at = utc(from);
        (0..n)
            .map(|_| {
                at = s.next_after(at).expect("a next instant");
                at.with_timezone(&s.tz)
                    .to_rfc3339_opts(SecondsFormat::Secs, false)
            })
            .collect()
    }

    const SH: Tz = Tz::Asia__Shanghai;

    #[test]
    fn run_ignores_the_calendar() {
        let s = schedule("0 9 * * *", SH, NonWorkday::Run);
        assert_eq!(
            next_n(&s, "2026-09-30T12:00:00+08:00", 2),
            ["2026-10-01T09:00:00+08:00", "2026-10-02T09:00:00+08:00"]
        );
    }

    #[test]
    fn skip_drops_holidays_and_keeps_make_up_workdays() {
        let s = schedule("0 9 * * *", SH, NonWorkday::Skip);
        // Around 国庆 2026: Sep 30 (Wed) works, Oct 1-7 off, Oct 8-9 work, Oct 10 (Sat) 调休
        // works, Oct 11 (Sun) off.
        assert_eq!(
            next_n(&s, "2026-09-29T12:00:00+08:00", 5),
            [
                "2026-09-30T09:00:00+08:00",
                "2026-10-08T09:00:00+08:00",
                "2026-10-09T09:00:00+08:00",
                "2026-10-10T09:00:00+08:00",
                "2026-10-12T09:00:00+08:00"
            ]
        );
    }

    #[test]
    fn skip_reports_each_skipped_slot_with_its_reason() {
        let s = schedule("0 9 * * *", SH, NonWorkday::Skip);
        let slot = s.next_slot_after(utc("2026-09-30T12:00:00+08:00")).unwrap();
        assert_eq!(slot.at, utc("2026-10-01T09:00:00+08:00"));
        assert_eq!(
            slot.skipped.as_deref(),
            Some("skipped: 2026-10-01 is 国庆节 in calendar cn-mainland (on_non_workday = skip)")
        );
        let slot = s.next_slot_after(utc("2026-10-09T12:00:00+08:00")).unwrap();
        assert_eq!(slot.at, utc("2026-10-10T09:00:00+08:00"));
        assert_eq!(slot.skipped, None);
    }

    #[test]
    fn shift_moves_to_the_next_workday_and_merges_slots_landing_together() {
        let s = schedule("0 9 * * *", SH, NonWorkday::Shift);
        // Oct 1-7 all shift onto Oct 8 09:00, which fires once; Oct 10 is a make-up workday.
        assert_eq!(
            next_n(&s, "2026-09-30T12:00:00+08:00", 4),
            [
                "2026-10-08T09:00:00+08:00",
                "2026-10-09T09:00:00+08:00",
                "2026-10-10T09:00:00+08:00",
                "2026-10-12T09:00:00+08:00"
            ]
        );
        // Rare slots are found without walking day by day: Feb 29, 2028 is a Tuesday.
        let s = schedule("0 9 29 2 *", SH, NonWorkday::Shift);
        assert_eq!(
            next_n(&s, "2026-09-15T00:00:00+08:00", 1),
            ["2028-02-29T09:00:00+08:00"]
        );
        // A monthly run on the 1st moves to the first workday.
        let s = schedule("30 8 1 * *", SH, NonWorkday::Shift);
        assert_eq!(
            next_n(&s, "2026-09-15T00:00:00+08:00", 3),
            [
                "2026-10-08T08:30:00+08:00",
                "2026-11-02T08:30:00+08:00",
                "2026-12-01T08:30:00+08:00"
            ]
        );
    }

    #[test]
    fn shift_keeps_each_slots_time_of_day() {
        // Saturday slots at 10:00 and Sunday at 09:00 land on Monday at 09:00 and 10:00.
        let s = Schedule {
            cron: CronExpr::parse("0 9,10 * * SAT,SUN").unwrap(),
            ..schedule("0 9 * * *", SH, NonWorkday::Shift)
        };
        assert_eq!(
            next_n(&s, "2026-11-20T12:00:00+08:00", 3),
            [
                "2026-11-23T09:00:00+08:00",
                "2026-11-23T10:00:00+08:00",
                "2026-11-30T09:00:00+08:00"
            ]
        );
        // Asked on Saturday afternoon, Saturday's morning slot is still ahead (on Monday).
        assert_eq!(
            next_n(&s, "2026-11-21T15:00:00+08:00", 1),
            ["2026-11-23T09:00:00+08:00"]
        );
        // A make-up Saturday (2026-02-28) is a workday: its own slots run there.
        assert_eq!(
            next_n(&s, "2026-02-27T12:00:00+08:00", 2),
            ["2026-02-28T09:00:00+08:00", "2026-02-28T10:00:00+08:00"]
        );
    }

    #[test]
    fn without_a_calendar_every_mode_runs() {
        let s = Schedule {
            calendar: None,
            ..schedule("0 9 * * *", SH, NonWorkday::Skip)
        };
        assert_eq!(
            next_n(&s, "2026-09-30T12:00:00+08:00", 1),
            ["2026-10-01T09:00:00+08:00"]
        );
    }
}
