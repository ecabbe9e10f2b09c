//! The sandbox against real, built plugins (`plugins/`): misbehaviour is contained to its own
//! run while another community's run goes on, old WIT versions keep loading, changed files are
//! hot-reloaded, and the executor commits exactly what a run asked for.
//!
//! The `.wasm` files are built once per test process by [`crate::test_plugins::wasm`].

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{TimeZone, Utc};

use super::data::{Household, MemoryData, MemoryKv, MemorySource};
use super::host::{FailureKind, Hook, HostOptions, RunReport};
use super::intent::{Intent, IntentSink};
use super::*;
use crate::test_plugins::wasm;
use wuye_core::clock::ManualClock;
use wuye_scheduler::{EffectSummary, Executor, RunRequest, Trigger};
use wuye_store::Tx;

fn host() -> Arc<PluginHost> {
    static HOST: OnceLock<Arc<PluginHost>> = OnceLock::new();
    HOST.get_or_init(|| {
        Arc::new(
            PluginHost::new(HostOptions {
                cache_dir: None,
                pooling: true,
            })
            .unwrap(),
        )
    })
    .clone()
}

fn community(id: &str, households: &[&str]) -> MemoryData {
    let mut c = MemoryData::new(id);
    for h in households {
        c.households.push(Household {
            id: (*h).into(),
            building: "1".into(),
            unit: "101".into(),
            owners: vec![format!("o-{h}")],
        });
    }
    c
}

fn run(plugin: &str, data: MemoryData, params: &str, limits: Limits) -> RunReport {
    run_with_kv(plugin, data, params, limits, Arc::new(MemoryKv::default()))
}

/// [`run`] over a kv store holding what earlier runs committed.
fn run_with_kv(
    plugin: &str,
    data: MemoryData,
    params: &str,
    limits: Limits,
    kv: Arc<MemoryKv>,
) -> RunReport {
    let host = host();
    let p = host.get(&wasm().join(format!("{plugin}.wasm"))).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 9, 23, 1, 0, 0).unwrap();
    host.run(
        &p,
        RunInput {
            workflow: "test".into(),
            due_at: now,
            params_json: params.into(),
            hook: Hook::Schedule,
            data: Arc::new(data),
            kv,
            clock: Arc::new(ManualClock::new(now)),
            limits,
            observer: None,
        },
    )
}

