//! quarterly-survey: the owner satisfaction survey (业主满意度调查) every quarter.
//!
//! The schedule fires on the first workday of each quarter (`0 9 1 1,4,7,10 *` with
//! `on_non_workday = "shift"`). That run invites every household of the campaign, each with its
//! personal link (the host renders the link from the household's invitation token: the plugin
//! never sees tokens, as it never sees phone numbers), and sets two durable timers: a reminder
//! after `remind_after_days` to the households that have not answered, and the close after
//! `close_after_days`. Closing sends the community manager the report: response rate (answered
//! households over invited households), satisfaction rate (满意率: share of scores ≥ 4) per
//! service area — reception 接待, repairs 报修, cleaning 保洁, security 安保, greenery 绿化 — and
//! the change from the previous quarter in percentage points. Every score ≤ 2 that comes with a
//! comment becomes a ticket for the desk: an owner who took the trouble to explain gets an answer.
//!
//! Rates are kept as basis points (integers) so the report and the stored comparison never
//! drift by float rounding. Each quarter's figures are kept in the key-value store
//! (`stats:2026Q3`) for the next quarter's comparison.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use workflow_kit::{local_date, previous_quarter, quarter_key, role, zone};
use wuye_plugin_sdk::DAY_MS;
use wuye_plugin_sdk::prelude::*;

/// The service areas, in report order, with their Chinese names.
pub const AREAS: [(&str, &str); 5] = [
    ("reception", "接待"),
    ("repairs", "报修"),
    ("cleaning", "保洁"),
    ("security", "安保"),
    ("greenery", "绿化"),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "seven")]
    pub remind_after_days: u32,
    #[serde(default = "fourteen")]
    pub close_after_days: u32,
    #[serde(default = "invite")]
    pub invite_template: String,
    #[serde(default = "reminder")]
    pub reminder_template: String,
    #[serde(default = "report")]
    pub report_template: String,
    /// Who gets the report (default `manager`).
    #[serde(default = "manager")]
    pub report_to: String,
    /// Scores at or below this, with a comment, become tickets (default 2).
    #[serde(default = "two")]
    pub ticket_at_or_below: u8,
}

fn seven() -> u32 {
    7
}
fn fourteen() -> u32 {
    14
}
fn two() -> u8 {
    2
}
fn invite() -> String {
    "invitation".into()
}
fn reminder() -> String {
    "reminder".into()
}
fn report() -> String {
    "report".into()
}
fn manager() -> String {
    "manager".into()
}

impl Params {
    fn of(run: &Run) -> Result<(Params, Role), PluginError> {
        let p: Params = run.params()?;
        if p.remind_after_days >= p.close_after_days {
            return Err(PluginError::InvalidParams(format!(
                "remind_after_days: {} must be before close_after_days ({})",
                p.remind_after_days, p.close_after_days
            )));
        }
        let r = role("report_to", &p.report_to)?;
        Ok((p, r))
    }
}

/// What a timer carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    pub quarter: String,
    /// `remind` or `close`.
    pub action: String,
}

/// One quarter's figures, as stored for the next quarter's comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub invited: u32,
    pub answered: u32,
    /// Area → (answers, satisfied answers).
    pub areas: BTreeMap<String, (u32, u32)>,
}

impl Stats {
    /// Response rate in basis points; `None` when nobody was invited.
    pub fn response_bp(&self) -> Option<u32> {
        bp(self.answered, self.invited)
    }

    /// Satisfaction rate over every area's answers, in basis points.
    pub fn overall_bp(&self) -> Option<u32> {
        let (n, ok) = self
            .areas
            .values()
            .fold((0, 0), |(n, ok), (a, b)| (n + a, ok + b));
        bp(ok, n)
    }

    /// Satisfaction rate of an area in basis points; `None` without answers.
    pub fn satisfaction_bp(&self, area: &str) -> Option<u32> {
        self.areas.get(area).and_then(|(n, ok)| bp(*ok, *n))
    }
}

fn bp(part: u32, whole: u32) -> Option<u32> {
    (whole > 0).then(|| (u64::from(part) * 10_000 / u64::from(whole)) as u32)
}

/// `62.5%` from basis points (truncated to one decimal).
pub fn percent(bp: u32) -> String {
    format!("{}.{}%", bp / 100, bp % 100 / 10)
}

/// `+5.0 pp` / `-12.5 pp` between two rates in basis points.
pub fn delta_pp(now: u32, before: u32) -> String {
    let d = i64::from(now) - i64::from(before);
    let sign = if d < 0 { "-" } else { "+" };
    let d = d.unsigned_abs();
    format!("{sign}{}.{} pp", d / 100, d % 100 / 10)
}

