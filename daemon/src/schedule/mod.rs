//! When things run: crontab expressions with Vixie cron's semantics, evaluated in a community's
//! IANA timezone, filtered by its business calendar, plus the catch-up rules after downtime.
//!
//! Everything here is pure: it takes instants and returns instants, never reads a clock, so the
//! same code answers `wuyed next`, drives the daemon and runs a simulated year.

// CONTRACT (filled by the schedule work): the items below are what the rest of the daemon uses.
// Bodies are `todo!()` until then.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::config::{CatchUp, NonWorkday};

/// A parsed crontab expression (5 fields, or 6 with seconds first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    _todo: (),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CronError(pub String);

impl CronExpr {
    pub fn parse(expr: &str) -> Result<CronExpr, CronError> {
        let _ = expr;
        todo!()
    }

    /// The first fire instant strictly after `after`, in `tz` local time.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let _ = (after, tz);
        todo!()
    }
}

/// Public holidays and make-up workdays (调休) of one calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub name: String,
}

impl Calendar {
    /// Loads `calendars/<name>.toml`.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Calendar> {
        let _ = path;
        todo!()
    }

    pub fn is_workday(&self, date: NaiveDate) -> bool {
        let _ = date;
        todo!()
    }
}

/// A workflow's schedule with everything applied: crontab, zone, calendar.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub cron: CronExpr,
    pub tz: Tz,
    pub calendar: Option<Arc<Calendar>>,
    pub on_non_workday: NonWorkday,
}

impl Schedule {
    /// The next due instant strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let _ = after;
        todo!()
    }
}

/// Parses `"90s"`, `"10m"`, `"6h"`, `"2d"`, `"1w"` (and `"0s"`).
pub fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let _ = text;
    todo!()
}

/// What happens to one due slot found when the daemon (re)starts or wakes late.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotFate {
    Run,
    Missed { reason: String },
}

/// Decides, for the slots that came due while nobody ran them (oldest first), which run and
/// which are recorded as missed, per policy and window.
pub fn catch_up(
    due: &[DateTime<Utc>],
    now: DateTime<Utc>,
    policy: CatchUp,
    window: chrono::Duration,
) -> Vec<(DateTime<Utc>, SlotFate)> {
    let _ = (due, now, policy, window);
    todo!()
}
