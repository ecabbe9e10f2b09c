//! Secrets (SMTP passwords, SMS keys) in configuration.
//!
//! A secret can be written inline, named as an environment variable, or read from a file
//! (systemd credentials, Docker/Kubernetes secrets). Its value never appears in `Debug`,
//! `Display`, logs or `wuyed check` output: only where it came from does.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a secret is written in TOML: `password = "..."`, `password = { env = "SMTP_PASSWORD" }`
/// or `password = { file = "/run/secrets/smtp" }`.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged, deny_unknown_fields)]
pub enum SecretSource {
    Inline(String),
    Env { env: String },
    File { file: PathBuf },
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("<inline secret>"),
            SecretSource::Env { env } => write!(f, "<secret from ${env}>"),
            SecretSource::File { file } => write!(f, "<secret from {}>", file.display()),
        }
    }
}

impl SecretSource {
    /// Reads the secret. Relative files are taken from `config_dir`. A trailing newline in a
    /// file is dropped (editors add one).
    pub fn resolve(&self, config_dir: &std::path::Path) -> Result<Secret, String> {
        match self {
            SecretSource::Inline(v) => Ok(Secret(v.clone())),
            SecretSource::Env { env } => std::env::var(env)
                .map(Secret)
                .map_err(|_| format!("environment variable {env} is not set")),
            SecretSource::File { file } => {
                let path = config_dir.join(file);
                std::fs::read_to_string(&path)
                    .map(|s| Secret(s.trim_end_matches(['\n', '\r']).to_string()))
                    .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))
            }
        }
    }
}

/// A resolved secret value. Only [`Secret::expose`] gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        let src: SecretSource = toml::from_str::<toml::Table>("p = \"hunter2\"").unwrap()["p"]
            .clone()
            .try_into()
            .unwrap();
        assert!(!format!("{src:?}").contains("hunter2"));
    }
}
