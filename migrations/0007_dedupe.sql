-- Issue 15.4: a fingerprint of what each processed event held (FNV-1a 64 of aggregate_id,
-- event_type and event_data; engine/postgres/dedupe_store.cpp), so an event_id reused by another
-- event is a conflict handled by on_error, while a true re-send is still skipped. Rows written
-- before this migration have none and are compared as re-sends, as before. Adding a nullable
-- column without a default rewrites nothing: instant on any size of table.
ALTER TABLE processed_events ADD COLUMN IF NOT EXISTS fingerprint bigint;