#[derive(Debug, Default)]
pub struct QuarterlySurvey;

impl QuarterlySurvey {
    /// The campaign of a quarter: the host's survey whose id names the quarter, else the one
    /// opening in it; `None` when the host has none (then the quarter key is the survey id).
    fn campaign(host: &dyn Host, quarter: &str) -> Option<Survey> {
        let tz = zone(&host.timezone()).ok()?;
        let surveys = host.surveys();
        surveys
            .iter()
            .find(|s| s.id == quarter || s.id.ends_with(quarter))
            .or_else(|| {
                surveys
                    .iter()
                    .find(|s| quarter_key(local_date(s.opens_at, tz)) == quarter)
            })
            .cloned()
    }

    fn invited(host: &dyn Host, survey: &Option<Survey>) -> Vec<String> {
        match survey {
            Some(s) if !s.invited.is_empty() => s.invited.clone(),
            _ => host.households().into_iter().map(|h| h.id).collect(),
        }
    }

    fn survey_id(survey: &Option<Survey>, quarter: &str) -> String {
        survey
            .as_ref()
            .map_or_else(|| quarter.to_string(), |s| s.id.clone())
    }

    fn open(&self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        let (params, _) = Params::of(run)?;
        let tz = zone(&host.timezone())?;
        let quarter = quarter_key(local_date(run.due_at, tz));
        let state_key = format!("survey:{quarter}");
        if host.kv_get(&state_key).is_some() {
            host.log(Level::Info, "survey already open", &[("quarter", &quarter)]);
            return Ok(());
        }
        let survey = Self::campaign(host, &quarter);
        let id = Self::survey_id(&survey, &quarter);
        let closes = run.due_at + i64::from(params.close_after_days) * DAY_MS;
        let invited = Self::invited(host, &survey);
        for h in &invited {
            host.send(
                Message::to_household(h, &params.invite_template, "invite")
                    .var("quarter", &quarter)
                    .var("survey", &id)
                    .var("household", h)
                    .var("closes_on", local_date(closes, tz))
                    .category(Category::Informational),
            );
        }
        for (days, action) in [
            (params.remind_after_days, "remind"),
            (params.close_after_days, "close"),
        ] {
            let wake = Wake {
                quarter: quarter.clone(),
                action: action.into(),
            };
            host.set_timer(
                run.due_at + i64::from(days) * DAY_MS,
                &serde_json::to_string(&wake).unwrap_or_default(),
            );
        }
        host.kv_put(&state_key, "open");
        host.kv_put(
            &format!("closes:{quarter}"),
            &local_date(closes, tz).to_string(),
        );
        host.log(
            Level::Info,
            "survey opened",
            &[
                ("quarter", &quarter),
                ("invited", &invited.len().to_string()),
            ],
        );
        Ok(())
    }

    fn answered(host: &dyn Host, id: &str) -> BTreeSet<String> {
        host.survey_answers(id)
            .into_iter()
            .map(|a| a.household)
            .collect()
    }

    fn remind(&self, params: &Params, quarter: &str, host: &mut dyn Host) {
        let closes_on = host
            .kv_get(&format!("closes:{quarter}"))
            .unwrap_or_default();
        let survey = Self::campaign(host, quarter);
        let id = Self::survey_id(&survey, quarter);
        let answered = Self::answered(host, &id);
        let mut n = 0;
        for h in Self::invited(host, &survey)
            .iter()
            .filter(|h| !answered.contains(*h))
        {
            host.send(
                Message::to_household(h, &params.reminder_template, "remind")
                    .var("quarter", quarter)
                    .var("survey", &id)
                    .var("household", h)
                    .var("closes_on", &closes_on)
                    .category(Category::Informational),
            );
            n += 1;
        }
        host.log(
            Level::Info,
            "survey reminders",
            &[("quarter", quarter), ("reminded", &n.to_string())],
        );
    }

    /// The figures of a quarter from its answers.
    pub fn stats(host: &dyn Host, quarter: &str) -> Stats {
        let survey = Self::campaign(host, quarter);
        let id = Self::survey_id(&survey, quarter);
        let invited: BTreeSet<String> = Self::invited(host, &survey).into_iter().collect();
        let answers = host.survey_answers(&id);
        let answered: BTreeSet<&str> = answers
            .iter()
            .filter(|a| invited.contains(&a.household))
            .map(|a| a.household.as_str())
            .collect();
        let mut stats = Stats {
            invited: invited.len() as u32,
            answered: answered.len() as u32,
            areas: BTreeMap::new(),
        };
        for a in answers.iter().filter(|a| invited.contains(&a.household)) {
            let e = stats.areas.entry(a.area.clone()).or_default();
            e.0 += 1;
            if a.score >= 4 {
                e.1 += 1;
            }
        }
        stats
    }

