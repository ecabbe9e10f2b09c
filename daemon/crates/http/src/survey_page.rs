//! The owner-facing survey page behind each invitation link (`GET /survey/{token}`), and its
//! form post (`POST /survey/{token}`).
//!
//! Plain HTML with a form and no script, so it works in any phone's browser and in WeChat's
//! built-in one. The page speaks the household's language (its primary contact's). The token
//! is the only credential: nothing on the page names the household or the owner, and an unknown
//! token gets the same "link not valid" page whatever the reason.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;

use super::{ApiError, AppState};
use crate::domain::{DomainError, Language, ServiceArea, SurveyScores};
use wuye_store::domain::{survey_link, with_tx};

struct Texts {
    lang: &'static str,
    title: &'static str,
    intro: &'static str,
    comment: &'static str,
    submit: &'static str,
    thanks: &'static str,
    answered: &'static str,
    closed: &'static str,
    invalid: &'static str,
    need_one: &'static str,
    scale: &'static str,
}

const ZH: Texts = Texts {
    lang: "zh-CN",
    title: "物业服务满意度调查",
    intro: "请为以下各项服务打分（1 = 很不满意，5 = 很满意）。不了解的项目可以不选。",
    comment: "意见和建议（选填）",
    submit: "提交",
    thanks: "感谢您的反馈！我们会认真改进。",
    answered: "您家已经提交过本次调查，感谢参与。",
    closed: "本次调查已结束，感谢关注。",
    invalid: "链接无效，请核对短信或邮件中的链接。",
    need_one: "请至少为一项服务打分。",
    scale: "1 很不满意 … 5 很满意",
};

const EN: Texts = Texts {
    lang: "en",
    title: "Property service satisfaction survey",
    intro: "Please score each service (1 = very dissatisfied, 5 = very satisfied). Leave out any you cannot judge.",
    comment: "Comments and suggestions (optional)",
    submit: "Send",
    thanks: "Thank you for your feedback!",
    answered: "Your household has already answered this survey. Thank you.",
    closed: "This survey has closed. Thank you for your interest.",
    invalid: "This link is not valid; please check the link in your message.",
    need_one: "Please score at least one service.",
    scale: "1 very dissatisfied … 5 very satisfied",
};

fn texts(lang: Language) -> &'static Texts {
    match lang {
        Language::ZhCn => &ZH,
        Language::En => &EN,
    }
}

fn page(t: &Texts, body: &str) -> Html<String> {
    html_page(t.lang, t.title, body)
}

/// The frame of every owner-facing page: readable on a phone, no script.
pub(super) fn html_page(lang: &str, title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:sans-serif;max-width:36em;margin:1em auto;\
         padding:0 1em;line-height:1.5}}fieldset{{border:1px solid #ccc;margin:.6em 0}}\
         label{{margin-right:.8em;white-space:nowrap}}textarea{{width:100%;min-height:5em}}\
         button{{font-size:1.1em;padding:.4em 1.5em}}.err{{color:#b00}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
    ))
}

fn form(token: &str, lang: Language, error: Option<&str>) -> Html<String> {
    let t = texts(lang);
    let mut body = format!("<p>{}</p>", t.intro);
    if let Some(e) = error {
        body.push_str(&format!("<p class=\"err\">{e}</p>"));
    }
    // The token is URL-safe base64 (checked before we get here), so it needs no escaping. The
    // action is relative (the page's own address), so the form still posts to the right place
    // behind a reverse proxy that serves the pages under a path (`http.public_url`).
    body.push_str(&format!("<form method=\"post\" action=\"{token}\">"));
    for area in ServiceArea::ALL {
        body.push_str(&format!("<fieldset><legend>{}</legend>", area.label(lang)));
        for score in 1..=5 {
            body.push_str(&format!(
                "<label><input type=\"radio\" name=\"{name}\" value=\"{score}\"> {score}</label>",
                name = area.as_str()
            ));
        }
        body.push_str("</fieldset>");
    }
    body.push_str(&format!(
        "<p><small>{}</small></p><p><label for=\"comment\">{}</label><br>\
         <textarea id=\"comment\" name=\"comment\" maxlength=\"2000\"></textarea></p>\
         <p><button type=\"submit\">{}</button></p></form>",
        t.scale, t.comment, t.submit
    ));
    page(t, &body)
}

/// Tokens are 16 random bytes in URL-safe base64; anything else is not looked up.
pub(super) fn plausible_token(token: &str) -> bool {
    token.len() == 22
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn invalid() -> (StatusCode, Html<String>) {
    // Both languages: we do not know whose link this was meant to be.
    let body = format!("<p>{}</p><p>{}</p>", ZH.invalid, EN.invalid);
    (StatusCode::NOT_FOUND, page(&ZH, &body))
}

pub(super) async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<(StatusCode, Html<String>), ApiError> {
    if !plausible_token(&token) {
        return Ok(invalid());
    }
    state
        .db(move |conn, now| {
            let Some(link) = survey_link(conn, &token)? else {
                return Ok(invalid());
            };
            let t = texts(link.language);
            if link.answered {
                return Ok((StatusCode::OK, page(t, &format!("<p>{}</p>", t.answered))));
            }
            if now >= link.campaign.closes_at {
                return Ok((StatusCode::OK, page(t, &format!("<p>{}</p>", t.closed))));
            }
            Ok((StatusCode::OK, form(&token, link.language, None)))
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
    state
        .db(move |conn, now| {
            let Some(link) = survey_link(conn, &token)? else {
                return Ok(invalid());
            };
            let lang = link.language;
            let t = texts(lang);
            if link.answered {
                return Ok((StatusCode::OK, page(t, &format!("<p>{}</p>", t.answered))));
            }
            if now >= link.campaign.closes_at {
                return Ok((StatusCode::OK, page(t, &format!("<p>{}</p>", t.closed))));
            }
            // Radio buttons only send 1–5; anything else is a hand-made request: ignore it
            // rather than store a score nobody chose.
            let score = |area: ServiceArea| {
                fields
                    .get(area.as_str())
                    .and_then(|v| v.parse::<u8>().ok())
                    .filter(|s| (1..=5).contains(s))
            };
            let scores = SurveyScores {
                reception: score(ServiceArea::Reception),
                repairs: score(ServiceArea::Repairs),
                cleaning: score(ServiceArea::Cleaning),
                security: score(ServiceArea::Security),
                greenery: score(ServiceArea::Greenery),
            };
            if ServiceArea::ALL.iter().all(|a| scores.get(*a).is_none()) {
                return Ok((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    form(&token, lang, Some(t.need_one)),
                ));
            }
            let comment: String = fields
                .get("comment")
                .map(|c| c.trim().chars().take(super::MAX_COMMENT_CHARS).collect())
                .unwrap_or_default();
            match with_tx(conn, |tx| {
                tx.record_survey_response(&token, scores, &comment, now)
            }) {
                Ok(_) => Ok((StatusCode::OK, page(t, &format!("<p>{}</p>", t.thanks)))),
                // Answered from another tab a moment ago.
                Err(DomainError::Conflict { .. }) => {
                    Ok((StatusCode::OK, page(t, &format!("<p>{}</p>", t.answered))))
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
}
