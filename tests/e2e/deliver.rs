//! Delivery by email against a real SMTP server (aiosmtpd on 127.0.0.1): headers as mail
//! programs read them, retries, dead letter, re-check before sending, quiet hours, opt-out,
//! unreachable owners, and the `wuyed outbox` commands.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use wuye::clock::{Clock, ManualClock, SharedClock};
use wuye::deliver::{
    Audience, Category, Channel, Channels, Dispatcher, Enqueued, MessageRequest, Occurrence, Status,
};

use crate::deliver_support::*;
use crate::util::{run, stdout};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn smtp_config(port: u16, retry: &str) -> String {
    format!(
        "[delivery.email]\nfrom = \"水畔花园物业 <desk@shuipan.example>\"\n\
         unsubscribe_url = \"https://shuipan.example/unsubscribe?c={{community}}&r={{recipient}}\"\n\
         smtp = {{ host = \"127.0.0.1\", port = {port}, tls = \"none\", pool_size = 2, timeout = \"10s\" }}\n\
         {retry}\n"
    )
}

fn dispatcher(env: &Env, clock: &ManualClock, dir: Arc<MemDirectory>) -> Dispatcher {
    let shared: SharedClock = Arc::new(clock.clone());
    Dispatcher::new(
        &env.db,
        env.settings.clone(),
        shared,
        Channels::from_settings(&env.settings).unwrap(),
        dir,
    )
    .unwrap()
}

fn survey_request(owner: &str, slot: DateTime<Utc>) -> MessageRequest {
    MessageRequest {
        community: "shuipan".into(),
        workflow: "quarterly_survey".into(),
        occurrence: Occurrence::Due(slot),
        audience: Audience::Owner(owner.into()),
        step: "invite".into(),
        template: "invitation".into(),
        variables: serde_json::json!({
            "quarter": "2026Q2", "link": "https://shuipan.example/s/Xq3", "closes_on": "2026-04-15"
        }),
        category: Category::Informational,
        channel: None,
        reason: serde_json::Value::Null,
    }
}

fn directory() -> MemDirectory {
    MemDirectory::default()
        .with_household(
            "3-1-502",
            contact(
                "o-zhang",
                "张伟",
                Some("zhang.wei@example.com"),
                Some("13812341234"),
                "zh-CN",
            ),
        )
        .with_owner(contact(
            "o-smith",
            "Jane Smith",
            Some("jane@example.org"),
            None,
            "en",
        ))
        .with_owner(contact(
            "o-wang",
            "王芳",
            Some("wang.fang@example.com"),
            None,
            "zh-CN",
        ))
        .with_owner(contact("o-nobody", "赵六", None, None, "zh-CN"))
}

