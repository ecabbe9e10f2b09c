//! SQL for the domain data (migration 0002): households, owners, bills, payments, balances,
//! tickets, callbacks, surveys, community events, and the domain-event outbox.
//!
//! Every query goes through a view bound to ONE community: [`DomainRead`] for reads (from any
//! connection) and [`DomainWrite`] for changes (only from a [`Tx`], so a change commits with
//! whatever else the transaction carries, e.g. the domain event it causes). No method takes a
//! second community id, so a plugin host or report built on these views cannot read a
//! neighbour's owners by construction. The only cross-community entry points are the survey
//! token lookup (the token *is* the credential, and the answer lands in the token's community),
//! the event outbox the scheduler drains, and the few counts `wuyed simulate` splits its work by
//! (they return community ids and numbers, never an owner).
//!
//! The plugin host and the outbox define their own traits for what they need; the lead's
//! adapters call these plain methods.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::Tx;
use wuye_core::domain::{
    Bill, BillStatus, Callback, ContactChannel, DomainEvent, Event, FeeType, Household, Language,
    Owner, Payment, Period, Rsvp, RsvpInvitation, SurveyCampaign, SurveyInvitation, SurveyResponse,
    SurveyScores, Ticket, TicketKind, TicketNotice, UnpaidBill, Upsert, Utility, UtilityBalance,
    event_kind, fmt_ts, new_survey_token, parse_ts,
};

/// Why a domain write was refused.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The thing named does not exist in this community.
    #[error("{what} {key:?} not found")]
    NotFound { what: &'static str, key: String },
    /// The request contradicts what is stored (a ticket number reused with other data, a
    /// payment reversed twice, a survey answered twice).
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    /// A value is out of range.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// Migration 0002 (schema version 2). Every statement is `IF NOT EXISTS`, so applying it twice
/// is harmless.
pub const MIGRATION_0002: (u32, &str) = (2, include_str!("migrations/0002_domain.sql"));

/// Brings `conn`'s database to the current schema (every migration, not only the domain's:
/// later migrations extend domain tables, and a database migrated here must look exactly like
/// one `Store::open` migrated, so either can open it afterwards). A no-op when it is current.
pub fn apply_schema(conn: &Connection) -> rusqlite::Result<()> {
    let path = std::path::PathBuf::from(conn.path().unwrap_or(":memory:"));
    super::migrations::migrate(conn, &path).map_err(|e| {
        rusqlite::Error::ToSqlConversionFailure(format!("migrating the schema: {e:#}").into())
    })
}

/// A plain connection on `path` with the store's settings (WAL, synchronous=FULL, foreign
/// keys, busy timeout) and the schema migrated if needed: the HTTP API's own connection on a
/// database `Store::open` has migrated, and a quick database for tests, tools and benchmarks.
pub fn open_standalone(path: &Path) -> rusqlite::Result<Connection> {
    super::create_private(path).map_err(|e| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("{e:#}")),
        )
    })?;
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a committed import or payment must survive a power cut.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Every read here goes through the statement cache; the default 16 entries would keep
    // re-preparing the domain's few dozen queries.
    conn.set_prepared_statement_cache_capacity(64);
    super::tune_cache(&conn)?;
    apply_schema(&conn)?;
    Ok(conn)
}

/// One read connection shared by the daemon's readers of domain data (the plugin host's data
/// source and delivery's directory), each call scoped to one community. Under WAL it reads the
/// last committed state without waiting for a run's write transaction on another connection.
pub struct DomainReader {
    conn: std::sync::Mutex<Connection>,
}

impl DomainReader {
    pub fn open(path: &Path) -> anyhow::Result<DomainReader> {
        use anyhow::Context as _;
        let conn =
            open_standalone(path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(DomainReader {
            conn: std::sync::Mutex::new(conn),
        })
    }

    /// The settings of [`super::Store::for_throwaway_copy`] on the reader's connection (for a
    /// reader, what counts is the memory map off): only for `wuyed simulate`'s throwaway copy.
    pub fn for_throwaway_copy(self) -> anyhow::Result<DomainReader> {
        super::throwaway(&self.conn.lock().expect("domain read connection poisoned"))?;
        Ok(self)
    }

    /// Runs `f` on `community`'s data.
    pub fn read<T>(
        &self,
        community: &str,
        f: impl FnOnce(&DomainRead<'_>) -> rusqlite::Result<T>,
    ) -> anyhow::Result<T> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("domain read connection poisoned"))?;
        Ok(f(&DomainRead::new(&conn, community))?)
    }
}

