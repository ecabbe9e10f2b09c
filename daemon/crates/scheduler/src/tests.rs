//! The scheduler's guarantees, shown with a manual clock and a real SQLite file: nothing fires
//! twice, nothing is skipped silently, runs of one workflow never overlap, a failure is recorded
//! and leaves nothing half-applied.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::Semaphore;

use super::*;
use wuye_config::{CatchUp, Community, DaemonFile, Settings, Workflow};
use wuye_core::clock::{Clock, ManualClock, SharedClock};
use wuye_schedule::{Slot, jitter_for};
use wuye_store::{PlannedSlot, RunRow, RunState, SlotPlan, Store};

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
}

fn workflow(name: &str, catch_up: CatchUp, window_h: i64) -> Workflow {
    Workflow {
        catch_up,
        catch_up_window: chrono::Duration::hours(window_h),
        ..Workflow::for_test(name, &PathBuf::from("test.wasm"))
    }
}

fn community(id: &str, workflows: Vec<Workflow>) -> Arc<Community> {
    Arc::new(Community {
        workflows,
        ..Community::for_test(id, id)
    })
}

fn settings(communities: Vec<Arc<Community>>) -> Settings {
    Settings {
        dir: PathBuf::from("."),
        daemon: DaemonFile::default(),
        tz: chrono_tz::Asia::Shanghai,
        data_dir: PathBuf::from("."),
        communities,
    }
}

/// Every workflow fires every `minutes` minutes, on the multiples since the epoch.
fn every(minutes: i64) -> SlotSource {
    Arc::new(move |_, _| {
        Some(Arc::new(move |after: DateTime<Utc>| {
            let step = minutes * 60;
            let next = (after.timestamp().div_euclid(step) + 1) * step;
            Some(Slot {
                at: Utc.timestamp_opt(next, 0).single()?,
                skipped: None,
            })
        }) as NextSlot)
    })
}

/// (community, workflow, due, trigger) of one executed run.
type Seen = (String, String, DateTime<Utc>, Trigger);

/// Records what it was asked to run; its effects write an audit note, plus a timer if asked.
#[derive(Default)]
struct Recorder {
    runs: Mutex<Vec<Seen>>,
    timer_in: Option<chrono::Duration>,
}

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.runs.lock().unwrap().clone()
    }
}

impl Executor for Recorder {
    fn execute(
        &self,
        run: RunRequest,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Effects>> + Send + '_>> {
        Box::pin(async move {
            self.runs.lock().unwrap().push((
                run.community.id.clone(),
                run.workflow.name.clone(),
                run.due_at,
                run.trigger.clone(),
            ));
            let timer_in = self.timer_in;
            let effects: Effects = Box::new(move |tx| {
                let mut summary = EffectSummary::default();
                if let (Some(delay), Trigger::Schedule) = (timer_in, &run.trigger) {
                    tx.set_timer(
                        &run.community.id,
                        &run.workflow.name,
                        &format!("callback-{}", run.run_id),
                        run.due_at + delay,
                        "call the owner back",
                        run.due_at,
                        Some(run.run_id),
                    )?;
                    summary.timers = 1;
                }
                Ok(summary)
            });
            Ok(effects)
        })
    }
}

/// Fails every run, the way a trapping plugin does.
struct Failing;

impl Executor for Failing {
    fn execute(
        &self,
        run: RunRequest,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Effects>> + Send + '_>> {
        Box::pin(async move {
            anyhow::bail!("plugin trapped: fee table missing for {}", run.community.id)
        })
    }
}

/// Each run waits for a permit before deciding: lets a test hold a run "in progress".
struct Gated {
    gate: Arc<Semaphore>,
    started: Mutex<Vec<DateTime<Utc>>>,
}

impl Executor for Gated {
    fn execute(
        &self,
        run: RunRequest,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Effects>> + Send + '_>> {
        Box::pin(async move {
            self.started.lock().unwrap().push(run.due_at);
            self.gate.acquire().await?.forget();
            let effects: Effects = Box::new(|_| Ok(EffectSummary::default()));
            Ok(effects)
        })
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    db: PathBuf,
    store: Arc<Store>,
    clock: ManualClock,
}

impl Harness {
    fn new(start: DateTime<Utc>) -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wuye.db");
        let store = Arc::new(Store::open(&db).unwrap());
        Harness {
            _dir: dir,
            db,
            store,
            clock: ManualClock::new(start),
        }
    }

