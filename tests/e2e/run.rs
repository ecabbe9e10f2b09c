//! `wuyed run` as an operator meets it: the real binary on a config written into a temp dir, its
//! JSON log read line by line, signals sent with kill(1), and the SQLite file inspected afterwards.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::util::{LoggedDaemon, wuyed};

/// How long a test waits for a log record before failing with the log.
const THIRTY_S: Duration = Duration::from_secs(30);

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// A config dir with one community, `shuipan`, whose `heartbeat` workflow runs on `schedule`.
    fn new(schedule: &str, catch_up: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join("communities")).unwrap();
        std::fs::create_dir_all(config.join("plugins")).unwrap();
        // The real heartbeat plugin: the daemon runs it.
        std::fs::copy(
            crate::util::plugins_dir().join("heartbeat.wasm"),
            config.join("plugins/heartbeat.wasm"),
        )
        .unwrap();
        std::fs::write(
            config.join("wuyed.toml"),
            "[daemon]\ndata_dir = \"data\"\ntimezone = \"Asia/Shanghai\"\n\n\
             [http]\nlisten = \"\"\n\n[plugins]\ndir = \"plugins\"\n",
        )
        .unwrap();
        let setup = Setup { dir };
        setup.write_community(&community_toml(&[("heartbeat", schedule, catch_up)]));
        setup
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn db(&self) -> PathBuf {
        self.config().join("data").join("wuye.db")
    }

    fn write_community(&self, text: &str) {
        std::fs::write(self.config().join("communities/shuipan.toml"), text).unwrap();
    }

    fn start(&self, extra: &[&str]) -> LoggedDaemon {
        start_daemon(&self.config(), extra, None)
    }

    /// (due_at, state, reason) of every heartbeat run, by due instant.
    fn runs(&self) -> Vec<(String, String, Option<String>)> {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT due_at, state, reason FROM runs WHERE community = 'shuipan' \
                 AND workflow = 'heartbeat' ORDER BY due_at, id",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

fn community_toml(workflows: &[(&str, &str, &str)]) -> String {
    let mut text =
        String::from("id = \"shuipan\"\nname = \"水畔花园\"\ntimezone = \"Asia/Shanghai\"\n");
    for (name, schedule, catch_up) in workflows {
        text.push_str(&format!(
            "\n[workflows.{name}]\nplugin = \"heartbeat\"\nschedule = \"{schedule}\"\n\
             catch_up = \"{catch_up}\"\ncatch_up_window = \"1d\"\n"
        ));
    }
    text
}

/// `wuyed run` on `config` with `extra` arguments, its log collected; `notify_socket` stands in
/// for systemd's.
fn start_daemon(config: &Path, extra: &[&str], notify_socket: Option<&Path>) -> LoggedDaemon {
    let mut cmd = LoggedDaemon::command(config);
    cmd.args(extra);
    if let Some(socket) = notify_socket {
        cmd.env("NOTIFY_SOCKET", socket);
    }
    LoggedDaemon::spawn(cmd)
}

fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or_default()
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or_default()
}

fn is_run_done(v: &Value) -> bool {
    message(v) == "run done" && field(v, "workflow") == "heartbeat"
}

#[test]
fn run_logs_each_workflows_next_run_then_runs_it_and_exits_0_on_sigterm() {
    let setup = Setup::new("0 8 * * *", "latest");
    let mut daemon = setup.start(&["--clock-start", "2026-11-22T07:59:58+08:00"]);
    let next = daemon.wait_record("the next run", THIRTY_S, |v| message(v) == "next run");
    assert_eq!(field(&next, "community"), "shuipan");
    assert_eq!(field(&next, "workflow"), "heartbeat");
    assert_eq!(field(&next, "next"), "2026-11-22T08:00:00+08:00");
    // Two seconds later on the daemon's clock, the 08:00 slot runs.
    daemon.wait_record("the 08:00 run", THIRTY_S, is_run_done);
    daemon.signal("TERM");
    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    assert_eq!(
        setup.runs(),
        vec![(
            "2026-11-22T00:00:00.000Z".to_string(),
            "done".to_string(),
            None
        )]
    );
}

