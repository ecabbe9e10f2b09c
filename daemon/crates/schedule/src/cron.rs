//! Crontab expressions as administrators know them from Vixie cron (`man 5 crontab`), evaluated
//! in an IANA timezone.
//!
//! We parse and match the fields ourselves instead of wrapping the `cron` crate. That crate
//! numbers days of the week 1-7 from Sunday, has no day-of-month/day-of-week OR rule and wants a
//! seconds field; wrapping it would mean rewriting every day-of-week field, splitting OR
//! expressions into two schedules and taking the earlier of both, and still evaluating DST
//! ourselves. A field is a bit set, so the matcher is some fifty lines, and one implementation
//! gives one place for error messages that name the field and the bad token.
//!
//! The `cron` crate stays as a dev-dependency, as a differential test oracle: where the two
//! agree by design (6 fields with seconds, weekdays written as names, at most one of
//! day-of-month and day-of-week restricted, a timezone without DST) both must produce the same
//! firing times, which checks our field parsing and search against an independent
//! implementation over hundreds of generated expressions
//! (`agrees_with_the_cron_crate_where_semantics_agree`).
//!
//! Semantics, as in Vixie cron 4.1:
//! - 5 fields `minute hour day-of-month month day-of-week`, or 6 with seconds first (our
//!   extension); `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`.
//! - Day of week: Sunday is 0 or 7, Monday 1. Names `JAN`-`DEC` and `SUN`-`SAT` in any case, also
//!   as range ends (`MON-FRI`; `MON-SUN` is the whole week, a small kindness Vixie lacks).
//! - Lists, ranges and steps (`*/15`, `1-30/7`). A step needs `*` or a range, as in crontab
//!   (`5/15` is refused with a hint rather than guessed).
//! - When both day-of-month and day-of-week are restricted (neither starts with `*`), a day
//!   matches if EITHER matches: `0 0 1,15 * MON` fires on the 1st, the 15th and every Monday.
//!
//! Timezones: the search runs on local wall-clock time and maps each candidate to UTC. A local
//! time skipped by a spring-forward gap fires once, at the first instant after the gap. A local
//! time repeated by a fall-back fires once, at its earlier instant; the repeat is never returned.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// A parsed crontab expression (5 fields, or 6 with seconds first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    dom: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0 (a 7 is folded onto 0 when parsing).
    dow: u8,
    dom_star: bool,
    dow_star: bool,
    source: String,
}

/// A crontab expression that could not be parsed; the message names the field and the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(pub String);

#[derive(Clone, Copy)]
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DOM: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
/// 0-7 so that `5-7` (Friday to Sunday) is a valid range, as in crontab.
const DOW: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

/// Searching further than this finds nothing new: the Gregorian calendar repeats every 400 years.
const SEARCH_YEARS: i32 = 401;