/// Runs a misbehaving mode in "hillside" while heartbeat runs in "lakeside" at the same time;
/// heartbeat must succeed whatever the other does.
fn contained(mode: &str, limits: Limits) -> RunReport {
    let params = format!(r#"{{"mode": "{mode}", "target": "9-909"}}"#);
    let bad = std::thread::spawn(move || {
        run(
            "misbehaving",
            community("hillside", &["1-101"]),
            &params,
            limits,
        )
    });
    let good = run(
        "heartbeat",
        community("lakeside", &["1-101"]),
        "{}",
        Limits::default(),
    );
    assert_eq!(good.result.as_ref().err().map(|f| f.message.clone()), None);
    assert_eq!(
        good.kv_writes.len(),
        1,
        "lakeside's heartbeat recorded its beat"
    );
    bad.join().unwrap()
}

fn failure(r: &RunReport) -> (FailureKind, String) {
    let f = r.result.as_ref().expect_err("the run should have failed");
    assert!(
        r.intents.is_empty() && r.kv_writes.is_empty(),
        "a failed run asks for nothing"
    );
    (f.kind, f.message.clone())
}

#[test]
fn an_infinite_loop_is_stopped_within_twice_its_deadline() {
    let limits = Limits {
        deadline: Duration::from_millis(500),
        ..Limits::default()
    };
    let r = contained("loop", limits);
    assert_eq!(failure(&r).0, FailureKind::Deadline);
    assert!(
        r.elapsed >= Duration::from_millis(490),
        "stopped early: {:?}",
        r.elapsed
    );
    assert!(
        r.elapsed < Duration::from_millis(1000),
        "stopped late: {:?}",
        r.elapsed
    );
}

#[test]
fn a_memory_bomb_hits_the_cap_and_fails_alone() {
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let r = contained("memory", limits);
    let (kind, message) = failure(&r);
    assert_eq!(kind, FailureKind::Memory);
    assert!(
        message.starts_with("memory limit of 16 MiB reached"),
        "{message}"
    );
    assert!(r.peak_memory <= 16 << 20);
}

#[test]
fn a_flood_of_intents_is_refused_past_the_cap() {
    let r = contained("flood", Limits::default());
    assert_eq!(
        failure(&r),
        (
            FailureKind::IntentCap,
            "more than 30000 intents in one run (the limit); the run is refused whole".into()
        )
    );
}

/// Messages each under the payload cap add up: the run's total stops them at the one that
/// crosses it, rather than letting the host hold 10,000 × 64 KiB until the run commits.
#[test]
fn messages_each_under_the_payload_cap_are_refused_past_the_runs_total() {
    let r = contained("intent-flood", Limits::default());
    let (kind, message) = failure(&r);
    assert_eq!(kind, FailureKind::RunBytes);
    // 60 KiB of variable, "blob", the recipient, template and step: 61,460 bytes or so each;
    // the 546th passes 32 MiB.
    assert!(
        message.starts_with("the run handed the host 33")
            && message.ends_with(
                "bytes: the limit for one run is 33554432 bytes (max_run_bytes); the run is refused whole"
            )
            && message.contains("with a message of 614"),
        "{message}"
    );
}

/// What a run keeps of its log is counted too: a run allowed 10 KiB in all cannot log 64 KiB.
#[test]
fn the_log_a_run_keeps_counts_towards_its_total() {
    let limits = Limits {
        max_run_bytes: 10 * 1024,
        ..Limits::default()
    };
    let r = run(
        "misbehaving",
        community("hillside", &[]),
        r#"{"mode": "chatty"}"#,
        limits,
    );
    let (kind, message) = failure(&r);
    assert_eq!(kind, FailureKind::RunBytes);
    assert!(
        message.contains("with a log line of 65536 bytes: the limit for one run is 10240 bytes"),
        "{message}"
    );
}

#[test]
fn a_flood_of_timers_is_refused_past_the_intent_cap() {
    let r = contained("timer-flood", Limits::default());
    assert_eq!(
        failure(&r),
        (
            FailureKind::IntentCap,
            "more than 30000 intents in one run (the limit); the run is refused whole".into()
        )
    );
}

/// Every string of an intent counts towards its cap, not only template variables: a ticket
/// for a 4 MiB household id is refused like a 4 MiB variable.
#[test]
fn a_ticket_with_huge_strings_is_refused_at_the_payload_cap() {
    let r = contained("huge", Limits::default());
    assert_eq!(
        failure(&r),
        (
            FailureKind::Oversized,
            format!(
                "ticket of {} bytes refused: the limit is 65536 bytes",
                2 * (4 << 20) + "visit".len()
            )
        )
    );
}

/// Deep recursion ends the run, not the host, and the other community's run goes on.
#[test]
fn runaway_recursion_fails_its_run_alone() {
    let r = contained("stack", Limits::default());
    let (kind, message) = failure(&r);
    assert_eq!(kind, FailureKind::Trap, "{message}");
    assert!(message.contains("stack"), "{message}");
}

#[test]
fn an_endless_stderr_flood_is_stopped_by_the_deadline_and_its_log_kept_to_the_limit() {
    let limits = Limits {
        deadline: Duration::from_millis(300),
        ..Limits::default()
    };
    let r = contained("stderr-flood", limits);
    assert_eq!(failure(&r).0, FailureKind::Deadline);
    assert!(
        r.elapsed < Duration::from_millis(600),
        "stopped late: {:?}",
        r.elapsed
    );
    let kept: usize = r.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept < 65536 + 1024, "{kept} bytes of log kept");
}