    async fn start(
        &self,
        executor: Arc<dyn Executor>,
        slots: SlotSource,
        settings: &Settings,
    ) -> SchedulerHandle {
        let clock: SharedClock = Arc::new(self.clock.clone());
        Scheduler::new(self.store.clone(), clock, executor)
            .with_slots(slots)
            .start(settings)
            .await
            .unwrap()
    }

    /// Moves the clock to `to` and waits until the scheduler has dealt with everything due.
    async fn move_to(&self, handle: &SchedulerHandle, to: DateTime<Utc>) {
        self.clock.set(to);
        tokio::time::timeout(Duration::from_secs(10), handle.settled(to))
            .await
            .expect("the scheduler did not settle");
    }

    fn runs(&self, community: &str, workflow: &str) -> Vec<RunRow> {
        self.store.runs_of(community, workflow).unwrap()
    }
}

fn states(runs: &[RunRow]) -> Vec<(DateTime<Utc>, RunState)> {
    runs.iter().map(|r| (r.due_at, r.state)).collect()
}

#[tokio::test]
async fn slots_run_on_time_once_each_and_nothing_is_backfilled_on_first_start() {
    let h = Harness::new(at(8, 30));
    let recorder = Arc::new(Recorder::default());
    let cfg = settings(vec![community(
        "shuipan",
        vec![workflow("heartbeat", CatchUp::Latest, 24)],
    )]);
    let handle = h.start(recorder.clone(), every(60), &cfg).await;
    h.move_to(&handle, at(8, 59)).await;
    assert!(recorder.seen().is_empty(), "nothing is due before 09:00");
    h.move_to(&handle, at(9, 0)).await;
    h.move_to(&handle, at(9, 30)).await;
    h.move_to(&handle, at(10, 0)).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();

    let due: Vec<_> = recorder.seen().iter().map(|r| r.2).collect();
    assert_eq!(due, vec![at(9, 0), at(10, 0)]);
    assert_eq!(
        states(&h.runs("shuipan", "heartbeat")),
        vec![(at(9, 0), RunState::Done), (at(10, 0), RunState::Done)],
        "no slot before the first start (08:30) may appear"
    );
}

#[tokio::test]
async fn restarting_and_reloading_never_plan_a_slot_twice() {
    let h = Harness::new(at(8, 0));
    let recorder = Arc::new(Recorder::default());
    let cfg = settings(vec![community(
        "shuipan",
        vec![workflow("heartbeat", CatchUp::All, 24)],
    )]);
    let handle = h.start(recorder.clone(), every(60), &cfg).await;
    h.move_to(&handle, at(9, 0)).await;
    handle.reload(cfg.clone()).await.unwrap();
    h.move_to(&handle, at(9, 0) + chrono::Duration::seconds(1))
        .await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();

    // A second daemon life on the same database, at the same instant and later.
    let handle = h.start(recorder.clone(), every(60), &cfg).await;
    h.move_to(&handle, at(10, 0)).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();

    assert_eq!(
        states(&h.runs("shuipan", "heartbeat")),
        vec![(at(9, 0), RunState::Done), (at(10, 0), RunState::Done)]
    );
    assert_eq!(recorder.seen().len(), 2);
}

