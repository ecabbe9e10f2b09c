//! Versioned schema migrations.
//!
//! The list is static and ordered; each entry is applied once, in order, inside one immediate
//! transaction together with the new `PRAGMA user_version`, so a crash mid-migration leaves the
//! old schema intact and two daemons starting at once cannot both apply a step. Other subsystems
//! append their own numbered file (0002 domain/delivery, 0003 plugins, ...): never edit a
//! migration that has shipped, add the next one. This list is the only place schema comes from:
//! every opener of the file (the store, the dispatcher's and the API's connections, readers)
//! runs it or reads what it made, and none creates a table or index of its own.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::{Connection, TransactionBehavior};

use wuye_core::exit::Coded;

/// `(version, SQL)`, ascending without gaps.
pub(crate) const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("migrations/0001_core.sql")),
    super::domain::MIGRATION_0002,
    (3, include_str!("migrations/0003_plugins.sql")),
    (4, include_str!("migrations/0004_outbox.sql")),
    (5, include_str!("migrations/0005_events_rsvps_notices.sql")),
    (6, include_str!("migrations/0006_outbox_waiting.sql")),
    (7, include_str!("migrations/0007_desk_tasks.sql")),
    (8, include_str!("migrations/0008_outbox_checks.sql")),
    (9, include_str!("migrations/0009_one_schema_path.sql")),
];

/// The schema version this binary writes.
pub const LATEST_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

pub(crate) fn migrate(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    // Up to date (the common case): nothing to write, so no write lock to take. Opening the
    // database (`wuyed outbox list`, the API, a restart) then never waits behind another
    // process's long transaction. A race with a migrating peer is settled inside `apply`,
    // which reads the version again under the lock.
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current == LATEST_VERSION {
        return Ok(());
    }
    // A migration that rebuilds a table (0007) drops the old one while other tables still
    // reference it. SQLite's documented procedure runs that with foreign keys off and checks
    // them before committing; the setting cannot change inside a transaction, hence out here.
    let enforced: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let applied = apply(conn, path);
    let restored = conn.pragma_update(None, "foreign_keys", enforced);
    // The migration's own error first: it is the one that says what went wrong.
    applied?;
    Ok(restored?)
}

/// Tables a migration rebuilt (0007: `tickets`; 0008: `outbox`, which nothing references) and
/// those referencing them: what is checked for dangling references after migrating. The whole
/// database is not: a row left dangling long ago elsewhere must not block an upgrade.
const REBUILT_AND_REFERENCING: [&str; 3] = ["tickets", "callbacks", "ticket_notices"];

/// The error (exit 78) for a database at schema version `current` that this binary cannot
/// run on, because a newer wuye wrote it; `wuyed check` asks the same of an existing database.
pub fn refuse_newer(current: u32, path: &Path) -> anyhow::Result<()> {
    if current > LATEST_VERSION {
        return Err(Coded::config(anyhow::anyhow!(
            "database {} has schema version {current}, but this wuyed knows versions up to \
             {LATEST_VERSION}: it was written by a newer wuye. Run that newer wuyed, or point \
             daemon.data_dir elsewhere; the file was not changed",
            path.display()
        ))
        .into());
    }
    Ok(())
}

fn apply(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    debug_assert!(
        MIGRATIONS
            .iter()
            .enumerate()
            .all(|(i, (v, _))| *v as usize == i + 1),
        "migrations must be numbered 1, 2, 3, ..."
    );
    // `new_unchecked` takes a shared borrow: the standalone connections of tests and tools
    // migrate through here too, and none of them has a transaction open at this point.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
        .map_err(|e| super::coded_sqlite(e, path))?;
    let current: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    // Refuse before touching anything: an older binary must not guess at a newer schema.
    refuse_newer(current, path)?;
    let pending: Vec<_> = MIGRATIONS.iter().filter(|(v, _)| *v > current).collect();
    for (version, sql) in &pending {
        tx.execute_batch(sql).with_context(|| {
            format!(
                "database {}: migration {version} failed (nothing was changed)",
                path.display()
            )
        })?;
        tx.pragma_update(None, "user_version", version)?;
        tracing::info!(db = %path.display(), version, "applied schema migration");
    }
    if !pending.is_empty() {
        let mut dangling: i64 = 0;
        for table in REBUILT_AND_REFERENCING {
            dangling += tx.query_row(
                "SELECT count(*) FROM pragma_foreign_key_check(?1)",
                [table],
                |r| r.get::<_, i64>(0),
            )?;
        }
        if dangling > 0 {
            anyhow::bail!(
                "database {}: after migrating, {dangling} row(s) reference rows that do not \
                 exist (PRAGMA foreign_key_check lists them); nothing was changed",
                path.display()
            );
        }
    }
    tx.commit().map_err(|e| super::coded_sqlite(e, path))?;
    Ok(())
}
