//! `[delivery]` in `wuyed.toml` and in community files.
//!
//! Everything has a default that works without any server: email becomes `.eml` files under
//! `<data_dir>/outbox/mail/` and SMS a JSON line in `<data_dir>/outbox/sms.jsonl`, so the demo
//! and a fresh install show what would be sent before anyone configures a gateway.
//!
//! Durations here are `chrono::Duration`s read through the configuration's one parser
//! (`wuye_schedule::duration_text`): a bad `"30x"` is a `wuyed check` error at its file, line
//! and key, and nothing at send time parses text or falls back to a default in silence. What
//! types cannot say (a validity of zero, a retry cap below its base) is
//! [`check_delivery_settings`]'s.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use chrono::Duration;

use crate::secret::SecretSource;
use crate::{Community, CommunityFile};
use wuye_core::message::Category;

/// `[delivery]` in wuyed.toml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    #[serde(default)]
    pub email: EmailSettings,
    /// SMS provider for communities that do not choose one (default: the JSON-lines file).
    #[serde(default)]
    pub sms: Option<SmsSettings>,
    /// How long a message stays worth sending, per category.
    #[serde(default)]
    pub validity: Validity,
    #[serde(default)]
    pub retry: RetrySettings,
    /// Messages held by quiet hours go out spread over this period after the window opens
    /// (default `"30m"`), not in one burst at 08:00. Each message's place in it follows from
    /// who it is to and what it is for (`OutboxMessage::spread_seed`): one recipient's
    /// messages of the same step from several timers or events go out together. A community
    /// may set its own (`Community::quiet_spread` is the one in force).
    #[serde(default = "m30", with = "wuye_schedule::duration_text")]
    pub quiet_spread: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            email: EmailSettings::default(),
            sms: None,
            validity: Validity::default(),
            retry: RetrySettings::default(),
            quiet_spread: m30(),
        }
    }
}

fn m30() -> Duration {
    Duration::minutes(30)
}

impl DeliverySettings {
    /// The domain of Message-IDs: the sender's (community's `from`, else the daemon's).
    pub fn message_id_domain(&self, community: &Community) -> String {
        let from = community
            .delivery
            .from
            .clone()
            .unwrap_or_else(|| self.email.from.clone());
        from.parse::<lettre::message::Mailbox>()
            .map(|m| m.email.domain().to_string())
            .unwrap_or_else(|_| "wuye.invalid".to_string())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// Sender, with display name: `"水畔花园物业 <desk@example.com>"`.
    #[serde(default = "default_from")]
    pub from: String,
    /// SMTP relay; absent: `.eml` files in `<data_dir>/outbox/mail/`.
    pub smtp: Option<SmtpSettings>,
    /// Link for `List-Unsubscribe` on non-transactional mail, with `{community}` and
    /// `{recipient}` replaced; a `mailto:` to the sender is always listed too.
    pub unsubscribe_url: Option<String>,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            from: default_from(),
            smtp: None,
            unsubscribe_url: None,
        }
    }
}

fn default_from() -> String {
    "物业服务中心 <desk@wuye.invalid>".to_string()
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refuses servers that cannot.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No encryption: only for a relay on localhost.
    None,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    /// Default 587 (STARTTLS), 465 (implicit TLS) or 25.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    /// Connections kept open (and messages in flight at once); default 4.
    #[serde(default = "default_pool")]
    pub pool_size: usize,
    /// Per command; default `"30s"`.
    #[serde(default = "s30", with = "wuye_schedule::duration_text")]
    pub timeout: Duration,
    /// PEM file of a CA (or a self-signed relay certificate) to trust besides the public roots,
    /// for a company relay with its own certificate authority; relative to the config directory.
    pub ca_file: Option<PathBuf>,
}

fn default_pool() -> usize {
    4
}

/// SMS gateways wuye speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsProvider {
    /// One JSON line per message in `<data_dir>/outbox/sms.jsonl`.
    #[default]
    File,
    /// Aliyun (阿里云) SendSms, RPC signature v1.
    Aliyun,
    /// Tencent Cloud (腾讯云) SendSms, TC3-HMAC-SHA256.
    Tencent,
    /// Twilio Messages.
    Twilio,
    /// A JSON POST to your own gateway.
    Webhook,
}

impl SmsProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsProvider::File => "file",
            SmsProvider::Aliyun => "aliyun",
            SmsProvider::Tencent => "tencent",
            SmsProvider::Twilio => "twilio",
            SmsProvider::Webhook => "webhook",
        }
    }

    /// Whether resending after an unknown outcome is safe: the file and webhook carry the
    /// idempotency key for the receiver to drop repeats; the commercial APIs would send twice.
    pub fn idempotent(self) -> bool {
        matches!(self, SmsProvider::File | SmsProvider::Webhook)
    }
}

