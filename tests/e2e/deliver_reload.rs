//! `wuyed run` takes new delivery settings on SIGHUP: the real daemon, a heartbeat workflow that
//! tells the manager every second, mail first written as `.eml` files (the embedded default), then
//! the relay switched to a real aiosmtpd. Every message arrives once, by the old channel until the
//! switch and by the new one after it; a relay whose secret is missing keeps the old channel.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::deliver_support::{PyServer, parse_mail};
use crate::util::{LoggedDaemon, plugins_dir, write_heartbeat_community};

fn write_daemon_toml(cfg: &Path, delivery: &str) {
    std::fs::write(
        cfg.join("wuyed.toml"),
        format!(
            "[daemon]\ndata_dir = \"../data\"\ntimezone = \"Asia/Shanghai\"\n\n\
             [http]\nlisten = \"\"\n\n[plugins]\ndir = {:?}\n\n{delivery}\n",
            plugins_dir().display().to_string()
        ),
    )
    .unwrap();
}

/// Mail as the sink or the file channel stored it: (beat number, Message-ID).
fn beats(files: &[PathBuf]) -> Vec<(u64, String)> {
    parse_mail(files)
        .iter()
        .map(|p| {
            let subject = p["subject"].as_str().unwrap();
            let n = subject.strip_prefix("beat ").unwrap().parse().unwrap();
            (n, p["message_id"].as_str().unwrap().to_string())
        })
        .collect()
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    v.sort();
    v
}

#[test]
fn sighup_moves_delivery_to_the_new_relay_without_losing_or_doubling_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config");
    write_heartbeat_community(&cfg);
    // No [delivery]: mail becomes .eml files under data/outbox/mail.
    write_daemon_toml(&cfg, "");
    let files_dir = tmp.path().join("data/outbox/mail");
    let sink = PyServer::start("smtp_sink.py", &tmp.path().join("sink"), &[]);
    let relay = |auth: &str| {
        format!(
            "[delivery.email]\nfrom = \"Shuipan desk <desk@shuipan.example>\"\n\
             smtp = {{ host = \"127.0.0.1\", port = {}, tls = \"none\", pool_size = 2{auth} }}\n",
            sink.port
        )
    };

    let mut cmd = LoggedDaemon::command(&cfg);
    cmd.env_remove("WUYE_TEST_SMTP_PASSWORD");
    let daemon = LoggedDaemon::spawn(cmd);
    let minute = Duration::from_secs(60);
    daemon.wait_until("two beats written as files", minute, || {
        eml_files(&files_dir).len() >= 2
    });

    // A relay whose password variable is unset is refused with the whole reload: the old
    // channel stays.
    write_daemon_toml(
        &cfg,
        &relay(", username = \"desk\", password = { env = \"WUYE_TEST_SMTP_PASSWORD\" }"),
    );
    daemon.signal("HUP");
    daemon.wait_until("the unusable relay to be refused", minute, || {
        daemon.logged("configuration reload rejected")
    });
    let before = eml_files(&files_dir).len();
    daemon.wait_until("a beat still written as a file", minute, || {
        eml_files(&files_dir).len() > before
    });
    assert!(sink.files("eml").is_empty(), "the refused relay was used");

    // A usable relay: later beats go to it.
    write_daemon_toml(&cfg, &relay(""));
    daemon.signal("HUP");
    daemon.wait_until("three beats at the new relay", minute, || {
        sink.files("eml").len() >= 3
    });
    daemon.stop();

    let by_file = beats(&eml_files(&files_dir));
    let by_relay = beats(&sink.files("eml"));
    // Nothing doubled: the relay got each message once, and none went both ways.
    let relay_ids: BTreeSet<&String> = by_relay.iter().map(|b| &b.1).collect();
    assert_eq!(
        relay_ids.len(),
        by_relay.len(),
        "a message reached the relay twice"
    );
    let file_ids: BTreeSet<&String> = by_file.iter().map(|b| &b.1).collect();
    assert!(
        file_ids.is_disjoint(&relay_ids),
        "a message went by both channels"
    );
    // The switch is clean: no beat went to the old channel after one went to the new.
    let last_file = by_file.iter().map(|b| b.0).max().unwrap();
    let first_relay = by_relay.iter().map(|b| b.0).min().unwrap();
    assert!(
        last_file < first_relay,
        "files {by_file:?} and relay {by_relay:?} interleave"
    );
    // Nothing lost: every message recorded as sent arrived by one channel or the other, and
    // every other row is still waiting to be sent (queued as the daemon stopped), never lost in
    // `sending` or given up.
    let conn = rusqlite::Connection::open(tmp.path().join("data/wuye.db")).unwrap();
    let rows: Vec<(String, String)> = conn
        .prepare("SELECT message_id, status FROM outbox")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let sent: BTreeSet<&String> = rows
        .iter()
        .filter(|r| r.1 == "sent")
        .map(|r| &r.0)
        .collect();
    let arrived: BTreeSet<&String> = file_ids.union(&relay_ids).copied().collect();
    assert_eq!(sent, arrived);
    assert!(
        rows.iter().all(|r| r.1 == "sent" || r.1 == "pending"),
        "{rows:?}"
    );
}