/// Runs `f` in one immediate transaction: committed when it returns `Ok`, rolled back
/// otherwise. For the API and tools: another process's lock is waited for a bounded time
/// ([`super::Patience::INTERACTIVE`]), then the error says who is in the way.
pub fn with_tx<R, E: From<rusqlite::Error>>(
    conn: &mut Connection,
    f: impl FnOnce(&Tx<'_>) -> Result<R, E>,
) -> Result<R, E> {
    super::lock::write(conn, interactive(), f)
}

/// What [`with_tx`] waits for another process's lock: [`super::Patience::INTERACTIVE`], unless a
/// test shortened it ([`TEST_WAIT_MS`]) to prove the give-up path without waiting
/// 30 s. Not a setting: a person waiting on the API should not get another answer than a script.
fn interactive() -> super::Patience {
    #[cfg(any(test, feature = "test-hooks"))]
    {
        let ms = TEST_WAIT_MS.load(std::sync::atomic::Ordering::Relaxed);
        if ms > 0 {
            return super::Patience::Bounded(std::time::Duration::from_millis(ms));
        }
    }
    super::Patience::INTERACTIVE
}

/// Milliseconds [`with_tx`] waits for a lock in tests (this crate's, and the daemon's API tests
/// through the `test-hooks` feature); 0 keeps the shipped wait.
#[cfg(any(test, feature = "test-hooks"))]
pub static TEST_WAIT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl<'a> Tx<'a> {
    /// Read and write access to one community's domain data inside this transaction.
    pub fn domain<'s>(&'s self, community: &'s str) -> DomainWrite<'s> {
        DomainWrite {
            read: DomainRead {
                conn: &self.0,
                community,
            },
        }
    }

    /// Takes up to `limit` pending domain events (oldest first) and marks them consumed at
    /// `now`, in this transaction: the scheduler inserts the event runs in the same one, so an
    /// event is turned into runs exactly once.
    pub fn take_pending_events(
        &self,
        limit: usize,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<Vec<DomainEvent>> {
        let events = pending_events(&self.0, limit)?;
        let mut mark = self
            .0
            .prepare_cached("UPDATE events SET consumed_at = ?1 WHERE id = ?2")?;
        for e in &events {
            mark.execute(params![fmt_ts(now), e.id])?;
        }
        Ok(events)
    }

    /// Pairs of communities (each pair once, smaller id first) where an owner of one has the
    /// same phone number as an owner of the other. SMS per-number limits count every message to
    /// a number whatever community sent it, so `wuyed simulate` keeps such communities together.
    /// Only community ids leave this method.
    pub fn communities_sharing_owner_numbers(&self) -> rusqlite::Result<Vec<(String, String)>> {
        self.0
            .prepare(
                "SELECT DISTINCT a.community, b.community FROM owners a JOIN owners b
                 ON a.phone = b.phone AND a.community < b.community
                 WHERE a.phone IS NOT NULL AND a.phone <> ''",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    }

    /// The communities with an owner whose phone number is `phone` (a staff member's, say).
    pub fn communities_with_owner_number(&self, phone: &str) -> rusqlite::Result<Vec<String>> {
        self.0
            .prepare_cached("SELECT DISTINCT community FROM owners WHERE phone = ?1")?
            .query_map([phone], |r| r.get(0))?
            .collect()
    }

    /// Households per community.
    pub fn household_counts(&self) -> rusqlite::Result<HashMap<String, i64>> {
        self.0
            .prepare("SELECT community, COUNT(*) FROM households GROUP BY community")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    }

    /// Deletes events consumed before `before` (they have become runs; the runs and audit keep
    /// the history). Returns how many went.
    pub fn purge_consumed_events(&self, before: DateTime<Utc>) -> rusqlite::Result<usize> {
        self.0
            .prepare_cached(
                "DELETE FROM events WHERE consumed_at IS NOT NULL AND consumed_at < ?1",
            )?
            .execute([fmt_ts(before)])
    }

    /// Records an owner's survey answer, found by the invitation's token. The answer lands in
    /// the token's community and emits `survey.answered` there.
    pub fn record_survey_response(
        &self,
        token: &str,
        scores: SurveyScores,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<SurveyResponse, DomainError> {
        let inv = survey_invitation_by_token(&self.0, token)?.ok_or(DomainError::NotFound {
            what: "survey invitation",
            key: "(token)".into(),
        })?;
        if let Some(area) = scores.invalid_area() {
            return Err(DomainError::Invalid {
                field: area.as_str(),
                message: "must be an integer from 1 to 5".into(),
            });
        }
        let campaign: (String, String) = self
            .0
            .prepare_cached("SELECT opens_at, closes_at FROM survey_campaigns WHERE id = ?1")?
            .query_row([inv.campaign_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if fmt_ts(now) >= campaign.1 {
            return Err(DomainError::Conflict {
                field: None,
                message: "this survey has closed".into(),
            });
        }
        let inserted = self
            .0
            .prepare_cached(
                "INSERT OR IGNORE INTO survey_responses
               (invitation_id, community, answered_at, reception, repairs, cleaning, security,
                greenery, comment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                inv.id,
                inv.community,
                fmt_ts(now),
                scores.reception,
                scores.repairs,
                scores.cleaning,
                scores.security,
                scores.greenery,
                comment
            ])?;
        if inserted == 0 {
            return Err(DomainError::Conflict {
                field: None,
                message: "this household has already answered this survey".into(),
            });
        }
        let d = self.domain(&inv.community);
        d.emit(
            event_kind::SURVEY_ANSWERED,
            serde_json::json!({
                "campaign_id": inv.campaign_id,
                "invitation_id": inv.id,
                "household": inv.household,
            }),
            now,
        )?;
        Ok(SurveyResponse {
            invitation_id: inv.id,
            community: inv.community,
            household: inv.household,
            answered_at: now,
            scores,
            comment: comment.to_string(),
        })
    }
}

/// Pending (unconsumed) domain events, oldest first, across communities.
pub fn pending_events(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<DomainEvent>> {
    let mut st = conn.prepare_cached(
        "SELECT id, community, kind, payload, created_at FROM events
         WHERE consumed_at IS NULL ORDER BY id LIMIT ?1",
    )?;
    st.query_map([limit as i64], |r| {
        let payload: String = r.get(3)?;
        Ok(DomainEvent {
            id: r.get(0)?,
            community: r.get(1)?,
            kind: r.get(2)?,
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            created_at: ts(r, 4)?,
        })
    })?
    .collect()
}

/// The invitation a survey token belongs to, in whichever community it was issued.
pub fn survey_invitation_by_token(
    conn: &Connection,
    token: &str,
) -> rusqlite::Result<Option<SurveyInvitation>> {
    conn.prepare_cached(
        "SELECT id, community, campaign_id, household, token, invited_at
         FROM survey_invitations WHERE token = ?1",
    )?
    .query_row([token], invitation_row)
    .optional()
}

/// What the owner-facing survey page needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyLink {
    pub invitation: SurveyInvitation,
    pub campaign: SurveyCampaign,
    pub answered: bool,
    /// The household's primary contact's language (the page speaks it).
    pub language: Language,
}

/// The state of a survey link, found by its token in whichever community issued it.
pub fn survey_link(conn: &Connection, token: &str) -> rusqlite::Result<Option<SurveyLink>> {
    let Some(invitation) = survey_invitation_by_token(conn, token)? else {
        return Ok(None);
    };
    let campaign = conn
        .prepare_cached(
            "SELECT id, community, key, opens_at, closes_at FROM survey_campaigns WHERE id = ?1",
        )?
        .query_row([invitation.campaign_id], campaign_row)?;
    let answered: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM survey_responses WHERE invitation_id = ?1)")?
        .query_row([invitation.id], |r| r.get(0))?;
    let language = DomainRead::new(conn, &invitation.community)
        .household_primary_contact(&invitation.household)?
        .map_or(Language::ZhCn, |o| o.language);
    Ok(Some(SurveyLink {
        invitation,
        campaign,
        answered,
        language,
    }))
}

/// What the owner-facing RSVP page needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsvpLink {
    pub invitation: RsvpInvitation,
    pub event: Event,
    /// Attendees already registered by this household, if it answered.
    pub attendees: Option<u32>,
    /// The household's primary contact's language (the page speaks it).
    pub language: Language,
}

/// The state of an RSVP link, found by its token in whichever community issued it.
pub fn rsvp_link(conn: &Connection, token: &str) -> rusqlite::Result<Option<RsvpLink>> {
    let Some(invitation) = conn
        .prepare_cached(
            "SELECT id, community, event_id, household, token, invited_at FROM rsvp_invitations
             WHERE token = ?1",
        )?
        .query_row([token], rsvp_invitation_row)
        .optional()?
    else {
        return Ok(None);
    };
    let event = conn
        .prepare_cached(&format!("{EVENT_SELECT} WHERE id = ?1"))?
        .query_row([invitation.event_id], event_row)?;
    let attendees = conn
        .prepare_cached("SELECT attendees FROM rsvps WHERE event_id = ?1 AND household = ?2")?
        .query_row(params![invitation.event_id, invitation.household], |r| {
            r.get(0)
        })
        .optional()?;
    let language = DomainRead::new(conn, &invitation.community)
        .household_primary_contact(&invitation.household)?
        .map_or(Language::ZhCn, |o| o.language);
    Ok(Some(RsvpLink {
        invitation,
        event,
        attendees,
        language,
    }))
}

/// Reads one community's domain data. Cheap to create: borrow a connection, name the community.
#[derive(Clone, Copy)]
pub struct DomainRead<'c> {
    conn: &'c Connection,
    community: &'c str,
}

/// Changes one community's domain data inside a [`Tx`] (see [`Tx::domain`]). Reads too.
pub struct DomainWrite<'c> {
    read: DomainRead<'c>,
}

impl<'c> std::ops::Deref for DomainWrite<'c> {
    type Target = DomainRead<'c>;
    fn deref(&self) -> &DomainRead<'c> {
        &self.read
    }
}

impl<'c> DomainRead<'c> {
    /// Every row `sql` yields, mapped by `row`; the statement is cached on the connection.
    fn all<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Vec<T>> {
        self.conn
            .prepare_cached(sql)?
            .query_map(params, row)?
            .collect()
    }

    /// The one row `sql` yields, if any.
    fn one<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        self.conn
            .prepare_cached(sql)?
            .query_row(params, row)
            .optional()
    }

    /// A read view of `community` over `conn`.
    pub fn new(conn: &'c Connection, community: &'c str) -> Self {
        DomainRead { conn, community }
    }

    pub fn community(&self) -> &str {
        self.community
    }

    // ----- households and owners -----

    pub fn households(&self) -> rusqlite::Result<Vec<Household>> {
        self.all(
            "SELECT community, id, building, unit, room FROM households
             WHERE community = ?1 ORDER BY id",
            [self.community],
            household_row,
        )
    }

    pub fn household(&self, id: &str) -> rusqlite::Result<Option<Household>> {
        self.one(
            "SELECT community, id, building, unit, room FROM households
             WHERE community = ?1 AND id = ?2",
            [self.community, id],
            household_row,
        )
    }

    /// The households named in `ids` (any order; unknown ids left out) and their owners, by
    /// household then owner id: the few a run writes to, read in one query each rather than
    /// all of a community's.
    pub fn households_by_id(
        &self,
        ids: &[String],
    ) -> rusqlite::Result<(Vec<Household>, Vec<Owner>)> {
        let households = self.all(
            "SELECT community, id, building, unit, room FROM households
             WHERE community = ?1 AND id IN (SELECT value FROM json_each(?2)) ORDER BY id",
            params![self.community, json_list(ids)?],
            household_row,
        )?;
        Ok((households, self.owners_of_households(ids)?))
    }

    /// Every owner of the households named (unknown ids left out), by household then owner id,
    /// in one query: the id list is bound as one JSON array, whatever its length.
    pub fn owners_of_households(&self, households: &[String]) -> rusqlite::Result<Vec<Owner>> {
        self.all(
            &format!(
                "{OWNER_SELECT} WHERE community = ?1 AND household IN
                 (SELECT value FROM json_each(?2)) ORDER BY household, id"
            ),
            params![self.community, json_list(households)?],
            owner_row,
        )
    }

    /// Who receives a household's messages: every owner (co-owners included) with contacts,
    /// language and preferred channel, in a stable order (by owner id).
    pub fn household_recipients(&self, household: &str) -> rusqlite::Result<Vec<Owner>> {
        self.all(
            &format!("{OWNER_SELECT} WHERE community = ?1 AND household = ?2 ORDER BY id"),
            [self.community, household],
            owner_row,
        )
    }

    /// The owner a household's message goes to: the first owner (by id) whose preferred
    /// channel has an address, else the first with any address. `None` for an unknown or
    /// unreachable household (the desk must call).
    pub fn household_primary_contact(&self, household: &str) -> rusqlite::Result<Option<Owner>> {
        Ok(primary_contact(&self.household_recipients(household)?).cloned())
    }

    /// [`household_primary_contact`] of each of `households` that has one, in one query.
    ///
    /// [`household_primary_contact`]: DomainRead::household_primary_contact
    pub fn household_primary_contacts(
        &self,
        households: &[String],
    ) -> rusqlite::Result<HashMap<String, Owner>> {
        let owners = self.owners_of_households(households)?;
        let mut out = HashMap::new();
        for group in owners.chunk_by(|a, b| a.household == b.household) {
            if let Some(o) = primary_contact(group) {
                out.insert(o.household.clone(), o.clone());
            }
        }
        Ok(out)
    }

    pub fn owner(&self, id: i64) -> rusqlite::Result<Option<Owner>> {
        self.one(
            &format!("{OWNER_SELECT} WHERE community = ?1 AND id = ?2"),
            params![self.community, id],
            owner_row,
        )
    }

    pub fn owners(&self) -> rusqlite::Result<Vec<Owner>> {
        self.all(
            &format!("{OWNER_SELECT} WHERE community = ?1 ORDER BY household, id"),
            [self.community],
            owner_row,
        )
    }

    // ----- bills and payments -----

    pub fn bill(&self, id: i64) -> rusqlite::Result<Option<Bill>> {
        self.one(
            &format!("{BILL_SELECT} WHERE community = ?1 AND id = ?2"),
            params![self.community, id],
            bill_row,
        )
    }

    pub fn bill_by_key(
        &self,
        household: &str,
        fee_type: &FeeType,
        period: &Period,
    ) -> rusqlite::Result<Option<Bill>> {
        self.one(
            &format!(
                "{BILL_SELECT} WHERE community = ?1 AND household = ?2 AND fee_type = ?3
                 AND period = ?4"
            ),
            params![
                self.community,
                household,
                fee_type.as_str(),
                period.as_str()
            ],
            bill_row,
        )
    }

    /// Every bill with money still owed, by household then due date: what a fee reminder
    /// lists. One query, no per-household round trips (100,000 households stay cheap).
    pub fn unpaid_bills(&self) -> rusqlite::Result<Vec<UnpaidBill>> {
        self.all(
            &format!(
                "{UNPAID_SELECT} WHERE b.community = ?1 AND b.paid_fen < b.amount_fen
             ORDER BY b.household, b.due_date, b.id"
            ),
            [self.community],
            unpaid_row,
        )
    }

    /// Unpaid bills due on or before `date` (local date): the arrears a reminder run sees.
    pub fn unpaid_bills_due_by(&self, date: NaiveDate) -> rusqlite::Result<Vec<UnpaidBill>> {
        self.all(
            &format!(
                "{UNPAID_SELECT} WHERE b.community = ?1 AND b.paid_fen < b.amount_fen
             AND b.due_date <= ?2 ORDER BY b.household, b.due_date, b.id"
            ),
            params![self.community, date.to_string()],
            unpaid_row,
        )
    }

    /// Unpaid bills due on or before `due_by`, as the books stood at instant `at`: payments
    /// made after `at` do not count yet, reversals after `at` have not happened yet. For
    /// simulations and reports that replay the past on today's data.
    pub fn unpaid_bills_as_of(
        &self,
        at: DateTime<Utc>,
        due_by: NaiveDate,
    ) -> rusqlite::Result<Vec<UnpaidBill>> {
        self.all(
            "SELECT b.id, b.community, b.household, b.fee_type, b.period, b.amount_fen,
                b.due_date,
                COALESCE(SUM(p.amount_fen) FILTER (WHERE p.paid_at <= ?3
                          AND (p.reversed_at IS NULL OR p.reversed_at > ?3)), 0) AS paid
             FROM bills b LEFT JOIN payments p ON p.bill_id = b.id
             WHERE b.community = ?1 AND b.due_date <= ?2 GROUP BY b.id
             HAVING paid < b.amount_fen ORDER BY b.household, b.due_date, b.id",
            params![self.community, due_by.to_string(), fmt_ts(at)],
            unpaid_row,
        )
    }

    /// One household's unpaid bills, oldest due first.
    pub fn unpaid_bills_of(&self, household: &str) -> rusqlite::Result<Vec<UnpaidBill>> {
        self.all(
            &format!(
                "{UNPAID_SELECT} WHERE b.community = ?1 AND b.paid_fen < b.amount_fen
             AND b.household = ?2 ORDER BY b.due_date, b.id"
            ),
            [self.community, household],
            unpaid_row,
        )
    }

    /// Unpaid bills grouped per household (households in id order): one reminder each.
    pub fn unpaid_by_household(&self) -> rusqlite::Result<Vec<(String, Vec<UnpaidBill>)>> {
        let mut out: Vec<(String, Vec<UnpaidBill>)> = Vec::new();
        for b in self.unpaid_bills()? {
            match out.last_mut() {
                Some((h, items)) if *h == b.bill.household => items.push(b),
                _ => out.push((b.bill.household.clone(), vec![b])),
            }
        }
        Ok(out)
    }

    /// Every bill of a household (paid or not) with what was paid, oldest due first.
    pub fn bills_of(&self, household: &str) -> rusqlite::Result<Vec<BillStatus>> {
        self.all(
            "SELECT b.id, b.community, b.household, b.fee_type, b.period, b.amount_fen,
                b.due_date, b.paid_fen
             FROM bills b WHERE b.community = ?1 AND b.household = ?2
             ORDER BY b.due_date, b.id",
            [self.community, household],
            unpaid_row,
        )
    }

    /// Is bill `id` still owed? `None` when this community has no such bill. The outbox asks
    /// this just before sending a reminder, to cancel it if the owner paid meanwhile.
    pub fn is_bill_unpaid(&self, id: i64) -> rusqlite::Result<Option<bool>> {
        self.one(
            "SELECT paid_fen < amount_fen FROM bills WHERE community = ?1 AND id = ?2",
            params![self.community, id],
            |r| r.get(0),
        )
    }

    pub fn payment(&self, reference: &str) -> rusqlite::Result<Option<Payment>> {
        self.one(
            &format!("{PAYMENT_SELECT} WHERE community = ?1 AND reference = ?2"),
            [self.community, reference],
            payment_row,
        )
    }

    pub fn payments_of_bill(&self, bill_id: i64) -> rusqlite::Result<Vec<Payment>> {
        self.all(
            &format!("{PAYMENT_SELECT} WHERE community = ?1 AND bill_id = ?2 ORDER BY paid_at, id"),
            params![self.community, bill_id],
            payment_row,
        )
    }

    // ----- utility balances -----

    pub fn balances(&self) -> rusqlite::Result<Vec<UtilityBalance>> {
        self.all(
            &format!("{BALANCE_SELECT} WHERE community = ?1 ORDER BY household, utility"),
            [self.community],
            balance_row,
        )
    }

    /// Prepaid balances strictly below their threshold.
    pub fn balances_below_threshold(&self) -> rusqlite::Result<Vec<UtilityBalance>> {
        self.all(
            &format!(
                "{BALANCE_SELECT} WHERE community = ?1 AND balance_fen < threshold_fen
             ORDER BY household, utility"
            ),
            [self.community],
            balance_row,
        )
    }

    // ----- tickets and callbacks -----

    pub fn ticket(&self, id: i64) -> rusqlite::Result<Option<Ticket>> {
        self.one(
            &format!("{TICKET_SELECT} WHERE community = ?1 AND id = ?2"),
            params![self.community, id],
            ticket_row,
        )
    }

    pub fn ticket_by_no(&self, no: &str) -> rusqlite::Result<Option<Ticket>> {
        self.one(
            &format!("{TICKET_SELECT} WHERE community = ?1 AND no = ?2"),
            [self.community, no],
            ticket_row,
        )
    }

    pub fn tickets(&self) -> rusqlite::Result<Vec<Ticket>> {
        self.all(
            &format!("{TICKET_SELECT} WHERE community = ?1 ORDER BY opened_at, id"),
            [self.community],
            ticket_row,
        )
    }

    /// Tickets still open, and those closed at or after `since`, each with its latest callback
    /// (if any), by opening time: what callback escalation and the monthly report look at.
    pub fn tickets_since(
        &self,
        since: DateTime<Utc>,
    ) -> rusqlite::Result<Vec<(Ticket, Option<Callback>)>> {
        let mut st = self.conn.prepare_cached(&format!(
            "{TICKET_SELECT} WHERE community = ?1 AND (closed_at IS NULL OR closed_at >= ?2)
             ORDER BY opened_at, id"
        ))?;
        let tickets: Vec<Ticket> = st
            .query_map(params![self.community, fmt_ts(since)], ticket_row)?
            .collect::<rusqlite::Result<_>>()?;
        self.with_latest_callbacks(tickets)
    }

    /// Each ticket with its most recent callback, the callbacks of all of them read in one
    /// query: a query per ticket made the daily sweep cost a round trip for every open ticket
    /// (fee visits pile up as open tickets), the largest single cost of a simulated year.
    fn with_latest_callbacks(
        &self,
        tickets: Vec<Ticket>,
    ) -> rusqlite::Result<Vec<(Ticket, Option<Callback>)>> {
        let ids: Vec<i64> = tickets.iter().map(|t| t.id).collect();
        let mut latest: HashMap<i64, Callback> = HashMap::new();
        for cb in self.all(
            "SELECT id, community, ticket_id, done_at, done_by, satisfied, score, notes
             FROM callbacks WHERE community = ?1
             AND ticket_id IN (SELECT value FROM json_each(?2))
             ORDER BY ticket_id, done_at, id",
            params![self.community, json_list(&ids)?],
            callback_row,
        )? {
            latest.insert(cb.ticket_id, cb);
        }
        Ok(tickets
            .into_iter()
            .map(|t| {
                let cb = latest.remove(&t.id);
                (t, cb)
            })
            .collect())
    }

    /// The most recent callback of a ticket.
    pub fn latest_callback(&self, ticket_id: i64) -> rusqlite::Result<Option<Callback>> {
        self.one(
            "SELECT id, community, ticket_id, done_at, done_by, satisfied, score, notes
             FROM callbacks WHERE community = ?1 AND ticket_id = ?2
             ORDER BY done_at DESC, id DESC LIMIT 1",
            params![self.community, ticket_id],
            callback_row,
        )
    }

    /// Closed tickets no callback has answered yet (none dated at or after the closing), oldest
    /// closing first: what callback escalation watches. `closed_at`, `assignee`, `kind` and
    /// `first_receiver` are on each ticket. Desk tasks owe no callback and are not listed.
    pub fn tickets_closed_without_callback(&self) -> rusqlite::Result<Vec<Ticket>> {
        self.all(
            &format!(
                "{TICKET_SELECT} t WHERE t.community = ?1 AND t.closed_at IS NOT NULL
             AND t.kind <> 'task'
             AND NOT EXISTS (SELECT 1 FROM callbacks c
                         WHERE c.ticket_id = t.id AND c.done_at >= t.closed_at)
             ORDER BY t.closed_at, t.id"
            ),
            [self.community],
            ticket_row,
        )
    }

    /// [`tickets_closed_without_callback`] closed at or after `since`: what a daily sweep for
    /// missed callbacks looks at.
    ///
    /// [`tickets_closed_without_callback`]: DomainRead::tickets_closed_without_callback
    /// Each comes with its latest callback (one given before the closing, if any). Desk tasks
    /// are not listed.
    pub fn tickets_awaiting_callback(
        &self,
        since: DateTime<Utc>,
    ) -> rusqlite::Result<Vec<(Ticket, Option<Callback>)>> {
        let tickets = self.all(
            &format!(
                "{TICKET_SELECT} t WHERE t.community = ?1 AND t.closed_at >= ?2
             AND t.kind <> 'task'
             AND NOT EXISTS (SELECT 1 FROM callbacks c
                         WHERE c.ticket_id = t.id AND c.done_at >= t.closed_at)
             ORDER BY t.closed_at, t.id"
            ),
            params![self.community, fmt_ts(since)],
            ticket_row,
        )?;
        self.with_latest_callbacks(tickets)
    }

    /// Is the callback for ticket `id` still missing? `Some(false)` when it was done or the
    /// ticket is open again (reopened: nothing to call back yet); `None` when this community
    /// has no such ticket.
    pub fn is_callback_missing(&self, id: i64) -> rusqlite::Result<Option<bool>> {
        self.one(
            "SELECT t.closed_at IS NOT NULL AND NOT EXISTS
               (SELECT 1 FROM callbacks c WHERE c.ticket_id = t.id AND c.done_at >= t.closed_at)
             FROM tickets t WHERE t.community = ?1 AND t.id = ?2",
            params![self.community, id],
            |r| r.get(0),
        )
    }

    pub fn callbacks_of(&self, ticket_id: i64) -> rusqlite::Result<Vec<Callback>> {
        self.all(
            "SELECT id, community, ticket_id, done_at, done_by, satisfied, score, notes
             FROM callbacks WHERE community = ?1 AND ticket_id = ?2 ORDER BY done_at, id",
            params![self.community, ticket_id],
            callback_row,
        )
    }

    /// Callbacks done in `[from, to)`, for callback-rate reports.
    pub fn callbacks_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> rusqlite::Result<Vec<Callback>> {
        self.all(
            "SELECT id, community, ticket_id, done_at, done_by, satisfied, score, notes
             FROM callbacks WHERE community = ?1 AND done_at >= ?2 AND done_at < ?3
             ORDER BY done_at, id",
            params![self.community, fmt_ts(from), fmt_ts(to)],
            callback_row,
        )
    }

    // ----- surveys -----

    pub fn campaign(&self, key: &str) -> rusqlite::Result<Option<SurveyCampaign>> {
        self.one(
            "SELECT id, community, key, opens_at, closes_at FROM survey_campaigns
             WHERE community = ?1 AND key = ?2",
            [self.community, key],
            campaign_row,
        )
    }

    /// Every survey campaign, oldest first.
    pub fn campaigns(&self) -> rusqlite::Result<Vec<SurveyCampaign>> {
        self.all(
            "SELECT id, community, key, opens_at, closes_at FROM survey_campaigns
             WHERE community = ?1 ORDER BY opens_at, id",
            [self.community],
            campaign_row,
        )
    }

    pub fn invitations(&self, campaign_id: i64) -> rusqlite::Result<Vec<SurveyInvitation>> {
        self.all(
            "SELECT id, community, campaign_id, household, token, invited_at
             FROM survey_invitations WHERE community = ?1 AND campaign_id = ?2 ORDER BY household",
            params![self.community, campaign_id],
            invitation_row,
        )
    }

    /// Invitations of a campaign nobody answered yet: who gets the reminder.
    pub fn invitations_without_response(
        &self,
        campaign_id: i64,
    ) -> rusqlite::Result<Vec<SurveyInvitation>> {
        self.all(
            "SELECT i.id, i.community, i.campaign_id, i.household, i.token, i.invited_at
             FROM survey_invitations i
             WHERE i.community = ?1 AND i.campaign_id = ?2
               AND NOT EXISTS (SELECT 1 FROM survey_responses r WHERE r.invitation_id = i.id)
             ORDER BY i.household",
            params![self.community, campaign_id],
            invitation_row,
        )
    }

    pub fn responses(&self, campaign_id: i64) -> rusqlite::Result<Vec<SurveyResponse>> {
        self.all(
            "SELECT r.invitation_id, r.community, i.household, r.answered_at, r.reception,
                r.repairs, r.cleaning, r.security, r.greenery, r.comment
             FROM survey_responses r JOIN survey_invitations i ON i.id = r.invitation_id
             WHERE r.community = ?1 AND i.campaign_id = ?2 ORDER BY i.household",
            params![self.community, campaign_id],
            |r| {
                Ok(SurveyResponse {
                    invitation_id: r.get(0)?,
                    community: r.get(1)?,
                    household: r.get(2)?,
                    answered_at: ts(r, 3)?,
                    scores: SurveyScores {
                        reception: r.get(4)?,
                        repairs: r.get(5)?,
                        cleaning: r.get(6)?,
                        security: r.get(7)?,
                        greenery: r.get(8)?,
                    },
                    comment: r.get(9)?,
                })
            },
        )
    }

    // ----- community events -----

    pub fn event(&self, key: &str) -> rusqlite::Result<Option<Event>> {
        self.one(
            &format!("{EVENT_SELECT} WHERE community = ?1 AND key = ?2"),
            [self.community, key],
            event_row,
        )
    }

    /// Every community event, by planned date.
    pub fn events(&self) -> rusqlite::Result<Vec<Event>> {
        self.all(
            &format!("{EVENT_SELECT} WHERE community = ?1 ORDER BY planned_for, id"),
            [self.community],
            event_row,
        )
    }

    /// The staff notices recorded about `ticket_id`, oldest first.
    pub fn ticket_notices(&self, ticket_id: i64) -> rusqlite::Result<Vec<TicketNotice>> {
        self.all(
            "SELECT ticket_id, role, template, step, notified_at FROM ticket_notices
             WHERE community = ?1 AND ticket_id = ?2 ORDER BY notified_at, id",
            params![self.community, ticket_id],
            |r| {
                Ok(TicketNotice {
                    ticket_id: r.get(0)?,
                    role: r.get(1)?,
                    template: r.get(2)?,
                    step: r.get(3)?,
                    notified_at: ts(r, 4)?,
                })
            },
        )
    }

    pub fn rsvps(&self, event_id: i64) -> rusqlite::Result<Vec<Rsvp>> {
        self.all(
            "SELECT event_id, community, household, attendees, responded_at FROM rsvps
             WHERE community = ?1 AND event_id = ?2 ORDER BY household",
            params![self.community, event_id],
            |r| {
                Ok(Rsvp {
                    event_id: r.get(0)?,
                    community: r.get(1)?,
                    household: r.get(2)?,
                    attendees: r.get(3)?,
                    responded_at: ts(r, 4)?,
                })
            },
        )
    }

    /// Has the reason for a message gone? The outbox asks this just before sending
    /// (`deliver::Directory::still_relevant`). `reason` is what the workflow recorded, any of:
    /// - `{"bills": [12, 13]}`: gone once none of these bills is owed;
    /// - `{"ticket": 7}`: a callback reminder, gone once ticket 7 has its callback (or reopened);
    /// - `{"survey_invitation": 5}`: gone once the household answered;
    /// - `{"balance": {"household": "1-1-101", "utility": "water"}}`: gone once topped up to
    ///   the threshold.
    ///
    /// Returns `Some(why)` when gone, `None` while the message still has a reason. Ids that do
    /// not exist in this community count as gone. Unknown keys are ignored (a reason this code
    /// does not understand is no reason to withhold a message).
    pub fn reason_gone(&self, reason: &serde_json::Value) -> rusqlite::Result<Option<String>> {
        let mut gone = Vec::new();
        if let Some(bills) = reason.get("bills").and_then(|b| b.as_array()) {
            let ids: Vec<i64> = bills.iter().filter_map(|b| b.as_i64()).collect();
            // One bill still owed keeps the reminder: the others need not be read.
            for id in &ids {
                if self.is_bill_unpaid(*id)? == Some(true) {
                    return Ok(None);
                }
            }
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            gone.push(format!("bill(s) {} no longer owed", list.join(", ")));
        }
        if let Some(id) = reason.get("ticket").and_then(|t| t.as_i64()) {
            if self.is_callback_missing(id)? == Some(true) {
                return Ok(None);
            }
            gone.push(format!("ticket {id} needs no callback now"));
        }
        if let Some(id) = reason.get("survey_invitation").and_then(|t| t.as_i64()) {
            let unanswered: Option<bool> = self
                .conn
                .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM survey_responses r WHERE r.invitation_id = i.id)
                     FROM survey_invitations i WHERE i.community = ?1 AND i.id = ?2")?.query_row(params![self.community, id],
                    |r| r.get(0),
                )
                .optional()?;
            if unanswered == Some(true) {
                return Ok(None);
            }
            gone.push(format!("survey invitation {id} answered"));
        }
        if let Some(b) = reason.get("balance") {
            let household = b.get("household").and_then(|h| h.as_str()).unwrap_or("");
            let utility = b.get("utility").and_then(|u| u.as_str()).unwrap_or("");
            let low: Option<bool> = self
                .conn
                .prepare_cached(
                    "SELECT balance_fen < threshold_fen FROM utility_balances
                     WHERE community = ?1 AND household = ?2 AND utility = ?3",
                )?
                .query_row(params![self.community, household, utility], |r| r.get(0))
                .optional()?;
            if low == Some(true) {
                return Ok(None);
            }
            gone.push(format!("{utility} balance of {household} topped up"));
        }
        Ok(if gone.is_empty() {
            None
        } else {
            Some(gone.join("; "))
        })
    }

    /// Row counts per table, for import summaries and tests.
    pub fn counts(&self) -> rusqlite::Result<Vec<(&'static str, i64)>> {
        let mut out = Vec::new();
        for table in [
            "households",
            "owners",
            "bills",
            "payments",
            "utility_balances",
            "tickets",
            "callbacks",
        ] {
            let n: i64 = self
                .conn
                .prepare_cached(&format!(
                    "SELECT COUNT(*) FROM {table} WHERE community = ?1"
                ))?
                .query_row([self.community], |r| r.get(0))?;
            out.push((table, n));
        }
        Ok(out)
    }
}

