//! SMS through real HTTP servers standing in for Aliyun, Tencent Cloud, Twilio and a webhook.
//! The stand-in (tests/support/sms_gateway.py) verifies each request with its own, independent
//! implementation of the provider's documented signing and refuses what does not match, so
//! "sent" here means the provider would have accepted the request.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use wuye::clock::{Clock, ManualClock, SharedClock};
use wuye::deliver::{Channel, Channels, Dispatcher, Enqueued, Status, key_digest};

use crate::deliver_support::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Case {
    _tmp: tempfile::TempDir,
    gw: PyServer,
    env: Env,
    dir: Arc<MemDirectory>,
    clock: ManualClock,
}

fn case(mode: &str, answer: &str, sms_extra: &str) -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let gw = PyServer::start(
        "sms_gateway.py",
        &tmp.path().join("gw"),
        &[
            "--mode",
            mode,
            "--key-id",
            "LTAI-test-id",
            "--secret",
            "s3cr3t/+=",
            "--answer",
            answer,
        ],
    );
    // The secret comes from a file, as in production (systemd credentials).
    std::fs::write(tmp.path().join("sms-secret"), "s3cr3t/+=\n").unwrap();
    let community = format!(
        "[quiet_hours]\nstart = \"00:00\"\nend = \"00:00\"\n\n[delivery.sms]\nprovider = \"{mode}\"\n\
         endpoint = \"http://127.0.0.1:{}\"\nkey_id = \"LTAI-test-id\"\nsecret = {{ file = \"../sms-secret\" }}\n{sms_extra}\n",
        gw.port
    );
    let cfg = write_config(tmp.path(), "", &community);
    let env = Env::load(&cfg);
    let mut h = contact("o-zhang", "张伟", None, Some("13812341234"), "zh-CN");
    h.preferred = Some(Channel::Sms);
    let dir = Arc::new(MemDirectory::default().with_household("3-1-502", h));
    let clock = ManualClock::new(Utc::now());
    Case {
        _tmp: tmp,
        gw,
        env,
        dir,
        clock,
    }
}

impl Case {
    fn queue(&self, step: &str) -> i64 {
        let mut r = bill_request(
            "3-1-502",
            at("2026-03-02T01:00:00Z"),
            &[(1, "物业费", "2026Q1", "1,280.00")],
        );
        r.step = step.into();
        match &self.env.enqueue(self.dir.as_ref(), self.clock.now(), &[r])[0] {
            Enqueued::Queued {
                id,
                channel: Channel::Sms,
                ..
            } => *id,
            other => panic!("{other:?}"),
        }
    }