/// A plugin that writes key after key is refused at the write that would take its store in
/// this community past its quota, naming plugin, community, quota and size; a run that only
/// rewrites keys it already has is not, however close to the quota (counted exactly, not as
/// if each write added a key).
#[test]
fn a_kv_flood_stops_at_the_communitys_quota_and_rewrites_are_counted_exactly() {
    let kv = Arc::new(MemoryKv::default());
    for i in 0..40 {
        kv.insert("hillside", "misbehaving", &format!("flood:{i:012}"), "old");
    }
    kv.insert("lakeside", "misbehaving", "other", &"o".repeat(10_000));
    let limits = Limits {
        kv_max_keys: 50,
        kv_max_bytes: 50 * 1024,
        ..Limits::default()
    };
    let flood = |count: u64, size: usize, limits: Limits| {
        run_with_kv(
            "misbehaving",
            community("hillside", &[]),
            &format!(r#"{{"mode": "kv-flood", "count": {count}, "size": {size}}}"#),
            limits,
            kv.clone(),
        )
    };
    // 45 keys, 40 of them already there: 45 in all, under 50.
    let ok = flood(45, 100, limits);
    assert!(ok.result.is_ok(), "{:?}", ok.result);
    assert_eq!(ok.kv_writes.len(), 45);

    let r = flood(1000, 100, limits);
    assert_eq!(
        failure(&r),
        (
            FailureKind::KvQuota,
            "plugin misbehaving would keep 51 keys in community hillside's kv store: its quota \
             is 50 keys (kv_max_keys); the run is refused whole"
                .into()
        )
    );
    // Bytes: 40 keys of 18 + 3 bytes are there; each key written brings 18 + 2000.
    let r = flood(
        1000,
        2000,
        Limits {
            kv_max_bytes: 20_000,
            ..limits
        },
    );
    assert_eq!(
        failure(&r),
        (
            FailureKind::KvQuota,
            format!(
                "plugin misbehaving would keep {} bytes in community hillside's kv store: its \
                 quota is 20000 bytes (kv_max_bytes); the run is refused whole",
                10 * (18 + 2000) + 30 * (18 + 3)
            )
        )
    );
}

#[test]
fn a_panic_is_reported_with_the_plugins_own_message() {
    let r = contained("panic", Limits::default());
    let (kind, message) = failure(&r);
    assert_eq!(kind, FailureKind::Trap);
    assert!(
        message.starts_with(
            "panicked: rule table is empty for hillside: plugins/misbehaving/src/lib.rs:"
        ),
        "{message}"
    );
    let bt = r.result.unwrap_err().backtrace.unwrap();
    assert!(
        bt.contains("misbehaving::Misbehaving"),
        "names in the backtrace: {bt}"
    );
}

#[test]
fn another_communitys_household_cannot_be_read_by_id() {
    // 9-909 exists, but in lakeside; the run belongs to hillside.
    let params = r#"{"mode": "snoop", "target": "9-909"}"#;
    let r = run(
        "misbehaving",
        community("hillside", &["1-101"]),
        params,
        Limits::default(),
    );
    assert!(r.result.is_ok());
    let fields = &r.logs[0].fields;
    assert!(
        fields.contains(&("found".into(), "None".into())),
        "{fields:?}"
    );
    assert!(fields.contains(&("kv".into(), "None".into())), "{fields:?}");
    assert!(
        fields.contains(&("own_households".into(), "1".into())),
        "{fields:?}"
    );
}

#[test]
fn a_forged_community_handle_traps() {
    let r = contained("forge", Limits::default());
    let (kind, message) = failure(&r);
    assert_eq!(kind, FailureKind::Trap);
    assert!(message.contains("handle"), "{message}");
}

#[test]
fn oversized_output_is_refused_and_long_logs_are_cut_with_a_marker() {
    let r = contained("oversized", Limits::default());
    assert_eq!(
        failure(&r),
        (
            FailureKind::Oversized,
            "message of 2097167 bytes refused: the limit is 65536 bytes".into()
        )
    );
    let chatty = run(
        "misbehaving",
        community("hillside", &[]),
        r#"{"mode": "chatty"}"#,
        Limits::default(),
    );
    assert!(chatty.result.is_ok());
    assert!(
        chatty.logs[0]
            .message
            .ends_with("…[truncated 983040 bytes: log limit]")
    );
    let marker = " …[truncated 983040 bytes: log limit]";
    assert_eq!(
        chatty.logs[0].message.len(),
        65536 + marker.len(),
        "kept exactly the budget, then the marker"
    );
    assert_eq!(
        chatty.logs.last().unwrap().message,
        "[log limit of 65536 bytes reached: 1 more lines dropped]"
    );
}

#[test]
fn a_huge_log_field_is_cut_to_the_same_budget_as_the_message() {
    let r = run(
        "misbehaving",
        community("hillside", &[]),
        r#"{"mode": "chatty-fields"}"#,
        Limits::default(),
    );
    assert!(r.result.is_ok());
    let line = &r.logs[0];
    let kept: usize = line.message.len()
        + line
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
    assert!(
        line.message
            .ends_with("[truncated 983053 bytes: log limit]"),
        "{}",
        line.message
    );
    assert!(
        kept < 65536 + 64,
        "the field was not cut: {kept} bytes kept"
    );
    assert_eq!(line.fields[0].0, "blob");
}

#[test]
fn a_sleeping_plugin_does_not_hold_its_worker_and_is_stopped_by_the_deadline() {
    let limits = Limits {
        deadline: Duration::from_millis(500),
        ..Limits::default()
    };
    // It sleeps for an hour, then waits for its clock to move: the sleep returns at once and
    // the wait spins on the run's fixed clock until the CPU deadline.
    let r = contained("sleep", limits);
    assert_eq!(failure(&r).0, FailureKind::Deadline);
    assert!(
        r.elapsed < Duration::from_millis(1000),
        "stopped late: {:?}",
        r.elapsed
    );
}

#[test]
fn what_a_plugin_prints_becomes_capped_log_lines_and_never_fails_the_run() {
    let r = run(
        "misbehaving",
        community("hillside", &[]),
        r#"{"mode": "print"}"#,
        Limits::default(),
    );
    assert_eq!(r.result.as_ref().err().map(|f| f.message.clone()), None);
    let lines: Vec<&str> = r.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(lines[0], "[stdout] rules loaded for hillside");
    assert_eq!(lines[1], "[stderr] warning: no rule for building 9");
    let kept: usize = r.logs.iter().map(|l| l.message.len()).sum();
    assert!(
        kept <= 2 * 65536,
        "output beyond the log limit was kept: {kept}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("more bytes not kept: log limit")
                || l.contains("more lines dropped")),
        "the cut is visible: {:?}",
        &lines[lines.len().saturating_sub(2)..]
    );
}

