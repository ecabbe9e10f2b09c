//! The dispatcher is killed with SIGKILL at random points while sending to a real SMTP server
//! and restarted: no message is lost, none recorded as sent is sent again, and a message resent
//! after a kill carries the Message-ID of its first copy, so a mailbox can drop it.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use wuye::deliver::Status;

use crate::deliver_support::*;
use crate::util::wuyed;

#[test]
fn sigkill_at_random_points_loses_nothing_and_never_resends_a_recorded_send() {
    let tmp = tempfile::tempdir().unwrap();
    // 5 ms per message at the server widens the window between hand-over and record.
    let sink = PyServer::start(
        "smtp_sink.py",
        &tmp.path().join("sink"),
        &["--delay", "0.005"],
    );
    let cfg = write_config(
        tmp.path(),
        &format!(
            "[delivery.email]\nfrom = \"水畔花园物业 <desk@shuipan.example>\"\n\
             smtp = {{ host = \"127.0.0.1\", port = {}, tls = \"none\", pool_size = 4 }}\n",
            sink.port
        ),
        NO_QUIET,
    );
    let env = Env::load(&cfg);
    let n = 400;
    let mut dir = MemDirectory::default();
    for i in 0..n {
        dir = dir.with_household(
            &format!("h{i}"),
            contact(
                &format!("o{i}"),
                &format!("业主{i}"),
                Some(&format!("o{i}@example.com")),
                None,
                "zh-CN",
            ),
        );
    }
    let slot = Utc::now();
    let reqs: Vec<_> = (0..n)
        .map(|i| {
            bill_request(
                &format!("h{i}"),
                slot,
                &[(i as i64, "物业费", "2026Q1", "100.00")],
            )
        })
        .collect();
    env.enqueue(&dir, Utc::now(), &reqs);

    let sent_ids = |env: &Env| -> HashSet<String> {
        env.with_tx(|tx| Ok(tx.outbox_list(Some(Status::Sent), None, 100_000)?))
            .into_iter()
            .map(|m| m.message_id)
            .collect()
    };
    // (messages at the sink when killed, Message-IDs recorded as sent when killed)
    let mut kills: Vec<(usize, HashSet<String>)> = Vec::new();
    for round in 0..8 {
        let mut child = wuyed()
            .args(["outbox", "--config", cfg.to_str().unwrap(), "dispatch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ms = 40 + rand::random_range(0..200u64);
        std::thread::sleep(Duration::from_millis(ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let at_sink = sink.files("eml").len();
        let recorded = sent_ids(&env);
        eprintln!(
            "round {round}: killed after {ms} ms; {at_sink} at the sink, {} recorded",
            recorded.len()
        );
        kills.push((at_sink, recorded));
        if kills.last().unwrap().1.len() == n {
            break;
        }
    }
    // Let it finish.
    let out = wuyed()
        .args([
            "outbox",
            "--config",
            cfg.to_str().unwrap(),
            "dispatch",
            "--once",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rows = env.with_tx(|tx| Ok(tx.outbox_list(None, None, 100_000)?));
    assert_eq!(rows.len(), n);
    assert!(
        rows.iter().all(|m| m.status == Status::Sent),
        "every message ends sent"
    );
    let files = sink.files("eml");
    let mail = parse_mail(&files);
    let received: Vec<String> = mail
        .iter()
        .map(|p| p["message_id"].as_str().unwrap().to_string())
        .collect();

    // Nothing lost.
    let all: HashSet<String> = rows.iter().map(|m| m.message_id.clone()).collect();
    let got: HashSet<String> = received.iter().cloned().collect();
    assert_eq!(
        got, all,
        "every queued message reached the server, and nothing else did"
    );

    // Nothing recorded as sent went again after a restart.
    for (k, (at_sink, recorded)) in kills.iter().enumerate() {
        for id in &received[*at_sink..] {
            assert!(
                !recorded.contains(id),
                "kill {k}: {id} was recorded as sent, yet sent again"
            );
        }
    }

    // Every copy to one recipient carries one Message-ID.
    let mut by_rcpt: HashMap<String, HashSet<String>> = HashMap::new();
    for p in &mail {
        by_rcpt
            .entry(p["to_addr"].as_str().unwrap().to_string())
            .or_default()
            .insert(p["message_id"].as_str().unwrap().to_string());
    }
    assert!(by_rcpt.values().all(|ids| ids.len() == 1));
    eprintln!(
        "{} messages, {} copies at the sink ({} resent after kills, each with its first Message-ID)",
        n,
        received.len(),
        received.len() - n
    );
}
