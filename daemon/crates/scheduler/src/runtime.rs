//! The scheduler's event loop.
//!
//! One task owns the plan: per (community, workflow) the last planned slot (mirrored from the
//! store's cursor) and the next due instant. Each pass, on the injected clock's "now":
//!
//! 1. slots between the cursor and now are recorded, in one transaction with the cursor: on-time
//!    slots to run (at their deterministic jitter), late ones (daemon was down or asleep) through
//!    [`schedule::catch_up`], so every slot that will not run is a `missed` row with its reason;
//! 2. due timers become runs;
//! 3. due runs are claimed and handed to the [`Executor`], at most `concurrency` at once and never
//!    two of the same workflow (the later waits for the earlier to finish);
//! 4. the loop sleeps until the earliest next slot, jittered run start or timer, in one `select!`
//!    with finished runs, reload/shutdown commands and explicit wake-ups. No polling.
//!
//! Nothing here is the source of truth: a crash loses only what was in flight, and in-flight runs
//! are redone at the next start because their effects commit with their `done` mark.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::{JoinError, JoinSet};

use super::{Executor, RunRequest};
use wuye_config::{CatchUp, Community, Settings, Workflow};
use wuye_core::blocking::Blocking;
use wuye_core::clock::SharedClock;
use wuye_metrics::{self as metrics, RunOutcome};
use wuye_schedule::{self as schedule, Slot, SlotFate, jitter_for};
use wuye_store::{PlannedSlot, RunRow, SlotPlan, Store, WorkflowPlan};

/// "The first slot strictly after this instant", for one workflow: due, or skipped by the
/// business calendar with the reason (recorded as missed, never dropped).
pub type NextSlot = Arc<dyn Fn(DateTime<Utc>) -> Option<Slot> + Send + Sync>;

/// Where the scheduler gets a workflow's slots. Production uses the configured
/// [`schedule::Schedule`] ([`configured_slots`]); tests give simple fixed intervals. `None`: the
/// workflow has no schedule (it only reacts to events and timers).
pub type SlotSource = Arc<dyn Fn(&Community, &Workflow) -> Option<NextSlot> + Send + Sync>;

/// The workflow's crontab, zone and calendar, as configured.
pub fn configured_slots() -> SlotSource {
    Arc::new(|_community, workflow| {
        let schedule = workflow.schedule.clone()?;
        Some(Arc::new(move |after| schedule.next_slot_after(after)) as NextSlot)
    })
}

/// A slot is "late" (handled by the catch-up policy) when the scheduler first sees it more than
/// this long after its due instant: longer than any wake-up delay of a healthy daemon, shorter
/// than anything an administrator would call downtime.
fn late_after() -> chrono::Duration {
    chrono::Duration::minutes(2)
}

/// Slots planned for one workflow in one pass. Beyond this (a per-second schedule after a long
/// outage) the rest is planned in the following passes; memory stays bounded.
const MAX_SLOTS_PER_PASS: usize = 10_000;

/// Due runs looked at per pass.
const DUE_BATCH: usize = 256;

/// After a database error the pass is retried this much later (clock time).
fn retry_after_error() -> chrono::Duration {
    chrono::Duration::seconds(5)
}

type Key = (String, String);

struct Entry {
    community: Arc<Community>,
    workflow: Workflow,
    next: Option<NextSlot>,
    /// The last slot recorded (run or missed), as in the store.
    cursor: DateTime<Utc>,
    /// The first slot after `cursor` (possibly one the calendar skips).
    next_due: Option<Slot>,
}

/// What the loop last saw: for tests (wait until time `t` has been fully handled) and health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The clock reading of the last completed pass.
    pub now: DateTime<Utc>,
    /// Runs being executed.
    pub in_flight: usize,
    /// Completed passes since start.
    pub passes: u64,
    /// When the loop will wake by itself next (`None`: only when told to).
    pub sleeping_until: Option<DateTime<Utc>>,
}

enum Command {
    Reload(Box<Settings>, oneshot::Sender<()>),
    Shutdown(Duration),
}

/// Builds and starts the scheduler.
pub struct Scheduler {
    store: Arc<Store>,
    clock: SharedClock,
    executor: Arc<dyn Executor>,
    slots: SlotSource,
    concurrency: usize,
    committed: Option<Arc<Notify>>,
    blocking: Blocking,
}

