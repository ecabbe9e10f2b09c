//! `wuyed simulate --script FILE`: what the desk and the owners do during a simulated span
//! (payments, reversals, closed tickets, callbacks, survey answers, an event recorded), played
//! through the very API the daemon serves, at the virtual time each step names.
//!
//! A simulation over the store as it stands shows only what the workflows do to data nobody
//! touches: reminders never stop, since nobody pays. A script answers the questions people
//! ask of a rule change: "if 1-1-102 pays on the 25th, does the 30-day notice still go?". Each
//! step goes through the HTTP router in-process, so it is validated and turned into domain
//! events exactly as a real request would be; a step the API refuses stops the simulation with
//! the file, the step and the API's own message.
//!
//! ```toml
//! [[step]]
//! at = "2026-05-25T10:30:00+08:00"
//! post = "/api/v1/communities/shuipan/payments"
//! body = { reference = "R-0525", household = "1-1-102", fee_type = "property", period = "2026-05", amount_fen = 30000 }
//!
//! [[step]]
//! at = "2026-01-06T20:00:00+08:00"
//! answer_survey = { community = "shuipan", household = "1-1-101" }
//! body = { reception = 5, repairs = 4 }
//! ```
//!
//! `answer_survey` stands for the owner following their link: it posts to the household's most
//! recent survey invitation, whose token only exists once the simulation has sent it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{Method, Request};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tower::ServiceExt as _;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::http::{AppState, ResolvedToken};

/// The bearer token the script's requests carry; it exists only inside the simulation.
const SCRIPT_TOKEN: &str = "simulate-desk-script";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: String,
    post: Option<String>,
    put: Option<String>,
    answer_survey: Option<SurveyOf>,
    #[serde(default)]
    body: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SurveyOf {
    community: String,
    household: String,
}

#[derive(Debug)]
enum Target {
    Path(Method, String),
    Survey(SurveyOf),
}

#[derive(Debug)]
struct Step {
    /// 1-based, as the file counts them.
    number: usize,
    at: DateTime<Utc>,
    target: Target,
    body: Option<serde_json::Value>,
}

impl Step {
    fn describe(&self) -> String {
        match &self.target {
            Target::Path(m, p) => format!("step {} ({} {m} {p})", self.number, self.at),
            Target::Survey(s) => format!(
                "step {} ({} answer_survey {}/{})",
                self.number, self.at, s.community, s.household
            ),
        }
    }
}

/// The steps of a script, in time order, played as the simulated clock passes them.
#[derive(Debug)]
pub struct DeskScript {
    file: PathBuf,
    steps: VecDeque<Step>,
}

impl DeskScript {
    /// Reads and checks the whole file before anything runs: every problem names the step.
    pub fn load(file: &Path) -> anyhow::Result<DeskScript> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the script {}", file.display()))?;
        let raw: File =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let mut steps = Vec::new();
        for (i, s) in raw.step.into_iter().enumerate() {
            let number = i + 1;
            let fail = |m: String| anyhow::anyhow!("{}: step {number}: {m}", file.display());
            let at = DateTime::parse_from_rfc3339(&s.at)
                .map_err(|_| {
                    fail(format!(
                        "at: {:?} is not an RFC 3339 time like 2026-05-25T10:30:00+08:00",
                        s.at
                    ))
                })?
                .to_utc();
            let target = match (s.post, s.put, s.answer_survey) {
                (Some(p), None, None) => Target::Path(Method::POST, p),
                (None, Some(p), None) => Target::Path(Method::PUT, p),
                (None, None, Some(who)) => Target::Survey(who),
                _ => {
                    return Err(fail(
                        "give exactly one of post = \"/api/...\", put = \"/api/...\" or \
                         answer_survey = { community, household }"
                            .into(),
                    ));
                }
            };
            if let Target::Path(_, p) = &target
                && !p.starts_with("/api/v1/")
            {
                return Err(fail(format!(
                    "{p:?}: the script speaks the API, paths start with /api/v1/"
                )));
            }
            let body = s
                .body
                .map(serde_json::to_value)
                .transpose()
                .map_err(|e| fail(format!("body: {e}")))?;
            steps.push(Step {
                number,
                at,
                target,
                body,
            });
        }
        // Stable: two steps at one instant keep the file's order.
        steps.sort_by_key(|s| s.at);
        Ok(DeskScript {
            file: file.to_path_buf(),
            steps: steps.into(),
        })
    }

    /// When the next step is due.
    pub fn next_at(&self) -> Option<DateTime<Utc>> {
        self.steps.front().map(|s| s.at)
    }

    /// Plays every step due by `now` through `desk`; returns how many ran.
    pub async fn play_due(&mut self, desk: &Desk, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut played = 0;
        while self.steps.front().is_some_and(|s| s.at <= now) {
            let step = self.steps.pop_front().expect("checked above");
            desk.play(&step)
                .await
                .with_context(|| format!("{}: {}", self.file.display(), step.describe()))?;
            played += 1;
        }
        Ok(played)
    }
}

