//! `[http]` in wuyed.toml as the API applies it: the listeners' timeouts and connection limit, and
//! the rule every API token must pass.
//!
//! They are here, with the configuration, so `wuyed check` refuses exactly what `wuyed run`
//! would when it starts serving.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::HttpSection;
use crate::secret::SecretSource;

/// The listeners' timeouts and connection limit, from `[http]`; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: u32,
}

/// Bounds of each key, so a typo (`"10m"` for `"10s"`, `max_connections = 0`) is refused by
/// `wuyed check` instead of disabling the protection.
const HEADER_TIMEOUT: (u64, u64) = (1, 300);
const REQUEST_TIMEOUT: (u64, u64) = (1, 600);
const MAX_CONNECTIONS: (u32, u32) = (1, 10_000);

impl HttpLimits {
    /// The defaults `[http]` documents: a request line and headers fit one packet, so 10 s is
    /// generous even on a phone; 30 s carries a 64 KiB body at 2 KiB/s; 256 connections is far
    /// above what a desk and a billing system open, and leaves most of systemd's default 1024
    /// file descriptors to the database, SMTP pool and plugins.
    pub const DEFAULT: HttpLimits = HttpLimits {
        header_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(30),
        max_connections: 256,
    };

    /// The limits `[http]` sets, or every wrong key with its message (`wuyed check` reports
    /// them at their line; `wuyed run` refuses to start on them).
    pub fn from_section(http: &HttpSection) -> Result<HttpLimits, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        // Parsed as the file was read (`wuye_schedule::duration_text`); only the range is
        // checked here.
        let mut seconds = |key: &'static str, d: chrono::Duration, (min, max): (u64, u64)| {
            let s = d.num_seconds();
            if (min as i64..=max as i64).contains(&s) {
                Duration::from_secs(s as u64)
            } else {
                let text = wuye_schedule::format_duration(d);
                errors.push((
                    key,
                    format!("{text:?} is out of range: give between {min}s and {max}s"),
                ));
                Duration::ZERO
            }
        };
        let header_timeout = seconds("http.header_timeout", http.header_timeout, HEADER_TIMEOUT);
        let request_timeout = seconds(
            "http.request_timeout",
            http.request_timeout,
            REQUEST_TIMEOUT,
        );
        let (min, max) = MAX_CONNECTIONS;
        if !(min..=max).contains(&http.max_connections) {
            errors.push((
                "http.max_connections",
                format!(
                    "{} is out of range: give between {min} and {max} (each connection holds a \
                     file descriptor)",
                    http.max_connections
                ),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(HttpLimits {
            header_timeout,
            request_timeout,
            max_connections: http.max_connections,
        })
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits::DEFAULT
    }
}

/// One API token in `wuyed.toml`:
/// `[http] tokens = [{ name = "billing", token = { env = "WUYE_TOKEN_BILLING" }, communities = ["shuipan"] }]`.
/// `communities = ["*"]` allows every community.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds it (for logs; never the token itself).
    pub name: String,
    /// The secret: inline, `{ env = "..." }` or `{ file = "..." }`.
    pub token: SecretSource,
    /// Community ids this token may write to; `"*"` for all.
    pub communities: Vec<String>,
}

/// The rule every API token must pass, applied by the daemon as it starts the API and by the
/// config loader, so `wuyed check` refuses exactly what `wuyed run` would. The message never
/// holds the token.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.len() < 16 {
        return Err(
            "the token is shorter than 16 characters; use a long random one \
                    (`openssl rand -hex 24`)"
                .to_string(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_and_every_wrong_key_is_named() {
        assert_eq!(
            HttpLimits::from_section(&HttpSection::default()),
            Ok(HttpLimits::DEFAULT)
        );
        let http = HttpSection {
            header_timeout: chrono::Duration::seconds(2),
            request_timeout: chrono::Duration::minutes(1),
            max_connections: 8,
            ..HttpSection::default()
        };
        assert_eq!(
            HttpLimits::from_section(&http),
            Ok(HttpLimits {
                header_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(60),
                max_connections: 8,
            })
        );
        let http = HttpSection {
            header_timeout: chrono::Duration::zero(),
            request_timeout: chrono::Duration::hours(2),
            max_connections: 0,
            ..HttpSection::default()
        };
        let errors = HttpLimits::from_section(&http).unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "http.header_timeout",
                "http.request_timeout",
                "http.max_connections"
            ]
        );
        assert_eq!(
            errors[0].1,
            "\"0s\" is out of range: give between 1s and 300s"
        );
        assert_eq!(
            errors[1].1,
            "\"2h\" is out of range: give between 1s and 600s"
        );
    }
}
