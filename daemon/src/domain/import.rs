//! `wuyed import`: CSV files from billing and service-desk systems into the store.
//!
//! The rules an office relies on:
//! - **All or nothing.** One transaction per file. Every row is checked (format first, then
//!   references such as "does this household exist"), every bad row is reported as
//!   `FILE:LINE: column COL: reason`, and if there is even one, nothing is written. A half
//!   imported bill run is worse than none: owners would be reminded of bills that were paid.
//! - **Idempotent.** Rows are upserted on natural keys, so importing the same file again
//!   changes nothing and the report says so (`0 inserted, 0 updated, 40 unchanged`).
//! - **Excel's encodings.** Valid UTF-8 (with or without a BOM) is read as UTF-8; anything else
//!   is decoded as GBK, which is what Excel writes on a Chinese Windows.
//!
//! Every file has a header row; column names are case-insensitive, order is free, unknown
//! columns are refused (a misspelt column silently ignored is lost data). The usual Chinese
//! names are accepted as well (`楼栋,单元,房号,姓名,手机`; see `chinese_alias`). Empty cells are
//! "not given". Instants are RFC 3339 (`2026-03-01T09:30:00+08:00`) or local time in the
//! community's timezone (`2026-03-01 09:30`, `2026/3/1 9:30`); dates are `2026-03-31` or
//! `2026/3/31`. Money is either `*_fen` (whole fen) or `*_yuan` (at most two decimals).
//!
//! | kind | columns (required in bold) | natural key |
//! |---|---|---|
//! | owners | **building, unit, room, name**, phone, email, language (zh-CN/en, default zh-CN), preferred_contact (email/sms; default sms if a phone is given) | household + name |
//! | bills | **household, fee_type, period, amount_fen or amount_yuan, due_date** | household + fee_type + period |
//! | payments | **reference, household, fee_type, period, amount_fen or amount_yuan, paid_at**, method, reversed_at, reversal_reason | reference |
//! | balances | **household, utility, balance_fen, threshold_fen, as_of** | household + utility |
//! | tickets | **no, kind, first_receiver, opened_at**, household, summary, assignee, assigned_at, closed_at, callback_at, callback_by, satisfied, score, notes | no (+ callback_at) |
//! | surveys | **campaign, household, invited_at**, answered_at, reception, repairs, cleaning, security, greenery, comment | campaign + household |
//!
//! `household` is `building-unit-room` as the owners file creates it (`3-2-1202`); owners must
//! be imported before the files that refer to their households. `fee_type` is `property`
//! (物业费), `parking` (停车费) or another lowercase name; `period` is `2026-10`, `2026Q4`,
//! `2026H2` or `2026`; `utility` is `water` or `electricity`; `kind` is `repair` (报修) or
//! `complaint` (投诉).
//!
//! A surveys file is a quarter's owner survey (每季度业主评议表) collected outside wuye, on paper
//! or by another system: one line per household invited, with its scores (1–5 per service area,
//! empty for "no opinion") and comment if it answered (`answered_at`), none if it did not. The
//! campaign (`2026Q3`) is created by its first import, opening at its earliest `invited_at` and
//! closed just after its last answer, since all of its answers are in the file; a campaign the
//! survey workflow already opened keeps its dates. Once imported, the quarter is in
//! `wuyed report satisfaction` and in the next quarter's comparison.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rusqlite::Connection;

use super::{
    ContactChannel, FeeType, Language, Period, ServiceArea, SurveyScores, TicketKind, Upsert,
    Utility,
};
use crate::store::domain::{BillInput, CallbackInput, OwnerInput, PaymentInput, TicketInput};

/// What a file contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Owners,
    Bills,
    Payments,
    Balances,
    Tickets,
    Surveys,
}

impl Kind {
    /// (column, required) in the order documented above.
    fn columns(self) -> &'static [(&'static str, bool)] {
        match self {
            Kind::Owners => &[
                ("building", true),
                ("unit", true),
                ("room", true),
                ("name", true),
                ("phone", false),
                ("email", false),
                ("language", false),
                ("preferred_contact", false),
            ],
            Kind::Bills => &[
                ("household", true),
                ("fee_type", true),
                ("period", true),
                ("amount_fen", false),
                ("amount_yuan", false),
                ("due_date", true),
            ],
            Kind::Payments => &[
                ("reference", true),
                ("household", true),
                ("fee_type", true),
                ("period", true),
                ("amount_fen", false),
                ("amount_yuan", false),
                ("paid_at", true),
                ("method", false),
                ("reversed_at", false),
                ("reversal_reason", false),
            ],
            Kind::Balances => &[
                ("household", true),
                ("utility", true),
                ("balance_fen", true),
                ("threshold_fen", true),
                ("as_of", true),
            ],
            Kind::Tickets => &[
                ("no", true),
                ("kind", true),
                ("first_receiver", true),
                ("opened_at", true),
                ("household", false),
                ("summary", false),
                ("assignee", false),
                ("assigned_at", false),
                ("closed_at", false),
                ("callback_at", false),
                ("callback_by", false),
                ("satisfied", false),
                ("score", false),
                ("notes", false),
            ],
            Kind::Surveys => &[
                ("campaign", true),
                ("household", true),
                ("invited_at", true),
                ("answered_at", false),
                ("reception", false),
                ("repairs", false),
                ("cleaning", false),
                ("security", false),
                ("greenery", false),
                ("comment", false),
            ],
        }
    }

    /// The domain event a file of this kind writes when it changed something.
    pub fn event_kind(self) -> &'static str {
        match self {
            Kind::Owners => crate::domain::event_kind::OWNERS_IMPORTED,
            Kind::Bills => crate::domain::event_kind::BILLS_IMPORTED,
            Kind::Payments => crate::domain::event_kind::PAYMENTS_IMPORTED,
            Kind::Balances => crate::domain::event_kind::BALANCES_IMPORTED,
            Kind::Tickets => crate::domain::event_kind::TICKETS_IMPORTED,
            Kind::Surveys => crate::domain::event_kind::SURVEYS_IMPORTED,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Owners => "owners",
            Kind::Bills => "bills",
            Kind::Payments => "payments",
            Kind::Balances => "balances",
            Kind::Tickets => "tickets",
            Kind::Surveys => "surveys",
        }
    }
}

/// One bad cell (or row, or header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub column: String,
    pub message: String,
}

/// Every problem found in a file; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportErrors {
    /// The file as the user named it.
    pub file: String,
    /// Sorted by line.
    pub errors: Vec<RowError>,
}

impl fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.errors {
            writeln!(
                f,
                "{}:{}: column {}: {}",
                self.file, e.line, e.column, e.message
            )?;
        }
        f.write_str(&self.summary())
    }
}

impl ImportErrors {
    /// `3 errors in 2 rows of bills.csv; nothing was imported`.
    pub fn summary(&self) -> String {
        let mut lines: Vec<u64> = self.errors.iter().map(|e| e.line).collect();
        lines.dedup(); // sorted by line
        let (n, rows) = (self.errors.len(), lines.len());
        format!(
            "{n} error{} in {rows} row{} of {}; nothing was imported",
            if n == 1 { "" } else { "s" },
            if rows == 1 { "" } else { "s" },
            self.file
        )
    }
}

impl std::error::Error for ImportErrors {}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file's content is wrong; every problem listed.
    #[error("{0}")]
    Rows(ImportErrors),
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub rows: usize,
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// True when the file was not UTF-8 and was read as GBK.
    pub gbk: bool,
}

impl Report {
    fn count(&mut self, u: Upsert) {
        self.rows += 1;
        match u {
            Upsert::Inserted => self.inserted += 1,
            Upsert::Updated => self.updated += 1,
            Upsert::Unchanged => self.unchanged += 1,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} inserted, {} updated, {} unchanged",
            self.inserted, self.updated, self.unchanged
        )
    }
}

