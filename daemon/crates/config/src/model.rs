//! The configuration as administrators write it: one `wuyed.toml` for the daemon and one file per
//! community under `communities/`.
//!
//! Every struct denies unknown keys, because a misspelt key that is silently ignored is how a
//! community ends up with reminders at 03:00. Doc comments here are the reference for each key;
//! the shipped `config/` files repeat them as comments next to real values.
//!
//! These types are what the files say, deserialised; [`super::Settings`] is what the daemon runs
//! on after every check passed (timezones resolved, crontab parsed, calendars loaded, hours and
//! locales typed). Durations of the daemon's own sections are typed as they are read, through
//! the one parser (`wuye_schedule::duration_text`), so a bad one is located like any wrong type.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Typed by the schedule, which applies them; named here too because a workflow's file says them.
pub use wuye_schedule::{CatchUp, NonWorkday};

/// `wuyed.toml`: settings of the daemon itself.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonFile {
    #[serde(default)]
    pub daemon: DaemonSection,
    #[serde(default)]
    pub http: HttpSection,
    /// Limits for plugin calls; see [`crate::plugin_limits`]. Communities may lower them, never raise
    /// them past the hard ceilings.
    #[serde(default)]
    pub plugins: crate::plugin_limits::PluginSettings,
    /// Outbox, channels, quiet-hour defaults; see [`crate::delivery`].
    #[serde(default)]
    pub delivery: crate::delivery::DeliverySettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    /// Where the SQLite database and delivery files live; relative paths are taken from the
    /// config directory.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// IANA zone used by communities that do not name their own.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Log filter (same syntax as `RUST_LOG`, which wins when set).
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

impl Default for DaemonSection {
    fn default() -> Self {
        DaemonSection {
            data_dir: default_data_dir(),
            timezone: default_timezone(),
            log_level: default_log_level(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_timezone() -> String {
    "Asia/Shanghai".to_string()
}
fn default_log_level() -> String {
    "info".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Address of the HTTP API (the bearer API, `/healthz`, `/metrics`, and the owner pages
    /// unless `public_listen` is set); empty disables it.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A second address serving only the pages owners open from their links (`/survey/...`,
    /// `/rsvp/...`), for a reverse proxy facing the internet, while `listen` stays private.
    /// Empty (the default): the owner pages are served on `listen` with everything else.
    #[serde(default)]
    pub public_listen: String,
    /// Bearer tokens of the API, each limited to some communities (see `crate::http::ApiToken`):
    /// `tokens = [{ name = "billing", token = { env = "WUYE_TOKEN_BILLING" }, communities = ["shuipan"] }]`.
    #[serde(default)]
    pub tokens: Vec<crate::http::ApiToken>,
    /// The address owners reach the owner pages at (`https://wuye.example.com`, a path prefix
    /// allowed), used in the personal links of survey invitations and event announcements.
    /// Defaults to `http://<public_listen or listen>`, which only suits a demo on one machine.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Longest wait for a request's line and headers, and for the next request on an idle
    /// keep-alive connection; a slower client is disconnected without an answer, so a client
    /// that sends a few bytes at a time cannot hold a connection. Default `"10s"`.
    #[serde(
        default = "default_header_timeout",
        with = "wuye_schedule::duration_text"
    )]
    pub header_timeout: chrono::Duration,
    /// Longest a whole request may take once its headers are in, body and answer included;
    /// past it the client gets 408 and nothing the request asked for is done. Default `"30s"`.
    #[serde(
        default = "default_request_timeout",
        with = "wuye_schedule::duration_text"
    )]
    pub request_timeout: chrono::Duration,
    /// Connections served at once on each listener; one more is answered 503 with
    /// `Retry-After` at once. Default 256.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: default_listen(),
            public_listen: String::new(),
            tokens: Vec::new(),
            public_url: None,
            header_timeout: default_header_timeout(),
            request_timeout: default_request_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

impl HttpSection {
    /// The start of every link to an owner page, without a trailing `/`: `public_url`, else the
    /// address the owner pages are served on.
    pub fn owner_base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.owner_listen()),
        }
    }

    /// The address the owner pages are served on: `public_listen` when set, else `listen`.
    pub fn owner_listen(&self) -> &str {
        match self.public_listen.trim() {
            "" => self.listen.trim(),
            public => public,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8760".to_string()
}
fn default_header_timeout() -> chrono::Duration {
    chrono::Duration::seconds(10)
}
fn default_request_timeout() -> chrono::Duration {
    chrono::Duration::seconds(30)
}
fn default_max_connections() -> u32 {
    crate::http::HttpLimits::DEFAULT.max_connections
}

/// `communities/<file>.toml`: one community (小区).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityFile {
    /// Stable id used in the database, the CLI and idempotency keys. Lowercase ASCII, digits and
    /// `-`; never change it once messages have gone out.
    pub id: String,
    /// Display name, as owners know it (水畔花园).
    pub name: String,
    /// IANA zone; defaults to `daemon.timezone`.
    pub timezone: Option<String>,
    /// Business calendar: the stem of a file in `calendars/` (for example `cn-mainland`).
    pub calendar: Option<String>,
    /// Default language of messages when an owner has none: `zh-CN` or `en`.
    #[serde(default = "default_locale")]
    pub locale: String,
    /// When the service desk answers the phone, in local time.
    #[serde(default)]
    pub reception_hours: ReceptionHours,
    /// Local hours during which non-urgent messages wait.
    #[serde(default)]
    pub quiet_hours: QuietHours,
    /// The people of the service desk. Roles referenced by workflows must be staffed.
    #[serde(default)]
    pub staff: Vec<StaffMember>,
    /// Workflows keyed by name (`fee_reminder`, `quarterly_survey`, ...).
    #[serde(default)]
    pub workflows: BTreeMap<String, WorkflowFile>,
    /// Community overrides of plugin limits (may only lower the daemon's).
    #[serde(default)]
    pub limits: Option<crate::plugin_limits::LimitOverrides>,
    /// Community delivery choices (SMS provider, fallback policy, ...).
    #[serde(default)]
    pub delivery: Option<crate::delivery::CommunityDelivery>,
}

