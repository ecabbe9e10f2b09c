//! The dispatcher: works the outbox until nothing is due, then sleeps until something is.
//!
//! Each round has three steps, and the durable state between them is what makes a crash safe:
//! 1. In one transaction, every due message is judged: expired, reason gone (cancelled),
//!    opted out, quiet hours or an SMS provider's per-number limit (deferred), or claimed
//!    (`sending`, one more attempt).
//! 2. Claimed messages are handed to their channels concurrently (bounded per channel).
//! 3. Answers are recorded in small batches: `sent` with the provider's id, `failed` with the
//!    next attempt (exponential backoff with jitter), `dead` with the server's reason, `unknown`.
//!
//! A kill between 1 and 3 leaves rows in `sending`; [`Dispatcher::recover`] turns them into
//! explicit unknowns when the dispatcher starts: email goes again with its stored Message-ID (a
//! mailbox drops the copy), SMS through an idempotent gateway goes again, SMS through Aliyun is
//! looked up by its `OutId` ([`Dispatcher::resolve_unknown`]) and settled as sent or resent once,
//! SMS through Tencent is settled as sent when the number's delivery receipts carry its
//! `SessionContext`, and every other SMS (no receipt yet, Twilio, a failed report) waits for a
//! human (`wuyed outbox retry ID`): a second text costs the owner's patience and the company
//! money. A message recorded as `sent` is never sent again.
//!
//! A configuration reload ([`DispatcherReload`]) swaps the settings and channels between rounds:
//! a round claims, sends and records on one snapshot, so nothing in flight changes relay midway
//! and nothing is claimed twice.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context as _;
use chrono::{DateTime, Duration, TimeZone, Utc};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::channel::{Channels, Outcome};
use super::{Category, Channel, Directory, OutboxMessage, Relevance, Status, earliest_send};
use crate::clock::SharedClock;
use crate::config::{Community, Settings};
use crate::store::Tx;

/// Longest an answer waits to be recorded while other sends of the batch are still running.
const RECORD_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// How often a sleeping dispatcher asks SQLite whether another connection changed the database
/// (`wuyed outbox retry` or `cancel` from a shell), so such a change is acted on within this
/// long instead of at the next message due.
///
/// Why `PRAGMA data_version` and not a signal, an HTTP call or a wake counter: SQLite bumps it
/// for every commit made by any other connection, in any process, so nothing has to remember
/// to announce a change (a `sqlite3` session fixing a row by hand counts too); reading it is a
/// look at the WAL index in shared memory, no disk read. A signal needs the daemon's pid and
/// the right to signal it (the packaged unit runs as a dynamic user), an HTTP call needs the API
/// enabled and a token, and a counter table needs a migration and every writer's cooperation.
/// The price is a round (one indexed query) after commits of the daemon's own runs and API,
/// which wake the dispatcher anyway when they queue messages.
const EXTERNAL_CHANGE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// What one [`Dispatcher::dispatch_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchReport {
    pub sent: usize,
    pub failed: usize,
    pub dead: usize,
    pub unknown: usize,
    pub deferred: usize,
    pub expired: usize,
    pub cancelled: usize,
}

impl DispatchReport {
    pub fn is_idle(&self) -> bool {
        *self == DispatchReport::default()
    }
}

enum Decision {
    Send,
    Settle(Status, DateTime<Utc>, String),
}

/// The settings and channels one dispatch round works with. Swapped whole on reload; a round
/// takes a snapshot when it starts, so sends already handed to a channel finish (and are
/// recorded) on the settings they were claimed under, and the next round uses the new ones.
struct Current {
    settings: Arc<Settings>,
    channels: Arc<Channels>,
}

impl Current {
    fn community(&self, id: &str) -> Option<&Arc<Community>> {
        self.settings.communities.iter().find(|c| c.id == id)
    }
}

/// Gives a running [`Dispatcher`] a reloaded configuration (see [`Dispatcher::reloader`]).
#[derive(Clone)]
pub struct DispatcherReload {
    current: Arc<RwLock<Arc<Current>>>,
    wake: Arc<Notify>,
}

