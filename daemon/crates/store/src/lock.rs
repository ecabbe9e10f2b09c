//! Write transactions: the lock taken up front, and waited for as long as the caller can wait.
//!
//! Why `BEGIN IMMEDIATE` for every write: a deferred transaction takes the write lock only at
//! its first write. If another connection committed since the transaction's first read, SQLite
//! cannot let it write on a stale snapshot and fails at once with "database is locked", whatever
//! the busy timeout, so a dispatcher round or an API call could fail for nothing more than
//! bad timing. Taking the lock at `BEGIN` turns every conflict into a wait there.
//!
//! Why retry beyond SQLite's busy timeout: another process may hold the lock for long (a large
//! `wuyed import`, a `sqlite3` session left inside a transaction, a backup tool). The daemon's
//! background work (the dispatcher, the scheduler, event routing) has nobody to report a failure
//! to and nothing better to do than wait, so it waits as long as the lock is held and says so
//! once per episode; failing instead used to leave a run `running` or a batch unrecorded. A
//! command someone typed, or an API request, waits a bounded time and then says who is in the
//! way and what to do.
//!
//! `COMMIT` is retried too: SQLite documents that a `COMMIT` failing with `SQLITE_BUSY` leaves
//! the transaction open and may be retried, so the work done in it is neither lost nor redone.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use super::Tx;

/// How long a write waits for a lock another connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// The daemon's background work: as long as the lock is held.
    Forever,
    /// A command or a request: about this long, then an error naming the database and what to do.
    Bounded(Duration),
}

impl Patience {
    /// What an interactive command or an API request waits: long enough for the daemon's
    /// longest ordinary transaction (a large run's commit), short enough for a person waiting.
    pub const INTERACTIVE: Patience = Patience::Bounded(Duration::from_secs(30));
}

/// First pause between two attempts after SQLite's own busy wait gave up; doubles up to
/// [`MAX_PAUSE`]. SQLite's busy handler already waited its timeout inside each attempt.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Whether `err` means another connection holds a lock (`SQLITE_BUSY`, `SQLITE_LOCKED`), which
/// waiting cures.
pub fn is_lock_conflict(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Whether anything in `err`'s chain is a lock conflict (see [`is_lock_conflict`]).
pub fn is_lock_conflict_any(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<rusqlite::Error>())
        .any(is_lock_conflict)
}

/// Whether anything in `err`'s chain says the database could not grow: SQLite's `SQLITE_FULL`
/// ("database or disk is full"), or the file system's "No space left on device" underneath.
/// Waiting does not cure it by itself; someone must free space, so callers say that.
pub fn is_disk_full(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<rusqlite::Error>()
            .is_some_and(|e| e.sqlite_error_code() == Some(ErrorCode::DiskFull))
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::StorageFull)
    })
}

/// Runs `f` in an immediate transaction on `conn` and commits it, waiting for the write lock
/// (at `BEGIN` and at `COMMIT`) with `patience`. `f` runs once: on its error everything it
/// wrote is rolled back and the error returned.
pub fn write<T, E: From<rusqlite::Error>>(
    conn: &mut Connection,
    patience: Patience,
    f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let conn: &Connection = conn;
    let mut wait = Wait::new(conn, patience);
    let begin = || Transaction::new_unchecked(conn, TransactionBehavior::Immediate);
    let tx = match begin() {
        Ok(tx) => tx,
        // The slow path only: waiting, it may block this thread for long (see `Wait::retry`).
        Err(e) if is_lock_conflict(&e) => {
            wait.note(e)?;
            wait.retry(begin)?
        }
        Err(e) => return Err(e.into()),
    };
    let tx = Tx(tx);
    let value = f(&tx)?;
    let commit = || tx.0.execute_batch("COMMIT");
    match commit() {
        Ok(()) => {}
        Err(e) if is_lock_conflict(&e) => {
            wait.note(e)?;
            // On giving up, dropping `tx` rolls the open transaction back.
            wait.retry(commit)?;
        }
        Err(e) => return Err(e.into()),
    }
    // Committed: the connection is in autocommit again, and dropping `tx` does nothing.
    drop(tx);
    wait.done();
    Ok(value)
}

/// One lock episode of one transaction: when it started, whether it was reported.
struct Wait<'a> {
    db: &'a str,
    patience: Patience,
    started: Instant,
    pause: Duration,
    warned: bool,
}