/// Text of a CSV file: UTF-8 if valid (BOM dropped), else GBK. Returns whether GBK was used.
pub fn decode(bytes: &[u8]) -> (String, bool) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), false),
        Err(_) => {
            // GBK as Excel writes it; encoding_rs decodes it as its superset GB18030, and any
            // byte that is not GBK either becomes U+FFFD, which the row checks then reject.
            let (text, _, _) = encoding_rs::GBK.decode(bytes);
            (text.into_owned(), true)
        }
    }
}

/// Where an import reports progress: called with (rows done, rows total).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// Imports `bytes` (a whole CSV file) of `kind` into `community`, in one transaction.
/// `file` names the file in error messages; `tz` reads local times.
pub fn import(
    conn: &mut Connection,
    community: &str,
    tz: Tz,
    kind: Kind,
    file: &str,
    bytes: &[u8],
    progress: Option<Progress<'_>>,
) -> Result<Report, ImportError> {
    crate::store::lock::write(conn, crate::store::Patience::INTERACTIVE, |tx| {
        import_tx(tx, community, tz, kind, file, bytes, progress, Utc::now())
    })
}

/// [`import`] inside a transaction the caller owns (`Store::write`): on `Err` the caller must
/// roll back (returning the error from `Store::write` does), on `Ok` commit.
///
/// A file that changed something also writes an `import.<kind>` event (`import.bills`,
/// `import.payments`, ...) with the file and its counts, in the same transaction: workflows
/// that keep their own bookkeeping of the data (the fee ladder's next step day) subscribe to
/// learn that it moved under them.
#[allow(clippy::too_many_arguments)]
pub fn import_tx(
    tx: &crate::store::Tx<'_>,
    community: &str,
    tz: Tz,
    kind: Kind,
    file: &str,
    bytes: &[u8],
    progress: Option<Progress<'_>>,
    now: DateTime<Utc>,
) -> Result<Report, ImportError> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        // Excel's "Unicode Text": UTF-16 and tab-separated. Decoding it as GBK would only
        // produce a confusing "unknown column" error.
        return Err(ImportError::Rows(ImportErrors {
            file: file.to_string(),
            errors: vec![RowError {
                line: 1,
                column: "-".into(),
                message: "the file is UTF-16 (Excel \"Unicode Text\"); save it as \"CSV UTF-8\" or \"CSV\"".into(),
            }],
        }));
    }
    let (text, gbk) = decode(bytes);
    let mut errors = Vec::new();
    let rows = parse(kind, &text, tz, &mut errors);
    let mut report = Report {
        gbk,
        ..Report::default()
    };
    let fail = |mut errors: Vec<RowError>| {
        errors.sort_by_key(|e| e.line);
        ImportError::Rows(ImportErrors {
            file: file.to_string(),
            errors,
        })
    };
    let mut progress = progress;
    let total = rows.len();
    // Surveys: each new campaign's dates come from all of its lines, so they are known before
    // the first line is written.
    let mut campaign_spans: HashMap<&str, (DateTime<Utc>, DateTime<Utc>)> = HashMap::new();
    for (_, row) in &rows {
        if let Row::Survey(s) = row {
            let last = s.answer.as_ref().map_or(s.invited_at, |a| a.answered_at);
            let span = campaign_spans
                .entry(s.campaign.as_str())
                .or_insert((s.invited_at, last));
            span.0 = span.0.min(s.invited_at);
            span.1 = span.1.max(last);
        }
    }
    let mut campaign_ids: HashMap<&str, i64> = HashMap::new();
    {
        let d = tx.domain(community);
        for (i, (line, row)) in rows.iter().enumerate() {
            let line = *line;
            let outcome = match row {
                Row::Owner(o) => {
                    d.upsert_household(&o.building, &o.unit, &o.room)?;
                    Some(d.upsert_owner(&o.owner)?.1)
                }
                Row::Bill(b) => {
                    if known_household(&d, &b.household, line, &mut errors)? {
                        Some(d.upsert_bill(b)?.1)
                    } else {
                        None
                    }
                }
                Row::Payment(p) => {
                    if !known_household(&d, &p.household, line, &mut errors)? {
                        None
                    } else if let Some(bill) =
                        d.bill_by_key(&p.household, &p.fee_type, &p.period)?
                    {
                        // The API's rule: no payment above what the bill still owes (earlier
                        // rows of this file count, they are written already).
                        let stored = d.payment(&p.reference)?;
                        match d.check_payment_amount(bill.id, p, stored.as_ref())? {
                            Ok(()) => d.upsert_payment(p)?.map(|(_, u)| u),
                            Err(message) => {
                                errors.push(RowError {
                                    line,
                                    column: "amount_fen".into(),
                                    message,
                                });
                                None
                            }
                        }
                    } else {
                        errors.push(RowError {
                            line,
                            column: "period".into(),
                            message: format!(
                                "no {} bill for {} in period {}; import bills first",
                                p.fee_type, p.household, p.period
                            ),
                        });
                        None
                    }
                }
                Row::Balance(b) => {
                    if known_household(&d, &b.household, line, &mut errors)? {
                        Some(d.upsert_balance(
                            &b.household,
                            b.utility,
                            b.balance_fen,
                            b.threshold_fen,
                            b.as_of,
                        )?)
                    } else {
                        None
                    }
                }
                Row::Survey(s) => {
                    if known_household(&d, &s.household, line, &mut errors)? {
                        let id = match campaign_ids.get(s.campaign.as_str()) {
                            Some(id) => *id,
                            None => {
                                let id = match d.campaign(&s.campaign)? {
                                    Some(c) => c.id,
                                    None => {
                                        let (opens, last) = campaign_spans[s.campaign.as_str()];
                                        let closes = last + chrono::Duration::seconds(1);
                                        d.upsert_campaign(&s.campaign, opens, closes)?.id
                                    }
                                };
                                campaign_ids.insert(s.campaign.as_str(), id);
                                id
                            }
                        };
                        let answer = s
                            .answer
                            .as_ref()
                            .map(|a| (a.answered_at, &a.scores, a.comment.as_str()));
                        Some(d.upsert_survey_line(id, &s.household, s.invited_at, answer)?)
                    } else {
                        None
                    }
                }
                Row::Ticket(t, cb) => {
                    let ok = match &t.household {
                        Some(h) => known_household(&d, h, line, &mut errors)?,
                        None => true,
                    };
                    if ok {
                        let (id, u) = d.upsert_ticket(t)?;
                        let cu = match cb {
                            Some(c) => d.upsert_callback(id, c)?,
                            None => Upsert::Unchanged,
                        };
                        Some(match (u, cu) {
                            (Upsert::Inserted, _) => Upsert::Inserted,
                            (Upsert::Unchanged, Upsert::Unchanged) => Upsert::Unchanged,
                            _ => Upsert::Updated,
                        })
                    } else {
                        None
                    }
                }
            };
            if let Some(u) = outcome {
                report.count(u);
            }
            if let Some(p) = progress.as_mut()
                && ((i + 1) % PROGRESS_EVERY == 0 || i + 1 == total)
            {
                p(i + 1, total);
            }
        }
    }
    if !errors.is_empty() {
        // The caller rolls back everything this file wrote.
        return Err(fail(errors));
    }
    if report.inserted + report.updated > 0 {
        tx.domain(community).emit(
            kind.event_kind(),
            serde_json::json!({
                "file": file,
                "inserted": report.inserted,
                "updated": report.updated,
            }),
            now,
        )?;
    }
    Ok(report)
}

