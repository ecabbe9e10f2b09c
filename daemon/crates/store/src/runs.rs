//! The scheduler's SQL: run rows, workflow cursors, durable timers, audit.
//!
//! The guarantees live here, not in the scheduler's memory:
//! - a schedule slot becomes a row exactly once (UNIQUE index + `INSERT OR IGNORE`, in the same
//!   transaction that advances the workflow's cursor);
//! - a run is claimed by at most one executor, and never while another run of the same
//!   (community, workflow) is running (a conditional `UPDATE ... RETURNING`);
//! - a run's effects and its `done` mark commit in one transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension as _, Row, params};

use super::{Store, Tx, parse_ts, ts};

/// Why a run happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A schedule slot came due.
    Schedule,
    /// A durable timer set by a plugin fired; the payload is the plugin's.
    Timer { timer_id: i64, payload: String },
    /// Something happened (ticket closed, payment posted, survey answered).
    Event { kind: String, payload: String },
}

/// The decisions of a run, applied atomically with its completion.
pub type Effects = Box<dyn FnOnce(&Tx<'_>) -> anyhow::Result<EffectSummary> + Send>;

/// What a run did, for the audit table and the log.
#[derive(Debug, Clone, Default)]
pub struct EffectSummary {
    pub messages: usize,
    pub timers: usize,
    pub notes: Vec<String>,
}

impl EffectSummary {
    /// One line for the audit table and the log: `2 message(s), 1 timer(s); note; note`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} message(s), {} timer(s)", self.messages, self.timers);
        for note in &self.notes {
            text.push_str("; ");
            text.push_str(note);
        }
        text
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Waiting for its `run_at`.
    Planned,
    /// Claimed by an executor. Left over at start-up, it means the daemon died mid-run: its effects
    /// never committed, so it is reset to `Planned` and redone.
    Running,
    Done,
    Failed,
    /// Will not run; `reason` says why.
    Missed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Planned => "planned",
            RunState::Running => "running",
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Missed => "missed",
        }
    }

    fn parse(text: &str) -> rusqlite::Result<RunState> {
        Ok(match text {
            "planned" => RunState::Planned,
            "running" => RunState::Running,
            "done" => RunState::Done,
            "failed" => RunState::Failed,
            "missed" => RunState::Missed,
            other => {
                return Err(rusqlite::Error::InvalidColumnType(
                    0,
                    format!("state {other:?}"),
                    rusqlite::types::Type::Text,
                ));
            }
        })
    }
}

/// What to do with one schedule slot being planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotPlan {
    Run,
    Missed { reason: String },
}

/// One schedule slot to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSlot {
    pub due_at: DateTime<Utc>,
    /// `due_at` plus jitter; ignored for missed slots.
    pub run_at: DateTime<Utc>,
    pub plan: SlotPlan,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub community: String,
    pub workflow: String,
    pub due_at: DateTime<Utc>,
    pub run_at: DateTime<Utc>,
    pub trigger: Trigger,
    pub state: RunState,
    pub attempt: u32,
    /// Why a missed run did not run.
    pub reason: Option<String>,
    /// Why a failed run failed.
    pub error: Option<String>,
}

const RUN_COLUMNS: &str = "id, community, workflow, due_at, run_at, trigger_kind, trigger_key, \
                           payload, event_kind, timer_id, state, attempt, reason, error";

fn run_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    // Column 6 (trigger_key) is only for uniqueness.
    let kind: String = r.get(5)?;
    let payload: String = r.get(7)?;
    let trigger = match kind.as_str() {
        "timer" => Trigger::Timer {
            timer_id: r.get::<_, Option<i64>>(9)?.unwrap_or_default(),
            payload,
        },
        "event" => Trigger::Event {
            kind: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
            payload,
        },
        _ => Trigger::Schedule,
    };
    Ok(RunRow {
        id: r.get(0)?,
        community: r.get(1)?,
        workflow: r.get(2)?,
        due_at: parse_ts(&r.get::<_, String>(3)?)?,
        run_at: parse_ts(&r.get::<_, String>(4)?)?,
        trigger,
        state: RunState::parse(&r.get::<_, String>(10)?)?,
        attempt: r.get(11)?,
        reason: r.get(12)?,
        error: r.get(13)?,
    })
}

/// The slots of one workflow to record, and where its cursor moves.
#[derive(Debug, Clone)]
pub struct WorkflowPlan<'a> {
    pub community: &'a str,
    pub workflow: &'a str,
    pub slots: &'a [PlannedSlot],
    /// The last slot considered (run or missed); a workflow seen for the first time gets "now".
    pub cursor: DateTime<Utc>,
}