impl CronExpr {
    /// Parses a crontab expression; see the module doc for the accepted syntax.
    pub fn parse(expr: &str) -> Result<CronExpr, CronError> {
        let trimmed = expr.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(CronError(format!(
                    "unknown shorthand {trimmed:?} (known: @yearly, @annually, @monthly, @weekly, \
                     @daily, @midnight, @hourly)"
                )));
            }
            _ => trimmed,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => (None, &fields[..]),
            6 => (Some(fields[0]), &fields[1..]),
            0 => return Err(CronError("empty crontab expression".to_string())),
            n => {
                return Err(CronError(format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with \
                     seconds first, got {n} in {trimmed:?}"
                )));
            }
        };
        let seconds = match sec {
            Some(f) => parse_field(f, SECOND)?,
            None => 1,
        };
        let minutes = parse_field(rest[0], MINUTE)?;
        let hours = parse_field(rest[1], HOUR)? as u32;
        let dom = parse_field(rest[2], DOM)? as u32;
        let months = parse_field(rest[3], MONTH)? as u16;
        let dow_bits = parse_field(rest[4], DOW)?;
        // Sunday may be written 7; fold it onto 0.
        let dow = ((dow_bits & 0x7f) | ((dow_bits >> 7) & 1)) as u8;
        let dom_star = rest[2].starts_with('*');
        let dow_star = rest[4].starts_with('*');

        // A day-of-month that no selected month has (`30 2`) would make every search run through
        // 400 years for nothing: say so now. With the OR rule the weekday can still match.
        if dow_star || dom_star {
            let longest = (1..=12u32)
                .filter(|m| months & (1 << m) != 0)
                .map(|m| if m == 2 { 29 } else { days_in_month(2001, m) })
                .max()
                .unwrap_or(31);
            let first_day = dom.trailing_zeros();
            if first_day > longest {
                return Err(CronError(format!(
                    "day-of-month field {:?}: day {first_day} never occurs in month field {:?}",
                    rest[2], rest[3]
                )));
            }
        }

        Ok(CronExpr {
            seconds,
            minutes,
            hours,
            dom,
            months,
            dow,
            dom_star,
            dow_star,
            source: trimmed.to_string(),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when `date` is a day this expression fires on (Vixie's OR rule included).
    pub fn matches_date(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.dom & (1 << date.day()) != 0;
        let dow = self.dow & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first local wall-clock time at or after `from` that the fields match, ignoring
    /// timezones; None if there is none within 400 years (impossible dates such as Feb 30 are
    /// refused when parsing, so in practice this means "beyond the supported range").
    pub fn next_local_from(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        self.next_local_within(from, None)
    }

    /// Like [`Self::next_local_from`] but gives up past the end of `last_day` (used to list one
    /// day's slots).
    pub(crate) fn next_local_within(
        &self,
        from: NaiveDateTime,
        last_day: Option<NaiveDate>,
    ) -> Option<NaiveDateTime> {
        let limit_year = from.year() + SEARCH_YEARS;
        let mut date = from.date();
        let (mut h, mut m, mut s) = (from.hour(), from.minute(), from.second());
        loop {
            if date.year() > limit_year || last_day.is_some_and(|l| date > l) {
                return None;
            }
            if self.months & (1 << date.month()) == 0 {
                // Jump to the first day of the next selected month.
                let (mut y, mut mo) = (date.year(), date.month());
                match next_bit(self.months as u64, mo + 1, 12) {
                    Some(next) => mo = next,
                    None => {
                        y += 1;
                        mo = (self.months as u64).trailing_zeros();
                    }
                }
                date = NaiveDate::from_ymd_opt(y, mo, 1)?;
                (h, m, s) = (0, 0, 0);
                continue;
            }
            if !self.matches_date(date) {
                date = date.succ_opt()?;
                (h, m, s) = (0, 0, 0);
                continue;
            }
            if self.hours & (1 << h) == 0 {
                match next_bit(self.hours as u64, h + 1, 23) {
                    Some(next) => (h, m, s) = (next, 0, 0),
                    None => {
                        date = date.succ_opt()?;
                        (h, m, s) = (0, 0, 0);
                        continue;
                    }
                }
            }
            if self.minutes & (1 << m) == 0 {
                match next_bit(self.minutes, m + 1, 59) {
                    Some(next) => (m, s) = (next, 0),
                    None => {
                        (h, m, s) = advance_hour(h);
                        if h == 24 {
                            date = date.succ_opt()?;
                            (h, m, s) = (0, 0, 0);
                        }
                        continue;
                    }
                }
            }
            if self.seconds & (1 << s) == 0 {
                match next_bit(self.seconds, s + 1, 59) {
                    Some(next) => s = next,
                    None => {
                        m += 1;
                        s = 0;
                        if m == 60 {
                            (h, m, s) = advance_hour(h);
                            if h == 24 {
                                date = date.succ_opt()?;
                                (h, m, s) = (0, 0, 0);
                            }
                        }
                        continue;
                    }
                }
            }
            return Some(date.and_time(NaiveTime::from_hms_opt(h, m, s)?));
        }
    }

    /// The first fire instant strictly after `after`, in `tz` local time.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        self.next_slot(after, first_local_candidate(after, tz)?, tz)
            .map(|(_, at)| at)
    }

    /// The first slot whose local time is at or after `from` and whose instant is strictly after
    /// `after`: its local wall-clock time (before any gap adjustment) and its instant.
    pub(crate) fn next_slot(
        &self,
        after: DateTime<Utc>,
        mut from: NaiveDateTime,
        tz: Tz,
    ) -> Option<(NaiveDateTime, DateTime<Utc>)> {
        loop {
            let candidate = self.next_local_from(from)?;
            if let Some(at) = local_slot_instant(tz, candidate)
                && at > after
            {
                return Some((candidate, at));
            }
            // Either the repeat of a fall-back hour (its earlier instant was at or before
            // `after`, so it already fired) or a gap instant not after `after`: look further.
            from = candidate + Duration::seconds(1);
        }
    }
}

/// The first local wall-clock second that can hold a slot strictly after `after`.
///
/// Slots are whole seconds, so this is the second after `after`'s own. Starting from the local
/// time (not from `after` itself) is what makes a fall-back repeat fire once: from inside the
/// repeated hour the search starts past the wall-clock times that already fired.
pub(crate) fn first_local_candidate(after: DateTime<Utc>, tz: Tz) -> Option<NaiveDateTime> {
    let local = after.with_timezone(&tz).naive_local();
    Some(local.with_nanosecond(0)? + Duration::seconds(1))
}

/// The instant a slot at local wall-clock time `local` fires: the only instant with that local
/// time, the earlier of two in a fall-back, or the end of a spring-forward gap.
pub fn local_slot_instant(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        chrono::LocalResult::None => gap_end(tz, local),
    }
}

/// The first instant after the gap that swallowed `local`: the instant whose wall-clock time is
/// the first one that exists after `local`.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let exists = |t: NaiveDateTime| tz.from_local_datetime(&t).earliest();
    // Gaps are at most a day (Samoa skipped 2011-12-30); find an existing time by half hours,
    // then the exact first second by bisection (gaps are contiguous).
    let mut lo = local; // does not exist
    let mut hi = local;
    let mut found = None;
    for _ in 0..=100 {
        hi += Duration::minutes(30);
        if let Some(t) = exists(hi) {
            found = Some(t);
            break;
        }
        lo = hi;
    }
    let mut best = found?;
    while hi - lo > Duration::seconds(1) {
        let mid = lo + (hi - lo) / 2;
        match exists(mid) {
            Some(t) => {
                hi = mid;
                best = t;
            }
            None => lo = mid,
        }
    }
    Some(best.with_timezone(&Utc))
}

