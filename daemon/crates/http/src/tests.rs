//! In-process tests of the API (no socket), as axum's testing example does.

use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::http::{Request, StatusCode};
use chrono::TimeZone;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::domain::FeeType;
use wuye_core::clock::ManualClock;
use wuye_store::domain::{BillInput, apply_schema, pending_events};

mod openapi;

const TOKEN: &str = "billing-token-0123456789";
const OTHER: &str = "neighbour-token-0123456789";

fn setup() -> (Router, Arc<std::path::PathBuf>, tempfile::TempDir) {
    let (state, path, dir) = setup_state();
    (router(state), path, dir)
}

/// [`setup`]'s state before it is served, for tests that change it or hold its database.
fn setup_state() -> (AppState, Arc<std::path::PathBuf>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wuye.db");
    let mut conn = wuye_store::domain::open_standalone(&path).unwrap();
    apply_schema(&conn).unwrap();
    with_tx(&mut conn, |tx| -> rusqlite::Result<()> {
        let d = tx.domain("shuipan");
        d.upsert_household("1", "1", "101")?;
        d.upsert_bill(&BillInput {
            household: "1-1-101".into(),
            fee_type: FeeType::Property,
            period: "2026-01".parse().unwrap(),
            amount_fen: 32_000,
            due_date: chrono::NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
        })?;
        Ok(())
    })
    .unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 2, 1, 2, 0, 0).unwrap());
    let state = AppState::new(
        conn,
        vec![
            ResolvedToken::new("billing", TOKEN, vec!["shuipan".into()]),
            ResolvedToken::new("neighbour", OTHER, vec!["shijixinzhu".into()]),
        ],
        ["shuipan".to_string(), "shijixinzhu".to_string()],
        Arc::new(clock),
    );
    (state, Arc::new(path), dir)
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let res = app
        .clone()
        .oneshot(req.body(AxumBody::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let content_type = content_type(&res);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    openapi::check_exchange(method, uri, body, status, content_type.as_deref(), &bytes);
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

fn field(v: &Value) -> &Value {
    &v["error"]["field"]
}

/// `/healthz` reports the dispatcher running beside the API: 200 while it turns, 503 with the
/// reason while it is down (its supervisor restarting it).
#[tokio::test]
async fn healthz_is_unavailable_while_the_dispatcher_is_down_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let conn = wuye_store::domain::open_standalone(&dir.path().join("wuye.db")).unwrap();
    let health = wuye_deliver::DispatcherHealth::default();
    let state = AppState::new(
        conn,
        vec![],
        ["shuipan".to_string()],
        Arc::new(ManualClock::new(Utc::now())),
    )
    .with_dispatcher(health.clone());
    let app = router(state);
    health.beat();
    let (s, v) = call(&app, "GET", "/healthz", None, "").await;
    assert_eq!(
        (s, v),
        (StatusCode::OK, json!({"status": "ok", "dispatcher": "ok"}))
    );

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let supervisor = tokio::spawn(wuye_deliver::supervise::supervise(
        health.clone(),
        || async { anyhow::bail!("cannot read the outbox: disk I/O error") },
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));
    while health.verdict().is_ok() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (s, v) = call(&app, "GET", "/healthz", None, "").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["status"], "unavailable");
    let why = v["dispatcher"].as_str().unwrap();
    assert!(
        why.contains("down") && why.contains("disk I/O error"),
        "{why}"
    );
    stop_tx.send(true).unwrap();
    supervisor.await.unwrap();
}