    fn dispatcher(&self) -> Dispatcher {
        let clock: SharedClock = Arc::new(self.clock.clone());
        Dispatcher::new(
            &self.env.db,
            self.env.settings.clone(),
            clock,
            Channels::from_settings(&self.env.settings).unwrap(),
            self.dir.clone(),
        )
        .unwrap()
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.gw.dir.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn row(&self, id: i64) -> wuye::deliver::OutboxMessage {
        self.env.with_tx(|tx| Ok(tx.outbox_get(id)?)).unwrap()
    }
}

fn form(body: &str) -> std::collections::HashMap<String, String> {
    body.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            let dec = |s: &str| {
                let bytes = s.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' {
                        out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else if bytes[i] == b'+' {
                        out.push(b' ');
                        i += 1;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            };
            (dec(k), dec(v))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_send_sms_is_signed_as_documented_and_carries_the_idempotency_key_as_out_id() {
    let c = case("aliyun", "ok", "sign_name = \"水畔花园物业\"");
    let id = c.queue("due");
    let r = c.dispatcher().dispatch_once(c.clock.now()).await.unwrap();
    assert_eq!(r.sent, 1, "{r:?} {:?}", c.requests());
    let req = &c.requests()[0];
    assert_eq!(req["verified"], true, "{req}");
    assert_eq!(req["method"], "POST");
    let p = form(req["body"].as_str().unwrap());
    let row = c.row(id);
    assert_eq!(p["PhoneNumbers"], "13812341234");
    assert_eq!(p["SignName"], "水畔花园物业");
    assert_eq!(p["TemplateCode"], "SMS_000000001");
    let tp: serde_json::Value = serde_json::from_str(&p["TemplateParam"]).unwrap();
    assert_eq!(
        tp,
        serde_json::json!({"name": "张伟", "unit": "3-1-502 室", "total": "1280.00"})
    );
    assert_eq!(p["OutId"], key_digest(&row.idempotency_key()));
    assert_eq!(row.status, Status::Sent);
    assert_eq!(row.provider_id.as_deref(), Some("9006197469364984^1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_invalid_number_is_dead_letter_with_the_providers_reason() {
    let c = case("aliyun", "invalid_number", "sign_name = \"水畔花园物业\"");
    let id = c.queue("due");
    c.dispatcher().dispatch_once(c.clock.now()).await.unwrap();
    let row = c.row(id);
    assert_eq!(row.status, Status::Dead);
    assert!(
        row.last_error
            .unwrap()
            .contains("isv.MOBILE_NUMBER_ILLEGAL: 非法手机号")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencent_send_sms_is_signed_with_tc3_and_the_same_text_waits_30_seconds() {
    let c = case(
        "tencent",
        "ok",
        "sign_name = \"水畔花园物业\"\napp_id = \"1400000001\"",
    );
    let first = c.queue("due");
    let second = c.queue("due-again");
    let d = c.dispatcher();
    let r = d.dispatch_once(c.clock.now()).await.unwrap();
    assert_eq!((r.sent, r.deferred), (1, 1), "{r:?} {:?}", c.requests());
    let req = &c.requests()[0];
    assert_eq!(req["verified"], true, "{req}");
    assert_eq!(req["headers"]["x-tc-action"], "SendSms");
    assert_eq!(req["headers"]["x-tc-version"], "2021-01-11");
    assert_eq!(req["headers"]["x-tc-region"], "ap-guangzhou");
    let body: serde_json::Value = serde_json::from_str(req["body"].as_str().unwrap()).unwrap();
    let row = c.row(first);
    assert_eq!(
        body,
        serde_json::json!({
            "PhoneNumberSet": ["+8613812341234"],
            "SmsSdkAppId": "1400000001",
            "SignName": "水畔花园物业",
            "TemplateId": "SMS_000000001",
            "TemplateParamSet": ["张伟", "3-1-502 室", "1280.00"],
            "SessionContext": key_digest(&row.idempotency_key()),
        })
    );
    assert_eq!(row.status, Status::Sent);
    assert!(row.provider_id.unwrap().starts_with("5000:"));
    // Tencent: the same content to the same number at most once per 30 s.
    let held = c.row(second);
    assert_eq!(held.status, Status::Deferred);
    let wait = held.next_attempt_at - c.clock.now();
    assert!(
        wait > Duration::seconds(29) && wait <= Duration::seconds(30),
        "{wait}"
    );
    c.clock.advance(Duration::seconds(31));
    d.dispatch_once(c.clock.now()).await.unwrap();
    assert_eq!(c.row(second).status, Status::Sent);
    assert_eq!(c.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencent_rate_limit_answer_is_retried_later() {
    let c = case(
        "tencent",
        "limit",
        "sign_name = \"水畔花园物业\"\napp_id = \"1400000001\"",
    );
    let id = c.queue("due");
    c.dispatcher().dispatch_once(c.clock.now()).await.unwrap();
    let row = c.row(id);
    assert_eq!(row.status, Status::Failed, "{row:?}");
    assert!(row.next_attempt_at > c.clock.now());
    assert!(
        row.last_error
            .unwrap()
            .contains("LimitExceeded.PhoneNumberThirtySecondLimit")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_messages_use_basic_auth_and_a_form() {
    let c = case("twilio", "ok", "from = \"+15005550006\"");
    let id = c.queue("due");
    let r = c.dispatcher().dispatch_once(c.clock.now()).await.unwrap();
    assert_eq!(r.sent, 1, "{:?}", c.requests());
    let req = &c.requests()[0];
    assert_eq!(req["verified"], true, "{req}");
    assert_eq!(
        req["path"],
        "/2010-04-01/Accounts/LTAI-test-id/Messages.json"
    );
    let p = form(req["body"].as_str().unwrap());
    assert_eq!(p["To"], "13812341234");
    assert_eq!(p["From"], "+15005550006");
    let row = c.row(id);
    assert_eq!(p["Body"], row.body_text);
    assert!(
        row.body_text.contains("3-1-502 室本期账单合计1280.00元"),
        "{}",
        row.body_text
    );
    assert!(row.provider_id.unwrap().starts_with("SM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gets_json_with_an_idempotency_key_and_503_is_temporary() {
    let c = case("webhook", "ok", "");
    let id = c.queue("due");
    c.dispatcher().dispatch_once(c.clock.now()).await.unwrap();
    let req = &c.requests()[0];
    assert_eq!(req["verified"], true, "{req}");
    let row = c.row(id);
    assert_eq!(
        req["headers"]["idempotency-key"],
        key_digest(&row.idempotency_key())
    );
    assert_eq!(req["headers"]["authorization"], "Bearer s3cr3t/+=");
    let body: serde_json::Value = serde_json::from_str(req["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["to"], "13812341234");
    assert_eq!(body["body"], row.body_text);
    assert_eq!(row.provider_id.as_deref(), Some("gw-1"));

    let busy = case("webhook", "503", "");
    let id = busy.queue("due");
    busy.dispatcher()
        .dispatch_once(busy.clock.now())
        .await
        .unwrap();
    assert_eq!(busy.row(id).status, Status::Failed);
}

/// An SMS whose answer was lost and that Tencent has no receipt of is held for a human, not
/// resent (no receipt proves nothing: receipts lag the carrier); through an idempotent gateway it
/// is resent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_with_unknown_outcome_waits_for_a_human_unless_the_gateway_is_idempotent() {
    for (mode, extra, expect) in [
        (
            "tencent",
            "sign_name = \"水畔花园物业\"\napp_id = \"1400000001\"",
            Status::Unknown,
        ),
        ("webhook", "", Status::Pending),
    ] {
        let c = case(mode, "ok", extra);
        let id = c.queue("due");
        // As if a dispatcher claimed it and was killed mid-request.
        c.env.with_tx(|tx| Ok(tx.outbox_claim(id, c.clock.now())?));
        let d = c.dispatcher();
        d.recover().unwrap();
        // Tencent is asked for receipts and has none: it stays for a human.
        d.resolve_unknown().await.unwrap();
        assert_eq!(c.row(id).status, expect, "{mode}");
        assert!(
            c.requests()
                .iter()
                .all(|r| r["headers"]["x-tc-action"] != "SendSms" && r["verified"] == true),
            "{mode}: nothing sent"
        );
    }
}

/// Tencent can confirm: an SMS that reached the provider but whose answer was lost is found
/// among the number's delivery receipts by its `SessionContext` (PullSmsSendStatusByPhoneNumber,
/// signed like SendSms) and recorded as sent, without a second text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencent_confirms_an_unknown_outcome_by_its_receipt_instead_of_resending() {
    let c = case(
        "tencent",
        "ok",
        "sign_name = \"水畔花园物业\"\napp_id = \"1400000001\"",
    );
    let id = c.queue("due");
    let d = c.dispatcher();
    d.dispatch_once(c.clock.now()).await.unwrap();
    let conn = rusqlite::Connection::open(&c.env.db).unwrap();
    conn.execute(
        "UPDATE outbox SET status = 'unknown', provider_id = NULL WHERE id = ?1",
        [id],
    )
    .unwrap();
    assert_eq!(d.resolve_unknown().await.unwrap(), (1, 0));
    let row = c.row(id);
    assert_eq!(row.status, Status::Sent);
    assert_eq!(row.provider_id.as_deref(), Some("5000:104571066915701"));
    d.dispatch_once(c.clock.now()).await.unwrap();
    let reqs = c.requests();
    let action = |r: &serde_json::Value| r["headers"]["x-tc-action"].as_str().unwrap().to_string();
    assert_eq!(
        reqs.iter().map(action).collect::<Vec<_>>(),
        ["SendSms", "PullSmsSendStatusByPhoneNumber"],
        "no second text"
    );
    assert!(reqs.iter().all(|r| r["verified"] == true), "{reqs:?}");
    let pull: serde_json::Value = serde_json::from_str(reqs[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(pull["PhoneNumber"], "+8613812341234");
    assert_eq!(pull["SmsSdkAppId"], "1400000001");
}

/// Aliyun sends approved templates only: a staff alert whose template has just an SMS body goes
/// by email instead of failing at the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_only_sms_template_falls_back_to_email_where_the_provider_needs_approved_codes() {
    let c = case("aliyun", "ok", "sign_name = \"水畔花园物业\"");
    let req = wuye::deliver::MessageRequest {
        community: "shuipan".into(),
        workflow: "callback_escalation".into(),
        occurrence: wuye::deliver::Occurrence::Timer(42),
        audience: wuye::deliver::Audience::StaffRole(wuye::config::Role::Supervisor),
        step: "supervisor".into(),
        template: "callback_overdue".into(),
        variables: serde_json::json!({
            "ticket": {"id": "T-88", "kind": "报修", "summary": "厨房漏水", "closed_at": "2026-03-01 10:00", "assignee": "王强"},
            "overdue_hours": 6,
        }),
        category: wuye::deliver::Category::Transactional,
        channel: Some(Channel::Sms),
        reason: serde_json::json!({"callback": "T-88"}),
    };
    let q = c.env.enqueue(c.dir.as_ref(), c.clock.now(), &[req]);
    assert_eq!(
        q,
        vec![Enqueued::Queued {
            id: 1,
            recipient: "staff:li-na".into(),
            channel: Channel::Email
        }]
    );
}

/// Aliyun can tell: an SMS of unknown outcome is looked up by its `OutId` with
/// QuerySendDetails. Absent at the provider: sent again, once. Present: recorded as sent
/// without a second text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliyun_resolves_unknown_outcomes_by_out_id_instead_of_resending_blindly() {
    let sends = |c: &Case| {
        c.requests()
            .iter()
            .filter(|r| form(r["body"].as_str().unwrap())["Action"] == "SendSms")
            .count()
    };
    // Lost before it reached the provider.
    let c = case("aliyun", "ok", "sign_name = \"水畔花园物业\"");
    let id = c.queue("due");
    c.env.with_tx(|tx| Ok(tx.outbox_claim(id, c.clock.now())?));
    let d = c.dispatcher();
    d.recover().unwrap();
    assert_eq!(c.row(id).status, Status::Unknown);
    assert_eq!(d.resolve_unknown().await.unwrap(), (0, 1));
    assert_eq!(c.row(id).status, Status::Pending);
    d.dispatch_once(c.clock.now()).await.unwrap();
    assert_eq!(c.row(id).status, Status::Sent);
    assert_eq!(sends(&c), 1);
    assert!(c.requests().iter().all(|r| r["verified"] == true));

    // Reached the provider, answer lost.
    let c = case("aliyun", "ok", "sign_name = \"水畔花园物业\"");
    let id = c.queue("due");
    let d = c.dispatcher();
    d.dispatch_once(c.clock.now()).await.unwrap();
    let conn = rusqlite::Connection::open(&c.env.db).unwrap();
    conn.execute(
        "UPDATE outbox SET status = 'unknown', provider_id = NULL WHERE id = ?1",
        [id],
    )
    .unwrap();
    assert_eq!(d.resolve_unknown().await.unwrap(), (1, 0));
    let row = c.row(id);
    assert_eq!(row.status, Status::Sent);
    assert_eq!(row.provider_id.as_deref(), Some("9006197469364984^1"));
    d.dispatch_once(c.clock.now()).await.unwrap();
    assert_eq!(sends(&c), 1, "no second text");
}