impl Scheduler {
    pub fn new(store: Arc<Store>, clock: SharedClock, executor: Arc<dyn Executor>) -> Self {
        Scheduler {
            store,
            clock,
            executor,
            slots: configured_slots(),
            concurrency: 4,
            committed: None,
            blocking: Blocking::Pool,
        }
    }

    /// Where runs' effects are committed (`wuyed simulate`: in place; see [`Blocking`]).
    pub fn with_blocking(mut self, blocking: Blocking) -> Self {
        self.blocking = blocking;
        self
    }

    /// Notified after each run whose committed effects queued messages, so the outbox
    /// dispatcher sends them now rather than at its next planned wake-up.
    pub fn notify_on_messages(mut self, committed: Arc<Notify>) -> Self {
        self.committed = Some(committed);
        self
    }

    /// Replaces where slots come from (tests; `wuyed simulate` keeps the default).
    pub fn with_slots(mut self, slots: SlotSource) -> Self {
        self.slots = slots;
        self
    }

    /// How many runs may execute at once (across all communities). At least 1.
    pub fn with_concurrency(mut self, runs: usize) -> Self {
        self.concurrency = runs.max(1);
        self
    }

    /// Resets runs a previous process left `running`, loads every workflow's cursor (a workflow
    /// seen for the first time starts from now: nothing is back-filled), logs each workflow's next
    /// slot, and starts the loop. Errors here (database) are returned before anything ran.
    pub async fn start(self, settings: &Settings) -> anyhow::Result<SchedulerHandle> {
        let now = self.clock.now();
        for run in self.store.reset_interrupted(now)? {
            tracing::warn!(
                community = %run.community,
                workflow = %run.workflow,
                run_id = run.id,
                due = %run.due_at.to_rfc3339(),
                attempt = run.attempt,
                "run was interrupted by the previous stop; it will be redone (nothing of it was applied)"
            );
        }
        let entries = build_entries(&self.store, &self.slots, settings, now)?;
        let mut stale: HashMap<Key, Vec<RunRow>> = HashMap::new();
        for run in self.store.overdue_schedule_runs(now - late_after())? {
            stale
                .entry((run.community.clone(), run.workflow.clone()))
                .or_default()
                .push(run);
        }
        log_next(&entries);

        let (commands_tx, commands) = mpsc::unbounded_channel();
        let wake = Arc::new(Notify::new());
        // Not a single pass yet: a status no instant is "settled" by.
        let (status_tx, status) = watch::channel(Status {
            now: DateTime::<Utc>::MIN_UTC,
            in_flight: 0,
            passes: 0,
            sleeping_until: None,
        });
        let runner = Runner {
            store: self.store,
            clock: self.clock,
            executor: self.executor,
            slots: self.slots,
            concurrency: self.concurrency,
            committed: self.committed,
            blocking: self.blocking,
            entries,
            tasks: JoinSet::new(),
            in_flight: HashMap::new(),
            busy: HashSet::new(),
            stale,
            commands,
            wake: wake.clone(),
            status: status_tx,
            passes: 0,
        };
        let task = tokio::spawn(runner.run());
        Ok(SchedulerHandle {
            commands: commands_tx,
            wake,
            status,
            task,
        })
    }
}

