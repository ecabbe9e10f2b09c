//! The service desk's data: households and their owners, bills and payments, prepaid utility
//! balances, tickets and callbacks, surveys, community events.
//!
//! This module holds the typed values and the rules about them that do not need a database
//! (what a valid period, fee type or amount is; when a callback is bad). The SQL lives in the
//! store's `domain` module, reached through a view scoped to one community (`DomainRead` /
//! `DomainWrite`), so a reader cannot ask for another community's rows by mistake. The daemon's
//! `domain::import` loads CSV files exported by billing and desk systems; its HTTP API takes
//! live pushes.
//!
//! Conventions, shared by every table: money is `i64` fen (1 yuan = 100 fen; never floats),
//! instants are UTC ([`fmt_ts`] gives the stored form), dates are the community's local dates.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// An instant as stored: RFC 3339, UTC, whole seconds, `Z` (sorts as text).
pub fn fmt_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads an instant written by [`fmt_ts`] (or any RFC 3339 text).
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether an upsert on a natural key changed anything; import reports count these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Inserted,
    Updated,
    Unchanged,
}

/// Preferred language of an owner's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Language {
    #[serde(rename = "zh-CN")]
    ZhCn,
    #[serde(rename = "en")]
    En,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::ZhCn => "zh-CN",
            Language::En => "en",
        }
    }

    /// The one of two wordings that is in this language: `lang.pick("回访率", "Callback rate")`.
    pub fn pick<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Language::ZhCn => zh,
            Language::En => en,
        }
    }
}

impl FromStr for Language {
    type Err = String;
    /// `zh-CN` (also `zh`, `中文`) or `en` (also `英文`), case-insensitive.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zh-cn" | "zh" | "zh_cn" | "中文" => Ok(Language::ZhCn),
            "en" | "en-us" | "en-gb" | "english" | "英文" => Ok(Language::En),
            _ => Err(format!("expected zh-CN or en, got {s:?}")),
        }
    }
}

/// How an owner prefers to be reached; the delivery side falls back to the other channel when
/// this one has no address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactChannel {
    Email,
    Sms,
}

impl ContactChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactChannel::Email => "email",
            ContactChannel::Sms => "sms",
        }
    }
}

impl FromStr for ContactChannel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "email" | "邮件" | "邮箱" => Ok(ContactChannel::Email),
            "sms" | "短信" => Ok(ContactChannel::Sms),
            _ => Err(format!("expected email or sms, got {s:?}")),
        }
    }
}

/// One flat (户), addressed `building-unit-room` (`3-2-1202`: 3栋2单元1202室).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Household {
    pub community: String,
    pub id: String,
    pub building: String,
    pub unit: String,
    pub room: String,
}

impl Household {
    pub fn id_of(building: &str, unit: &str, room: &str) -> String {
        format!("{building}-{unit}-{room}")
    }
}

/// An owner (业主) of a household; a household may have several (co-owners).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub id: i64,
    pub community: String,
    pub household: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: Language,
    pub preferred_contact: ContactChannel,
}

/// Kind of fee a bill is for. Known ones have a canonical name; others are kept as written
/// (lowercase ASCII), so a community can bill `elevator` without a code change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeeType {
    /// 物业费
    Property,
    /// 停车费
    Parking,
    Other(String),
}

impl FeeType {
    pub fn as_str(&self) -> &str {
        match self {
            FeeType::Property => "property",
            FeeType::Parking => "parking",
            FeeType::Other(s) => s,
        }
    }
}

impl FromStr for FeeType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        match t {
            "property" | "物业费" => Ok(FeeType::Property),
            "parking" | "停车费" => Ok(FeeType::Parking),
            "" => Err("must not be empty".into()),
            _ if t
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') =>
            {
                Ok(FeeType::Other(t.to_string()))
            }
            _ => Err(format!(
                "expected property (物业费), parking (停车费) or a lowercase name like elevator, got {t:?}"
            )),
        }
    }
}