/// `[delivery.sms]`: one provider and its credentials. Which keys apply depends on `provider`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    #[serde(default)]
    pub provider: SmsProvider,
    /// Base URL, for a proxy or a test gateway (default: the provider's public endpoint).
    pub endpoint: Option<String>,
    /// Aliyun, Tencent: the approved signature (签名), e.g. `水畔花园物业`.
    pub sign_name: Option<String>,
    /// Aliyun AccessKey id / Tencent SecretId / Twilio Account SID.
    pub key_id: Option<SecretSource>,
    /// Aliyun AccessKey secret / Tencent SecretKey / Twilio auth token / webhook bearer token.
    pub secret: Option<SecretSource>,
    /// Tencent: SmsSdkAppId.
    pub app_id: Option<String>,
    /// Tencent: region (default `ap-guangzhou`); Aliyun: RegionId (default `cn-hangzhou`).
    pub region: Option<String>,
    /// Twilio: the sending number or Messaging Service SID (`MG...`).
    pub from: Option<String>,
    /// Messages to one number per local day (Aliyun default 50 per template, Tencent 10).
    pub daily_limit: Option<u32>,
    /// Seconds before the same text may go to the same number again (Tencent default 30).
    pub same_content_secs: Option<u32>,
    /// Requests in flight at once (default 16).
    pub concurrency: Option<usize>,
}

impl SmsSettings {
    pub fn daily_limit(&self) -> Option<u32> {
        self.daily_limit.or(match self.provider {
            SmsProvider::Aliyun => Some(50),
            SmsProvider::Tencent => Some(10),
            _ => None,
        })
    }
    pub fn same_content_secs(&self) -> Option<u32> {
        self.same_content_secs.or(match self.provider {
            SmsProvider::Tencent => Some(30),
            _ => None,
        })
    }
}

/// What happens when the first channel cannot reach an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Try the other channel (no email: SMS, and the reverse).
    #[default]
    OtherChannel,
    /// Only the first channel; otherwise the owner is listed for the desk.
    None,
}

/// `[delivery]` in a community file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityDelivery {
    /// Sender of this community's mail, overriding the daemon's.
    pub from: Option<String>,
    /// This community's SMS provider, overriding the daemon's.
    pub sms: Option<SmsSettings>,
    #[serde(default)]
    pub fallback: Fallback,
    /// Overrides `delivery.quiet_spread`.
    #[serde(default, with = "wuye_schedule::duration_text::option")]
    pub quiet_spread: Option<Duration>,
}

/// `[delivery.validity]`: after this long a queued message expires instead of going out.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Validity {
    /// Default `"3d"`.
    #[serde(default = "d3", with = "wuye_schedule::duration_text")]
    pub transactional: Duration,
    /// Default `"12h"`.
    #[serde(default = "h12", with = "wuye_schedule::duration_text")]
    pub urgent: Duration,
    /// Default `"7d"`.
    #[serde(default = "d7", with = "wuye_schedule::duration_text")]
    pub informational: Duration,
}

fn d3() -> Duration {
    Duration::days(3)
}
fn h12() -> Duration {
    Duration::hours(12)
}
fn d7() -> Duration {
    Duration::days(7)
}

impl Default for Validity {
    fn default() -> Self {
        Validity {
            transactional: d3(),
            urgent: h12(),
            informational: d7(),
        }
    }
}

impl Validity {
    pub fn of(&self, c: Category) -> Duration {
        match c {
            Category::Transactional => self.transactional,
            Category::Urgent => self.urgent,
            Category::Informational => self.informational,
        }
    }
}

/// `[delivery.retry]`: exponential backoff with jitter for temporary failures.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// First wait (default `"30s"`), doubled each attempt.
    #[serde(default = "s30", with = "wuye_schedule::duration_text")]
    pub base: Duration,
    /// Longest wait (default `"1h"`), at least `base`.
    #[serde(default = "h1", with = "wuye_schedule::duration_text")]
    pub max: Duration,
    /// Attempts before a temporary failure becomes dead letter (default 8).
    #[serde(default = "eight")]
    pub max_attempts: u32,
}

fn s30() -> Duration {
    Duration::seconds(30)
}
fn h1() -> Duration {
    Duration::hours(1)
}
fn eight() -> u32 {
    8
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            base: s30(),
            max: h1(),
            max_attempts: 8,
        }
    }
}

impl RetrySettings {
    /// Wait before attempt `attempts + 1`: base·2^(attempts-1), capped, ±20 % jitter so a
    /// recovering server is not hit by every message at the same second.
    /// `wuyed check` holds `base` to at least a second and `max` to at least `base`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let base = self.base.num_milliseconds();
        let max = self.max.num_milliseconds();
        let exp = attempts.saturating_sub(1).min(20);
        let wait = base.saturating_mul(1i64 << exp).min(max);
        let jitter = rand::random_range(0.8..1.2);
        Duration::milliseconds((wait as f64 * jitter) as i64)
    }
}

