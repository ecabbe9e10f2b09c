//! Business calendars: which days the service desk works.
//!
//! A weekend rule alone is wrong in mainland China: every year the State Council moves public
//! holidays around and turns some Saturdays and Sundays into make-up workdays (调休). A
//! calendar file therefore lists, per year, the public holidays and the make-up workdays, with
//! their names, so `wuyed calendar holidays` and skip reasons can say 国庆节 rather than "day off".
//!
//! ```toml
//! weekend = ["sat", "sun"]
//! [years.2026]
//! source = "国务院办公厅关于2026年部分节假日安排的通知"
//! holidays = [ { name = "国庆节", from = 2026-10-01, to = 2026-10-07 } ]
//! workdays = [ { name = "国庆节调休", date = 2026-10-10 } ]
//! ```
//!
//! Years the file has no section for fall back to the weekend rule. That is a decision, not an
//! accident: the next year's arrangement is published only in November, and a daemon must not stop
//! sending fee reminders on 1 January because nobody updated a file. [`Calendar::covers`] lets
//! `wuyed check`, the daemon's start-up log and `wuyed calendar` warn about uncovered years.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;
use toml::Spanned;

/// Public holidays and make-up workdays (调休) of one calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// The file stem (`cn-mainland`), as communities refer to it.
    pub name: String,
    /// Bit `n` set: weekday `n` counted from Monday = 0 is a day off.
    weekend: u8,
    /// Years with a section in the file.
    years: Vec<i32>,
    /// Every listed day: holidays (`workday = false`) and make-up workdays.
    special: BTreeMap<NaiveDate, SpecialDay>,
    /// Workday bits for every day of `base_year ..` (366 bits a year), so the hot path of the
    /// planner does a shift and a mask instead of a map lookup.
    base_year: i32,
    bits: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SpecialDay {
    workday: bool,
    name: String,
}

/// One day the calendar lists: a public holiday or a make-up workday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDay {
    pub date: NaiveDate,
    pub name: String,
    /// True for a make-up workday (调休上班), false for a holiday.
    pub workday: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    /// Days of the week that are not workdays unless listed under `workdays`.
    #[serde(default = "default_weekend")]
    weekend: Spanned<Vec<String>>,
    #[serde(default)]
    years: BTreeMap<String, Spanned<YearFile>>,
}

