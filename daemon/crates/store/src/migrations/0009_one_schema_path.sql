-- Until version 9 the dispatcher's own connection (store/outbox.rs `open`) re-ran migration
-- 0004's SQL at every start, re-creating the index `outbox_due` that 0006 dropped (and that
-- 0008's rebuild of the outbox dropped again): every outbox write maintained an index no query
-- reads. Databases it touched lose it here. Since this version every opener takes the schema
-- from these migrations only, so a file upgraded from any version equals a new one.
DROP INDEX IF EXISTS outbox_due;
