//! Helpers the four standard workflow plugins share (fee reminders, quarterly surveys, callback
//! escalation, semiannual events), so each plugin reads as its business rule and nothing else.
//!
//! Everything here is about the community's *local* calendar: a bill is "7 days overdue" on the
//! owner's wall calendar, a quarter starts on 1 April in Shanghai, an SLA counted in reception
//! hours stops at the desk's closing time. The host hands plugins UTC milliseconds and an IANA
//! zone name; these functions turn one into the other without ever reading a clock themselves
//! (the host's clock is virtual in simulations).

use chrono::{Datelike, NaiveDate, NaiveTime};
use chrono_tz::Tz;
use wuye_plugin_sdk::{Money, PluginError, Role, Timestamp};

/// The local-calendar basics live in the SDK, for every plugin author; re-exported here so the
/// standard plugins read them from one place.
pub use wuye_plugin_sdk::calendar::{HOUR_MS, at_local, instant, local_date, parse_date, zone};

/// `2026Q3` for a date in July to September.
pub fn quarter_key(d: NaiveDate) -> String {
    format!("{}Q{}", d.year(), d.month0() / 3 + 1)
}

/// The quarter before `key` (`2026Q1` → `2025Q4`); `None` for a malformed key.
pub fn previous_quarter(key: &str) -> Option<String> {
    let (y, q) = key.split_once('Q')?;
    let (y, q): (i32, u32) = (y.parse().ok()?, q.parse().ok()?);
    match q {
        1 => Some(format!("{}Q4", y - 1)),
        2..=4 => Some(format!("{y}Q{}", q - 1)),
        _ => None,
    }
}

/// `2026H1` (January to June) or `2026H2`.
pub fn half_key(d: NaiveDate) -> String {
    format!("{}H{}", d.year(), if d.month() <= 6 { 1 } else { 2 })
}

/// First and last day of the half year holding `d`.
pub fn half_bounds(d: NaiveDate) -> (NaiveDate, NaiveDate) {
    let y = d.year();
    if d.month() <= 6 {
        (ymd(y, 1, 1), ymd(y, 6, 30))
    } else {
        (ymd(y, 7, 1), ymd(y, 12, 31))
    }
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// Fen as yuan the way a bill prints it: `¥1,234.50` ([`Money`]'s format).
pub fn yuan(fen: i64) -> String {
    Money::fen(fen).to_string()
}

/// Fen as a plain amount for templates that print their own unit (`{{ total }} 元`): `1,234.50`.
pub fn amount(fen: i64) -> String {
    Money::fen(fen).amount()
}

/// A staff role as written in params (`customer_service`, `supervisor`, `manager`); the error
/// names the param `key`.
pub fn role(key: &str, value: &str) -> Result<Role, PluginError> {
    value.parse().map_err(|e| match e {
        PluginError::InvalidParams(m) => PluginError::InvalidParams(format!("{key}: {m}")),
        other => other,
    })
}

/// The desk's opening hours, `08:30-17:30`, used to count an SLA in reception hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceptionHours {
    pub open: NaiveTime,
    pub close: NaiveTime,
}

impl ReceptionHours {
    /// Parses `HH:MM-HH:MM`; `key` names the param in the error.
    pub fn parse(key: &str, s: &str) -> Result<Self, PluginError> {
        let bad = || PluginError::InvalidParams(format!("{key}: {s:?} is not HH:MM-HH:MM"));
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let t = |x: &str| NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| bad());
        let (open, close) = (t(a)?, t(b)?);
        if open >= close {
            return Err(PluginError::InvalidParams(format!(
                "{key}: {s:?} closes before it opens"
            )));
        }
        Ok(ReceptionHours { open, close })
    }
}

/// `start` plus `hours`, counting only time inside reception hours on workdays (`is_workday`
/// answers for a local date; `None` counts as a workday when Monday to Friday). A ticket closed
/// on Friday evening with a 24 h SLA in 9-hour days is due on Wednesday afternoon, not Saturday.
pub fn add_reception_hours(
    start: Timestamp,
    hours: u32,
    tz: Tz,
    desk: ReceptionHours,
    is_workday: &dyn Fn(NaiveDate) -> Option<bool>,
) -> Timestamp {
    let mut left = i64::from(hours) * HOUR_MS;
    let mut cursor = start;
    // A year of days bounds the walk even for a calendar that never opens.
    for _ in 0..366 {
        let date = local_date(cursor, tz);
        let workday = is_workday(date).unwrap_or(date.weekday().number_from_monday() <= 5);
        if workday {
            let open = at_local(date, desk.open, tz);
            let close = at_local(date, desk.close, tz);
            let from = cursor.max(open);
            if from < close {
                let avail = close - from;
                if left <= avail {
                    return from + left;
                }
                left -= avail;
            }
        }
        let next = date.succ_opt().unwrap_or(date);
        cursor = at_local(next, NaiveTime::MIN, tz);
    }
    cursor + left
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn shanghai() -> Tz {
        zone("Asia/Shanghai").unwrap()
    }

    fn ms(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn yuan_groups_thousands_and_keeps_fen_exact() {
        assert_eq!(yuan(123_450), "¥1,234.50");
        assert_eq!(yuan(5), "¥0.05");
        assert_eq!(yuan(100_000_000), "¥1,000,000.00");
        assert_eq!(yuan(-35_000), "-¥350.00");
        assert_eq!(amount(123_450), "1,234.50");
    }

    #[test]
    fn quarters_and_halves_follow_the_local_calendar() {
        // 2026-06-30T17:00Z is already 1 July in Shanghai: Q3 and H2 there.
        let d = local_date(ms("2026-06-30T17:00:00Z"), shanghai());
        assert_eq!(
            (quarter_key(d), half_key(d)),
            ("2026Q3".into(), "2026H2".into())
        );
        assert_eq!(previous_quarter("2026Q1").as_deref(), Some("2025Q4"));
        assert_eq!(previous_quarter("2026Q3").as_deref(), Some("2026Q2"));
        assert_eq!(previous_quarter("junk"), None);
    }

    #[test]
    fn an_sla_in_reception_hours_skips_nights_and_weekends() {
        let desk = ReceptionHours::parse("reception_hours", "08:30-17:30").unwrap();
        // Friday 2026-09-18 16:00 local; 24 desk hours = 1.5 h Fri + 9 h Mon + 9 h Tue + 4.5 h Wed.
        let start = ms("2026-09-18T16:00:00+08:00");
        let due = add_reception_hours(start, 24, shanghai(), desk, &|_| None);
        assert_eq!(due, ms("2026-09-23T13:00:00+08:00"));
        // A holiday Monday (from the calendar) pushes it a day further.
        let holiday = parse_date("t", "2026-09-21").unwrap();
        let due = add_reception_hours(start, 24, shanghai(), desk, &|d| {
            Some(d != holiday && d.weekday().number_from_monday() <= 5)
        });
        assert_eq!(due, ms("2026-09-24T13:00:00+08:00"));
    }

    #[test]
    fn reception_hours_errors_name_the_key() {
        let err = ReceptionHours::parse("sla.reception_hours", "18:00-09:00").unwrap_err();
        assert_eq!(
            err,
            PluginError::InvalidParams(
                "sla.reception_hours: \"18:00-09:00\" closes before it opens".into()
            )
        );
        assert!(ReceptionHours::parse("k", "nine to five").is_err());
    }
}
