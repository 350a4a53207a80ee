-- Issue 14: consistent commands. One row per (tenant, aggregate) that a command published to.
-- A command on an aggregate holds this row's lock (SELECT ... FOR UPDATE) from before its
-- validation until its events are stored, so commands on one aggregate run one at a time across
-- every API process; `positions` is the consistency token of the aggregate's last events, which
-- the next command waits for in the read models before it validates. The lock lives in the
-- holder's transaction: a holder that stops (crash, SIGSTOP) loses it when PostgreSQL ends its
-- session (idle_in_transaction_session_timeout), and its Kafka transaction is then never committed.
CREATE TABLE IF NOT EXISTS ultracore_api_aggregates (
    tenant_id    text        NOT NULL,
    aggregate_id text        NOT NULL,
    positions    text        NOT NULL DEFAULT '',  -- topic:partition:offset[,...]
    commands     bigint      NOT NULL DEFAULT 0,   -- fencing counter: commands published
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, aggregate_id)
);
