//! Reports an office manager pastes into the monthly report: owner satisfaction, callbacks after
//! tickets, and fee collection, for one community and one period (`wuyed report`).
//!
//! Each report is computed in two steps so the figures can be tested without a database: the
//! store (`store::report`) hands over plain rows for the period, the `compute` functions here turn
//! them into figures with integer arithmetic only (money in fen, rates as exact fractions rounded
//! once when printed, so a collection rate never drifts by a float rounding), and the renderers
//! ([`text`], [`html`]) print them. A rate over nothing (no campaign, no closed ticket, no bill) is
//! `None` and printed as "—" with a sentence saying why, never as NaN or 0%.
//!
//! [`build`] is the entry point (the CLI, benchmarks and anything else that wants a report call
//! it with a read-only connection); "as of" differs per report on purpose: fees are taken as the
//! books stood at the period's end (so a past quarter's figures do not change), callbacks as of
//! the day the report is run (a callback due after the period's end still belongs to it), and
//! surveys are whole campaigns that opened in the period.

pub mod callbacks;
pub mod fees;
pub mod html;
pub mod satisfaction;
pub mod text;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::config::Community;
use crate::domain::Language;
use crate::exit::Coded;
use crate::store::domain::DomainRead;
use crate::store::report as q;
use callbacks::Sla;

/// Which report.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    /// Survey response rate and satisfaction per service area, vs the previous period.
    Satisfaction,
    /// Callback rate, callbacks on time against the SLA, satisfaction among callbacks.
    Callbacks,
    /// Billed vs collected per fee type, arrears by age, low prepaid balances.
    Fees,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables for a terminal or an email.
    #[default]
    Text,
    /// A self-contained HTML page with SVG charts.
    Html,
}

/// A reporting period in the community's local calendar: a month, quarter, half year or year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub year: i32,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// 1–12
    Month(u32),
    /// 1–4
    Quarter(u32),
    /// 1–2
    Half(u32),
    Year,
}

const PERIOD_FORMS: &str =
    "expected a month (2026-09), quarter (2026Q3), half year (2026H2) or year (2026)";

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = |why: &str| format!("period {t:?}: {why}; {PERIOD_FORMS}");
        if t.len() < 4 || !t.is_char_boundary(4) {
            return Err(bad("too short"));
        }
        let (y, rest) = t.split_at(4);
        if !y.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("must start with a four-digit year"));
        }
        let year: i32 = y.parse().map_err(|_| bad("bad year"))?;
        if !(1970..=9999).contains(&year) {
            return Err(bad("year out of range"));
        }
        let num = |digits: &str, max: u32, what: &str| -> Result<u32, String> {
            match digits.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) && !digits.starts_with('+') => Ok(n),
                _ => Err(bad(&format!("{what} must be 1–{max}"))),
            }
        };
        let span = match rest.as_bytes().first() {
            None => Span::Year,
            Some(b'Q' | b'q') => Span::Quarter(num(&rest[1..], 4, "quarter")?),
            Some(b'H' | b'h') => Span::Half(num(&rest[1..], 2, "half")?),
            Some(b'-') if rest.len() == 3 => Span::Month(num(&rest[1..], 12, "month")?),
            Some(_) => return Err(bad("unrecognised")),
        };
        Ok(Period { year, span })
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.span {
            Span::Month(m) => write!(f, "{}-{m:02}", self.year),
            Span::Quarter(q) => write!(f, "{}Q{q}", self.year),
            Span::Half(h) => write!(f, "{}H{h}", self.year),
            Span::Year => write!(f, "{}", self.year),
        }
    }
}

impl Period {
    /// First month (1–12) and number of months.
    fn months(&self) -> (u32, u32) {
        match self.span {
            Span::Month(m) => (m, 1),
            Span::Quarter(q) => (3 * q - 2, 3),
            Span::Half(h) => (6 * h - 5, 6),
            Span::Year => (1, 12),
        }
    }

