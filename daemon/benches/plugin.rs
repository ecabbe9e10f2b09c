//! Plugin host figures (harness = false; prints, asserts nothing):
//! 1. a hook call on a reused instance (the floor: the component-model call itself);
//! 2. a fresh store + instance + call per run, as production does it, with and without pooling,
//!    and with a shipped workflow plugin (larger, with chrono-tz's data);
//! 3. a fee-reminder-style run over 100,000 households, 20% in arrears: read the data, call the
//!    plugin, buffer 20,000 intents, commit them to SQLite in one transaction;
//! 4. starting the host for 100 communities with plugins already in the on-disk compile cache.
//!
//! Run: `cargo bench -p wuye --bench plugin` (builds the plugins for wasm32-wasip2 first); name
//! sections to run only those: `cargo bench -p wuye --bench plugin -- reused fresh` (sections:
//! `reused`, `fresh`, `households`, `start`), e.g. to profile one under `perf record`.
//! Compare ratios within one run: the machine is shared and noisy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use wuye::clock::ManualClock;
use wuye::plugin::data::{Bill, Household, MemoryData, MemoryKv};
use wuye::plugin::host::HostOptions;
use wuye::plugin::intent::{Intent, Recipient};
use wuye::plugin::{Hook, Limits, PluginHost, RunInput};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn build_plugins() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(workspace())
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--release", "--target", "wasm32-wasip2", "-q"])
            .args([
                "-p",
                "misbehaving",
                "-p",
                "legacy-v010",
                "-p",
                "overdue-notice",
                "-p",
                "heartbeat",
                "-p",
                "fee-reminder",
            ])
            .status()
            .expect("cargo");
    assert!(status.success());
    let dir = target.join("wasm32-wasip2/release");
    if dir.is_absolute() {
        dir
    } else {
        workspace().join(dir)
    }
}

fn input(data: Arc<MemoryData>, hook: Hook, params: &str, limits: Limits) -> RunInput {
    let now = Utc.with_ymd_and_hms(2026, 9, 23, 1, 0, 0).unwrap();
    RunInput {
        workflow: "bench".into(),
        due_at: now,
        params_json: params.into(),
        hook,
        data,
        kv: Arc::new(MemoryKv::default()),
        clock: Arc::new(ManualClock::new(now)),
        limits,
        observer: None,
    }
}

fn empty_hook() -> Hook {
    Hook::Event {
        kind: "noop".into(),
        payload: String::new(),
    }
}

fn per(d: Duration, n: u32) -> String {
    let ns = d.as_nanos() as f64 / n as f64;
    if ns < 10_000.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{:.1} µs", ns / 1000.0)
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else names the sections to run.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |section: &str| only.is_empty() || only.iter().any(|o| o == section);
    let wasm = build_plugins();
    let pooled = PluginHost::new(HostOptions {
        cache_dir: None,
        pooling: true,
    })
    .unwrap();
    let on_demand = PluginHost::new(HostOptions {
        cache_dir: None,
        pooling: false,
    })
    .unwrap();
    println!("pooling allocator active: {}", pooled.pooling);
    if want("reused") {
        reused(&pooled, &wasm);
    }
    if want("fresh") {
        fresh(&pooled, &on_demand, &wasm);
    }
    if want("households") {
        households(&pooled, &wasm);
    }
    if want("start") {
        start(&wasm);
    }
}

/// 1. A hook call on a reused instance.
fn reused(pooled: &PluginHost, wasm: &Path) {
    let small = Arc::new(MemoryData::new("lakeside"));
    for (file, label) in [
        ("misbehaving.wasm", "SDK plugin, WIT 0.2.0"),
        ("legacy_v010.wasm", "raw plugin, WIT 0.1.0"),
    ] {
        let p = pooled.get(&wasm.join(file)).unwrap();
        let mut session = pooled
            .session(
                &p,
                input(small.clone(), empty_hook(), "{}", Limits::default()),
            )
            .unwrap();
        let hook = empty_hook();
        for _ in 0..1000 {
            session.call(&hook).unwrap().unwrap();
        }
        let n = 200_000;
        let t = Instant::now();
        for _ in 0..n {
            session.call(&hook).unwrap().unwrap();
        }
        println!(
            "reused instance, empty hook ({label}): {} per call",
            per(t.elapsed(), n)
        );
    }
}