impl DispatcherReload {
    /// Builds the channels of `settings` (SMTP relay, SMS providers and their credentials,
    /// per-number limits) and makes them, with the new quiet hours, senders and retry policy,
    /// the ones of the next dispatch round. If a channel cannot be built (a secret went missing)
    /// the error is returned and the dispatcher keeps its previous settings whole: half a reload
    /// would send with one community's new relay and another's old limits.
    pub fn reload(&self, settings: Arc<Settings>) -> anyhow::Result<()> {
        let channels = Arc::new(Channels::from_settings(&settings)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Current { settings, channels });
        // Deferrals computed under the old settings (quiet hours, an unknown community) may be
        // due now; the next round judges every due message again.
        self.wake.notify_one();
        Ok(())
    }
}

/// Works the outbox. One per daemon (the outbox has one writer of `sending`).
pub struct Dispatcher {
    conn: Mutex<rusqlite::Connection>,
    current: Arc<RwLock<Arc<Current>>>,
    clock: SharedClock,
    directory: Arc<dyn Directory>,
    wake: Arc<Notify>,
    batch: usize,
    /// Beaten at each turn of the loop (supervise.rs; `/healthz` reads it).
    health: super::supervise::DispatcherHealth,
}

impl Dispatcher {
    /// Opens the database at `db` (creating the delivery tables if needed).
    pub fn new(
        db: &Path,
        settings: Arc<Settings>,
        clock: SharedClock,
        channels: Channels,
        directory: Arc<dyn Directory>,
    ) -> anyhow::Result<Dispatcher> {
        let conn = crate::store::outbox::open(db)?;
        Ok(Dispatcher {
            conn: Mutex::new(conn),
            current: Arc::new(RwLock::new(Arc::new(Current {
                settings,
                channels: Arc::new(channels),
            }))),
            clock,
            directory,
            wake: Arc::new(Notify::new()),
            batch: 256,
            health: Default::default(),
        })
    }

    /// The settings of [`crate::store::Store::for_throwaway_copy`] on the dispatcher's
    /// connection: only for `wuyed simulate`'s throwaway copy.
    pub fn for_throwaway_copy(self) -> anyhow::Result<Dispatcher> {
        crate::store::throwaway(&self.conn())?;
        Ok(self)
    }

    /// The dispatcher's liveness, beaten at every turn of [`Dispatcher::run`].
    pub fn health(&self) -> super::supervise::DispatcherHealth {
        self.health.clone()
    }

    /// Wakes the dispatcher: call after committing a transaction that queued messages.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// A handle that hands the dispatcher a reloaded configuration, usable after [`run`] took
    /// the dispatcher (the daemon's SIGHUP path).
    ///
    /// [`run`]: Dispatcher::run
    pub fn reloader(&self) -> DispatcherReload {
        DispatcherReload {
            current: self.current.clone(),
            wake: self.wake.clone(),
        }
    }

    /// Same as `self.reloader().reload(settings)`.
    pub fn reload(&self, settings: Arc<Settings>) -> anyhow::Result<()> {
        self.reloader().reload(settings)
    }

    fn snapshot(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs `f` in one immediate transaction on the dispatcher's connection. Another process's
    /// lock is waited for as long as it is held (store/lock.rs): a claim or a batch of answers
    /// is never given up for a lock, so nothing claimed stays `sending` until the next start.
    fn tx<T>(&self, f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut conn = self.conn();
        crate::store::outbox::transaction_with(&mut conn, crate::store::Patience::Forever, f)
    }

    /// Runs `f` on a snapshot: takes no lock, so never waits behind another process's write.
    fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>) -> anyhow::Result<T> {
        crate::store::outbox::read(&mut self.conn(), f)
    }