/// The files of a data directory (`config/data/<community>/`), in the order their references
/// need: owners (which create households) first.
pub const DIR_ORDER: [Kind; 6] = [
    Kind::Owners,
    Kind::Bills,
    Kind::Payments,
    Kind::Balances,
    Kind::Tickets,
    Kind::Surveys,
];

/// Imports `<dir>/<kind>.csv` for each kind of [`DIR_ORDER`] that exists, each file in its own
/// transaction (as `wuyed import` would one by one). For seeding the demo, simulations and
/// tests; stops at the first file with errors (earlier files stay imported).
pub fn import_dir(
    conn: &mut Connection,
    community: &str,
    tz: Tz,
    dir: &std::path::Path,
) -> Result<Vec<(Kind, Report)>, ImportError> {
    let mut out = Vec::new();
    for kind in DIR_ORDER {
        let path = dir.join(format!("{}.csv", kind.as_str()));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ImportError::Rows(ImportErrors {
                    file: path.display().to_string(),
                    errors: vec![RowError {
                        line: 0,
                        column: "-".into(),
                        message: format!("cannot read: {e}"),
                    }],
                }));
            }
        };
        let label = path.display().to_string();
        let report = import(conn, community, tz, kind, &label, &bytes, None)?;
        out.push((kind, report));
    }
    Ok(out)
}

/// Rows between progress reports.
pub const PROGRESS_EVERY: usize = 1000;

fn known_household(
    d: &crate::store::domain::DomainWrite<'_>,
    household: &str,
    line: u64,
    errors: &mut Vec<RowError>,
) -> rusqlite::Result<bool> {
    if d.household(household)?.is_some() {
        return Ok(true);
    }
    errors.push(RowError {
        line,
        column: "household".into(),
        message: format!(
            "household {household:?} does not exist in community {}; import owners first",
            d.community()
        ),
    });
    Ok(false)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnerRow {
    building: String,
    unit: String,
    room: String,
    owner: OwnerInput,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct BalanceRow {
    household: String,
    utility: Utility,
    balance_fen: i64,
    threshold_fen: i64,
    as_of: DateTime<Utc>,
}

/// One household's line of a survey file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SurveyRow {
    campaign: String,
    household: String,
    invited_at: DateTime<Utc>,
    answer: Option<SurveyAnswer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SurveyAnswer {
    answered_at: DateTime<Utc>,
    scores: SurveyScores,
    comment: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Row {
    Owner(OwnerRow),
    Bill(BillInput),
    Payment(PaymentInput),
    Balance(BalanceRow),
    Ticket(TicketInput, Option<CallbackInput>),
    Survey(SurveyRow),
}

/// Cells of one record by column name, collecting errors against its line.
struct Cells<'r> {
    line: u64,
    index: &'r HashMap<&'static str, usize>,
    record: &'r csv::StringRecord,
    errors: Vec<RowError>,
    tz: Tz,
}

impl Cells<'_> {
    fn err(&mut self, column: &str, message: impl Into<String>) {
        self.errors.push(RowError {
            line: self.line,
            column: column.to_string(),
            message: message.into(),
        });
    }

    /// The trimmed cell, `None` when the column is absent or the cell empty.
    fn opt(&self, column: &str) -> Option<String> {
        let i = *self.index.get(column)?;
        let v = self.record.get(i)?.trim();
        (!v.is_empty()).then(|| v.to_string())
    }

    fn req(&mut self, column: &str) -> Option<String> {
        let v = self.opt(column);
        if v.is_none() {
            self.err(column, "is required");
        }
        v
    }

    fn text(&mut self, column: &str, required: bool) -> Option<String> {
        let v = if required {
            self.req(column)?
        } else {
            self.opt(column)?
        };
        if v.contains('\u{FFFD}') {
            self.err(
                column,
                "contains bytes that are neither UTF-8 nor GBK (save the file as UTF-8 or GBK)",
            );
            return None;
        }
        Some(v)
    }

    fn parse_with<T>(
        &mut self,
        column: &str,
        required: bool,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.text(column, required)?;
        match f(&v) {
            Ok(t) => Some(t),
            Err(m) => {
                self.err(column, m);
                None
            }
        }
    }

    fn instant(&mut self, column: &str, required: bool) -> Option<DateTime<Utc>> {
        let tz = self.tz;
        self.parse_with(column, required, |s| parse_instant(s, tz))
    }

    fn date(&mut self, column: &str) -> Option<NaiveDate> {
        self.parse_with(column, true, parse_date)
    }

    /// `X_fen` or `X_yuan`, exactly one of them.
    fn money(&mut self, stem: &str) -> Option<i64> {
        let fen_col = format!("{stem}_fen");
        let yuan_col = format!("{stem}_yuan");
        match (self.opt(&fen_col), self.opt(&yuan_col)) {
            (Some(_), Some(_)) => {
                self.err(
                    &yuan_col,
                    format!("give either {fen_col} or {yuan_col}, not both"),
                );
                None
            }
            (Some(_), None) => self.parse_with(&fen_col, true, super::parse_fen),
            (None, Some(_)) => self.parse_with(&yuan_col, true, super::parse_yuan),
            (None, None) => {
                let col = if self.index.contains_key(yuan_col.as_str()) {
                    yuan_col
                } else {
                    fen_col
                };
                self.err(&col, "is required");
                None
            }
        }
    }

    fn signed_fen(&mut self, column: &str) -> Option<i64> {
        self.parse_with(column, true, |s| {
            s.parse::<i64>()
                .map_err(|_| format!("expected a whole number of fen, got {s:?}"))
        })
    }
}

/// Reads an instant: RFC 3339, or local time in `tz` as `YYYY-MM-DD HH:MM[:SS]` (also with `/`
/// and without leading zeros, as Excel writes it).
pub fn parse_instant(s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let t = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else {
        let norm = s.replace('/', "-");
        let naive = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]
            .iter()
            .find_map(|fmt| NaiveDateTime::parse_from_str(&norm, fmt).ok())
            .ok_or_else(|| {
                format!(
                    "expected a time like 2026-03-01 09:30 or 2026-03-01T09:30:00+08:00, got {s:?}"
                )
            })?;
        tz.from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| format!("{s:?} does not exist in {tz} (clock change)"))?
    };
    check_year(s, t.year())?;
    Ok(t)
}

/// Reads a date `YYYY-MM-DD` or `YYYY/M/D`.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let d = NaiveDate::parse_from_str(&s.replace('/', "-"), "%Y-%m-%d")
        .map_err(|_| format!("expected a date like 2026-03-31, got {s:?}"))?;
    check_year(s, d.year())?;
    Ok(d)
}

/// chrono reads `-026-04-01` as the year -26; the store writes four-digit years and could not
/// read such a value back (found by the csv_import fuzz target: the import failed with the
/// database's own error). No office record is from before 1900.
fn check_year(s: &str, year: i32) -> Result<(), String> {
    if (1900..=9999).contains(&year) {
        Ok(())
    } else {
        Err(format!("{s:?} is not between the years 1900 and 9999"))
    }
}

/// A phone number as stored: digits (and a leading `+`), separators dropped.
fn parse_phone(s: &str) -> Result<String, String> {
    let kept: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = kept.strip_prefix('+').unwrap_or(&kept);
    if digits.len() < 7 || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "expected 7 to 15 digits, optionally with a leading + and spaces or dashes".into(),
        );
    }
    Ok(kept)
}

fn parse_email(s: &str) -> Result<String, String> {
    match s.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
                && !domain.contains('@') =>
        {
            Ok(s.to_string())
        }
        _ => Err("expected an address like name@example.com".into()),
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "1" | "是" | "满意" => Ok(true),
        "no" | "n" | "false" | "0" | "否" | "不满意" => Ok(false),
        _ => Err(format!("expected yes or no, got {s:?}")),
    }
}