impl fmt::Display for FeeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FeeType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A billing period: a month `2026-10`, a quarter `2026Q4`, a half year `2026H2` or a year
/// `2026`. Kept as text in that canonical form: it sorts and prints as owners read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Period(String);

impl Period {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let bad = || format!("expected a period like 2026-10, 2026Q4, 2026H2 or 2026, got {t:?}");
        let year_ok = |y: &str| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit());
        let canonical = if let Some((y, m)) = t.split_once('-') {
            let m: u32 = m.parse().map_err(|_| bad())?;
            if !year_ok(y) || !(1..=12).contains(&m) {
                return Err(bad());
            }
            format!("{y}-{m:02}")
        } else if t.len() == 6 && t.get(..4).is_some_and(year_ok) {
            // `get`, not `[..4]`: six bytes may be two Chinese characters (`单元`), and slicing
            // inside one panicked (found by the csv_import fuzz target).
            let (y, rest) = t.split_at(4);
            let rest = rest.to_ascii_uppercase();
            if !matches!(rest.as_str(), "Q1" | "Q2" | "Q3" | "Q4" | "H1" | "H2") {
                return Err(bad());
            }
            format!("{y}{rest}")
        } else if year_ok(t) {
            t.to_string()
        } else {
            return Err(bad());
        };
        Ok(Period(canonical))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses money: `amount_fen` columns take an integer number of fen, `amount_yuan` columns a
/// decimal with at most two places (`320`, `320.5`, `320.50`). Exact: no floating point.
pub fn parse_fen(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let n: i64 = t
        .parse()
        .map_err(|_| format!("expected a whole number of fen, got {t:?}"))?;
    if n <= 0 {
        return Err(format!("must be a positive amount, got {n}"));
    }
    Ok(n)
}

/// See [`parse_fen`]; `¥` and thousands separators are accepted because Excel writes them.
pub fn parse_yuan(s: &str) -> Result<i64, String> {
    let t: String = s
        .trim()
        .trim_start_matches(['¥', '￥'])
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let bad = || format!("expected an amount in yuan with at most 2 decimals, got {s:?}");
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().map_err(|_| bad())?
    };
    let fen = whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)?;
    if fen <= 0 {
        return Err(format!("must be a positive amount, got {s:?}"));
    }
    Ok(fen)
}

/// A bill (账单) for one household, fee type and period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bill {
    pub id: i64,
    pub community: String,
    pub household: String,
    pub fee_type: FeeType,
    pub period: Period,
    pub amount_fen: i64,
    pub due_date: NaiveDate,
}

/// A bill with what has been paid on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillStatus {
    pub bill: Bill,
    /// Sum of payments that were not reversed.
    pub paid_fen: i64,
    /// `amount_fen - paid_fen`; 0 once settled.
    pub outstanding_fen: i64,
}

/// A bill with money still owed (`outstanding_fen > 0`): what reminders list per household.
pub type UnpaidBill = BillStatus;

/// A payment (缴费) against a bill; a reversal (冲正) stamps `reversed_at` and the bill is owed again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    pub id: i64,
    pub community: String,
    /// The billing system's reference (receipt number): the natural key.
    pub reference: String,
    pub bill_id: i64,
    pub amount_fen: i64,
    pub paid_at: DateTime<Utc>,
    pub method: String,
    pub reversed_at: Option<DateTime<Utc>>,
    pub reversal_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Utility {
    /// 水
    Water,
    /// 电
    Electricity,
}

impl Utility {
    pub fn as_str(self) -> &'static str {
        match self {
            Utility::Water => "water",
            Utility::Electricity => "electricity",
        }
    }
}

impl FromStr for Utility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "water" | "水" | "水费" => Ok(Utility::Water),
            "electricity" | "电" | "电费" => Ok(Utility::Electricity),
            _ => Err(format!("expected water or electricity, got {s:?}")),
        }
    }
}