impl<'a> Wait<'a> {
    fn new(conn: &'a Connection, patience: Patience) -> Wait<'a> {
        Wait {
            db: conn.path().filter(|p| !p.is_empty()).unwrap_or(":memory:"),
            patience,
            started: Instant::now(),
            pause: FIRST_PAUSE,
            warned: false,
        }
    }

    /// After an attempt met a lock: gives up (with an error saying what to do) once patience
    /// ran out, otherwise warns (once) and pauses before the next attempt.
    fn note(&mut self, err: rusqlite::Error) -> Result<(), rusqlite::Error> {
        let waited = self.started.elapsed();
        if let Patience::Bounded(limit) = self.patience
            && waited >= limit
        {
            return Err(held_elsewhere(Path::new(self.db), waited, &err));
        }
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                db = %self.db,
                waited_s = waited.as_secs(),
                "another process holds the database's write lock; waiting for it"
            );
        }
        std::thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        Ok(())
    }

    /// Retries `attempt` until it succeeds, fails otherwise than on a lock, or patience runs
    /// out. Waiting may block this thread for as long as the lock is held: on a multi-threaded
    /// runtime the worker first hands its other tasks to another thread, so the API and the
    /// dispatcher go on meanwhile.
    fn retry<T>(
        &mut self,
        mut attempt: impl FnMut() -> rusqlite::Result<T>,
    ) -> Result<T, rusqlite::Error> {
        wuye_core::blocking::may_block(|| {
            loop {
                match attempt() {
                    Ok(v) => return Ok(v),
                    Err(e) if is_lock_conflict(&e) => self.note(e)?,
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn done(self) {
        if self.warned {
            tracing::info!(
                db = %self.db,
                waited_s = self.started.elapsed().as_secs(),
                "got the database's write lock"
            );
        }
    }
}

/// The error of a bounded wait that ran out: keeps SQLite's code (busy, so callers map it to
/// "try again later", exit 75 or HTTP 503) with a message for the person who has to act.
fn held_elsewhere(db: &Path, waited: Duration, err: &rusqlite::Error) -> rusqlite::Error {
    let code = match err {
        rusqlite::Error::SqliteFailure(e, _) => *e,
        _ => rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
    };
    rusqlite::Error::SqliteFailure(
        code,
        Some(format!(
            "another process holds the write lock on database {} (waited {} s): try again when \
             it is done. A long `wuyed import` or backup finishes by itself; a `sqlite3` shell \
             left inside a transaction must COMMIT or quit (`fuser {}` lists who has the file \
             open)",
            db.display(),
            waited.as_secs(),
            db.display()
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second connection on `path` inside `BEGIN IMMEDIATE`, as another process would hold it.
    fn hold_lock(path: &Path) -> Connection {
        let other = Connection::open(path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        other
    }

    fn db() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wuye.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.busy_timeout(Duration::from_millis(100)).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        (dir, path, conn)
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_bounded_wait_gives_up_with_an_error_that_says_what_to_do_and_writes_nothing() {
        let (_dir, path, mut conn) = db();
        let _held = hold_lock(&path);
        let started = Instant::now();
        let err = write(
            &mut conn,
            Patience::Bounded(Duration::from_millis(300)),
            |tx| -> rusqlite::Result<()> {
                tx.conn().execute("INSERT INTO t VALUES (1)", [])?;
                Ok(())
            },
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("another process holds the write lock on database")
                && text.contains(&path.display().to_string())
                && text.contains("try again"),
            "{text}"
        );
        assert!(is_lock_conflict(&err), "keeps SQLite's busy code: {err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "gave up late: {:?}",
            started.elapsed()
        );
        assert_eq!(count(&conn), 0);
    }

    #[test]
    fn a_patient_write_waits_until_the_lock_is_released_and_commits_once() {
        let (_dir, path, mut conn) = db();
        let held = hold_lock(&path);
        let release = std::thread::spawn(move || {
            // Longer than the connection's busy timeout several times over.
            std::thread::sleep(Duration::from_millis(800));
            held.execute_batch("COMMIT").unwrap();
        });
        let mut runs = 0;
        write(&mut conn, Patience::Forever, |tx| -> rusqlite::Result<()> {
            runs += 1;
            tx.conn().execute("INSERT INTO t VALUES (1)", [])?;
            Ok(())
        })
        .unwrap();
        release.join().unwrap();
        assert_eq!(runs, 1, "the body runs once, after the lock was taken");
        assert_eq!(count(&conn), 1);
    }

    #[test]
    fn a_commit_that_meets_a_reader_holding_the_old_snapshot_is_retried_not_lost() {
        // Rollback-journal mode: COMMIT needs every reader gone, so a reader makes it busy
        // (in WAL mode COMMIT never waits, but the retry must hold in both).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wuye.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.busy_timeout(Duration::from_millis(50)).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (0)")
            .unwrap();
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN; SELECT * FROM t").unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            reader.execute_batch("COMMIT").unwrap();
        });
        let mut commit_waited = false;
        write(&mut conn, Patience::Forever, |tx| -> rusqlite::Result<()> {
            // Enough rows to spill past the page cache is not needed: COMMIT takes the
            // exclusive lock, which the reader's shared lock blocks.
            tx.conn().execute("INSERT INTO t VALUES (1)", [])?;
            commit_waited = true;
            Ok(())
        })
        .unwrap();
        release.join().unwrap();
        assert!(commit_waited);
        assert_eq!(count(&conn), 2);
    }

    #[test]
    fn an_error_in_the_body_rolls_back_and_is_returned_as_is() {
        let (_dir, _path, mut conn) = db();
        let err = write(&mut conn, Patience::Forever, |tx| -> anyhow::Result<()> {
            tx.conn().execute("INSERT INTO t VALUES (1)", [])?;
            anyhow::bail!("the import found a bad row")
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "the import found a bad row");
        assert_eq!(count(&conn), 0);
        assert!(conn.is_autocommit());
    }
}
