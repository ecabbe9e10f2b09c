//! The owner-facing page behind an event announcement's RSVP link (`GET /rsvp/{token}`) and
//! its form post (`POST /rsvp/{token}`): say how many of the household come, or change it.
//!
//! Like the survey page: plain HTML, no script, the household's language, the token as the only
//! credential, and the same "not valid" page for every unknown token. Answers are taken until
//! the event starts; 0 withdraws.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;

use super::community_events::MAX_ATTENDEES;
use super::survey_page::{html_page, plausible_token};
use super::{ApiError, AppState};
use crate::domain::Language;
use wuye_store::domain::{RsvpLink, rsvp_link, with_tx};

struct Texts {
    lang: &'static str,
    title: &'static str,
    when: &'static str,
    place: &'static str,
    how_many: &'static str,
    submit: &'static str,
    registered: &'static str,
    withdrawn: &'static str,
    started: &'static str,
    invalid: &'static str,
    bad_number: &'static str,
}

const ZH: Texts = Texts {
    lang: "zh-CN",
    title: "活动报名",
    when: "时间",
    place: "地点",
    how_many: "参加人数（0 表示不参加）",
    submit: "提交",
    registered: "已为您家报名，人数：",
    withdrawn: "已取消您家的报名。",
    started: "活动已开始，报名已截止。",
    invalid: "链接无效，请核对短信或邮件中的链接。",
    bad_number: "请填写 0 到 20 之间的人数。",
};

const EN: Texts = Texts {
    lang: "en",
    title: "Event RSVP",
    when: "When",
    place: "Where",
    how_many: "How many of your household will come (0: not coming)",
    submit: "Send",
    registered: "Your household is registered. People coming: ",
    withdrawn: "Your household's RSVP is withdrawn.",
    started: "The event has started; RSVPs are closed.",
    invalid: "This link is not valid; please check the link in your message.",
    bad_number: "Please give a number from 0 to 20.",
};

fn texts(lang: Language) -> &'static Texts {
    match lang {
        Language::ZhCn => &ZH,
        Language::En => &EN,
    }
}

/// Titles and places are typed by the desk; they must not become markup.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn details(t: &Texts, link: &RsvpLink, zone: chrono_tz::Tz) -> String {
    let when = match link.event.starts_at {
        Some(at) => at.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string(),
        None => link.event.planned_for.to_string(),
    };
    let mut body = format!(
        "<h2>{}</h2><p>{}：{when}",
        escape(&link.event.title),
        t.when
    );
    if !link.event.location.is_empty() {
        body.push_str(&format!(
            "<br>{}：{}",
            t.place,
            escape(&link.event.location)
        ));
    }
    body.push_str("</p>");
    body
}

fn form(token: &str, t: &Texts, current: Option<u32>, error: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(e) = error {
        body.push_str(&format!("<p class=\"err\">{e}</p>"));
    }
    // The token is URL-safe base64 (checked before we get here), so it needs no escaping. The
    // action is relative (the page's own address), so the form still posts to the right place
    // behind a reverse proxy that serves the pages under a path (`http.public_url`).
    body.push_str(&format!(
        "<form method=\"post\" action=\"{token}\"><p><label for=\"attendees\">{}</label><br>\
         <input id=\"attendees\" name=\"attendees\" type=\"number\" min=\"0\" max=\"{MAX_ATTENDEES}\" \
         value=\"{}\"></p><p><button type=\"submit\">{}</button></p></form>",
        t.how_many,
        current.unwrap_or(1),
        t.submit
    ));
    body
}

fn invalid() -> (StatusCode, Html<String>) {
    let body = format!("<p>{}</p><p>{}</p>", ZH.invalid, EN.invalid);
    (StatusCode::NOT_FOUND, html_page(ZH.lang, ZH.title, &body))
}

fn ok(t: &Texts, body: String) -> (StatusCode, Html<String>) {
    (StatusCode::OK, html_page(t.lang, t.title, &body))
}

/// An open link (its state, texts and the page so far), or the page that ends the request.
type Opened = Result<(RsvpLink, &'static Texts, String), (StatusCode, Html<String>)>;

/// What both handlers do first: the link behind `token`, the page in its household's language
/// with the event's details, and whether answers are still taken (`Err`: the page to answer
/// with, for an unknown link or a started event).
fn open(
    conn: &rusqlite::Connection,
    state: &AppState,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Opened, ApiError> {
    let Some(link) = rsvp_link(conn, token)? else {
        return Ok(Err(invalid()));
    };
    let t = texts(link.language);
    let mut body = details(t, &link, state.zone(&link.invitation.community));
    if link.event.starts_at.is_some_and(|s| now >= s) {
        body.push_str(&format!("<p>{}</p>", t.started));
        return Ok(Err(ok(t, body)));
    }
    Ok(Ok((link, t, body)))
}

pub(super) async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<(StatusCode, Html<String>), ApiError> {
    if !plausible_token(&token) {
        return Ok(invalid());
    }
    let st = state.clone();
    state
        .db(move |conn, now| {
            let (link, t, mut body) = match open(conn, &st, &token, now)? {
                Ok(open) => open,
                Err(page) => return Ok(page),
            };
            if let Some(n) = link.attendees.filter(|n| *n > 0) {
                body.push_str(&format!("<p>{}{n}</p>", t.registered));
            }
            body.push_str(&form(&token, t, link.attendees, None));
            Ok(ok(t, body))
        })
        .await
}

pub(super) async fn submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(fields): Form<HashMap<String, String>>,
) -> Result<(StatusCode, Html<String>), ApiError> {
    if !plausible_token(&token) {
        return Ok(invalid());
    }
    let st = state.clone();
    state
        .db(move |conn, now| {
            let (link, t, mut body) = match open(conn, &st, &token, now)? {
                Ok(open) => open,
                Err(page) => return Ok(page),
            };
            let Some(n) = fields
                .get("attendees")
                .and_then(|v| v.trim().parse::<u32>().ok())
                .filter(|n| *n <= MAX_ATTENDEES)
            else {
                body.push_str(&form(&token, t, link.attendees, Some(t.bad_number)));
                return Ok((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    html_page(t.lang, t.title, &body),
                ));
            };
            let inv = &link.invitation;
            with_tx(conn, |tx| {
                tx.domain(&inv.community)
                    .record_rsvp(inv.event_id, &inv.household, n, now)
            })?;
            if n == 0 {
                body.push_str(&format!("<p>{}</p>", t.withdrawn));
            } else {
                body.push_str(&format!("<p>{}{n}</p>", t.registered));
            }
            Ok(ok(t, body))
        })
        .await
}