/// Column names as a Chinese office's spreadsheet has them, per kind (the same word can mean
/// different columns in different files: 类型 is a fee type in bills, a ticket kind in tickets).
fn chinese_alias(kind: Kind, name: &str) -> Option<&'static str> {
    let common = match name {
        "楼栋" | "楼号" | "栋" => Some("building"),
        "单元" => Some("unit"),
        "房号" | "室" | "房间号" => Some("room"),
        "户号" | "房屋" | "房屋编号" => Some("household"),
        _ => None,
    };
    common.or(match kind {
        Kind::Owners => match name {
            "姓名" | "业主姓名" | "业主" => Some("name"),
            "手机" | "手机号" | "电话" | "联系电话" => Some("phone"),
            "邮箱" | "电子邮件" | "电子邮箱" => Some("email"),
            "语言" => Some("language"),
            "联系方式" | "首选联系方式" => Some("preferred_contact"),
            _ => None,
        },
        Kind::Bills | Kind::Payments => match name {
            "费用类型" | "收费项目" | "类型" => Some("fee_type"),
            "账期" | "期间" | "所属期" => Some("period"),
            "金额(分)" | "金额（分）" => Some("amount_fen"),
            "金额" | "金额(元)" | "金额（元）" => Some("amount_yuan"),
            "到期日" | "缴费截止日" | "截止日期" => Some("due_date"),
            "流水号" | "收据号" | "票据号" => Some("reference"),
            "缴费时间" | "支付时间" => Some("paid_at"),
            "支付方式" | "缴费方式" => Some("method"),
            "冲正时间" => Some("reversed_at"),
            "冲正原因" => Some("reversal_reason"),
            _ => None,
        },
        Kind::Balances => match name {
            "表类型" | "类型" | "水电" => Some("utility"),
            "余额(分)" | "余额（分）" => Some("balance_fen"),
            "预警值(分)" | "预警值（分）" | "阈值(分)" | "阈值（分）" => {
                Some("threshold_fen")
            }
            "更新时间" | "抄表时间" => Some("as_of"),
            _ => None,
        },
        Kind::Tickets => match name {
            "工单号" | "单号" => Some("no"),
            "类型" | "工单类型" => Some("kind"),
            "首问负责人" | "受理人" => Some("first_receiver"),
            "受理时间" | "报修时间" => Some("opened_at"),
            "内容" | "摘要" | "问题描述" => Some("summary"),
            "处理人" | "维修人" => Some("assignee"),
            "派单时间" => Some("assigned_at"),
            "完成时间" | "关闭时间" => Some("closed_at"),
            "回访时间" => Some("callback_at"),
            "回访人" => Some("callback_by"),
            "是否满意" | "满意" => Some("satisfied"),
            "评分" | "满意度评分" => Some("score"),
            "备注" | "回访备注" => Some("notes"),
            _ => None,
        },
        Kind::Surveys => match name {
            "调查" | "批次" | "季度" => Some("campaign"),
            "发放时间" | "邀请时间" => Some("invited_at"),
            "回收时间" | "填写时间" | "答卷时间" => Some("answered_at"),
            "接待" | "接待服务" => Some("reception"),
            "报修" | "报修维修" | "维修" => Some("repairs"),
            "保洁" => Some("cleaning"),
            "安保" | "秩序维护" => Some("security"),
            "绿化" => Some("greenery"),
            "意见" | "意见建议" | "备注" => Some("comment"),
            _ => None,
        },
    })
}

/// Parses every record; rows with any error are left out and their errors collected.
fn parse(kind: Kind, text: &str, tz: Tz, errors: &mut Vec<RowError>) -> Vec<(u64, Row)> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            errors.push(RowError {
                line: 1,
                column: "-".into(),
                message: format!("cannot read the header row: {e}"),
            });
            return Vec::new();
        }
    };
    let spec = kind.columns();
    let mut index: HashMap<&'static str, usize> = HashMap::new();
    for (i, name) in header.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        let canonical = chinese_alias(kind, &name).unwrap_or(&name);
        match spec.iter().find(|(c, _)| *c == canonical) {
            Some((c, _)) if index.contains_key(c) => errors.push(RowError {
                line: 1,
                column: name.clone(),
                message: "appears twice in the header".into(),
            }),
            Some((c, _)) => {
                index.insert(c, i);
            }
            None => errors.push(RowError {
                line: 1,
                column: if name.is_empty() {
                    format!("#{}", i + 1)
                } else {
                    name.clone()
                },
                message: format!(
                    "unknown column for {} files; expected {}",
                    kind.as_str(),
                    spec.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }
    for (c, required) in spec {
        if *required && !index.contains_key(c) {
            errors.push(RowError {
                line: 1,
                column: c.to_string(),
                message: "is missing from the header".into(),
            });
        }
    }
    if matches!(kind, Kind::Bills | Kind::Payments)
        && !index.contains_key("amount_fen")
        && !index.contains_key("amount_yuan")
    {
        errors.push(RowError {
            line: 1,
            column: "amount_fen".into(),
            message: "is missing from the header (or give amount_yuan)".into(),
        });
    }
    if !errors.is_empty() {
        return Vec::new();
    }

    let mut rows = Vec::new();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| line_of(text, p));
                errors.push(RowError {
                    line,
                    column: "-".into(),
                    message: format!("unreadable CSV: {e}"),
                });
                break;
            }
        }
        let line = record.position().map_or(0, |p| line_of(text, p));
        if record.iter().all(|c| c.trim().is_empty()) {
            continue; // Excel leaves blank lines at the end
        }
        if record.len() != header.len() {
            errors.push(RowError {
                line,
                column: "-".into(),
                message: format!(
                    "has {} fields, the header has {}",
                    record.len(),
                    header.len()
                ),
            });
            continue;
        }
        let mut cells = Cells {
            line,
            index: &index,
            record: &record,
            errors: Vec::new(),
            tz,
        };
        let parsed = parse_row(kind, &mut cells);
        let row_errors = std::mem::take(&mut cells.errors);
        match parsed {
            Some((key, key_column, row)) if row_errors.is_empty() => {
                if let Some(first) = seen.get(&key) {
                    errors.push(RowError {
                        line,
                        column: key_column.into(),
                        message: format!("duplicate of line {first} ({key})"),
                    });
                } else {
                    seen.insert(key, line);
                    rows.push((line, row));
                }
            }
            _ => errors.extend(row_errors),
        }
    }
    rows
}

/// The file line where a record starts. The csv reader's own count is one too low in CRLF files
/// (what Excel and WPS write): it ends a record at the `\r` and starts the next one at the
/// `\n`. So the line is counted from the record's first byte after any line end.
fn line_of(text: &str, position: &csv::Position) -> u64 {
    let start = usize::try_from(position.byte()).unwrap_or(usize::MAX);
    let skipped = text.as_bytes().get(start..).map_or(0, |rest| {
        rest.iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count()
    });
    crate::config::line_at(text, start.saturating_add(skipped)) as u64
}