#[test]
fn timers_are_kept_between_now_and_the_horizon() {
    let r = run(
        "misbehaving",
        community("hillside", &[]),
        r#"{"mode": "timers"}"#,
        Limits::default(),
    );
    assert!(r.result.is_ok());
    let now = Utc.with_ymd_and_hms(2026, 9, 23, 1, 0, 0).unwrap();
    let times: Vec<_> = r
        .intents
        .iter()
        .map(|i| match i {
            Intent::SetTimer { at, payload } => (payload.as_str(), *at),
            other => panic!("not a timer: {other:?}"),
        })
        .collect();
    assert_eq!(
        times,
        [
            ("past", now),
            ("far", now + chrono::Duration::days(400)),
            ("soon", now + chrono::Duration::hours(1)),
        ]
    );
    assert!(
        r.logs[0].message.contains("at most 400 days ahead"),
        "{:?}",
        r.logs
    );
}

#[test]
fn a_plugin_built_against_0_1_0_still_loads_and_runs_next_to_0_3_0() {
    let host = host();
    let legacy = host.get(&wasm().join("legacy_v010.wasm")).unwrap();
    let current = host.get(&wasm().join("heartbeat.wasm")).unwrap();
    assert_eq!(legacy.version, WitVersion::V0_1_0);
    assert_eq!(current.version, WitVersion::V0_3_0);
    let r = run(
        "legacy_v010",
        community("lakeside", &["1-101", "1-102"]),
        "{}",
        Limits::default(),
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert_eq!(kv(&r, "households"), Some("2"));
    match &r.intents[..] {
        [Intent::NotifyStaff(n)] => {
            assert_eq!(n.role, wuye_config::Role::Supervisor);
            assert_eq!(n.vars, vec![("households".to_string(), "2".to_string())]);
        }
        other => panic!("unexpected intents {other:?}"),
    }
}

/// `wuyed check` reads a plugin's world from its bytes (`wit::detect_bytes`), the host from the
/// compiled component (`wit::detect`): they must agree, or check would warn about events a plugin
/// does get, or stay silent about ones it does not.
#[test]
fn the_world_read_from_the_bytes_is_the_one_the_host_loads() {
    let host = host();
    for plugin in ["heartbeat", "misbehaving", "legacy_v010", "legacy_v020"] {
        let path = wasm().join(format!("{plugin}.wasm"));
        let bytes = std::fs::read(&path).unwrap();
        let loaded = host.check(&path).unwrap();
        assert_eq!(
            wit::detect_bytes(&bytes, &path).unwrap(),
            loaded.version,
            "{plugin}"
        );
    }
    assert_eq!(
        wit::detect_bytes(
            &std::fs::read(wasm().join("legacy_v020.wasm")).unwrap(),
            Path::new("x")
        )
        .unwrap(),
        WitVersion::V0_2_0
    );

    // A world this host does not know: both refuse it, naming the version found.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.wasm");
    let bytes = std::fs::read(wasm().join("legacy_v020.wasm")).unwrap();
    let future = replace_all(
        &bytes,
        b"wuye:plugin/hooks@0.2.0",
        b"wuye:plugin/hooks@9.9.9",
    );
    std::fs::write(&path, &future).unwrap();
    let from_bytes = wit::detect_bytes(&future, &path).unwrap_err();
    assert!(
        matches!(&from_bytes, LoadError::Unsupported { found, .. } if found == "9.9.9"),
        "{from_bytes}"
    );
    match host.check(&path) {
        Err(e @ LoadError::Unsupported { .. }) => assert_eq!(e.to_string(), from_bytes.to_string()),
        // The renamed export may not type-check; then only the byte reading is compared.
        Err(LoadError::Compile { .. }) => {}
        other => panic!("{other:?}"),
    }

    // Not a component: no exports, so not a plugin.
    let core = wit::detect_bytes(b"\0asm\x01\0\0\0", &path).unwrap_err();
    assert!(matches!(core, LoadError::NotAPlugin { .. }), "{core}");
    assert!(wit::detect_bytes(b"not wasm", &path).is_err());
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = haystack.to_vec();
    let mut i = 0;
    let mut n = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(n > 0, "{} not found", String::from_utf8_lossy(from));
    out
}

#[test]
fn a_plugin_built_against_0_2_0_still_reads_bills_and_the_calendar() {
    let plugin = host().get(&wasm().join("legacy_v020.wasm")).unwrap();
    assert_eq!(plugin.version, WitVersion::V0_2_0);
    let mut data = community("lakeside", &["1-101", "1-102"]);
    for (id, household, paid) in [
        ("b1", "1-101", 0),
        ("b2", "1-102", 35_000),
        ("b3", "1-102", 0),
    ] {
        data.bills.push(crate::data::Bill {
            id: id.into(),
            household: household.into(),
            fee_type: "property".into(),
            period: "2026-09".into(),
            amount_fen: 35_000,
            paid_fen: paid,
            due_date: chrono::NaiveDate::from_ymd_opt(2026, 9, 30).unwrap(),
        });
    }
    // 国庆: a holiday in the community's calendar.
    data.workdays
        .insert(chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(), false);
    let r = run("legacy_v020", data, "{}", Limits::default());
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert_eq!(kv(&r, "unpaid"), Some("2"));
    match &r.intents[..] {
        [Intent::NotifyStaff(n)] => assert_eq!(
            n.vars,
            [
                ("unpaid", "2"),
                ("2026-10-01", "holiday"),
                ("community", "lakeside")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .to_vec()
        ),
        other => panic!("unexpected intents {other:?}"),
    }
}

#[test]
fn a_plugin_for_an_unknown_newer_version_is_refused_naming_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.wasm");
    std::fs::write(
        &path,
        r#"(component (instance $i) (export "wuye:plugin/hooks@9.0.0" (instance $i)))"#,
    )
    .unwrap();
    let err = host().check(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: built for wuye:plugin@9.0.0, which this wuyed does not know; supported versions: 0.1.0, 0.2.0, 0.3.0. Upgrade wuyed or build the plugin against an older SDK",
            path.display()
        )
    );
}

