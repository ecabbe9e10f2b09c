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
//! An answer the database would not take (the disk is full, the file system went read-only) is
//! not dropped: the dispatcher holds it in memory, claims nothing new while it holds any, and
//! tries to record it again with backoff (1 s doubling to 15 s), saying so once per episode.
//! Dropping it would leave its row `sending` until the next start, whose recovery resends the
//! email (one copy too many for the relay to dedupe if the owner's mailbox does not) and holds
//! the SMS for a human; claiming more would send messages whose answers could not be kept
//! either. Once the write goes through, sending resumes where it stopped. While the daemon
//! lives, a message whose send was answered is never claimed again before its answer is
//! recorded: its row stays `sending`, which no claim selects, and recovery records held answers
//! before it touches `sending` rows.
//!
//! A configuration reload ([`DispatcherReload`]) swaps the settings and channels between rounds:
//! a round claims, sends and records on one snapshot, so nothing in flight changes relay midway
//! and nothing is claimed twice.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Duration, TimeZone, Utc};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::channel::{Channels, Outcome};
use super::{Category, Channel, Directory, OutboxMessage, Relevance, Status, earliest_send};
use wuye_config::{Community, Settings};
use wuye_core::clock::SharedClock;
use wuye_store::Tx;

/// Longest an answer waits to be recorded while other sends of the batch are still running.
const RECORD_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// First pause before trying again to record answers the database refused (see the module
/// docs); doubles up to [`MAX_WRITE_PAUSE`]. Short enough that sending resumes within seconds of
/// space being freed, long enough that a full disk is not hammered.
const FIRST_WRITE_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_WRITE_PAUSE: std::time::Duration = std::time::Duration::from_secs(15);

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

