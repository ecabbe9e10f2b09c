//! Secrets (SMTP passwords, SMS keys) in configuration.
//!
//! A secret can be written inline, named as an environment variable, or read from a file
//! (systemd credentials, Docker/Kubernetes secrets). Its value never appears in `Debug`,
//! `Display`, logs or `wuyed check` output: only where it came from does.
//!
//! The settings types that hold secrets belong to other modules (delivery), so `wuyed check`
//! cannot list them by field. Instead, deserialising a [`SecretSource`] records it in a
//! per-thread collector while the config loader is reading a file (`collect`); the loader then
//! resolves every one it saw, whichever struct it sits in.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// How a secret is written in TOML: `password = "..."`, `password = { env = "SMTP_PASSWORD" }`
/// or `password = { file = "/run/secrets/smtp" }`.
#[derive(Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
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

thread_local! {
    static SEEN: RefCell<Option<Vec<SecretSource>>> = const { RefCell::new(None) };
}

/// Runs `read` and returns what it returned plus every [`SecretSource`] deserialised meanwhile
/// on this thread.
pub(crate) fn collect<T>(read: impl FnOnce() -> T) -> (T, Vec<SecretSource>) {
    let outer = SEEN.with(|s| s.borrow_mut().replace(Vec::new()));
    let value = read();
    let seen = SEEN.with(|s| std::mem::replace(&mut *s.borrow_mut(), outer));
    (value, seen.unwrap_or_default())
}

// Hand-written rather than `untagged`: an untagged enum's error ("data did not match any variant")
// does not tell an administrator what to write, and this one does.
impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SourceVisitor;

        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = SecretSource;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string, { env = "VARIABLE" } or { file = "PATH" }"#)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretSource, E> {
                Ok(SecretSource::Inline(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretSource, A::Error> {
                let mut found: Option<SecretSource> = None;
                while let Some(key) = map.next_key::<String>()? {
                    let source = match key.as_str() {
                        "env" => SecretSource::Env {
                            env: map.next_value()?,
                        },
                        "file" => SecretSource::File {
                            file: map.next_value()?,
                        },
                        other => return Err(de::Error::unknown_field(other, &["env", "file"])),
                    };
                    if found.is_some() {
                        return Err(de::Error::custom(
                            "a secret takes either `env` or `file`, not both",
                        ));
                    }
                    found = Some(source);
                }
                found.ok_or_else(|| de::Error::custom("a secret table needs `env` or `file`"))
            }
        }

        let source = deserializer.deserialize_any(SourceVisitor)?;
        SEEN.with(|s| {
            if let Some(seen) = s.borrow_mut().as_mut() {
                seen.push(source.clone());
            }
        });
        Ok(source)
    }
}

impl SecretSource {
    /// Reads the secret. Relative files are taken from `config_dir`. A trailing newline in a
    /// file is dropped (editors add one).
    pub fn resolve(&self, config_dir: &Path) -> Result<Secret, String> {
        self.resolve_with(config_dir, &|name| std::env::var(name).ok())
    }

    /// [`SecretSource::resolve`] with the environment given, so checks and tests can run on a
    /// snapshot instead of the process environment. Error messages name the variable or the
    /// file, never the value.
    pub fn resolve_with(
        &self,
        config_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, String> {
        match self {
            SecretSource::Inline(v) => Ok(Secret(v.clone())),
            SecretSource::Env { env: name } => env(name)
                .map(Secret)
                .ok_or_else(|| format!("environment variable {name} is not set")),
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

    fn source(toml_value: &str) -> Result<SecretSource, String> {
        toml::from_str::<toml::Table>(&format!("p = {toml_value}")).unwrap()["p"]
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())
    }

    #[test]
    fn secrets_never_print_their_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        let src = source("\"hunter2\"").unwrap();
        assert!(!format!("{src:?}").contains("hunter2"));
    }

    #[test]
    fn the_three_forms_parse_and_a_wrong_one_says_what_to_write() {
        assert_eq!(source("\"x\"").unwrap(), SecretSource::Inline("x".into()));
        assert_eq!(
            source("{ env = \"SMTP_PASSWORD\" }").unwrap(),
            SecretSource::Env {
                env: "SMTP_PASSWORD".into()
            }
        );
        assert_eq!(
            source("{ file = \"/run/secrets/smtp\" }").unwrap(),
            SecretSource::File {
                file: "/run/secrets/smtp".into()
            }
        );
        assert_eq!(
            source("{ path = \"x\" }").unwrap_err(),
            "unknown field `path`, expected `env` or `file`"
        );
        assert_eq!(
            source("42").unwrap_err(),
            r#"invalid type: integer `42`, expected a string, { env = "VARIABLE" } or { file = "PATH" }"#
        );
    }

    #[test]
    fn resolving_names_the_source_never_the_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("smtp"), "s3cret-from-file\n").unwrap();
        let env = |name: &str| (name == "SMTP_PASSWORD").then(|| "s3cret-from-env".to_string());

        let file = SecretSource::File {
            file: "smtp".into(),
        };
        assert_eq!(
            file.resolve_with(dir.path(), &env).unwrap().expose(),
            "s3cret-from-file"
        );
        let var = SecretSource::Env {
            env: "SMTP_PASSWORD".into(),
        };
        assert_eq!(
            var.resolve_with(dir.path(), &env).unwrap().expose(),
            "s3cret-from-env"
        );

        let unset = SecretSource::Env {
            env: "SMS_KEY".into(),
        };
        assert_eq!(
            unset.resolve_with(dir.path(), &env).unwrap_err(),
            "environment variable SMS_KEY is not set"
        );
        let missing = SecretSource::File {
            file: "nope".into(),
        };
        let err = missing.resolve_with(dir.path(), &env).unwrap_err();
        assert!(err.starts_with("cannot read secret file "), "{err}");
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn collect_sees_every_secret_deserialised() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Smtp {
            user: String,
            password: SecretSource,
            api_key: SecretSource,
        }
        let (parsed, seen) = collect(|| {
            toml::from_str::<Smtp>(
                "user = 'u'\npassword = { env = 'P' }\napi_key = { file = 'k' }\n",
            )
        });
        assert!(parsed.is_ok());
        assert_eq!(seen.len(), 2);
        // Outside `collect` nothing is recorded (and nothing leaks into the next collect).
        let _: Smtp = toml::from_str("user = 'u'\npassword = 'a'\napi_key = 'b'\n").unwrap();
        let ((), seen) = collect(|| ());
        assert!(seen.is_empty());
    }
}
