//! The HTTP API served for real on 127.0.0.1 (an ephemeral port), spoken to with an HTTP
//! client, over the shipped demo data: tokens, field-naming errors, the ticket → close →
//! callback flow and a payment reversal reopening its bill.

use std::sync::Arc;

use chrono::TimeZone;
use serde_json::{Value, json};
use wuye::domain::import::{Kind, import};
use wuye::http::{AppState, ResolvedToken, serve};
use wuye::store::domain::{DomainRead, open_standalone, pending_events};

use crate::util::repo_root;

const TOKEN: &str = "shuipan-desk-token-0001";

struct Server {
    base: String,
    db: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wuye.db");
    let mut conn = open_standalone(&db).unwrap();
    for kind in [Kind::Owners, Kind::Bills, Kind::Payments, Kind::Tickets] {
        let path = repo_root()
            .join("config/data/shuipan")
            .join(format!("{}.csv", kind.as_str()));
        let bytes = std::fs::read(&path).unwrap();
        import(
            &mut conn,
            "shuipan",
            chrono_tz::Asia::Shanghai,
            kind,
            "demo",
            &bytes,
            None,
        )
        .unwrap();
    }
    let clock =
        wuye::clock::ManualClock::new(chrono::Utc.with_ymd_and_hms(2026, 11, 21, 2, 0, 0).unwrap());
    let state = AppState::new(
        conn,
        vec![ResolvedToken::new("desk", TOKEN, vec!["shuipan".into()])],
        ["shuipan".to_string(), "shijixinzhu".to_string()],
        Arc::new(clock),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async {
        let _ = rx.await;
    }));
    Server {
        base: format!("http://{addr}"),
        db,
        stop: Some(tx),
        _dir: dir,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn post(s: &Server, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", s.base))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_a_real_socket() {
    let s = start().await;

    let health: Value = reqwest::get(format!("{}/healthz", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));

    // Tokens: none, wrong, and right but for another community.
    let close = "/api/v1/communities/shuipan/tickets/SP-T015/close";
    let (st, v) = post(&s, close, None, json!({})).await;
    assert_eq!(st, 401, "{v}");
    let (st, _) = post(&s, close, Some("shuipan-desk-token-0002"), json!({})).await;
    assert_eq!(st, 401);
    let (st, _) = post(
        &s,
        "/api/v1/communities/shijixinzhu/tickets/X/close",
        Some(TOKEN),
        json!({}),
    )
    .await;
    assert_eq!(st, 403);

    // A wrong type names its field.
    let (st, v) = post(
        &s,
        "/api/v1/communities/shuipan/tickets/SP-T015/callback",
        Some(TOKEN),
        json!({"done_by": "chen-jing", "satisfied": "very", "score": 5}),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["error"]["field"], "satisfied");

    // Close the open demo ticket, then its callback ends the wait.
    let (st, v) = post(
        &s,
        close,
        Some(TOKEN),
        json!({"closed_at": "2026-11-21T10:00:00+08:00"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let waiting = |db: &std::path::Path| -> Vec<String> {
        let conn = rusqlite::Connection::open(db).unwrap();
        DomainRead::new(&conn, "shuipan")
            .tickets_closed_without_callback()
            .unwrap()
            .into_iter()
            .map(|t| t.no)
            .collect()
    };
    assert!(waiting(&s.db).contains(&"SP-T015".to_string()));
    let (st, v) = post(
        &s,
        "/api/v1/communities/shuipan/tickets/SP-T015/callback",
        Some(TOKEN),
        json!({"done_by": "chen-jing", "satisfied": true, "score": 5, "notes": "已修好"}),
    )
    .await;
    assert_eq!((st, &v["reopened"]), (201, &json!(false)), "{v}");
    assert!(!waiting(&s.db).contains(&"SP-T015".to_string()));

    // The bounced October bill of 1-1-101: pay it, then reverse the payment: owed again.
    let pay = json!({"reference": "SP-NEW-1", "household": "1-1-101", "fee_type": "property",
                     "period": "2026-10", "amount_fen": 22000, "method": "wechat"});
    let (st, v) = post(&s, "/api/v1/communities/shuipan/payments", Some(TOKEN), pay).await;
    assert_eq!((st, &v["bill_unpaid"]), (201, &json!(false)), "{v}");
    let (st, v) = post(
        &s,
        "/api/v1/communities/shuipan/payments/SP-NEW-1/reverse",
        Some(TOKEN),
        json!({"reason": "duplicate charge"}),
    )
    .await;
    assert_eq!((st, &v["bill_unpaid"]), (200, &json!(true)), "{v}");
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    let owed: Vec<String> = DomainRead::new(&conn, "shuipan")
        .unpaid_bills_of("1-1-101")
        .unwrap()
        .into_iter()
        .map(|b| b.bill.period.to_string())
        .collect();
    assert_eq!(
        owed,
        ["2026-10", "2026-12"],
        "October is owed again; December is not due yet"
    );

    // Every change left its event for the scheduler, in order: the imports that seeded the
    // community first, then the API's writes.
    let kinds: Vec<String> = pending_events(&conn, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "import.owners",
            "import.bills",
            "import.payments",
            "import.tickets",
            "ticket.closed",
            "callback.recorded",
            "payment.posted",
            "payment.reversed"
        ]
    );
}

/// The daemon's way in: `[http]` from wuyed.toml (listen address, a token read from a file and
/// limited to one community) through `config::load` and `http::start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config");
    std::fs::create_dir_all(cfg.join("communities")).unwrap();
    std::fs::write(cfg.join("desk.token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(
        cfg.join("wuyed.toml"),
        format!(
            "[daemon]\ndata_dir = {:?}\n\n[http]\nlisten = \"127.0.0.1:0\"\n\
             tokens = [{{ name = \"desk\", token = {{ file = \"desk.token\" }}, communities = [\"shuipan\"] }}]\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(
        cfg.join("communities/shuipan.toml"),
        "id = \"shuipan\"\nname = \"水畔花园\"\n",
    )
    .unwrap();
    let settings = wuye::config::load(&cfg).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(&settings.data_dir).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let clock: wuye::clock::SharedClock = Arc::new(wuye::clock::SystemClock::new());
    let wuye::http::Serving { addr, task, .. } = wuye::http::start(&settings, clock, None, async {
        let _ = rx.await;
    })
    .await
    .unwrap()
    .expect("listen is set");
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/communities/shuipan/tickets");
    let body =
        json!({"no": "T-1", "kind": "complaint", "first_receiver": "chen-jing", "summary": "噪音"});
    let res = client
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let res = client
        .post(&url)
        .bearer_auth("not-the-token-at-all")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    let conn = rusqlite::Connection::open(settings.data_dir.join("wuye.db")).unwrap();
    let t = DomainRead::new(&conn, "shuipan")
        .ticket_by_no("T-1")
        .unwrap()
        .unwrap();
    assert_eq!(t.summary, "噪音");
}