/// A prepaid utility balance (水电预付费) and the level under which the owner is warned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UtilityBalance {
    pub community: String,
    pub household: String,
    pub utility: Utility,
    /// May be negative (meters allow a small overdraft).
    pub balance_fen: i64,
    pub threshold_fen: i64,
    pub as_of: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketKind {
    /// 报修
    Repair,
    /// 投诉
    Complaint,
    /// A desk task a workflow opened (the fee ladder's visit to a household 60 days in arrears,
    /// 上门催缴): the desk's own work, so no callback is owed and it counts in no callback or
    /// complaint figure.
    Task,
}

impl TicketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::Repair => "repair",
            TicketKind::Complaint => "complaint",
            TicketKind::Task => "task",
        }
    }
}

impl FromStr for TicketKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "repair" | "报修" => Ok(TicketKind::Repair),
            "complaint" | "投诉" => Ok(TicketKind::Complaint),
            "task" | "任务" => Ok(TicketKind::Task),
            _ => Err(format!(
                "expected repair (报修), complaint (投诉) or task (任务), got {s:?}"
            )),
        }
    }
}

/// A repair or complaint ticket. `first_receiver` (首问负责人) stays answerable for it whoever
/// is assigned; `closed_at` is `None` while open or after a bad callback reopened it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    pub id: i64,
    pub community: String,
    /// The desk's ticket number: the natural key.
    pub no: String,
    pub household: Option<String>,
    pub kind: TicketKind,
    pub summary: String,
    pub first_receiver: String,
    pub assignee: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// How many times a bad callback reopened it.
    pub reopened: u32,
}

/// A callback (回访) after a ticket closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Callback {
    pub id: i64,
    pub community: String,
    pub ticket_id: i64,
    pub done_at: DateTime<Utc>,
    /// Staff id.
    pub done_by: String,
    pub satisfied: bool,
    /// 1–5.
    pub score: u8,
    pub notes: String,
}

impl Callback {
    /// A bad callback reopens the ticket: the owner was not satisfied or scored 2 or less.
    pub fn is_bad(satisfied: bool, score: u8) -> bool {
        !satisfied || score <= 2
    }
}

/// Service areas a survey scores (1–5 each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceArea {
    /// 接待
    Reception,
    /// 报修
    Repairs,
    /// 保洁
    Cleaning,
    /// 安保
    Security,
    /// 绿化
    Greenery,
}