fn advance_hour(h: u32) -> (u32, u32, u32) {
    (h + 1, 0, 0)
}

/// The lowest set bit at position >= `from` and <= `max`.
fn next_bit(bits: u64, from: u32, max: u32) -> Option<u32> {
    if from > max {
        return None;
    }
    let masked = bits >> from << from;
    let pos = masked.trailing_zeros();
    (pos <= max).then_some(pos)
}

pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day())
}

fn parse_field(field: &str, spec: FieldSpec) -> Result<u64, CronError> {
    let err = |what: String| CronError(format!("{} field {field:?}: {what}", spec.name));
    let mut bits = 0u64;
    for item in field.split(',') {
        if item.is_empty() {
            return Err(err("empty list item".to_string()));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| err(format!("step {s:?} is not a number")))?;
                if step == 0 {
                    return Err(err("step must be at least 1".to_string()));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let lo = parse_value(a, spec).map_err(err)?;
            let mut hi = parse_value(b, spec).map_err(err)?;
            // `MON-SUN` means the whole week: Sunday closing a range is day 7, not 0. Not when
            // the range also starts on Sunday: `SUN-SUN` is Sunday, not every day (the crontab
            // fuzz target found that against the `cron` crate).
            if spec.name == DOW.name && b.eq_ignore_ascii_case("sun") && lo > 0 {
                hi = 7;
            }
            if lo > hi {
                return Err(err(format!(
                    "range {range:?} runs backwards ({lo} is after {hi})"
                )));
            }
            (lo, hi)
        } else {
            let v = parse_value(range, spec).map_err(err)?;
            if let Some(step) = step {
                return Err(err(format!(
                    "a step needs a range or \"*\" before it (write \"{range}-{}/{step}\")",
                    spec.max
                )));
            }
            (v, v)
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn parse_value(token: &str, spec: FieldSpec) -> Result<u32, String> {
    if token.is_empty() {
        return Err("missing number".to_string());
    }
    if token.bytes().all(|b| b.is_ascii_digit()) {
        let v: u32 = token
            .parse()
            .map_err(|_| format!("{token:?} is out of range {}-{}", spec.min, spec.max))?;
        if v < spec.min || v > spec.max {
            return Err(format!("{v} is out of range {}-{}", spec.min, spec.max));
        }
        return Ok(v);
    }
    if spec.names.is_empty() {
        return Err(format!("{token:?} is not a number"));
    }
    let upper = token.to_ascii_uppercase();
    match spec.names.iter().position(|n| *n == upper) {
        // Month names start at 1 (JAN), weekday names at 0 (SUN): the spec's minimum.
        Some(i) => Ok(i as u32 + spec.min),
        None => Err(format!("unknown name {token:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The next `n` fire times after `from`, as RFC 3339 in `tz`.
    fn next_n(expr: &str, tz: Tz, from: &str, n: usize) -> Vec<String> {
        let cron = CronExpr::parse(expr).unwrap();
        let mut at = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            at = cron.next_after(at, tz).expect("a next instant");
            out.push(
                at.with_timezone(&tz)
                    .to_rfc3339_opts(SecondsFormat::Secs, false),
            );
        }
        out
    }

    fn err(expr: &str) -> String {
        CronExpr::parse(expr).unwrap_err().to_string()
    }

    #[test]
    fn names_are_case_insensitive_and_work_in_ranges() {
        assert_eq!(
            CronExpr::parse("0 9 * jan-Mar mon-FRI").unwrap().dow,
            CronExpr::parse("0 9 * 1-3 1-5").unwrap().dow
        );
        assert_eq!(
            CronExpr::parse("0 9 * * sat-sun").unwrap().dow,
            CronExpr::parse("0 9 * * 0,6").unwrap().dow
        );
        assert_eq!(
            CronExpr::parse("0 9 * * mon-sun").unwrap().dow,
            CronExpr::parse("0 9 * * *").unwrap().dow
        );
        // A range from Sunday to Sunday is one day, as in Vixie cron.
        assert_eq!(
            CronExpr::parse("0 9 * * SUN-SUN").unwrap().dow,
            CronExpr::parse("0 9 * * 0").unwrap().dow
        );
        assert_eq!(
            CronExpr::parse("0 9 * jan-Mar mon-FRI").unwrap().months,
            CronExpr::parse("0 9 * 1-3 1-5").unwrap().months
        );
        // 2026-11-20 is a Friday: the next MON-FRI 09:00 after Friday noon is Monday.
        assert_eq!(
            next_n(
                "0 9 * * MON-FRI",
                Tz::Asia__Shanghai,
                "2026-11-20T12:00:00+08:00",
                2
            ),
            ["2026-11-23T09:00:00+08:00", "2026-11-24T09:00:00+08:00"]
        );
    }

    #[test]
    fn sunday_is_zero_or_seven_and_monday_is_one() {
        // 2026-11-22 is a Sunday.
        let from = "2026-11-19T00:00:00+08:00";
        let sunday = ["2026-11-22T00:00:00+08:00", "2026-11-29T00:00:00+08:00"];
        assert_eq!(next_n("0 0 * * 7", Tz::Asia__Shanghai, from, 2), sunday);
        assert_eq!(next_n("0 0 * * 0", Tz::Asia__Shanghai, from, 2), sunday);
        assert_eq!(next_n("0 0 * * sun", Tz::Asia__Shanghai, from, 2), sunday);
        assert_eq!(
            next_n("0 0 * * 1", Tz::Asia__Shanghai, from, 1),
            ["2026-11-23T00:00:00+08:00"]
        );
        // 5-7 is Friday through Sunday.
        assert_eq!(
            next_n("0 0 * * 5-7", Tz::Asia__Shanghai, from, 4),
            [
                "2026-11-20T00:00:00+08:00",
                "2026-11-21T00:00:00+08:00",
                "2026-11-22T00:00:00+08:00",
                "2026-11-27T00:00:00+08:00"
            ]
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_both_restricted_means_either() {
        // The 1st, the 15th and every Monday of December 2026 (Mondays: 7, 14, 21, 28).
        assert_eq!(
            next_n(
                "0 0 1,15 * MON",
                Tz::Asia__Shanghai,
                "2026-11-30T12:00:00+08:00",
                6
            ),
            [
                "2026-12-01T00:00:00+08:00",
                "2026-12-07T00:00:00+08:00",
                "2026-12-14T00:00:00+08:00",
                "2026-12-15T00:00:00+08:00",
                "2026-12-21T00:00:00+08:00",
                "2026-12-28T00:00:00+08:00",
            ]
        );
    }

    #[test]
    fn a_star_in_either_day_field_means_both_must_match() {
        // `*/2` starts with `*`, so it is "unrestricted" for the OR rule, as in Vixie cron:
        // odd days of the month that are also Mondays.
        assert_eq!(
            next_n(
                "0 0 */2 * 1",
                Tz::Asia__Shanghai,
                "2026-11-30T12:00:00+08:00",
                3
            ),
            [
                "2026-12-07T00:00:00+08:00",
                "2026-12-21T00:00:00+08:00",
                "2027-01-11T00:00:00+08:00",
            ]
        );
        // Day of month restricted, weekday `*`: only the 15th.
        assert_eq!(
            next_n(
                "30 8 15 * *",
                Tz::Asia__Shanghai,
                "2026-11-30T12:00:00+08:00",
                2
            ),
            ["2026-12-15T08:30:00+08:00", "2027-01-15T08:30:00+08:00"]
        );
    }

    #[test]
    fn steps_ranges_and_lists() {
        assert_eq!(
            next_n(
                "*/15 9 * * *",
                Tz::Asia__Shanghai,
                "2026-11-21T09:20:00+08:00",
                3
            ),
            [
                "2026-11-21T09:30:00+08:00",
                "2026-11-21T09:45:00+08:00",
                "2026-11-22T09:00:00+08:00"
            ]
        );
        // 1-30/7: days 1, 8, 15, 22, 29.
        assert_eq!(
            next_n(
                "0 0 1-30/7 2 *",
                Tz::Asia__Shanghai,
                "2027-01-01T00:00:00+08:00",
                5
            ),
            [
                "2027-02-01T00:00:00+08:00",
                "2027-02-08T00:00:00+08:00",
                "2027-02-15T00:00:00+08:00",
                "2027-02-22T00:00:00+08:00",
                // 2027 is not a leap year: day 29 waits for 2028.
                "2028-02-01T00:00:00+08:00"
            ]
        );
        assert_eq!(
            next_n(
                "0 8,12,18 * * *",
                Tz::Asia__Shanghai,
                "2026-11-21T12:00:00+08:00",
                2
            ),
            ["2026-11-21T18:00:00+08:00", "2026-11-22T08:00:00+08:00"]
        );
    }

    #[test]
    fn february_29_waits_for_the_next_leap_year() {
        assert_eq!(
            next_n(
                "0 0 29 2 *",
                Tz::Asia__Shanghai,
                "2026-11-21T00:00:00+08:00",
                2
            ),
            ["2028-02-29T00:00:00+08:00", "2032-02-29T00:00:00+08:00"]
        );
        // 2100 is not a leap year.
        assert_eq!(
            next_n("0 0 29 2 *", Tz::UTC, "2096-03-01T00:00:00+00:00", 1),
            ["2104-02-29T00:00:00+00:00"]
        );
    }

    #[test]
    fn six_fields_put_seconds_first() {
        assert_eq!(
            next_n(
                "*/20 0 9 * * *",
                Tz::Asia__Shanghai,
                "2026-11-21T09:00:00+08:00",
                3
            ),
            [
                "2026-11-21T09:00:20+08:00",
                "2026-11-21T09:00:40+08:00",
                "2026-11-22T09:00:00+08:00"
            ]
        );
    }

    #[test]
    fn shorthands() {
        let from = "2026-11-21T10:30:00+08:00";
        let sh = Tz::Asia__Shanghai;
        assert_eq!(
            next_n("@yearly", sh, from, 1),
            ["2027-01-01T00:00:00+08:00"]
        );
        assert_eq!(
            next_n("@annually", sh, from, 1),
            ["2027-01-01T00:00:00+08:00"]
        );
        assert_eq!(
            next_n("@monthly", sh, from, 1),
            ["2026-12-01T00:00:00+08:00"]
        );
        assert_eq!(
            next_n("@weekly", sh, from, 1),
            ["2026-11-22T00:00:00+08:00"]
        );
        assert_eq!(next_n("@daily", sh, from, 1), ["2026-11-22T00:00:00+08:00"]);
        assert_eq!(
            next_n("@HOURLY", sh, from, 1),
            ["2026-11-21T11:00:00+08:00"]
        );
    }

    #[test]
    fn next_is_strictly_after_even_when_from_is_a_slot() {
        assert_eq!(
            next_n(
                "0 9 * * *",
                Tz::Asia__Shanghai,
                "2026-11-21T09:00:00+08:00",
                1
            ),
            ["2026-11-22T09:00:00+08:00"]
        );
        // Half a second past the slot still excludes it.
        let cron = CronExpr::parse("0 9 * * *").unwrap();
        let at = utc("2026-11-21T01:00:00.500Z");
        assert_eq!(
            cron.next_after(at, Tz::Asia__Shanghai),
            Some(utc("2026-11-22T01:00:00Z"))
        );
        let at = utc("2026-11-21T00:59:59.500Z");
        assert_eq!(
            cron.next_after(at, Tz::Asia__Shanghai),
            Some(utc("2026-11-21T01:00:00Z"))
        );
    }

    #[test]
    fn new_york_spring_forward_gap_fires_once_at_the_end_of_the_gap() {
        // 2026-03-08 02:00 EST -> 03:00 EDT.
        let ny = Tz::America__New_York;
        assert_eq!(
            next_n("30 2 * * *", ny, "2026-03-07T12:00:00-05:00", 3),
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00"
            ]
        );
        // Every quarter hour of the missing hour collapses into one run at 03:00, which is also
        // the 03:00 slot itself: once.
        assert_eq!(
            next_n("*/15 * * * *", ny, "2026-03-08T01:30:00-05:00", 4),
            [
                "2026-03-08T01:45:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:15:00-04:00",
                "2026-03-08T03:30:00-04:00"
            ]
        );
    }

    #[test]
    fn new_york_fall_back_repeat_fires_once_at_the_earlier_instant() {
        // 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice.
        let ny = Tz::America__New_York;
        assert_eq!(
            next_n("30 1 * * *", ny, "2026-10-31T12:00:00-04:00", 2),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
        );
        // Asked from inside the repeated hour (01:10 EST, after the first 01:30 fired), the
        // repeat is not returned again.
        assert_eq!(
            next_n("30 1 * * *", ny, "2026-11-01T01:10:00-05:00", 1),
            ["2026-11-02T01:30:00-05:00"]
        );
        // Hourly: the wall-clock hour 01:xx runs once, then 02:00 EST.
        assert_eq!(
            next_n("0,30 * * * *", ny, "2026-11-01T00:45:00-04:00", 4),
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T02:00:00-05:00",
                "2026-11-01T02:30:00-05:00"
            ]
        );
    }

    #[test]
    fn london_gap_and_repeat() {
        let ldn = Tz::Europe__London;
        // 2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT.
        assert_eq!(
            next_n("30 1 * * *", ldn, "2026-03-28T12:00:00+00:00", 2),
            ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"]
        );
        assert_eq!(
            next_n("30 1 * * *", ldn, "2026-10-24T12:00:00+01:00", 2),
            ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"]
        );
    }

    #[test]
    fn lord_howe_half_hour_dst() {
        let lh = Tz::Australia__Lord_Howe;
        // 2026-10-04 02:00 +10:30 -> 02:30 +11:00: 02:15 is skipped, fires at 02:30.
        assert_eq!(
            next_n("15 2 * * *", lh, "2026-10-03T12:00:00+10:30", 2),
            ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]
        );
        // 2026-04-05 02:00 +11:00 -> 01:30 +10:30: 01:45 happens twice, runs once.
        assert_eq!(
            next_n("45 1 * * *", lh, "2026-04-04T12:00:00+11:00", 2),
            ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]
        );
    }

    #[test]
    fn shanghai_has_no_dst() {
        assert_eq!(
            next_n(
                "0 2 * * *",
                Tz::Asia__Shanghai,
                "2026-03-07T12:00:00+08:00",
                3
            ),
            [
                "2026-03-08T02:00:00+08:00",
                "2026-03-09T02:00:00+08:00",
                "2026-03-10T02:00:00+08:00"
            ]
        );
    }

    #[test]
    fn every_minute_through_dst_changes_is_strictly_increasing_and_never_repeats_a_wall_time() {
        for (tz, from, hours) in [
            (Tz::America__New_York, "2026-03-07T22:00:00-05:00", 8),
            (Tz::America__New_York, "2026-10-31T22:00:00-04:00", 8),
            (Tz::Australia__Lord_Howe, "2026-04-04T22:00:00+11:00", 8),
        ] {
            let cron = CronExpr::parse("* * * * *").unwrap();
            let mut at = utc(from);
            let mut seen = std::collections::HashSet::new();
            let end = at + Duration::hours(hours);
            while at < end {
                let next = cron.next_after(at, tz).unwrap();
                assert!(next > at);
                assert!(
                    seen.insert(next.with_timezone(&tz).naive_local()),
                    "{tz}: wall-clock {} fired twice",
                    next.with_timezone(&tz)
                );
                at = next;
            }
        }
    }

    /// The field-skipping search must find exactly what testing every minute would find.
    #[test]
    fn skipping_search_agrees_with_minute_by_minute_matching() {
        let exprs = [
            "0 9 * * *",
            "*/7 8-18/3 * * 1-5",
            "0 0 1,15 * MON",
            "30 23 31 * *",
            "0 12 * 2 sun",
            "15,45 */5 10-20/4 3-11/2 *",
            "0 0 29 2 *",
            "59 23 * 12 SAT",
            "0 6 L-1 * *",
        ];
        let starts = [
            "2026-01-30T23:59:00",
            "2027-12-31T23:30:00",
            "2028-02-28T09:00:00",
        ];
        for expr in exprs {
            let Ok(cron) = CronExpr::parse(expr) else {
                // Only the deliberately broken one.
                assert_eq!(expr, "0 6 L-1 * *");
                continue;
            };
            for start in starts {
                let mut from: NaiveDateTime = start.parse().unwrap();
                for _ in 0..3 {
                    let fast = cron.next_local_from(from).unwrap();
                    // Round up to a whole minute: these expressions have no seconds field.
                    let mut slow = from.with_second(0).unwrap();
                    if slow < from {
                        slow += Duration::minutes(1);
                    }
                    while !(cron.matches_date(slow.date())
                        && cron.hours & (1 << slow.hour()) != 0
                        && cron.minutes & (1 << slow.minute()) != 0
                        && slow.second() == 0)
                    {
                        slow += Duration::minutes(1);
                    }
                    assert_eq!(fast, slow, "{expr} from {from}");
                    from = fast + Duration::seconds(1);
                }
            }
        }
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        assert_eq!(
            err("0 9 * * MON-FRY"),
            r#"day-of-week field "MON-FRY": unknown name "FRY""#
        );
        assert_eq!(
            err("0 24 * * *"),
            r#"hour field "24": 24 is out of range 0-23"#
        );
        assert_eq!(
            err("60 * * * *"),
            r#"minute field "60": 60 is out of range 0-59"#
        );
        assert_eq!(
            err("0 0 0 * *"),
            r#"day-of-month field "0": 0 is out of range 1-31"#
        );
        assert_eq!(
            err("0 0 * 13 *"),
            r#"month field "13": 13 is out of range 1-12"#
        );
        assert_eq!(
            err("0 0 * FOO *"),
            r#"month field "FOO": unknown name "FOO""#
        );
        assert_eq!(
            err("0 0 * * 8"),
            r#"day-of-week field "8": 8 is out of range 0-7"#
        );
        assert_eq!(
            err("*/0 * * * *"),
            r#"minute field "*/0": step must be at least 1"#
        );
        assert_eq!(
            err("5/15 * * * *"),
            r#"minute field "5/15": a step needs a range or "*" before it (write "5-59/15")"#
        );
        assert_eq!(
            err("0 17-9 * * *"),
            r#"hour field "17-9": range "17-9" runs backwards (17 is after 9)"#
        );
        assert_eq!(err("0 x * * *"), r#"hour field "x": "x" is not a number"#);
        assert_eq!(err("0 1,,2 * * *"), r#"hour field "1,,2": empty list item"#);
        assert_eq!(
            err("0 9 * *"),
            r#"expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got 4 in "0 9 * *""#
        );
        assert_eq!(
            err("@reboot"),
            r#"unknown shorthand "@reboot" (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)"#
        );
        assert_eq!(
            err("0 0 30 2 *"),
            r#"day-of-month field "30": day 30 never occurs in month field "2""#
        );
        assert_eq!(err("  "), "empty crontab expression");
        // With the OR rule a weekday can still fire in February: accepted.
        assert!(CronExpr::parse("0 0 30 2 MON").is_ok());
    }

    /// Every combination of these fields, but never day-of-month and day-of-week both
    /// restricted (the `cron` crate ANDs them, Vixie cron ORs them), in a zone without DST
    /// (the crate's handling of gaps and repeats is its own): the next 25 firing times from three
    /// starting instants must be the same as the `cron` crate's.
    #[test]
    fn agrees_with_the_cron_crate_where_semantics_agree() {
        use std::str::FromStr as _;
        let seconds = ["0", "*/20"];
        let minutes = ["0", "*/15", "5,35", "10-20/5"];
        let hours = ["*", "9", "8-18/2", "0,12"];
        let days = [
            ("*", "*"),
            ("*", "MON-FRI"),
            ("*", "SUN"),
            ("*", "SAT,SUN"),
            ("1", "*"),
            ("15-20", "*"),
            ("*/10", "*"),
            ("31", "*"),
        ];
        let months = ["*", "FEB,AUG", "MAR-MAY", "*/3"];
        let tz = Tz::Asia__Shanghai;
        let starts = [
            "2026-11-22T07:59:59+08:00",
            "2027-12-31T23:59:59+08:00",
            // Leap day: `29` and February in the same year.
            "2028-02-28T12:00:00+08:00",
        ]
        .map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc));
        let mut compared = 0;
        for sec in seconds {
            for min in minutes {
                for hour in hours {
                    for (dom, dow) in days {
                        for month in months {
                            let expr = format!("{sec} {min} {hour} {dom} {month} {dow}");
                            let ours = CronExpr::parse(&expr).unwrap();
                            let oracle = ::cron::Schedule::from_str(&expr).unwrap();
                            for start in starts {
                                let theirs: Vec<DateTime<Utc>> = oracle
                                    .after(&start.with_timezone(&tz))
                                    .take(25)
                                    .map(|t| t.with_timezone(&Utc))
                                    .collect();
                                let mut mine = Vec::new();
                                let mut after = start;
                                while mine.len() < 25 {
                                    after = ours.next_after(after, tz).unwrap();
                                    mine.push(after);
                                }
                                assert_eq!(mine, theirs, "{expr} after {start}");
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 2 * 4 * 4 * 8 * 4 * 3);
    }
}
