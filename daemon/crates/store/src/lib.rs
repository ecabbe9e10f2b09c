//! The only place that writes SQL.
//!
//! One SQLite file, `<data_dir>/wuye.db`, holds everything the daemon must not forget across a
//! crash: which schedule slots were planned (so a restart never plans one twice), which runs are
//! done, durable timers, the audit trail, and (from other subsystems) owners, outbox and plugin
//! state. Every write goes through a transaction; a run's effects are applied through [`Tx`] in
//! the very transaction that marks the run done, so they commit together or not at all.
//!
//! Each subsystem keeps its SQL in its own file here (`runs.rs`, `outbox.rs`, ...) as
//! `impl Tx<'_>` (or `impl Store`) methods, and its schema as a numbered migration in
//! `migrations/`. Above this crate, `rusqlite` shows where a caller brings its own connection
//! ([`Tx::begin`]: the dispatcher, the API, tests, fuzz targets), in the error types those
//! callers see, and in the daemon's wiring, which reads a plugin's foreign-id check and domain
//! rows inside a run's own transaction ([`Tx::conn`]). The SQL itself stays here.
//!
//! The interface is deliberately narrow (plan slots, claim a run, complete it with effects, fail
//! it, timers, audit) so a PostgreSQL backend can be added beside this one: there, `claim` becomes
//! `SELECT ... FOR UPDATE SKIP LOCKED` and slot planning is done by the holder of an advisory-lock
//! lease; callers do not change.

pub mod backup;
pub mod lock;
pub mod message;
mod migrations;
pub mod outbox;
pub mod plugin_kv;
pub mod runs;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

pub use lock::{Patience, is_disk_full};
pub use migrations::{LATEST_VERSION, refuse_newer};
pub use runs::{PlanOutcome, PlannedSlot, RunRow, RunState, SlotPlan, WorkflowPlan};

use wuye_core::exit::Coded;

/// File name of the database inside `daemon.data_dir`.
pub const DB_FILE: &str = "wuye.db";

/// How long SQLite itself waits for another connection's lock before an attempt fails with
/// "database is locked": long enough to ride out a checkpoint or the other daemon's commit.
/// Writes then go on retrying as their [`Patience`] allows (store/lock.rs).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on the database. Cheap to share behind an `Arc`; one connection, used by one caller
/// at a time (SQLite serialises writers anyway). Two handles on the same file, in one process or
/// two, are safe: every decision that matters is guarded by a UNIQUE constraint or a conditional
/// UPDATE inside an immediate transaction.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// How long writes wait for another process's lock: bounded for commands, forever for the
    /// daemon ([`Store::waiting_while_locked`]).
    patience: Patience,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

pub mod domain;
pub mod report;

/// One database transaction. Effects of a run are applied through it, in the same transaction
/// that marks the run done, so they commit together or not at all.
pub struct Tx<'a>(pub(crate) rusqlite::Transaction<'a>);