    /// First day of the period.
    pub fn start(&self) -> NaiveDate {
        let (m, _) = self.months();
        NaiveDate::from_ymd_opt(self.year, m, 1).expect("valid by construction")
    }

    /// First day after the period.
    pub fn end(&self) -> NaiveDate {
        let (m, n) = self.months();
        let m0 = m - 1 + n; // zero-based month after the period
        NaiveDate::from_ymd_opt(self.year + (m0 / 12) as i32, m0 % 12 + 1, 1)
            .expect("valid by construction")
    }

    /// Last day of the period.
    pub fn last_day(&self) -> NaiveDate {
        self.end().pred_opt().expect("not the first day ever")
    }

    /// The period of the same length just before this one (2026Q1 → 2025Q4).
    pub fn previous(&self) -> Period {
        let y = self.year;
        let (year, span) = match self.span {
            Span::Month(1) => (y - 1, Span::Month(12)),
            Span::Month(m) => (y, Span::Month(m - 1)),
            Span::Quarter(1) => (y - 1, Span::Quarter(4)),
            Span::Quarter(q) => (y, Span::Quarter(q - 1)),
            Span::Half(1) => (y - 1, Span::Half(2)),
            Span::Half(h) => (y, Span::Half(h - 1)),
            Span::Year => (y - 1, Span::Year),
        };
        Period { year, span }
    }

    /// `[start, end)` as UTC instants: local midnights in `tz`.
    pub fn instants(&self, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            local_midnight(tz, self.start()),
            local_midnight(tz, self.end()),
        )
    }

    /// "2026Q3 (2026-07-01 – 2026-09-30)"
    pub fn describe(&self) -> String {
        format!("{self} ({} – {})", self.start(), self.last_day())
    }
}

/// The UTC instant a local day starts. Chinese zones have no DST today, but a zone whose
/// midnight is skipped starts the day at the first instant that exists.
pub fn local_midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    let mut t = d.and_hms_opt(0, 0, 0).expect("midnight exists");
    for _ in 0..4 {
        if let Some(x) = tz.from_local_datetime(&t).earliest() {
            return x.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// A share `num/den`, kept exact until printed. `den == 0` is a rate over nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ratio {
    pub num: i64,
    pub den: i64,
}

impl Ratio {
    pub fn new(num: i64, den: i64) -> Self {
        Ratio { num, den }
    }

    /// In tenths of a percent, rounded half away from zero; `None` over nothing.
    pub fn permille(&self) -> Option<i64> {
        (self.den != 0).then(|| round_div(self.num * 1000, self.den))
    }

    /// "75.0%", or "—" over nothing.
    pub fn percent(&self) -> String {
        match self.permille() {
            Some(p) => format!("{}%", tenths(p)),
            None => "—".to_string(),
        }
    }

    /// The change from `prev` to `self` in percentage points, in tenths, rounded once from the
    /// exact difference (not from the two rounded rates).
    pub fn delta_pp(&self, prev: &Ratio) -> Option<i64> {
        if self.den == 0 || prev.den == 0 {
            return None;
        }
        let num =
            (self.num as i128 * prev.den as i128 - prev.num as i128 * self.den as i128) * 1000;
        let den = self.den as i128 * prev.den as i128;
        Some(round_div_i128(num, den) as i64)
    }
}

/// A change in percentage points: "+3.3 pp", "-1.0 pp", "±0.0 pp" (zh-CN: "+3.3 个百分点"), or
/// "—" when either side has no data.
pub fn fmt_delta(d: Option<i64>, lang: Language) -> String {
    let unit = lang.pick("个百分点", "pp");
    match d {
        Some(0) => format!("±0.0 {unit}"),
        Some(d) if d > 0 => format!("+{} {unit}", tenths(d)),
        Some(d) => format!("{} {unit}", tenths(d)),
        None => "—".to_string(),
    }
}

/// A mean `sum/count` printed with two decimals ("4.33"), or "—" over nothing.
pub fn fmt_mean(sum: i64, count: i64) -> String {
    if count == 0 {
        return "—".to_string();
    }
    let h = round_div(sum * 100, count);
    format!("{}.{:02}", h / 100, (h % 100).abs())
}

/// `n / d` rounded half away from zero; `d > 0`.
pub fn round_div(n: i64, d: i64) -> i64 {
    round_div_i128(n as i128, d as i128) as i64
}

fn round_div_i128(n: i128, d: i128) -> i128 {
    let (n, d) = if d < 0 { (-n, -d) } else { (n, d) };
    if n >= 0 {
        (2 * n + d) / (2 * d)
    } else {
        -((-2 * n + d) / (2 * d))
    }
}

/// 753 → "75.3", -10 → "-1.0".
fn tenths(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    format!("{sign}{}.{}", v.abs() / 10, v.abs() % 10)
}

/// Fen as yuan with thousands separators and two decimals: 123450 → "¥1,234.50".
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = fen.unsigned_abs();
    let whole = (a / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}¥{grouped}.{:02}", a % 100)
}