/// Chinese subjects and display names are RFC 2047-encoded on the wire and decode with Python's
/// `email` package to the text that was queued; Message-ID, Date and List-Unsubscribe are right.
#[test]
fn mail_arrives_with_headers_a_mail_reader_decodes_to_the_original_text() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = PyServer::start("smtp_sink.py", &tmp.path().join("sink"), &[]);
    let cfg = write_config(tmp.path(), &smtp_config(sink.port, ""), NO_QUIET);
    let env = Env::load(&cfg);
    let dir = directory();
    let now = Utc::now();
    let slot = at("2026-03-01T01:00:00Z");
    let queued = env.enqueue(
        &dir,
        now,
        &[
            bill_request(
                "3-1-502",
                slot,
                &[
                    (1, "物业费", "2026Q1", "1,280.00"),
                    (2, "停车费", "2026-02", "300.00"),
                ],
            ),
            survey_request("o-smith", slot),
        ],
    );
    assert!(
        matches!(
            queued[0],
            Enqueued::Queued {
                channel: Channel::Email,
                ..
            }
        ),
        "{queued:?}"
    );

    // The real binary works the outbox.
    let out = run(&[
        "outbox",
        "--config",
        cfg.to_str().unwrap(),
        "dispatch",
        "--once",
    ]);
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    assert!(stdout(&out).contains("sent 2 "), "{}", stdout(&out));

    let files = sink.files("eml");
    assert_eq!(files.len(), 2);
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        raw.lines().any(|l| l.starts_with("Subject: =?utf-8?")),
        "subject not RFC 2047-encoded:\n{raw}"
    );
    assert!(
        raw.is_ascii(),
        "raw message must be 7-bit clean headers/body encoding"
    );

    let rows = env.with_tx(|tx| Ok(tx.outbox_list(None, None, 10)?));
    let parsed = parse_mail(&files);
    for p in &parsed {
        let row = rows
            .iter()
            .find(|r| r.message_id == p["message_id"])
            .expect("Message-ID as stored");
        assert_eq!(row.status, Status::Sent);
        assert_eq!(p["subject"], row.subject.clone().unwrap());
        assert_eq!(p["from_name"], "水畔花园物业");
        assert_eq!(p["from_addr"], "desk@shuipan.example");
        assert!(p["date"].is_string());
        assert_eq!(p["content_type"], "multipart/alternative");
        assert_eq!(p["parts"][0]["type"], "text/plain");
        assert_eq!(p["parts"][1]["type"], "text/html");
    }
    let bill = parsed
        .iter()
        .find(|p| p["to_addr"] == "zhang.wei@example.com")
        .unwrap();
    assert_eq!(bill["to_name"], "张伟");
    assert_eq!(bill["subject"], "水畔花园：3-1-502 室 账单通知");
    // One message for the household, listing both unpaid items.
    let text = bill["parts"][0]["body"].as_str().unwrap();
    assert!(
        text.contains("物业费（2026Q1）：1,280.00 元")
            && text.contains("停车费（2026-02）：300.00 元"),
        "{text}"
    );
    assert!(text.contains("合计 1580.00 元"), "{text}");
    assert!(
        bill["list_unsubscribe"].is_null(),
        "transactional mail carries no List-Unsubscribe"
    );

    let survey = parsed
        .iter()
        .find(|p| p["to_addr"] == "jane@example.org")
        .unwrap();
    assert_eq!(
        survey["subject"],
        "水畔花园: 2026Q2 owner satisfaction survey"
    );
    let lu = survey["list_unsubscribe"].as_str().unwrap();
    assert!(
        lu.contains("<https://shuipan.example/unsubscribe?c=shuipan&r=owner:o-smith>"),
        "{lu}"
    );
    assert!(
        lu.contains("<mailto:desk@shuipan.example?subject=unsubscribe%20"),
        "{lu}"
    );

    // Queuing the same run again changes nothing.
    let again = env.enqueue(&dir, now, &[survey_request("o-smith", slot)]);
    assert_eq!(
        again,
        vec![Enqueued::Duplicate {
            recipient: "owner:o-smith".into()
        }]
    );
}

