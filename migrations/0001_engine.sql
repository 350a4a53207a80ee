-- The engine's own tables. Applied at start-up, once, under an advisory lock.

-- Where each projection resumes: the next offset to consume per (projection, topic, partition).
-- next_offset = -2 means "from the beginning of the log" (nothing consumed yet). Written in the
-- same transaction as the projection's rows, as a compare-and-set from the batch's start.
CREATE TABLE IF NOT EXISTS ultracore_offsets (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

-- Every event each projection applied: the idempotency record (unique per projection, event).
CREATE TABLE IF NOT EXISTS processed_events (
    projection   text        NOT NULL,
    event_id     text        NOT NULL,
    aggregate_id text        NOT NULL,
    event_type   text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, event_id)
);
CREATE INDEX IF NOT EXISTS processed_events_aggregate_idx ON processed_events (aggregate_id);
CREATE INDEX IF NOT EXISTS processed_events_processed_at_idx ON processed_events (processed_at);

-- Events a projection could not apply, kept whole for the operator (policy dead_letter / park)
-- or recorded and passed over (policy skip).
CREATE TABLE IF NOT EXISTS ultracore_dead_letters (
    id            bigserial   PRIMARY KEY,
    projection    text        NOT NULL,
    policy        text        NOT NULL,
    topic         text        NOT NULL,
    partition     integer     NOT NULL,
    "offset"      bigint      NOT NULL,
    record_key    bytea,
    record_value  bytea,
    headers       jsonb       NOT NULL DEFAULT '[]',
    timestamp_ms  bigint,
    event_id      text,
    aggregate_id  text,
    event_type    text,
    error_code    text        NOT NULL,
    error         text        NOT NULL,
    attempts      integer     NOT NULL DEFAULT 1,
    status        text        NOT NULL DEFAULT 'open',
    created_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    resolution    text,
    UNIQUE (projection, topic, partition, "offset")
);

CREATE TABLE IF NOT EXISTS ultracore_skipped_events (
    projection   text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    event_id     text,
    aggregate_id text,
    event_type   text,
    error_code   text        NOT NULL,
    error        text        NOT NULL,
    skipped_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition, "offset")
);

-- The schema version each projection's tables were set up with.
CREATE TABLE IF NOT EXISTS ultracore_projection_schemas (
    projection     text        PRIMARY KEY,
    schema_name    text        NOT NULL,
    schema_version integer     NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- What each runner is doing now: running, waiting (transient fault), stopped (error).
CREATE TABLE IF NOT EXISTS ultracore_projection_status (
    projection text        PRIMARY KEY,
    state      text        NOT NULL,
    detail     text        NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
