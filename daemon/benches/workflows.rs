//! Workflow benchmark: the shipped `fee_reminder.wasm` deciding for a large community, in the
//! real sandbox, as the daemon runs it: data read through the host, the ladder applied to every
//! unpaid bill, one intent per household in arrears buffered, kv progress written.
//!
//! Run with `scripts/build-plugins.sh && cargo bench -p wuye --bench workflows`.
//! Issue target: a fee-reminder run over 100,000 households with 20% in arrears, from due to
//! outbox, under 1 s.
//!
//! Part 1 (the plugin alone, in memory): the due date itself (every household in arrears gets
//! its notice: 20,000 intents, 20,000 kv writes), and the next day with that progress committed
//! (nobody reached a new step: the steady-state daily cost of the scan). Fastest of `ROUNDS`
//! each.
//!
//! Part 2 (the issue's figure, from due to outbox): a real store with 100,000 households, a year
//! of monthly bills, 20% owing their last three months, and ONE scheduled run through what
//! `wuyed run` builds (`wuye::cli::executor_with`: the plugin host over `wiring::StoreData`,
//! intents through `wiring::OutboxSink` with the shipped templates), claimed and completed the
//! way the scheduler does: the plugin reads the data, decides, and the run's transaction writes
//! the kv progress and one rendered outbox row per household, then commits. Each round runs on a
//! fresh copy of the seeded database, so no round is short-circuited by an earlier one's
//! progress. `WORKFLOWS_BENCH_E2E_ONLY=1` skips part 1.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use wuye::clock::ManualClock;
use wuye::plugin::data::{Bill, Household};
use wuye::plugin::host::HostOptions;
use wuye::plugin::{Hook, KvRead, Limits, MemoryData, MemoryKv, PluginHost, RunInput};

mod support;

const HOUSEHOLDS: usize = 100_000;
const ROUNDS: usize = 3;

fn wasm() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let p = target.join("wasm32-wasip2/release/fee_reminder.wasm");
    assert!(
        p.exists(),
        "{} missing: run scripts/build-plugins.sh first",
        p.display()
    );
    p
}

fn community() -> MemoryData {
    let mut c = MemoryData::new("big");
    let due = NaiveDate::from_ymd_opt(2026, 9, 30).unwrap();
    for i in 0..HOUSEHOLDS {
        let id = format!("{}-{}", i / 1000 + 1, i % 1000 + 101);
        c.households.push(Household {
            id: id.clone(),
            building: format!("{}", i / 1000 + 1),
            unit: format!("{}", i % 1000 + 101),
            owners: vec![format!("o{i}")],
        });
        c.bills.push(Bill {
            id: format!("b{i}"),
            household: id,
            fee_type: "property".into(),
            period: "2026-09".into(),
            amount_fen: 35_000,
            // One household in five has not paid.
            paid_fen: if i % 5 == 0 { 0 } else { 35_000 },
            due_date: due,
        });
    }
    c
}

fn main() {
    if std::env::var_os("WORKFLOWS_BENCH_E2E_ONLY").is_none() {
        plugin_alone();
    }
    end_to_end::run();
}

fn plugin_alone() {
    let host = PluginHost::new(HostOptions {
        cache_dir: None,
        pooling: true,
    })
    .unwrap();
    let plugin = host.get(&wasm()).unwrap();
    let data = Arc::new(community());
    let kv = Arc::new(MemoryKv::default());
    let limits = Limits {
        deadline: Duration::from_secs(30),
        memory_bytes: 512 * 1024 * 1024,
        max_intents: 100_000,
        max_payload_bytes: 1024 * 1024,
        max_log_bytes: 65_536,
        max_run_bytes: wuye::plugin::ceiling::MAX_RUN_BYTES as usize,
        kv_max_bytes: wuye::plugin::ceiling::KV_MAX_BYTES as usize,
        kv_max_keys: wuye::plugin::ceiling::KV_MAX_KEYS as usize,
    };
    let run = |month: u32, day: u32, kv: Arc<MemoryKv>| {
        // 10:00 in Shanghai.
        let at = Utc.with_ymd_and_hms(2026, month, day, 2, 0, 0).unwrap();
        let start = Instant::now();
        let report = host.run(
            &plugin,
            RunInput {
                workflow: "fee_reminder".into(),
                due_at: at,
                params_json: "{}".into(),
                hook: Hook::Schedule,
                data: data.clone(),
                kv: kv as Arc<dyn KvRead>,
                clock: Arc::new(ManualClock::new(at)),
                limits,
                observer: None,
            },
        );
        let took = start.elapsed();
        assert!(report.result.is_ok(), "{:?}", report.result);
        (took, report)
    };

    let mut best = Duration::MAX;
    let mut first = None;
    for _ in 0..ROUNDS {
        let (took, report) = run(9, 30, Arc::new(MemoryKv::default()));
        best = best.min(took);
        first = Some(report);
    }
    let first = first.unwrap();
    println!(
        "fee_reminder due day, {HOUSEHOLDS} households, 20% in arrears: {:.0} ms ({} intents, {} kv writes)",
        best.as_secs_f64() * 1000.0,
        first.intents.len(),
        first.kv_writes.len()
    );

    // Commit the first run's progress, then run the next day.
    for w in &first.kv_writes {
        if let Some(v) = &w.value {
            kv.insert("big", "fee_reminder", &w.key, v);
        }
    }
    let mut best = Duration::MAX;
    let mut intents = 0;
    for _ in 0..ROUNDS {
        let (took, report) = run(10, 1, kv.clone());
        best = best.min(took);
        intents = report.intents.len();
    }
    println!(
        "fee_reminder next day, progress committed: {:.0} ms ({intents} intents)",
        best.as_secs_f64() * 1000.0
    );
}

