-- 0003: plugin state. Written only through store/plugin_kv.rs, inside the transaction that
-- completes a run, so a plugin's remembered values change exactly when its intents are applied.

-- A small key-value store per (community, plugin): plugins remember what they already did
-- (ladder steps sent, payment plans) here. The plugin is named by its file stem.
CREATE TABLE plugin_kv (
    community  TEXT NOT NULL,
    plugin     TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,  -- RFC 3339, UTC
    PRIMARY KEY (community, plugin, key)
) WITHOUT ROWID;

-- Failed runs in a row per (community, workflow); after `plugins.pause_after_failures` the
-- workflow is paused for that community (paused_at set) until an operator resumes it or the
-- plugin file changes.
CREATE TABLE plugin_workflow_health (
    community      TEXT NOT NULL,
    workflow       TEXT NOT NULL,
    failure_streak INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    last_failed_at TEXT,
    paused_at      TEXT,
    PRIMARY KEY (community, workflow)
) WITHOUT ROWID;