    /// The dispatcher's connection. A panic while it was held (the supervisor restarts the
    /// dispatcher) cannot have left a transaction open: rusqlite rolls back on drop.
    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves messages a previous dispatcher left in `sending` (see the module docs).
    /// Returns how many went back to the queue and how many wait for a human.
    pub fn recover(&self) -> anyhow::Result<(usize, usize)> {
        let now = self.clock.now();
        let channels = self.snapshot().channels.clone();
        let (requeued, held) = self.tx(|tx| {
            let (email, _) = tx.outbox_recover_sending(now)?;
            let mut requeued = email;
            let mut held = 0;
            for m in tx.outbox_list(Some(Status::Unknown), None, usize::MAX >> 1)? {
                if m.channel == Channel::Sms && channels.sms_for(&m.community).provider.idempotent()
                {
                    tx.outbox_retry(m.id, now)?;
                    requeued += 1;
                } else {
                    held += 1;
                }
            }
            Ok((requeued, held))
        })?;
        if requeued + held > 0 {
            tracing::warn!(
                requeued,
                held,
                "recovered messages whose send was interrupted; held SMS need `wuyed outbox retry ID` or `cancel ID`"
            );
        }
        Ok((requeued, held))
    }

    /// Asks SMS providers that can tell (Aliyun's QuerySendDetails, by `OutId`; Tencent's
    /// delivery receipts, by `SessionContext`) what became of messages in `unknown`: found →
    /// `sent`; surely absent (Aliyun only) → `pending`; otherwise they stay for a human.
    /// Returns (sent, requeued).
    pub async fn resolve_unknown(&self) -> anyhow::Result<(usize, usize)> {
        let unknown = self.read(|tx| Ok(tx.outbox_list(Some(Status::Unknown), None, 10_000)?))?;
        let (mut sent, mut requeued) = (0, 0);
        let cur = self.snapshot();
        for m in unknown.into_iter().filter(|m| m.channel == Channel::Sms) {
            let Some(community) = cur.community(&m.community) else {
                continue;
            };
            let now = self.clock.now();
            let outcome = cur
                .channels
                .sms_for(&m.community)
                .resolve_unknown(&m, community.tz, now)
                .await;
            match outcome {
                Some(Outcome::Sent { provider_id }) => {
                    let done = self.tx(|tx| {
                        Ok(tx.outbox_resolve_unknown(
                            m.id,
                            Status::Sent,
                            provider_id.as_deref(),
                            "outcome was unknown; the provider confirms it has the message",
                            now,
                        )?)
                    })?;
                    sent += usize::from(done);
                }
                Some(Outcome::Temporary(why)) => {
                    let done = self.tx(|tx| {
                        Ok(tx.outbox_resolve_unknown(
                            m.id,
                            Status::Pending,
                            None,
                            &format!("outcome was unknown; {why}"),
                            now,
                        )?)
                    })?;
                    requeued += usize::from(done);
                }
                _ => {}
            }
        }
        if sent + requeued > 0 {
            tracing::info!(
                sent,
                requeued,
                "resolved SMS of unknown outcome with the provider"
            );
        }
        Ok((sent, requeued))
    }

    /// When the next waiting message is due.
    pub fn next_due(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        self.read(|tx| Ok(tx.outbox_next_due()?))
    }