/// The reference day of a report: the period's last day, or `today` if the period is not over.
pub fn as_of_day(period: &Period, today: NaiveDate) -> NaiveDate {
    period.last_day().min(today)
}

/// The callback SLA from `[workflows.callback_escalation.params]` (enabled or not), defaults
/// otherwise. The params are the plugin's (its declaration types them for `wuyed check`); the
/// range is the report's own rule.
pub fn sla_of(community: &Community) -> anyhow::Result<Sla> {
    let mut sla = Sla::default();
    let Some(params) = &community.callback_params else {
        return Ok(sla);
    };
    for (key, slot) in [
        ("sla_hours_repair", &mut sla.repair_hours),
        ("sla_hours_complaint", &mut sla.complaint_hours),
    ] {
        match params.get(key) {
            None => {}
            Some(toml::Value::Integer(h)) if (1..=24 * 365).contains(h) => *slot = *h,
            Some(v) => {
                return Err(Coded::config(anyhow::anyhow!(
                    "{}: workflows.callback_escalation.params.{key}: expected a whole number of \
                     hours from 1 to 8760, got {v}",
                    community.file.display()
                ))
                .into());
            }
        }
    }
    Ok(sla)
}

/// The language a community's reports are printed in: its `locale`.
pub fn language_of(community: &Community) -> Language {
    community.locale
}