    fn close(
        &self,
        params: &Params,
        report_to: Role,
        quarter: &str,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        let stats = Self::stats(host, quarter);
        let prev = previous_quarter(quarter).unwrap_or_default();
        // The previous quarter as this plugin closed it; failing that (the first quarter on
        // wuye, answers imported from before), computed from the host's answers.
        let before: Option<Stats> = host
            .kv_get(&format!("stats:{prev}"))
            .and_then(|s| serde_json::from_str(&s).ok())
            .or_else(|| Some(Self::stats(host, &prev)).filter(|s| s.answered > 0));

        let mut notice = StaffNotice::new(
            report_to,
            &params.report_template,
            &format!("report:{quarter}"),
        )
        .var("quarter", quarter)
        .var("previous", &prev)
        .var(
            "satisfaction_rate",
            stats.overall_bp().map_or("n/a".into(), percent),
        )
        .var(
            "report_link",
            format!(
                "wuyed report satisfaction --community {} --period {quarter} --format html",
                host.community_id()
            ),
        )
        .var("invited", stats.invited)
        .var("answered", stats.answered)
        .var(
            "response_rate",
            stats
                .response_bp()
                .map_or("n/a (nobody invited)".into(), percent),
        );
        let mut table = vec![format!("{quarter} 满意率 (satisfaction)")];
        for (area, zh) in AREAS {
            let now = stats.satisfaction_bp(area);
            let was = before.as_ref().and_then(|b| b.satisfaction_bp(area));
            let rate = now.map_or("n/a".to_string(), percent);
            let delta = match (now, was) {
                (Some(n), Some(w)) => delta_pp(n, w),
                _ => "n/a".into(),
            };
            let answers = stats.areas.get(area).map_or(0, |e| e.0);
            table.push(format!(
                "{zh} ({area}): {rate} ({answers} answers), vs {prev}: {delta}"
            ));
            notice = notice
                .var(&format!("rate_{area}"), &rate)
                .var(&format!("delta_{area}"), &delta);
        }
        notice = notice.var("table", table.join("\n"));
        host.notify_staff(notice);

        let survey = Self::campaign(host, quarter);
        let id = Self::survey_id(&survey, quarter);
        let mut tickets = 0;
        for a in host.survey_answers(&id) {
            if a.score <= params.ticket_at_or_below && !a.comment.trim().is_empty() {
                let zh = AREAS
                    .iter()
                    .find(|(k, _)| *k == a.area)
                    .map_or(a.area.as_str(), |(_, z)| z);
                host.create_ticket(NewTicket {
                    household: Some(a.household.clone()),
                    kind: "complaint".into(),
                    summary: format!(
                        "满意度调查 {quarter} {zh} {}分: {}",
                        a.score,
                        a.comment.trim()
                    ),
                });
                tickets += 1;
            }
        }
        host.kv_put(
            &format!("stats:{quarter}"),
            &serde_json::to_string(&stats).unwrap_or_default(),
        );
        host.kv_put(&format!("survey:{quarter}"), "closed");
        host.log(
            Level::Info,
            "survey closed",
            &[
                ("quarter", quarter),
                ("answered", &stats.answered.to_string()),
                ("tickets", &tickets.to_string()),
            ],
        );
        Ok(())
    }
}

impl Plugin for QuarterlySurvey {
    fn on_schedule(&mut self, run: &Run, host: &mut dyn Host) -> Result<(), PluginError> {
        self.open(run, host)
    }

    fn on_timer(
        &mut self,
        run: &Run,
        payload: &str,
        host: &mut dyn Host,
    ) -> Result<(), PluginError> {
        let (params, report_to) = Params::of(run)?;
        let wake: Wake = serde_json::from_str(payload)
            .map_err(|e| PluginError::BadData(format!("timer payload {payload:?}: {e}")))?;
        if host.kv_get(&format!("survey:{}", wake.quarter)).as_deref() == Some("closed") {
            return Ok(());
        }
        match wake.action.as_str() {
            "remind" => {
                self.remind(&params, &wake.quarter, host);
                Ok(())
            }
            "close" => self.close(&params, report_to, &wake.quarter, host),
            other => Err(PluginError::BadData(format!(
                "timer payload: unknown action {other:?}"
            ))),
        }
    }
}

export_plugin!(QuarterlySurvey);
wuye_plugin_sdk::manifest!(include_str!("../manifest.toml"));

#[cfg(test)]
mod tests;