fn default_weekend() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["sat".to_string(), "sun".to_string()])
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    /// Where the arrangement comes from (the notice's title); for people, not for the daemon.
    #[allow(dead_code)]
    source: Option<String>,
    #[serde(default)]
    holidays: Vec<Spanned<HolidayFile>>,
    #[serde(default)]
    workdays: Vec<Spanned<WorkdayFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayFile {
    name: String,
    from: Spanned<toml::value::Datetime>,
    /// Last day, inclusive; absent for a one-day holiday.
    to: Option<Spanned<toml::value::Datetime>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkdayFile {
    name: String,
    date: Spanned<toml::value::Datetime>,
}

/// A calendar file that could not be used: names the file, the key and the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarError {
    pub file: String,
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for CalendarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CalendarError {}

impl Calendar {
    /// Loads `calendars/<name>.toml`; the calendar's name is the file stem.
    ///
    /// A file that does not parse or check gives a [`CalendarError`] inside the `anyhow::Error`
    /// (`err.downcast_ref::<CalendarError>()`), with file, key path and line for `wuyed check`.
    pub fn load(path: &Path) -> anyhow::Result<Calendar> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read calendar: {e}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Calendar::parse(&name, &path.display().to_string(), &text)?)
    }

    /// Parses calendar text; `file` is only used in messages.
    pub fn parse(name: &str, file: &str, text: &str) -> Result<Calendar, CalendarError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let fail =
            |key: &str, span: Option<std::ops::Range<usize>>, message: String| CalendarError {
                file: file.to_string(),
                key: key.to_string(),
                line: span.map(|s| line_of(s.start)),
                message,
            };

        let de = toml::Deserializer::parse(text)
            .map_err(|e| fail("", e.span(), e.message().to_string()))?;
        let raw: CalendarFile = serde_path_to_error::deserialize(de).map_err(|e| {
            // `Spanned` and TOML dates are special structs to serde; their private field names
            // mean nothing to an administrator.
            let key = e
                .path()
                .to_string()
                .split('.')
                .filter(|seg| !seg.starts_with("$__") && !seg.is_empty())
                .collect::<Vec<_>>()
                .join(".")
                .replace(".[", "[");
            let inner = e.into_inner();
            fail(&key, inner.span(), inner.message().to_string())
        })?;

        let mut weekend = 0u8;
        for day in raw.weekend.get_ref() {
            let wd = parse_weekday(day).ok_or_else(|| {
                fail(
                    "weekend",
                    Some(raw.weekend.span()),
                    format!("unknown day {day:?} (use mon, tue, wed, thu, fri, sat, sun)"),
                )
            })?;
            weekend |= 1 << wd.num_days_from_monday();
        }
        if weekend == 0x7f {
            return Err(fail(
                "weekend",
                Some(raw.weekend.span()),
                "every day of the week is a weekend day; a calendar needs workdays".to_string(),
            ));
        }

        let mut years = Vec::new();
        let mut special: BTreeMap<NaiveDate, (SpecialDay, String, usize)> = BTreeMap::new();
        for (year_key, section) in &raw.years {
            let year: i32 = year_key
                .parse()
                .ok()
                .filter(|y| (1900..=9999).contains(y))
                .ok_or_else(|| {
                    fail(
                        &format!("years.{year_key}"),
                        Some(section.span()),
                        format!("{year_key:?} is not a year"),
                    )
                })?;
            years.push(year);
            let section = section.get_ref();
            for (i, h) in section.holidays.iter().enumerate() {
                let key = format!("years.{year}.holidays[{i}]");
                let span = h.span();
                let h = h.get_ref();
                let from = to_date(&h.from)
                    .map_err(|m| fail(&format!("{key}.from"), Some(h.from.span()), m))?;
                let to = match &h.to {
                    Some(to) => {
                        to_date(to).map_err(|m| fail(&format!("{key}.to"), Some(to.span()), m))?
                    }
                    None => from,
                };
                if to < from {
                    return Err(fail(
                        &format!("{key}.to"),
                        h.to.as_ref().map(|t| t.span()),
                        format!("{to} is before from = {from}"),
                    ));
                }
                if (to - from).num_days() > 31 {
                    return Err(fail(
                        &key,
                        Some(span),
                        format!("{from} to {to} is longer than a month; is a year wrong?"),
                    ));
                }
                // A holiday may spill over New Year (元旦 2023-12-30 .. 2024-01-01), but it must
                // touch its section's year.
                if from.year() != year && to.year() != year {
                    return Err(fail(
                        &key,
                        Some(span.clone()),
                        format!("{from} to {to} is not in {year}"),
                    ));
                }
                let mut d = from;
                while d <= to {
                    insert(&mut special, d, false, &h.name, &key, line_of(span.start))
                        .map_err(|m| fail(&key, Some(span.clone()), m))?;
                    d = d.succ_opt().expect("dates before year 9999");
                }
            }
            for (i, w) in section.workdays.iter().enumerate() {
                let key = format!("years.{year}.workdays[{i}]");
                let span = w.span();
                let w = w.get_ref();
                let date = to_date(&w.date)
                    .map_err(|m| fail(&format!("{key}.date"), Some(w.date.span()), m))?;
                if date.year() != year {
                    return Err(fail(
                        &format!("{key}.date"),
                        Some(w.date.span()),
                        format!("{date} is not in {year}"),
                    ));
                }
                if weekend & (1 << date.weekday().num_days_from_monday()) == 0 {
                    return Err(fail(
                        &format!("{key}.date"),
                        Some(w.date.span()),
                        format!(
                            "{date} is a {} and a workday anyway; a make-up workday is a weekend day",
                            weekday_name(date.weekday())
                        ),
                    ));
                }
                insert(&mut special, date, true, &w.name, &key, line_of(span.start))
                    .map_err(|m| fail(&key, Some(span.clone()), m))?;
            }
        }

        let special: BTreeMap<NaiveDate, SpecialDay> =
            special.into_iter().map(|(d, (s, _, _))| (d, s)).collect();
        let mut cal = Calendar {
            name: name.to_string(),
            weekend,
            years,
            special,
            base_year: 0,
            bits: Vec::new(),
        };
        cal.build_bits();
        Ok(cal)
    }

    /// A calendar with only a weekend rule (for tests and for communities without a file).
    pub fn weekends_only(name: &str, weekend: &[Weekday]) -> Calendar {
        let mut cal = Calendar {
            name: name.to_string(),
            weekend: weekend
                .iter()
                .fold(0, |acc, d| acc | (1 << d.num_days_from_monday())),
            years: Vec::new(),
            special: BTreeMap::new(),
            base_year: 0,
            bits: Vec::new(),
        };
        cal.build_bits();
        cal
    }

    fn build_bits(&mut self) {
        let (Some(first), Some(last)) = (
            self.special.keys().next().map(|d| d.year()),
            self.special.keys().next_back().map(|d| d.year()),
        ) else {
            return;
        };
        self.base_year = first;
        self.bits = vec![0; ((last - first + 1) * 6) as usize];
        for year in first..=last {
            let mut d = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid year");
            while d.year() == year {
                if self.slow_is_workday(d) {
                    let i = (year - first) as usize * 6 * 64 + d.ordinal0() as usize;
                    self.bits[i / 64] |= 1 << (i % 64);
                }
                d = d.succ_opt().expect("valid date");
            }
        }
    }

    fn slow_is_workday(&self, date: NaiveDate) -> bool {
        match self.special.get(&date) {
            Some(s) => s.workday,
            None => !self.is_weekend_day(date),
        }
    }

    fn is_weekend_day(&self, date: NaiveDate) -> bool {
        self.weekend & (1 << date.weekday().num_days_from_monday()) != 0
    }

    /// True when the service desk works on `date`: listed make-up workdays are, listed holidays
    /// are not, other days follow the weekend rule (also in years the file does not cover).
    pub fn is_workday(&self, date: NaiveDate) -> bool {
        let offset = date.year() - self.base_year;
        if offset >= 0 && (offset as usize) * 6 < self.bits.len() {
            let i = offset as usize * 6 * 64 + date.ordinal0() as usize;
            self.bits[i / 64] & (1 << (i % 64)) != 0
        } else {
            !self.is_weekend_day(date)
        }
    }

    /// The first workday on or after `date` (None only past the end of time).
    pub fn next_workday_from(&self, date: NaiveDate) -> Option<NaiveDate> {
        let mut d = date;
        // A weekend rule leaves at least one workday a week; the longest listed run of holidays
        // is a month. A year is far more than enough.
        for _ in 0..400 {
            if self.is_workday(d) {
                return Some(d);
            }
            d = d.succ_opt()?;
        }
        None
    }

    /// Whether the file has a section for `year`; outside, only the weekend rule applies.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// The years the file has a section for, ascending.
    pub fn years(&self) -> &[i32] {
        &self.years
    }

    /// Years in `from..=to` the calendar has no section for; for warnings.
    pub fn uncovered_years(&self, from: NaiveDate, to: NaiveDate) -> Vec<i32> {
        (from.year()..=to.year())
            .filter(|y| !self.covers(*y))
            .collect()
    }

    /// A warning to print when `from..=to` reaches years the file does not cover.
    pub fn coverage_warning(&self, from: NaiveDate, to: NaiveDate) -> Option<String> {
        let missing = self.uncovered_years(from, to);
        if missing.is_empty() {
            return None;
        }
        let mut msg = format!("calendar {} has no holidays for ", self.name);
        for (i, y) in missing.iter().enumerate() {
            let _ = write!(msg, "{}{y}", if i == 0 { "" } else { ", " });
        }
        let _ = write!(
            msg,
            " (it covers {}); those years count weekends only",
            match (self.years.first(), self.years.last()) {
                (Some(a), Some(b)) if a == b => a.to_string(),
                (Some(a), Some(b)) => format!("{a}-{b}"),
                _ => "no year".to_string(),
            }
        );
        Some(msg)
    }

    /// The name of a listed day (`国庆节`, `春节调休`), if it is one.
    pub fn day_name(&self, date: NaiveDate) -> Option<&str> {
        self.special.get(&date).map(|s| s.name.as_str())
    }

    /// Why `date` is not a workday, for skip reasons: `"2026-10-01 is 国庆节 in calendar
    /// cn-mainland"` or `"2026-11-21 is a Saturday"`. None on a workday.
    pub fn non_workday_reason(&self, date: NaiveDate) -> Option<String> {
        if self.is_workday(date) {
            return None;
        }
        Some(match self.day_name(date) {
            Some(name) => format!("{date} is {name} in calendar {}", self.name),
            None => format!(
                "{date} is a {} (weekend in calendar {})",
                weekday_name(date.weekday()),
                self.name
            ),
        })
    }

    /// The listed days (holidays and make-up workdays) in `from..=to`, in date order.
    pub fn listed_days(&self, from: NaiveDate, to: NaiveDate) -> Vec<ListedDay> {
        self.special
            .range(from..=to)
            .map(|(d, s)| ListedDay {
                date: *d,
                name: s.name.clone(),
                workday: s.workday,
            })
            .collect()
    }
}