/// The API as the simulation's desk sees it: the daemon's router on the sandbox database and
/// the simulated clock, with a token for every community.
pub struct Desk {
    router: axum::Router,
    db: PathBuf,
}

impl Desk {
    pub fn new(settings: &Settings, db: &Path, clock: SharedClock) -> anyhow::Result<Desk> {
        let conn = crate::store::domain::open_standalone(db)
            .with_context(|| format!("cannot open {}", db.display()))?;
        let state = AppState::new(
            conn,
            vec![ResolvedToken::new(
                "desk-script",
                SCRIPT_TOKEN,
                vec!["*".into()],
            )],
            settings.communities.iter().map(|c| c.id.clone()),
            clock,
        )
        .with_zones(settings.communities.iter().map(|c| (c.id.clone(), c.tz)));
        Ok(Desk {
            router: crate::http::router(state),
            db: db.to_path_buf(),
        })
    }

    async fn play(&self, step: &Step) -> anyhow::Result<()> {
        let (method, path) = match &step.target {
            Target::Path(m, p) => (m.clone(), p.clone()),
            Target::Survey(who) => (
                Method::POST,
                format!("/api/v1/surveys/{}/responses", self.survey_token(who)?),
            ),
        };
        let body = step
            .body
            .as_ref()
            .map_or_else(String::new, serde_json::Value::to_string);
        let request = Request::builder()
            .method(method)
            .uri(&path)
            .header("authorization", format!("Bearer {SCRIPT_TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body))?;
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024).await?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let error = &answer["error"];
        let field = error["field"]
            .as_str()
            .map_or_else(String::new, |f| format!("{f}: "));
        Err(anyhow::anyhow!(
            "the API refused it: {} {field}{}",
            status.as_u16(),
            error["message"].as_str().unwrap_or("(no message)")
        ))
    }

    /// The token of the household's most recent survey invitation.
    fn survey_token(&self, who: &SurveyOf) -> anyhow::Result<String> {
        let conn = rusqlite::Connection::open(&self.db)?;
        let token: Option<String> = conn
            .query_row(
                "SELECT token FROM survey_invitations WHERE community = ?1 AND household = ?2
                 ORDER BY id DESC LIMIT 1",
                [&who.community, &who.household],
                |r| r.get(0),
            )
            .ok();
        token.ok_or_else(|| {
            anyhow::anyhow!(
                "household {} of {} has not been invited to a survey yet at this time",
                who.household,
                who.community
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(text: &str) -> anyhow::Result<DeskScript> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("desk.toml");
        std::fs::write(&file, text).unwrap();
        DeskScript::load(&file)
    }

    #[test]
    fn steps_are_played_in_time_order_and_bad_ones_name_the_step() {
        let s = script(
            r#"
[[step]]
at = "2026-05-25T10:30:00+08:00"
post = "/api/v1/communities/shuipan/payments/R1/reverse"
body = { reason = "bounced" }

[[step]]
at = "2026-05-20T10:30:00+08:00"
post = "/api/v1/communities/shuipan/payments"
body = { reference = "R1", household = "1-1-101", fee_type = "property", period = "2026-05", amount_fen = 100 }
"#,
        )
        .unwrap();
        let order: Vec<usize> = s.steps.iter().map(|s| s.number).collect();
        assert_eq!(order, [2, 1]);
        assert_eq!(
            s.next_at(),
            DateTime::parse_from_rfc3339("2026-05-20T02:30:00Z")
                .ok()
                .map(|t| t.to_utc())
        );

        let e = script("[[step]]\nat = \"tomorrow\"\npost = \"/api/v1/x\"\n").unwrap_err();
        assert!(e.to_string().contains("step 1: at: \"tomorrow\""), "{e}");
        let e = script("[[step]]\nat = \"2026-05-20T10:30:00+08:00\"\npost = \"/api/v1/x\"\nput = \"/api/v1/y\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("step 1: give exactly one of"), "{e}");
        let e = script("[[step]]\nat = \"2026-05-20T10:30:00+08:00\"\npost = \"/healthz\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("paths start with /api/v1/"), "{e}");
        let e = script("[[step]]\nwhen = 1\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `when`"), "{e}");
    }
}