impl<'c> Tx<'c> {
    /// A deferred transaction on a connection of the caller's own: tests, and the fuzz
    /// targets, which copy an in-memory database per input instead of opening a file. The
    /// daemon's own transactions come from [`Store::write`] and [`Store::read`], which add the
    /// lock handling.
    pub fn begin(conn: &'c mut Connection) -> rusqlite::Result<Tx<'c>> {
        Ok(Tx(conn.transaction()?))
    }

    /// Commits a transaction made with [`Tx::begin`].
    pub fn commit(self) -> rusqlite::Result<()> {
        self.0.commit()
    }

    /// The underlying connection: for SQL kept in this crate's other files, and for the daemon's
    /// wiring, which reads domain rows inside a run's own transaction.
    pub fn conn(&self) -> &Connection {
        &self.0
    }
}

/// Settings for a connection to a throwaway copy (see [`Store::for_throwaway_copy`]):
/// - no fsync at commit;
/// - the write-ahead log folded back into the database every 10,000 pages instead of 1,000:
///   each checkpoint copies every page written since the last one, and a simulated year
///   rewrites the same few pages (the outbox's index, the runs) at every commit. The log, at
///   most about 40 MiB, lives with the copy in memory;
/// - no memory map: a connection that sees another's commit drops its map of the file whole,
///   and a simulation's three connections commit in turn all year. Unmapping stops every
///   thread of the process (TLB shootdown), parts simulated side by side included.
pub fn throwaway(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    conn.query_row("PRAGMA mmap_size = 0", [], |_| Ok(()))?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/wuye.db` and brings its schema up to date.
    pub fn open_in(data_dir: &Path) -> anyhow::Result<Store> {
        Store::open(&data_dir.join(DB_FILE))
    }

    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    ///
    /// A database whose schema is newer than this binary knows is refused and left untouched
    /// (exit 78: running an older binary on it is a deployment mistake to fix, not to retry). A
    /// database held locked by someone else, or a file that cannot be opened, is a temporary
    /// failure (exit 75).
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        create_private(path).map_err(Coded::temporary)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Coded::temporary(anyhow::Error::new(e)))
        .with_context(|| format!("cannot open database {}", path.display()))?;
        configure(&conn)
            .map_err(|e| coded_sqlite(e, path))
            .with_context(|| format!("cannot configure database {}", path.display()))?;
        migrations::migrate(&conn, path)?;
        Ok(Store {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            patience: Patience::INTERACTIVE,
        })
    }

    /// Makes writes wait for another process's lock as long as it is held, instead of failing
    /// after [`Patience::INTERACTIVE`]: for the daemon, whose runs, timers and event routing
    /// have nobody to hand an error to (store/lock.rs).
    pub fn waiting_while_locked(mut self) -> Store {
        self.patience = Patience::Forever;
        self
    }

    /// Sets how long writes wait for another connection's lock.
    pub fn with_patience(mut self, patience: Patience) -> Store {
        self.patience = patience;
        self
    }

    /// Where the database lives.
    /// Writes a consistent copy of the database to `to` (which must not exist), for
    /// `wuyed simulate`: it runs on the copy and never touches the real store.
    pub fn snapshot_to(&self, to: &Path) -> anyhow::Result<()> {
        let conn = self.lock();
        conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])
            .with_context(|| format!("cannot copy the database to {}", to.display()))?;
        Ok(())
    }

    /// Gives up durability for speed on a throwaway copy (`wuyed simulate`'s snapshot): no fsync
    /// at commit, rarer checkpoints, no memory map (`throwaway`). A simulated year commits
    /// every run, and nothing on the copy has to survive a power loss. Never call it on the
    /// real store.
    pub fn for_throwaway_copy(self) -> anyhow::Result<Store> {
        throwaway(&self.lock())?;
        Ok(self)
    }

    /// On a throwaway copy simulating only `keep` (`wuyed simulate`'s parts): drops the other
    /// communities' waiting messages and pending timers, which this copy's dispatcher and
    /// scheduler would otherwise work (and defer, and mark missed) all along the simulated span
    /// while another copy does them for real. Never call it on the real store.
    pub fn forget_pending_work_except(&self, keep: &[&str]) -> anyhow::Result<()> {
        let keep = serde_json::to_string(keep)?;
        self.write(|tx| {
            let conn = tx.conn();
            conn.execute(
                &format!(
                    "DELETE FROM outbox WHERE {} \
                     AND community NOT IN (SELECT value FROM json_each(?1))",
                    outbox::WAITING
                ),
                [&keep],
            )?;
            conn.execute(
                "UPDATE timers SET state = 'cancelled' WHERE state = 'pending'
                 AND community NOT IN (SELECT value FROM json_each(?1))",
                [&keep],
            )?;
            Ok(())
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> anyhow::Result<u32> {
        let conn = self.lock();
        Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection cannot leave a half-written transaction behind
        // (rusqlite rolls back on drop), so a poisoned lock is still a usable connection.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in an immediate (write-locking) transaction and commits if it returns `Ok`;
    /// otherwise everything `f` wrote is rolled back. Subsystems use this for writes that do not
    /// belong to a run. Another process's lock is waited for as the store's [`Patience`] says;
    /// running out of it is a temporary failure (exit 75).
    pub fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut conn = self.lock();
        lock::write(&mut conn, self.patience, |tx| f(tx).map_err(Failed::Body))
            .map_err(|e| e.coded(&self.path))
    }

    /// Runs `f` in a read transaction (a consistent snapshot); nothing it does is committed.
    pub fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut conn = self.lock();
        let tx = Tx(conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(|e| coded_sqlite(e, &self.path))?);
        f(&tx)
    }
}

/// Creates the database file at `path` readable by its owner only (0600), in a data directory
/// only its owner may enter (0700, for folders created here), unless the file already exists.
///
/// The file holds owners' names, phone numbers and bills (PIPL): it must not be world-readable
/// whatever the umask. SQLite gives the `-wal`, `-shm` and `-journal` files it creates beside
/// the database the database file's own permissions, so creating this one right is enough.
/// Every opener of the file (the store, the outbox's and the domain's own connections) calls
/// this first, as any of them may be the first to touch a new data directory.
pub(crate) fn create_private(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        wuye_core::privacy::create_private_dir(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    }
    match wuye_core::privacy::private_file()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("cannot create database file {}", path.display()))),
    }
}

/// Connection settings every handle needs, applied before anything else touches the file.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers (`wuyed outbox`, reports, a test peeking at the file) never block the daemon's
    // writes, and commits are a single append.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL, not NORMAL: in WAL mode NORMAL skips the fsync at commit, so after a power loss a run
    // we already reported done (and whose messages the dispatcher may already have sent) can roll
    // back and be run again. One fsync per commit is cheap at our write rate.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    tune_cache(conn)
}

/// Page cache and memory map of every connection. A daily run of a large community reads tens
/// of megabytes (100,000 households, their owners and bills): with SQLite's default 2 MiB cache
/// each page came through a `read` syscall and a copy, a quarter of such a run's time. The map
/// is address space, not memory: the kernel's page cache backs it, shared by all connections.
pub(crate) fn tune_cache(conn: &Connection) -> rusqlite::Result<()> {
    // Negative: KiB, so 16 MiB whatever the page size.
    conn.pragma_update(None, "cache_size", -16 * 1024)?;
    // The daemon's statements are a fixed set run again and again (a claim, a run's completion,
    // an outbox row): parsed once each, not once per call. rusqlite keeps 16 by default, fewer
    // than the hot ones, and a miss re-parses.
    conn.set_prepared_statement_cache_capacity(256);
    // Plans must not depend on the values bound: SQLite (built with STAT4, as rusqlite bundles
    // it) otherwise marks a statement whose plan looked at a parameter, and re-parses it each
    // time that parameter changes. `now` changes at every call, so the dispatcher's and the
    // scheduler's cached queries were parsed afresh every time. No query here relies on a bound
    // value to pick its index: the partial indexes are matched by literal terms.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // Up to 1 GiB of the file mapped; SQLite falls back to reads beyond it or where mmap is
    // unavailable. `pragma_update` would fail here: the pragma answers with a row.
    conn.query_row("PRAGMA mmap_size = 1073741824", [], |_| Ok(()))?;
    Ok(())
}

/// Why a write transaction failed: its body's own error, or the database (begin, commit).
enum Failed {
    Body(anyhow::Error),
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for Failed {
    fn from(e: rusqlite::Error) -> Self {
        Failed::Db(e)
    }
}

impl Failed {
    /// The body's error as it was; the database's with its exit code (see [`coded_sqlite`]).
    fn coded(self, path: &Path) -> anyhow::Error {
        match self {
            Failed::Body(e) => e,
            Failed::Db(e) => coded_sqlite(e, path),
        }
    }
}

/// Maps SQLite's "someone else holds the lock" and "cannot open" to exit 75 (try again later).
fn coded_sqlite(err: rusqlite::Error, path: &Path) -> anyhow::Error {
    let temporary = matches!(
        err.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
        )
    );
    let err = anyhow::Error::new(err).context(format!("database {}", path.display()));
    if temporary {
        Coded::temporary(err).into()
    } else {
        err
    }
}

/// Instants are stored as RFC 3339 UTC text with fixed millisecond precision
/// (`2026-11-22T00:00:00.000Z`): readable in `sqlite3`, and text order equals time order, so
/// `ORDER BY` and `<=` on the column are correct.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses what [`ts`] wrote.
pub(crate) fn parse_ts(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_creates_and_migrates_to_the_latest_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(&dir.path().join("data")).unwrap();
        assert_eq!(store.schema_version().unwrap(), LATEST_VERSION);
        assert!(dir.path().join("data").join(DB_FILE).exists());
        let conn = store.lock();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous must be FULL");
    }

    #[test]
    fn a_new_database_and_its_folders_are_private_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("srv").join("data");
        let store = Store::open_in(&data).unwrap();
        store
            .write(|tx| {
                tx.audit(DateTime::UNIX_EPOCH, None, "c", "w", "test", "x")?;
                Ok(())
            })
            .unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&dir.path().join("srv")), 0o700);
        assert_eq!(mode(store.path()), 0o600);
        // SQLite's own files follow the database's mode.
        assert_eq!(mode(&data.join("wuye.db-wal")), 0o600);
        assert_eq!(mode(&data.join("wuye.db-shm")), 0o600);
        // A folder that already exists keeps the mode its administrator chose.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750)).unwrap();
        drop(Store::open_in(&shared).unwrap());
        assert_eq!(mode(&shared), 0o750);
        assert_eq!(mode(&shared.join(DB_FILE)), 0o600);
    }

    #[test]
    fn reopening_is_a_no_op_and_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let store = Store::open(&path).unwrap();
            store
                .write(|tx| {
                    tx.audit(DateTime::UNIX_EPOCH, None, "c", "w", "test", "kept")?;
                    Ok(())
                })
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let n: i64 = store
            .read(|tx| {
                Ok(tx
                    .conn()
                    .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_database_from_a_newer_wuye_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        drop(Store::open(&path).unwrap());
        let future = LATEST_VERSION + 7;
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", future).unwrap();
            conn.execute_batch("CREATE TABLE from_the_future (x)")
                .unwrap();
        }
        let err = Store::open(&path).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains(&format!("schema version {future}"))
                && text.contains(&format!("knows versions up to {LATEST_VERSION}")),
            "{text}"
        );
        assert_eq!(wuye_core::exit::code_of(&err), wuye_core::exit::CONFIG);
        let conn = Connection::open(&path).unwrap();
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, future, "the version must not be touched");
    }

    /// A database file as a wuyed of schema `version` left it.
    fn at_version(path: &Path, version: u32) -> Connection {
        let conn = Connection::open(path).unwrap();
        for (_, sql) in &migrations::MIGRATIONS[..version as usize] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version).unwrap();
        conn
    }

    /// Everything the schema is made of, and its version, as `sqlite_master` has it.
    fn schema_of(path: &Path) -> (u32, Vec<(String, String, Option<String>)>) {
        let conn = Connection::open(path).unwrap();
        let version = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        let objects = conn
            .prepare(
                "SELECT type, name, sql FROM sqlite_master
                 WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        (version, objects)
    }

    /// The schema a new database gets from the migrations.
    fn fresh_schema() -> (u32, Vec<(String, String, Option<String>)>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        drop(Store::open(&path).unwrap());
        schema_of(&path)
    }

    /// No opener creates schema of its own: after each has opened a database the migrations
    /// made, it has exactly the migrations' schema (the outbox's opener used to re-create an
    /// index migration 6 dropped).
    #[test]
    fn every_opener_leaves_exactly_the_migrations_schema() {
        let fresh = fresh_schema();
        assert_eq!(fresh.0, LATEST_VERSION);
        assert!(
            !fresh.1.iter().any(|(_, name, _)| name == "outbox_due"),
            "migration 6 dropped outbox_due"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        drop(Store::open(&path).unwrap());
        type Opener<'a> = (&'a str, &'a dyn Fn(&Path));
        let openers: [Opener<'_>; 6] = [
            ("Store::open", &|p| drop(Store::open(p).unwrap())),
            ("outbox::open (dispatcher, wuyed outbox)", &|p| {
                drop(outbox::open(p).unwrap())
            }),
            ("domain::open_standalone (HTTP API)", &|p| {
                drop(domain::open_standalone(p).unwrap())
            }),
            ("DomainReader::open", &|p| {
                drop(domain::DomainReader::open(p).unwrap())
            }),
            ("report::open_read_only", &|p| {
                drop(report::open_read_only(p).unwrap())
            }),
            ("backup::backup", &|p| {
                let copy = p.with_file_name("copy.db");
                backup::backup(p, &copy, false).unwrap();
                assert_eq!(schema_of(&copy), fresh_schema(), "the backup's schema");
                std::fs::remove_file(copy).unwrap();
            }),
        ];
        for (name, open) in openers {
            open(&path);
            assert_eq!(schema_of(&path), fresh, "after {name}");
        }
    }

    /// A file left at any earlier version, upgraded by opening it, and a file migrated one
    /// version at a time from the first, both equal a new database; so does one the old
    /// dispatcher had given its stray `outbox_due` index.
    #[test]
    fn a_database_upgraded_from_any_version_equals_a_new_one() {
        let fresh = fresh_schema();
        let dir = tempfile::tempdir().unwrap();
        for version in 1..=LATEST_VERSION {
            let path = dir.path().join(format!("v{version}.db"));
            drop(at_version(&path, version));
            drop(Store::open(&path).unwrap());
            assert_eq!(schema_of(&path), fresh, "upgraded from version {version}");
        }
        let path = dir.path().join("stepwise.db");
        for version in 1..=LATEST_VERSION {
            drop(at_version_from(&path, version - 1, version));
        }
        drop(Store::open(&path).unwrap());
        assert_eq!(schema_of(&path), fresh, "migrated one version at a time");

        let path = dir.path().join("old-dispatcher.db");
        {
            let conn = at_version(&path, 8);
            conn.execute_batch(
                "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at)",
            )
            .unwrap();
        }
        drop(Store::open(&path).unwrap());
        assert_eq!(schema_of(&path), fresh, "the stray index is gone");
    }

    /// Applies migrations `from + 1 ..= to` to the file at `path`, as a wuyed of schema `to`
    /// would have, one transaction each.
    fn at_version_from(path: &Path, from: u32, to: u32) -> Connection {
        let conn = Connection::open(path).unwrap();
        for (v, sql) in &migrations::MIGRATIONS[from as usize..to as usize] {
            conn.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {v}; COMMIT"))
                .unwrap();
        }
        conn
    }

    /// Before version 7 the fee ladder's visits were stored as complaints (`[fee-visit] ...`);
    /// the rebuild makes them desk tasks and keeps every ticket, and every callback pointing
    /// at one.
    #[test]
    fn migration_7_turns_stored_fee_visits_into_desk_tasks_and_keeps_callbacks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let conn = at_version(&path, 6);
            conn.execute_batch(
                "INSERT INTO households (community, id, building, unit, room)
                     VALUES ('c', '1-101', '1', '1', '101');
                 INSERT INTO tickets (id, community, no, household, kind, summary,
                                      first_receiver, opened_at, closed_at)
                     VALUES (1, 'c', 'T1', '1-101', 'complaint', 'noise at night', 'cs',
                             '2026-09-01T00:00:00.000Z', '2026-09-02T00:00:00.000Z'),
                            (2, 'c', 'W9-0', '1-101', 'complaint',
                             '[fee-visit] 上门催缴 (fee visit): 1栋101 owes ¥700.00 (visit-60d)',
                             'cs', '2026-09-03T00:00:00.000Z', '2026-09-04T00:00:00.000Z'),
                            (3, 'c', 'W9-1', '1-101', 'complaint',
                             '[complaint] survey: cleaning 1/5, stairs never swept',
                             'cs', '2026-09-03T00:00:00.000Z', NULL);
                 INSERT INTO callbacks (community, ticket_id, done_at, done_by, satisfied, score)
                     VALUES ('c', 1, '2026-09-02T08:00:00.000Z', 'cs', 1, 5);",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let (kinds, callbacks, fk_on): (Vec<(String, String)>, i64, bool) = store
            .read(|tx| {
                let c = tx.conn();
                let kinds = c
                    .prepare("SELECT no, kind FROM tickets ORDER BY id")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                let n = c.query_row("SELECT count(*) FROM callbacks", [], |r| r.get(0))?;
                let fk = c.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
                Ok((kinds, n, fk))
            })
            .unwrap();
        assert_eq!(
            kinds,
            [
                ("T1".to_string(), "complaint".to_string()),
                ("W9-0".to_string(), "task".to_string()),
                // A plugin that asked for a complaint (a bad survey answer) keeps it.
                ("W9-1".to_string(), "complaint".to_string())
            ]
        );
        assert_eq!(callbacks, 1);
        assert!(fk_on, "foreign keys are enforced again after migrating");
        // The visit owes no callback; the complaint has had its own.
        let waiting = store
            .read(|tx| Ok(tx.domain("c").tickets_closed_without_callback()?))
            .unwrap();
        assert!(waiting.is_empty(), "{waiting:?}");
    }

    /// Migration 8 rebuilds the outbox for cheaper CHECKs: messages survive it, the rules still
    /// hold, and the dispatcher's query still reads the waiting-only index.
    #[test]
    fn migration_8_keeps_queued_messages_and_their_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        {
            let conn = at_version(&path, 7);
            conn.execute_batch(
                "INSERT INTO outbox (community, workflow, slot, recipient, step, channel, address,
                                     locale, category, template, body_text, message_id, status,
                                     next_attempt_at, expires_at, created_at, updated_at)
                 VALUES ('c', 'fee_reminder', 's', 'household:1-101', 'due', 'sms', '13800000000',
                         'zh-CN', 'transactional', 'bill_notice', '请缴费', 'm1', 'deferred',
                         5, 9, 1, 1);",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        store
            .read(|tx| {
                let c = tx.conn();
                let status: String = c.query_row(
                    "SELECT status FROM outbox WHERE message_id = 'm1'",
                    [],
                    |r| r.get(0),
                )?;
                assert_eq!(status, "deferred");
                let bad = c.execute("UPDATE outbox SET status = 'lost'", []);
                assert!(bad.is_err(), "an unknown status is still refused");
                let plan: Vec<String> = c
                    .prepare(
                        "EXPLAIN QUERY PLAN SELECT id FROM outbox
                         WHERE (status = 'pending' OR status = 'deferred' OR status = 'failed')
                         AND next_attempt_at <= 10 ORDER BY next_attempt_at, id LIMIT 5",
                    )?
                    .query_map([], |r| r.get(3))?
                    .collect::<rusqlite::Result<_>>()?;
                assert!(
                    plan.iter().any(|d| d.contains("outbox_waiting")),
                    "{plan:?}"
                );
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(DB_FILE)).unwrap();
        let err = store
            .write(|tx| -> anyhow::Result<()> {
                tx.audit(DateTime::UNIX_EPOCH, None, "c", "w", "test", "half")?;
                anyhow::bail!("plugin changed its mind")
            })
            .unwrap_err();
        assert!(err.to_string().contains("changed its mind"));
        let n: i64 = store
            .read(|tx| {
                Ok(tx
                    .conn()
                    .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn timestamps_sort_as_text_in_time_order() {
        use chrono::TimeZone;
        let a = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let b = a + chrono::Duration::milliseconds(1);
        assert_eq!(ts(a), "2026-01-02T03:04:05.000Z");
        assert!(ts(a) < ts(b));
        assert_eq!(parse_ts(&ts(b)).unwrap(), b);
    }
}
