//! The checks `wuyed run` makes after loading the configuration, made by `wuyed check` too, so a
//! deploy script finds them before the daemon is restarted rather than in its journal:
//!
//! - the data directory can be created or written (`run` creates it and the database in it,
//!   and the plugin cache under it), and a database there is not from a newer wuye (`run`
//!   refuses it);
//! - the delivery channels can be built (`run` builds them before it schedules anything): SMTP
//!   credentials go together, `ca_file` is readable PEM, each SMS provider has what it needs;
//! - plugin limits are within the hard ceilings and each community only lowers them (`run`
//!   finds out at each run, which then fails);
//! - the HTTP address can be listened on.
//!
//! Each reuses what `run` calls where that has no lasting effect (`Channels::from_settings`,
//! `Limits::resolve`, `store::refuse_newer`); the API tokens are checked with the rest of the
//! configuration. Nothing is created: the data directory is probed with a temporary file.

use std::path::{Path, PathBuf};

use crate::config::{self, ConfigError, Settings};

/// Every problem found, located in the file whose setting is at fault.
pub fn check(settings: &Settings) -> Vec<ConfigError> {
    let mut f = Vec::new();
    let daemon_file = settings.dir.join(config::DAEMON_FILE);
    let daemon_text = std::fs::read_to_string(&daemon_file).unwrap_or_default();
    let at = |key: &str, message: String| ConfigError {
        file: daemon_file.clone(),
        key: key.to_string(),
        line: config::line_of(&daemon_text, key),
        message,
    };
    if let Err(message) = data_dir(&settings.data_dir) {
        f.push(at("daemon.data_dir", message));
    }
    if let Err(e) = crate::deliver::Channels::from_settings(settings) {
        // The message starts with the key (`delivery.email.smtp: ca_file: cannot read ...`).
        f.push(at("", format!("{e:#}")));
    }
    limits(settings, &at, &mut f);
    listen(&settings.daemon.http.listen, &at, &mut f);
    f
}

/// The data directory `run` creates (`Store::open_in`), and its database if there is one.
fn data_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    // The nearest directory that exists is where something must be written.
    let mut existing: PathBuf = dir.to_path_buf();
    while !existing.exists() {
        match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => existing = p.to_path_buf(),
            _ => {
                existing = PathBuf::from(".");
                break;
            }
        }
    }
    if !existing.is_dir() {
        return Err(format!(
            "{shown}: {} is not a directory",
            existing.display()
        ));
    }
    if let Err(e) = tempfile::Builder::new()
        .prefix(".wuyed-check")
        .tempfile_in(&existing)
    {
        let what = if existing == dir {
            "cannot write in it".to_string()
        } else {
            format!("cannot be created: cannot write in {}", existing.display())
        };
        return Err(format!(
            "{shown} {what} ({e}); the daemon keeps its database there: make it writable by \
             the user wuyed runs as"
        ));
    }
    let db = dir.join(crate::store::DB_FILE);
    if db.exists() {
        let version = rusqlite::Connection::open_with_flags(
            &db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0)))
        .map_err(|e| format!("cannot read the database {}: {e}", db.display()))?;
        crate::store::refuse_newer(version, &db).map_err(|e| format!("{e:#}"))?;
    }
    Ok(())
}

/// `[plugins]` against the hard ceilings, and each community's `[limits]` against `[plugins]`.
fn limits(settings: &Settings, at: &dyn Fn(&str, String) -> ConfigError, f: &mut Vec<ConfigError>) {
    use crate::plugin::Limits;
    let plugins = &settings.daemon.plugins;
    if let Err(messages) = Limits::resolve(plugins, None) {
        for m in messages {
            f.push(at(key_of(&m), m.clone()));
        }
        // Each community's limits are measured against these: they are what to fix first.
        return;
    }
    for c in &settings.communities {
        if let Err(messages) = Limits::resolve(plugins, c.limits.as_ref()) {
            let text = std::fs::read_to_string(&c.file).unwrap_or_default();
            for m in messages {
                f.push(ConfigError {
                    file: c.file.clone(),
                    key: key_of(&m).to_string(),
                    line: config::line_of(&text, key_of(&m)),
                    message: m.clone(),
                });
            }
        }
    }
}

/// `plugins.memory_mib = 900 is above ...` → `plugins.memory_mib`.
fn key_of(message: &str) -> &str {
    message.split(' ').next().unwrap_or_default()
}

/// `[http] listen`: `run` fails to start when it cannot listen there (an address not of this
/// machine, a port it may not open). An address in use passes: it is most often the running
/// daemon, checked before a reload, and a warning there would fail every `--deny-warnings`.
fn listen(listen: &str, at: &dyn Fn(&str, String) -> ConfigError, f: &mut Vec<ConfigError>) {
    let listen = listen.trim();
    if listen.is_empty() {
        return;
    }
    match std::net::TcpListener::bind(listen) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
        Err(e) => f.push(at("http.listen", format!("cannot listen on {listen}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_under_a_file_cannot_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "").unwrap();
        let e = data_dir(&file.join("data")).unwrap_err();
        assert!(e.ends_with("plain is not a directory"), "{e}");
        // One that does not exist yet under a writable directory is fine, and is not created.
        data_dir(&dir.path().join("new/data")).unwrap();
        assert!(!dir.path().join("new").exists());
    }

    #[test]
    fn a_database_from_a_newer_wuye_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join(crate::store::DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", crate::store::LATEST_VERSION + 1)
            .unwrap();
        drop(conn);
        let e = data_dir(dir.path()).unwrap_err();
        assert!(e.contains("written by a newer wuye"), "{e}");
    }

    #[test]
    fn an_address_in_use_passes_and_one_not_of_this_machine_is_an_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let at = |key: &str, message: String| ConfigError {
            file: PathBuf::from("wuyed.toml"),
            key: key.to_string(),
            line: None,
            message,
        };
        let mut f = Vec::new();
        listen(&addr, &at, &mut f);
        assert_eq!(f, vec![]);
        // TEST-NET-1: not an address of this machine.
        listen("192.0.2.1:8760", &at, &mut f);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].message.starts_with("cannot listen on 192.0.2.1:8760"));
    }
}
