//! A consistent copy of the live database, for `wuyed backup`.
//!
//! Copying `wuye.db` with `cp` while the daemon runs is not a backup: the last commits live in
//! `wuye.db-wal` until a checkpoint, and a copy taken mid-checkpoint can be torn. SQLite's online
//! backup API instead copies every page as of one read transaction. It is taken in a single step:
//! done in small steps, the copy restarts whenever another connection commits, and a busy
//! daemon could keep it restarting forever. In WAL mode that read transaction blocks no writer,
//! so the daemon keeps running (and sending) throughout.
//!
//! The copy is written to a temporary file beside the target, checked with `PRAGMA
//! integrity_check`, synced, and only then renamed into place: a failed or interrupted backup
//! never leaves a half-written file under the name an administrator will later restore from.
//! It is a single self-contained file (journal mode DELETE: no `-wal` beside it), mode 0600.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use wuye_core::exit::Coded;

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub schema_version: u32,
    /// Owners, bills and outbox messages in the copy, as a sign the data is there.
    pub owners: i64,
    pub bills: i64,
    pub messages: i64,
}

/// How often, and how long apart, a step that found the source locked is tried again. A lock
/// here means a checkpoint or a schema change in progress, both brief.
const LOCKED_RETRIES: u32 = 50;
const LOCKED_PAUSE: Duration = Duration::from_millis(100);

/// Copies the database at `source` to `target`. An existing `target` is replaced only with
/// `overwrite`; otherwise it is refused (exit 74): the administrator chose that name.
pub fn backup(source: &Path, target: &Path, overwrite: bool) -> anyhow::Result<BackupReport> {
    if !source.is_file() {
        return Err(Coded::config(anyhow::anyhow!(
            "no database at {}: check daemon.data_dir in the configuration (nothing was written)",
            source.display()
        ))
        .into());
    }
    if target.exists() && !overwrite {
        return Err(Coded::new(
            wuye_core::exit::IOERR,
            anyhow::anyhow!(
                "{} already exists: choose another name, or pass --force to replace it",
                target.display()
            ),
        )
        .into());
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .with_context(|| format!("{} names no file", target.display()))?;
    let partial = dir.join(format!(".{}.partial", name.to_string_lossy()));
    // A leftover from an interrupted backup is ours to replace.
    let _ = std::fs::remove_file(&partial);
    let written = copy_into(source, &partial).and_then(|report| {
        std::fs::rename(&partial, target)
            .with_context(|| format!("cannot move the copy to {}", target.display()))?;
        // The rename itself must survive a power cut, or the backup may vanish.
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).ok();
        Ok(report)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let report = written?;
    Ok(BackupReport {
        path: target.to_path_buf(),
        bytes: std::fs::metadata(target)?.len(),
        ..report
    })
}

fn copy_into(source: &Path, partial: &Path) -> anyhow::Result<BackupReport> {
    // Read-write without create: a reader of a WAL database needs its shared-memory file, and
    // the source must exist. Nothing is written to it.
    let from = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open database {}", source.display()))
    .map_err(Coded::temporary)?;
    from.busy_timeout(Duration::from_secs(10))?;

    wuye_core::privacy::private_file()
        .write(true)
        .create_new(true)
        .open(partial)
        .with_context(|| format!("cannot create {}", partial.display()))
        .map_err(|e| Coded::new(wuye_core::exit::IOERR, e))?;
    let mut to =
        Connection::open(partial).with_context(|| format!("cannot open {}", partial.display()))?;
    {
        let backup = Backup::new(&from, &mut to)?;
        let mut tries = 0;
        loop {
            // -1: every page in one step, as of one read transaction (see the module doc).
            match backup
                .step(-1)
                .with_context(|| format!("copying {}", source.display()))?
            {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked if tries < LOCKED_RETRIES => {
                    tries += 1;
                    std::thread::sleep(LOCKED_PAUSE);
                }
                _ => {
                    return Err(Coded::temporary(anyhow::anyhow!(
                        "database {} stayed locked for {}s; try again",
                        source.display(),
                        (LOCKED_PAUSE * LOCKED_RETRIES).as_secs()
                    ))
                    .into());
                }
            }
        }
    }
    // The copy carries the source's WAL flag; a backup file must stand alone.
    to.pragma_update(None, "journal_mode", "DELETE")?;
    let problems: Vec<String> = to
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if problems != ["ok"] {
        anyhow::bail!(
            "the copy of {} failed its integrity check, so it was not kept: {}",
            source.display(),
            problems.join("; ")
        );
    }
    let count = |table: &str| -> rusqlite::Result<i64> {
        to.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
    };
    let report = BackupReport {
        path: partial.to_path_buf(),
        bytes: 0,
        schema_version: to.pragma_query_value(None, "user_version", |r| r.get(0))?,
        owners: count("owners")?,
        bills: count("bills")?,
        messages: count("outbox")?,
    };
    drop(to);
    std::fs::File::open(partial)?.sync_all()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::Store;

    fn audit_rows(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn copies_committed_rows_still_in_the_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(&dir.path().join("data")).unwrap();
        for i in 0..10 {
            store
                .write(|tx| {
                    tx.audit(chrono::Utc::now(), None, "c", "w", "test", &format!("{i}"))?;
                    Ok(())
                })
                .unwrap();
        }
        let target = dir.path().join("copy.db");
        let report = backup(store.path(), &target, false).unwrap();
        assert_eq!(audit_rows(&target), 10);
        assert_eq!(report.schema_version, crate::LATEST_VERSION);
        assert_eq!(report.bytes, std::fs::metadata(&target).unwrap().len());
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Stands alone: no write-ahead log beside it, journal mode DELETE.
        assert!(!dir.path().join("copy.db-wal").exists());
        let journal: String = Connection::open(&target)
            .unwrap()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "delete");
    }

    #[test]
    fn an_existing_file_is_kept_unless_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(&dir.path().join("data")).unwrap();
        let target = dir.path().join("copy.db");
        std::fs::write(&target, b"keep me").unwrap();
        let err = backup(store.path(), &target, false).unwrap_err();
        assert!(format!("{err:#}").contains("--force"), "{err:#}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        backup(store.path(), &target, true).unwrap();
        assert_eq!(audit_rows(&target), 0);
        // No partial file left behind either way.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_missing_database_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("copy.db");
        let err = backup(&dir.path().join("nope.db"), &target, false).unwrap_err();
        assert!(format!("{err:#}").contains("data_dir"), "{err:#}");
        assert!(!target.exists());
    }
}
