//! `wuyed outbox` as an administrator uses it: `list` with its filters, local times, aligned
//! columns and the legend of states; `retry` from a shell reaching a running daemon at once.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use unicode_width::UnicodeWidthStr;
use wuye::deliver::{Enqueued, Status};

use crate::deliver_support::*;
use crate::util::{stderr, stdout, wuyed};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The id of each message queued.
fn ids(queued: &[Enqueued]) -> Vec<i64> {
    queued
        .iter()
        .filter_map(|e| match e {
            Enqueued::Queued { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn outbox(cfg: &std::path::Path, args: &[&str]) -> std::process::Output {
    wuyed()
        .arg("outbox")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap()
}

#[test]
fn list_filters_by_state_channel_and_local_day_and_explains_the_states() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "[http]\nlisten = \"\"\n", NO_QUIET);
    let env = Env::load(&cfg);
    let dir = MemDirectory::default()
        .with_household(
            "1-1-101",
            contact("o1", "张伟", Some("zhang.wei@example.com"), None, "zh-CN"),
        )
        .with_household(
            "1-2-201",
            contact("o2", "王芳", None, Some("13800000003"), "zh-CN"),
        );
    // 09:30 and 01:00 on 1 December in Shanghai; the second is still 30 November in UTC.
    let email = ids(&env.enqueue(
        &dir,
        at("2026-12-01T01:30:00Z"),
        &[bill_request(
            "1-1-101",
            at("2026-12-01T01:30:00Z"),
            &[(1, "物业费", "2026Q4", "320.00")],
        )],
    ))[0];
    let sms = ids(&env.enqueue(
        &dir,
        at("2026-11-30T17:00:00Z"),
        &[bill_request(
            "1-2-201",
            at("2026-11-30T17:00:00Z"),
            &[(2, "物业费", "2026Q4", "320.00")],
        )],
    ))[0];
    let o = outbox(&cfg, &["cancel", &email.to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = outbox(&cfg, &["list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    // Header, rule, the two messages newest first, then the count, the zone and the legend.
    assert!(lines[0].starts_with("ID  STATE"), "{text}");
    // Newest first, ids right-aligned.
    let row = |i: usize| lines[i].trim_start();
    assert!(row(2).starts_with(&format!("{sms}  pending")), "{text}");
    assert!(row(3).starts_with(&format!("{email}  cancelled")), "{text}");
    assert!(lines[2].contains("2026-12-01 01:00"), "local time: {text}");
    assert!(lines[3].contains("2026-12-01 09:30"), "local time: {text}");
    assert!(
        !text.contains("13800000003"),
        "phone numbers are masked: {text}"
    );
    // Every column starts where its heading does.
    let queued = lines[0].find("QUEUED").unwrap();
    for row in &lines[2..4] {
        let cell = row.find("2026-12-01").unwrap();
        assert_eq!(row[..cell].width(), queued, "misaligned:\n{text}");
    }
    assert_eq!(lines[4], "2 messages", "{text}");
    assert_eq!(
        lines[5], "Times are local: shuipan Asia/Shanghai.",
        "{text}"
    );
    assert_eq!(lines[6], "States:", "{text}");
    assert!(lines[7].starts_with("  pending    queued"), "{text}");
    assert!(lines[8].starts_with("  cancelled  not sent"), "{text}");

    let rows = |args: &[&str]| -> Vec<String> {
        let o = outbox(&cfg, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
            .lines()
            .skip(2)
            .map(str::trim_start)
            // Up to the count line ("1 message").
            .take_while(|l| l.starts_with(|c: char| c.is_ascii_digit()) && !l.contains(" message"))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let (email, sms) = (email.to_string(), sms.to_string());
    assert_eq!(
        rows(&["list", "--status", "cancelled"]),
        vec![email.clone()]
    );
    assert_eq!(rows(&["list", "--channel", "sms"]), vec![sms.clone()]);
    // Days are Shanghai's: both were queued on 1 December there.
    assert_eq!(
        rows(&["list", "--since", "2026-12-01"]),
        [sms.clone(), email.clone()]
    );
    assert!(rows(&["list", "--until", "2026-11-30"]).is_empty());
    assert_eq!(rows(&["list", "--limit", "1"]), vec![sms.clone()]);
    let o = outbox(&cfg, &["list", "--since", "2026-12-02"]);
    assert_eq!(stdout(&o), "no message matches\n");
    // The bare command still lists, with the same filters.
    assert_eq!(rows(&["--status", "pending"]), [sms]);

    let o = outbox(&cfg, &["list", "--status", "lost"]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("expected one of pending, deferred"),
        "{}",
        stderr(&o)
    );
}

/// A message the daemon holds (cancelled, or failed until its next try) is sent within seconds
/// of `wuyed outbox retry` in another shell, not when some other message falls due.
#[test]
fn a_retry_from_the_shell_is_sent_by_the_running_daemon_within_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = PyServer::start("smtp_sink.py", &tmp.path().join("sink"), &[]);
    let cfg = write_config(
        tmp.path(),
        &format!(
            "[http]\nlisten = \"\"\n\n[delivery.email]\nfrom = \"水畔花园物业 <desk@shuipan.example>\"\n\
             smtp = {{ host = \"127.0.0.1\", port = {}, tls = \"none\" }}\n",
            sink.port
        ),
        NO_QUIET,
    );
    let env = Env::load(&cfg);
    let dir = MemDirectory::default().with_household(
        "1-1-101",
        contact("o1", "张伟", Some("zhang.wei@example.com"), None, "zh-CN"),
    );
    let now = Utc::now();
    let mut request = bill_request("1-1-101", now, &[(1, "物业费", "2026Q4", "320.00")]);
    // The daemon's own directory knows no bills of this test: nothing to re-check.
    request.reason = serde_json::Value::Null;
    let id = ids(&env.enqueue(&dir, now, &[request]))[0];
    let o = outbox(&cfg, &["cancel", &id.to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));

    let log_path = tmp.path().join("daemon.log");
    let mut daemon = wuyed()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log().contains("wuyed running") {
        assert!(
            Instant::now() < deadline,
            "the daemon did not start:\n{}",
            log()
        );
        assert!(
            daemon.try_wait().unwrap().is_none(),
            "the daemon exited:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the dispatcher finish its first round and go to sleep with nothing due.
    std::thread::sleep(Duration::from_millis(500));
    assert!(sink.files("eml").is_empty());

    let o = outbox(&cfg, &["retry", &id.to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let asked = Instant::now();
    while sink.files("eml").is_empty() {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "the retried message did not go out within 5 s:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = env.with_tx(|tx| Ok(tx.outbox_get(id)?)).unwrap();
    assert_eq!(sent.status, Status::Sent);

    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let status = daemon.wait().unwrap();
    assert!(
        status.success(),
        "wuyed run exited with {status}:\n{}",
        log()
    );
}