/// Computes and renders one report in `lang`. `today` is the community's local date the report
/// is run on.
pub fn build(
    conn: &rusqlite::Connection,
    community: &Community,
    kind: Kind,
    period: Period,
    today: NaiveDate,
    format: Format,
    lang: Language,
) -> anyhow::Result<String> {
    let id = community.id.as_str();
    let tz = community.tz;
    let (from, to) = period.instants(tz);
    // The day the report is judged at: the period's last day, or today if it is not over.
    let as_of_day = as_of_day(&period, today);
    let as_of = local_midnight(tz, as_of_day.succ_opt().unwrap_or(as_of_day));
    let html = matches!(format, Format::Html);
    Ok(match kind {
        Kind::Satisfaction => {
            let campaigns = q::campaigns_opened(conn, id, from, to)?;
            let responses = q::responses_opened(conn, id, from, to)?;
            let (pf, pt) = period.previous().instants(tz);
            let prev_campaigns = q::campaigns_opened(conn, id, pf, pt)?.len();
            let prev = q::responses_opened(conn, id, pf, pt)?;
            let mut r = satisfaction::compute(
                &community.name,
                period,
                campaigns,
                &responses,
                prev_campaigns,
                &prev,
            );
            r.lang = lang;
            if html { r.to_html() } else { r.to_text() }
        }
        Kind::Callbacks => {
            // Judged at the end of the report's day, not the period's (see report::callbacks).
            let now = local_midnight(tz, today.succ_opt().unwrap_or(today));
            let closed = q::tickets_closed(conn, id, from, to.min(now))?;
            let done = q::callbacks_done(conn, id, from, to.min(now))?;
            let names: BTreeMap<String, String> = community
                .staff
                .iter()
                .map(|s| (s.id.clone(), s.name.clone()))
                .collect();
            let mut r = callbacks::compute(
                &community.name,
                period,
                sla_of(community)?,
                (today, now),
                &closed,
                &done,
                &names,
            );
            r.escalations = q::escalations(conn, id, from, to.min(now))?;
            r.lang = lang;
            if html { r.to_html() } else { r.to_text() }
        }
        Kind::Fees => {
            // In a period not over yet, bills due after the reference day are not owed yet.
            let due_to = period.end().min(as_of_day.succ_opt().unwrap_or(as_of_day));
            let billed = q::billed_by_fee_type(conn, id, period.start(), due_to, as_of)?;
            let received = q::received_by_fee_type(conn, id, from, to.min(as_of), as_of)?;
            let unpaid = match as_of_day.pred_opt() {
                Some(due_by) => q::overdue_as_of(conn, id, as_of, due_by)?,
                None => Vec::new(),
            };
            let low = DomainRead::new(conn, id).balances_below_threshold()?;
            let mut r = fees::compute(
                &community.name,
                period,
                as_of_day,
                billed,
                received,
                &unpaid,
                low,
            );
            r.lang = lang;
            if html { r.to_html() } else { r.to_text() }
        }
    })
}

/// What the language tests of each report look at: the words a reader sees, in the wrong
/// script, once the data (community and staff names, ids, periods, owners' comments) is taken
/// out, since only the labels are the report's own.
#[cfg(test)]
pub(crate) mod wording {
    /// The text of an HTML page as a reader sees it: no style sheet, tags or entities.
    pub fn visible(page: &str) -> String {
        let mut s = page.to_string();
        while let (Some(a), Some(b)) = (s.find("<style>"), s.find("</style>")) {
            s.replace_range(a..b + "</style>".len(), " ");
        }
        let mut out = String::with_capacity(s.len());
        let (mut in_tag, mut in_entity) = (false, false);
        for c in s.chars() {
            match c {
                '<' => in_tag = true,
                '>' if in_tag => in_tag = false,
                '&' if !in_tag => in_entity = true,
                ';' if in_entity => in_entity = false,
                _ if in_tag || in_entity => {}
                _ => out.push(c),
            }
        }
        out
    }

    fn without(text: &str, data: &[&str]) -> String {
        let mut data = data.to_vec();
        // Longest first, so a name inside a longer piece of data goes with it.
        data.sort_by_key(|d| std::cmp::Reverse(d.len()));
        data.iter().fold(text.to_string(), |t, d| t.replace(d, " "))
    }

    /// Words in Latin letters outside `data`: none may be left in a zh-CN report.
    pub fn latin_words(text: &str, data: &[&str]) -> Vec<String> {
        without(text, data)
            .split(|c: char| !c.is_ascii_alphabetic())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Chinese characters and full-width punctuation outside `data`: none may be left in an
    /// English report.
    pub fn cjk(text: &str, data: &[&str]) -> String {
        without(text, data)
            .chars()
            .filter(|c| matches!(*c as u32, 0x3000..=0x303f | 0x3400..=0x9fff | 0xff00..=0xffef))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Period {
        s.parse().unwrap()
    }

    #[test]
    fn periods_parse_in_four_forms_with_their_dates() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            (p("2026Q3").start(), p("2026Q3").end()),
            (d("2026-07-01"), d("2026-10-01"))
        );
        assert_eq!(
            (p("2026-09").start(), p("2026-09").end()),
            (d("2026-09-01"), d("2026-10-01"))
        );
        assert_eq!(
            (p("2026-12").start(), p("2026-12").end()),
            (d("2026-12-01"), d("2027-01-01"))
        );
        assert_eq!(
            (p("2026H2").start(), p("2026H2").end()),
            (d("2026-07-01"), d("2027-01-01"))
        );
        assert_eq!(
            (p("2026").start(), p("2026").end()),
            (d("2026-01-01"), d("2027-01-01"))
        );
        assert_eq!(p("2026q4").to_string(), "2026Q4");
        assert_eq!(p("2026Q1").previous().to_string(), "2025Q4");
        assert_eq!(p("2026-01").previous().to_string(), "2025-12");
        assert_eq!(p("2026H1").previous().to_string(), "2025H2");
        assert_eq!(p("2026").previous().to_string(), "2025");
        assert_eq!(p("2026Q3").describe(), "2026Q3 (2026-07-01 – 2026-09-30)");
    }