#[test]
fn planning_raced_from_two_handles_on_one_file_records_each_slot_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wuye.db");
    let a = Store::open(&db).unwrap();
    let b = Store::open(&db).unwrap();
    let slots: Vec<PlannedSlot> = (0..24)
        .map(|h| PlannedSlot {
            due_at: at(h, 0),
            run_at: at(h, 0),
            plan: SlotPlan::Run,
        })
        .collect();
    let total = std::thread::scope(|s| {
        let mut joins = Vec::new();
        for store in [&a, &b, &a, &b] {
            let slots = &slots;
            joins.push(s.spawn(move || {
                let mut created = 0;
                for chunk in 1..=slots.len() {
                    let part = &slots[..chunk];
                    created += store
                        .plan_slots(
                            "shuipan",
                            "heartbeat",
                            part,
                            part[chunk - 1].due_at,
                            at(23, 0),
                        )
                        .unwrap()
                        .runs;
                }
                created
            }));
        }
        joins.into_iter().map(|j| j.join().unwrap()).sum::<usize>()
    });
    assert_eq!(
        total, 24,
        "each slot is created by exactly one of the racers"
    );
    assert_eq!(a.runs_of("shuipan", "heartbeat").unwrap().len(), 24);
    assert_eq!(a.cursor("shuipan", "heartbeat").unwrap(), Some(at(23, 0)));
    // The cursor never moves back.
    b.plan_slots("shuipan", "heartbeat", &slots[..1], at(0, 0), at(23, 0))
        .unwrap();
    assert_eq!(b.cursor("shuipan", "heartbeat").unwrap(), Some(at(23, 0)));
}

async fn after_downtime(policy: CatchUp, window_h: i64) -> (Vec<RunRow>, Vec<DateTime<Utc>>) {
    let h = Harness::new(at(0, 0));
    let recorder = Arc::new(Recorder::default());
    let cfg = settings(vec![community(
        "shuipan",
        vec![workflow("heartbeat", policy, window_h)],
    )]);
    let handle = h.start(recorder.clone(), every(60), &cfg).await;
    h.move_to(&handle, at(1, 0)).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    // Down from 01:00 to 05:30: slots 02:00 .. 05:00 came due while nobody was there.
    h.clock.set(at(5, 30));
    let handle = h.start(recorder.clone(), every(60), &cfg).await;
    h.move_to(&handle, at(5, 30)).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    let due = recorder.seen().iter().map(|r| r.2).collect();
    (h.runs("shuipan", "heartbeat"), due)
}