/// One record into a row plus its natural key (for in-file duplicates) and the column to blame
/// for a duplicate. `None` when a cell was bad (errors are in `c`).
fn parse_row(kind: Kind, c: &mut Cells<'_>) -> Option<(String, &'static str, Row)> {
    match kind {
        Kind::Owners => {
            let building = c.text("building", true);
            let unit = c.text("unit", true);
            let room = c.text("room", true);
            let name = c.text("name", true);
            let phone = c.parse_with("phone", false, parse_phone);
            let email = c.parse_with("email", false, parse_email);
            let language = if c.opt("language").is_some() {
                c.parse_with("language", true, |s| s.parse::<Language>())
            } else {
                Some(Language::ZhCn)
            };
            let contact = c.parse_with("preferred_contact", false, |s| s.parse::<ContactChannel>());
            let (building, unit, room, name, language) =
                (building?, unit?, room?, name?, language?);
            let has_phone = c.opt("phone").is_some();
            let has_email = c.opt("email").is_some();
            if !has_phone && !has_email {
                c.err("phone", "an owner needs a phone or an email to be reached");
                return None;
            }
            let preferred_contact = match contact {
                Some(ContactChannel::Email) if !has_email => {
                    c.err("preferred_contact", "is email but the email cell is empty");
                    return None;
                }
                Some(ContactChannel::Sms) if !has_phone => {
                    c.err("preferred_contact", "is sms but the phone cell is empty");
                    return None;
                }
                Some(ch) => ch,
                None if c.opt("preferred_contact").is_some() => return None,
                None if has_phone => ContactChannel::Sms,
                None => ContactChannel::Email,
            };
            if (has_phone && phone.is_none()) || (has_email && email.is_none()) {
                return None;
            }
            let household = super::Household::id_of(&building, &unit, &room);
            let key = format!("{household} {name}");
            Some((
                key,
                "name",
                Row::Owner(OwnerRow {
                    building,
                    unit,
                    room,
                    owner: OwnerInput {
                        household,
                        name,
                        phone,
                        email,
                        language,
                        preferred_contact,
                    },
                }),
            ))
        }
        Kind::Bills => {
            let household = c.text("household", true);
            let fee_type = c.parse_with("fee_type", true, |s| s.parse::<FeeType>());
            let period = c.parse_with("period", true, |s| s.parse::<Period>());
            let amount_fen = c.money("amount");
            let due_date = c.date("due_date");
            let b = BillInput {
                household: household?,
                fee_type: fee_type?,
                period: period?,
                amount_fen: amount_fen?,
                due_date: due_date?,
            };
            let key = format!("{} {} {}", b.household, b.fee_type, b.period);
            Some((key, "period", Row::Bill(b)))
        }
        Kind::Payments => {
            let reference = c.text("reference", true);
            let household = c.text("household", true);
            let fee_type = c.parse_with("fee_type", true, |s| s.parse::<FeeType>());
            let period = c.parse_with("period", true, |s| s.parse::<Period>());
            let amount_fen = c.money("amount");
            let paid_at = c.instant("paid_at", true);
            let method = c.text("method", false).unwrap_or_default();
            let reversed_at = c.instant("reversed_at", false);
            let reversal_reason = c.text("reversal_reason", false);
            if c.opt("reversed_at").is_some() && reversed_at.is_none() {
                return None;
            }
            if reversal_reason.is_some() && reversed_at.is_none() {
                c.err("reversed_at", "is required when reversal_reason is given");
                return None;
            }
            let p = PaymentInput {
                reference: reference?,
                household: household?,
                fee_type: fee_type?,
                period: period?,
                amount_fen: amount_fen?,
                paid_at: paid_at?,
                method,
                reversed_at,
                reversal_reason,
            };
            if let Some(r) = p.reversed_at
                && r < p.paid_at
            {
                c.err("reversed_at", "is before paid_at");
                return None;
            }
            Some((p.reference.clone(), "reference", Row::Payment(p)))
        }
        Kind::Balances => {
            let household = c.text("household", true);
            let utility = c.parse_with("utility", true, |s| s.parse::<Utility>());
            let balance_fen = c.signed_fen("balance_fen");
            let threshold_fen = c.signed_fen("threshold_fen");
            let as_of = c.instant("as_of", true);
            if let Some(t) = threshold_fen
                && t < 0
            {
                c.err("threshold_fen", "must not be negative");
                return None;
            }
            let b = BalanceRow {
                household: household?,
                utility: utility?,
                balance_fen: balance_fen?,
                threshold_fen: threshold_fen?,
                as_of: as_of?,
            };
            let key = format!("{} {}", b.household, b.utility.as_str());
            Some((key, "utility", Row::Balance(b)))
        }
        Kind::Tickets => {
            let no = c.text("no", true);
            let kind = c.parse_with("kind", true, |s| s.parse::<TicketKind>());
            let first_receiver = c.text("first_receiver", true);
            let opened_at = c.instant("opened_at", true);
            let household = c.text("household", false);
            let summary = c.text("summary", false).unwrap_or_default();
            let assignee = c.text("assignee", false);
            let assigned_at = c.instant("assigned_at", false);
            let closed_at = c.instant("closed_at", false);
            let callback_at = c.instant("callback_at", false);
            let callback_by = c.text("callback_by", false);
            let satisfied = c.parse_with("satisfied", false, parse_bool);
            let score = c.parse_with("score", false, |s| match s.parse::<u8>() {
                Ok(n) if (1..=5).contains(&n) => Ok(n),
                _ => Err(format!("expected an integer from 1 to 5, got {s:?}")),
            });
            let notes = c.text("notes", false).unwrap_or_default();
            let given = |c: &Cells<'_>, col: &str| c.opt(col).is_some();
            // A cell that was given but did not parse already has its error.
            for col in [
                "assigned_at",
                "closed_at",
                "callback_at",
                "satisfied",
                "score",
            ] {
                if given(c, col)
                    && match col {
                        "assigned_at" => assigned_at.is_none(),
                        "closed_at" => closed_at.is_none(),
                        "callback_at" => callback_at.is_none(),
                        "satisfied" => satisfied.is_none(),
                        _ => score.is_none(),
                    }
                {
                    return None;
                }
            }
            let (no, kind, first_receiver, opened_at) = (no?, kind?, first_receiver?, opened_at?);
            if let Some(t) = closed_at
                && t < opened_at
            {
                c.err("closed_at", "is before opened_at");
            }
            if let Some(t) = assigned_at
                && t < opened_at
            {
                c.err("assigned_at", "is before opened_at");
            }
            let callback_cols = ["callback_at", "callback_by", "satisfied", "score"];
            let callback = if callback_cols.iter().any(|col| given(c, col)) {
                for col in callback_cols {
                    if !given(c, col) {
                        c.err(col, "is required when the ticket has a callback");
                    }
                }
                match (closed_at, callback_at) {
                    (None, _) => c.err("closed_at", "is required when the ticket has a callback"),
                    (Some(cl), Some(cb)) if cb < cl => c.err("callback_at", "is before closed_at"),
                    _ => {}
                }
                match (callback_at, callback_by, satisfied, score) {
                    (Some(done_at), Some(done_by), Some(satisfied), Some(score)) => {
                        Some(CallbackInput {
                            done_at,
                            done_by,
                            satisfied,
                            score,
                            notes,
                        })
                    }
                    _ => None,
                }
            } else {
                None
            };
            if !c.errors.is_empty() {
                return None;
            }
            let t = TicketInput {
                no,
                household,
                kind,
                summary,
                first_receiver,
                assignee,
                opened_at,
                assigned_at,
                closed_at,
            };
            Some((t.no.clone(), "no", Row::Ticket(t, callback)))
        }
        Kind::Surveys => {
            let campaign = c.text("campaign", true);
            let household = c.text("household", true);
            let invited_at = c.instant("invited_at", true);
            let answered_at = c.instant("answered_at", false);
            let mut scores = SurveyScores::default();
            let mut scored = Vec::new();
            for area in ServiceArea::ALL {
                let col = area.as_str();
                if c.opt(col).is_none() {
                    continue;
                }
                scored.push(col);
                let score = c.parse_with(col, true, |s| match s.parse::<u8>() {
                    Ok(n) if (1..=5).contains(&n) => Ok(n),
                    _ => Err(format!(
                        "expected an integer from 1 to 5 (empty: no opinion), got {s:?}"
                    )),
                });
                scores.set(area, score);
            }
            let comment = c.text("comment", false).unwrap_or_default();
            let (campaign, household, invited_at) = (campaign?, household?, invited_at?);
            if c.opt("answered_at").is_some() && answered_at.is_none() {
                return None; // its error is recorded
            }
            let answer = match answered_at {
                Some(at) => {
                    if at < invited_at {
                        c.err("answered_at", "is before invited_at");
                    }
                    Some(SurveyAnswer {
                        answered_at: at,
                        scores,
                        comment,
                    })
                }
                None => {
                    for col in scored {
                        c.err(col, "a score needs answered_at (when the answer came in)");
                    }
                    if !comment.is_empty() {
                        c.err(
                            "comment",
                            "a comment needs answered_at (when the answer came in)",
                        );
                    }
                    None
                }
            };
            if !c.errors.is_empty() {
                return None;
            }
            let key = format!("{campaign} {household}");
            let row = SurveyRow {
                campaign,
                household,
                invited_at,
                answer,
            };
            Some((key, "household", Row::Survey(row)))
        }
    }
}