impl ServiceArea {
    pub const ALL: [ServiceArea; 5] = [
        ServiceArea::Reception,
        ServiceArea::Repairs,
        ServiceArea::Cleaning,
        ServiceArea::Security,
        ServiceArea::Greenery,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceArea::Reception => "reception",
            ServiceArea::Repairs => "repairs",
            ServiceArea::Cleaning => "cleaning",
            ServiceArea::Security => "security",
            ServiceArea::Greenery => "greenery",
        }
    }

    /// The area's name as owners and staff read it, on the survey page and in reports.
    pub fn label(self, lang: Language) -> &'static str {
        match self {
            ServiceArea::Reception => lang.pick("接待服务", "Reception"),
            ServiceArea::Repairs => lang.pick("报修维修", "Repairs"),
            ServiceArea::Cleaning => lang.pick("保洁", "Cleaning"),
            ServiceArea::Security => lang.pick("安保", "Security"),
            ServiceArea::Greenery => lang.pick("绿化", "Greenery"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SurveyCampaign {
    pub id: i64,
    pub community: String,
    /// The campaign's name, usually its quarter (`2026Q1`): the natural key.
    pub key: String,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
}

/// One household's invitation. The token is the only credential of the owner-facing answer
/// page, so it is random (128 bits) and never derived from anything guessable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SurveyInvitation {
    pub id: i64,
    pub community: String,
    pub campaign_id: i64,
    pub household: String,
    pub token: String,
    pub invited_at: DateTime<Utc>,
}

/// A new survey token: 128 random bits, base64url without padding (22 characters).
pub fn new_survey_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Scores per service area, 1–5; `None` is "no opinion".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyScores {
    pub reception: Option<u8>,
    pub repairs: Option<u8>,
    pub cleaning: Option<u8>,
    pub security: Option<u8>,
    pub greenery: Option<u8>,
}

impl SurveyScores {
    pub fn get(&self, area: ServiceArea) -> Option<u8> {
        match area {
            ServiceArea::Reception => self.reception,
            ServiceArea::Repairs => self.repairs,
            ServiceArea::Cleaning => self.cleaning,
            ServiceArea::Security => self.security,
            ServiceArea::Greenery => self.greenery,
        }
    }
    pub fn set(&mut self, area: ServiceArea, score: Option<u8>) {
        let slot = match area {
            ServiceArea::Reception => &mut self.reception,
            ServiceArea::Repairs => &mut self.repairs,
            ServiceArea::Cleaning => &mut self.cleaning,
            ServiceArea::Security => &mut self.security,
            ServiceArea::Greenery => &mut self.greenery,
        };
        *slot = score;
    }
    /// The first area whose score is outside 1–5, if any.
    pub fn invalid_area(&self) -> Option<ServiceArea> {
        ServiceArea::ALL
            .into_iter()
            .find(|a| matches!(self.get(*a), Some(s) if !(1..=5).contains(&s)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SurveyResponse {
    pub invitation_id: i64,
    pub community: String,
    pub household: String,
    pub answered_at: DateTime<Utc>,
    pub scores: SurveyScores,
    pub comment: String,
}

/// A community event (社区活动): planned, announced, RSVPed, summarised afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub id: i64,
    pub community: String,
    /// Usually the half year (`2026H1`): the natural key.
    pub key: String,
    pub title: String,
    pub planned_for: NaiveDate,
    /// When it begins; `None` for events recorded with a day only (before schema 5).
    pub starts_at: Option<DateTime<Utc>>,
    pub location: String,
    pub announced_at: Option<DateTime<Utc>>,
    pub summary: Option<String>,
    pub summary_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rsvp {
    pub event_id: i64,
    pub community: String,
    pub household: String,
    pub attendees: u32,
    pub responded_at: DateTime<Utc>,
}

/// Kinds of domain events written to the `events` outbox.
pub mod event_kind {
    pub const TICKET_OPENED: &str = "ticket.opened";
    pub const TICKET_CLOSED: &str = "ticket.closed";
    pub const TICKET_REOPENED: &str = "ticket.reopened";
    pub const CALLBACK_RECORDED: &str = "callback.recorded";
    pub const PAYMENT_POSTED: &str = "payment.posted";
    pub const PAYMENT_REVERSED: &str = "payment.reversed";
    pub const SURVEY_ANSWERED: &str = "survey.answered";
    /// A community event was recorded or moved (payload: `key`, `starts_at`).
    pub const COMMUNITY_EVENT_PLANNED: &str = "community_event.planned";
    /// The desk agreed a payment plan (payload: `household`, `until` as `YYYY-MM-DD`).
    pub const PAYMENT_PLAN_AGREED: &str = "payment_plan.agreed";
    /// A payment plan ended early (payload: `household`).
    pub const PAYMENT_PLAN_ENDED: &str = "payment_plan.ended";
    /// `wuyed import` changed rows (payload: `file`, `inserted`, `updated`). Nothing else
    /// writes bills or balances, so these are how a workflow learns they moved. A family of
    /// their own (`import.*`), not `payment.imported`: a plugin subscribed to `payment.*` reads
    /// a payment's `bill_id` from every event it gets, and must not start failing on a file.
    pub const OWNERS_IMPORTED: &str = "import.owners";
    pub const BILLS_IMPORTED: &str = "import.bills";
    pub const PAYMENTS_IMPORTED: &str = "import.payments";
    pub const BALANCES_IMPORTED: &str = "import.balances";
    pub const TICKETS_IMPORTED: &str = "import.tickets";
    pub const SURVEYS_IMPORTED: &str = "import.surveys";

    /// Every kind, for checking the `events = [...]` a workflow subscribes to.
    pub const ALL: [&str; 16] = [
        TICKET_OPENED,
        TICKET_CLOSED,
        TICKET_REOPENED,
        CALLBACK_RECORDED,
        PAYMENT_POSTED,
        PAYMENT_REVERSED,
        SURVEY_ANSWERED,
        COMMUNITY_EVENT_PLANNED,
        PAYMENT_PLAN_AGREED,
        PAYMENT_PLAN_ENDED,
        OWNERS_IMPORTED,
        BILLS_IMPORTED,
        PAYMENTS_IMPORTED,
        BALANCES_IMPORTED,
        TICKETS_IMPORTED,
        SURVEYS_IMPORTED,
    ];
}

/// A household's personal link to answer an event's RSVP (报名).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RsvpInvitation {
    pub id: i64,
    pub community: String,
    pub event_id: i64,
    pub household: String,
    pub token: String,
    pub invited_at: DateTime<Utc>,
}

/// A staff notice a workflow sent about a ticket: the callback reminder or an escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketNotice {
    pub ticket_id: i64,
    pub role: String,
    pub template: String,
    pub step: String,
    pub notified_at: DateTime<Utc>,
}

/// Something that happened, for the scheduler to turn into event runs
/// (`scheduler::Trigger::Event`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainEvent {
    pub id: i64,
    pub community: String,
    /// One of [`event_kind`].
    pub kind: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_checked_and_canonical() {
        assert_eq!("2026-1".parse::<Period>().unwrap().as_str(), "2026-01");
        assert_eq!("2026q4".parse::<Period>().unwrap().as_str(), "2026Q4");
        assert_eq!("2026H2".parse::<Period>().unwrap().as_str(), "2026H2");
        assert_eq!("2026".parse::<Period>().unwrap().as_str(), "2026");
        // Six bytes that are two characters: refused, not a panic.
        for bad in [
            "2026-13",
            "2026Q5",
            "26-01",
            "",
            "2026-xx",
            "2026-10-01",
            "单元",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn money_is_parsed_exactly_without_floats() {
        assert_eq!(parse_yuan("320").unwrap(), 32_000);
        assert_eq!(parse_yuan("320.5").unwrap(), 32_050);
        assert_eq!(parse_yuan("¥1,280.05").unwrap(), 128_005);
        // 0.1 + 0.2 style drift would show here with floats.
        assert_eq!(parse_yuan("0.29").unwrap(), 29);
        assert!(parse_yuan("1.005").is_err());
        assert!(parse_yuan("-5").is_err());
        assert!(parse_yuan("0").is_err());
        assert!(parse_yuan("abc").is_err());
        assert_eq!(parse_fen("32000").unwrap(), 32_000);
        assert!(parse_fen("320.00").is_err());
        assert!(parse_fen("0").is_err());
    }

    #[test]
    fn fee_types_accept_chinese_names() {
        assert_eq!("物业费".parse::<FeeType>().unwrap(), FeeType::Property);
        assert_eq!("停车费".parse::<FeeType>().unwrap(), FeeType::Parking);
        assert_eq!(
            "elevator".parse::<FeeType>().unwrap(),
            FeeType::Other("elevator".into())
        );
        assert!("电梯 费".parse::<FeeType>().is_err());
    }

    #[test]
    fn a_callback_is_bad_when_unsatisfied_or_scored_two_or_less() {
        assert!(Callback::is_bad(false, 5));
        assert!(Callback::is_bad(true, 2));
        assert!(!Callback::is_bad(true, 3));
    }

    #[test]
    fn survey_tokens_are_128_bit_url_safe_and_distinct() {
        let a = new_survey_token();
        let b = new_survey_token();
        assert_eq!(a.len(), 22);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
    }
}
