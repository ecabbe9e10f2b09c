//! The only place that writes SQL.
//!
//! CONTRACT (filled by the store work): a `Store` over one SQLite file (WAL,
//! synchronous=FULL, versioned migrations) and [`Tx`], the transaction type other subsystems'
//! effects are written through. Each subsystem keeps its SQL in its own file here
//! (`store/runs.rs`, `store/outbox.rs`, `store/plugin_kv.rs`, ...) as `impl Tx<'_>` methods, and its
//! schema as a numbered migration in `store/migrations/`.

/// One database transaction. Effects of a run are applied through it, in the same transaction
/// that marks the run done, so they commit together or not at all.
pub struct Tx<'a>(pub(crate) rusqlite::Transaction<'a>);

pub mod outbox;