/// A new or updated owner, as an import row or API call gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerInput {
    pub household: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: Language,
    pub preferred_contact: ContactChannel,
}

/// A bill as imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillInput {
    pub household: String,
    pub fee_type: FeeType,
    pub period: Period,
    pub amount_fen: i64,
    pub due_date: NaiveDate,
}

/// A payment as imported or posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentInput {
    pub reference: String,
    pub household: String,
    pub fee_type: FeeType,
    pub period: Period,
    pub amount_fen: i64,
    pub paid_at: DateTime<Utc>,
    pub method: String,
    /// Set when the payment was reversed (冲正).
    pub reversed_at: Option<DateTime<Utc>>,
    pub reversal_reason: Option<String>,
}

/// A ticket as imported or opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketInput {
    pub no: String,
    pub household: Option<String>,
    pub kind: TicketKind,
    pub summary: String,
    pub first_receiver: String,
    pub assignee: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// A callback as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackInput {
    pub done_at: DateTime<Utc>,
    pub done_by: String,
    pub satisfied: bool,
    pub score: u8,
    pub notes: String,
}

/// What recording a callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackOutcome {
    pub callback: Callback,
    /// The callback was bad and the ticket is open again.
    pub reopened: bool,
}

impl<'c> DomainWrite<'c> {
    /// Writes a domain event to the outbox in this transaction.
    pub fn emit(
        &self,
        kind: &str,
        payload: serde_json::Value,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<i64> {
        self.conn
            .prepare_cached(
                "INSERT INTO events (community, kind, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                self.community,
                kind,
                payload.to_string(),
                fmt_ts(now)
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn upsert_household(
        &self,
        building: &str,
        unit: &str,
        room: &str,
    ) -> rusqlite::Result<(String, Upsert)> {
        let id = Household::id_of(building, unit, room);
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO households (community, id, building, unit, room)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![self.community, id, building, unit, room])?;
        Ok((
            id,
            if n == 1 {
                Upsert::Inserted
            } else {
                Upsert::Unchanged
            },
        ))
    }

    /// Inserts or updates an owner keyed by household + name.
    pub fn upsert_owner(&self, o: &OwnerInput) -> rusqlite::Result<(i64, Upsert)> {
        let existing = self
            .conn
            .prepare_cached(&format!(
                "{OWNER_SELECT} WHERE community = ?1 AND household = ?2 AND name = ?3"
            ))?
            .query_row(params![self.community, o.household, o.name], owner_row)
            .optional()?;
        match existing {
            None => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO owners (community, household, name, phone, email, language,
                                         preferred_contact)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        self.community,
                        o.household,
                        o.name,
                        o.phone,
                        o.email,
                        o.language.as_str(),
                        o.preferred_contact.as_str()
                    ])?;
                Ok((self.conn.last_insert_rowid(), Upsert::Inserted))
            }
            Some(e)
                if e.phone == o.phone
                    && e.email == o.email
                    && e.language == o.language
                    && e.preferred_contact == o.preferred_contact =>
            {
                Ok((e.id, Upsert::Unchanged))
            }
            Some(e) => {
                self.conn
                    .prepare_cached(
                        "UPDATE owners SET phone = ?2, email = ?3, language = ?4,
                            preferred_contact = ?5 WHERE id = ?1",
                    )?
                    .execute(params![
                        e.id,
                        o.phone,
                        o.email,
                        o.language.as_str(),
                        o.preferred_contact.as_str()
                    ])?;
                Ok((e.id, Upsert::Updated))
            }
        }
    }

    /// Inserts or updates a bill keyed by household + fee type + period.
    pub fn upsert_bill(&self, b: &BillInput) -> rusqlite::Result<(i64, Upsert)> {
        match self.bill_by_key(&b.household, &b.fee_type, &b.period)? {
            None => {
                self.conn.prepare_cached("INSERT INTO bills (community, household, fee_type, period, amount_fen, due_date)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(params![
                        self.community,
                        b.household,
                        b.fee_type.as_str(),
                        b.period.as_str(),
                        b.amount_fen,
                        b.due_date.to_string()
                    ],
                )?;
                Ok((self.conn.last_insert_rowid(), Upsert::Inserted))
            }
            Some(e) if e.amount_fen == b.amount_fen && e.due_date == b.due_date => {
                Ok((e.id, Upsert::Unchanged))
            }
            Some(e) => {
                self.conn
                    .prepare_cached(
                        "UPDATE bills SET amount_fen = ?2, due_date = ?3 WHERE id = ?1",
                    )?
                    .execute(params![e.id, b.amount_fen, b.due_date.to_string()])?;
                Ok((e.id, Upsert::Updated))
            }
        }
    }

    /// Inserts or updates a payment keyed by its reference. The bill must exist; `Ok(None)`
    /// says it does not (the caller names the row).
    pub fn upsert_payment(&self, p: &PaymentInput) -> rusqlite::Result<Option<(i64, Upsert)>> {
        let Some(bill) = self.bill_by_key(&p.household, &p.fee_type, &p.period)? else {
            return Ok(None);
        };
        let existing = self.payment(&p.reference)?;
        let out = match existing {
            None => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO payments (community, reference, bill_id, amount_fen, paid_at,
                                           method, reversed_at, reversal_reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?
                    .execute(params![
                        self.community,
                        p.reference,
                        bill.id,
                        p.amount_fen,
                        fmt_ts(p.paid_at),
                        p.method,
                        p.reversed_at.map(fmt_ts),
                        p.reversal_reason
                    ])?;
                (self.conn.last_insert_rowid(), Upsert::Inserted)
            }
            Some(e)
                if e.bill_id == bill.id
                    && e.amount_fen == p.amount_fen
                    && e.paid_at == p.paid_at
                    && e.method == p.method
                    && e.reversed_at == p.reversed_at
                    && e.reversal_reason == p.reversal_reason =>
            {
                (e.id, Upsert::Unchanged)
            }
            Some(e) => {
                self.conn.prepare_cached("UPDATE payments SET bill_id = ?2, amount_fen = ?3, paid_at = ?4, method = ?5,
                            reversed_at = ?6, reversal_reason = ?7 WHERE id = ?1")?.execute(params![
                        e.id,
                        bill.id,
                        p.amount_fen,
                        fmt_ts(p.paid_at),
                        p.method,
                        p.reversed_at.map(fmt_ts),
                        p.reversal_reason
                    ],
                )?;
                (e.id, Upsert::Updated)
            }
        };
        Ok(Some(out))
    }

    /// Inserts or updates a prepaid balance keyed by household + utility.
    pub fn upsert_balance(
        &self,
        household: &str,
        utility: Utility,
        balance_fen: i64,
        threshold_fen: i64,
        as_of: DateTime<Utc>,
    ) -> rusqlite::Result<Upsert> {
        let existing: Option<(i64, i64, String)> = self
            .conn
            .prepare_cached(
                "SELECT balance_fen, threshold_fen, as_of FROM utility_balances
                 WHERE community = ?1 AND household = ?2 AND utility = ?3",
            )?
            .query_row(params![self.community, household, utility.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let new = (balance_fen, threshold_fen, fmt_ts(as_of));
        if existing.as_ref() == Some(&new) {
            return Ok(Upsert::Unchanged);
        }
        self.conn
            .prepare_cached(
                "INSERT INTO utility_balances (community, household, utility, balance_fen,
                                           threshold_fen, as_of)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (community, household, utility) DO UPDATE SET
               balance_fen = excluded.balance_fen, threshold_fen = excluded.threshold_fen,
               as_of = excluded.as_of",
            )?
            .execute(params![
                self.community,
                household,
                utility.as_str(),
                new.0,
                new.1,
                new.2
            ])?;
        Ok(if existing.is_some() {
            Upsert::Updated
        } else {
            Upsert::Inserted
        })
    }

    /// Inserts or updates a ticket keyed by its number (import: the file is the truth, no
    /// events are emitted for history).
    pub fn upsert_ticket(&self, t: &TicketInput) -> rusqlite::Result<(i64, Upsert)> {
        match self.ticket_by_no(&t.no)? {
            None => Ok((self.insert_ticket(t)?, Upsert::Inserted)),
            Some(e)
                if e.household == t.household
                    && e.kind == t.kind
                    && e.summary == t.summary
                    && e.first_receiver == t.first_receiver
                    && e.assignee == t.assignee
                    && e.opened_at == t.opened_at
                    && e.assigned_at == t.assigned_at
                    && e.closed_at == t.closed_at =>
            {
                Ok((e.id, Upsert::Unchanged))
            }
            Some(e) => {
                self.conn
                    .prepare_cached(
                        "UPDATE tickets SET household = ?2, kind = ?3, summary = ?4,
                            first_receiver = ?5, assignee = ?6, opened_at = ?7, assigned_at = ?8,
                            closed_at = ?9
                     WHERE id = ?1",
                    )?
                    .execute(params![
                        e.id,
                        t.household,
                        t.kind.as_str(),
                        t.summary,
                        t.first_receiver,
                        t.assignee,
                        fmt_ts(t.opened_at),
                        t.assigned_at.map(fmt_ts),
                        t.closed_at.map(fmt_ts)
                    ])?;
                Ok((e.id, Upsert::Updated))
            }
        }
    }

    fn insert_ticket(&self, t: &TicketInput) -> rusqlite::Result<i64> {
        self.conn
            .prepare_cached(
                "INSERT INTO tickets (community, no, household, kind, summary, first_receiver,
                                  assignee, opened_at, assigned_at, closed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                self.community,
                t.no,
                t.household,
                t.kind.as_str(),
                t.summary,
                t.first_receiver,
                t.assignee,
                fmt_ts(t.opened_at),
                t.assigned_at.map(fmt_ts),
                t.closed_at.map(fmt_ts)
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Inserts or updates a historical callback keyed by ticket + time (import).
    pub fn upsert_callback(&self, ticket_id: i64, c: &CallbackInput) -> rusqlite::Result<Upsert> {
        let existing: Option<(String, bool, u8, String)> = self
            .conn
            .prepare_cached(
                "SELECT done_by, satisfied, score, notes FROM callbacks
                 WHERE ticket_id = ?1 AND done_at = ?2",
            )?
            .query_row(params![ticket_id, fmt_ts(c.done_at)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let new = (c.done_by.clone(), c.satisfied, c.score, c.notes.clone());
        if existing.as_ref() == Some(&new) {
            return Ok(Upsert::Unchanged);
        }
        self.conn.prepare_cached("INSERT INTO callbacks (community, ticket_id, done_at, done_by, satisfied, score, notes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (ticket_id, done_at) DO UPDATE SET done_by = excluded.done_by,
               satisfied = excluded.satisfied, score = excluded.score, notes = excluded.notes")?.execute(params![
                self.community,
                ticket_id,
                fmt_ts(c.done_at),
                c.done_by,
                c.satisfied,
                c.score,
                c.notes
            ],
        )?;
        Ok(if existing.is_some() {
            Upsert::Updated
        } else {
            Upsert::Inserted
        })
    }

    // ----- live changes (HTTP API), each emitting its domain event -----

    /// Opens a new ticket. Repeating the exact same request returns the stored ticket (a
    /// retried POST is harmless); reusing the number for something else is a conflict.
    pub fn open_ticket(&self, t: &TicketInput, now: DateTime<Utc>) -> Result<Ticket, DomainError> {
        self.check_household(t.household.as_deref())?;
        if let Some(e) = self.ticket_by_no(&t.no)? {
            if e.household == t.household
                && e.kind == t.kind
                && e.summary == t.summary
                && e.opened_at == t.opened_at
            {
                return Ok(e);
            }
            return Err(DomainError::Conflict {
                field: Some("no"),
                message: format!("ticket {} already exists with other data", t.no),
            });
        }
        let id = self.insert_ticket(t)?;
        self.emit(
            event_kind::TICKET_OPENED,
            serde_json::json!({"ticket_id": id, "no": t.no, "kind": t.kind.as_str()}),
            now,
        )?;
        Ok(self.ticket(id)?.expect("just inserted"))
    }

    /// Closes an open ticket at `closed_at`; emits `ticket.closed`, which starts the callback
    /// clock. Closing a closed ticket again is a conflict.
    pub fn close_ticket(
        &self,
        no: &str,
        closed_at: DateTime<Utc>,
        assignee: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Ticket, DomainError> {
        let t = self.ticket_by_no(no)?.ok_or(DomainError::NotFound {
            what: "ticket",
            key: no.into(),
        })?;
        if t.closed_at.is_some() {
            return Err(DomainError::Conflict {
                field: None,
                message: format!("ticket {no} is already closed"),
            });
        }
        if closed_at < t.opened_at {
            return Err(DomainError::Invalid {
                field: "closed_at",
                message: "is before the ticket was opened".into(),
            });
        }
        self.conn
            .prepare_cached(
                "UPDATE tickets SET closed_at = ?2, assignee = COALESCE(?3, assignee),
                    assigned_at = CASE WHEN ?3 IS NOT NULL AND assigned_at IS NULL
                                       THEN ?2 ELSE assigned_at END
             WHERE id = ?1",
            )?
            .execute(params![t.id, fmt_ts(closed_at), assignee])?;
        let t = self.ticket(t.id)?.expect("exists");
        self.emit(
            event_kind::TICKET_CLOSED,
            serde_json::json!({
                "ticket_id": t.id, "no": t.no, "kind": t.kind.as_str(),
                "closed_at": fmt_ts(closed_at), "assignee": t.assignee,
                "first_receiver": t.first_receiver,
            }),
            now,
        )?;
        Ok(t)
    }

    /// Records the callback for a closed ticket. A bad one (not satisfied, or score ≤ 2)
    /// reopens the ticket (`closed_at` cleared, `reopened` counted) and emits `ticket.reopened`.
    pub fn record_callback(
        &self,
        no: &str,
        c: &CallbackInput,
        now: DateTime<Utc>,
    ) -> Result<CallbackOutcome, DomainError> {
        if !(1..=5).contains(&c.score) {
            return Err(DomainError::Invalid {
                field: "score",
                message: "must be an integer from 1 to 5".into(),
            });
        }
        let t = self.ticket_by_no(no)?.ok_or(DomainError::NotFound {
            what: "ticket",
            key: no.into(),
        })?;
        let Some(closed_at) = t.closed_at else {
            return Err(DomainError::Conflict {
                field: None,
                message: format!("ticket {no} is open: a callback follows a closing"),
            });
        };
        if c.done_at < closed_at {
            return Err(DomainError::Invalid {
                field: "done_at",
                message: "is before the ticket was closed".into(),
            });
        }
        if self.is_callback_missing(t.id)? == Some(false) {
            return Err(DomainError::Conflict {
                field: None,
                message: format!("ticket {no} already has its callback"),
            });
        }
        self.conn.prepare_cached("INSERT INTO callbacks (community, ticket_id, done_at, done_by, satisfied, score, notes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(params![
                self.community,
                t.id,
                fmt_ts(c.done_at),
                c.done_by,
                c.satisfied,
                c.score,
                c.notes
            ],
        )?;
        let cb_id = self.conn.last_insert_rowid();
        let reopened = Callback::is_bad(c.satisfied, c.score);
        self.emit(
            event_kind::CALLBACK_RECORDED,
            serde_json::json!({
                "ticket_id": t.id, "no": t.no, "satisfied": c.satisfied, "score": c.score,
            }),
            now,
        )?;
        if reopened {
            self.conn
                .prepare_cached(
                    "UPDATE tickets SET closed_at = NULL, reopened = reopened + 1 WHERE id = ?1",
                )?
                .execute([t.id])?;
            self.emit(
                event_kind::TICKET_REOPENED,
                serde_json::json!({
                    "ticket_id": t.id, "no": t.no, "first_receiver": t.first_receiver,
                }),
                now,
            )?;
        }
        Ok(CallbackOutcome {
            callback: Callback {
                id: cb_id,
                community: self.community.to_string(),
                ticket_id: t.id,
                done_at: c.done_at,
                done_by: c.done_by.clone(),
                satisfied: c.satisfied,
                score: c.score,
                notes: c.notes.clone(),
            },
            reopened,
        })
    }

    /// The rule a payment's amount must pass, for the API's payments and imported ones alike: it
    /// may not exceed what is still owed on its bill (an overpayment is a typo in the amount or
    /// the wrong bill). `replacing` is the stored payment an imported row updates, whose amount
    /// is owed again while the row replaces it. A reversed payment settles nothing and passes.
    /// The message (`Err` inside) says what is owed; the caller names the field.
    pub fn check_payment_amount(
        &self,
        bill_id: i64,
        p: &PaymentInput,
        replacing: Option<&Payment>,
    ) -> rusqlite::Result<Result<(), String>> {
        if p.reversed_at.is_some() {
            return Ok(Ok(()));
        }
        let owed: i64 = self
            .conn
            .prepare_cached("SELECT max(amount_fen - paid_fen, 0) FROM bills WHERE id = ?1")?
            .query_row([bill_id], |r| r.get(0))?;
        let owed = owed
            + replacing
                .filter(|e| e.bill_id == bill_id && e.reversed_at.is_none())
                .map_or(0, |e| e.amount_fen);
        Ok(if p.amount_fen > owed {
            Err(format!("exceeds the {owed} fen still owed on this bill"))
        } else {
            Ok(())
        })
    }

    /// Posts a payment against the bill named by household + fee type + period; emits
    /// `payment.posted`. The same reference posted again with the same data is a harmless
    /// retry; with other data it is a conflict. Overpaying a bill is refused.
    pub fn post_payment(
        &self,
        p: &PaymentInput,
        now: DateTime<Utc>,
    ) -> Result<(Payment, bool), DomainError> {
        let bill = self
            .bill_by_key(&p.household, &p.fee_type, &p.period)?
            .ok_or(DomainError::NotFound {
                what: "bill",
                key: format!("{} {} {}", p.household, p.fee_type, p.period),
            })?;
        if let Some(e) = self.payment(&p.reference)? {
            if e.bill_id == bill.id && e.amount_fen == p.amount_fen && e.paid_at == p.paid_at {
                return Ok((e, false));
            }
            return Err(DomainError::Conflict {
                field: Some("reference"),
                message: format!("payment {} already exists with other data", p.reference),
            });
        }
        self.check_payment_amount(bill.id, p, None)?
            .map_err(|message| DomainError::Invalid {
                field: "amount_fen",
                message,
            })?;
        self.conn
            .prepare_cached(
                "INSERT INTO payments (community, reference, bill_id, amount_fen, paid_at, method)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                self.community,
                p.reference,
                bill.id,
                p.amount_fen,
                fmt_ts(p.paid_at),
                p.method
            ])?;
        let pay = self.payment(&p.reference)?.expect("just inserted");
        let still_unpaid = self.is_bill_unpaid(bill.id)?.unwrap_or(false);
        self.emit(
            event_kind::PAYMENT_POSTED,
            serde_json::json!({
                "payment_id": pay.id, "reference": pay.reference, "bill_id": bill.id,
                "household": bill.household, "amount_fen": pay.amount_fen,
                "bill_settled": !still_unpaid,
            }),
            now,
        )?;
        Ok((pay, true))
    }

    /// Reverses (冲正) a payment; the bill is owed again and `payment.reversed` is emitted, so
    /// reminders restart.
    pub fn reverse_payment(
        &self,
        reference: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Payment, DomainError> {
        let p = self.payment(reference)?.ok_or(DomainError::NotFound {
            what: "payment",
            key: reference.into(),
        })?;
        if p.reversed_at.is_some() {
            return Err(DomainError::Conflict {
                field: None,
                message: format!("payment {reference} is already reversed"),
            });
        }
        self.conn
            .prepare_cached(
                "UPDATE payments SET reversed_at = ?2, reversal_reason = ?3 WHERE id = ?1",
            )?
            .execute(params![p.id, fmt_ts(now), reason])?;
        let bill = self.bill(p.bill_id)?.expect("payment has a bill");
        self.emit(
            event_kind::PAYMENT_REVERSED,
            serde_json::json!({
                "payment_id": p.id, "reference": p.reference, "bill_id": p.bill_id,
                "household": bill.household, "amount_fen": p.amount_fen,
            }),
            now,
        )?;
        Ok(self.payment(reference)?.expect("exists"))
    }

    /// Creates (or finds) the campaign `key`; invitations are added with [`Self::invite`].
    pub fn upsert_campaign(
        &self,
        key: &str,
        opens_at: DateTime<Utc>,
        closes_at: DateTime<Utc>,
    ) -> rusqlite::Result<SurveyCampaign> {
        self.conn
            .prepare_cached(
                "INSERT INTO survey_campaigns (community, key, opens_at, closes_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (community, key) DO UPDATE SET opens_at = excluded.opens_at,
               closes_at = excluded.closes_at",
            )?
            .execute(params![
                self.community,
                key,
                fmt_ts(opens_at),
                fmt_ts(closes_at)
            ])?;
        Ok(self.campaign(key)?.expect("just upserted"))
    }

    /// Invites each household once to the campaign with a fresh random token; households
    /// already invited keep their token. Returns every invitation of the campaign.
    pub fn invite(
        &self,
        campaign_id: i64,
        households: &[String],
        now: DateTime<Utc>,
    ) -> rusqlite::Result<Vec<SurveyInvitation>> {
        let mut st = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO survey_invitations
               (community, campaign_id, household, token, invited_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for h in households {
            st.execute(params![
                self.community,
                campaign_id,
                h,
                new_survey_token(),
                fmt_ts(now)
            ])?;
        }
        self.invitations(campaign_id)
    }

    /// One household's line of an imported survey (paper forms, another system): invited at
    /// `invited_at`, and its answer if it gave one. Upserted on campaign + household: an
    /// invitation keeps its token, an answer is replaced by the file's. An answer already
    /// recorded that the file does not have stays (an owner's answer is never deleted by a
    /// file).
    pub fn upsert_survey_line(
        &self,
        campaign_id: i64,
        household: &str,
        invited_at: DateTime<Utc>,
        answer: Option<(DateTime<Utc>, &SurveyScores, &str)>,
    ) -> rusqlite::Result<Upsert> {
        let invited = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO survey_invitations
                   (community, campaign_id, household, token, invited_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                self.community,
                campaign_id,
                household,
                new_survey_token(),
                fmt_ts(invited_at)
            ])?;
        let invitation: i64 = self
            .conn
            .prepare_cached(
                "SELECT id FROM survey_invitations WHERE campaign_id = ?1 AND household = ?2",
            )?
            .query_row(params![campaign_id, household], |r| r.get(0))?;
        let Some((answered_at, scores, comment)) = answer else {
            return Ok(if invited > 0 {
                Upsert::Inserted
            } else {
                Upsert::Unchanged
            });
        };
        let values = params![
            invitation,
            self.community,
            fmt_ts(answered_at),
            scores.reception,
            scores.repairs,
            scores.cleaning,
            scores.security,
            scores.greenery,
            comment
        ];
        let answered = self
            .conn
            .prepare_cached(
                "INSERT INTO survey_responses
                   (invitation_id, community, answered_at, reception, repairs, cleaning,
                    security, greenery, comment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (invitation_id) DO UPDATE SET answered_at = excluded.answered_at,
                   reception = excluded.reception, repairs = excluded.repairs,
                   cleaning = excluded.cleaning, security = excluded.security,
                   greenery = excluded.greenery, comment = excluded.comment
                 WHERE (answered_at, reception, repairs, cleaning, security, greenery, comment)
                   IS NOT (excluded.answered_at, excluded.reception, excluded.repairs,
                           excluded.cleaning, excluded.security, excluded.greenery,
                           excluded.comment)",
            )?
            .execute(values)?;
        Ok(match (invited, answered) {
            (0, 0) => Upsert::Unchanged,
            (0, _) => Upsert::Updated,
            _ => Upsert::Inserted,
        })
    }

    /// Plans (or re-plans) the community event `key`; `starts_at` when the time is known.
    pub fn upsert_event(
        &self,
        key: &str,
        title: &str,
        planned_for: NaiveDate,
        starts_at: Option<DateTime<Utc>>,
        location: &str,
    ) -> rusqlite::Result<Event> {
        self.conn.prepare_cached("INSERT INTO community_events (community, key, title, planned_for, location, starts_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (community, key) DO UPDATE SET title = excluded.title,
               planned_for = excluded.planned_for, location = excluded.location,
               starts_at = excluded.starts_at")?.execute(params![
                self.community,
                key,
                title,
                planned_for.to_string(),
                location,
                starts_at.map(fmt_ts)
            ],
        )?;
        Ok(self.event(key)?.expect("just upserted"))
    }

    /// The household's RSVP link to event `event_id`, made on first use: an announcement redone
    /// after a crash, or sent again for a moved event, carries the same link.
    pub fn rsvp_invitation(
        &self,
        event_id: i64,
        household: &str,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<RsvpInvitation> {
        self.conn.prepare_cached("INSERT OR IGNORE INTO rsvp_invitations (community, event_id, household, token, invited_at)
             VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![
                self.community,
                event_id,
                household,
                new_survey_token(),
                fmt_ts(now)
            ],
        )?;
        self.conn
            .prepare_cached(
                "SELECT id, community, event_id, household, token, invited_at FROM rsvp_invitations
             WHERE community = ?1 AND event_id = ?2 AND household = ?3",
            )?
            .query_row(
                params![self.community, event_id, household],
                rsvp_invitation_row,
            )
    }

    /// Records that a workflow told `role` about ticket `ticket_id`; a repeated `step` is ignored.
    pub fn record_ticket_notice(
        &self,
        ticket_id: i64,
        role: &str,
        template: &str,
        step: &str,
        at: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        self.conn.prepare_cached("INSERT OR IGNORE INTO ticket_notices (community, ticket_id, role, template, step, notified_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(params![self.community, ticket_id, role, template, step, fmt_ts(at)],
        )?;
        Ok(())
    }

    pub fn mark_event_announced(&self, event_id: i64, at: DateTime<Utc>) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE community_events SET announced_at = COALESCE(announced_at, ?3)
             WHERE community = ?1 AND id = ?2",
            )?
            .execute(params![self.community, event_id, fmt_ts(at)])?;
        Ok(())
    }

    pub fn record_event_summary(
        &self,
        event_id: i64,
        summary: &str,
        at: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE community_events SET summary = ?3, summary_at = ?4
             WHERE community = ?1 AND id = ?2",
            )?
            .execute(params![self.community, event_id, summary, fmt_ts(at)])?;
        Ok(())
    }

    pub fn record_rsvp(
        &self,
        event_id: i64,
        household: &str,
        attendees: u32,
        at: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO rsvps (event_id, community, household, attendees, responded_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (event_id, household) DO UPDATE SET attendees = excluded.attendees,
               responded_at = excluded.responded_at",
            )?
            .execute(params![
                event_id,
                self.community,
                household,
                attendees,
                fmt_ts(at)
            ])?;
        Ok(())
    }

    fn check_household(&self, household: Option<&str>) -> Result<(), DomainError> {
        if let Some(h) = household
            && self.household(h)?.is_none()
        {
            return Err(DomainError::NotFound {
                what: "household",
                key: h.into(),
            });
        }
        Ok(())
    }
}

// ----- row mapping -----

/// `["a","b"]`: a list of ids bound as one parameter, read back with `json_each`.
fn json_list<T: serde::Serialize>(ids: &[T]) -> rusqlite::Result<String> {
    serde_json::to_string(ids).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Among a household's owners (by id), the one its messages go to: the first whose preferred
/// channel has an address, else the first with any address.
fn primary_contact(owners: &[Owner]) -> Option<&Owner> {
    let usable = |o: &&Owner| match o.preferred_contact {
        ContactChannel::Email => o.email.is_some(),
        ContactChannel::Sms => o.phone.is_some(),
    };
    owners.iter().find(usable).or_else(|| {
        owners
            .iter()
            .find(|o| o.email.is_some() || o.phone.is_some())
    })
}

const OWNER_SELECT: &str = "SELECT id, community, household, name, phone, email, language, \
                            preferred_contact FROM owners";
const BILL_SELECT: &str =
    "SELECT id, community, household, fee_type, period, amount_fen, due_date FROM bills";
// `paid_fen` is kept by triggers (migration 0002). Every query using this must say
// `b.paid_fen < b.amount_fen` (the partial index's condition); the index is named because
// SQLite otherwise prefers `bills_by_due` for a due-date filter and reads every bill ever
// issued (measured: 1.15 s instead of 0.25 s for 100,000 households).
const UNPAID_SELECT: &str = "SELECT b.id, b.community, b.household, b.fee_type, b.period, \
     b.amount_fen, b.due_date, b.paid_fen FROM bills b INDEXED BY bills_unpaid";
const PAYMENT_SELECT: &str = "SELECT id, community, reference, bill_id, amount_fen, paid_at, \
                              method, reversed_at, reversal_reason FROM payments";
const BALANCE_SELECT: &str = "SELECT community, household, utility, balance_fen, threshold_fen, \
                              as_of FROM utility_balances";
const TICKET_SELECT: &str = "SELECT id, community, no, household, kind, summary, \
     first_receiver, assignee, opened_at, assigned_at, closed_at, reopened FROM tickets";

fn bad_value(idx: usize, what: &str, got: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        rusqlite::types::Type::Text,
        format!("stored {what} {got:?} is not valid").into(),
    )
}

fn ts(r: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let s: String = r.get(idx)?;
    parse_ts(&s).ok_or_else(|| bad_value(idx, "instant", &s))
}

fn opt_ts(r: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let s: Option<String> = r.get(idx)?;
    s.map(|s| parse_ts(&s).ok_or_else(|| bad_value(idx, "instant", &s)))
        .transpose()
}

fn date(r: &Row<'_>, idx: usize) -> rusqlite::Result<NaiveDate> {
    let s: String = r.get(idx)?;
    s.parse().map_err(|_| bad_value(idx, "date", &s))
}

fn parsed<T: std::str::FromStr>(r: &Row<'_>, idx: usize, what: &str) -> rusqlite::Result<T> {
    let s: String = r.get(idx)?;
    s.parse().map_err(|_| bad_value(idx, what, &s))
}

fn household_row(r: &Row<'_>) -> rusqlite::Result<Household> {
    Ok(Household {
        community: r.get(0)?,
        id: r.get(1)?,
        building: r.get(2)?,
        unit: r.get(3)?,
        room: r.get(4)?,
    })
}

fn owner_row(r: &Row<'_>) -> rusqlite::Result<Owner> {
    Ok(Owner {
        id: r.get(0)?,
        community: r.get(1)?,
        household: r.get(2)?,
        name: r.get(3)?,
        phone: r.get(4)?,
        email: r.get(5)?,
        language: parsed(r, 6, "language")?,
        preferred_contact: parsed(r, 7, "contact channel")?,
    })
}

fn bill_row(r: &Row<'_>) -> rusqlite::Result<Bill> {
    Ok(Bill {
        id: r.get(0)?,
        community: r.get(1)?,
        household: r.get(2)?,
        fee_type: parsed(r, 3, "fee type")?,
        period: parsed(r, 4, "period")?,
        amount_fen: r.get(5)?,
        due_date: date(r, 6)?,
    })
}

fn unpaid_row(r: &Row<'_>) -> rusqlite::Result<UnpaidBill> {
    let bill = bill_row(r)?;
    let paid_fen: i64 = r.get(7)?;
    Ok(UnpaidBill {
        outstanding_fen: (bill.amount_fen - paid_fen).max(0),
        paid_fen,
        bill,
    })
}

fn payment_row(r: &Row<'_>) -> rusqlite::Result<Payment> {
    Ok(Payment {
        id: r.get(0)?,
        community: r.get(1)?,
        reference: r.get(2)?,
        bill_id: r.get(3)?,
        amount_fen: r.get(4)?,
        paid_at: ts(r, 5)?,
        method: r.get(6)?,
        reversed_at: opt_ts(r, 7)?,
        reversal_reason: r.get(8)?,
    })
}

fn balance_row(r: &Row<'_>) -> rusqlite::Result<UtilityBalance> {
    Ok(UtilityBalance {
        community: r.get(0)?,
        household: r.get(1)?,
        utility: parsed(r, 2, "utility")?,
        balance_fen: r.get(3)?,
        threshold_fen: r.get(4)?,
        as_of: ts(r, 5)?,
    })
}

fn ticket_row(r: &Row<'_>) -> rusqlite::Result<Ticket> {
    Ok(Ticket {
        id: r.get(0)?,
        community: r.get(1)?,
        no: r.get(2)?,
        household: r.get(3)?,
        kind: parsed(r, 4, "ticket kind")?,
        summary: r.get(5)?,
        first_receiver: r.get(6)?,
        assignee: r.get(7)?,
        opened_at: ts(r, 8)?,
        assigned_at: opt_ts(r, 9)?,
        closed_at: opt_ts(r, 10)?,
        reopened: r.get(11)?,
    })
}

fn callback_row(r: &Row<'_>) -> rusqlite::Result<Callback> {
    Ok(Callback {
        id: r.get(0)?,
        community: r.get(1)?,
        ticket_id: r.get(2)?,
        done_at: ts(r, 3)?,
        done_by: r.get(4)?,
        satisfied: r.get(5)?,
        score: r.get(6)?,
        notes: r.get(7)?,
    })
}

const EVENT_SELECT: &str = "SELECT id, community, key, title, planned_for, location, \
     announced_at, summary, summary_at, starts_at FROM community_events";

fn event_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        id: r.get(0)?,
        community: r.get(1)?,
        key: r.get(2)?,
        title: r.get(3)?,
        planned_for: date(r, 4)?,
        location: r.get(5)?,
        announced_at: opt_ts(r, 6)?,
        summary: r.get(7)?,
        summary_at: opt_ts(r, 8)?,
        starts_at: opt_ts(r, 9)?,
    })
}