fn default_locale() -> String {
    "zh-CN".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReceptionHours {
    /// `HH:MM` local time.
    #[serde(default = "default_open")]
    pub open: String,
    /// `HH:MM` local time.
    #[serde(default = "default_close")]
    pub close: String,
    /// Closed on the calendar's non-workdays.
    #[serde(default = "yes")]
    pub workdays_only: bool,
}

impl Default for ReceptionHours {
    fn default() -> Self {
        ReceptionHours {
            open: default_open(),
            close: default_close(),
            workdays_only: true,
        }
    }
}

fn default_open() -> String {
    "08:30".to_string()
}
fn default_close() -> String {
    "17:30".to_string()
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM` local time when quiet hours begin (default 21:00).
    #[serde(default = "default_quiet_start")]
    pub start: String,
    /// `HH:MM` local time when they end (default 08:00).
    #[serde(default = "default_quiet_end")]
    pub end: String,
}

impl Default for QuietHours {
    fn default() -> Self {
        QuietHours {
            start: default_quiet_start(),
            end: default_quiet_end(),
        }
    }
}

fn default_quiet_start() -> String {
    "21:00".to_string()
}
fn default_quiet_end() -> String {
    "08:00".to_string()
}

/// 客服, 主管, 经理: the escalation ladder of 首问负责制.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 客服
    CustomerService,
    /// 主管
    Supervisor,
    /// 经理
    Manager,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::CustomerService => "customer_service",
            Role::Supervisor => "supervisor",
            Role::Manager => "manager",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaffMember {
    /// Stable id (`li-na`): lowercase letters, digits and `-`, unique in the community.
    pub id: String,
    /// Name as colleagues know it (李娜), used in notifications.
    pub name: String,
    /// `customer_service`, `supervisor` or `manager`.
    pub role: Role,
    /// Work email for notifications; shown masked in logs and `wuyed check`.
    pub email: Option<String>,
    /// Work mobile for SMS notifications (7 to 15 digits, `+` country code, spaces, `-`).
    pub phone: Option<String>,
    /// Staff id of the person this one escalates to; defaults to anyone with the next role.
    pub reports_to: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowFile {
    /// Plugin: a name resolved in `plugins.dir` (`fee_reminder` → `fee_reminder.wasm`) or a path
    /// to a `.wasm` file relative to the config directory.
    pub plugin: String,
    /// Crontab expression in the community's local time: 5 fields (minute hour day-of-month month
    /// day-of-week) or 6 with seconds first. Absent: the workflow only reacts to events and timers.
    pub schedule: Option<String>,
    /// What a non-workday means for this schedule (needs `calendar`).
    #[serde(default)]
    pub on_non_workday: NonWorkday,
    /// After downtime: `latest` (default), `all` or `skip`.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// How far back missed slots are still considered (`"2d"`, `"6h"`); older ones are recorded
    /// as missed whatever the policy.
    #[serde(default = "default_catch_up_window")]
    pub catch_up_window: String,
    /// Random delay added to each slot, up to this (`"10m"`), so many communities' 09:00 runs do
    /// not all start at once. The delay is derived from the slot, so it is the same after a restart.
    #[serde(default = "default_jitter")]
    pub jitter: String,
    /// Roles this workflow notifies; each must be staffed.
    #[serde(default)]
    pub notifies: Vec<Role>,
    /// Domain events this workflow reacts to, each becoming one run of its `on-event` hook:
    /// exact kinds (`ticket.closed`) or a family (`payment.*`). Kinds: `ticket.opened`,
    /// `ticket.closed`, `ticket.reopened`, `callback.recorded`, `payment.posted`,
    /// `payment.reversed`, `survey.answered`, `community_event.planned`,
    /// `payment_plan.agreed`, `payment_plan.ended`, and `import.<owners|bills|payments|balances|tickets>`
    /// after `wuyed import` changed rows.
    #[serde(default)]
    pub events: Vec<String>,
    /// `false`: checked, but not run (its plugin need not be built yet).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Parameters handed to the plugin as they are.
    #[serde(default)]
    pub params: toml::Table,
}

fn default_catch_up_window() -> String {
    "1d".to_string()
}
fn default_jitter() -> String {
    "0s".to_string()
}
