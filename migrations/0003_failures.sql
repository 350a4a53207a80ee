-- Failures (issue 5): operator workflow on dead letters, and the `park` policy.

-- ultracore_dead_letters.status moves through:
--   open             -> retry_requested (ultracore-ctl dead-letters retry)
--   retry_requested  -> retried         (the engine re-applied it through the current plugin)
--                    -> open            (the re-apply failed again: last_retry_error says why)
--   open             -> discarded       (ultracore-ctl dead-letters discard; resolution = reason)
-- The engine performs retries (the plugin lives there), in one transaction with the
-- processed_events dedupe, so a retried event is applied exactly once.
ALTER TABLE ultracore_dead_letters
    ADD COLUMN IF NOT EXISTS retry_requested_at timestamptz,
    ADD COLUMN IF NOT EXISTS last_retry_at      timestamptz,
    ADD COLUMN IF NOT EXISTS last_retry_error   text;
ALTER TABLE ultracore_dead_letters DROP CONSTRAINT IF EXISTS ultracore_dead_letters_status_check;
ALTER TABLE ultracore_dead_letters ADD CONSTRAINT ultracore_dead_letters_status_check
    CHECK (status IN ('open', 'retry_requested', 'retried', 'discarded'));
CREATE INDEX IF NOT EXISTS ultracore_dead_letters_status_idx
    ON ultracore_dead_letters (projection, status);
CREATE INDEX IF NOT EXISTS ultracore_dead_letters_aggregate_idx
    ON ultracore_dead_letters (projection, aggregate_id);

-- Policy `park`: an aggregate whose event was dead-lettered is parked. Every later event of
-- that aggregate (same projection) is diverted into ultracore_parked_events, in the same
-- transaction that advances the offsets, until its blocking dead letter is retried or
-- discarded; then the engine applies the parked events in order and removes the row.
-- A record whose envelope did not parse is parked under its Kafka key (the aggregate id by
-- DESIGN.md); a record without a key is dead-lettered only.
CREATE TABLE IF NOT EXISTS ultracore_parked_aggregates (
    projection     text        NOT NULL,
    aggregate_id   text        NOT NULL,
    dead_letter_id bigint      NOT NULL REFERENCES ultracore_dead_letters (id),
    topic          text        NOT NULL,  -- where the blocking event lives: the runner that
    partition      integer     NOT NULL,  -- owns this partition releases the aggregate
    parked_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, aggregate_id)
);

-- The events held back behind a parked aggregate, whole (as dead letters are), released in id
-- order (the order they were consumed in).
CREATE TABLE IF NOT EXISTS ultracore_parked_events (
    id             bigserial   PRIMARY KEY,
    projection     text        NOT NULL,
    aggregate_id   text        NOT NULL,
    dead_letter_id bigint      NOT NULL,  -- the blocking dead letter when it was parked
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    record_key     bytea,
    record_value   bytea,
    headers        jsonb       NOT NULL DEFAULT '[]',
    timestamp_ms   bigint,
    event_id       text,
    event_type     text,
    parked_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (projection, topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS ultracore_parked_events_aggregate_idx
    ON ultracore_parked_events (projection, aggregate_id, id);