/// A channel's answer to one send, kept until it is recorded.
struct Answer {
    /// The settings the message was claimed and sent under (its retry policy applies).
    cur: Arc<Current>,
    message: OutboxMessage,
    outcome: Outcome,
    /// When the answer came: the `sent_at` and retry base recorded, even if recorded late.
    at: DateTime<Utc>,
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
    /// Answers the database refused to record (a full disk), oldest first: recorded before
    /// anything else is claimed (see the module docs). Outlives a restart of [`Dispatcher::run`]
    /// by the supervisor, which reuses this dispatcher.
    held: Mutex<Vec<Answer>>,
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
        let conn = wuye_store::outbox::open(db)?;
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
            held: Mutex::new(Vec::new()),
            health: Default::default(),
        })
    }

    /// The settings of [`wuye_store::Store::for_throwaway_copy`] on the dispatcher's
    /// connection: only for `wuyed simulate`'s throwaway copy.
    pub fn for_throwaway_copy(self) -> anyhow::Result<Dispatcher> {
        wuye_store::throwaway(&self.conn())?;
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
        wuye_store::outbox::transaction_with(&mut conn, wuye_store::Patience::Forever, f)
    }

    /// Runs `f` on a snapshot: takes no lock, so never waits behind another process's write.
    fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>) -> anyhow::Result<T> {
        wuye_store::outbox::read(&mut self.conn(), f)
    }

    /// The dispatcher's connection. A panic while it was held (the supervisor restarts the
    /// dispatcher) cannot have left a transaction open: rusqlite rolls back on drop.
    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves messages a previous dispatcher left in `sending` (see the module docs).
    /// Returns how many went back to the queue and how many wait for a human.
    ///
    /// Answers this dispatcher holds are recorded first, and if they cannot be, nothing is
    /// recovered: their rows are `sending` too, and recovering them as interrupted would send
    /// again a message that went.
    pub fn recover(&self) -> anyhow::Result<(usize, usize)> {
        self.record_held(&mut DispatchReport::default())?;
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
    ///
    /// Answers held from an earlier round are recorded first; while they cannot be, nothing is
    /// claimed and the error is returned. A claim or a record that fails midway stops the
    /// claiming, lets the sends already handed over finish, holds every answer not recorded and
    /// returns the error: nothing in flight is abandoned in `sending`.
    pub async fn dispatch_once(&self, now: DateTime<Utc>) -> anyhow::Result<DispatchReport> {
        let mut report = DispatchReport::default();
        self.record_held(&mut report)?;
        let mut set: JoinSet<Answer> = JoinSet::new();
        // Answers not yet recorded. Recording every few milliseconds rather than one commit each
        // (a commit is an fsync) or once after the slowest send (a kill would then forget more)
        // keeps the exactly-once rule cheap: a message whose answer was not yet recorded stays
        // `sending`, becomes `unknown` at the next start and, for email, is resent with the same
        // Message-ID, which the receiving mailbox drops; an SMS is never blindly resent.
        let mut done = Vec::new();
        let mut since = std::time::Instant::now();
        let mut more = true;
        // The first write that failed this round; once set, nothing more is claimed and every
        // answer still to come is held, to be recorded by a later round.
        let mut failed: Option<anyhow::Error> = None;
        loop {
            self.health.beat();
            if more && failed.is_none() && set.len() <= self.batch / 2 {
                // One snapshot per claim: what is claimed under these settings is sent and
                // recorded under them, even if a reload lands meanwhile.
                let cur = self.snapshot();
                match self.claim(&cur, now, &mut report) {
                    Ok((any, claimed)) => {
                        more = any;
                        for m in claimed {
                            self.spawn_send(&mut set, &cur, m);
                        }
                    }
                    Err(e) => failed = Some(e.context("cannot claim due messages")),
                }
                continue;
            }
            let Some(r) = set.join_next().await else {
                break;
            };
            if done.is_empty() {
                since = std::time::Instant::now();
            }
            // A panic inside a send is answered `unknown` by the task itself (`contained`); a
            // task that still failed (cancelled at shutdown) leaves its row `sending`, which
            // becomes `unknown` at the next start.
            match r {
                Ok(answer) => done.push(answer),
                Err(e) => {
                    tracing::error!(error = %wuye_core::blocking::join_error_message(e), "send task panicked");
                }
            }
            while let Some(r) = set.try_join_next() {
                match r {
                    Ok(answer) => done.push(answer),
                    Err(e) => {
                        tracing::error!(error = %wuye_core::blocking::join_error_message(e), "send task panicked");
                    }
                }
            }
            if set.is_empty() || done.len() >= 128 || since.elapsed() >= RECORD_EVERY {
                let batch = std::mem::take(&mut done);
                if failed.is_some() {
                    self.hold(batch);
                } else if let Err(e) = self.record(&batch, &mut report) {
                    self.hold(batch);
                    failed = Some(e);
                }
            }
        }
        if !done.is_empty() {
            if failed.is_some() {
                self.hold(done);
            } else if let Err(e) = self.record(&done, &mut report) {
                self.hold(done);
                failed = Some(e);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Keeps answers the database refused, to be recorded by [`Dispatcher::record_held`].
    fn hold(&self, answers: Vec<Answer>) {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(answers);
    }

    /// How many answers are held, not yet recorded.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Records the answers held since a write failed, all in one transaction; on failure they
    /// stay held and the error is returned.
    fn record_held(&self, report: &mut DispatchReport) -> anyhow::Result<()> {
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(|p| p.into_inner()));
        if held.is_empty() {
            return Ok(());
        }
        match self.record(&held, report) {
            Ok(()) => {
                tracing::info!(
                    answers = held.len(),
                    "recorded the send answers held while the database could not be written"
                );
                Ok(())
            }
            Err(e) => {
                // Back in front: anything held meanwhile came later.
                let mut now_held = self.held.lock().unwrap_or_else(|p| p.into_inner());
                let later = std::mem::replace(&mut *now_held, held);
                now_held.extend(later);
                Err(e.context(format!(
                    "cannot record {} held send answer(s)",
                    now_held.len()
                )))
            }
        }
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
    fn spawn_send(&self, set: &mut JoinSet<Answer>, cur: &Arc<Current>, m: OutboxMessage) {
        let cur = cur.clone();
        let clock = self.clock.clone();
        set.spawn(async move {
            let email = &cur.settings.daemon.delivery.email;
            let outcome = contained(&m, async {
                match m.channel {
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
                }
            })
            .await;
            if m.channel == Channel::Email && matches!(outcome, Outcome::Sent { .. }) {
                super::failpoint::email_accepted(); // test hook, off unless WUYE_FAILPOINT
            }
            Answer {
                cur,
                message: m,
                outcome,
                at: clock.now(),
            }
        });
    }

    /// Records `answers` in one transaction. Logged and counted only once committed: a batch
    /// the database refused is held and recorded later, and must not read as sent meanwhile.
    fn record(&self, answers: &[Answer], report: &mut DispatchReport) -> anyhow::Result<()> {
        let settled: Vec<_> = answers.iter().map(settle).collect();
        self.tx(|tx| {
            for (a, (status, next, pid, err)) in answers.iter().zip(&settled) {
                tx.outbox_finish(a.message.id, *status, *next, *pid, err.as_deref(), a.at)?;
            }
            Ok(())
        })?;
        for (a, (status, next, _, err)) in answers.iter().zip(&settled) {
            let m = &a.message;
            let err = err.as_deref().unwrap_or("");
            match status {
                Status::Sent => {
                    report.sent += 1;
                    tracing::info!(id = m.id, community = %m.community, channel = %m.channel,
                        to = %m.masked_address(), "sent");
                }
                Status::Failed => {
                    report.failed += 1;
                    tracing::warn!(id = m.id, community = %m.community, channel = %m.channel,
                        to = %m.masked_address(), attempts = m.attempts + 1, retry_at = %next,
                        error = err, "temporary failure");
                }
                Status::Dead => {
                    report.dead += 1;
                    tracing::error!(id = m.id, community = %m.community, channel = %m.channel,
                        to = %m.masked_address(), error = err, "dead letter");
                }
                _ => {
                    report.unknown += 1;
                    tracing::error!(id = m.id, community = %m.community, channel = %m.channel,
                        to = %m.masked_address(), error = err, "outcome unknown; held for a human");
                }
            }
            wuye_metrics::send_answered(m.channel, *status);
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
        // Recovery records held answers first (a restart by the supervisor keeps them).
        self.recover()?;
        if let Err(e) = self.resolve_unknown().await {
            tracing::warn!(error = %format!("{e:#}"), "cannot ask providers about unknown SMS");
        }
        tokio::pin!(shutdown);
        let mut trouble = Trouble::default();
        loop {
            self.health.beat();
            // Read before the round: a change committed while it runs wakes the next one.
            let version = self.data_version();
            let now = self.clock.now();
            // Real time, not the injected clock: space is freed on the wall clock.
            let mut pause = None;
            match self.dispatch_once(now).await {
                Ok(_) => trouble.over(),
                // The database is full, read-only or broken: say so once, try again with
                // backoff, never spin. Held answers are retried first at each round.
                Err(e) => pause = Some(trouble.failed(&e, self.held())),
            }
            let next = match pause {
                Some(_) => None,
                None => self.next_due().unwrap_or(Some(now + Duration::seconds(5))),
            };
            let sleep = async {
                match (pause, next) {
                    (Some(p), _) => tokio::time::sleep(p).await,
                    (None, Some(t)) => self.clock.sleep_until(t).await,
                    (None, None) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => {
                    let held = self.held();
                    if held > 0 {
                        tracing::error!(
                            held,
                            "stopping with send answers the database would not take; their \
                             messages are recovered at the next start (email resent under its \
                             Message-ID, SMS held for `wuyed outbox retry ID`)"
                        );
                    }
                    return Ok(());
                }
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

/// What the answers of a send become in the outbox: status, next attempt, provider id, error.
fn settle(a: &Answer) -> (Status, DateTime<Utc>, Option<&str>, Option<String>) {
    let retry = &a.cur.settings.daemon.delivery.retry;
    let attempts = a.message.attempts + 1;
    let now = a.at;
    match &a.outcome {
        Outcome::Sent { provider_id } => (Status::Sent, now, provider_id.as_deref(), None),
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
    }
}

/// Runs one send of `m`. A panic inside it (a bug in a channel or in a library under it) is
/// answered like an interrupted send, and recorded with the round's other answers instead of
/// leaving the row `sending` until the daemon restarts: an email is tried again later with the
/// same Message-ID (which the receiving mailbox drops if the first copy got through), an SMS is
/// held `unknown` for a person, since it cannot be taken back. The panic's text is kept with the
/// address masked, as everything in the outbox's notes and the log.
async fn contained(m: &OutboxMessage, send: impl Future<Output = Outcome>) -> Outcome {
    use futures_util::FutureExt as _;
    match std::panic::AssertUnwindSafe(send).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let why = wuye_core::blocking::panic_message(panic)
                .replace(m.address.as_str(), &m.masked_address());
            tracing::error!(id = m.id, community = %m.community, channel = %m.channel,
                to = %m.masked_address(), error = %why, "a send panicked");
            match m.channel {
                Channel::Email => Outcome::Temporary(format!("the send {why}")),
                Channel::Sms => Outcome::Unknown(format!(
                    "the send {why}; check with the provider before retrying"
                )),
            }
        }
    }
}

/// One episode of failing rounds in [`Dispatcher::run`]: logged at error when it starts (and
/// when the error changes), quiet while it repeats, and at info when it ends, so a full disk
/// for an hour is a few lines, not thousands.
#[derive(Default)]
struct Trouble {
    /// When the episode started, the cause last logged, and the next pause.
    state: Option<(std::time::Instant, String, std::time::Duration)>,
}

impl Trouble {
    /// A round failed with `err`; returns how long to pause before the next.
    fn failed(&mut self, err: &anyhow::Error, held: usize) -> std::time::Duration {
        let text = format!("{err:#}");
        // The same cause with more answers held is the same episode.
        let cause = err.root_cause().to_string();
        let (_, logged, pause) = self
            .state
            .get_or_insert_with(|| (std::time::Instant::now(), String::new(), FIRST_WRITE_PAUSE));
        if *logged != cause {
            let what = if wuye_store::is_disk_full(err) {
                "the disk holding the database is full: the dispatcher cannot record what it \
                 sends, so it holds the answers in memory, claims nothing new and retries; free \
                 space on the data folder's file system (daemon.data_dir) and sending resumes"
            } else {
                "cannot write the outbox; send answers are held in memory, nothing new is \
                 claimed, and the write is retried"
            };
            tracing::error!(error = %text, held, retry_in_ms = pause.as_millis() as u64, "{what}");
            *logged = cause;
        } else {
            tracing::debug!(error = %text, held, "outbox write still failing");
        }
        let this = *pause;
        *pause = (*pause * 2).min(MAX_WRITE_PAUSE);
        this
    }

    /// A round went through: ends the episode, if any.
    fn over(&mut self) {
        if let Some((started, _, _)) = self.state.take() {
            tracing::info!(
                after_s = started.elapsed().as_secs(),
                "the outbox can be written again; sending resumed"
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A message on `channel` to `address`: the crate's test message, re-addressed.
    fn message(channel: Channel, address: &str) -> OutboxMessage {
        OutboxMessage {
            channel,
            address: address.into(),
            ..crate::tests::message("2026-03-02T01:00:00Z", "due")
        }
    }

    #[tokio::test]
    async fn a_panicking_sms_send_is_held_unknown_with_the_number_masked() {
        let m = message(Channel::Sms, "13800000001");
        let answered = contained(&m, async { panic!("bad reply for 13800000001") }).await;
        let Outcome::Unknown(why) = answered else {
            panic!("expected unknown, got {answered:?}");
        };
        assert!(why.contains("panicked: bad reply for 138****0001"), "{why}");
        assert!(!why.contains("13800000001"), "{why}");
        assert!(why.contains("check with the provider"), "{why}");
    }

    /// An email is tried again with its Message-ID, as after any interrupted send.
    #[tokio::test]
    async fn a_panicking_email_send_is_retried_later() {
        let m = message(Channel::Email, "owner@example.com");
        let answered = contained(&m, async { panic!("index out of bounds") }).await;
        assert!(
            matches!(&answered, Outcome::Temporary(why) if why.contains("panicked: index out of bounds")),
            "{answered:?}"
        );
    }

    #[tokio::test]
    async fn a_send_that_returns_keeps_its_answer() {
        let m = message(Channel::Email, "owner@example.com");
        let answered = contained(&m, async { Outcome::Temporary("421 busy".into()) }).await;
        assert!(
            matches!(answered, Outcome::Temporary(ref w) if w == "421 busy"),
            "{answered:?}"
        );
    }
}