fn missed_reasons(runs: &[RunRow]) -> Vec<(DateTime<Utc>, String)> {
    runs.iter()
        .filter(|r| r.state == RunState::Missed)
        .map(|r| (r.due_at, r.reason.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn catch_up_latest_runs_only_the_newest_missed_slot_and_records_the_rest() {
    let (runs, ran) = after_downtime(CatchUp::Latest, 24).await;
    assert_eq!(ran, vec![at(1, 0), at(5, 0)]);
    assert_eq!(
        states(&runs),
        vec![
            (at(1, 0), RunState::Done),
            (at(2, 0), RunState::Missed),
            (at(3, 0), RunState::Missed),
            (at(4, 0), RunState::Missed),
            (at(5, 0), RunState::Done),
        ]
    );
    for (due, reason) in missed_reasons(&runs) {
        assert!(
            !reason.trim().is_empty(),
            "slot {due} missed without a reason"
        );
    }
}

#[tokio::test]
async fn catch_up_all_runs_every_missed_slot_in_order() {
    let (runs, ran) = after_downtime(CatchUp::All, 24).await;
    assert_eq!(ran, vec![at(1, 0), at(2, 0), at(3, 0), at(4, 0), at(5, 0)]);
    assert!(runs.iter().all(|r| r.state == RunState::Done));
}

#[tokio::test]
async fn catch_up_skip_records_every_missed_slot_with_its_reason() {
    let (runs, ran) = after_downtime(CatchUp::Skip, 24).await;
    assert_eq!(ran, vec![at(1, 0)]);
    let missed = missed_reasons(&runs);
    assert_eq!(
        missed.iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![at(2, 0), at(3, 0), at(4, 0), at(5, 0)]
    );
    assert!(missed.iter().all(|(_, reason)| !reason.trim().is_empty()));
}

#[tokio::test]
async fn catch_up_window_records_older_slots_as_missed_even_under_all() {
    // Window 2h at 05:30: 03:30 is the limit, so 02:00 and 03:00 are too old; 04:00 and 05:00 run.
    let (runs, ran) = after_downtime(CatchUp::All, 2).await;
    assert_eq!(ran, vec![at(1, 0), at(4, 0), at(5, 0)]);
    assert_eq!(
        missed_reasons(&runs)
            .iter()
            .map(|m| m.0)
            .collect::<Vec<_>>(),
        vec![at(2, 0), at(3, 0)]
    );
}

#[tokio::test]
async fn a_run_still_going_makes_the_next_slot_wait_instead_of_overlapping() {
    let h = Harness::new(at(9, 0));
    let gated = Arc::new(Gated {
        gate: Arc::new(Semaphore::new(0)),
        started: Mutex::new(Vec::new()),
    });
    let cfg = settings(vec![community(
        "shuipan",
        vec![workflow("heartbeat", CatchUp::All, 24)],
    )]);
    let handle = h.start(gated.clone(), every(1), &cfg).await;
    h.clock.set(at(9, 1));
    wait_until(|| gated.started.lock().unwrap().len() == 1).await;
    // 09:02 comes while 09:01 is still running: planned, not started.
    h.clock.set(at(9, 2));
    wait_until(|| h.runs("shuipan", "heartbeat").len() == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gated.started.lock().unwrap().clone(), vec![at(9, 1)]);
    assert_eq!(
        states(&h.runs("shuipan", "heartbeat")),
        vec![(at(9, 1), RunState::Running), (at(9, 2), RunState::Planned)]
    );
    // The first finishes; the second starts right after it, and only then.
    gated.gate.add_permits(1);
    wait_until(|| gated.started.lock().unwrap().len() == 2).await;
    gated.gate.add_permits(1);
    tokio::time::timeout(Duration::from_secs(10), handle.settled(at(9, 2)))
        .await
        .unwrap();
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        states(&h.runs("shuipan", "heartbeat")),
        vec![(at(9, 1), RunState::Done), (at(9, 2), RunState::Done)]
    );
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

#[tokio::test]
async fn a_failing_run_is_recorded_failed_with_the_plugins_error() {
    let h = Harness::new(at(8, 0));
    let cfg = settings(vec![community(
        "shuipan",
        vec![workflow("fee_reminder", CatchUp::Latest, 24)],
    )]);
    let handle = h.start(Arc::new(Failing), every(60), &cfg).await;
    h.move_to(&handle, at(9, 0)).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    let runs = h.runs("shuipan", "fee_reminder");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, RunState::Failed);
    assert_eq!(
        runs[0].error.as_deref(),
        Some("plugin trapped: fee table missing for shuipan")
    );
}

/// One community with 300 runs due at the same instant must not fill a whole batch of due runs
/// and starve another community whose single run is due a minute later.
#[tokio::test]
async fn due_runs_are_taken_fairly_across_communities() {
    let h = Harness::new(at(8, 0));
    let slot = |m: u32| PlannedSlot {
        due_at: at(8, 0) + chrono::Duration::seconds(i64::from(m)),
        run_at: at(8, 0),
        plan: SlotPlan::Run,
    };
    let flood: Vec<PlannedSlot> = (0..300).map(slot).collect();
    h.store
        .plan_slots("flood", "timers", &flood, at(9, 0), at(8, 0))
        .unwrap();
    let mut late = slot(0);
    late.run_at = at(8, 1);
    h.store
        .plan_slots("shuipan", "fee_reminder", &[late], at(9, 0), at(8, 0))
        .unwrap();
    let batch = h.store.due_runs(at(9, 0), 256).unwrap();
    assert_eq!(batch.len(), 256);
    assert_eq!(batch[0].community, "flood", "oldest first within a round");
    assert_eq!(
        batch[1].community, "shuipan",
        "the other community's run is taken in the first round"
    );
}

#[tokio::test]
async fn effects_that_fail_leave_nothing_behind_and_the_run_can_be_redone() {
    let h = Harness::new(at(8, 0));
    let store = &h.store;
    store
        .plan_slots(
            "shuipan",
            "callback",
            &[PlannedSlot {
                due_at: at(9, 0),
                run_at: at(9, 0),
                plan: SlotPlan::Run,
            }],
            at(9, 0),
            at(9, 0),
        )
        .unwrap();
    let run = store.due_runs(at(9, 0), 10).unwrap().remove(0);
    store.claim(run.id, at(9, 0)).unwrap().unwrap();
    let effects: Effects = Box::new(|tx| {
        tx.set_timer("shuipan", "callback", "t1", at(10, 0), "", at(9, 0), None)?;
        anyhow::bail!("outbox insert failed: recipient has no contact")
    });
    let err = store.complete_run(run.id, at(9, 0), effects).unwrap_err();
    assert!(err.to_string().contains("no contact"), "{err:#}");
    assert_eq!(
        store.next_timer_at().unwrap(),
        None,
        "the timer must not survive"
    );
    store
        .fail_run(run.id, at(9, 0), &format!("{err:#}"))
        .unwrap();
    assert_eq!(store.run(run.id).unwrap().unwrap().state, RunState::Failed);

    // Redone from scratch: this time the effects commit, once.
    assert!(store.retry_run(run.id, at(9, 5)).unwrap());
    let again = store.claim(run.id, at(9, 5)).unwrap().unwrap();
    assert_eq!(again.attempt, 2);
    let effects: Effects = Box::new(|tx| {
        tx.set_timer("shuipan", "callback", "t1", at(10, 0), "", at(9, 5), None)?;
        Ok(EffectSummary {
            timers: 1,
            ..EffectSummary::default()
        })
    });
    store.complete_run(run.id, at(9, 5), effects).unwrap();
    assert_eq!(store.run(run.id).unwrap().unwrap().state, RunState::Done);
    assert_eq!(store.next_timer_at().unwrap(), Some(at(10, 0)));
    // Completing twice is refused: effects can never be applied a second time.
    let effects: Effects = Box::new(|_| Ok(EffectSummary::default()));
    assert!(store.complete_run(run.id, at(9, 6), effects).is_err());
}

#[tokio::test]
async fn a_run_interrupted_by_a_crash_is_redone_at_the_next_start() {
    let h = Harness::new(at(8, 0));
    let cfg = settings(vec![community(
        "shuipan",
        vec![workflow("heartbeat", CatchUp::Latest, 24)],
    )]);
    // The "crashed" daemon planned 09:00 and claimed it, then vanished.
    h.store
        .plan_slots(
            "shuipan",
            "heartbeat",
            &[PlannedSlot {
                due_at: at(9, 0),
                run_at: at(9, 0),
                plan: SlotPlan::Run,
            }],
            at(9, 0),
            at(9, 0),
        )
        .unwrap();
    let run = h.store.due_runs(at(9, 0), 1).unwrap().remove(0);
    h.store.claim(run.id, at(9, 0)).unwrap().unwrap();

    h.clock.set(at(9, 1));
    let recorder = Arc::new(Recorder::default());
    let handle = h.start(recorder.clone(), every(60), &cfg).await;
    h.move_to(&handle, at(9, 1)).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    let runs = h.runs("shuipan", "heartbeat");
    assert_eq!(states(&runs), vec![(at(9, 0), RunState::Done)]);
    assert_eq!(runs[0].attempt, 2);
    assert_eq!(recorder.seen().len(), 1);
}

#[tokio::test]
async fn a_timer_set_by_a_run_fires_later_as_a_timer_run() {
    let h = Harness::new(at(8, 0));
    let recorder = Arc::new(Recorder {
        timer_in: Some(chrono::Duration::minutes(30)),
        ..Recorder::default()
    });
    let cfg = settings(vec![community(
        "shuipan",
        vec![workflow("callback", CatchUp::Latest, 24)],
    )]);
    let handle = h.start(recorder.clone(), every(60), &cfg).await;
    h.move_to(&handle, at(9, 0)).await;
    h.move_to(&handle, at(9, 29)).await;
    assert_eq!(recorder.seen().len(), 1);
    h.move_to(&handle, at(9, 30)).await;
    h.move_to(&handle, at(9, 45)).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    let seen = recorder.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].2, at(9, 30));
    assert!(
        matches!(&seen[1].3, Trigger::Timer { payload, .. } if payload == "call the owner back"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn runs_of_a_workflow_removed_from_the_configuration_are_recorded_missed() {
    let h = Harness::new(at(8, 0));
    let recorder = Arc::new(Recorder::default());
    h.store
        .plan_slots(
            "gone",
            "heartbeat",
            &[PlannedSlot {
                due_at: at(9, 0),
                run_at: at(9, 0),
                plan: SlotPlan::Run,
            }],
            at(9, 0),
            at(8, 0),
        )
        .unwrap();
    let handle = h
        .start(recorder.clone(), every(60), &settings(vec![]))
        .await;
    h.move_to(&handle, at(9, 0)).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    let runs = h.runs("gone", "heartbeat");
    assert_eq!(runs[0].state, RunState::Missed);
    assert!(runs[0].reason.as_deref().unwrap().contains("\"gone\""));
    assert!(recorder.seen().is_empty());
}

#[tokio::test]
async fn jitter_delays_the_start_by_the_same_amount_every_time() {
    let max = chrono::Duration::minutes(10);
    let a = jitter_for("shuipan", "fee_reminder", at(9, 0), max);
    assert_eq!(a, jitter_for("shuipan", "fee_reminder", at(9, 0), max));
    let spread: std::collections::HashSet<_> = (0..50)
        .map(|i| jitter_for(&format!("c{i}"), "fee_reminder", at(9, 0), max))
        .collect();
    assert!(
        spread.len() > 40,
        "a thousand 09:00 runs must not start together"
    );
    assert!(
        spread
            .iter()
            .all(|j| *j >= chrono::Duration::zero() && *j <= max)
    );

    let h = Harness::new(at(8, 0));
    let recorder = Arc::new(Recorder::default());
    let mut wf = workflow("fee_reminder", CatchUp::Latest, 24);
    wf.jitter = max;
    let cfg = settings(vec![community("shuipan", vec![wf])]);
    let handle = h.start(recorder.clone(), every(60), &cfg).await;
    h.move_to(&handle, at(9, 0)).await;
    let start = at(9, 0) + a;
    if a > chrono::Duration::zero() {
        h.move_to(&handle, start - chrono::Duration::milliseconds(1))
            .await;
        assert!(
            recorder.seen().is_empty(),
            "started before its jittered instant"
        );
    }
    h.move_to(&handle, start).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(recorder.seen().len(), 1);
    assert_eq!(
        recorder.seen()[0].2,
        at(9, 0),
        "the run keeps its slot as due_at"
    );
    let _ = h.clock.now();
    let _ = &h.db;
}

#[tokio::test]
async fn two_daemons_on_one_database_run_each_slot_once() {
    let h = Harness::new(at(8, 0));
    let second = Arc::new(Store::open(&h.db).unwrap());
    let recorder = Arc::new(Recorder::default());
    let cfg = settings(vec![
        community("shuipan", vec![workflow("heartbeat", CatchUp::All, 24)]),
        community("shijixinzhu", vec![workflow("heartbeat", CatchUp::All, 24)]),
    ]);
    let a = h.start(recorder.clone(), every(30), &cfg).await;
    let clock: SharedClock = Arc::new(h.clock.clone());
    let b = Scheduler::new(second, clock, recorder.clone())
        .with_slots(every(30))
        .start(&cfg)
        .await
        .unwrap();
    for step in 1..=6 {
        let t = at(8, 0) + chrono::Duration::minutes(30 * step);
        h.clock.set(t);
        for handle in [&a, &b] {
            tokio::time::timeout(Duration::from_secs(10), handle.settled(t))
                .await
                .unwrap();
        }
    }
    a.shutdown(Duration::from_secs(5)).await.unwrap();
    b.shutdown(Duration::from_secs(5)).await.unwrap();
    let mut seen: Vec<_> = recorder.seen().iter().map(|r| (r.0.clone(), r.2)).collect();
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!(before, seen.len(), "a slot ran twice");
    assert_eq!(seen.len(), 12, "6 slots × 2 communities");
    for id in ["shuipan", "shijixinzhu"] {
        let runs = h.runs(id, "heartbeat");
        assert_eq!(runs.len(), 6);
        assert!(
            runs.iter()
                .all(|r| r.state == RunState::Done && r.attempt == 1)
        );
    }
}

#[tokio::test]
async fn slots_the_business_calendar_skips_are_recorded_with_the_holiday() {
    use wuye_config::NonWorkday;
    use wuye_schedule::{Calendar, CronExpr, Schedule};
    let calendar = Arc::new(
        Calendar::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../config/calendars/cn-mainland.toml"),
        )
        .unwrap(),
    );
    let shanghai = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let h = Harness::new(shanghai("2026-09-30T10:00:00+08:00"));
    let mut wf = workflow("fee_reminder", CatchUp::All, 24);
    wf.schedule = Some(Schedule {
        cron: CronExpr::parse("0 9 * * *").unwrap(),
        tz: chrono_tz::Asia::Shanghai,
        calendar: Some(calendar),
        on_non_workday: NonWorkday::Skip,
    });
    let recorder = Arc::new(Recorder::default());
    let cfg = settings(vec![community("shuipan", vec![wf])]);
    let handle = h.start(recorder.clone(), configured_slots(), &cfg).await;
    // National Day (10-01 .. 10-07 in 2026) passes day by day.
    for day in 1..=9 {
        let t = shanghai(&format!("2026-10-{day:02}T09:00:00+08:00"));
        h.move_to(&handle, t).await;
    }
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    let runs = h.runs("shuipan", "fee_reminder");
    let missed = missed_reasons(&runs);
    assert!(missed.len() >= 7, "each holiday slot is recorded: {runs:?}");
    assert!(
        missed
            .iter()
            .all(|(_, reason)| reason.contains("on_non_workday = skip")),
        "{missed:?}"
    );
    let ran: Vec<_> = recorder.seen().iter().map(|r| r.2).collect();
    assert!(
        !ran.is_empty() && ran.len() + missed.len() == 9,
        "{ran:?} {missed:?}"
    );
    assert!(
        !missed.iter().any(|(due, _)| ran.contains(due)),
        "a skipped slot also ran"
    );
}

#[tokio::test]
async fn a_stop_that_outlasts_its_grace_leaves_the_run_to_be_redone_not_half_applied() {
    let h = Harness::new(at(8, 0));
    let gated = Arc::new(Gated {
        gate: Arc::new(Semaphore::new(0)),
        started: Mutex::new(Vec::new()),
    });
    let cfg = settings(vec![community(
        "shuipan",
        vec![workflow("heartbeat", CatchUp::Latest, 24)],
    )]);
    let handle = h.start(gated.clone(), every(60), &cfg).await;
    h.clock.set(at(9, 0));
    wait_until(|| gated.started.lock().unwrap().len() == 1).await;
    handle.shutdown(Duration::from_millis(100)).await.unwrap();
    assert_eq!(
        states(&h.runs("shuipan", "heartbeat")),
        vec![(at(9, 0), RunState::Running)],
        "abandoned, with nothing applied"
    );

    let recorder = Arc::new(Recorder::default());
    let handle = h.start(recorder.clone(), every(60), &cfg).await;
    h.move_to(&handle, at(9, 1)).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    let runs = h.runs("shuipan", "heartbeat");
    assert_eq!(states(&runs), vec![(at(9, 0), RunState::Done)]);
    assert_eq!(runs[0].attempt, 2);
}

#[tokio::test]
async fn a_run_planned_before_a_long_stop_obeys_the_catch_up_policy_at_restart() {
    // The daemon planned 09:00 (jittered to start later) and stopped before starting it; it is
    // back the next day at 09:30, after the next day's 09:00 slot.
    let h = Harness::new(at(8, 0));
    h.store
        .plan_slots(
            "shuipan",
            "fee_reminder",
            &[PlannedSlot {
                due_at: at(9, 0),
                run_at: at(9, 7),
                plan: SlotPlan::Run,
            }],
            at(9, 0),
            at(9, 0),
        )
        .unwrap();
    let next_day = chrono::Duration::days(1);
    h.clock.set(at(9, 30) + next_day);
    let recorder = Arc::new(Recorder::default());
    let cfg = settings(vec![community(
        "shuipan",
        vec![workflow("fee_reminder", CatchUp::Latest, 48)],
    )]);
    let handle = h.start(recorder.clone(), every(24 * 60), &cfg).await;
    h.move_to(&handle, at(9, 30) + next_day).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    let runs = h.runs("shuipan", "fee_reminder");
    // `every(24 * 60)` fires at 00:00 UTC: slots 2026-11-23T00:00 is the only new one.
    assert_eq!(
        states(&runs),
        vec![
            (at(9, 0), RunState::Missed),
            (at(0, 0) + next_day, RunState::Done)
        ],
        "only the newest slot runs under catch_up = latest"
    );
    assert!(runs[0].reason.as_deref().unwrap().contains("latest"));
    assert_eq!(recorder.seen().len(), 1);
}

#[tokio::test]
async fn the_loop_answers_a_liveness_probe_only_while_it_runs() {
    let h = Harness::new(at(8, 30));
    let cfg = settings(vec![community(
        "shuipan",
        vec![workflow("heartbeat", CatchUp::Latest, 24)],
    )]);
    // Asleep until 09:00 on a clock that does not move: only the probe's nudge makes a pass.
    let handle = h
        .start(Arc::new(Recorder::default()), every(60), &cfg)
        .await;
    h.move_to(&handle, at(8, 30)).await;
    let mut liveness = handle.liveness();
    let passes = handle.status().passes;
    assert!(liveness.answers(Duration::from_secs(5)).await);
    assert!(liveness.answers(Duration::from_secs(5)).await);
    assert!(
        handle.status().passes >= passes + 2,
        "each answer is a real pass"
    );
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    assert!(!liveness.answers(Duration::from_millis(200)).await);
}

/// The first commit of each run meets a locked database (as a store with bounded patience
/// reports another process's lock); later ones go through. Counts every commit attempted.
#[derive(Default)]
struct LockedOnce {
    commits: Arc<Mutex<u32>>,
}

impl Executor for LockedOnce {
    fn execute(
        &self,
        run: RunRequest,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Effects>> + Send + '_>> {
        let commits = self.commits.clone();
        Box::pin(async move {
            let effects: Effects = Box::new(move |tx| {
                tx.set_timer(
                    &run.community.id,
                    &run.workflow.name,
                    "callback",
                    run.due_at + chrono::Duration::hours(1),
                    "call the owner back",
                    run.due_at,
                    Some(run.run_id),
                )?;
                let mut n = commits.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("another process holds the write lock".into()),
                    )
                    .into());
                }
                Ok(EffectSummary {
                    timers: 1,
                    ..EffectSummary::default()
                })
            });
            Ok(effects)
        })
    }
}