/// A server answering 451 twice, then accepting: every message arrives exactly once.
/// A 550 for one address lands in dead letter with the server's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failures_retry_until_accepted_once_and_permanent_ones_are_dead_letter() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = PyServer::start(
        "smtp_sink.py",
        &tmp.path().join("sink"),
        &["--fail-data", "2", "--reject", "nosuchuser"],
    );
    let cfg = write_config(
        tmp.path(),
        &smtp_config(
            sink.port,
            "[delivery.retry]\nbase = \"10s\"\nmax = \"1m\"\nmax_attempts = 5",
        ),
        NO_QUIET,
    );
    let env = Env::load(&cfg);
    let dir = Arc::new(directory().with_owner(contact(
        "o-gone",
        "钱七",
        Some("nosuchuser@example.com"),
        None,
        "zh-CN",
    )));
    let clock = ManualClock::new(at("2026-03-02T02:00:00Z"));
    let slot = at("2026-03-02T01:00:00Z");
    let reqs: Vec<_> = ["o-smith", "o-wang", "o-gone"]
        .iter()
        .map(|o| survey_request(o, slot))
        .collect();
    env.enqueue(dir.as_ref(), clock.now(), &reqs);
    let d = dispatcher(&env, &clock, dir.clone());

    let first = d.dispatch_once(clock.now()).await.unwrap();
    assert_eq!(first.dead, 1, "{first:?}");
    assert!(first.failed >= 1, "{first:?}");
    let dead = env.with_tx(|tx| Ok(tx.outbox_list(Some(Status::Dead), None, 10)?));
    assert_eq!(dead.len(), 1);
    let why = dead[0].last_error.as_deref().unwrap();
    assert!(
        why.contains("550") && why.contains("mailbox unavailable, no such user here"),
        "{why}"
    );

    for _ in 0..10 {
        clock.advance(Duration::minutes(2));
        d.dispatch_once(clock.now()).await.unwrap();
    }
    let sent = env.with_tx(|tx| Ok(tx.outbox_list(Some(Status::Sent), None, 10)?));
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|m| m.attempts >= 1));
    let ids: Vec<_> = parse_mail(&sink.files("eml"))
        .into_iter()
        .map(|p| p["message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "each accepted message arrives once: {ids:?}");
    assert_ne!(ids[0], ids[1]);
}

/// Only the relay's answer to the final "." says it has a message. A relay that stops answering
/// RCPT cannot have it: temporary, resent by itself. One that took the message and then hung,
/// or dropped the connection after the ".", may have it: `unknown`, held for the desk and never
/// resent by itself; `wuyed outbox retry` sends it again with the same Message-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_after_the_end_of_the_message_is_held_unknown_and_resent_by_hand_with_its_message_id()
 {
    let tmp = tempfile::tempdir().unwrap();
    let sink = PyServer::start(
        "smtp_sink.py",
        &tmp.path().join("sink"),
        &[
            "--stall-rcpt",
            "1",
            "--drop-after-data",
            "1",
            "--stall-after-data",
            "1",
        ],
    );
    let cfg = write_config(
        tmp.path(),
        &smtp_config(sink.port, "[delivery.retry]\nbase = \"10s\"\nmax = \"1m\"")
            .replace("timeout = \"10s\"", "timeout = \"2s\""),
        NO_QUIET,
    );
    let env = Env::load(&cfg);
    let dir = Arc::new(directory().with_owner(contact(
        "o-zhang-owner",
        "张伟",
        Some("zw@example.com"),
        None,
        "zh-CN",
    )));
    // The real time: `wuyed outbox retry` requeues for its own clock's now.
    let clock = ManualClock::new(Utc::now());
    let slot = clock.now() - Duration::hours(1);
    let reqs: Vec<_> = ["o-smith", "o-wang", "o-zhang-owner"]
        .iter()
        .map(|o| survey_request(o, slot))
        .collect();
    env.enqueue(dir.as_ref(), clock.now(), &reqs);
    let d = dispatcher(&env, &clock, dir.clone());

    // Two connections: the first RCPT hangs; of the two messages that reach DATA, one
    // connection is dropped after its "." and one relay takes the message and hangs.
    let first = d.dispatch_once(clock.now()).await.unwrap();
    assert_eq!(
        (first.failed, first.unknown, first.sent),
        (1, 2, 0),
        "{first:?}"
    );
    let unknown = env.with_tx(|tx| Ok(tx.outbox_list(Some(Status::Unknown), None, 10)?));
    assert_eq!(unknown.len(), 2);
    for m in &unknown {
        let why = m.last_error.as_deref().unwrap();
        assert!(
            why.contains("after the end of the message") && why.contains("wuyed outbox retry"),
            "{why}"
        );
    }
    let failed = env.with_tx(|tx| Ok(tx.outbox_list(Some(Status::Failed), None, 10)?));
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("before the message was handed over"),
        "{failed:?}"
    );
    assert_eq!(
        sink.files("eml").len(),
        1,
        "the hung relay kept its message"
    );

    // Later rounds resend the temporary failure, never the unknown ones.
    for _ in 0..3 {
        clock.advance(Duration::minutes(2));
        d.dispatch_once(clock.now()).await.unwrap();
    }
    assert_eq!(
        env.with_tx(|tx| Ok(tx.outbox_count(Status::Unknown)?)),
        2,
        "unknown messages wait for a human"
    );
    assert_eq!(env.with_tx(|tx| Ok(tx.outbox_count(Status::Sent)?)), 1);
    assert_eq!(sink.files("eml").len(), 2);

    // The desk sees them, and resends one by hand: same Message-ID as the copy the relay kept.
    let c = cfg.to_str().unwrap();
    let out = run(&["outbox", "--config", c, "--status", "unknown"]);
    let listed = stdout(&out);
    assert!(
        out.status.success() && listed.contains("unknown"),
        "{listed}"
    );
    let kept = parse_mail(&sink.files("eml")[..1])[0]["message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let held = unknown
        .iter()
        .find(|m| kept.contains(m.message_id.trim_matches(['<', '>'])))
        .expect("the relay's copy is one of the held messages");
    let out = run(&["outbox", "--config", c, "retry", &held.id.to_string()]);
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    clock.advance(Duration::minutes(5));
    let again = d.dispatch_once(clock.now()).await.unwrap();
    assert_eq!(again.sent, 1, "{again:?}");
    let ids: Vec<String> = parse_mail(&sink.files("eml"))
        .into_iter()
        .map(|p| p["message_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        ids.iter().filter(|id| **id == kept).count(),
        2,
        "the resend carries the first Message-ID: {ids:?}"
    );
}

/// A bill paid after its reminder was queued: cancelled just before sending, never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bill_paid_after_its_reminder_was_queued_is_cancelled_not_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = PyServer::start("smtp_sink.py", &tmp.path().join("sink"), &[]);
    let cfg = write_config(tmp.path(), &smtp_config(sink.port, ""), NO_QUIET);
    let env = Env::load(&cfg);
    let dir = Arc::new(directory());
    let clock = ManualClock::new(at("2026-03-02T02:00:00Z"));
    env.enqueue(
        dir.as_ref(),
        clock.now(),
        &[bill_request(
            "3-1-502",
            at("2026-03-02T01:00:00Z"),
            &[(7, "物业费", "2026Q1", "1,280.00")],
        )],
    );
    dir.paid.lock().unwrap().insert(7);
    let d = dispatcher(&env, &clock, dir.clone());
    let r = d.dispatch_once(clock.now()).await.unwrap();
    assert_eq!((r.cancelled, r.sent), (1, 0), "{r:?}");
    let m = env
        .with_tx(|tx| Ok(tx.outbox_list(None, None, 10)?))
        .remove(0);
    assert_eq!(m.status, Status::Cancelled);
    assert!(m.last_error.unwrap().contains("paid"));
    assert!(sink.files("eml").is_empty());
}

/// Queued at 22:30 in Shanghai: reminders wait for 08:00 and then go out spread over the
/// configured period; an urgent notice goes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_defer_and_spread_reminders_but_not_urgent_notices() {
    let tmp = tempfile::tempdir().unwrap();
    // The embedded default: .eml files, no server.
    let cfg = write_config(tmp.path(), "[delivery]\nquiet_spread = \"20m\"\n", "");
    let env = Env::load(&cfg);
    let mut dir = directory();
    for i in 0..30 {
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
    let dir = Arc::new(dir);
    let night = at("2026-03-02T22:30:00+08:00");
    let clock = ManualClock::new(night);
    let mut reqs: Vec<_> = (0..30)
        .map(|i| {
            bill_request(
                &format!("h{i}"),
                at("2026-03-02T14:00:00Z"),
                &[(100 + i, "物业费", "2026Q1", "100.00")],
            )
        })
        .collect();
    let mut urgent = survey_request("o-wang", night);
    urgent.workflow = "semiannual_event".into();
    urgent.template = "no_event".into();
    urgent.category = Category::Urgent;
    urgent.variables = serde_json::json!({"half": "2026H1", "deadline": "2026-03-02"});
    reqs.push(urgent);
    env.enqueue(dir.as_ref(), clock.now(), &reqs);

    let d = dispatcher(&env, &clock, dir.clone());
    let r = d.dispatch_once(clock.now()).await.unwrap();
    assert_eq!(r.sent, 1, "only the urgent notice goes at night: {r:?}");
    let waiting = env.with_tx(|tx| Ok(tx.outbox_list(Some(Status::Deferred), None, 100)?));
    assert_eq!(waiting.len(), 30);
    let open = at("2026-03-03T08:00:00+08:00");
    let times: std::collections::BTreeSet<_> = waiting.iter().map(|m| m.next_attempt_at).collect();
    assert!(
        times
            .iter()
            .all(|t| *t >= open && *t < open + Duration::minutes(20)),
        "{times:?}"
    );
    assert!(
        times.len() >= 25,
        "not spread: {} distinct times",
        times.len()
    );
    assert_eq!(d.next_due().unwrap(), times.first().copied());

    clock.set(open + Duration::minutes(10));
    let mid = d.dispatch_once(clock.now()).await.unwrap();
    assert!(
        mid.sent > 3 && mid.sent < 27,
        "about half by 08:10: {mid:?}"
    );
    clock.set(open + Duration::minutes(21));
    let rest = d.dispatch_once(clock.now()).await.unwrap();
    assert_eq!(mid.sent + rest.sent, 30);
    let mail = std::fs::read_dir(env.settings.data_dir.join("outbox/mail"))
        .unwrap()
        .count();
    assert_eq!(mail, 31);
}

/// Opt-out of informational mail is recorded with when and how and honoured; bills still go;
/// an owner with no address is listed for the desk, and the CLI masks contacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_out_is_recorded_and_honoured_and_the_unreachable_are_listed_for_the_desk() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "", NO_QUIET);
    let env = Env::load(&cfg);
    let dir = Arc::new(directory());
    let now = at("2026-03-02T02:00:00Z");
    env.with_tx(|tx| {
        tx.optout_record(
            "shuipan",
            "o-wang",
            Channel::Email,
            "reply to survey mail: 退订",
            now,
        )?;
        tx.optout_record(
            "shuipan",
            "o-zhang",
            Channel::Email,
            "service desk, by phone",
            now,
        )?;
        Ok(())
    });
    let slot = at("2026-03-02T01:00:00Z");
    let mut zhang_survey = survey_request("o-zhang", slot);
    zhang_survey.audience = Audience::Household("3-1-502".into());
    let q = env.enqueue(
        dir.as_ref(),
        now,
        &[
            survey_request("o-wang", slot),
            survey_request("o-nobody", slot),
            zhang_survey,
            bill_request("3-1-502", slot, &[(1, "物业费", "2026Q1", "1,280.00")]),
        ],
    );
    assert_eq!(
        q[0],
        Enqueued::OptedOut {
            recipient: "owner:o-wang".into()
        }
    );
    assert!(
        matches!(&q[1], Enqueued::Unreachable { why, .. } if why.contains("no usable email")),
        "{q:?}"
    );
    // 张伟 opted out of survey email and the survey has no SMS form: nobody to send it to.
    assert!(
        matches!(
            &q[2],
            Enqueued::Unreachable { .. } | Enqueued::OptedOut { .. }
        ),
        "{q:?}"
    );
    // The bill still goes, by email, despite the opt-out: it is not informational.
    assert!(
        matches!(
            q[3],
            Enqueued::Queued {
                channel: Channel::Email,
                ..
            }
        ),
        "{q:?}"
    );
    let history = env.with_tx(|tx| Ok(tx.optout_history("shuipan", "o-wang")?));
    assert_eq!(history[0].how, "reply to survey mail: 退订");
    assert_eq!(history[0].recorded_at, now);
    env.with_tx(|tx| {
        Ok(tx.optout_revoke(
            "shuipan",
            "o-wang",
            Channel::Email,
            "owner asked at the desk",
            now,
        )?)
    });
    assert!(!env.with_tx(|tx| Ok(tx.optout_active("shuipan", "o-wang", Channel::Email)?)));
    assert!(
        env.with_tx(|tx| Ok(tx.optout_history("shuipan", "o-wang")?))[0]
            .revoked_at
            .is_some()
    );

    let c = cfg.to_str().unwrap();
    let out = run(&["outbox", "--config", c, "unreachable"]);
    assert!(
        stdout(&out).contains("owner:o-nobody  赵六"),
        "{}",
        stdout(&out)
    );
    let out = run(&["outbox", "--config", c, "--status", "pending"]);
    let s = stdout(&out);
    assert!(
        s.contains("z***@example.com") && !s.contains("zhang.wei@example.com"),
        "{s}"
    );
    let out = run(&[
        "outbox",
        "--config",
        c,
        "--status",
        "pending",
        "--show-contacts",
    ]);
    assert!(stdout(&out).contains("zhang.wei@example.com"));

    // cancel, then retry, by id; a wrong id is an error naming it.
    let id = env.with_tx(|tx| Ok(tx.outbox_list(Some(Status::Pending), None, 1)?))[0].id;
    let out = run(&["outbox", "--config", c, "cancel", &id.to_string()]);
    assert!(out.status.success());
    assert_eq!(
        env.with_tx(|tx| Ok(tx.outbox_get(id)?)).unwrap().status,
        Status::Cancelled
    );
    let out = run(&["outbox", "--config", c, "retry", &id.to_string()]);
    assert!(out.status.success());
    assert_eq!(
        env.with_tx(|tx| Ok(tx.outbox_get(id)?)).unwrap().status,
        Status::Pending
    );
    let out = run(&["outbox", "--config", c, "cancel", "999999"]);
    assert_eq!(out.status.code(), Some(65));
    assert!(crate::util::stderr(&out).contains("no message with id 999999"));
    let out = run(&["outbox", "--config", c, "--status", "nonsense"]);
    assert_eq!(out.status.code(), Some(64));
}