fn rsvp_invitation_row(r: &Row<'_>) -> rusqlite::Result<RsvpInvitation> {
    Ok(RsvpInvitation {
        id: r.get(0)?,
        community: r.get(1)?,
        event_id: r.get(2)?,
        household: r.get(3)?,
        token: r.get(4)?,
        invited_at: ts(r, 5)?,
    })
}

fn campaign_row(r: &Row<'_>) -> rusqlite::Result<SurveyCampaign> {
    Ok(SurveyCampaign {
        id: r.get(0)?,
        community: r.get(1)?,
        key: r.get(2)?,
        opens_at: ts(r, 3)?,
        closes_at: ts(r, 4)?,
    })
}

fn invitation_row(r: &Row<'_>) -> rusqlite::Result<SurveyInvitation> {
    Ok(SurveyInvitation {
        id: r.get(0)?,
        community: r.get(1)?,
        campaign_id: r.get(2)?,
        household: r.get(3)?,
        token: r.get(4)?,
        invited_at: ts(r, 5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).unwrap()
    }

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        apply_schema(&conn).unwrap();
        apply_schema(&conn).unwrap(); // idempotent
        conn
    }

    fn seed(conn: &mut Connection, community: &str) {
        with_tx(conn, |tx| -> rusqlite::Result<()> {
            let d = tx.domain(community);
            d.upsert_household("1", "1", "101")?;
            d.upsert_household("1", "1", "102")?;
            d.upsert_owner(&OwnerInput {
                household: "1-1-101".into(),
                name: "张伟".into(),
                phone: Some("13800000001".into()),
                email: None,
                language: Language::ZhCn,
                preferred_contact: ContactChannel::Sms,
            })?;
            for (h, period) in [
                ("1-1-101", "2026-01"),
                ("1-1-101", "2026-02"),
                ("1-1-102", "2026-01"),
            ] {
                d.upsert_bill(&BillInput {
                    household: h.into(),
                    fee_type: FeeType::Property,
                    period: period.parse().unwrap(),
                    amount_fen: 32_000,
                    due_date: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
                })?;
            }
            Ok(())
        })
        .unwrap();
    }

    fn pay(reference: &str, household: &str) -> PaymentInput {
        PaymentInput {
            reference: reference.into(),
            household: household.into(),
            fee_type: FeeType::Property,
            period: "2026-01".parse().unwrap(),
            amount_fen: 32_000,
            paid_at: t(9),
            method: "wechat".into(),
            reversed_at: None,
            reversal_reason: None,
        }
    }

    #[test]
    fn reads_never_see_another_community() {
        let mut conn = db();
        seed(&mut conn, "shuipan");
        seed(&mut conn, "shijixinzhu");
        let r = DomainRead::new(&conn, "shuipan");
        assert_eq!(r.households().unwrap().len(), 2);
        assert!(
            r.unpaid_bills()
                .unwrap()
                .iter()
                .all(|b| b.bill.community == "shuipan")
        );
        // A bill id from the neighbour is "not found" here, not "paid" or "unpaid".
        let theirs = DomainRead::new(&conn, "shijixinzhu")
            .unpaid_bills()
            .unwrap()[0]
            .bill
            .id;
        assert_eq!(r.is_bill_unpaid(theirs).unwrap(), None);
    }

    #[test]
    fn a_payment_settles_a_bill_and_its_reversal_reopens_it() {
        let mut conn = db();
        seed(&mut conn, "shuipan");
        let r = DomainRead::new(&conn, "shuipan");
        let by_house = r.unpaid_by_household().unwrap();
        assert_eq!(by_house.len(), 2);
        assert_eq!(by_house[0].1.len(), 2, "1-1-101 owes January and February");
        let bill = by_house[0].1[0].bill.id;
        with_tx(&mut conn, |tx| {
            tx.domain("shuipan")
                .post_payment(&pay("R1", "1-1-101"), t(9))
        })
        .unwrap();
        let r = DomainRead::new(&conn, "shuipan");
        assert_eq!(r.is_bill_unpaid(bill).unwrap(), Some(false));
        assert_eq!(r.unpaid_bills_of("1-1-101").unwrap().len(), 1);
        // A retried POST is harmless; overpaying is not.
        let (_, new) = with_tx(&mut conn, |tx| {
            tx.domain("shuipan")
                .post_payment(&pay("R1", "1-1-101"), t(10))
        })
        .unwrap();
        assert!(!new);
        let err = with_tx(&mut conn, |tx| {
            tx.domain("shuipan")
                .post_payment(&pay("R2", "1-1-101"), t(10))
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                DomainError::Invalid {
                    field: "amount_fen",
                    ..
                }
            ),
            "{err}"
        );
        with_tx(&mut conn, |tx| {
            tx.domain("shuipan").reverse_payment("R1", "bounced", t(11))
        })
        .unwrap();
        let r = DomainRead::new(&conn, "shuipan");
        assert_eq!(r.is_bill_unpaid(bill).unwrap(), Some(true));
        let kinds: Vec<String> = pending_events(&conn, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["payment.posted", "payment.reversed"]);
    }

    #[test]
    fn paid_amounts_follow_payments_moved_between_bills() {
        let mut conn = db();
        seed(&mut conn, "shuipan");
        let p = pay("R1", "1-1-101");
        with_tx(&mut conn, |tx| tx.domain("shuipan").upsert_payment(&p)).unwrap();
        let r = DomainRead::new(&conn, "shuipan");
        let periods = |r: &DomainRead<'_>| -> Vec<String> {
            r.unpaid_bills_of("1-1-101")
                .unwrap()
                .into_iter()
                .map(|b| b.bill.period.to_string())
                .collect()
        };
        assert_eq!(periods(&r), ["2026-02"]);
        // The billing system corrects the period: the money moves to February.
        let moved = PaymentInput {
            period: "2026-02".parse().unwrap(),
            ..p.clone()
        };
        let out = with_tx(&mut conn, |tx| tx.domain("shuipan").upsert_payment(&moved)).unwrap();
        assert_eq!(out.map(|o| o.1), Some(Upsert::Updated));
        let r = DomainRead::new(&conn, "shuipan");
        assert_eq!(periods(&r), ["2026-01"]);
        // A partial payment leaves the rest owed.
        let half = PaymentInput {
            reference: "R2".into(),
            amount_fen: 12_000,
            ..p
        };
        with_tx(&mut conn, |tx| tx.domain("shuipan").upsert_payment(&half)).unwrap();
        let r = DomainRead::new(&conn, "shuipan");
        let jan = &r.unpaid_bills_of("1-1-101").unwrap()[0];
        assert_eq!((jan.paid_fen, jan.outstanding_fen), (12_000, 20_000));
    }

    #[test]
    fn reasons_go_away_when_bills_are_paid_and_callbacks_done() {
        let mut conn = db();
        seed(&mut conn, "shuipan");
        let r = DomainRead::new(&conn, "shuipan");
        let jan = r.unpaid_bills_of("1-1-101").unwrap()[0].bill.id;
        let reason = serde_json::json!({ "bills": [jan] });
        assert_eq!(r.reason_gone(&reason).unwrap(), None);
        assert_eq!(
            r.household_primary_contact("1-1-101")
                .unwrap()
                .map(|o| o.name),
            Some("张伟".to_string())
        );
        assert_eq!(
            r.household_primary_contact("1-1-102").unwrap(),
            None,
            "nobody to reach"
        );
        with_tx(&mut conn, |tx| {
            tx.domain("shuipan")
                .post_payment(&pay("R1", "1-1-101"), t(9))
        })
        .unwrap();
        let r = DomainRead::new(&conn, "shuipan");
        assert_eq!(
            r.reason_gone(&reason).unwrap().as_deref(),
            Some(format!("bill(s) {jan} no longer owed").as_str())
        );
        // Another community's bill id is "gone" here, never "owed".
        let theirs = serde_json::json!({ "bills": [jan] });
        assert!(
            DomainRead::new(&conn, "shijixinzhu")
                .reason_gone(&theirs)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            r.reason_gone(&serde_json::json!({"unknown": 1})).unwrap(),
            None
        );
    }

    #[test]
    fn events_are_planned_announced_rsvped_and_summarised() {
        let mut conn = db();
        seed(&mut conn, "shuipan");
        let day = NaiveDate::from_ymd_opt(2026, 6, 20).unwrap();
        with_tx(&mut conn, |tx| -> rusqlite::Result<()> {
            let d = tx.domain("shuipan");
            let e = d.upsert_event("2026H1", "端午包粽子", day, None, "会所")?;
            d.mark_event_announced(e.id, t(1))?;
            d.mark_event_announced(e.id, t(5))?; // the first announcement stands
            d.record_rsvp(e.id, "1-1-101", 3, t(2))?;
            d.record_rsvp(e.id, "1-1-101", 2, t(3))?; // changed their mind
            d.record_event_summary(e.id, "到场 40 人", t(6))?;
            Ok(())
        })
        .unwrap();
        let r = DomainRead::new(&conn, "shuipan");
        let e = r.event("2026H1").unwrap().unwrap();
        assert_eq!(
            (e.announced_at, e.summary.as_deref()),
            (Some(t(1)), Some("到场 40 人"))
        );
        assert_eq!(r.events().unwrap().len(), 1);
        let rsvps = r.rsvps(e.id).unwrap();
        assert_eq!((rsvps.len(), rsvps[0].attendees), (1, 2));
        assert!(
            DomainRead::new(&conn, "shijixinzhu")
                .events()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_bad_callback_reopens_the_ticket_and_a_good_one_ends_the_wait() {
        let mut conn = db();
        seed(&mut conn, "shuipan");
        let input = TicketInput {
            no: "T1".into(),
            household: Some("1-1-101".into()),
            kind: TicketKind::Repair,
            summary: "水管漏水".into(),
            first_receiver: "kefu-1".into(),
            assignee: None,
            opened_at: t(8),
            assigned_at: None,
            closed_at: None,
        };
        let id = with_tx(&mut conn, |tx| {
            let d = tx.domain("shuipan");
            let tk = d.open_ticket(&input, t(8))?;
            d.close_ticket("T1", t(12), Some("weixiu-2"), t(12))?;
            Ok::<_, DomainError>(tk.id)
        })
        .unwrap();
        let r = DomainRead::new(&conn, "shuipan");
        let waiting = r.tickets_closed_without_callback().unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].assignee.as_deref(), Some("weixiu-2"));
        assert_eq!(r.is_callback_missing(id).unwrap(), Some(true));

        let bad = CallbackInput {
            done_at: t(14),
            done_by: "kefu-1".into(),
            satisfied: true,
            score: 2,
            notes: "还在漏".into(),
        };
        let out = with_tx(&mut conn, |tx| {
            tx.domain("shuipan").record_callback("T1", &bad, t(14))
        })
        .unwrap();
        assert!(out.reopened);
        let r = DomainRead::new(&conn, "shuipan");
        let tk = r.ticket(id).unwrap().unwrap();
        assert_eq!((tk.closed_at, tk.reopened), (None, 1));
        assert_eq!(r.is_callback_missing(id).unwrap(), Some(false));

        let good = CallbackInput {
            done_at: t(20),
            score: 5,
            ..bad
        };
        with_tx(&mut conn, |tx| {
            tx.domain("shuipan").close_ticket("T1", t(18), None, t(18))
        })
        .unwrap();
        // Closed again: the bad callback answered the first closing, not this one.
        let r = DomainRead::new(&conn, "shuipan");
        let awaiting = r.tickets_awaiting_callback(t(0)).unwrap();
        assert_eq!(awaiting.iter().map(|(t, _)| t.id).collect::<Vec<_>>(), [id]);
        assert!(r.tickets_awaiting_callback(t(19)).unwrap().is_empty());
        let since = r.tickets_since(t(0)).unwrap();
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].1.as_ref().map(|c| c.score), Some(2));

        with_tx(&mut conn, |tx| {
            tx.domain("shuipan").record_callback("T1", &good, t(20))
        })
        .unwrap();
        let r = DomainRead::new(&conn, "shuipan");
        assert!(r.tickets_closed_without_callback().unwrap().is_empty());
        assert!(r.tickets_awaiting_callback(t(0)).unwrap().is_empty());
        assert_eq!(
            r.tickets_since(t(0)).unwrap()[0]
                .1
                .as_ref()
                .map(|c| c.score),
            Some(5)
        );
        assert_eq!(r.ticket(id).unwrap().unwrap().closed_at, Some(t(18)));
    }

    #[test]
    fn batch_reads_agree_with_the_one_by_one_reads() {
        let mut conn = db();
        seed(&mut conn, "shuipan");
        with_tx(&mut conn, |tx| -> rusqlite::Result<()> {
            let d = tx.domain("shuipan");
            // A co-owner whose preferred channel has no address: the first owner still wins.
            d.upsert_owner(&OwnerInput {
                household: "1-1-101".into(),
                name: "李娜".into(),
                phone: None,
                email: Some("li@example.com".into()),
                language: Language::En,
                preferred_contact: ContactChannel::Sms,
            })?;
            d.upsert_household("2", "1", "201")?;
            Ok(())
        })
        .unwrap();
        let r = DomainRead::new(&conn, "shuipan");
        let ids: Vec<String> = ["1-1-102", "nobody", "1-1-101", "2-1-201"]
            .map(String::from)
            .to_vec();
        let contacts = r.household_primary_contacts(&ids).unwrap();
        for id in &ids {
            assert_eq!(
                contacts.get(id).map(|o| o.id),
                r.household_primary_contact(id).unwrap().map(|o| o.id),
                "{id}"
            );
        }
        assert_eq!(contacts.len(), 1);
        let (households, owners) = r.households_by_id(&ids).unwrap();
        assert_eq!(
            households.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
            ["1-1-101", "1-1-102", "2-1-201"]
        );
        assert_eq!(owners.len(), 2);
        assert!(owners.iter().all(|o| o.household == "1-1-101"));
    }

    #[test]
    fn survey_tokens_find_their_household_once() {
        let mut conn = db();
        seed(&mut conn, "shuipan");
        let invs = with_tx(&mut conn, |tx| {
            let d = tx.domain("shuipan");
            let c = d.upsert_campaign("2026Q1", t(0), t(0) + chrono::Duration::days(14))?;
            let hs = vec!["1-1-101".to_string(), "1-1-102".to_string()];
            d.invite(c.id, &hs, t(0))?;
            d.invite(c.id, &hs, t(1)) // again: no new tokens
        })
        .unwrap();
        assert_eq!(invs.len(), 2);
        let scores = SurveyScores {
            reception: Some(5),
            greenery: Some(3),
            ..Default::default()
        };
        with_tx(&mut conn, |tx| {
            tx.record_survey_response(&invs[0].token, scores, "好", t(2))
        })
        .unwrap();
        let again = with_tx(&mut conn, |tx| {
            tx.record_survey_response(&invs[0].token, scores, "好", t(3))
        });
        assert!(matches!(again, Err(DomainError::Conflict { .. })));
        let bad = SurveyScores {
            cleaning: Some(9),
            ..Default::default()
        };
        let err = with_tx(&mut conn, |tx| {
            tx.record_survey_response(&invs[1].token, bad, "", t(3))
        })
        .unwrap_err();
        assert!(matches!(
            err,
            DomainError::Invalid {
                field: "cleaning",
                ..
            }
        ));
        let r = DomainRead::new(&conn, "shuipan");
        let left = r.invitations_without_response(invs[0].campaign_id).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].household, "1-1-102");
        let taken = with_tx(&mut conn, |tx| tx.take_pending_events(10, t(4))).unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].kind, "survey.answered");
        assert!(pending_events(&conn, 10).unwrap().is_empty(), "taken once");
        let purged = with_tx(&mut conn, |tx| tx.purge_consumed_events(t(5))).unwrap();
        assert_eq!(purged, 1);
    }

    #[test]
    fn upserts_report_unchanged_when_nothing_changed() {
        let mut conn = db();
        seed(&mut conn, "shuipan");
        let b = BillInput {
            household: "1-1-101".into(),
            fee_type: FeeType::Parking,
            period: "2026Q1".parse().unwrap(),
            amount_fen: 45_000,
            due_date: NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
        };
        let outcomes = with_tx(&mut conn, |tx| -> rusqlite::Result<_> {
            let d = tx.domain("shuipan");
            let a = d.upsert_bill(&b)?.1;
            let same = d.upsert_bill(&b)?.1;
            let changed = d
                .upsert_bill(&BillInput {
                    amount_fen: 40_000,
                    ..b.clone()
                })?
                .1;
            let bal1 = d.upsert_balance("1-1-101", Utility::Water, 500, 2000, t(0))?;
            let bal2 = d.upsert_balance("1-1-101", Utility::Water, 500, 2000, t(0))?;
            Ok((a, same, changed, bal1, bal2))
        })
        .unwrap();
        assert_eq!(
            outcomes,
            (
                Upsert::Inserted,
                Upsert::Unchanged,
                Upsert::Updated,
                Upsert::Inserted,
                Upsert::Unchanged
            )
        );
        let low = DomainRead::new(&conn, "shuipan")
            .balances_below_threshold()
            .unwrap();
        assert_eq!(low.len(), 1);
    }
}
