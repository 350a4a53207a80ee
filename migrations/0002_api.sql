-- The command API's idempotency keys (issue 4). A command carrying an Idempotency-Key header
-- stores its first successful answer here, per tenant; a retry with the same key and the same
-- request gets that answer back and publishes nothing; the same key with another request is
-- refused (422). Only 2xx answers are stored: a rejected or failed command may be retried.
CREATE TABLE IF NOT EXISTS ultracore_api_idempotency (
    tenant_id       text        NOT NULL,
    idempotency_key text        NOT NULL,
    request_md5     text        NOT NULL,  -- md5 of method, path and canonical JSON body
    status          integer     NOT NULL,
    response        text        NOT NULL,  -- the answer's JSON body, as sent
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS ultracore_api_idempotency_created_idx
    ON ultracore_api_idempotency (created_at);