#[tokio::test]
async fn health_and_openapi_answer_without_a_token() {
    let (app, _, _d) = setup();
    let (s, v) = call(&app, "GET", "/healthz", None, "").await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": "ok"})));
    let (s, v) = call(&app, "GET", "/nowhere", None, "").await;
    assert_eq!(
        (s, &v["error"]["message"]),
        (StatusCode::NOT_FOUND, &json!("no such endpoint"))
    );
    let (s, v) = call(
        &app,
        "GET",
        "/api/v1/communities/shuipan/payments",
        None,
        "",
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    assert!(
        v["error"]["message"].is_string(),
        "JSON like every other error: {v}"
    );
    let (s, v) = call(&app, "GET", "/api/v1/openapi.json", None, "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["openapi"], "3.0.3");
}

#[tokio::test]
async fn tokens_are_checked_per_community() {
    let (app, _, _d) = setup();
    let body = r#"{"no":"T1","kind":"repair","first_receiver":"kefu"}"#;
    let uri = "/api/v1/communities/shuipan/tickets";
    let (s, v) = call(&app, "POST", uri, None, body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _) = call(&app, "POST", uri, Some("billing-token-0123456780"), body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = call(&app, "POST", uri, Some(OTHER), body).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = call(
        &app,
        "POST",
        "/api/v1/communities/nowhere/tickets",
        Some(TOKEN),
        body,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = call(&app, "POST", uri, Some(TOKEN), body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The same request again is a harmless retry.
    let (s, _) = call(&app, "POST", uri, Some(TOKEN), body).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn bad_bodies_name_the_field() {
    let (app, _, _d) = setup();
    let uri = "/api/v1/communities/shuipan/payments";
    let t = Some(TOKEN);
    let (s, v) = call(&app, "POST", uri, t, r#"{"reference":"R1","household":"1-1-101","fee_type":"property","period":"2026-01","amount_fen":"320.00"}"#).await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("amount_fen")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid type: string"),
        "{v}"
    );
    let (s, v) = call(&app, "POST", uri, t, r#"{"reference":"R1","household":"1-1-101","fee_type":"property","period":"2026-01","amount_fen":-5}"#).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        v,
        json!({"error": {"field": "amount_fen", "message": "must be a positive integer"}})
    );
    let (s, v) = call(
        &app,
        "POST",
        uri,
        t,
        r#"{"household":"1-1-101","fee_type":"property","period":"2026-01","amount_fen":5}"#,
    )
    .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("reference")),
        "{v}"
    );
    let (s, v) = call(&app, "POST", uri, t, r#"{"reference":"R1","household":"1-1-101","fee_type":"property","period":"2026-13","amount_fen":5}"#).await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("period")),
        "{v}"
    );
    let (s, v) = call(&app, "POST", uri, t, r#"{"reference":"R1","amount":5}"#).await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("amount")),
        "{v}"
    );
    let (s, v) = call(&app, "POST", uri, t, r#"{"reference": "#).await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::BAD_REQUEST, &Value::Null),
        "{v}"
    );
    let big = format!(r#"{{"reference":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
    let (s, v) = call(&app, "POST", uri, t, &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let res = app
        .clone()
        .oneshot(
            Request::post(uri)
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("content-type", "text/plain")
                .body(AxumBody::from("{}"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn close_then_bad_callback_reopens_and_emits_events() {
    let (app, path, _d) = setup();
    let t = Some(TOKEN);
    let base = "/api/v1/communities/shuipan/tickets";
    let (s, v) = call(&app, "POST", base, t, r#"{"no":"T9","kind":"报修","first_receiver":"kefu","household":"1-1-101","summary":"灯不亮","opened_at":"2026-02-01T09:00:00+08:00"}"#).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["kind"], "repair");
    // A callback before the ticket closed is refused.
    let cb = r#"{"done_by":"kefu","satisfied":false,"score":2,"notes":"没修好"}"#;
    let (s, _) = call(&app, "POST", &format!("{base}/T9/callback"), t, cb).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = call(
        &app,
        "POST",
        &format!("{base}/T9/close"),
        t,
        r#"{"assignee":"weixiu"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["closed_at"], "2026-02-01T02:00:00Z");
    let (s, _) = call(&app, "POST", &format!("{base}/T9/close"), t, "{}").await;
    assert_eq!(s, StatusCode::CONFLICT, "closing twice");
    let (s, v) = call(
        &app,
        "POST",
        &format!("{base}/T9/callback"),
        t,
        r#"{"done_by":"kefu","satisfied":true,"score":9}"#,
    )
    .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("score")),
        "{v}"
    );
    let (s, v) = call(&app, "POST", &format!("{base}/T9/callback"), t, cb).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["reopened"], true);
    let (s, v) = call(&app, "POST", &format!("{base}/NOPE/close"), t, "{}").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    let conn = rusqlite::Connection::open(&*path).unwrap();
    let kinds: Vec<String> = pending_events(&conn, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "ticket.opened",
            "ticket.closed",
            "callback.recorded",
            "ticket.reopened"
        ]
    );
    let t9 = DomainRead::new(&conn, "shuipan")
        .ticket_by_no("T9")
        .unwrap()
        .unwrap();
    assert_eq!((t9.closed_at, t9.reopened), (None, 1));
}

#[tokio::test]
async fn payment_reversal_reopens_the_bill() {
    let (app, path, _d) = setup();
    let t = Some(TOKEN);
    let pay = r#"{"reference":"R1","household":"1-1-101","fee_type":"物业费","period":"2026-01","amount_fen":32000,"method":"wechat"}"#;
    let (s, v) = call(&app, "POST", "/api/v1/communities/shuipan/payments", t, pay).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["bill_unpaid"], false);
    let (s, v) = call(
        &app,
        "POST",
        "/api/v1/communities/shuipan/payments/R1/reverse",
        t,
        r#"{"reason":"bank returned it"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["bill_unpaid"], true);
    let (s, _) = call(
        &app,
        "POST",
        "/api/v1/communities/shuipan/payments/R1/reverse",
        t,
        r#"{"reason":"again"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let conn = rusqlite::Connection::open(&*path).unwrap();
    let unpaid = DomainRead::new(&conn, "shuipan").unpaid_bills().unwrap();
    assert_eq!(unpaid.len(), 1);
    assert_eq!(unpaid[0].outstanding_fen, 32_000);
}

#[tokio::test]
async fn survey_answers_need_only_the_token_and_count_once() {
    let (app, path, _d) = setup();
    let token = {
        let mut conn = rusqlite::Connection::open(&*path).unwrap();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        with_tx(&mut conn, |tx| -> rusqlite::Result<String> {
            let d = tx.domain("shuipan");
            let c = d.upsert_campaign("2026Q1", start, start + chrono::Duration::days(60))?;
            Ok(d.invite(c.id, &["1-1-101".to_string()], start)?[0]
                .token
                .clone())
        })
        .unwrap()
    };
    let uri = format!("/api/v1/surveys/{token}/responses");
    let (s, v) = call(
        &app,
        "POST",
        &uri,
        None,
        r#"{"reception":5,"cleaning":300}"#,
    )
    .await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("cleaning")),
        "{v}"
    );
    let (s, v) = call(
        &app,
        "POST",
        &uri,
        None,
        r#"{"reception":5,"greenery":2,"comment":"草坪没人管"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = call(&app, "POST", &uri, None, r#"{"reception":4}"#).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = call(
        &app,
        "POST",
        "/api/v1/surveys/not-a-token/responses",
        None,
        r#"{"reception":4}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// An owner who reads English, for the owner-facing pages.
fn emma() -> wuye_store::domain::OwnerInput {
    wuye_store::domain::OwnerInput {
        household: "1-1-101".into(),
        name: "Emma Brown".into(),
        phone: None,
        email: Some("emma.brown@example.com".into()),
        language: crate::domain::Language::En,
        preferred_contact: crate::domain::ContactChannel::Email,
    }
}

fn content_type(res: &Response) -> Option<String> {
    let value = res.headers().get(axum::http::header::CONTENT_TYPE)?;
    Some(value.to_str().unwrap().to_string())
}

/// Sends a request for an owner-facing HTML page.
async fn page_of(app: &Router, req: Request<AxumBody>) -> (StatusCode, String) {
    let (method, uri) = (req.method().to_string(), req.uri().to_string());
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let content_type = content_type(&res);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    // A form, not JSON: only the answer is checked against openapi.json.
    openapi::check_exchange(&method, &uri, "", status, content_type.as_deref(), &body);
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn get_page(uri: &str) -> Request<AxumBody> {
    Request::get(uri).body(AxumBody::empty()).unwrap()
}

fn post_form(uri: &str, form: &'static str) -> Request<AxumBody> {
    Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(AxumBody::from(form))
        .unwrap()
}

#[tokio::test]
async fn the_survey_page_speaks_the_households_language_and_takes_one_answer() {
    let (app, path, _d) = setup();
    let token = {
        let mut conn = rusqlite::Connection::open(&*path).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        with_tx(&mut conn, |tx| -> rusqlite::Result<String> {
            let d = tx.domain("shuipan");
            d.upsert_owner(&emma())?;
            let c = d.upsert_campaign("2026Q1", start, start + chrono::Duration::days(60))?;
            Ok(d.invite(c.id, &["1-1-101".to_string()], start)?[0]
                .token
                .clone())
        })
        .unwrap()
    };
    let page = format!("/survey/{token}");
    let (s, html) = page_of(&app, get_page(&page)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("lang=\"en\"") && html.contains("Reception"),
        "{html}"
    );
    assert!(
        !html.contains("Emma") && !html.contains("1-1-101"),
        "the page names nobody"
    );
    let (s, html) = page_of(&app, post_form(&page, "comment=nothing+scored")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("Please score at least one service."));
    let (s, html) = page_of(
        &app,
        post_form(
            &page,
            "reception=5&greenery=2&cleaning=9&comment=Lawn+needs+care",
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Thank you"), "{html}");
    let (_, html) = page_of(&app, get_page(&page)).await;
    assert!(html.contains("already answered"), "{html}");
    let conn = rusqlite::Connection::open(&*path).unwrap();
    let d = DomainRead::new(&conn, "shuipan");
    let r = &d
        .responses(d.campaign("2026Q1").unwrap().unwrap().id)
        .unwrap()[0];
    assert_eq!(
        (
            r.scores.reception,
            r.scores.greenery,
            r.scores.cleaning,
            r.comment.as_str()
        ),
        (Some(5), Some(2), None, "Lawn needs care"),
        "an out-of-range score nobody could click is dropped"
    );
    let (s, html) = page_of(&app, get_page("/survey/AAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(html.contains("链接无效"));
}

/// Each `(method, uri, body, field)` is refused with 422 naming `field`.
async fn refused(app: &Router, cases: &[(&str, &str, &str, &str)]) {
    for (method, uri, body, want) in cases {
        let (s, v) = call(app, method, uri, Some(TOKEN), body).await;
        assert_eq!(
            (s, field(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, &json!(want)),
            "{method} {uri} {body}: {v}"
        );
    }
}

fn pending(path: &std::path::Path) -> Vec<(String, Value)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    pending_events(&conn, 100)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.payload))
        .collect()
}

#[tokio::test]
async fn the_desk_plans_and_moves_an_event_and_the_workflow_hears_of_each_change_once() {
    let (app, path, _d) = setup();
    let t = Some(TOKEN);
    let uri = "/api/v1/communities/shuipan/events/2026H1-fete";
    let body = r#"{"title":"邻里节","starts_at":"2026-05-16T09:30:00+08:00","location":"会所"}"#;
    let (s, v) = call(&app, "PUT", uri, t, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (&v["planned_for"], &v["starts_at"]),
        (&json!("2026-05-16"), &json!("2026-05-16T01:30:00Z"))
    );
    // A retry changes nothing and tells nobody again.
    let (s, _) = call(&app, "PUT", uri, t, body).await;
    assert_eq!(s, StatusCode::OK);
    // Moved to the evening of the 15th (local): a new day and a second event.
    let moved = r#"{"title":"邻里节","starts_at":"2026-05-15T19:00:00+08:00","location":"会所"}"#;
    let (s, v) = call(&app, "PUT", uri, t, moved).await;
    assert_eq!(
        (s, &v["planned_for"]),
        (StatusCode::OK, &json!("2026-05-15"))
    );
    assert_eq!(
        pending(&path),
        [
            (
                "community_event.planned".to_string(),
                json!({"key": "2026H1-fete", "starts_at": "2026-05-16T01:30:00Z"})
            ),
            (
                "community_event.planned".to_string(),
                json!({"key": "2026H1-fete", "starts_at": "2026-05-15T11:00:00Z"})
            ),
        ]
    );
    let rsvps = format!("{uri}/rsvps");
    refused(
        &app,
        &[
            (
                "PUT",
                uri,
                r#"{"title":"x","starts_at":"May 16"}"#,
                "starts_at",
            ),
            (
                "PUT",
                uri,
                r#"{"title":" ","starts_at":"2026-05-16T09:30:00+08:00"}"#,
                "title",
            ),
            ("POST", &rsvps, r#"{"household":"9-9-999"}"#, "household"),
            (
                "POST",
                &rsvps,
                r#"{"household":"1-1-101","attendees":200}"#,
                "attendees",
            ),
        ],
    )
    .await;
    let (s, _) = call(
        &app,
        "PUT",
        "/api/v1/communities/shijixinzhu/events/x",
        t,
        body,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another community's token");

    // RSVPs the desk took by phone, and the summary afterwards.
    let (s, v) = call(
        &app,
        "POST",
        &rsvps,
        t,
        r#"{"household":"1-1-101","attendees":3}"#,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = call(
        &app,
        "POST",
        "/api/v1/communities/shuipan/events/none/rsvps",
        t,
        r#"{"household":"1-1-101"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = call(
        &app,
        "POST",
        &format!("{uri}/summary"),
        t,
        r#"{"summary":"到场 40 人"}"#,
    )
    .await;
    assert_eq!((s, &v["summary"]), (StatusCode::OK, &json!("到场 40 人")));

    let conn = rusqlite::Connection::open(&*path).unwrap();
    let d = DomainRead::new(&conn, "shuipan");
    let e = d.event("2026H1-fete").unwrap().unwrap();
    let r = d.rsvps(e.id).unwrap();
    assert_eq!(
        (r.len(), r[0].household.as_str(), r[0].attendees),
        (1, "1-1-101", 3)
    );
}

#[tokio::test]
async fn payment_plans_reach_the_workflows_as_events() {
    let (app, path, _d) = setup();
    let t = Some(TOKEN);
    let uri = "/api/v1/communities/shuipan/payment-plans";
    let (s, v) = call(
        &app,
        "POST",
        uri,
        t,
        r#"{"household":"1-1-101","until":"2026-06-30"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    refused(
        &app,
        &[
            (
                "POST",
                uri,
                r#"{"household":"1-1-101","until":"30/06/2026"}"#,
                "until",
            ),
            // Already over.
            (
                "POST",
                uri,
                r#"{"household":"1-1-101","until":"2025-12-31"}"#,
                "until",
            ),
            (
                "POST",
                uri,
                r#"{"household":"7-7-707","until":"2026-06-30"}"#,
                "household",
            ),
        ],
    )
    .await;
    let (s, _) = call(&app, "POST", &format!("{uri}/1-1-101/end"), t, "").await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(
        pending(&path),
        [
            (
                "payment_plan.agreed".to_string(),
                json!({"household": "1-1-101", "until": "2026-06-30"})
            ),
            (
                "payment_plan.ended".to_string(),
                json!({"household": "1-1-101"})
            ),
        ]
    );
}

#[tokio::test]
async fn the_rsvp_page_takes_changes_until_the_event_starts() {
    let (app, path, _d) = setup();
    let (token, past_token) = {
        let mut conn = rusqlite::Connection::open(&*path).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 2, 1, 2, 0, 0).unwrap();
        with_tx(&mut conn, |tx| -> rusqlite::Result<(String, String)> {
            let d = tx.domain("shuipan");
            d.upsert_owner(&emma())?;
            let day = chrono::NaiveDate::from_ymd_opt(2026, 2, 14).unwrap();
            let starts = Utc.with_ymd_and_hms(2026, 2, 14, 1, 30, 0).unwrap();
            let e = d.upsert_event("2026H1", "Lantern <party>", day, Some(starts), "Club house")?;
            let past = d.upsert_event(
                "old",
                "Last year's fete",
                day,
                Some(now - chrono::Duration::hours(1)),
                "",
            )?;
            Ok((
                d.rsvp_invitation(e.id, "1-1-101", now)?.token,
                d.rsvp_invitation(past.id, "1-1-101", now)?.token,
            ))
        })
        .unwrap()
    };
    let page = format!("/rsvp/{token}");
    let (s, html) = page_of(&app, get_page(&page)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("lang=\"en\""), "{html}");
    assert!(
        html.contains("2026-02-14 09:30") && html.contains("Club house"),
        "local time and place: {html}"
    );
    assert!(
        html.contains("Lantern &lt;party&gt;"),
        "the desk's text is escaped: {html}"
    );
    assert!(
        !html.contains("Emma") && !html.contains("1-1-101"),
        "the page names nobody"
    );
    let (s, html) = page_of(&app, post_form(&page, "attendees=lots")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    let (s, html) = page_of(&app, post_form(&page, "attendees=3")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("registered. People coming: 3"), "{html}");
    let (_, html) = page_of(&app, get_page(&page)).await;
    assert!(
        html.contains("People coming: 3") && html.contains("value=\"3\""),
        "{html}"
    );
    let (_, html) = page_of(&app, post_form(&page, "attendees=0")).await;
    assert!(html.contains("withdrawn"), "{html}");
    let (_, html) = page_of(
        &app,
        post_form(&format!("/rsvp/{past_token}"), "attendees=2"),
    )
    .await;
    assert!(html.contains("RSVPs are closed"), "{html}");
    let (s, _) = page_of(&app, get_page("/rsvp/AAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let conn = rusqlite::Connection::open(&*path).unwrap();
    let d = DomainRead::new(&conn, "shuipan");
    let attendees: Vec<(String, u32)> = d
        .events()
        .unwrap()
        .iter()
        .flat_map(|e| d.rsvps(e.id).unwrap())
        .map(|r| (r.household, r.attendees))
        .collect();
    assert_eq!(
        attendees,
        [("1-1-101".to_string(), 0)],
        "withdrawn, and nothing for the past event"
    );
}

#[tokio::test]
async fn metrics_label_requests_by_route_template_never_by_token() {
    let (app, _, _d) = setup();
    let token = "MetricsLabelToken0123456";
    let (s, _) = call(&app, "GET", &format!("/survey/{token}"), None, "").await;
    assert!(s.is_client_error(), "{s}");
    let (s, text) = call(&app, "GET", "/metrics", None, "").await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(
        text.contains(
            "wuyed_http_requests_total{method=\"GET\",route=\"/survey/{token}\",status=\"4xx\"}"
        ),
        "{text}"
    );
    assert!(!text.contains(token), "{text}");
}

/// A request still waiting for the database when `http.request_timeout` passes is answered 408,
/// and the write it was waiting to make is never made afterwards: the client that retries is
/// the only writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cut_off_by_the_timeout_gets_408_and_never_writes_later() {
    let (state, _, _d) = setup_state();
    let state = state.with_request_timeout(std::time::Duration::from_millis(300));
    let app = router(state.clone());
    // Something else holds the database connection (a long write, a stuck disk).
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let state = state.clone();
        std::thread::spawn(move || {
            let _conn = state.inner.db.lock().unwrap();
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
        })
    };
    held_rx.recv().unwrap();
    let ticket = r#"{"no": "T-9", "kind": "repair", "first_receiver": "chen-jing"}"#;
    let uri = "/api/v1/communities/shuipan/tickets";
    let (s, v) = call(&app, "POST", uri, Some(TOKEN), ticket).await;
    assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("retry"),
        "{v}"
    );
    // The connection is free again; the abandoned call, first in line for it, gives it up.
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (s, v) = call(&app, "POST", uri, Some(TOKEN), ticket).await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "the cut-off request wrote the ticket: {v}"
    );
}

/// A payment posted while another process holds the database's write lock (an admin's
/// `sqlite3` inside `BEGIN IMMEDIATE`) is answered 503 with `Retry-After` and a JSON error once
/// the request's wait runs out, writes nothing, and goes through whole when posted again after
/// the lock is released. The wait is shortened from 30 s to 300 ms for the test.
#[tokio::test]
async fn a_write_that_gives_up_on_the_database_lock_is_503_with_retry_after_and_applies_nothing() {
    let (app, path, _d) = setup();
    let uri = "/api/v1/communities/shuipan/payments";
    let pay = r#"{"reference":"LOCK-1","household":"1-1-101","fee_type":"property","period":"2026-01","amount_fen":32000}"#;
    let payments = || {
        let c = rusqlite::Connection::open(path.as_ref()).unwrap();
        c.query_row("SELECT count(*) FROM payments", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let request = || {
        Request::builder()
            .method("POST")
            .uri(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(AxumBody::from(pay))
            .unwrap()
    };
    let other = rusqlite::Connection::open(path.as_ref()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    wuye_store::domain::TEST_WAIT_MS.store(300, std::sync::atomic::Ordering::Relaxed);
    let res = app.clone().oneshot(request()).await.unwrap();
    wuye_store::domain::TEST_WAIT_MS.store(0, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some(RETRY_AFTER_SECS.to_string().as_str())
    );
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("database is held by another process") && message.contains("try again"),
        "{v}"
    );
    other.execute_batch("COMMIT").unwrap();
    assert_eq!(payments(), 0, "nothing of the refused request was written");
    let res = app.clone().oneshot(request()).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        payments(),
        1,
        "the same request goes through once the lock is released"
    );
}
