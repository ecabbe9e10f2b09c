//! The community's wall calendar, from the host's UTC milliseconds.
//!
//! Owners live by local dates: a bill is "3 days overdue" on the calendar in Shanghai, where
//! until 08:00 each morning UTC still reads yesterday's date. The host hands a plugin UTC [`Timestamp`]s and an IANA zone name ([`Host::timezone`]); these
//! functions turn one into the other, and never read a clock of their own, because the host's
//! clock is virtual in `wuyed simulate` and in [`crate::MockHost`]. Most plugins need only
//! [`HostExt::today`], [`HostExt::at_local`] and [`Run::local_date`].
//!
//! [`HostExt::today`]: crate::HostExt::today
//! [`HostExt::at_local`]: crate::HostExt::at_local
//! [`Host::timezone`]: crate::Host::timezone
//! [`Run::local_date`]: crate::Run::local_date

pub use chrono::{Datelike, NaiveTime, Weekday};
pub use chrono_tz::Tz;

use chrono::{DateTime, NaiveDateTime, TimeZone as _, Utc};

use crate::{PluginError, Timestamp};

/// A calendar date without a zone (`2027-02-21`), as bills' due dates and the calendar use.
pub type Date = chrono::NaiveDate;

/// Milliseconds in an hour, for timer arithmetic on [`Timestamp`]s.
pub const HOUR_MS: Timestamp = 3_600_000;

/// The zone named `name` (`Asia/Shanghai`). The daemon checks every community's zone at start,
/// so an error here means the plugin was handed something else.
pub fn zone(name: &str) -> Result<Tz, PluginError> {
    name.parse::<Tz>().map_err(|_| {
        PluginError::BadData(format!("community timezone {name:?} is not an IANA zone"))
    })
}

/// The UTC instant of a host timestamp (the epoch for one out of chrono's range).
pub fn instant(ts: Timestamp) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ts).single().unwrap_or_default()
}

/// The local calendar date of `ts` in `tz`.
pub fn local_date(ts: Timestamp, tz: Tz) -> Date {
    instant(ts).with_timezone(&tz).date_naive()
}

/// The instant of a local wall-clock time, for [`crate::Host::set_timer`]. A time skipped by a
/// DST jump moves forward by an hour; a repeated one takes its first occurrence (the
/// scheduler's rule, so a plugin's timer and a schedule agree).
pub fn at_local(date: Date, time: NaiveTime, tz: Tz) -> Timestamp {
    let naive = NaiveDateTime::new(date, time);
    let local = tz.from_local_datetime(&naive).earliest().or_else(|| {
        tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
    });
    local.map_or(0, |t| t.timestamp_millis())
}

/// `YYYY-MM-DD` as a date; `what` names the value in the error (`bill b1 due_date`).
pub fn parse_date(what: &str, s: &str) -> Result<Date, PluginError> {
    // `FromStr` reads exactly this ISO form and is several times faster than a format string,
    // which counts in a run over every unpaid bill of a large community; the length check
    // keeps out the signed and five-digit years it also accepts.
    s.parse::<Date>()
        .ok()
        .filter(|_| s.len() == 10)
        .ok_or_else(|| PluginError::BadData(format!("{what}: {s:?} is not a YYYY-MM-DD date")))
}

/// `HH:MM` as a time of day; `what` names the param in the error (`send_at`).
pub fn parse_time(what: &str, s: &str) -> Result<NaiveTime, PluginError> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| PluginError::InvalidParams(format!("{what}: {s:?} is not an HH:MM time")))
}

/// `date` moved by `days` (negative: back), saturating at chrono's range.
pub fn add_days(date: Date, days: i64) -> Date {
    let step = chrono::Days::new(days.unsigned_abs());
    let moved = if days >= 0 {
        date.checked_add_days(step)
    } else {
        date.checked_sub_days(step)
    };
    moved.unwrap_or(if days >= 0 { Date::MAX } else { Date::MIN })
}

/// Whole days from `from` to `to` (negative when `to` is earlier): "days overdue" is
/// `days_between(due, today)`.
pub fn days_between(from: Date, to: Date) -> i64 {
    (to - from).num_days()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn the_local_date_is_the_communitys_not_utcs() {
        let shanghai = zone("Asia/Shanghai").unwrap();
        // 07:30 in Shanghai on the 21st is still the 20th in UTC.
        let ts = ms("2027-02-21T07:30:00+08:00");
        assert_eq!(local_date(ts, shanghai).to_string(), "2027-02-21");
        assert_eq!(instant(ts).date_naive().to_string(), "2027-02-20");
    }

    #[test]
    fn local_times_become_instants_across_dst() {
        let ny = zone("America/New_York").unwrap();
        let d = parse_date("t", "2026-03-08").unwrap();
        // 02:30 does not exist that night: an hour later, 03:30 EDT.
        let t = at_local(d, parse_time("t", "02:30").unwrap(), ny);
        assert_eq!(t, ms("2026-03-08T03:30:00-04:00"));
    }

    #[test]
    fn day_arithmetic_and_errors_name_the_value() {
        let d = parse_date("t", "2026-12-30").unwrap();
        assert_eq!(add_days(d, 3).to_string(), "2027-01-02");
        assert_eq!(add_days(d, -30).to_string(), "2026-11-30");
        assert_eq!(days_between(d, add_days(d, -7)), -7);
        assert_eq!(
            parse_date("bill b1 due_date", "30/12/2026").unwrap_err(),
            PluginError::BadData(
                "bill b1 due_date: \"30/12/2026\" is not a YYYY-MM-DD date".into()
            )
        );
        assert!(matches!(
            parse_time("send_at", "9am"),
            Err(PluginError::InvalidParams(m)) if m.starts_with("send_at:")
        ));
        assert!(zone("Mars/Olympus").is_err());
    }
}