/// Checks of `[delivery]` in `wuyed.toml` that types alone cannot make (durations that must
/// not be zero, senders), for `wuyed check`; the caller adds the line. Secrets are resolved by
/// `deliver::Channels::from_settings` at start.
pub fn check_delivery_settings(d: &DeliverySettings, file: &Path) -> Vec<crate::ConfigError> {
    use wuye_schedule::format_duration;
    let mut errors = Vec::new();
    // A zero validity expires every message before it is sent; a zero timeout fails every
    // SMTP command; a zero retry base would retry in a tight loop.
    let mut at_least_a_second = |key: &str, v: Duration, what: &str| {
        if v < Duration::seconds(1) {
            let message = format!("{:?} is too short: {what}", format_duration(v));
            errors.push(config_error(file, key, message));
        }
    };
    for (key, v) in [
        ("transactional", d.validity.transactional),
        ("urgent", d.validity.urgent),
        ("informational", d.validity.informational),
    ] {
        at_least_a_second(
            &format!("delivery.validity.{key}"),
            v,
            "give at least \"1s\" (a message expires this long after it is queued)",
        );
    }
    at_least_a_second(
        "delivery.retry.base",
        d.retry.base,
        "give at least \"1s\" (the first wait before a retry)",
    );
    if let Some(smtp) = &d.email.smtp {
        at_least_a_second(
            "delivery.email.smtp.timeout",
            smtp.timeout,
            "give at least \"1s\" (each SMTP command may take this long)",
        );
    }
    if d.retry.max < d.retry.base {
        let message = format!(
            "{:?} is shorter than delivery.retry.base ({:?}): the longest wait must be at least the first",
            format_duration(d.retry.max),
            format_duration(d.retry.base)
        );
        errors.push(config_error(file, "delivery.retry.max", message));
    }
    if d.retry.max_attempts == 0 {
        errors.push(config_error(
            file,
            "delivery.retry.max_attempts",
            "0 would give up before the first attempt: give at least 1".to_string(),
        ));
    }
    if d.email.from.parse::<lettre::message::Mailbox>().is_err() {
        errors.push(config_error(
            file,
            "delivery.email.from",
            format!(
                "expected a mailbox like \"物业服务中心 <desk@example.com>\", got {:?}",
                d.email.from
            ),
        ));
    }
    errors
}

/// Checks of a community's `[delivery]`, for `wuyed check` (its `quiet_spread` is parsed as the
/// file is read, quiet hours by config).
pub fn check_community_delivery(c: &CommunityFile, file: &Path) -> Vec<crate::ConfigError> {
    let mut errors = Vec::new();
    if let Some(from) = c.delivery.as_ref().and_then(|d| d.from.as_ref())
        && from.parse::<lettre::message::Mailbox>().is_err()
    {
        errors.push(config_error(
            file,
            "delivery.from",
            format!("not a mailbox: {from:?}"),
        ));
    }
    errors
}

fn config_error(file: &Path, key: &str, message: String) -> crate::ConfigError {
    crate::ConfigError {
        file: file.to_path_buf(),
        key: key.to_string(),
        line: None,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let r = RetrySettings::default();
        for _ in 0..50 {
            let first = r.backoff(1).num_milliseconds();
            assert!((24_000..=36_000).contains(&first), "{first}");
            let third = r.backoff(3).num_milliseconds();
            assert!((96_000..=144_000).contains(&third), "{third}");
            let late = r.backoff(30).num_milliseconds();
            assert!((2_880_000..=4_320_000).contains(&late), "{late}");
        }
    }

    #[test]
    fn bad_delivery_values_are_named_by_key() {
        let d: DeliverySettings = toml::from_str(
            "[email]\nfrom = \"desk at example\"\n[retry]\nbase = \"2m\"\nmax = \"1m\"\nmax_attempts = 0\n[validity]\nurgent = \"0s\"\n",
        )
        .unwrap();
        let errs = check_delivery_settings(&d, Path::new("wuyed.toml"));
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "wuyed.toml: delivery.validity.urgent: \"0s\" is too short: give at least \"1s\" (a message expires this long after it is queued)",
                "wuyed.toml: delivery.retry.max: \"1m\" is shorter than delivery.retry.base (\"2m\"): the longest wait must be at least the first",
                "wuyed.toml: delivery.retry.max_attempts: 0 would give up before the first attempt: give at least 1",
                "wuyed.toml: delivery.email.from: expected a mailbox like \"物业服务中心 <desk@example.com>\", got \"desk at example\"",
            ]
        );
        // A duration that does not parse is refused as the file is read, by the one parser.
        let bad =
            toml::from_str::<DeliverySettings>("quiet_spread = \"half an hour\"\n").unwrap_err();
        assert!(
            bad.to_string()
                .contains("invalid duration \"half an hour\": expected a number"),
            "{bad}"
        );
        let unknown = toml::from_str::<DeliverySettings>("[email]\nform = \"x\"\n").unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `form`"),
            "{unknown}"
        );
    }
}
