//! In-process tests of the API (no socket), as axum's testing example does.

use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::http::{Request, StatusCode};
use chrono::TimeZone;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::clock::ManualClock;
use crate::domain::FeeType;
use crate::store::domain::{BillInput, apply_schema, pending_events};

const TOKEN: &str = "billing-token-0123456789";
const OTHER: &str = "neighbour-token-0123456789";

fn setup() -> (Router, Arc<std::path::PathBuf>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wuye.db");
    let mut conn = crate::store::domain::open_standalone(&path).unwrap();
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
    (router(state), Arc::new(path), dir)
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
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

fn field(v: &Value) -> &Value {
    &v["error"]["field"]
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

#[test]
fn openapi_describes_every_route() {
    let doc: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/v1/communities/{community}/payments",
            "/api/v1/communities/{community}/payments/{reference}/reverse",
            "/api/v1/communities/{community}/tickets",
            "/api/v1/communities/{community}/tickets/{no}/callback",
            "/api/v1/communities/{community}/tickets/{no}/close",
            "/api/v1/openapi.json",
            "/api/v1/surveys/{token}/responses",
            "/healthz",
            "/survey/{token}",
        ]
    );
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

#[tokio::test]
async fn the_survey_page_speaks_the_households_language_and_takes_one_answer() {
    let (app, path, _d) = setup();
    let token = {
        let mut conn = rusqlite::Connection::open(&*path).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        with_tx(&mut conn, |tx| -> rusqlite::Result<String> {
            let d = tx.domain("shuipan");
            d.upsert_owner(&crate::store::domain::OwnerInput {
                household: "1-1-101".into(),
                name: "Emma Brown".into(),
                phone: None,
                email: Some("emma.brown@example.com".into()),
                language: crate::domain::Language::En,
                preferred_contact: crate::domain::ContactChannel::Email,
            })?;
            let c = d.upsert_campaign("2026Q1", start, start + chrono::Duration::days(60))?;
            Ok(d.invite(c.id, &["1-1-101".to_string()], start)?[0]
                .token
                .clone())
        })
        .unwrap()
    };
    let get = |uri: String| {
        let app = app.clone();
        async move {
            let res = app
                .oneshot(Request::get(uri).body(AxumBody::empty()).unwrap())
                .await
                .unwrap();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let post_form = |uri: String, form: &'static str| {
        let app = app.clone();
        async move {
            let res = app
                .oneshot(
                    Request::post(uri)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(AxumBody::from(form))
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let page = format!("/survey/{token}");
    let (s, html) = get(page.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("lang=\"en\"") && html.contains("Reception"),
        "{html}"
    );
    assert!(
        !html.contains("Emma") && !html.contains("1-1-101"),
        "the page names nobody"
    );
    let (s, html) = post_form(page.clone(), "comment=nothing+scored").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("Please score at least one service."));
    let (s, html) = post_form(
        page.clone(),
        "reception=5&greenery=2&cleaning=9&comment=Lawn+needs+care",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Thank you"), "{html}");
    let (_, html) = get(page.clone()).await;
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
    let (s, html) = get("/survey/AAAAAAAAAAAAAAAAAAAAAA".to_string()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(html.contains("链接无效"));
}
