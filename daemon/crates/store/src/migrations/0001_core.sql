-- 0001 core: the scheduler's tables.
-- Instants are RFC 3339 UTC text with millisecond precision ('2026-11-22T00:00:00.000Z'), so text
-- order is time order.

-- Durable timers set by plugins ("call the owner back in 2 days"). `key` is the plugin's own
-- idempotency key: setting the same timer again (a redone run) changes nothing.
CREATE TABLE timers (
    id          INTEGER PRIMARY KEY,
    community   TEXT NOT NULL,
    workflow    TEXT NOT NULL,
    key         TEXT NOT NULL,
    fire_at     TEXT NOT NULL,
    payload     TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'fired', 'cancelled')),
    created_at  TEXT NOT NULL,
    created_by_run INTEGER,
    UNIQUE (community, workflow, key)
);
CREATE INDEX timers_pending ON timers (fire_at) WHERE state = 'pending';

-- One row per unit of work. A schedule slot is keyed by its due instant; a slot that will not run
-- (catch-up, removed workflow) is a row too, in state 'missed' with the reason, so it is never
-- planned again and never forgotten.
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    community    TEXT NOT NULL,
    workflow     TEXT NOT NULL,
    -- The slot (or the timer's fire instant, or the event's instant): part of every idempotency
    -- key downstream.
    due_at       TEXT NOT NULL,
    -- due_at plus the workflow's deterministic jitter: not started before this.
    run_at       TEXT NOT NULL,
    trigger_kind TEXT NOT NULL CHECK (trigger_kind IN ('schedule', 'timer', 'event')),
    -- NULL for schedule slots; the timer id or the event's idempotency key otherwise.
    trigger_key  TEXT,
    payload      TEXT NOT NULL DEFAULT '',
    event_kind   TEXT,
    timer_id     INTEGER REFERENCES timers (id),
    state        TEXT NOT NULL DEFAULT 'planned'
                 CHECK (state IN ('planned', 'running', 'done', 'failed', 'missed')),
    reason       TEXT,
    planned_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    attempt      INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    CHECK ((trigger_kind = 'schedule') = (trigger_key IS NULL))
);
-- The heart of "never fire twice": one row per (community, workflow, due instant) slot ...
CREATE UNIQUE INDEX runs_slot ON runs (community, workflow, due_at)
    WHERE trigger_kind = 'schedule';
-- ... and one per timer firing or event.
CREATE UNIQUE INDEX runs_trigger ON runs (community, workflow, trigger_kind, trigger_key)
    WHERE trigger_key IS NOT NULL;
CREATE INDEX runs_planned ON runs (run_at) WHERE state = 'planned';
CREATE INDEX runs_running ON runs (community, workflow) WHERE state = 'running';

-- The last slot planned per workflow: advanced in the same transaction that inserts the slots'
-- run rows, so a crash can neither skip a slot nor plan it twice.
CREATE TABLE workflow_cursors (
    community    TEXT NOT NULL,
    workflow     TEXT NOT NULL,
    last_planned TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (community, workflow)
) WITHOUT ROWID;

-- What ran, when, and what it did, for people.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    run_id    INTEGER REFERENCES runs (id),
    community TEXT NOT NULL,
    workflow  TEXT NOT NULL,
    event     TEXT NOT NULL,
    summary   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_run ON audit (run_id);