#[test]
fn sigkill_and_restart_never_duplicate_a_run_row() {
    // A slot every second, so the kill lands among planned, running and done runs.
    let setup = Setup::new("* * * * * *", "all");
    let mut daemon = setup.start(&[]);
    daemon.wait_record("a first run", THIRTY_S, is_run_done);
    std::thread::sleep(Duration::from_millis(1500));
    daemon.child.kill().unwrap(); // SIGKILL
    daemon.child.wait().unwrap();
    let before = setup.runs().len();
    assert!(
        before >= 2,
        "expected runs before the kill: {:?}",
        setup.runs()
    );

    let mut daemon = setup.start(&[]);
    daemon.wait_record("a run after the restart", THIRTY_S, is_run_done);
    std::thread::sleep(Duration::from_millis(1500));
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit().code(), Some(0), "{}", daemon.log());

    let runs = setup.runs();
    assert!(runs.len() > before, "no new run after the restart");
    let mut due: Vec<_> = runs.iter().map(|r| r.0.clone()).collect();
    due.dedup();
    assert_eq!(due.len(), runs.len(), "a slot has two run rows: {runs:?}");
    assert!(
        runs.iter().all(|r| r.1 == "done" || r.1 == "planned"),
        "after a clean stop every run is done or still to come: {runs:?}"
    );
}

#[test]
fn downtime_with_catch_up_latest_runs_the_newest_slot_and_records_the_older_as_missed() {
    let setup = Setup::new("0 * * * *", "latest");
    let mut daemon = setup.start(&["--clock-start", "2026-11-22T08:00:30+08:00"]);
    daemon.wait_record("the next run", THIRTY_S, |v| message(v) == "next run");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit().code(), Some(0));

    // Back at 11:30: 09:00 and 10:00 are missed, 11:00 runs once.
    let mut daemon = setup.start(&["--clock-start", "2026-11-22T11:30:00+08:00"]);
    daemon.wait_record("the catch-up run", THIRTY_S, is_run_done);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit().code(), Some(0));

    let runs = setup.runs();
    let states: Vec<(&str, &str)> = runs.iter().map(|r| (&r.0[..], &r.1[..])).collect();
    assert_eq!(
        states,
        vec![
            ("2026-11-22T01:00:00.000Z", "missed"),
            ("2026-11-22T02:00:00.000Z", "missed"),
            ("2026-11-22T03:00:00.000Z", "done"),
        ]
    );
    for run in &runs[..2] {
        let reason = run.2.as_deref().unwrap_or_default();
        assert!(reason.contains("latest"), "reason: {reason:?}");
    }
    assert!(
        daemon.records(|v| message(v) == "slot missed").len() >= 2,
        "missed slots must be logged:\n{}",
        daemon.log()
    );
}

#[test]
fn sighup_with_a_broken_file_keeps_the_old_config_and_a_fixed_file_is_picked_up() {
    let setup = Setup::new("0 8 * * *", "latest");
    let mut daemon = setup.start(&["--clock-start", "2026-11-22T07:00:00+08:00"]);
    daemon.wait_record("the next run", THIRTY_S, |v| message(v) == "next run");

    setup.write_community(&format!(
        "{}\nreception_hourz = \"typo\"\n",
        community_toml(&[("heartbeat", "0 8 * * *", "latest")])
    ));
    daemon.signal("HUP");
    let rejected = daemon.wait_record("the rejected reload", THIRTY_S, |v| {
        message(v).contains("configuration reload rejected")
    });
    let why = message(&rejected);
    assert!(
        why.contains("shuipan.toml") && why.contains("reception_hourz"),
        "the log must say which file and key: {why}"
    );
    assert!(daemon.child.try_wait().unwrap().is_none(), "wuyed died");

    setup.write_community(&community_toml(&[
        ("heartbeat", "0 8 * * *", "latest"),
        ("evening", "30 19 * * *", "latest"),
    ]));
    daemon.signal("HUP");
    let next = daemon.wait_record("the new workflow's next run", THIRTY_S, |v| {
        message(v) == "next run" && field(v, "workflow") == "evening"
    });
    assert_eq!(field(&next, "next"), "2026-11-22T19:30:00+08:00");
    // The reload re-plans nothing: heartbeat's next run is still announced once per load, and no
    // run row exists yet.
    assert!(setup.runs().is_empty());
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit().code(), Some(0), "{}", daemon.log());
}

