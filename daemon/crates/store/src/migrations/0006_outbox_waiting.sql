-- The dispatcher asks, at every wake-up, for the oldest messages waiting to go:
--   (status = 'pending' OR status = 'deferred' OR status = 'failed') AND next_attempt_at <= now
--   ORDER BY next_attempt_at, id LIMIT batch
-- On (status, next_attempt_at) that is three ranges merged and sorted in full before the LIMIT,
-- so after a quiet night with thousands of messages held, each batch re-read all of them. An
-- index holding only waiting messages, in the order they are taken, answers it by reading the
-- batch and nothing more (and `MIN(next_attempt_at)` by reading one entry). Sent messages, the
-- bulk of the table, leave it, which keeps it small.
DROP INDEX IF EXISTS outbox_due;
-- The condition is spelled with OR, as the queries spell it (store/outbox.rs `waiting!`): an IN
-- list of three is evaluated through a temporary b-tree at every insert and status change.
CREATE INDEX IF NOT EXISTS outbox_waiting ON outbox (next_attempt_at, id)
    WHERE (status = 'pending' OR status = 'deferred' OR status = 'failed');