    #[test]
    fn bad_periods_say_what_is_wrong_and_what_is_expected() {
        let e = |s: &str| s.parse::<Period>().unwrap_err();
        assert_eq!(
            e("2026Q5"),
            format!("period \"2026Q5\": quarter must be 1–4; {PERIOD_FORMS}")
        );
        assert!(e("2026-13").contains("month must be 1–12"));
        assert!(e("2026H3").contains("half must be 1–2"));
        assert!(e("202").contains("too short"));
        assert!(e("26Q1").contains("four-digit year"));
        assert!(e("Q3 2026").contains("four-digit year"));
        assert!(e("2026-9").contains("unrecognised"));
        assert!(e("2026Q+3").contains("quarter must be 1–4"));
        assert!(e("2026年Q3").contains("unrecognised"));
    }

    #[test]
    fn period_instants_are_local_midnights() {
        let (a, b) = p("2026Q3").instants(chrono_tz::Asia::Shanghai);
        assert_eq!(a.to_rfc3339(), "2026-06-30T16:00:00+00:00");
        assert_eq!(b.to_rfc3339(), "2026-09-30T16:00:00+00:00");
    }

    #[test]
    fn rates_round_once_and_say_so_when_there_is_nothing() {
        assert_eq!(Ratio::new(2, 3).percent(), "66.7%");
        assert_eq!(Ratio::new(1, 8).percent(), "12.5%");
        assert_eq!(Ratio::new(1, 16).percent(), "6.3%");
        assert_eq!(Ratio::new(0, 0).percent(), "—");
        assert_eq!(Ratio::new(0, 0).permille(), None);
        // 2/3 − 1/2 = 16.666… pp, not 66.7 − 50.0 = 16.7 by accident of rounding.
        assert_eq!(Ratio::new(2, 3).delta_pp(&Ratio::new(1, 2)), Some(167));
        let delta = |a: Ratio, b: Ratio, lang| fmt_delta(a.delta_pp(&b), lang);
        assert_eq!(
            delta(Ratio::new(1, 3), Ratio::new(1, 2), Language::En),
            "-16.7 pp"
        );
        assert_eq!(
            delta(Ratio::new(1, 3), Ratio::new(1, 2), Language::ZhCn),
            "-16.7 个百分点"
        );
        assert_eq!(
            delta(Ratio::new(1, 2), Ratio::new(2, 4), Language::En),
            "±0.0 pp"
        );
        assert_eq!(
            delta(Ratio::new(1, 2), Ratio::new(0, 0), Language::ZhCn),
            "—"
        );
        assert_eq!(fmt_mean(13, 3), "4.33");
        assert_eq!(fmt_mean(0, 0), "—");
    }

    #[test]
    fn money_prints_as_yuan_with_separators() {
        assert_eq!(yuan(123450), "¥1,234.50");
        assert_eq!(yuan(5), "¥0.05");
        assert_eq!(yuan(10_000_000_000), "¥100,000,000.00");
        assert_eq!(yuan(-22000), "-¥220.00");
        assert_eq!(yuan(0), "¥0.00");
    }
}