/// No usable email: the bill goes by SMS (into the embedded `sms.jsonl` channel); a community
/// that turned fallback off lists the owner for the desk instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_without_email_gets_sms_unless_the_community_turned_fallback_off() {
    for (fallback, expect_sms) in [("other_channel", true), ("none", false)] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = write_config(
            tmp.path(),
            "",
            &format!("{NO_QUIET}\n[delivery]\nfallback = \"{fallback}\"\n"),
        );
        let env = Env::load(&cfg);
        let dir = Arc::new(MemDirectory::default().with_household(
            "7-2-101",
            contact(
                "o-liu",
                "刘洋",
                Some("not an address"),
                Some("13900001111"),
                "zh-CN",
            ),
        ));
        let clock = ManualClock::new(Utc::now());
        let q = env.enqueue(
            dir.as_ref(),
            clock.now(),
            &[bill_request(
                "7-2-101",
                at("2026-03-02T01:00:00Z"),
                &[(9, "物业费", "2026Q1", "640.00")],
            )],
        );
        if !expect_sms {
            assert!(
                matches!(&q[0], Enqueued::Unreachable { why, .. } if why == "no usable email"),
                "{q:?}"
            );
            let listed = env.with_tx(|tx| Ok(tx.unreachable_list(Some("shuipan"))?));
            assert_eq!(listed[0].name, "刘洋");
            continue;
        }
        assert!(
            matches!(
                q[0],
                Enqueued::Queued {
                    channel: Channel::Sms,
                    ..
                }
            ),
            "{q:?}"
        );
        let r = dispatcher(&env, &clock, dir.clone())
            .dispatch_once(clock.now())
            .await
            .unwrap();
        assert_eq!(r.sent, 1);
        let lines =
            std::fs::read_to_string(env.settings.data_dir.join("outbox/sms.jsonl")).unwrap();
        let line: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
        assert_eq!(line["to"], "13900001111");
        assert_eq!(
            line["body"],
            "【水畔花园】刘洋您好，7-2-101 室本期账单合计640.00元，明细可在物业服务中心查询。"
        );
        assert_eq!(line["template_code"], "SMS_000000001");
    }
}