    fn decide(
        &self,
        cur: &Current,
        tx: &Tx<'_>,
        m: &OutboxMessage,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Decision> {
        let Some(community) = cur.community(&m.community) else {
            return Ok(Decision::Settle(
                Status::Deferred,
                now + Duration::hours(1),
                format!("community {} is not in the configuration", m.community),
            ));
        };
        if now >= m.expires_at {
            return Ok(Decision::Settle(
                Status::Expired,
                now,
                format!("not sent within the validity of {} messages", m.category),
            ));
        }
        if !m.reason.is_null() {
            match self.directory.still_relevant(&m.community, &m.reason) {
                Ok(Relevance::Relevant) => {}
                Ok(Relevance::Gone(why)) => {
                    return Ok(Decision::Settle(
                        Status::Cancelled,
                        now,
                        format!("reason gone: {why}"),
                    ));
                }
                Err(e) => {
                    return Ok(Decision::Settle(
                        Status::Deferred,
                        now + Duration::minutes(1),
                        format!("cannot re-check the reason: {e:#}"),
                    ));
                }
            }
        }
        if m.category == Category::Informational
            && let Some(owner) = self.owner_of(&m.community, &m.recipient)
            && tx.optout_active(&m.community, &owner, m.channel)?
        {
            return Ok(Decision::Settle(
                Status::Cancelled,
                now,
                format!("owner opted out of informational {}", m.channel),
            ));
        }
        let at = earliest_send(
            now,
            m.category,
            &community.quiet,
            community.quiet_spread,
            &m.spread_seed(),
        );
        if at > now {
            return Ok(Decision::Settle(Status::Deferred, at, "quiet hours".into()));
        }
        if m.channel == Channel::Sms {
            let ch = cur.channels.sms_for(&m.community);
            let provider = ch.provider.as_str();
            let content = sms_content(m);
            if let Some(secs) = ch.settings.same_content_secs().filter(|s| *s > 0) {
                let since = now - Duration::seconds(secs.into());
                let (_, same, last) = tx.sms_log_since(provider, &m.address, &content, since)?;
                if same > 0
                    && let Some(last) = last
                {
                    return Ok(Decision::Settle(
                        Status::Deferred,
                        last + Duration::seconds(secs.into()),
                        format!("{provider}: same text to this number within {secs}s"),
                    ));
                }
            }
            if let Some(limit) = ch.settings.daily_limit() {
                let (midnight, next_midnight) = local_day(community, now);
                let (count, _, _) = tx.sms_log_since(provider, &m.address, &content, midnight)?;
                if count >= i64::from(limit) {
                    return Ok(Decision::Settle(
                        Status::Deferred,
                        next_midnight,
                        format!("{provider}: {limit} messages a day to this number reached"),
                    ));
                }
            }
        }
        Ok(Decision::Send)
    }

    /// The owner whose opt-outs apply to a recipient reference.
    fn owner_of(&self, community: &str, recipient: &str) -> Option<String> {
        if let Some(id) = recipient.strip_prefix("owner:") {
            return Some(id.to_string());
        }
        let h = recipient.strip_prefix("household:")?;
        self.directory
            .household_contact(community, h)
            .ok()
            .flatten()
            .map(|c| c.id)
    }

    /// Sends everything due at `now`, records every answer, and returns what happened.
    ///
    /// Batches overlap: the next batch is claimed (one transaction, one fsync) while the
    /// second half of the previous one is still on the wire, so the SMTP connections and SMS
    /// requests never sit idle waiting for the outbox between batches. Answers are recorded every
    /// few milliseconds in one transaction each. Each message is sent and
    /// recorded on the settings snapshot it was claimed under.
    pub async fn dispatch_once(&self, now: DateTime<Utc>) -> anyhow::Result<DispatchReport> {
        let mut report = DispatchReport::default();
        let mut set: JoinSet<(Arc<Current>, OutboxMessage, Outcome)> = JoinSet::new();
        // Answers not yet recorded. Recording every few milliseconds rather than one commit each
        // (a commit is an fsync) or once after the slowest send (a kill would then forget more)
        // keeps the exactly-once rule cheap: a message whose answer was not yet recorded stays
        // `sending`, becomes `unknown` at the next start and, for email, is resent with the same
        // Message-ID, which the receiving mailbox drops; an SMS is never blindly resent.
        let mut done = Vec::new();
        let mut since = std::time::Instant::now();
        let mut more = true;
        loop {
            self.health.beat();
            if more && set.len() <= self.batch / 2 {
                // One snapshot per claim: what is claimed under these settings is sent and
                // recorded under them, even if a reload lands meanwhile.
                let cur = self.snapshot();
                let (any, claimed) = self.claim(&cur, now, &mut report)?;
                more = any;
                for m in claimed {
                    self.spawn_send(&mut set, &cur, m);
                }
                continue;
            }
            let Some(r) = set.join_next().await else {
                break;
            };
            if done.is_empty() {
                since = std::time::Instant::now();
            }
            done.push(r.context("send task panicked")?);
            while let Some(r) = set.try_join_next() {
                done.push(r.context("send task panicked")?);
            }
            if set.is_empty() || done.len() >= 128 || since.elapsed() >= RECORD_EVERY {
                self.record(std::mem::take(&mut done), &mut report)?;
            }
        }
        if !done.is_empty() {
            self.record(done, &mut report)?;
        }
        Ok(report)
    }

    /// In one transaction, judges up to a batch of due messages: settles those that must not go
    /// now and marks the others `sending` (durably, before any is handed over). Returns whether
    /// anything was due, and the claimed messages.
    fn claim(
        &self,
        cur: &Current,
        now: DateTime<Utc>,
        report: &mut DispatchReport,
    ) -> anyhow::Result<(bool, Vec<OutboxMessage>)> {
        self.tx(|tx| {
            let due = tx.outbox_due(now, self.batch)?;
            let mut claimed = Vec::new();
            let any = !due.is_empty();
            for m in due {
                match self.decide(cur, tx, &m, now)? {
                    Decision::Send => {
                        if tx.outbox_claim(m.id, now)? {
                            if m.channel == Channel::Sms {
                                let p = cur.channels.sms_for(&m.community).provider.as_str();
                                tx.sms_log_insert(p, &m.address, &sms_content(&m), now)?;
                            }
                            claimed.push(m);
                        }
                    }
                    Decision::Settle(status, at, why) => {
                        // A deferral must move the message into the future, or this loop
                        // would pick it up again at once.
                        let at = if status == Status::Deferred {
                            at.max(now + Duration::seconds(1))
                        } else {
                            at
                        };
                        if tx.outbox_settle_waiting(m.id, status, at, Some(&why), now)? {
                            tracing::info!(id = m.id, community = %m.community,
                                to = %m.masked_address(), status = %status, %why, "message settled");
                            match status {
                                Status::Deferred => report.deferred += 1,
                                Status::Expired => report.expired += 1,
                                Status::Cancelled => report.cancelled += 1,
                                _ => {}
                            }
                        }
                    }
                }
            }
            Ok((any, claimed))
        })
    }

    /// Hands a claimed message to its channel on its own task (channels bound their own
    /// concurrency: the SMTP pool's connections, the SMS channel's requests in flight).
    fn spawn_send(
        &self,
        set: &mut JoinSet<(Arc<Current>, OutboxMessage, Outcome)>,
        cur: &Arc<Current>,
        m: OutboxMessage,
    ) {
        let cur = cur.clone();
        let clock = self.clock.clone();
        set.spawn(async move {
            let email = &cur.settings.daemon.delivery.email;
            let outcome = match m.channel {
                Channel::Email => {
                    let from = cur
                        .community(&m.community)
                        .and_then(|c| c.delivery.from.as_deref())
                        .unwrap_or(&email.from);
                    let unsubscribe = email.unsubscribe_url.as_deref();
                    cur.channels
                        .email
                        .send(&m, from, unsubscribe, clock.now())
                        .await
                }
                Channel::Sms => {
                    cur.channels
                        .sms_for(&m.community)
                        .send(&m, clock.now())
                        .await
                }
            };
            if m.channel == Channel::Email && matches!(outcome, Outcome::Sent { .. }) {
                super::failpoint::email_accepted(); // test hook, off unless WUYE_FAILPOINT
            }
            (cur, m, outcome)
        });
    }

    fn record(
        &self,
        done: Vec<(Arc<Current>, OutboxMessage, Outcome)>,
        report: &mut DispatchReport,
    ) -> anyhow::Result<()> {
        let now = self.clock.now();
        let mut answered = Vec::with_capacity(done.len());
        self.tx(|tx| {
            for (cur, m, outcome) in &done {
                let retry = &cur.settings.daemon.delivery.retry;
                let attempts = m.attempts + 1;
                let (status, next, pid, err) = match outcome {
                    Outcome::Sent { provider_id } => {
                        (Status::Sent, now, provider_id.as_deref(), None)
                    }
                    Outcome::Temporary(why) if attempts >= retry.max_attempts => (
                        Status::Dead,
                        now,
                        None,
                        Some(format!("gave up after {attempts} attempts: {why}")),
                    ),
                    Outcome::Temporary(why) => (
                        Status::Failed,
                        now + retry.backoff(attempts),
                        None,
                        Some(why.clone()),
                    ),
                    Outcome::Permanent(why) => (Status::Dead, now, None, Some(why.clone())),
                    Outcome::Unknown(why) => (Status::Unknown, now, None, Some(why.clone())),
                };
                tx.outbox_finish(m.id, status, next, pid, err.as_deref(), now)?;
                answered.push((m.channel, status));
                match status {
                    Status::Sent => {
                        report.sent += 1;
                        tracing::info!(id = m.id, community = %m.community, channel = %m.channel,
                            to = %m.masked_address(), "sent");
                    }
                    Status::Failed => {
                        report.failed += 1;
                        tracing::warn!(id = m.id, community = %m.community, channel = %m.channel,
                            to = %m.masked_address(), attempts, retry_at = %next,
                            error = err.as_deref().unwrap_or(""), "temporary failure");
                    }
                    Status::Dead => {
                        report.dead += 1;
                        tracing::error!(id = m.id, community = %m.community, channel = %m.channel,
                            to = %m.masked_address(), error = err.as_deref().unwrap_or(""),
                            "dead letter");
                    }
                    _ => {
                        report.unknown += 1;
                        tracing::error!(id = m.id, community = %m.community, channel = %m.channel,
                            to = %m.masked_address(), error = err.as_deref().unwrap_or(""),
                            "outcome unknown; held for a human");
                    }
                }
            }
            Ok(())
        })?;
        // Counted once the answers are committed: a batch that rolled back is tried again.
        for (channel, status) in answered {
            crate::metrics::send_answered(channel, status);
        }
        Ok(())
    }

    /// Runs until `shutdown` resolves: recovers, then dispatches whenever something is due or
    /// [`Dispatcher::waker`] is notified, sleeping on the injected clock in between.
    ///
    /// Returns an error only when it cannot start (recovery failed); the daemon runs it under
    /// [`super::supervise::supervise`], which starts it again.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        self.health.beat();
        self.recover()?;
        if let Err(e) = self.resolve_unknown().await {
            tracing::warn!(error = %format!("{e:#}"), "cannot ask providers about unknown SMS");
        }
        tokio::pin!(shutdown);
        loop {
            self.health.beat();
            // Read before the round: a change committed while it runs wakes the next one.
            let version = self.data_version();
            let now = self.clock.now();
            let mut pause = None;
            if let Err(e) = self.dispatch_once(now).await {
                // The database is busy or broken: say so and try again shortly, never spin.
                tracing::error!(error = %format!("{e:#}"), "outbox dispatch failed");
                pause = Some(now + Duration::seconds(5));
            }
            let next = match pause {
                Some(p) => Some(p),
                None => self.next_due().unwrap_or(Some(now + Duration::seconds(5))),
            };
            let sleep = async {
                match next {
                    Some(t) => self.clock.sleep_until(t).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = self.wake.notified() => {}
                _ = self.changed_elsewhere(version) => {}
                _ = sleep => {}
            }
        }
    }

    /// SQLite's `PRAGMA data_version` on the dispatcher's connection (see
    /// [`EXTERNAL_CHANGE_POLL`]); `None` when it cannot be read (the round reports why).
    fn data_version(&self) -> Option<i64> {
        let conn = self.conn();
        conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()
    }

    /// Resolves once another connection has committed since `version` was read.
    async fn changed_elsewhere(&self, version: Option<i64>) {
        loop {
            tokio::time::sleep(EXTERNAL_CHANGE_POLL).await;
            // Idle turns count: the loop is alive and its connection answers.
            self.health.beat();
            let now = self.data_version();
            if now.is_some() && now != version {
                return;
            }
        }
    }
}

/// What counts as "the same content" for a provider's repeat limit.
fn sms_content(m: &OutboxMessage) -> String {
    match &m.sms_code {
        Some(code) => format!(
            "{code}:{}",
            serde_json::to_string(&m.sms_params).unwrap_or_default()
        ),
        None => m.body_text.clone(),
    }
}

/// The community's local day around `now`: (its midnight, the next midnight), as UTC.
fn local_day(community: &Community, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let local = now.with_timezone(&community.tz).date_naive();
    let at = |d: chrono::NaiveDate| {
        community
            .tz
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now)
    };
    (at(local), at(local.succ_opt().unwrap_or(local)))
}