/// The `wuyed import --help` text describing the columns.
pub const COLUMNS_HELP: &str = "\
Files are CSV with a header row; UTF-8 (with or without BOM) or GBK. Column names are
case-insensitive; unknown columns are refused. Required columns are marked *.

  owners    building*, unit*, room*, name*, phone, email, language (zh-CN|en),
            preferred_contact (email|sms). The household id is building-unit-room.
            Key: household + name.
  bills     household*, fee_type* (property|parking|…), period* (2026-10, 2026Q4,
            2026H2, 2026), amount_fen* or amount_yuan*, due_date* (2026-10-31).
            Key: household + fee_type + period.
  payments  reference*, household*, fee_type*, period*, amount_fen* or amount_yuan*,
            paid_at*, method, reversed_at, reversal_reason. Key: reference.
  balances  household*, utility* (water|electricity), balance_fen*, threshold_fen*,
            as_of*. Key: household + utility.
  tickets   no*, kind* (repair|complaint), first_receiver*, opened_at*, household,
            summary, assignee, assigned_at, closed_at, callback_at, callback_by,
            satisfied (yes|no), score (1-5), notes. Key: no.
  surveys   campaign* (2026Q3), household*, invited_at*, answered_at, reception,
            repairs, cleaning, security, greenery (1-5, empty: no opinion), comment.
            A line without answered_at is a household invited that did not answer.
            Key: campaign + household.

Chinese column names as office spreadsheets have them are accepted too (楼栋, 单元, 房号,
姓名, 手机, 邮箱, 户号, 费用类型, 账期, 金额, 到期日, 流水号, 缴费时间, 工单号, 首问负责人,
受理时间, 回访时间, 评分, ...); errors name the column by its English name.

Times: 2026-03-01 09:30 (community's local time) or RFC 3339. One transaction per file:
every bad row is listed as FILE:LINE: column COL: reason and nothing is written (exit 65).
Importing the same file again changes nothing.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::domain::{DomainRead, apply_schema};

    const TZ: Tz = chrono_tz::Asia::Shanghai;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        apply_schema(&conn).unwrap();
        conn
    }

    fn run(conn: &mut Connection, kind: Kind, csv: &str) -> Result<Report, ImportError> {
        import(conn, "shuipan", TZ, kind, "f.csv", csv.as_bytes(), None)
    }

    fn errors(r: Result<Report, ImportError>) -> Vec<String> {
        match r {
            Err(ImportError::Rows(e)) => e
                .errors
                .iter()
                .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
                .collect(),
            other => panic!("expected row errors, got {other:?}"),
        }
    }

    const OWNERS: &str = "building,unit,room,name,phone,email,language,preferred_contact