#[tokio::test]
async fn a_run_whose_commit_meets_a_locked_database_is_redone_and_applied_once() {
    let h = Harness::new(at(8, 30));
    let executor = Arc::new(LockedOnce::default());
    let cfg = settings(vec![community(
        "shuipan",
        vec![workflow("callback", CatchUp::Latest, 24)],
    )]);
    let handle = h.start(executor.clone(), every(60), &cfg).await;
    h.move_to(&handle, at(9, 0)).await;
    let runs = h.runs("shuipan", "callback");
    assert_eq!(
        states(&runs),
        vec![(at(9, 0), RunState::Planned)],
        "not failed for good: back in line"
    );
    assert_eq!(
        h.store.next_timer_at().unwrap(),
        None,
        "nothing applied yet"
    );
    // Redone once the retry delay has passed.
    h.move_to(&handle, at(9, 1)).await;
    wait_until(|| h.runs("shuipan", "callback")[0].state == RunState::Done).await;
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    let run = h.runs("shuipan", "callback").remove(0);
    assert_eq!(run.attempt, 2);
    assert_eq!(*executor.commits.lock().unwrap(), 2);
    let timers: i64 = h
        .store
        .read(|tx| {
            Ok(tx
                .conn()
                .query_row("SELECT count(*) FROM timers", [], |r| r.get(0))?)
        })
        .unwrap();
    assert_eq!(timers, 1, "the run's effects are applied exactly once");
    let events: Vec<String> = h
        .store
        .read(|tx| {
            Ok(tx
                .conn()
                .prepare("SELECT event FROM audit WHERE run_id = ?1 ORDER BY id")?
                .query_map([run.id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .unwrap();
    assert_eq!(events, ["requeued", "done"]);
}
