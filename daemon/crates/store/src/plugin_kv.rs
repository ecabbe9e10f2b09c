//! SQL of the plugin host: each plugin's key-value store per community, and the failure streaks
//! that pause a workflow (schema in migrations/0003_plugins.sql). Writes happen only inside the
//! transaction that completes a run.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::Tx;

/// A write to the plugin's key-value store (`None` deletes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KvWrite {
    pub key: String,
    pub value: Option<String>,
}

/// Reads a plugin's key-value store as committed (the run's own writes are layered on top by the
/// host). Writes go through [`Tx`] when the run commits ([`Tx::plugin_kv_apply`]).
pub trait KvRead: Send + Sync + 'static {
    fn get(&self, community: &str, plugin: &str, key: &str) -> anyhow::Result<Option<String>>;

    /// Every key of (community, plugin) at once, for a run that reads many (a fee reminder
    /// asks once per bill); `None` where the source has no cheaper bulk read.
    fn snapshot(
        &self,
        community: &str,
        plugin: &str,
    ) -> anyhow::Result<Option<std::collections::HashMap<String, String>>> {
        let _ = (community, plugin);
        Ok(None)
    }

    /// What (community, plugin) keeps now, for its quota (`plugins.kv_max_bytes`,
    /// `plugins.kv_max_keys`).
    fn usage(&self, community: &str, plugin: &str) -> anyhow::Result<KvUsage>;
}

/// What one plugin keeps in one community's kv store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvUsage {
    /// Keys and values, in bytes of UTF-8.
    pub bytes: usize,
    pub keys: usize,
}

/// A workflow paused for a community after repeated failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausedWorkflow {
    pub community: String,
    pub workflow: String,
    pub failure_streak: u32,
    pub last_error: String,
    pub paused_at: DateTime<Utc>,
}