/// What [`Store::plan_slots`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOutcome {
    /// New rows to run (slots another daemon or an earlier attempt already planned are not
    /// counted).
    pub runs: usize,
    /// New rows recorded as missed.
    pub missed: usize,
}

impl Store {
    /// The last slot planned for a workflow, if it was ever planned.
    pub fn cursor(&self, community: &str, workflow: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        self.read(|tx| {
            let text: Option<String> = tx
                .conn()
                .prepare_cached("SELECT last_planned FROM workflow_cursors WHERE community = ?1 AND workflow = ?2")?.query_row(params![community, workflow],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(text.map(|t| parse_ts(&t)).transpose()?)
        })
    }

    /// Records `slots` (run or missed) and moves the workflow's cursor to `new_cursor`, in one
    /// transaction. Slots already recorded are left as they are, and the cursor never moves back,
    /// so repeating or racing this (a restart, a reload, a second daemon) changes nothing.
    pub fn plan_slots(
        &self,
        community: &str,
        workflow: &str,
        slots: &[PlannedSlot],
        new_cursor: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<PlanOutcome> {
        let plan = WorkflowPlan {
            community,
            workflow,
            slots,
            cursor: new_cursor,
        };
        Ok(self.plan_batch(std::slice::from_ref(&plan), now)?[0])
    }

    /// [`Store::plan_slots`] for many workflows in one transaction (one fsync for a thousand
    /// communities' 09:00 slots).
    pub fn plan_batch(
        &self,
        plans: &[WorkflowPlan<'_>],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<PlanOutcome>> {
        self.write(|tx| {
            let conn = tx.conn();
            let mut outcomes = Vec::with_capacity(plans.len());
            let mut insert = conn.prepare_cached(
                "INSERT OR IGNORE INTO runs
                     (community, workflow, due_at, run_at, trigger_kind, state, reason, planned_at)
                 VALUES (?1, ?2, ?3, ?4, 'schedule', ?5, ?6, ?7)",
            )?;
            let mut cursor = conn.prepare_cached(
                "INSERT INTO workflow_cursors (community, workflow, last_planned, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (community, workflow) DO UPDATE
                 SET last_planned = excluded.last_planned, updated_at = excluded.updated_at
                 WHERE excluded.last_planned > workflow_cursors.last_planned",
            )?;
            for plan in plans {
                let (community, workflow) = (plan.community, plan.workflow);
                let mut outcome = PlanOutcome::default();
                for slot in plan.slots {
                    let (state, reason) = match &slot.plan {
                        SlotPlan::Run => ("planned", None),
                        SlotPlan::Missed { reason } => ("missed", Some(reason.as_str())),
                    };
                    let run_at = if reason.is_some() {
                        slot.due_at
                    } else {
                        slot.run_at
                    };
                    let n = insert.execute(params![
                        community,
                        workflow,
                        ts(slot.due_at),
                        ts(run_at),
                        state,
                        reason,
                        ts(now)
                    ])?;
                    match (n, &slot.plan) {
                        (0, _) => {}
                        (_, SlotPlan::Run) => outcome.runs += 1,
                        (_, SlotPlan::Missed { reason }) => {
                            outcome.missed += 1;
                            tx.audit(
                                now,
                                Some(conn.last_insert_rowid()),
                                community,
                                workflow,
                                "missed",
                                reason,
                            )?;
                        }
                    }
                }
                cursor.execute(params![community, workflow, ts(plan.cursor), ts(now)])?;
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
    }

    /// Every workflow's cursor, for start-up (one query instead of one per workflow).
    pub fn cursors(&self) -> anyhow::Result<HashMap<(String, String), DateTime<Utc>>> {
        self.read(|tx| {
            let mut stmt = tx
                .conn()
                .prepare("SELECT community, workflow, last_planned FROM workflow_cursors")?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                        parse_ts(&r.get::<_, String>(2)?)?,
                    ))
                })?
                .collect::<rusqlite::Result<HashMap<_, _>>>()?;
            Ok(rows)
        })
    }

    /// Runs left `running` by a daemon that died go back to `planned`: their effects never
    /// committed (they commit with the `done` mark), so redoing them is safe. Called at start-up,
    /// before anything is claimed. Returns the runs reset.
    ///
    /// With one daemon per database this is exact. (Several daemons on one database need leases,
    /// which is what the PostgreSQL backend will bring.)
    pub fn reset_interrupted(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<RunRow>> {
        self.write(|tx| {
            let conn = tx.conn();
            let mut stmt = conn.prepare(&format!(
                "UPDATE runs SET state = 'planned', started_at = NULL
                 WHERE state = 'running' RETURNING {RUN_COLUMNS}"
            ))?;
            let rows = stmt
                .query_map([], run_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for run in &rows {
                tx.audit(
                    now,
                    Some(run.id),
                    &run.community,
                    &run.workflow,
                    "interrupted",
                    &format!("attempt {} was interrupted; will be redone", run.attempt),
                )?;
            }
            Ok(rows)
        })
    }

    /// Planned runs whose `run_at` has come, taken fairly across communities: each community's
    /// oldest due run first, then each one's second, and so on (oldest first within a round).
    /// Plain oldest-first let one community with hundreds of timers due at once (a plugin that
    /// set them all for the same instant) fill the whole batch, and every other community's
    /// runs waited behind it.
    pub fn due_runs(&self, now: DateTime<Utc>, limit: usize) -> anyhow::Result<Vec<RunRow>> {
        self.read(|tx| {
            let mut stmt = tx.conn().prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM (
                     SELECT *, row_number() OVER (PARTITION BY community ORDER BY run_at, id)
                         AS round
                     FROM runs WHERE state = 'planned' AND run_at <= ?1
                 )
                 ORDER BY round, run_at, id LIMIT ?2"
            ))?;
            let rows = stmt
                .query_map(params![ts(now), limit as i64], run_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Schedule runs still planned whose start (`run_at`) is before `before`: planned by a daemon
    /// that stopped before starting them. At start-up the catch-up policy decides about them.
    pub fn overdue_schedule_runs(&self, before: DateTime<Utc>) -> anyhow::Result<Vec<RunRow>> {
        self.read(|tx| {
            let mut stmt = tx.conn().prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE state = 'planned' AND trigger_kind = 'schedule' AND run_at < ?1
                 ORDER BY community, workflow, due_at"
            ))?;
            let rows = stmt
                .query_map(params![ts(before)], run_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// The earliest `run_at` of a planned run strictly after `now`: when the scheduler must wake.
    pub fn next_run_at_after(&self, now: DateTime<Utc>) -> anyhow::Result<Option<DateTime<Utc>>> {
        self.read(|tx| {
            let text: Option<String> = tx
                .conn()
                .prepare_cached(
                    "SELECT min(run_at) FROM runs WHERE state = 'planned' AND run_at > ?1",
                )?
                .query_row(params![ts(now)], |r| r.get(0))?;
            Ok(text.map(|t| parse_ts(&t)).transpose()?)
        })
    }

    /// Takes a planned run for execution: it becomes `running` with its attempt counted. Returns
    /// `None` when someone else took it first, or while another run of the same (community,
    /// workflow) is running: runs of one workflow never overlap, the later one waits.
    pub fn claim(&self, run_id: i64, now: DateTime<Utc>) -> anyhow::Result<Option<RunRow>> {
        self.write(|tx| {
            let row = tx
                .conn()
                .prepare_cached(&format!(
                    "UPDATE runs SET state = 'running', started_at = ?2, attempt = attempt + 1
                         WHERE id = ?1 AND state = 'planned'
                           AND NOT EXISTS (SELECT 1 FROM runs AS other
                                           WHERE other.community = runs.community
                                             AND other.workflow = runs.workflow
                                             AND other.state = 'running')
                         RETURNING {RUN_COLUMNS}"
                ))?
                .query_row(params![run_id, ts(now)], run_row)
                .optional()?;
            Ok(row)
        })
    }

    /// Applies a run's effects and marks it done, in one transaction. If `effects` fails, nothing
    /// it wrote is kept and the run stays `running` for the caller to [`Store::fail_run`].
    pub fn complete_run(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        effects: Effects,
    ) -> anyhow::Result<EffectSummary> {
        // Through `write`: the lock is waited for as the store's patience says (the daemon's:
        // as long as it is held), and `effects` run once, inside the transaction that commits.
        self.write(|tx| {
            let run = tx
                .conn()
                .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
                .query_row(params![run_id], run_row)
                .optional()?
                .ok_or_else(|| anyhow::anyhow!("run {run_id} does not exist"))?;
            if run.state != RunState::Running {
                anyhow::bail!(
                    "run {run_id} ({}/{}) is {}, not running: its effects were not applied",
                    run.community,
                    run.workflow,
                    run.state.as_str()
                );
            }
            // Dropping `tx` on error rolls back whatever the effects wrote.
            let summary = effects(tx)?;
            tx.conn()
                .prepare_cached(
                    "UPDATE runs SET state = 'done', finished_at = ?2, error = NULL WHERE id = ?1",
                )?
                .execute(params![run_id, ts(now)])?;
            tx.audit(
                now,
                Some(run_id),
                &run.community,
                &run.workflow,
                "done",
                &summary.describe(),
            )?;
            Ok(summary)
        })
    }

    /// Records a run as failed with its error. Nothing of its effects was applied.
    pub fn fail_run(&self, run_id: i64, now: DateTime<Utc>, error: &str) -> anyhow::Result<()> {
        self.write(|tx| {
            let row: Option<(String, String)> = tx
                .conn()
                .prepare_cached(
                    "UPDATE runs SET state = 'failed', finished_at = ?2, error = ?3
                     WHERE id = ?1 AND state IN ('running', 'planned')
                     RETURNING community, workflow",
                )?
                .query_row(params![run_id, ts(now), error], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            if let Some((community, workflow)) = row {
                tx.audit(now, Some(run_id), &community, &workflow, "failed", error)?;
            }
            Ok(())
        })
    }

    /// Puts a run whose commit met a transient error (another process held the database's lock
    /// past the store's patience) back in line, to be redone from scratch at `run_at`. Nothing
    /// of its effects was applied (the commit failed whole), so redoing it applies them once.
    /// Returns whether it was running.
    pub fn requeue_run(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        run_at: DateTime<Utc>,
        why: &str,
    ) -> anyhow::Result<bool> {
        self.write(|tx| {
            let row: Option<(String, String)> = tx
                .conn()
                .prepare_cached(
                    "UPDATE runs SET state = 'planned', run_at = ?2, started_at = NULL
                     WHERE id = ?1 AND state = 'running' RETURNING community, workflow",
                )?
                .query_row(params![run_id, ts(run_at)], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((community, workflow)) = &row {
                tx.audit(now, Some(run_id), community, workflow, "requeued", why)?;
            }
            Ok(row.is_some())
        })
    }

    /// Puts a failed run back in line, to be redone from scratch. Returns whether it was failed.
    pub fn retry_run(&self, run_id: i64, now: DateTime<Utc>) -> anyhow::Result<bool> {
        self.write(|tx| {
            let n = tx
                .conn()
                .prepare_cached(
                    "UPDATE runs SET state = 'planned', run_at = max(run_at, ?2), error = NULL,
                                 started_at = NULL, finished_at = NULL
                 WHERE id = ?1 AND state = 'failed'",
                )?
                .execute(params![run_id, ts(now)])?;
            Ok(n == 1)
        })
    }

    /// Records a planned run as missed (its workflow was removed from the configuration, ...).
    pub fn mark_missed(
        &self,
        run_id: i64,
        now: DateTime<Utc>,
        reason: &str,
    ) -> anyhow::Result<bool> {
        self.write(|tx| {
            let row: Option<(String, String)> = tx
                .conn()
                .prepare_cached(
                    "UPDATE runs SET state = 'missed', reason = ?2, finished_at = ?3
                     WHERE id = ?1 AND state = 'planned' RETURNING community, workflow",
                )?
                .query_row(params![run_id, reason, ts(now)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            if let Some((community, workflow)) = &row {
                tx.audit(now, Some(run_id), community, workflow, "missed", reason)?;
            }
            Ok(row.is_some())
        })
    }

    /// Turns every pending timer whose instant has come into a run (trigger `timer`), in one
    /// transaction; a timer fires once however often this is called. Returns how many fired.
    pub fn fire_due_timers(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        self.write(|tx| {
            let conn = tx.conn();
            let n = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO runs
                     (community, workflow, due_at, run_at, trigger_kind, trigger_key, payload,
                      timer_id, planned_at)
                 SELECT community, workflow, fire_at, fire_at, 'timer', CAST(id AS TEXT), payload,
                        id, ?1
                 FROM timers WHERE state = 'pending' AND fire_at <= ?1",
                )?
                .execute(params![ts(now)])?;
            conn.prepare_cached(
                "UPDATE timers SET state = 'fired' WHERE state = 'pending' AND fire_at <= ?1",
            )?
            .execute(params![ts(now)])?;
            Ok(n)
        })
    }

    /// The earliest pending timer.
    pub fn next_timer_at(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        self.read(|tx| {
            let text: Option<String> = tx
                .conn()
                .prepare_cached("SELECT min(fire_at) FROM timers WHERE state = 'pending'")?
                .query_row([], |r| r.get(0))?;
            Ok(text.map(|t| parse_ts(&t)).transpose()?)
        })
    }

    /// One run by id.
    pub fn run(&self, run_id: i64) -> anyhow::Result<Option<RunRow>> {
        self.read(|tx| {
            Ok(tx
                .conn()
                .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
                .query_row(params![run_id], run_row)
                .optional()?)
        })
    }

    /// Runs that failed, due at or after `since`, by due instant (`wuyed simulate` lists them
    /// with their errors).
    pub fn failed_runs_since(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<RunRow>> {
        self.read(|tx| {
            let mut stmt = tx.conn().prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE state = 'failed' AND due_at >= ?1
                 ORDER BY due_at, community, workflow, id"
            ))?;
            let rows = stmt
                .query_map(params![ts(since)], run_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// All runs of a workflow, by due instant (for the CLI, reports and tests).
    pub fn runs_of(&self, community: &str, workflow: &str) -> anyhow::Result<Vec<RunRow>> {
        self.read(|tx| {
            let mut stmt = tx.conn().prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE community = ?1 AND workflow = ?2
                 ORDER BY due_at, id"
            ))?;
            let rows = stmt
                .query_map(params![community, workflow], run_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

impl Tx<'_> {
    /// Sets a durable timer (plugin effect). `key` is the plugin's idempotency key: a timer with the
    /// same (community, workflow, key) already set is kept as it is and its id returned, so a redone
    /// run cannot set it twice.
    #[allow(clippy::too_many_arguments)]
    pub fn set_timer(
        &self,
        community: &str,
        workflow: &str,
        key: &str,
        fire_at: DateTime<Utc>,
        payload: &str,
        now: DateTime<Utc>,
        run_id: Option<i64>,
    ) -> anyhow::Result<i64> {
        let conn = self.conn();
        conn.prepare_cached(
            "INSERT OR IGNORE INTO timers
                 (community, workflow, key, fire_at, payload, created_at, created_by_run)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            community,
            workflow,
            key,
            ts(fire_at),
            payload,
            ts(now),
            run_id
        ])?;
        Ok(conn
            .prepare_cached(
                "SELECT id FROM timers WHERE community = ?1 AND workflow = ?2 AND key = ?3",
            )?
            .query_row(params![community, workflow, key], |r| r.get(0))?)
    }

    /// How many timers of this workflow of this community are pending.
    pub fn pending_timers(&self, community: &str, workflow: &str) -> anyhow::Result<i64> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT count(*) FROM timers
                 WHERE community = ?1 AND workflow = ?2 AND state = 'pending'",
            )?
            .query_row(params![community, workflow], |r| r.get(0))?)
    }

    /// Cancels a pending timer; returns whether there was one.
    pub fn cancel_timer(&self, community: &str, workflow: &str, key: &str) -> anyhow::Result<bool> {
        let n = self
            .conn()
            .prepare_cached(
                "UPDATE timers SET state = 'cancelled'
             WHERE community = ?1 AND workflow = ?2 AND key = ?3 AND state = 'pending'",
            )?
            .execute(params![community, workflow, key])?;
        Ok(n == 1)
    }

    /// Queues a run for an event (ticket closed, payment posted, survey answered). `key` makes it
    /// idempotent: the same event reported twice is one run. Returns the new run's id, or `None`
    /// if that event was already queued. Wake the scheduler afterwards.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue_event(
        &self,
        community: &str,
        workflow: &str,
        kind: &str,
        key: &str,
        payload: &str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<i64>> {
        let conn = self.conn();
        let n = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO runs
                 (community, workflow, due_at, run_at, trigger_kind, trigger_key, payload,
                  event_kind, planned_at)
             VALUES (?1, ?2, ?3, ?3, 'event', ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                community,
                workflow,
                ts(at),
                key,
                payload,
                kind,
                ts(now)
            ])?;
        Ok((n == 1).then(|| conn.last_insert_rowid()))
    }

    /// Appends to the audit trail.
    pub fn audit(
        &self,
        at: DateTime<Utc>,
        run_id: Option<i64>,
        community: &str,
        workflow: &str,
        event: &str,
        summary: &str,
    ) -> anyhow::Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO audit (at, run_id, community, workflow, event, summary)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![ts(at), run_id, community, workflow, event, summary])?;
        Ok(())
    }
}