/// Part 2: one scheduled fee_reminder run from due to outbox, on a real store.
mod end_to_end {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use chrono::{DateTime, NaiveDate, TimeZone, Utc};
    use wuye::clock::{ManualClock, SharedClock};
    use wuye::config::{LoadOptions, Settings};
    use wuye::domain::{ContactChannel, FeeType, Language};
    use wuye::plugin::data::DataSource;
    use wuye::plugin::host::HostOptions;
    use wuye::scheduler::{Effects, RunRequest, Trigger};
    use wuye::store::domain::{BillInput, DomainReader, OwnerInput, PaymentInput};
    use wuye::store::{PlannedSlot, SlotPlan, Store};

    use super::HOUSEHOLDS;

    /// Rounds timed (after one that compiles the plugin into the cache and is not counted);
    /// `WORKFLOWS_BENCH_ROUNDS` overrides it (1 when profiling).
    fn rounds() -> usize {
        std::env::var("WORKFLOWS_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5)
    }
    const COMMUNITY: &str = "big";

    /// The run: 10:00 in Shanghai on 2027-03-15, the due date of the last of twelve monthly
    /// bills (2026-04 to 2027-03, each due on the 15th). The households in arrears owe January
    /// (59 days overdue: the 30-day step), February (28 days: the 7-day step) and March (due
    /// today): each gets one firm reminder listing the three bills. No bill has reached the
    /// 60-day visit yet, so the run is the owners' messages only, as on most due dates.
    fn due_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 15, 2, 0, 0).unwrap()
    }

    fn months() -> Vec<(i32, u32)> {
        (4..=12)
            .map(|m| (2026, m))
            .chain((1..=3).map(|m| (2027, m)))
            .collect()
    }

    fn config(dir: &Path) -> Settings {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        std::fs::create_dir_all(dir.join("communities")).unwrap();
        super::support::copy_dir(&repo.join("config/templates"), &dir.join("templates"));
        let plugins = super::wasm().parent().unwrap().canonicalize().unwrap();
        std::fs::write(
            dir.join("wuyed.toml"),
            format!(
                "[daemon]\ndata_dir = \"data\"\ntimezone = \"Asia/Shanghai\"\nlog_level = \"error\"\n\n\
                 [plugins]\ndir = \"{}\"\n\
                 # A 100,000-household community needs more than the defaults: 80,000 intents\n\
                 # (20,000 messages, 60,000 kv writes), 10,000 ms of CPU at most, 512 MiB.\n\
                 max_intents = 100000\ndeadline_ms = 10000\nmemory_mib = 512\n",
                plugins.display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("communities/big.toml"),
            r#"id = "big"
name = "大社区"
timezone = "Asia/Shanghai"
locale = "zh-CN"

[quiet_hours]
start = "21:00"
end = "08:00"

[[staff]]
id = "lin-hua"
name = "林华"
role = "manager"
email = "lin.hua@example.com"
phone = "138 0000 0003"

[workflows.fee_reminder]
plugin = "fee_reminder"
schedule = "0 10 * * *"
catch_up = "latest"
catch_up_window = "3d"
notifies = ["manager"]
"#,
        )
        .unwrap();
        let clock = ManualClock::new(due_at());
        wuye::config::load_with(dir, &LoadOptions::from_env(&clock))
            .unwrap_or_else(|e| panic!("benchmark config: {e}"))
    }

    /// 100,000 households in 100 buildings × 2 units × 500 rooms, one owner each (even ones
    /// prefer SMS and give a phone, odd ones email and give an address), twelve monthly
    /// property bills each; four households in five paid every bill on the 10th, one in five
    /// stopped paying after 2026-12. One transaction through the domain write API.
    fn seed(store: &Store) {
        let months = months();
        store
            .write(|tx| {
                let d = tx.domain(COMMUNITY);
                for i in 0..HOUSEHOLDS {
                    let (b, u, r) = (i / 1000 + 1, (i / 500) % 2 + 1, i % 500 + 101);
                    let (h, _) =
                        d.upsert_household(&b.to_string(), &u.to_string(), &r.to_string())?;
                    let sms = i % 2 == 0;
                    d.upsert_owner(&OwnerInput {
                        household: h.clone(),
                        name: format!("业主{i}"),
                        phone: sms.then(|| format!("139{i:08}")),
                        email: (!sms).then(|| format!("owner{i}@example.com")),
                        language: Language::ZhCn,
                        preferred_contact: if sms {
                            ContactChannel::Sms
                        } else {
                            ContactChannel::Email
                        },
                    })?;
                    for (k, (y, m)) in months.iter().enumerate() {
                        let period = format!("{y}-{m:02}");
                        d.upsert_bill(&BillInput {
                            household: h.clone(),
                            fee_type: FeeType::Property,
                            period: period.parse().unwrap(),
                            amount_fen: 35_000,
                            due_date: NaiveDate::from_ymd_opt(*y, *m, 15).unwrap(),
                        })?;
                        if i % 5 == 0 && k >= months.len() - 3 {
                            continue;
                        }
                        d.upsert_payment(&PaymentInput {
                            reference: format!("P{i}-{period}"),
                            household: h.clone(),
                            fee_type: FeeType::Property,
                            period: period.parse().unwrap(),
                            amount_fen: 35_000,
                            paid_at: Utc.with_ymd_and_hms(*y, *m, 10, 2, 0, 0).unwrap(),
                            method: "bank".into(),
                            reversed_at: None,
                            reversal_reason: None,
                        })?
                        .expect("the bill was just written");
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    /// What one round measured.
    struct Round {
        /// Claimed to committed: the whole run as the scheduler carries it out.
        total: Duration,
        /// `Executor::execute`: the plugin in its sandbox, reading through the host.
        execute: Duration,
        /// The run's effects inside the completing transaction: kv progress, intents rendered
        /// and queued.
        effects: Duration,
        /// `Store::complete_run` minus the effects: the run row, the audit line, the commit.
        commit: Duration,
        /// The reads the plugin makes (unpaid bills, households), timed alone afterwards.
        reads: Duration,
        messages: usize,
        outbox_rows: i64,
    }

    fn round(seeded: &Store, settings: &Settings, cache: &Path, work: &Path) -> Round {
        // A fresh copy of the seeded database: no progress, no outbox rows from earlier rounds.
        let _ = std::fs::remove_dir_all(work);
        std::fs::create_dir_all(work).unwrap();
        seeded.snapshot_to(&work.join("wuye.db")).unwrap();
        let store = Arc::new(Store::open_in(work).unwrap());
        let reader = Arc::new(DomainReader::open(store.path()).unwrap());
        let clock: SharedClock = Arc::new(ManualClock::new(due_at()));
        let host = HostOptions {
            cache_dir: Some(cache.to_path_buf()),
            pooling: true,
        };
        let (executor, _reloadable) = wuye::cli::executor_with(
            settings,
            &store,
            &clock,
            reader.clone(),
            host,
            wuye::blocking::Blocking::Pool,
        )
        .unwrap();
        let community = settings
            .communities
            .iter()
            .find(|c| c.id == COMMUNITY)
            .unwrap()
            .clone();
        let workflow = community
            .workflows
            .iter()
            .find(|w| w.name == "fee_reminder")
            .unwrap()
            .clone();
        // Planned and claimed as the scheduler does it (not timed: that is the scheduler's own
        // cost, the same for every workflow).
        let slot = PlannedSlot {
            due_at: due_at(),
            run_at: due_at(),
            plan: SlotPlan::Run,
        };
        store
            .plan_slots(COMMUNITY, "fee_reminder", &[slot], due_at(), due_at())
            .unwrap();
        let run = store.due_runs(due_at(), 10).unwrap().pop().unwrap();
        let claimed = store.claim(run.id, due_at()).unwrap().unwrap();
        let request = RunRequest {
            run_id: claimed.id,
            community,
            workflow,
            due_at: claimed.due_at,
            trigger: Trigger::Schedule,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();

        let start = Instant::now();
        let effects = runtime
            .block_on(executor.execute(request))
            .unwrap_or_else(|e| panic!("{e:#}"));
        let execute = start.elapsed();
        let took = Arc::new(std::sync::Mutex::new(Duration::ZERO));
        let took2 = took.clone();
        let timed: Effects = Box::new(move |tx| {
            let t = Instant::now();
            let summary = effects(tx);
            *took2.lock().unwrap() = t.elapsed();
            summary
        });
        let t = Instant::now();
        let summary = store.complete_run(claimed.id, due_at(), timed).unwrap();
        let complete = t.elapsed();
        let total = start.elapsed();
        let effects = *took.lock().unwrap();

        let outbox_rows = store
            .read(|tx| {
                use wuye::deliver::Status;
                Ok(tx.outbox_count(Status::Pending)? + tx.outbox_count(Status::Deferred)?)
            })
            .unwrap();
        let data = wuye::wiring::StoreData::new(reader, Arc::new(settings.clone()));
        let view = data.community(COMMUNITY).unwrap();
        let t = Instant::now();
        // What the plugin reads: bills up to a week ahead (its first step), and the households
        // it writes to, for their labels.
        let bills = view
            .unpaid_bills_due_by(NaiveDate::from_ymd_opt(2027, 3, 22).unwrap())
            .unwrap();
        let mut owing: Vec<String> = bills.iter().map(|b| b.household.clone()).collect();
        owing.dedup();
        let households = view.households_by_id(&owing).unwrap().len();
        let reads = t.elapsed();
        assert_eq!(
            (bills.len(), households),
            (HOUSEHOLDS / 5 * 3, HOUSEHOLDS / 5)
        );
        Round {
            total,
            execute,
            effects,
            commit: complete - effects,
            reads,
            messages: summary.messages,
            outbox_rows,
        }
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    fn median(mut v: Vec<Duration>) -> Duration {
        v.sort();
        v[v.len() / 2]
    }

    pub fn run() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = config(&tmp.path().join("config"));
        // WORKFLOWS_BENCH_SEEDED=DIR keeps the seeded database there and reuses it next time
        // (seeding takes about a minute), for profiling.
        let seeded_dir = std::env::var_os("WORKFLOWS_BENCH_SEEDED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| tmp.path().join("seeded"));
        let reuse = seeded_dir.join("seeded").exists();
        let seeded = Store::open_in(&seeded_dir).unwrap();
        if reuse {
            println!(
                "end to end: reusing the seeded database in {}",
                seeded_dir.display()
            );
        } else {
            let t = Instant::now();
            seed(&seeded);
            std::fs::write(seeded_dir.join("seeded"), "").unwrap();
            println!(
                "end to end: seeded {HOUSEHOLDS} households, {} bills, 20% owing their last three months, in {:.1?} (not timed below)",
                HOUSEHOLDS * 12,
                t.elapsed()
            );
        }
        let cache = tmp.path().join("plugin-cache");
        let work = tmp.path().join("run");
        let warm = round(&seeded, &settings, &cache, &work);
        println!(
            "  first round (compiles the plugin into the cache, not counted): {:.0} ms",
            ms(warm.total)
        );
        let n = rounds();
        let rounds: Vec<Round> = (0..n)
            .map(|_| round(&seeded, &settings, &cache, &work))
            .collect();
        for r in &rounds {
            assert_eq!(
                r.messages,
                HOUSEHOLDS / 5,
                "one reminder per household in arrears"
            );
            assert_eq!(r.outbox_rows, r.messages as i64);
        }
        let pick = |f: fn(&Round) -> Duration| median(rounds.iter().map(f).collect());
        let total = pick(|r| r.total);
        println!(
            "fee_reminder due to outbox, {HOUSEHOLDS} households, 20% in arrears: {:.0} ms median of {n} ({} messages queued; rounds: {})",
            ms(total),
            rounds[0].messages,
            rounds
                .iter()
                .map(|r| format!("{:.0}", ms(r.total)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  execute (plugin + its data reads) {:.0} ms, of which reads alone {:.0} ms; effects (kv + render + enqueue) {:.0} ms; run row, audit, commit {:.0} ms",
            ms(pick(|r| r.execute)),
            ms(pick(|r| r.reads)),
            ms(pick(|r| r.effects)),
            ms(pick(|r| r.commit)),
        );
        println!(
            "  target 1 s: {}",
            if total < Duration::from_secs(1) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}