/// Talks to a running scheduler.
pub struct SchedulerHandle {
    commands: mpsc::UnboundedSender<Command>,
    wake: Arc<Notify>,
    status: watch::Receiver<Status>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl SchedulerHandle {
    /// Wakes the loop now: call after queueing an event run or setting a timer outside a run.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A waker to hand to other subsystems (the HTTP API queues event runs).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Swaps in a new, already validated configuration. Cursors live in the store, so this never
    /// re-plans a slot; new workflows start from now. Returns once the swap happened.
    pub async fn reload(&self, settings: Settings) -> anyhow::Result<()> {
        let (ack, done) = oneshot::channel();
        self.commands
            .send(Command::Reload(Box::new(settings), ack))
            .map_err(|_| anyhow::anyhow!("the scheduler has stopped"))?;
        done.await
            .map_err(|_| anyhow::anyhow!("the scheduler stopped during the reload"))
    }

    /// A probe of the loop's health, for the systemd watchdog: see [`Liveness`].
    pub fn liveness(&self) -> Liveness {
        Liveness {
            wake: self.wake.clone(),
            status: self.status.clone(),
        }
    }

    /// The loop's last status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Waits until everything due by `at` has been recorded and finished (run, failed or missed)
    /// and nothing is in flight: the loop has looked at the clock at `at` or later, or is asleep
    /// until after `at`. For tests and simulations with a manual clock.
    pub async fn settled(&self, at: DateTime<Utc>) {
        let mut status = self.status.clone();
        let _ = status
            .wait_for(|s| {
                s.in_flight == 0 && (s.now >= at || s.sleeping_until.is_some_and(|w| w > at))
            })
            .await;
    }

    /// Stops planning and claiming, lets runs in flight finish for up to `grace`, then abandons
    /// the rest: their effects were not applied, so they are redone at the next start.
    pub async fn shutdown(self, grace: Duration) -> anyhow::Result<()> {
        let _ = self.commands.send(Command::Shutdown(grace));
        match self.task.await {
            Ok(result) => result,
            Err(err) => Err(anyhow::anyhow!("the scheduler task failed: {err}")),
        }
    }
}

/// Asks the scheduler loop to prove it is alive: a nudge makes it take a full pass (plan due
/// slots, read timers, claim runs: the database included), and the probe waits for that pass to
/// be counted. A loop that is wedged (a pass stuck on the database, a panic, a stop) does not
/// answer, so the systemd watchdog is not fed and systemd restarts the daemon.
#[derive(Clone)]
pub struct Liveness {
    wake: Arc<Notify>,
    status: watch::Receiver<Status>,
}

impl Liveness {
    /// Whether the loop completed a pass within `within` of being nudged.
    pub async fn answers(&mut self, within: Duration) -> bool {
        let before = self.status.borrow_and_update().passes;
        self.wake.notify_one();
        let answered = self.status.wait_for(|s| s.passes > before);
        matches!(tokio::time::timeout(within, answered).await, Ok(Ok(_)))
    }
}

/// Per-workflow state from the configuration and the store's cursors. Workflows seen for the
/// first time get a cursor of `now`, recorded at once, so a restart an hour later still knows the
/// hour it missed.
fn build_entries(
    store: &Store,
    slots: &SlotSource,
    settings: &Settings,
    now: DateTime<Utc>,
) -> anyhow::Result<BTreeMap<Key, Entry>> {
    let cursors = store.cursors()?;
    let mut entries = BTreeMap::new();
    let mut fresh = Vec::new();
    for community in &settings.communities {
        for workflow in &community.workflows {
            let key = (community.id.clone(), workflow.name.clone());
            // Only enabled workflows are in the settings; a disabled one's queued runs find no
            // entry and are recorded as missed with that reason.
            let next = slots(community, workflow);
            let cursor = match cursors.get(&key) {
                Some(cursor) => *cursor,
                None => {
                    if next.is_some() {
                        fresh.push(key.clone());
                    }
                    now
                }
            };
            let next_due = next.as_ref().and_then(|n| n(cursor));
            entries.insert(
                key,
                Entry {
                    community: community.clone(),
                    workflow: workflow.clone(),
                    next,
                    cursor,
                    next_due,
                },
            );
        }
    }
    if !fresh.is_empty() {
        let plans: Vec<WorkflowPlan<'_>> = fresh
            .iter()
            .map(|(community, workflow)| WorkflowPlan {
                community,
                workflow,
                slots: &[],
                cursor: now,
            })
            .collect();
        store.plan_batch(&plans, now)?;
    }
    Ok(entries)
}

fn log_next(entries: &BTreeMap<Key, Entry>) {
    for ((community, workflow), entry) in entries {
        match next_run(entry) {
            Some(next) => tracing::info!(
                %community,
                %workflow,
                next = %next.with_timezone(&entry.community.tz).to_rfc3339(),
                "next run"
            ),
            None if entry.next.is_some() => {
                tracing::info!(%community, %workflow, next = "never", "next run")
            }
            None => tracing::info!(
                %community,
                %workflow,
                next = "on events and timers only",
                "next run"
            ),
        }
    }
}

/// The next slot that will actually run (skipping calendar-skipped ones), for the log.
fn next_run(entry: &Entry) -> Option<DateTime<Utc>> {
    let next = entry.next.as_ref()?;
    let mut slot = entry.next_due.clone()?;
    for _ in 0..1000 {
        if slot.skipped.is_none() {
            return Some(slot.at);
        }
        slot = next(slot.at)?;
    }
    None
}

struct Runner {
    store: Arc<Store>,
    clock: SharedClock,
    executor: Arc<dyn Executor>,
    slots: SlotSource,
    concurrency: usize,
    committed: Option<Arc<Notify>>,
    blocking: Blocking,
    entries: BTreeMap<Key, Entry>,
    tasks: JoinSet<()>,
    in_flight: HashMap<tokio::task::Id, (Key, i64)>,
    busy: HashSet<Key>,
    /// Schedule runs found planned but long overdue at start (the daemon stopped before starting
    /// them), by workflow: handed to the catch-up policy in the first pass.
    stale: HashMap<Key, Vec<RunRow>>,
    commands: mpsc::UnboundedReceiver<Command>,
    wake: Arc<Notify>,
    status: watch::Sender<Status>,
    passes: u64,
}

/// Why the loop woke.
enum Woke {
    Time,
    Finished(Result<(tokio::task::Id, ()), JoinError>),
    Command(Option<Command>),
    Nudged,
    GraceOver,
}

impl Runner {
    async fn run(mut self) -> anyhow::Result<()> {
        let mut stop_by: Option<tokio::time::Instant> = None;
        loop {
            let now = self.clock.now();
            let mut wake_at = None;
            if stop_by.is_none() {
                match self.pass(now) {
                    Ok(next) => wake_at = next,
                    Err(err) => {
                        tracing::error!(error = %format!("{err:#}"), "scheduler pass failed; retrying shortly");
                        wake_at = Some(now + retry_after_error());
                    }
                }
            } else if self.tasks.is_empty() {
                return Ok(());
            }
            self.passes += 1;
            tracing::trace!(%now, in_flight = self.tasks.len(), ?wake_at, "pass done");
            self.status.send_replace(Status {
                now,
                in_flight: self.tasks.len(),
                passes: self.passes,
                sleeping_until: wake_at,
            });

            let woke = {
                let clock = self.clock.clone();
                let sleep = async {
                    match wake_at {
                        Some(at) => clock.sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let grace = async {
                    match stop_by {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = sleep => Woke::Time,
                    Some(joined) = self.tasks.join_next_with_id() => Woke::Finished(joined),
                    command = self.commands.recv(), if stop_by.is_none() => Woke::Command(command),
                    () = self.wake.notified() => Woke::Nudged,
                    () = grace => Woke::GraceOver,
                }
            };
            match woke {
                Woke::Time => tracing::trace!("woke: time"),
                Woke::Nudged => tracing::trace!("woke: nudged"),
                Woke::Finished(joined) => self.finished(joined),
                Woke::Command(Some(Command::Reload(settings, ack))) => {
                    self.reload(&settings);
                    let _ = ack.send(());
                }
                Woke::Command(Some(Command::Shutdown(grace))) => {
                    tracing::info!(in_flight = self.tasks.len(), "scheduler stopping");
                    stop_by = Some(tokio::time::Instant::now() + grace);
                }
                Woke::Command(None) => {
                    // Every handle is gone: nobody can ask us to stop politely any more.
                    stop_by = Some(tokio::time::Instant::now());
                }
                Woke::GraceOver => {
                    let left: Vec<i64> = self.in_flight.values().map(|(_, id)| *id).collect();
                    tracing::warn!(
                        runs = ?left,
                        "runs still in flight at shutdown were abandoned; none of their effects \
                         were applied and they will be redone at the next start"
                    );
                    self.tasks.abort_all();
                    return Ok(());
                }
            }
        }
    }

    /// One planning pass; returns when to wake next.
    fn pass(&mut self, now: DateTime<Utc>) -> anyhow::Result<Option<DateTime<Utc>>> {
        self.plan(now)?;
        // Read first: most passes have no timer due, and a write transaction would take the
        // database's write lock for nothing.
        if self.store.next_timer_at()?.is_some_and(|t| t <= now) {
            let fired = self.store.fire_due_timers(now)?;
            tracing::debug!(fired, "timers fired");
        }
        self.dispatch(now)?;
        let mut wake = self
            .entries
            .values()
            .filter_map(|e| e.next_due.as_ref().map(|s| s.at))
            .min();
        for at in [
            self.store.next_run_at_after(now)?,
            self.store.next_timer_at()?,
        ]
        .into_iter()
        .flatten()
        {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        Ok(wake)
    }

    /// Records every slot that came due, run or missed, with the cursors, in one transaction.
    fn plan(&mut self, now: DateTime<Utc>) -> anyhow::Result<()> {
        let mut planned: Vec<(Key, Vec<PlannedSlot>, DateTime<Utc>)> = Vec::new();
        let mut stale = std::mem::take(&mut self.stale);
        for (key, entry) in &self.entries {
            let mut due = Vec::new();
            let mut truncated = false;
            if let (Some(next), Some(first)) = (&entry.next, &entry.next_due)
                && first.at <= now
            {
                due.push(first.clone());
                loop {
                    if due.len() >= MAX_SLOTS_PER_PASS {
                        truncated = true;
                        break;
                    }
                    let last = due[due.len() - 1].at;
                    match next(last) {
                        // `> last` guards against a schedule that does not move forward.
                        Some(slot) if slot.at <= now && slot.at > last => due.push(slot),
                        _ => break,
                    }
                }
            }
            let cursor = due.last().map_or(entry.cursor, |s| s.at);
            // Runs planned before a stop but never started are late slots like the new ones:
            // the catch-up policy decides about all of them together.
            let mut all: Vec<Slot> = stale
                .get(key)
                .into_iter()
                .flatten()
                .map(|run| Slot {
                    at: run.due_at,
                    skipped: None,
                })
                .collect();
            if due.is_empty() && all.is_empty() {
                continue;
            }
            all.extend(due);
            all.sort_by_key(|s| s.at);
            let slots = decide(key, entry, &all, now, truncated);
            planned.push((key.clone(), slots, cursor));
        }
        if planned.is_empty() {
            return Ok(());
        }
        let plans: Vec<WorkflowPlan<'_>> = planned
            .iter()
            .map(|((community, workflow), slots, cursor)| WorkflowPlan {
                community,
                workflow,
                slots,
                cursor: *cursor,
            })
            .collect();
        let outcomes = match self.store.plan_batch(&plans, now) {
            Ok(outcomes) => outcomes,
            Err(err) => {
                // Nothing was written: the next attempt must see the same overdue runs.
                self.stale = stale;
                return Err(err);
            }
        };
        for ((key, slots, cursor), outcome) in planned.iter().zip(outcomes) {
            // Existing rows were left alone by the insert; those the policy now misses are
            // marked so here.
            for run in stale.remove(key).unwrap_or_default() {
                let fate = slots.iter().find(|s| s.due_at == run.due_at);
                if let Some(PlannedSlot {
                    plan: SlotPlan::Missed { reason },
                    ..
                }) = fate
                    && self.store.mark_missed(run.id, now, reason)?
                {
                    metrics::runs_recorded(&key.0, &key.1, RunOutcome::Missed, 1);
                }
            }
            let missed: Vec<_> = slots
                .iter()
                .filter_map(|s| match &s.plan {
                    SlotPlan::Missed { reason } => Some((s.due_at, reason)),
                    SlotPlan::Run => None,
                })
                .collect();
            const SHOWN: usize = 5;
            for (due, reason) in missed.iter().rev().take(SHOWN) {
                tracing::warn!(
                    community = %key.0,
                    workflow = %key.1,
                    due = %due.to_rfc3339(),
                    %reason,
                    "slot missed"
                );
            }
            if missed.len() > SHOWN {
                tracing::warn!(
                    community = %key.0,
                    workflow = %key.1,
                    missed = missed.len(),
                    oldest = %missed[0].0.to_rfc3339(),
                    "slots missed (only the latest {SHOWN} logged; all are recorded)"
                );
            }
            metrics::runs_recorded(&key.0, &key.1, RunOutcome::Missed, outcome.missed as u64);
            tracing::debug!(
                community = %key.0,
                workflow = %key.1,
                new_runs = outcome.runs,
                new_missed = outcome.missed,
                "slots planned"
            );
            if let Some(entry) = self.entries.get_mut(key) {
                entry.cursor = *cursor;
                entry.next_due = entry.next.as_ref().and_then(|n| n(*cursor));
            }
        }
        Ok(())
    }

    /// Claims due runs and starts them, oldest first, within the concurrency bound and never two
    /// of one workflow at once.
    fn dispatch(&mut self, now: DateTime<Utc>) -> anyhow::Result<()> {
        if self.tasks.len() >= self.concurrency {
            return Ok(());
        }
        for run in self.store.due_runs(now, DUE_BATCH)? {
            if self.tasks.len() >= self.concurrency {
                break;
            }
            let key = (run.community.clone(), run.workflow.clone());
            if self.busy.contains(&key) {
                // Overlap: this one waits for the running one; its completion wakes us.
                continue;
            }
            let Some(entry) = self.entries.get(&key) else {
                let reason = format!(
                    "community {:?} has no enabled workflow {:?} in the configuration any more",
                    run.community, run.workflow
                );
                if self.store.mark_missed(run.id, now, &reason)? {
                    metrics::runs_recorded(&key.0, &key.1, RunOutcome::Missed, 1);
                    tracing::warn!(community = %key.0, workflow = %key.1, run_id = run.id, %reason, "run missed");
                }
                continue;
            };
            let Some(claimed) = self.store.claim(run.id, now)? else {
                // Taken by another handle, or that handle runs this workflow right now.
                continue;
            };
            let request = RunRequest {
                run_id: claimed.id,
                community: entry.community.clone(),
                workflow: entry.workflow.clone(),
                due_at: claimed.due_at,
                trigger: claimed.trigger.clone(),
            };
            tracing::info!(
                community = %key.0,
                workflow = %key.1,
                run_id = claimed.id,
                due = %claimed.due_at.with_timezone(&entry.community.tz).to_rfc3339(),
                attempt = claimed.attempt,
                "run started"
            );
            let abort = self.tasks.spawn(execute(
                self.store.clone(),
                self.clock.clone(),
                self.executor.clone(),
                self.committed.clone(),
                self.blocking,
                request,
            ));
            self.in_flight.insert(abort.id(), (key.clone(), claimed.id));
            self.busy.insert(key);
        }
        Ok(())
    }

    fn finished(&mut self, joined: Result<(tokio::task::Id, ()), JoinError>) {
        let id = match &joined {
            Ok((id, ())) => *id,
            Err(err) => err.id(),
        };
        let Some((key, run_id)) = self.in_flight.remove(&id) else {
            return;
        };
        self.busy.remove(&key);
        if let Err(err) = joined
            && err.is_panic()
        {
            let message = wuye_core::blocking::join_error_message(err);
            tracing::error!(community = %key.0, workflow = %key.1, run_id, error = %message, "run failed");
            match self.store.fail_run(run_id, self.clock.now(), &message) {
                Ok(()) => metrics::runs_recorded(&key.0, &key.1, RunOutcome::Failed, 1),
                Err(db) => {
                    tracing::error!(run_id, error = %format!("{db:#}"), "could not record the failure; the run will be redone at the next start");
                }
            }
        }
    }

    fn reload(&mut self, settings: &Settings) {
        let now = self.clock.now();
        match build_entries(&self.store, &self.slots, settings, now) {
            Ok(entries) => {
                self.entries = entries;
                tracing::info!(
                    communities = settings.communities.len(),
                    workflows = self.entries.len(),
                    "scheduler reloaded the configuration"
                );
                log_next(&self.entries);
            }
            Err(err) => tracing::error!(
                error = %format!("{err:#}"),
                "reload failed in the store; still on the previous configuration"
            ),
        }
    }
}

/// Decides the fate of the slots found due for one workflow this pass (oldest first).
fn decide(
    key: &Key,
    entry: &Entry,
    due: &[Slot],
    now: DateTime<Utc>,
    truncated: bool,
) -> Vec<PlannedSlot> {
    // Slots the calendar skips are recorded with the calendar's reason; the rest are either on
    // time or late, and late ones go through the catch-up policy.
    let (skipped, due): (Vec<&Slot>, Vec<&Slot>) = due.iter().partition(|s| s.skipped.is_some());
    let due: Vec<DateTime<Utc>> = due.iter().map(|s| s.at).collect();
    let late_before = now - late_after();
    let split = due.partition_point(|t| *t < late_before);
    let (late, on_time) = due.split_at(split);
    let policy = entry.workflow.catch_up;
    let mut fates: Vec<(DateTime<Utc>, SlotFate)> = if late.is_empty() {
        Vec::new()
    } else {
        schedule::catch_up_in(
            late,
            now,
            policy,
            entry.workflow.catch_up_window,
            entry.community.tz,
        )
    };
    // Under `latest`, a late slot runs only if it is the most recent one: not when a later slot
    // is on time, nor when more slots follow in the next pass.
    if policy == CatchUp::Latest && (truncated || !on_time.is_empty()) {
        let superseded_by = on_time.first().copied();
        for (_, fate) in &mut fates {
            if *fate == SlotFate::Run {
                *fate = SlotFate::Missed {
                    reason: match superseded_by {
                        Some(t) => format!(
                            "missed: catch_up = latest, superseded by {} (on time)",
                            t.with_timezone(&entry.community.tz).to_rfc3339()
                        ),
                        None => "missed: catch_up = latest, superseded by a later slot".to_string(),
                    },
                };
            }
        }
    }
    fates.extend(on_time.iter().map(|t| (*t, SlotFate::Run)));
    fates.extend(skipped.iter().map(|s| {
        (
            s.at,
            SlotFate::Missed {
                reason: s.skipped.clone().unwrap_or_default(),
            },
        )
    }));
    fates.sort_by_key(|(t, _)| *t);
    fates
        .into_iter()
        .map(|(due_at, fate)| PlannedSlot {
            due_at,
            run_at: due_at + jitter_for(&key.0, &key.1, due_at, entry.workflow.jitter),
            plan: match fate {
                SlotFate::Run => SlotPlan::Run,
                SlotFate::Missed { reason } => SlotPlan::Missed { reason },
            },
        })
        .collect()
}

/// Executes one claimed run and records its outcome: effects and `done` in one transaction, or
/// `failed` with the error and nothing applied.
async fn execute(
    store: Arc<Store>,
    clock: SharedClock,
    executor: Arc<dyn Executor>,
    committed: Option<Arc<Notify>>,
    blocking: Blocking,
    request: RunRequest,
) {
    let run_id = request.run_id;
    let community = request.community.id.clone();
    let workflow = request.workflow.name.clone();
    let outcome = match executor.execute(request).await {
        Ok(effects) => {
            let store = store.clone();
            let now = clock.now();
            match blocking
                .run(move || store.complete_run(run_id, now, effects))
                .await
            {
                Ok(result) => result,
                Err(panic) => Err(anyhow::anyhow!(
                    "applying the run's effects failed: {panic}"
                )),
            }
        }
        Err(err) => Err(err),
    };
    if let (Ok(summary), Some(committed)) = (&outcome, &committed)
        && summary.messages > 0
    {
        committed.notify_one();
    }
    match outcome {
        Ok(summary) => {
            metrics::runs_recorded(&community, &workflow, RunOutcome::Done, 1);
            tracing::info!(
                %community,
                %workflow,
                run_id,
                summary = %summary.describe(),
                "run done"
            )
        }
        // The commit met another process's lock and gave up (a store with bounded patience), or
        // the disk was full: nothing was applied, so the run is redone from scratch shortly, not
        // failed for good (neither is the plugin's fault).
        Err(err)
            if wuye_store::lock::is_lock_conflict_any(&err) || wuye_store::is_disk_full(&err) =>
        {
            let message = format!("{err:#}");
            tracing::warn!(%community, %workflow, run_id, error = %message, "run's commit could not be written; it will be redone");
            // Putting it back in line is a write too, which a full disk refuses: retried with
            // backoff (real time: space is freed on the wall clock) until it goes through or
            // the scheduler stops, rather than leaving the run `running` until the next start.
            let mut pause = std::time::Duration::from_secs(1);
            loop {
                let (store2, message) = (store.clone(), message.clone());
                let now = clock.now();
                let requeued = blocking
                    .run(move || {
                        store2.requeue_run(run_id, now, now + retry_after_error(), &message)
                    })
                    .await;
                match requeued {
                    Ok(Ok(_)) => break,
                    Ok(Err(e)) if wuye_store::is_disk_full(&e) => {
                        tracing::debug!(run_id, error = %format!("{e:#}"), "cannot put the run back in line yet");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(std::time::Duration::from_secs(15));
                    }
                    _ => {
                        tracing::error!(
                            run_id,
                            "could not put the run back in line; it will be redone at the next start"
                        );
                        break;
                    }
                }
            }
        }
        Err(err) => {
            let message = format!("{err:#}");
            tracing::error!(%community, %workflow, run_id, error = %message, "run failed");
            let store2 = store.clone();
            let now = clock.now();
            let recorded = blocking
                .run(move || store2.fail_run(run_id, now, &message))
                .await;
            if matches!(recorded, Ok(Ok(()))) {
                metrics::runs_recorded(&community, &workflow, RunOutcome::Failed, 1);
            } else {
                tracing::error!(
                    run_id,
                    "could not record the failure; the run will be redone at the next start"
                );
            }
        }
    }
}