#[test]
fn a_changed_plugin_is_reloaded_and_a_broken_one_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rule.wasm");
    std::fs::copy(wasm().join("heartbeat.wasm"), &path).unwrap();
    let host = PluginHost::new(HostOptions::default()).unwrap();
    let first = host.get(&path).unwrap();
    assert_eq!(first.version, WitVersion::V0_3_0);

    std::fs::write(&path, b"not wasm at all").unwrap();
    let kept = host.get(&path).unwrap();
    assert_eq!(
        kept.hash, first.hash,
        "a broken new file keeps the old plugin"
    );

    std::thread::sleep(Duration::from_millis(20));
    std::fs::copy(wasm().join("legacy_v010.wasm"), &path).unwrap();
    let reloaded = host.get(&path).unwrap();
    assert_eq!(
        reloaded.version,
        WitVersion::V0_1_0,
        "the fixed file is picked up"
    );
}

#[test]
fn a_forced_reload_rereads_every_file_now_and_a_broken_one_keeps_its_old_version_running() {
    let dir = tempfile::tempdir().unwrap();
    let same_stamp = dir.path().join("same_stamp.wasm");
    let broken = dir.path().join("broken.wasm");
    let unseen = dir.path().join("unseen.wasm");
    for p in [&same_stamp, &broken] {
        std::fs::copy(wasm().join("heartbeat.wasm"), p).unwrap();
    }
    std::fs::copy(wasm().join("legacy_v010.wasm"), &unseen).unwrap();
    let host = PluginHost::new(HostOptions::default()).unwrap();
    let old_same = host.get(&same_stamp).unwrap();
    let old_broken = host.get(&broken).unwrap();

    // A deploy that keeps size and modification time (cp -p of a rebuilt plugin whose size did
    // not change): still a valid component, different content. Renaming a custom section is
    // such an edit.
    let mut bytes = std::fs::read(&same_stamp).unwrap();
    let at = bytes
        .windows(14)
        .position(|w| w == b"component-name")
        .unwrap();
    bytes[at + 13] = b'Z';
    let mtime = std::fs::metadata(&same_stamp).unwrap().modified().unwrap();
    std::fs::write(&same_stamp, &bytes).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(&same_stamp)
        .unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(
        host.get(&same_stamp).unwrap().hash,
        old_same.hash,
        "change detection by time and size cannot see this edit"
    );
    std::fs::write(&broken, b"not wasm at all").unwrap();

    let outcomes = host.reload(&[same_stamp.clone(), broken.clone(), unseen.clone()]);
    let outcome = |p: &Path| &outcomes.iter().find(|(q, _)| q == p).unwrap().1;
    match outcome(&same_stamp) {
        Reload::Reloaded(p) => assert_ne!(p.hash, old_same.hash),
        other => panic!("same_stamp.wasm: {other:?}"),
    }
    match outcome(&broken) {
        Reload::Kept { running, error } => {
            assert_eq!(running.hash, old_broken.hash);
            assert!(
                error.to_string().contains("not a valid wasm component"),
                "{error}"
            );
        }
        other => panic!("broken.wasm: {other:?}"),
    }
    match outcome(&unseen) {
        Reload::Loaded(p) => assert_eq!(p.version, WitVersion::V0_1_0),
        other => panic!("unseen.wasm: {other:?}"),
    }

    // Runs now get the reloaded version, and the broken file's previous version still runs.
    assert_ne!(host.get(&same_stamp).unwrap().hash, old_same.hash);
    let kept = host.get(&broken).unwrap();
    assert_eq!(kept.hash, old_broken.hash);
    let now = Utc.with_ymd_and_hms(2026, 9, 23, 1, 0, 0).unwrap();
    let report = host.run(
        &kept,
        RunInput {
            workflow: "test".into(),
            due_at: now,
            params_json: "{}".into(),
            hook: Hook::Schedule,
            data: Arc::new(community("lakeside", &["1-101"])),
            kv: Arc::new(MemoryKv::default()),
            clock: Arc::new(ManualClock::new(now)),
            limits: Limits::default(),
            observer: None,
        },
    );
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert_eq!(report.kv_writes.len(), 1, "heartbeat recorded its beat");
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("plugin-cache");
    let opts = HostOptions {
        cache_dir: Some(cache.clone()),
        pooling: false,
    };
    let cold = PluginHost::new(opts.clone()).unwrap();
    let p = cold.check(&wasm().join("heartbeat.wasm")).unwrap();
    let cold_time = p.load_time;
    drop(cold);
    let files = walk(&cache);
    assert!(files > 0, "nothing written to {}", cache.display());
    let warm = PluginHost::new(opts).unwrap();
    let warm_time = warm
        .check(&wasm().join("heartbeat.wasm"))
        .unwrap()
        .load_time;
    assert!(
        warm_time * 2 < cold_time,
        "cache did not help: cold {cold_time:?}, warm {warm_time:?}"
    );
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

// --- executor ------------------------------------------------------------------------------

#[derive(Default)]
struct RecordingSink(Mutex<Vec<Intent>>);

impl IntentSink for RecordingSink {
    fn apply(
        &self,
        _tx: &Tx<'_>,
        _run: &RunRequest,
        intents: &[Intent],
        _prepared: Option<crate::intent::Prepared>,
    ) -> anyhow::Result<EffectSummary> {
        self.0.lock().unwrap().extend_from_slice(intents);
        Ok(EffectSummary {
            messages: intents.len(),
            ..EffectSummary::default()
        })
    }
}

fn request(run_id: i64, plugin: &str, params: &str) -> RunRequest {
    let file: wuye_config::CommunityFile = toml::from_str(&format!(
        r#"
        id = "lakeside"
        name = "水畔花园"
        [workflows.rule]
        plugin = "{plugin}"
        notifies = ["supervisor"]
        params = {params}
        "#
    ))
    .unwrap();
    let wf = file.workflows["rule"].clone();
    let workflow = wuye_config::Workflow {
        notifies: wf.notifies,
        params: wf.params,
        ..wuye_config::Workflow::for_test("rule", &wasm().join(format!("{plugin}.wasm")))
    };
    RunRequest {
        run_id,
        community: Arc::new(wuye_config::Community {
            workflows: vec![workflow.clone()],
            ..wuye_config::Community::for_test("lakeside", "水畔花园")
        }),
        workflow,
        due_at: Utc.with_ymd_and_hms(2026, 9, 23, 1, 0, 0).unwrap(),
        trigger: Trigger::Schedule,
    }
}

fn executor(sink: Arc<RecordingSink>, kv: Arc<MemoryKv>) -> PluginExecutor {
    PluginExecutor::new(
        host(),
        Arc::new(MemorySource::new([community("lakeside", &["1-101"])])),
        kv,
        sink,
        Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 9, 23, 1, 0, 0).unwrap(),
        )),
        PluginSettings::default(),
    )
}