#[test]
fn a_broken_config_exits_78_with_the_file_and_key() {
    let setup = Setup::new("0 8 * * *", "latest");
    setup.write_community(&community_toml(&[("heartbeat", "0 25 * * *", "latest")]));
    let out = wuyed()
        .args(["run", "--config"])
        .arg(setup.config())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("shuipan.toml") && stderr.contains("workflows.heartbeat.schedule"),
        "{stderr}"
    );
    assert!(
        !setup.db().exists(),
        "nothing may be created on a broken config"
    );
}

#[test]
fn a_database_locked_by_another_process_exits_75() {
    let setup = Setup::new("0 8 * * *", "latest");
    std::fs::create_dir_all(setup.db().parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(setup.db()).unwrap();
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; CREATE TABLE hold (x);")
        .unwrap();
    let out = wuyed()
        .args(["run", "--config"])
        .arg(setup.config())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("wuye.db"), "{stderr}");
}

#[test]
fn systemd_hears_ready_after_the_database_reloading_around_sighup_and_stopping() {
    let setup = Setup::new("0 8 * * *", "latest");
    let socket_path = setup.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let recv = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("no notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut daemon = start_daemon(&setup.config(), &[], Some(&socket_path));
    let ready = recv();
    assert!(ready.starts_with("READY=1"), "{ready}");
    // By READY the database exists and is migrated.
    let conn = rusqlite::Connection::open(setup.db()).unwrap();
    let version: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, wuye::store::LATEST_VERSION);
    drop(conn);
    daemon.signal("HUP");
    assert!(recv().starts_with("RELOADING=1"));
    assert!(recv().starts_with("READY=1"));
    daemon.signal("TERM");
    assert!(recv().starts_with("STOPPING=1"));
    assert_eq!(daemon.wait_exit().code(), Some(0));
}

#[test]
fn sighup_rereads_the_plugins_now_and_a_broken_one_keeps_the_previous_version() {
    let setup = Setup::new("0 8 * * *", "latest");
    // 07:00: heartbeat's run is an hour away, so nothing but SIGHUP makes the daemon read it.
    let mut daemon = setup.start(&["--clock-start", "2026-11-22T07:00:00+08:00"]);
    daemon.wait_record("the next run", THIRTY_S, |v| message(v) == "next run");
    let wasm = setup.config().join("plugins/heartbeat.wasm");
    let path = wasm.display().to_string();

    daemon.signal("HUP");
    let loaded = daemon.wait_record("the plugin loaded", THIRTY_S, |v| {
        message(v) == "plugin loaded"
    });
    assert_eq!(field(&loaded, "path"), path);
    assert_eq!(field(&loaded, "version"), "0.3.0");

    // A new build deployed over the file (here the plugin built against WIT 0.1.0).
    std::fs::copy(crate::util::plugins_dir().join("legacy_v010.wasm"), &wasm).unwrap();
    daemon.signal("HUP");
    let reloaded = daemon.wait_record("the plugin reloaded", THIRTY_S, |v| {
        message(v) == "plugin reloaded"
    });
    assert_eq!(field(&reloaded, "path"), path);
    assert_eq!(field(&reloaded, "version"), "0.1.0");

    // A broken build: the daemon says why and keeps the 0.1.0 one.
    std::fs::write(&wasm, b"not wasm at all").unwrap();
    daemon.signal("HUP");
    let kept = daemon.wait_record("the broken plugin refused", THIRTY_S, |v| {
        message(v) == "plugin failed to load; keeping the previous version"
    });
    assert_eq!(field(&kept, "path"), path);
    assert!(
        field(&kept, "error").contains("not a valid wasm component"),
        "{kept}"
    );
    let summary = daemon.wait_record("the re-read summary", THIRTY_S, |v| {
        message(v) == "plugin files re-read" && v["failed"] == 1
    });
    assert_eq!(summary["reloaded"], 0, "{summary}");
    assert!(daemon.child.try_wait().unwrap().is_none(), "wuyed died");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit().code(), Some(0), "{}", daemon.log());
}
