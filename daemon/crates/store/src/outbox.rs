//! SQL of the delivery subsystem: the outbox, opt-out records, unreachable owners and the SMS log.
//!
//! Every state change of a message is one UPDATE guarded by the state it expects to leave
//! (`WHERE status = 'sending'`), so two actors (the dispatcher and `wuyed outbox cancel`) can
//! never both win, and a crash between two statements leaves a row in a state that says so.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::Tx;
use super::message::{Category, Channel, OutboxMessage, Status};

/// Opens the database file the way the daemon does (WAL, full sync), its schema brought up to
/// date by the store's migrations if needed: the dispatcher's own connection, `wuyed outbox`,
/// tools and benchmarks. The schema has one source, store/migrations/; an opener that created
/// tables or indexes itself would drift from it (this one used to re-create the index
/// migration 0006 dropped, which every outbox write then maintained for nothing).
pub fn open(path: &std::path::Path) -> anyhow::Result<rusqlite::Connection> {
    use anyhow::Context as _;
    super::create_private(path)?;
    let conn = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot open database {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    super::tune_cache(&conn)?;
    super::migrations::migrate(&conn, path)?;
    Ok(conn)
}

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// A message still waiting to go (`pending`, `deferred`, `failed`), as SQL. Spelled with `OR`
/// rather than `IN (...)`: SQLite evaluates a constant list of three or more by building a
/// temporary b-tree at every execution, and this runs on every claim. Migration 0006's partial
/// index `outbox_waiting` has the same text, which is how the planner knows it may use it.
macro_rules! waiting {
    () => {
        "(status = 'pending' OR status = 'deferred' OR status = 'failed')"
    };
}

/// The waiting condition, for SQL built outside this module.
pub(crate) const WAITING: &str = waiting!();

/// Which messages [`Tx::outbox_find`] selects; `None` selects all.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxFilter<'a> {
    pub status: Option<Status>,
    pub community: Option<&'a str>,
    pub channel: Option<Channel>,
    /// Queued at or after.
    pub since: Option<DateTime<Utc>>,
    /// Queued before.
    pub until: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, community, workflow, slot, recipient, step, channel, address, \
    display_name, locale, category, template, subject, body_text, body_html, sms_code, sms_params, \
    reason, message_id, status, attempts, next_attempt_at, expires_at, provider_id, last_error, \
    created_at, updated_at, sent_at";

fn parse<T: std::str::FromStr>(row: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let s: String = row.get(idx)?;
    s.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unexpected value {s:?}").into(),
        )
    })
}

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<OutboxMessage> {
    let params: Option<String> = row.get(16)?;
    let reason: String = row.get(17)?;
    Ok(OutboxMessage {
        id: row.get(0)?,
        community: row.get(1)?,
        workflow: row.get(2)?,
        slot: row.get(3)?,
        recipient: row.get(4)?,
        step: row.get(5)?,
        channel: parse::<Channel>(row, 6)?,
        address: row.get(7)?,
        display_name: row.get(8)?,
        locale: row.get(9)?,
        category: parse::<Category>(row, 10)?,
        template: row.get(11)?,
        subject: row.get(12)?,
        body_text: row.get(13)?,
        body_html: row.get(14)?,
        sms_code: row.get(15)?,
        sms_params: params
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or_default(),
        reason: serde_json::from_str(&reason).unwrap_or(serde_json::Value::Null),
        message_id: row.get(18)?,
        status: parse::<Status>(row, 19)?,
        attempts: row.get(20)?,
        next_attempt_at: from_ms(row.get(21)?),
        expires_at: from_ms(row.get(22)?),
        provider_id: row.get(23)?,
        last_error: row.get(24)?,
        created_at: from_ms(row.get(25)?),
        updated_at: from_ms(row.get(26)?),
        sent_at: row.get::<_, Option<i64>>(27)?.map(from_ms),
    })
}

/// What became of a message, without its content: what `wuyed simulate` shows of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The row, for `wuyed simulate --show-messages` to read the rendered message back.
    pub id: i64,
    pub community: String,
    pub workflow: String,
    pub template: String,
    pub recipient: String,
    pub channel: Channel,
    /// The locale of the template the message was rendered from.
    pub locale: String,
    /// The subject, or for a message without one (an SMS) the first 40 characters of its text.
    pub headline: String,
    pub status: Status,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Messages of one channel and status that are not settled yet, as `/metrics` shows the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsettled {
    pub channel: Channel,
    pub status: Status,
    pub messages: i64,
    /// When the oldest of them was queued.
    pub oldest: DateTime<Utc>,
}