/// The database refuses to record that a message was sent (as a full disk would) three rounds
/// running, then takes it: the answer is held, recorded once when the write goes through, the
/// mail is never sent a second time, and nothing new is claimed while an answer is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_database_refuses_is_held_recorded_once_later_and_never_resent() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = PyServer::start("smtp_sink.py", &tmp.path().join("sink"), &[]);
    let cfg = write_config(tmp.path(), &smtp_config(sink.port, ""), NO_QUIET);
    let env = Env::load(&cfg);
    let dir = Arc::new(directory());
    let clock = ManualClock::new(at("2026-03-02T02:00:00Z"));
    let slot = at("2026-03-02T01:00:00Z");
    env.enqueue(
        dir.as_ref(),
        clock.now(),
        &[survey_request("o-smith", slot)],
    );
    let d = dispatcher(&env, &clock, dir.clone());
    // Another connection makes every write of a `sent` answer fail until it is dropped.
    let refuse = rusqlite::Connection::open(&env.db).unwrap();
    refuse
        .execute_batch(
            "CREATE TRIGGER refuse_sent BEFORE UPDATE OF status ON outbox \
             WHEN NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
        )
        .unwrap();
    let status = |s: Status| env.with_tx(|tx| Ok(tx.outbox_count(s)?));

    let err = d.dispatch_once(clock.now()).await.unwrap_err();
    assert!(format!("{err:#}").contains("disk is full"), "{err:#}");
    assert_eq!(sink.files("eml").len(), 1, "the mail went");
    assert_eq!((status(Status::Sending), d.held()), (1, 1));
    // A second message comes due while the answer is held: it is not claimed.
    env.enqueue(dir.as_ref(), clock.now(), &[survey_request("o-wang", slot)]);
    for _ in 0..2 {
        clock.advance(Duration::minutes(1));
        assert!(d.dispatch_once(clock.now()).await.is_err());
        assert_eq!(
            status(Status::Pending),
            1,
            "nothing claimed while an answer is held"
        );
    }
    assert_eq!(
        sink.files("eml").len(),
        1,
        "nothing resent while the write fails"
    );
    assert_eq!(status(Status::Sending), 1);

    refuse.execute_batch("DROP TRIGGER refuse_sent").unwrap();
    clock.advance(Duration::minutes(1));
    let report = d.dispatch_once(clock.now()).await.unwrap();
    assert_eq!(
        report.sent, 2,
        "the held answer and the next message: {report:?}"
    );
    assert_eq!(d.held(), 0);
    let sent = env.with_tx(|tx| Ok(tx.outbox_list(Some(Status::Sent), None, 10)?));
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|m| m.attempts == 1), "{sent:?}");
    // A later round and a restart's recovery find nothing to send again.
    clock.advance(Duration::minutes(1));
    assert!(d.dispatch_once(clock.now()).await.unwrap().is_idle());
    assert_eq!(d.recover().unwrap(), (0, 0));
    let to: Vec<_> = parse_mail(&sink.files("eml"))
        .into_iter()
        .map(|p| p["to"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(to.len(), 2, "each message reached the server once: {to:?}");
}
