//! Another process holding the database's write lock for long (a `sqlite3` shell left inside
//! `BEGIN IMMEDIATE`, a big import) while the real daemon runs a workflow every second and sends
//! its mail to a real aiosmtpd: the daemon waits the lock out (saying so once), loses nothing
//! and sends nothing twice; `/healthz` keeps answering and shows the dispatcher; a command
//! typed meanwhile gives up after its bounded wait with an error that says what to do.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::free_port;
use crate::deliver_support::{PyServer, parse_mail};
use crate::util::{LoggedDaemon, plugins_dir, stderr, write_heartbeat_community, wuyed};

/// How long the other process holds the lock: past SQLite's busy timeouts (5 s, 10 s) and a
/// command's bounded wait (30 s), with room for a slow machine.
const HOLD: Duration = Duration::from_secs(45);

fn config(dir: &Path, smtp_port: u16, http_port: u16) -> PathBuf {
    let cfg = dir.join("config");
    write_heartbeat_community(&cfg);
    std::fs::write(
        cfg.join("wuyed.toml"),
        format!(
            "[daemon]\ndata_dir = \"../data\"\ntimezone = \"Asia/Shanghai\"\n\n\
             [http]\nlisten = \"127.0.0.1:{http_port}\"\n\n[plugins]\ndir = {:?}\n\n\
             [delivery.email]\nfrom = \"Shuipan desk <desk@shuipan.example>\"\n\
             smtp = {{ host = \"127.0.0.1\", port = {smtp_port}, tls = \"none\", pool_size = 2 }}\n",
            plugins_dir().display().to_string()
        ),
    )
    .unwrap();
    cfg
}

/// How long any one step of this test may take: the lock alone is held for 45 s.
const STEP: Duration = Duration::from_secs(90);

/// `GET /healthz` over a plain socket: (status, body).
fn healthz(port: u16) -> (u16, serde_json::Value) {
    use std::io::{Read as _, Write as _};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer)
        .expect("/healthz answers while another process holds the lock");
    let status = answer[9..12].parse().unwrap();
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    (status, serde_json::from_str(body).unwrap())
}

#[test]
fn a_lock_held_by_another_process_past_every_timeout_loses_and_doubles_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = PyServer::start("smtp_sink.py", &tmp.path().join("sink"), &[]);
    let http_port = free_port();
    let cfg = config(tmp.path(), sink.port, http_port);
    let db = tmp.path().join("data/wuye.db");
    let daemon = LoggedDaemon::start(&cfg);
    daemon.wait_until("two beats at the relay", STEP, || {
        sink.files("eml").len() >= 2
    });
    assert_eq!(
        healthz(http_port),
        (200, serde_json::json!({"status": "ok", "dispatcher": "ok"}))
    );

    // Another process takes the write lock and sits on it.
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN IMMEDIATE')\n\
             print('HELD', flush=True)\n\
             time.sleep(float(sys.argv[2]))\n\
             c.execute('COMMIT')\n",
        )
        .arg(&db)
        .arg(HOLD.as_secs().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "HELD");
    let held_at = Instant::now();

    // A command typed meanwhile waits its bounded time, then says who is in the way (exit 75);
    // a read goes through at once.
    let c = cfg.to_str().unwrap();
    let list = wuyed()
        .args(["outbox", "--config", c, "--limit", "1"])
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", stderr(&list));
    let cancel = wuyed()
        .args(["outbox", "--config", c, "cancel", "1"])
        .output()
        .unwrap();
    let err = stderr(&cancel);
    assert_eq!(cancel.status.code(), Some(75), "{err}");
    assert!(
        err.contains("another process holds the write lock on database")
            && err.contains(&db.display().to_string())
            && err.contains("try again"),
        "{err}"
    );
    // The API and the dispatcher's heartbeat are still there.
    let (status, body) = healthz(http_port);
    assert_eq!(status, 200, "{body}");
    assert!(held_at.elapsed() < HOLD, "the hold ended before the checks");
    assert!(holder.wait().unwrap().success());
    let sent_at_release = sink.files("eml").len();

    // Beats flow again, then the daemon stops cleanly.
    daemon.wait_until("beats after the lock was released", STEP, || {
        sink.files("eml").len() >= sent_at_release + 3
    });
    let status = Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut daemon = daemon;
    let exit = loop {
        if let Some(s) = daemon.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "wuyed did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = daemon.log();
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("another process holds the database's write lock; waiting for it")
            && log.contains(&db.display().to_string()),
        "the wait is reported, naming the file:\n{log}"
    );
    assert!(
        !log.contains("database is locked"),
        "nothing failed on the lock:\n{log}"
    );

    // Every run that started finished; every message recorded sent arrived exactly once; the
    // rest are still waiting to go, none lost in `sending` or given up.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let bad_runs: i64 = conn
        .query_row(
            "SELECT count(*) FROM runs WHERE state IN ('failed', 'running')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bad_runs, 0, "{log}");
    let rows: Vec<(String, String)> = conn
        .prepare("SELECT message_id, status FROM outbox")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let arrived: Vec<String> = parse_mail(&sink.files("eml"))
        .iter()
        .map(|p| p["message_id"].as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = arrived.iter().collect();
    assert_eq!(unique.len(), arrived.len(), "a message arrived twice");
    let sent: BTreeSet<&String> = rows
        .iter()
        .filter(|r| r.1 == "sent")
        .map(|r| &r.0)
        .collect();
    assert_eq!(sent, unique);
    assert!(
        rows.iter().all(|r| r.1 == "sent" || r.1 == "pending"),
        "{rows:?}"
    );
}