/// 2. A fresh store + instance + call per run.
fn fresh(pooled: &PluginHost, on_demand: &PluginHost, wasm: &Path) {
    let small = Arc::new(MemoryData::new("lakeside"));
    // The SDK test plugin is small (~220 KB, 36 KB of data); a shipped workflow plugin carries
    // chrono-tz (fee_reminder: ~1.3 MB, 0.9 MB of data segments), which is what production
    // instantiates. Its event hook parses a JSON payload and finds nothing to do.
    let payment = Hook::Event {
        kind: "payment.noted".into(),
        payload: r#"{"bill_id": "b1"}"#.into(),
    };
    for (host, file, hook, label) in [
        (pooled, "misbehaving.wasm", empty_hook(), "pooling"),
        (on_demand, "misbehaving.wasm", empty_hook(), "on-demand"),
        (
            pooled,
            "fee_reminder.wasm",
            payment,
            "pooling, shipped fee_reminder.wasm, event hook",
        ),
    ] {
        let p = host.get(&wasm.join(file)).unwrap();
        let run = || {
            let r = host.run(
                &p,
                input(small.clone(), hook.clone(), "{}", Limits::default()),
            );
            assert!(r.result.is_ok(), "{:?}", r.result);
        };
        for _ in 0..200 {
            run();
        }
        let n = 5_000;
        let t = Instant::now();
        for _ in 0..n {
            run();
        }
        println!(
            "fresh store + instance + hook ({label}): {} per run",
            per(t.elapsed(), n)
        );
    }
}

/// 3. 100,000 households, 20% in arrears.
fn households(pooled: &PluginHost, wasm: &Path) {
    let mut data = MemoryData::new("lakeside");
    let due_past = NaiveDate::from_ymd_opt(2026, 8, 31).unwrap();
    for i in 0..100_000 {
        let id = format!("{}-{:04}", i / 1000 + 1, i % 1000);
        data.households.push(Household {
            id: id.clone(),
            building: String::new(),
            unit: String::new(),
            owners: vec![format!("o{i}")],
        });
        data.bills.push(Bill {
            id: format!("b{i}"),
            household: id,
            fee_type: "property".into(),
            period: "2026-08".into(),
            amount_fen: 35_000,
            paid_fen: if i % 5 == 0 { 0 } else { 35_000 },
            due_date: due_past,
        });
    }
    let data = Arc::new(data);
    let limits = Limits {
        max_intents: 100_000,
        ..Limits::default()
    };
    let p = pooled.get(&wasm.join("overdue_notice.wasm")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let t = Instant::now();
        let r = pooled.run(&p, input(data.clone(), Hook::Schedule, "{}", limits));
        let decided = t.elapsed();
        assert!(r.result.is_ok(), "{:?}", r.result);
        assert_eq!(r.intents.len(), 20_000);
        let mut conn =
            rusqlite::Connection::open(dir.path().join(format!("bench{round}.db"))).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE outbox (community TEXT, recipient TEXT, template TEXT, step TEXT, vars TEXT,
                                  UNIQUE (community, recipient, step));",
        )
        .unwrap();
        let t2 = Instant::now();
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx
                .prepare("INSERT INTO outbox VALUES (?1, ?2, ?3, ?4, ?5)")
                .unwrap();
            for i in &r.intents {
                if let Intent::Send(m) = i {
                    let to = match &m.to {
                        Recipient::Household(h) | Recipient::Owner(h) => h,
                    };
                    st.execute(rusqlite::params![
                        "lakeside",
                        to,
                        m.template,
                        m.step,
                        serde_json::to_string(&m.vars).unwrap()
                    ])
                    .unwrap();
                }
            }
        }
        tx.commit().unwrap();
        let committed = t2.elapsed();
        println!(
            "100,000 households / 20,000 overdue (round {round}): plugin run {:.0} ms (in-plugin {:.0} ms, peak memory {:.1} MiB) + commit {:.0} ms = {:.0} ms",
            decided.as_secs_f64() * 1e3,
            r.elapsed.as_secs_f64() * 1e3,
            r.peak_memory as f64 / (1 << 20) as f64,
            committed.as_secs_f64() * 1e3,
            (decided + committed).as_secs_f64() * 1e3
        );
    }
}

/// 4. Start with 100 communities, plugins cached on disk.
fn start(wasm: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("plugin-cache");
    let files = [
        "heartbeat.wasm",
        "overdue_notice.wasm",
        "legacy_v010.wasm",
        "misbehaving.wasm",
    ];
    let t = Instant::now();
    {
        let cold = PluginHost::new(HostOptions {
            cache_dir: Some(cache.clone()),
            pooling: true,
        })
        .unwrap();
        for f in files {
            cold.get(&wasm.join(f)).unwrap();
        }
    }
    let cold = t.elapsed();
    let t = Instant::now();
    let warm = PluginHost::new(HostOptions {
        cache_dir: Some(cache),
        pooling: true,
    })
    .unwrap();
    for c in 0..100 {
        // Each community's workflows name one of the plugin files; the host loads each once.
        for w in 0..4 {
            warm.get(&wasm.join(files[(c + w) % files.len()])).unwrap();
        }
    }
    println!(
        "host start, 100 communities x 4 workflows over {} plugin files: cold cache {:.0} ms, warm cache {:.0} ms",
        files.len(),
        cold.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );
}