fn insert(
    special: &mut BTreeMap<NaiveDate, (SpecialDay, String, usize)>,
    date: NaiveDate,
    workday: bool,
    name: &str,
    key: &str,
    line: usize,
) -> Result<(), String> {
    if let Some((prev, prev_key, prev_line)) = special.get(&date) {
        return Err(format!(
            "{date} is already listed as {} at {prev_key} (line {prev_line})",
            prev.name
        ));
    }
    special.insert(
        date,
        (
            SpecialDay {
                workday,
                name: name.to_string(),
            },
            key.to_string(),
            line,
        ),
    );
    Ok(())
}

fn to_date(value: &Spanned<toml::value::Datetime>) -> Result<NaiveDate, String> {
    let dt = value.get_ref();
    match (dt.date, dt.time, dt.offset) {
        (Some(d), None, None) => {
            NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())
                .ok_or_else(|| format!("{dt} is not a date"))
        }
        _ => Err(format!(
            "expected a date like 2026-10-01, got {dt} (no time of day)"
        )),
    }
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    let lower = s.to_ascii_lowercase();
    let short = lower.get(..3)?;
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let i = full
        .iter()
        .position(|f| f.starts_with(short) && (lower.len() == 3 || *f == lower))?;
    Weekday::try_from(i as u8).ok()
}

fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Calendar {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../config/calendars/cn-mainland.toml");
        Calendar::load(&path).expect("the shipped calendar loads")
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn parse_err(text: &str) -> String {
        Calendar::parse("t", "calendars/t.toml", text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn cn_mainland_2026_make_up_days_are_workdays() {
        let cal = shipped();
        for day in [
            "2026-01-04",
            "2026-02-14",
            "2026-02-28",
            "2026-05-09",
            "2026-09-20",
            "2026-10-10",
        ] {
            assert!(cal.is_workday(d(day)), "{day} should be a make-up workday");
        }
    }

    #[test]
    fn cn_mainland_2026_holidays_are_not_workdays() {
        let cal = shipped();
        let mut days = vec![
            "2026-01-01",
            "2026-01-02",
            "2026-01-03",
            "2026-04-06",
            "2026-05-04",
            "2026-05-05",
            "2026-06-19",
            "2026-09-25",
            "2026-02-23",
        ];
        let october: Vec<String> = (1..=7).map(|i| format!("2026-10-{i:02}")).collect();
        days.extend(october.iter().map(|s| s.as_str()));
        for day in days {
            assert!(!cal.is_workday(d(day)), "{day} should be a holiday");
        }
        assert_eq!(cal.day_name(d("2026-10-01")), Some("国庆节"));
        assert_eq!(cal.day_name(d("2026-02-17")), Some("春节"));
        // Ordinary days follow the weekend rule.
        assert!(cal.is_workday(d("2026-10-09")));
        assert!(!cal.is_workday(d("2026-10-11")));
        assert!(!cal.is_workday(d("2026-11-21")));
    }

    #[test]
    fn cn_mainland_2025_arrangement() {
        let cal = shipped();
        for day in [
            "2025-01-26",
            "2025-02-08",
            "2025-04-27",
            "2025-09-28",
            "2025-10-11",
        ] {
            assert!(cal.is_workday(d(day)), "{day} should be a make-up workday");
        }
        for day in [
            "2025-01-01",
            "2025-01-28",
            "2025-02-04",
            "2025-04-04",
            "2025-05-05",
            "2025-06-02",
            "2025-10-08",
        ] {
            assert!(!cal.is_workday(d(day)), "{day} should be a holiday");
        }
        assert!(cal.is_workday(d("2025-10-09")));
    }

    #[test]
    fn uncovered_years_fall_back_to_weekends_and_say_so() {
        let cal = shipped();
        assert!(cal.covers(2026));
        assert!(!cal.covers(2027));
        assert!(cal.is_workday(d("2027-01-01")), "a Friday, no 2027 data");
        assert!(!cal.is_workday(d("2027-01-02")));
        assert_eq!(
            cal.coverage_warning(d("2026-12-01"), d("2027-01-31"))
                .as_deref(),
            Some(
                "calendar cn-mainland has no holidays for 2027 (it covers 2025-2026); those \
                 years count weekends only"
            )
        );
        assert_eq!(cal.coverage_warning(d("2026-01-01"), d("2026-12-31")), None);
    }

    #[test]
    fn non_workday_reasons_name_the_holiday() {
        let cal = shipped();
        assert_eq!(
            cal.non_workday_reason(d("2026-10-01")).as_deref(),
            Some("2026-10-01 is 国庆节 in calendar cn-mainland")
        );
        assert_eq!(
            cal.non_workday_reason(d("2026-11-21")).as_deref(),
            Some("2026-11-21 is a Saturday (weekend in calendar cn-mainland)")
        );
        assert_eq!(cal.non_workday_reason(d("2026-10-10")), None);
    }

    #[test]
    fn load_errors_name_file_key_and_line() {
        assert_eq!(
            parse_err(
                "weekend = [\"sat\", \"sun\"]\n[years.2026]\nholidays = [\n  { name = \"a\", from = 2026-10-07, to = 2026-10-01 },\n]\n"
            ),
            "calendars/t.toml: years.2026.holidays[0].to (line 4): 2026-10-01 is before from = 2026-10-07"
        );
        assert_eq!(
            parse_err("[years.2026]\nworkdays = [\n  { name = \"x\", date = 2026-10-12 },\n]\n"),
            "calendars/t.toml: years.2026.workdays[0].date (line 3): 2026-10-12 is a Monday and a workday anyway; a make-up workday is a weekend day"
        );
        let unknown = parse_err("[years.2026]\nholiday = []\n");
        assert!(
            unknown.starts_with(
                "calendars/t.toml: years.2026.holiday (line 2): unknown field `holiday`"
            ),
            "{unknown}"
        );
        let wrong_type = parse_err(
            "[years.2026]\nholidays = [\n  { name = \"a\", from = \"2026-10-01\" },\n]\n",
        );
        assert!(
            wrong_type.starts_with("calendars/t.toml: years.2026.holidays[0].from (line 3): "),
            "{wrong_type}"
        );
        assert_eq!(
            parse_err(
                "[years.2026]\nholidays = [\n { name = \"a\", from = 2026-10-01 },\n { name = \"b\", from = 2026-09-30, to = 2026-10-02 },\n]\n"
            ),
            "calendars/t.toml: years.2026.holidays[1] (line 4): 2026-10-01 is already listed as a at years.2026.holidays[0] (line 3)"
        );
        assert_eq!(
            parse_err("weekend = [\"sat\", \"sunday\", \"fry\"]\n"),
            r#"calendars/t.toml: weekend (line 1): unknown day "fry" (use mon, tue, wed, thu, fri, sat, sun)"#
        );
        assert_eq!(
            parse_err("[years.2026]\nholidays = [{ name = \"a\", from = 2025-10-01 }]\n"),
            "calendars/t.toml: years.2026.holidays[0] (line 2): 2025-10-01 to 2025-10-01 is not in 2026"
        );
        let syntax = parse_err("[years.2026\n");
        assert!(
            syntax.starts_with("calendars/t.toml (line 1): "),
            "{syntax}"
        );
        // `wuyed check` gets the parts to build its own message.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "weekend = [\"sat\"]\nholidays = []\n").unwrap();
        let err = Calendar::load(&file).unwrap_err();
        let parts = err
            .downcast_ref::<CalendarError>()
            .expect("a CalendarError inside");
        assert_eq!(
            (parts.key.as_str(), parts.line),
            ("holidays", Some(2)),
            "{parts}"
        );
        let err = Calendar::load(Path::new("/nonexistent/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/nonexistent/x.toml: cannot read calendar: "),
            "{err}"
        );
    }

    #[test]
    fn a_holiday_may_spill_over_new_year() {
        let cal = Calendar::parse(
            "t",
            "t.toml",
            "[years.2024]\nholidays = [{ name = \"元旦\", from = 2023-12-30, to = 2024-01-01 }]\n",
        )
        .unwrap();
        assert!(!cal.is_workday(d("2024-01-01")));
        assert!(!cal.is_workday(d("2023-12-30")));
        assert!(cal.is_workday(d("2024-01-02")));
    }

    #[test]
    fn fast_lookup_agrees_with_the_rules_every_day() {
        let cal = shipped();
        let mut day = d("2024-06-01");
        while day < d("2027-06-01") {
            assert_eq!(cal.is_workday(day), cal.slow_is_workday(day), "{day}");
            day = day.succ_opt().unwrap();
        }
    }
}
