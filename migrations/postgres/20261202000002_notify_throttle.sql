-- The throttle state the notifier last saw per tenant, so it can tell a
-- block or a recovery (a change) from a command it already knew.
CREATE TABLE IF NOT EXISTS notify_throttle_seen (
    tenant_id TEXT        PRIMARY KEY,
    version   BIGINT      NOT NULL,
    state     TEXT        NOT NULL CHECK (state IN ('allow', 'degrade', 'block')),
    seen_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