impl Tx<'_> {
    pub fn plugin_kv_get(
        &self,
        community: &str,
        plugin: &str,
        key: &str,
    ) -> rusqlite::Result<Option<String>> {
        plugin_kv_get(&self.0, community, plugin, key)
    }

    /// Every key and value of (community, plugin).
    pub fn plugin_kv_all(
        &self,
        community: &str,
        plugin: &str,
    ) -> rusqlite::Result<std::collections::HashMap<String, String>> {
        self.0
            .prepare_cached(
                "SELECT key, value FROM plugin_kv WHERE community = ?1 AND plugin = ?2",
            )?
            .query_map(params![community, plugin], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    }

    /// Bytes (keys and values, as UTF-8) and keys (community, plugin) keeps: what its quota is
    /// held against.
    pub fn plugin_kv_usage(&self, community: &str, plugin: &str) -> rusqlite::Result<KvUsage> {
        plugin_kv_usage(&self.0, community, plugin)
    }

    /// Applies a run's kv writes (a `None` value deletes the key).
    pub fn plugin_kv_apply(
        &self,
        community: &str,
        plugin: &str,
        writes: &[KvWrite],
        now: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        let mut put = self.0.prepare_cached(
            "INSERT INTO plugin_kv (community, plugin, key, value, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (community, plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )?;
        let mut del = self.0.prepare_cached(
            "DELETE FROM plugin_kv WHERE community = ?1 AND plugin = ?2 AND key = ?3",
        )?;
        let at = now.to_rfc3339();
        for w in writes {
            match &w.value {
                Some(v) => put.execute(params![community, plugin, w.key, v, at])?,
                None => del.execute(params![community, plugin, w.key])?,
            };
        }
        Ok(())
    }

    /// Records a failed run; returns the failure streak including it.
    pub fn plugin_record_failure(
        &self,
        community: &str,
        workflow: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> rusqlite::Result<u32> {
        self.0.prepare_cached("INSERT INTO plugin_workflow_health (community, workflow, failure_streak, last_error, last_failed_at)
             VALUES (?1, ?2, 1, ?3, ?4)
             ON CONFLICT (community, workflow) DO UPDATE SET failure_streak = failure_streak + 1,
                 last_error = excluded.last_error, last_failed_at = excluded.last_failed_at
             RETURNING failure_streak")?.query_row(params![community, workflow, error, at.to_rfc3339()],
            |r| r.get(0),
        )
    }

    /// A successful run ends a streak.
    pub fn plugin_clear_failures(&self, community: &str, workflow: &str) -> rusqlite::Result<()> {
        self.0.prepare_cached("UPDATE plugin_workflow_health SET failure_streak = 0 WHERE community = ?1 AND workflow = ?2 AND failure_streak > 0")?.execute(params![community, workflow],
        )?;
        Ok(())
    }

    pub fn plugin_pause(
        &self,
        community: &str,
        workflow: &str,
        streak: u32,
        error: &str,
        at: DateTime<Utc>,
    ) -> rusqlite::Result<()> {
        self.0.prepare_cached("INSERT INTO plugin_workflow_health (community, workflow, failure_streak, last_error, last_failed_at, paused_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (community, workflow) DO UPDATE SET failure_streak = excluded.failure_streak,
                 last_error = excluded.last_error, last_failed_at = excluded.last_failed_at,
                 paused_at = excluded.paused_at")?.execute(params![community, workflow, streak, error, at.to_rfc3339()],
        )?;
        Ok(())
    }

    pub fn plugin_resume(&self, community: &str, workflow: &str) -> rusqlite::Result<bool> {
        let n = self
            .0
            .prepare_cached(
                "UPDATE plugin_workflow_health SET paused_at = NULL, failure_streak = 0
             WHERE community = ?1 AND workflow = ?2 AND paused_at IS NOT NULL",
            )?
            .execute(params![community, workflow])?;
        Ok(n > 0)
    }

    pub fn plugin_paused(&self) -> rusqlite::Result<Vec<PausedWorkflow>> {
        let mut st = self.0.prepare_cached(
            "SELECT community, workflow, failure_streak, COALESCE(last_error, ''), paused_at
             FROM plugin_workflow_health WHERE paused_at IS NOT NULL ORDER BY community, workflow",
        )?;
        let rows = st.query_map([], |r| {
            let at: String = r.get(4)?;
            Ok(PausedWorkflow {
                community: r.get(0)?,
                workflow: r.get(1)?,
                failure_streak: r.get(2)?,
                last_error: r.get(3)?,
                paused_at: DateTime::parse_from_rfc3339(&at)
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
            })
        })?;
        rows.collect()
    }
}

/// One key's value, on any connection.
fn plugin_kv_get(
    conn: &rusqlite::Connection,
    community: &str,
    plugin: &str,
    key: &str,
) -> rusqlite::Result<Option<String>> {
    // Cached: a fee-reminder run asks once per bill, and parsing the statement each time cost
    // more than the lookup.
    conn.prepare_cached(
        "SELECT value FROM plugin_kv WHERE community = ?1 AND plugin = ?2 AND key = ?3",
    )?
    .query_row(params![community, plugin, key], |r| r.get(0))
    .optional()
}

fn plugin_kv_usage(
    conn: &rusqlite::Connection,
    community: &str,
    plugin: &str,
) -> rusqlite::Result<KvUsage> {
    // length() of TEXT counts characters; of a BLOB, bytes, which is what the quota is in.
    conn.prepare_cached(
        "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0), COUNT(*)
         FROM plugin_kv WHERE community = ?1 AND plugin = ?2",
    )?
    .query_row(params![community, plugin], |r| {
        Ok(KvUsage {
            bytes: r.get::<_, i64>(0)? as usize,
            keys: r.get::<_, i64>(1)? as usize,
        })
    })
}

/// Plugins read their committed key-value store through the daemon's database (one statement
/// per `kv-get`; the run's own writes are layered on top by the host).
/// Needs migration 0003 registered in `store/migrations.rs`.
impl KvRead for super::Store {
    fn get(&self, community: &str, plugin: &str, key: &str) -> anyhow::Result<Option<String>> {
        // One SELECT is atomic on its own: no BEGIN/ROLLBACK around it (a run makes one call per
        // unpaid bill, 60,000 at 100,000 households, and the transaction doubled each one).
        Ok(plugin_kv_get(&self.lock(), community, plugin, key)?)
    }

    fn snapshot(
        &self,
        community: &str,
        plugin: &str,
    ) -> anyhow::Result<Option<std::collections::HashMap<String, String>>> {
        self.read(|tx| Ok(Some(tx.plugin_kv_all(community, plugin)?)))
    }

    fn usage(&self, community: &str, plugin: &str) -> anyhow::Result<KvUsage> {
        Ok(plugin_kv_usage(&self.lock(), community, plugin)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection with the plugin schema, for tests of code that writes through `Tx`.
    fn conn() -> rusqlite::Connection {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(include_str!("migrations/0003_plugins.sql"))
            .unwrap();
        c
    }

    #[test]
    fn kv_writes_and_deletes_are_scoped_to_community_and_plugin() {
        let mut c = conn();
        let at = Utc::now();
        let tx = Tx(c.transaction().unwrap());
        let put = |k: &str, v: Option<&str>| KvWrite {
            key: k.into(),
            value: v.map(Into::into),
        };
        tx.plugin_kv_apply("lakeside", "heartbeat", &[put("beats", Some("1"))], at)
            .unwrap();
        tx.plugin_kv_apply("hillside", "heartbeat", &[put("beats", Some("9"))], at)
            .unwrap();
        tx.plugin_kv_apply("lakeside", "heartbeat", &[put("beats", Some("2"))], at)
            .unwrap();
        assert_eq!(
            tx.plugin_kv_get("lakeside", "heartbeat", "beats")
                .unwrap()
                .as_deref(),
            Some("2")
        );
        assert_eq!(
            tx.plugin_kv_get("hillside", "heartbeat", "beats")
                .unwrap()
                .as_deref(),
            Some("9")
        );
        tx.plugin_kv_apply(
            "lakeside",
            "heartbeat",
            &[put("beats", None), put("last", Some("09:00"))],
            at,
        )
        .unwrap();
        assert_eq!(
            tx.plugin_kv_get("lakeside", "heartbeat", "beats").unwrap(),
            None
        );
        // The bulk read a long run switches to sees exactly what point reads see.
        let all = tx.plugin_kv_all("lakeside", "heartbeat").unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all.get("last").map(String::as_str), Some("09:00"));
        assert_eq!(tx.plugin_kv_all("lakeside", "other").unwrap().len(), 0);
        // The quota counts bytes, not characters, and only this (community, plugin).
        tx.plugin_kv_apply("lakeside", "heartbeat", &[put("名", Some("水畔"))], at)
            .unwrap();
        assert_eq!(
            tx.plugin_kv_usage("lakeside", "heartbeat").unwrap(),
            KvUsage {
                bytes: "last".len() + "09:00".len() + "名".len() + "水畔".len(),
                keys: 2
            }
        );
        assert_eq!(
            tx.plugin_kv_usage("lakeside", "other").unwrap(),
            KvUsage::default()
        );
    }

    #[test]
    fn streaks_count_up_reset_on_success_and_pause_persists() {
        let mut c = conn();
        let at = Utc::now();
        let tx = Tx(c.transaction().unwrap());
        assert_eq!(tx.plugin_record_failure("l", "w", "boom", at).unwrap(), 1);
        assert_eq!(tx.plugin_record_failure("l", "w", "boom", at).unwrap(), 2);
        tx.plugin_clear_failures("l", "w").unwrap();
        assert_eq!(tx.plugin_record_failure("l", "w", "boom", at).unwrap(), 1);
        tx.plugin_pause("l", "w", 3, "boom", at).unwrap();
        let paused = tx.plugin_paused().unwrap();
        assert_eq!(paused.len(), 1);
        assert_eq!(paused[0].failure_streak, 3);
        assert!(tx.plugin_resume("l", "w").unwrap());
        assert!(tx.plugin_paused().unwrap().is_empty());
    }
}