#[tokio::test]
async fn the_executor_commits_kv_and_intents_only_through_the_runs_transaction() {
    let sink = Arc::new(RecordingSink::default());
    let kv = Arc::new(MemoryKv::default());
    kv.insert("lakeside", "heartbeat", "beats", "41");
    let ex = executor(sink.clone(), kv);
    let effects = ex
        .execute(request(1, "heartbeat", r#"{notify = "manager"}"#))
        .await
        .unwrap();
    assert!(
        sink.0.lock().unwrap().is_empty(),
        "nothing applied before the commit"
    );

    let dir = tempfile::tempdir().unwrap();
    // A database with the daemon's schema, through the same opener as the dispatcher.
    let mut conn = wuye_store::outbox::open(&dir.path().join("wuye.db")).unwrap();
    let tx = Tx::begin(&mut conn).unwrap();
    let summary = effects(&tx).unwrap();
    assert_eq!(summary.messages, 1);
    assert_eq!(
        tx.plugin_kv_get("lakeside", "heartbeat", "beats")
            .unwrap()
            .as_deref(),
        Some("42")
    );
    assert!(matches!(&sink.0.lock().unwrap()[..], [Intent::NotifyStaff(n)] if n.step == "beat-42"));
}

#[tokio::test]
async fn repeated_failures_pause_the_workflow_and_tell_its_staff() {
    let sink = Arc::new(RecordingSink::default());
    let ex = executor(sink.clone(), Arc::new(MemoryKv::default()));
    let params = r#"{mode = "panic"}"#;
    for id in 1..=2 {
        let err = ex
            .execute(request(id, "misbehaving", params))
            .await
            .err()
            .unwrap();
        assert!(
            format!("{err:#}").contains("rule table is empty for lakeside"),
            "{err:#}"
        );
    }
    let effects = ex
        .execute(request(3, "misbehaving", params))
        .await
        .expect("the third failure completes the run with a pause");
    let dir = tempfile::tempdir().unwrap();
    // A database with the daemon's schema, through the same opener as the dispatcher.
    let mut conn = wuye_store::outbox::open(&dir.path().join("wuye.db")).unwrap();
    let tx = Tx::begin(&mut conn).unwrap();
    let summary = effects(&tx).unwrap();
    assert!(
        summary.notes[0].starts_with("plugin failed 3 times in a row"),
        "{:?}",
        summary.notes
    );
    let paused = tx.plugin_paused().unwrap();
    assert_eq!(
        (paused[0].workflow.as_str(), paused[0].failure_streak),
        ("rule", 3)
    );
    match &sink.0.lock().unwrap()[..] {
        [Intent::NotifyStaff(n)] => {
            assert_eq!(
                (n.role, n.template.as_str()),
                (wuye_config::Role::Supervisor, "workflow-paused")
            );
        }
        other => panic!("{other:?}"),
    }
    let err = ex
        .execute(request(4, "misbehaving", params))
        .await
        .err()
        .unwrap();
    assert!(err.downcast_ref::<executor::Paused>().is_some(), "{err:#}");
}

#[test]
fn check_file_explains_what_is_wrong_without_repeating_the_path() {
    assert_eq!(check_file(&wasm().join("heartbeat.wasm")), Ok(()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.wasm");
    std::fs::write(&path, "(component)").unwrap();
    assert_eq!(
        check_file(&path),
        Err(
            "not a wuye plugin: it exports no `wuye:plugin/hooks` interface (exports: none)".into()
        )
    );
}

fn kv<'a>(r: &'a RunReport, key: &str) -> Option<&'a str> {
    r.kv_writes
        .iter()
        .find(|w| w.key == key)
        .and_then(|w| w.value.as_deref())
}

fn ticket(id: &str, kind: &str) -> crate::data::Ticket {
    let at = Utc.with_ymd_and_hms(2026, 9, 20, 1, 0, 0).unwrap();
    crate::data::Ticket {
        id: id.into(),
        household: "1-101".into(),
        kind: kind.into(),
        opened_at: at,
        closed_at: Some(at),
        assignee: Some("cs-li".into()),
        callback: None,
    }
}

/// A community with a repair, a complaint and a desk task (`task`, which came after 0.3.0).
fn with_a_desk_task() -> MemoryData {
    let mut data = community("lakeside", &["1-101"]);
    data.tickets = vec![
        ticket("R-1", "repair"),
        ticket("W7-0", "task"),
        ticket("C-1", "complaint"),
    ];
    data
}

fn run_event(plugin: &str, data: MemoryData, kind: &str, payload: &str) -> RunReport {
    let host = host();
    let p = host.get(&wasm().join(format!("{plugin}.wasm"))).unwrap();
    let now = Utc.with_ymd_and_hms(2026, 9, 23, 1, 0, 0).unwrap();
    host.run(
        &p,
        RunInput {
            workflow: "test".into(),
            due_at: now,
            params_json: "{}".into(),
            hook: Hook::Event {
                kind: kind.into(),
                payload: payload.into(),
            },
            data: Arc::new(data),
            kv: Arc::new(MemoryKv::default()),
            clock: Arc::new(ManualClock::new(now)),
            limits: Limits::default(),
            observer: None,
        },
    )
}

#[test]
fn old_worlds_read_repairs_and_complaints_and_never_see_a_desk_task() {
    for plugin in ["legacy_v010", "legacy_v020"] {
        // Both plugins trap on a ticket kind their world lacks, and check `ticket` of each.
        let r = run(plugin, with_a_desk_task(), "{}", Limits::default());
        assert!(r.result.is_ok(), "{plugin}: {:?}", r.result);
        assert_eq!(
            kv(&r, "tickets"),
            Some("repair=1 complaint=1"),
            "{plugin} still reads the kinds it knows"
        );
        let said = format!("{:?} {:?} {:?}", r.intents, r.kv_writes, r.logs);
        assert!(
            !said.contains("task") && !said.contains("W7-0"),
            "{plugin}: {said}"
        );
    }
    // The newest world gets the task: the standard plugins handle it.
    assert!(
        WitVersion::V0_3_0
            .vocabulary()
            .knows_ticket(&ticket("W7-0", "task"))
    );
}

#[test]
fn old_worlds_get_only_the_events_their_world_had() {
    let closed = r#"{"ticket_id": 3, "no": "R-1", "kind": "repair"}"#;
    let cases = [
        // (plugin, event, payload, delivered)
        ("legacy_v010", "ticket.closed", closed, true),
        ("legacy_v010", "payment.posted", r#"{"bill": 7}"#, true),
        (
            "legacy_v010",
            "payment_plan.agreed",
            r#"{"household": "1-101"}"#,
            false,
        ),
        (
            "legacy_v010",
            "import.bills",
            r#"{"file": "bills.csv"}"#,
            false,
        ),
        (
            "legacy_v020",
            "payment_plan.agreed",
            r#"{"household": "1-101"}"#,
            true,
        ),
        (
            "legacy_v020",
            "import.bills",
            r#"{"file": "bills.csv"}"#,
            false,
        ),
        // About a desk task: the ticket its reads omit, by the payload's kind or by lookup.
        (
            "legacy_v010",
            "ticket.closed",
            r#"{"ticket_id": 9, "no": "W7-0", "kind": "task"}"#,
            false,
        ),
        (
            "legacy_v020",
            "callback.recorded",
            r#"{"ticket_id": 9, "no": "W7-0", "score": 5}"#,
            false,
        ),
        (
            "legacy_v020",
            "callback.recorded",
            r#"{"ticket_id": 3, "no": "R-1", "score": 5}"#,
            true,
        ),
    ];
    for (plugin, kind, payload, delivered) in cases {
        // The plugins trap on an event kind their world did not have.
        let r = run_event(plugin, with_a_desk_task(), kind, payload);
        assert!(r.result.is_ok(), "{plugin} {kind}: {:?}", r.result);
        if delivered {
            assert_eq!(kv(&r, "last-event"), Some(kind), "{plugin} {kind}");
        } else {
            assert!(r.kv_writes.is_empty(), "{plugin} {kind}: {:?}", r.kv_writes);
            assert!(
                r.logs.iter().any(|l| l
                    .message
                    .starts_with(&format!("event {kind} not delivered"))),
                "{plugin} {kind}: {:?}",
                r.logs
            );
        }
    }
}