/// An opt-out as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOut {
    pub id: i64,
    pub community: String,
    pub owner: String,
    pub channel: Channel,
    pub recorded_at: DateTime<Utc>,
    pub how: String,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_how: Option<String>,
}

/// An owner no channel could reach, for the desk to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    pub id: i64,
    pub community: String,
    pub workflow: String,
    pub slot: String,
    pub recipient: String,
    pub step: String,
    pub name: String,
    pub why: String,
    pub created_at: DateTime<Utc>,
}

impl Tx<'_> {
    /// Queues a message. Returns its id, or `None` when a message with the same idempotency key
    /// is already queued (the repeat is dropped, the first stands).
    pub fn outbox_insert(&self, m: &OutboxMessage) -> rusqlite::Result<Option<i64>> {
        // Cached: a run queues thousands of rows in one transaction.
        let n = self
            .0
            .prepare_cached(
                "INSERT INTO outbox (community, workflow, slot, recipient, step, channel, address, \
             display_name, locale, category, template, subject, body_text, body_html, sms_code, \
             sms_params, reason, message_id, status, attempts, next_attempt_at, expires_at, \
             created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19, 0, ?20, ?21, ?22, ?22) \
             ON CONFLICT (community, workflow, slot, recipient, step) DO NOTHING",
            )?
            .execute(params![
                m.community,
                m.workflow,
                m.slot,
                m.recipient,
                m.step,
                m.channel.as_str(),
                m.address,
                m.display_name,
                m.locale,
                m.category.as_str(),
                m.template,
                m.subject,
                m.body_text,
                m.body_html,
                m.sms_code,
                if m.sms_params.is_empty() {
                    None
                } else {
                    Some(serde_json::to_string(&m.sms_params).unwrap_or_default())
                },
                m.reason.to_string(),
                m.message_id,
                m.status.as_str(),
                ms(m.next_attempt_at),
                ms(m.expires_at),
                ms(m.created_at),
            ])?;
        Ok((n == 1).then(|| self.0.last_insert_rowid()))
    }

    pub fn outbox_get(&self, id: i64) -> rusqlite::Result<Option<OutboxMessage>> {
        self.0
            .prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"))?
            .query_row([id], message_from_row)
            .optional()
    }

    /// Messages whose next attempt is due at `now`, oldest first.
    pub fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> rusqlite::Result<Vec<OutboxMessage>> {
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE {} \
             AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2",
            waiting!()
        ))?;
        stmt.query_map(params![ms(now), limit as i64], message_from_row)?
            .collect()
    }

    /// When the next waiting message is due, if any is waiting.
    pub fn outbox_next_due(&self) -> rusqlite::Result<Option<DateTime<Utc>>> {
        let v: Option<i64> = self
            .0
            .prepare_cached(concat!(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE ",
                waiting!()
            ))?
            .query_row([], |r| r.get(0))?;
        Ok(v.map(from_ms))
    }

    /// What became of every message queued since `since`, newest first. Reads no bodies: a
    /// simulated year of ten communities queues 100,000 messages, and reading them whole was a
    /// twentieth of it.
    pub fn outbox_outcomes(&self, since: DateTime<Utc>) -> rusqlite::Result<Vec<Outcome>> {
        let mut stmt = self.0.prepare(
            "SELECT community, workflow, template, recipient, channel, \
                    COALESCE(subject, substr(body_text, 1, 40)), status, last_error, created_at, \
                    sent_at, id, locale \
             FROM outbox WHERE created_at >= ?1 ORDER BY id DESC",
        )?;
        stmt.query_map([ms(since)], |row| {
            Ok(Outcome {
                community: row.get(0)?,
                workflow: row.get(1)?,
                template: row.get(2)?,
                recipient: row.get(3)?,
                channel: parse::<Channel>(row, 4)?,
                headline: row.get(5)?,
                status: parse::<Status>(row, 6)?,
                last_error: row.get(7)?,
                created_at: from_ms(row.get(8)?),
                sent_at: row.get::<_, Option<i64>>(9)?.map(from_ms),
                id: row.get(10)?,
                locale: row.get(11)?,
            })
        })?
        .collect()
    }

    /// Lists messages, newest first, optionally by status and community.
    pub fn outbox_list(
        &self,
        status: Option<Status>,
        community: Option<&str>,
        limit: usize,
    ) -> rusqlite::Result<Vec<OutboxMessage>> {
        let filter = OutboxFilter {
            status,
            community,
            ..OutboxFilter::default()
        };
        self.outbox_find(&filter, limit)
    }

    /// The messages `filter` selects, newest first, at most `limit` (`wuyed outbox list`).
    pub fn outbox_find(
        &self,
        filter: &OutboxFilter<'_>,
        limit: usize,
    ) -> rusqlite::Result<Vec<OutboxMessage>> {
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE (?1 IS NULL OR status = ?1) \
             AND (?2 IS NULL OR community = ?2) AND (?3 IS NULL OR channel = ?3) \
             AND (?4 IS NULL OR created_at >= ?4) AND (?5 IS NULL OR created_at < ?5) \
             ORDER BY id DESC LIMIT ?6"
        ))?;
        stmt.query_map(
            params![
                filter.status.map(|s| s.as_str()),
                filter.community,
                filter.channel.map(|c| c.as_str()),
                filter.since.map(ms),
                filter.until.map(ms),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            message_from_row,
        )?
        .collect()
    }

    /// Messages still waiting to go (`pending`, `deferred`, `failed`), going (`sending`) or held
    /// for a human (`unknown`), per channel and status. Sent and finished rows, which pile up
    /// over the years, are not read: the `(status, next_attempt_at)` index leads to these.
    pub fn outbox_unsettled(&self) -> rusqlite::Result<Vec<Unsettled>> {
        self.0
            .prepare_cached(
                "SELECT channel, status, COUNT(*), MIN(created_at) FROM outbox \
                 WHERE status IN ('pending', 'deferred', 'failed', 'sending', 'unknown') \
                 GROUP BY channel, status",
            )?
            .query_map([], |row| {
                Ok(Unsettled {
                    channel: parse::<Channel>(row, 0)?,
                    status: parse::<Status>(row, 1)?,
                    messages: row.get(2)?,
                    oldest: from_ms(row.get(3)?),
                })
            })?
            .collect()
    }

    /// Counts messages per status (for tests, metrics and the benchmark).
    pub fn outbox_count(&self, status: Status) -> rusqlite::Result<i64> {
        self.0
            .prepare_cached("SELECT COUNT(*) FROM outbox WHERE status = ?1")?
            .query_row([status.as_str()], |r| r.get(0))
    }

    /// Claims a waiting message for a send attempt: `sending`, one more attempt. False if someone
    /// else changed it meanwhile (cancelled from the CLI).
    pub fn outbox_claim(&self, id: i64, now: DateTime<Utc>) -> rusqlite::Result<bool> {
        let n = self
            .0
            .prepare_cached(concat!(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1, updated_at = ?2 \
                 WHERE id = ?1 AND ",
                waiting!()
            ))?
            .execute(params![id, ms(now)])?;
        Ok(n == 1)
    }

    /// Moves a waiting message to `status` without an attempt (deferred, expired, cancelled).
    pub fn outbox_settle_waiting(
        &self,
        id: i64,
        status: Status,
        next_attempt_at: DateTime<Utc>,
        why: Option<&str>,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<bool> {
        let n = self
            .0
            .prepare_cached(concat!(
                "UPDATE outbox SET status = ?2, next_attempt_at = ?3, \
                 last_error = COALESCE(?4, last_error), updated_at = ?5 WHERE id = ?1 AND ",
                waiting!()
            ))?
            .execute(params![
                id,
                status.as_str(),
                ms(next_attempt_at),
                why,
                ms(now)
            ])?;
        Ok(n == 1)
    }

    /// Records the outcome of a send attempt of a message in `sending`.
    pub fn outbox_finish(
        &self,
        id: i64,
        status: Status,
        next_attempt_at: DateTime<Utc>,
        provider_id: Option<&str>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<bool> {
        let sent_at = (status == Status::Sent).then(|| ms(now));
        let n = self
            .0
            .prepare_cached(
                "UPDATE outbox SET status = ?2, next_attempt_at = ?3, \
             provider_id = COALESCE(?4, provider_id), last_error = ?5, updated_at = ?6, \
             sent_at = COALESCE(?7, sent_at) WHERE id = ?1 AND status = 'sending'",
            )?
            .execute(params![
                id,
                status.as_str(),
                ms(next_attempt_at),
                provider_id,
                error,
                ms(now),
                sent_at
            ])?;
        Ok(n == 1)
    }

    /// After a crash: every message left in `sending` was handed over (or not) with no answer
    /// recorded. It becomes `unknown`; email, whose Message-ID lets the mailbox drop a copy, goes
    /// straight back to `pending`; SMS stays `unknown` for a human. Returns (email, sms) counts.
    pub fn outbox_recover_sending(&self, now: DateTime<Utc>) -> rusqlite::Result<(usize, usize)> {
        let why =
            "outcome unknown: the dispatcher stopped while this message was being handed over";
        let email = self
            .0
            .prepare_cached(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?1, updated_at = ?1, \
             last_error = ?2 WHERE status = 'sending' AND channel = 'email'",
            )?
            .execute(params![ms(now), why])?;
        let sms = self
            .0
            .prepare_cached(
                "UPDATE outbox SET status = 'unknown', updated_at = ?1, last_error = ?2 \
             WHERE status = 'sending' AND channel = 'sms'",
            )?
            .execute(params![ms(now), why])?;
        Ok((email, sms))
    }

    /// Settles a message in `unknown` once the provider told what became of it.
    pub fn outbox_resolve_unknown(
        &self,
        id: i64,
        status: Status,
        provider_id: Option<&str>,
        why: &str,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<bool> {
        let sent_at = (status == Status::Sent).then(|| ms(now));
        let n = self
            .0
            .prepare_cached(
                "UPDATE outbox SET status = ?2, next_attempt_at = ?5, updated_at = ?5, \
             provider_id = COALESCE(?3, provider_id), last_error = ?4, \
             sent_at = COALESCE(?6, sent_at) WHERE id = ?1 AND status = 'unknown'",
            )?
            .execute(params![
                id,
                status.as_str(),
                provider_id,
                why,
                ms(now),
                sent_at
            ])?;
        Ok(n == 1)
    }

    /// `wuyed outbox retry ID`: requeues a message that is not sent and not in flight.
    pub fn outbox_retry(&self, id: i64, now: DateTime<Utc>) -> rusqlite::Result<bool> {
        let n = self
            .0
            .prepare_cached(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?2, updated_at = ?2 \
                 WHERE id = ?1 \
                 AND status IN ('failed', 'dead', 'unknown', 'expired', 'cancelled', 'deferred')",
            )?
            .execute(params![id, ms(now)])?;
        Ok(n == 1)
    }

    /// `wuyed outbox cancel ID`: cancels a message that has not gone out.
    pub fn outbox_cancel(&self, id: i64, why: &str, now: DateTime<Utc>) -> rusqlite::Result<bool> {
        let n = self
            .0
            .prepare_cached(
                "UPDATE outbox SET status = 'cancelled', last_error = ?2, updated_at = ?3 \
             WHERE id = ?1 AND status IN ('pending', 'deferred', 'failed', 'unknown')",
            )?
            .execute(params![id, why, ms(now)])?;
        Ok(n == 1)
    }

    /// Records that `owner` opted out of informational messages on `channel`, and how (the form,
    /// the desk, a reply). Returns the record's id.
    pub fn optout_record(
        &self,
        community: &str,
        owner: &str,
        channel: Channel,
        how: &str,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<i64> {
        self.0
            .prepare_cached(
                "INSERT INTO delivery_optout \
                 (community, owner, channel, category, recorded_at, how) \
                 VALUES (?1, ?2, ?3, 'informational', ?4, ?5)",
            )?
            .execute(params![community, owner, channel.as_str(), ms(now), how])?;
        Ok(self.0.last_insert_rowid())
    }

    /// Revokes the owner's active opt-outs on `channel`; the records stay, with when and how.
    pub fn optout_revoke(
        &self,
        community: &str,
        owner: &str,
        channel: Channel,
        how: &str,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<usize> {
        self.0
            .prepare_cached(
                "UPDATE delivery_optout SET revoked_at = ?4, revoked_how = ?5 \
             WHERE community = ?1 AND owner = ?2 AND channel = ?3 AND revoked_at IS NULL",
            )?
            .execute(params![community, owner, channel.as_str(), ms(now), how])
    }

    pub fn optout_active(
        &self,
        community: &str,
        owner: &str,
        channel: Channel,
    ) -> rusqlite::Result<bool> {
        self.0
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM delivery_optout WHERE community = ?1 AND owner = ?2 \
             AND channel = ?3 AND revoked_at IS NULL)",
            )?
            .query_row(params![community, owner, channel.as_str()], |r| r.get(0))
    }

    pub fn optout_history(&self, community: &str, owner: &str) -> rusqlite::Result<Vec<OptOut>> {
        let mut stmt = self.0.prepare(
            "SELECT id, community, owner, channel, recorded_at, how, revoked_at, revoked_how \
             FROM delivery_optout WHERE community = ?1 AND owner = ?2 ORDER BY id",
        )?;
        stmt.query_map(params![community, owner], |r| {
            Ok(OptOut {
                id: r.get(0)?,
                community: r.get(1)?,
                owner: r.get(2)?,
                channel: parse(r, 3)?,
                recorded_at: from_ms(r.get(4)?),
                how: r.get(5)?,
                revoked_at: r.get::<_, Option<i64>>(6)?.map(from_ms),
                revoked_how: r.get(7)?,
            })
        })?
        .collect()
    }

    /// Lists an owner nobody could reach for this run and step (once).
    #[allow(clippy::too_many_arguments)]
    pub fn unreachable_insert(
        &self,
        community: &str,
        workflow: &str,
        slot: &str,
        recipient: &str,
        step: &str,
        name: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        self.0.prepare_cached("INSERT INTO delivery_unreachable (community, workflow, slot, recipient, step, name, \
             why, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (community, workflow, slot, recipient, step) DO NOTHING")?.execute(params![
                community,
                workflow,
                slot,
                recipient,
                step,
                name,
                why,
                ms(now)
            ],
        )?;
        Ok(())
    }

    pub fn unreachable_list(&self, community: Option<&str>) -> rusqlite::Result<Vec<Unreachable>> {
        let mut stmt = self.0.prepare(
            "SELECT id, community, workflow, slot, recipient, step, name, why, created_at \
             FROM delivery_unreachable WHERE handled_at IS NULL AND (?1 IS NULL OR community = ?1) \
             ORDER BY id",
        )?;
        stmt.query_map(params![community], |r| {
            Ok(Unreachable {
                id: r.get(0)?,
                community: r.get(1)?,
                workflow: r.get(2)?,
                slot: r.get(3)?,
                recipient: r.get(4)?,
                step: r.get(5)?,
                name: r.get(6)?,
                why: r.get(7)?,
                created_at: from_ms(r.get(8)?),
            })
        })?
        .collect()
    }

    /// Notes an SMS handed to `provider`, for its per-number limits.
    pub fn sms_log_insert(
        &self,
        provider: &str,
        address: &str,
        content: &str,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        self.0.prepare_cached(
            "INSERT INTO delivery_sms_log (provider, address, content, sent_at) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![provider, address, content, ms(now)],
        )?;
        Ok(())
    }

    /// SMS to `address` through `provider` since `since`: (all, with this content) and the
    /// latest instant one with this content went.
    pub fn sms_log_since(
        &self,
        provider: &str,
        address: &str,
        content: &str,
        since: DateTime<Utc>,
    ) -> rusqlite::Result<(i64, i64, Option<DateTime<Utc>>)> {
        self.0.prepare_cached("SELECT COUNT(*), COALESCE(SUM(content = ?3), 0), MAX(CASE WHEN content = ?3 THEN sent_at END) \
             FROM delivery_sms_log WHERE provider = ?1 AND address = ?2 AND sent_at >= ?4")?.query_row(params![provider, address, content, ms(since)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, Option<i64>>(2)?.map(from_ms))),
        )
    }
}

/// Runs `f` in one immediate transaction on `conn` and commits it: for tools and tests that
/// work on the outbox outside a run (a run's effects use the scheduler's transaction). Waits
/// for another process's lock as long as `patience` says (store/lock.rs).
pub fn transaction_with<T>(
    conn: &mut rusqlite::Connection,
    patience: super::Patience,
    f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    super::lock::write(conn, patience, f)
}

/// Runs `f` in a read transaction on `conn` (a consistent snapshot; nothing is committed). A
/// read takes no lock in WAL mode, so it never waits behind another process's write: listing
/// the outbox works while an import or a backup holds the database.
pub fn read<T>(
    conn: &mut rusqlite::Connection,
    f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let tx = Tx(conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?);
    f(&tx)
}

/// [`transaction_with`] as a command waits: a bounded time.
pub fn transaction<T>(
    conn: &mut rusqlite::Connection,
    f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    transaction_with(conn, super::Patience::INTERACTIVE, f)
}