1,1,101,张伟,138 0000 0001,,,
1,1,101,Li Na,,lina@example.com,en,email
1,2,201,王芳,13800000003,wf@example.com,zh-CN,sms
";

    #[test]
    fn owners_create_households_and_reimport_changes_nothing() {
        let mut conn = db();
        let r = run(&mut conn, Kind::Owners, OWNERS).unwrap();
        assert_eq!(r.to_string(), "3 inserted, 0 updated, 0 unchanged");
        let r = run(&mut conn, Kind::Owners, OWNERS).unwrap();
        assert_eq!(r.to_string(), "0 inserted, 0 updated, 3 unchanged");
        let d = DomainRead::new(&conn, "shuipan");
        assert_eq!(d.households().unwrap().len(), 2);
        let co = d.household_recipients("1-1-101").unwrap();
        assert_eq!(co.len(), 2, "co-owners share the household");
        assert_eq!(co[0].phone.as_deref(), Some("13800000001"));
        assert_eq!(co[0].preferred_contact, ContactChannel::Sms);
        assert_eq!(co[1].language, Language::En);
        let changed = OWNERS.replace("13800000003", "13800000009");
        let r = run(&mut conn, Kind::Owners, &changed).unwrap();
        assert_eq!(r.to_string(), "0 inserted, 1 updated, 2 unchanged");
    }

    #[test]
    fn every_bad_row_is_named_and_nothing_is_written() {
        let mut conn = db();
        run(&mut conn, Kind::Owners, OWNERS).unwrap();
        let bills = "household,fee_type,period,amount_yuan,due_date
1-1-101,物业费,2026-01,320.00,2026-01-31
1-1-101,property,2026-13,320,2026-01-31
9-9-999,parking,2026Q1,450,2026-01-15
1-1-101,物业费,2026-01,320.00,2026-01-31
1-2-201,property,2026-01,3.201,2026/1/31
1-2-201,property,2026-02,320,31.01.2026
1-2-201,property
";
        let errs = errors(run(&mut conn, Kind::Bills, bills));
        assert_eq!(
            errs,
            [
                "3:period: expected a period like 2026-10, 2026Q4, 2026H2 or 2026, got \"2026-13\"",
                "4:household: household \"9-9-999\" does not exist in community shuipan; import owners first",
                "5:period: duplicate of line 2 (1-1-101 property 2026-01)",
                "6:amount_yuan: expected an amount in yuan with at most 2 decimals, got \"3.201\"",
                "7:due_date: expected a date like 2026-03-31, got \"31.01.2026\"",
                "8:-: has 2 fields, the header has 5",
            ]
        );
        let d = DomainRead::new(&conn, "shuipan");
        assert!(
            d.unpaid_bills().unwrap().is_empty(),
            "the good row was not written either"
        );
    }

    /// Excel and WPS end lines with CRLF: errors name the same lines as in an LF file,
    /// including after a quoted cell that spans two lines.
    #[test]
    fn crlf_files_get_the_same_line_numbers() {
        let mut conn = db();
        run(&mut conn, Kind::Owners, OWNERS).unwrap();
        let lf = "household,fee_type,period,amount_yuan,due_date\n\
                  1-1-101,property,2026-01,320,2026-01-31\n\
                  1-1-101,property,\"2026-\n02\",320,2026-02-28\n\
                  1-1-101,property,2026-13,320,2026-01-31\n";
        let crlf = lf.replace('\n', "\r\n");
        assert!(crlf.contains("2026-01-31\r\n1-1-101"));
        for file in [lf, &crlf] {
            let errs = errors(run(&mut conn, Kind::Bills, file));
            assert_eq!(errs.len(), 2, "{errs:?}");
            assert!(errs[0].starts_with("3:period: "), "{errs:?}");
            assert_eq!(
                errs[1],
                "5:period: expected a period like 2026-10, 2026Q4, 2026H2 or 2026, got \"2026-13\""
            );
        }
    }

    /// An import refuses a payment above what its bill still owes, as the API does; earlier
    /// rows of the same file count, and re-importing a payment does not count it twice.
    #[test]
    fn overpayments_are_refused_as_the_api_refuses_them() {
        let mut conn = db();
        run(&mut conn, Kind::Owners, OWNERS).unwrap();
        run(
            &mut conn,
            Kind::Bills,
            "household,fee_type,period,amount_fen,due_date\r\n1-1-101,property,2026-01,32000,2026-01-31\r\n",
        )
        .unwrap();
        let head = "reference,household,fee_type,period,amount_fen,paid_at,method\r\n";
        let over = format!(
            "{head}P1,1-1-101,property,2026-01,20000,2026-01-20 10:00,wechat\r\n\
             P2,1-1-101,property,2026-01,12001,2026-01-21 10:00,wechat\r\n"
        );
        assert_eq!(
            errors(run(&mut conn, Kind::Payments, &over)),
            ["3:amount_fen: exceeds the 12000 fen still owed on this bill"]
        );
        assert!(
            DomainRead::new(&conn, "shuipan")
                .payment("P1")
                .unwrap()
                .is_none()
        );
        let exact = over.replace("12001", "12000");
        run(&mut conn, Kind::Payments, &exact).unwrap();
        let again = run(&mut conn, Kind::Payments, &exact).unwrap();
        assert_eq!(again.to_string(), "0 inserted, 0 updated, 2 unchanged");
        // A corrected amount replaces the stored one: only the difference must be owed.
        let corrected = exact.replace("20000", "19000");
        run(&mut conn, Kind::Payments, &corrected).unwrap();
    }

    #[test]
    fn headers_are_checked_before_rows() {
        let mut conn = db();
        let errs = errors(run(&mut conn, Kind::Owners, "building,unit,nmae\n1,1,x\n"));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("1:nmae: unknown column for owners files"));
        assert_eq!(errs[1], "1:room: is missing from the header");
        assert_eq!(errs[2], "1:name: is missing from the header");
    }

    #[test]
    fn payments_and_reversals_import_against_bills() {
        let mut conn = db();
        run(&mut conn, Kind::Owners, OWNERS).unwrap();
        run(
            &mut conn,
            Kind::Bills,
            "household,fee_type,period,amount_fen,due_date\n1-1-101,property,2026-01,32000,2026-01-31\n",
        )
        .unwrap();
        let pays = "reference,household,fee_type,period,amount_yuan,paid_at,method,reversed_at,reversal_reason
P1,1-1-101,property,2026-01,320,2026-01-20 10:00,wechat,2026-01-22 09:00,退票
P2,1-1-101,property,2026-02,320,2026-01-20 10:00,wechat,,
";
        let errs = errors(run(&mut conn, Kind::Payments, pays));
        assert_eq!(
            errs,
            ["3:period: no property bill for 1-1-101 in period 2026-02; import bills first"]
        );
        let pays: String = pays.lines().take(2).map(|l| format!("{l}\n")).collect();
        run(&mut conn, Kind::Payments, &pays).unwrap();
        let d = DomainRead::new(&conn, "shuipan");
        let p = d.payment("P1").unwrap().unwrap();
        assert_eq!(
            p.paid_at.to_rfc3339(),
            "2026-01-20T02:00:00+00:00",
            "local time read in +08:00"
        );
        assert!(p.reversed_at.is_some());
        assert_eq!(
            d.unpaid_bills().unwrap().len(),
            1,
            "a reversed payment leaves the bill owed"
        );
    }

    #[test]
    fn tickets_with_and_without_callbacks() {
        let mut conn = db();
        run(&mut conn, Kind::Owners, OWNERS).unwrap();
        let tickets = "no,kind,first_receiver,opened_at,household,summary,assignee,closed_at,callback_at,callback_by,satisfied,score,notes
T1,报修,kefu,2026-02-01 09:00,1-1-101,水管漏水,weixiu,2026-02-01 15:00,2026-02-02 10:00,kefu,是,5,
T2,complaint,kefu,2026-02-03 09:00,,噪音,,2026-02-04 09:00,,,,,
T3,repair,kefu,2026-02-03 09:00,,,,,2026-02-04 09:00,kefu,yes,7,
";
        let errs = errors(run(&mut conn, Kind::Tickets, tickets));
        assert_eq!(
            errs,
            ["4:score: expected an integer from 1 to 5, got \"7\""]
        );
        let ok: String = tickets.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert_eq!(
            run(&mut conn, Kind::Tickets, &ok).unwrap().to_string(),
            "2 inserted, 0 updated, 0 unchanged"
        );
        assert_eq!(
            run(&mut conn, Kind::Tickets, &ok).unwrap().to_string(),
            "0 inserted, 0 updated, 2 unchanged"
        );
        let d = DomainRead::new(&conn, "shuipan");
        let waiting: Vec<String> = d
            .tickets_closed_without_callback()
            .unwrap()
            .into_iter()
            .map(|t| t.no)
            .collect();
        assert_eq!(waiting, ["T2"]);
    }

    #[test]
    fn gbk_bytes_are_decoded_and_utf8_bom_dropped() {
        let (gbk, _, _) =
            encoding_rs::GBK.encode("building,unit,room,name,phone\n1,1,101,张伟,13800000001\n");
        let (text, was_gbk) = decode(&gbk);
        assert!(was_gbk);
        assert!(text.contains("张伟"));
        let (text, was_gbk) = decode("\u{FEFF}building\n".as_bytes());
        assert!(!was_gbk);
        assert_eq!(text, "building\n");
        let mut conn = db();
        let utf16: Vec<u8> = [0xFF, 0xFE, b'b', 0].to_vec();
        let errs = errors(import(
            &mut conn,
            "shuipan",
            TZ,
            Kind::Owners,
            "u.txt",
            &utf16,
            None,
        ));
        assert_eq!(
            errs,
            [
                "1:-: the file is UTF-16 (Excel \"Unicode Text\"); save it as \"CSV UTF-8\" or \"CSV\""
            ]
        );
        let r = import(&mut conn, "shuipan", TZ, Kind::Owners, "g.csv", &gbk, None).unwrap();
        assert!(r.gbk);
        let names: Vec<String> = DomainRead::new(&conn, "shuipan")
            .owners()
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, ["张伟"]);
    }

    /// The shipped demo data imports cleanly and tells the story its generator promises.
    #[test]
    fn demo_data_imports_and_has_work_for_every_workflow() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/data");
        for community in ["shuipan", "shijixinzhu"] {
            let mut conn = db();
            let done = import_dir(&mut conn, community, TZ, &root.join(community))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(done.iter().map(|(k, _)| *k).collect::<Vec<_>>(), DIR_ORDER);
            assert!(done.iter().all(|(_, r)| r.inserted == r.rows && r.rows > 0));
            for kind in DIR_ORDER {
                let path = root.join(community).join(format!("{}.csv", kind.as_str()));
                let bytes = std::fs::read(&path).unwrap();
                let label = path.display().to_string();
                let again = import(&mut conn, community, TZ, kind, &label, &bytes, None).unwrap();
                assert_eq!(
                    again.unchanged, again.rows,
                    "re-import of {label} changed something"
                );
            }
            let d = DomainRead::new(&conn, community);
            assert_eq!(d.households().unwrap().len(), 40);
            assert!(
                d.owners()
                    .unwrap()
                    .iter()
                    .any(|o| o.language == Language::En)
            );
            let nov = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
            let mut in_arrears: Vec<String> = d
                .unpaid_bills_due_by(nov)
                .unwrap()
                .into_iter()
                .map(|b| b.bill.household)
                .collect();
            in_arrears.dedup();
            // 8 households stopped paying, plus the one whose October payment bounced.
            assert_eq!(in_arrears.len(), 9, "{community}: {in_arrears:?}");
            assert!(
                in_arrears.contains(&"1-1-101".to_string()),
                "the reversed payment reopened its bill"
            );
            // Replaying the past: on 16 October the bounced payment still counted.
            let at = |m, day| Utc.with_ymd_and_hms(2026, m, day, 0, 0, 0).unwrap();
            let oct = |b: &crate::domain::UnpaidBill| {
                b.bill.household == "1-1-101" && b.bill.period.as_str() == "2026-10"
            };
            let due = NaiveDate::from_ymd_opt(2026, 10, 31).unwrap();
            assert!(
                !d.unpaid_bills_as_of(at(10, 16), due)
                    .unwrap()
                    .iter()
                    .any(oct)
            );
            assert!(
                d.unpaid_bills_as_of(at(10, 21), due)
                    .unwrap()
                    .iter()
                    .any(oct)
            );
            // On 1 January nobody had paid yet (payments come at most 11 days before the
            // due date), so January's fees were owed by every household.
            let early =
                d.unpaid_bills_as_of(at(1, 1), NaiveDate::from_ymd_opt(2026, 1, 15).unwrap());
            assert!(
                early.unwrap().len() > 30,
                "before anyone paid, January was owed widely"
            );
            assert!(!d.balances_below_threshold().unwrap().is_empty());
            assert_eq!(d.tickets_closed_without_callback().unwrap().len(), 3);
            let since = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
            let recent = d.tickets_since(since).unwrap();
            assert!(
                recent.iter().any(|(t, _)| t.closed_at.is_none()),
                "the open ticket is listed"
            );
            assert!(
                recent
                    .iter()
                    .all(|(t, cb)| cb.is_none() || t.closed_at.is_some())
            );
            let bills = d.bills_of("1-1-101").unwrap();
            assert!(bills.len() >= 12);
            assert_eq!(bills[0].outstanding_fen, 0, "January was paid");
            // Two surveyed quarters, every household invited, most answering.
            let campaigns = d.campaigns().unwrap();
            assert_eq!(
                campaigns.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(),
                ["2026Q2", "2026Q3"]
            );
            for c in &campaigns {
                assert_eq!(d.invitations(c.id).unwrap().len(), 40);
                let answered = d.responses(c.id).unwrap().len();
                assert!((20..40).contains(&answered), "{}: {answered}", c.key);
            }
        }
    }

    const SURVEY_HEADER: &str = "campaign,household,invited_at,answered_at,reception,repairs,cleaning,security,greenery,comment\n";

    #[test]
    fn surveys_import_invitations_answers_and_a_closed_campaign() {
        let mut conn = db();
        run(&mut conn, Kind::Owners, OWNERS).unwrap();
        let file = format!(
            "{SURVEY_HEADER}\
             2026Q3,1-1-101,2026-07-01 09:00,2026-07-03 20:15,5,2,,4,5,报修太慢\n\
             2026Q3,1-2-201,2026-07-01 09:00,,,,,,,\n"
        );
        let r = run(&mut conn, Kind::Surveys, &file).unwrap();
        assert_eq!((r.rows, r.inserted), (2, 2));
        let d = DomainRead::new(&conn, "shuipan");
        let c = d
            .campaign("2026Q3")
            .unwrap()
            .expect("the campaign is created");
        // Opens when the forms went out, closed just after the last answer came in.
        assert_eq!(
            c.opens_at,
            Utc.with_ymd_and_hms(2026, 7, 1, 1, 0, 0).unwrap()
        );
        assert_eq!(
            c.closes_at,
            Utc.with_ymd_and_hms(2026, 7, 3, 12, 15, 1).unwrap()
        );
        assert_eq!(d.invitations(c.id).unwrap().len(), 2);
        let answers = d.responses(c.id).unwrap();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].household, "1-1-101");
        assert_eq!(answers[0].scores.repairs, Some(2));
        assert_eq!(answers[0].scores.cleaning, None, "empty is no opinion");
        assert_eq!(answers[0].comment, "报修太慢");

        // The same file again changes nothing; a corrected score is an update.
        let again = run(&mut conn, Kind::Surveys, &file).unwrap();
        assert_eq!((again.unchanged, again.inserted, again.updated), (2, 0, 0));
        let fixed = file.replace(",5,2,,4,5,", ",5,3,,4,5,");
        let r = run(&mut conn, Kind::Surveys, &fixed).unwrap();
        assert_eq!((r.updated, r.unchanged), (1, 1));
        let d = DomainRead::new(&conn, "shuipan");
        assert_eq!(d.responses(c.id).unwrap()[0].scores.repairs, Some(3));
    }

    #[test]
    fn survey_lines_that_cannot_be_right_are_refused() {
        let mut conn = db();
        run(&mut conn, Kind::Owners, OWNERS).unwrap();
        let file = format!(
            "{SURVEY_HEADER}\
             2026Q3,1-1-101,2026-07-01 09:00,2026-07-03 20:15,6,,,,,\n\
             2026Q3,1-2-201,2026-07-01 09:00,,4,,,,,很好\n\
             2026Q3,9-9-999,2026-07-01 09:00,,,,,,,\n\
             2026Q3,1-1-101,2026-07-05 09:00,2026-07-01 09:00,,,,,,\n"
        );
        assert_eq!(
            errors(run(&mut conn, Kind::Surveys, &file)),
            [
                "2:reception: expected an integer from 1 to 5 (empty: no opinion), got \"6\"",
                "3:reception: a score needs answered_at (when the answer came in)",
                "3:comment: a comment needs answered_at (when the answer came in)",
                "4:household: household \"9-9-999\" does not exist in community shuipan; import owners first",
                "5:answered_at: is before invited_at",
            ]
        );
        let d = DomainRead::new(&conn, "shuipan");
        assert!(d.campaigns().unwrap().is_empty(), "nothing was written");
    }

    #[test]
    fn chinese_headers_as_an_office_spreadsheet_has_them() {
        let mut conn = db();
        let owners = "楼栋,单元,房号,姓名,手机,邮箱\n1,1,101,张伟,13800000001,\n";
        run(&mut conn, Kind::Owners, owners).unwrap();
        let bills = "户号,类型,账期,金额,到期日\n1-1-101,物业费,2026-01,\"1,280.50\",2026/1/15\n";
        run(&mut conn, Kind::Bills, bills).unwrap();
        let d = DomainRead::new(&conn, "shuipan");
        assert_eq!(d.unpaid_bills().unwrap()[0].bill.amount_fen, 128_050);
        let errs = errors(run(
            &mut conn,
            Kind::Tickets,
            "工单号,类型,首问负责人,受理时间\nT1,报修,kefu,昨天\n",
        ));
        assert_eq!(
            errs,
            [
                "2:opened_at: expected a time like 2026-03-01 09:30 or 2026-03-01T09:30:00+08:00, got \"昨天\""
            ]
        );
    }

    #[test]
    fn local_times_follow_the_community_zone() {
        let t = parse_instant("2026/3/1 9:30", TZ).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T01:30:00+00:00");
        assert!(parse_instant("yesterday", TZ).is_err());
        // Years the store cannot write back are refused with the cell's text, not by SQLite.
        assert_eq!(
            parse_instant("-026-04-01 09:00", TZ).unwrap_err(),
            r#""-026-04-01 09:00" is not between the years 1900 and 9999"#
        );
        assert!(parse_instant("0000-01-01T00:00:00+08:00", TZ).is_err());
        assert!(parse_date("-026-04-01").is_err());
    }
}
