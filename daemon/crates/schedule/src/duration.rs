//! Durations as administrators write them in config files: `"90s"`, `"10m"`, `"6h"`, `"2d"`,
//! `"1w"`, or several together (`"1h30m"`). Whole numbers only, so `"1.5h"` is refused rather
//! than guessed; a day is 24 hours here (windows and jitter, not calendar arithmetic).
//!
//! This is the one duration parser of the configuration: workflow windows, delivery validity,
//! retry and quiet spread, SMTP and HTTP timeouts all go through it, so a value that works in
//! one key works in every other. Fields of the file model that hold a duration use
//! [`text`] (`#[serde(with = ...)]`), so the value is parsed once, as the file is read, and a bad
//! one is reported by `wuyed check` with its file, line and key like any other wrong value.

use chrono::Duration;

const UNITS: &str = "s, m, h, d or w";

/// Parses `"90s"`, `"10m"`, `"6h"`, `"2d"`, `"1w"` (and `"0s"`, `"1h30m"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!(
            "invalid duration {text:?}: write a number and a unit, e.g. \"10m\""
        ));
    }
    let mut total = Duration::zero();
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}: expected a number before {:?} (durations look like \"90s\", \"10m\", \"2d\")",
                rest
            ));
        }
        let (number, after) = rest.split_at(digits);
        if after.starts_with('.') || after.starts_with(',') {
            return Err(format!(
                "invalid duration {text:?}: only whole numbers are allowed (\"90m\", not \"1.5h\")"
            ));
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, next) = after.split_at(unit_len);
        let n: i64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: {number} is too large"))?;
        let seconds_per = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit after {number} ({UNITS})"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} ({UNITS})"
                ));
            }
        };
        let part = n
            .checked_mul(seconds_per)
            .and_then(Duration::try_seconds)
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        total = total
            .checked_add(&part)
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        rest = next;
    }
    Ok(total)
}

/// The inverse of [`parse_duration`] for messages: `1d`, `1h30m`, `0s`. Sub-second parts are
/// dropped.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.num_seconds();
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    if secs < 0 {
        out.push('-');
        secs = -secs;
    }
    for (unit, size) in [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// `#[serde(with = "crate::duration_text")]` on a `chrono::Duration` field of the
/// file model: written and read as text (`"30s"`), parsed by [`parse_duration`].
pub mod text {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    /// The same for an `Option<chrono::Duration>` (absent: `None`; give the field
    /// `#[serde(default)]` too).
    pub mod option {
        use chrono::Duration;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(text) => super::super::parse_duration(&text)
                    .map(Some)
                    .map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_unit_and_combinations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::seconds(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::minutes(10)));
        assert_eq!(parse_duration("6h"), Ok(Duration::hours(6)));
        assert_eq!(parse_duration("2d"), Ok(Duration::days(2)));
        assert_eq!(parse_duration("1w"), Ok(Duration::weeks(1)));
        assert_eq!(parse_duration("0s"), Ok(Duration::zero()));
        assert_eq!(parse_duration(" 1h30m "), Ok(Duration::minutes(90)));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            parse_duration(""),
            Err("invalid duration \"\": write a number and a unit, e.g. \"10m\"".to_string())
        );
        assert_eq!(
            parse_duration("90"),
            Err("invalid duration \"90\": missing unit after 90 (s, m, h, d or w)".to_string())
        );
        assert_eq!(
            parse_duration("5y"),
            Err("invalid duration \"5y\": unknown unit \"y\" (s, m, h, d or w)".to_string())
        );
        assert_eq!(
            parse_duration("10 min"),
            Err("invalid duration \"10 min\": unknown unit \" min\" (s, m, h, d or w)".to_string())
        );
        assert_eq!(
            parse_duration("1.5h"),
            Err(
                "invalid duration \"1.5h\": only whole numbers are allowed (\"90m\", not \"1.5h\")"
                    .to_string()
            )
        );
        assert_eq!(
            parse_duration("-5m"),
            Err(
                "invalid duration \"-5m\": expected a number before \"-5m\" (durations look like \"90s\", \"10m\", \"2d\")"
                    .to_string()
            )
        );
        assert_eq!(
            parse_duration("99999999999999999w"),
            Err("invalid duration \"99999999999999999w\": too large".to_string())
        );
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_duration(Duration::days(1)), "1d");
        assert_eq!(format_duration(Duration::seconds(90)), "1m30s");
        assert_eq!(format_duration(Duration::hours(36)), "1d12h");
        assert_eq!(format_duration(Duration::zero()), "0s");
        for text in ["2d", "6h", "1w", "10m", "1w1d1h1m1s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
