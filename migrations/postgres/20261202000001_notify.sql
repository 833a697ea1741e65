-- Alert delivery (services/notify). Who receives a tenant's alerts, every
-- alert the notifier has seen, and one delivery per (alert, channel): an
-- outbox that senders claim with FOR UPDATE SKIP LOCKED, so restarts,
-- rebalances and several instances never send one delivery twice.

-- Where a tenant's alerts go. `event_types` empty means every type.
CREATE TABLE IF NOT EXISTS notify_channels (
    channel_id      UUID        PRIMARY KEY,
    tenant_id       TEXT        NOT NULL,
    kind            TEXT        NOT NULL CHECK (kind IN ('email', 'webhook')),
    target          TEXT        NOT NULL,
    event_types     TEXT[]      NOT NULL DEFAULT '{}',
    enabled         BOOLEAN     NOT NULL DEFAULT true,
    -- Webhooks: the signing secret (whsec_...), shown once when created.
    -- While it is rotated the previous one signs too, until its expiry.
    secret          TEXT        CHECK ((kind = 'webhook') = (secret IS NOT NULL)),
    previous_secret TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    disabled_reason TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS notify_channels_tenant ON notify_channels (tenant_id) WHERE enabled;

-- Every event the notifier has taken in, once: the id is the alert's (or
-- derived from what caused it), so a redelivered alert adds nothing.
CREATE TABLE IF NOT EXISTS notify_events (
    event_id    UUID        PRIMARY KEY,
    tenant_id   TEXT        NOT NULL,
    event_type  TEXT        NOT NULL,
    payload     JSONB       NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One delivery per (event, channel). state: pending (not tried yet), failed
-- (tried, failed retriably, due again at next_attempt_at), sent, dead (a
-- permanent failure, the schedule exhausted, or the channel disabled).
-- `lease_until` marks a claimed delivery: a sender that dies mid-send leaves
-- it, and once it passes the delivery is tried again with the same
-- webhook-id (its outcome is unknown; receivers dedupe on the id).
CREATE TABLE IF NOT EXISTS notify_deliveries (
    delivery_id     UUID        PRIMARY KEY,
    event_id        UUID        NOT NULL REFERENCES notify_events (event_id),
    channel_id      UUID        NOT NULL REFERENCES notify_channels (channel_id),
    tenant_id       TEXT        NOT NULL,
    state           TEXT        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed', 'sent', 'dead')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until     TIMESTAMPTZ,
    last_error      TEXT,
    last_status     INTEGER,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ,
    UNIQUE (event_id, channel_id)
);
CREATE INDEX IF NOT EXISTS notify_deliveries_due ON notify_deliveries (next_attempt_at) WHERE state IN ('pending', 'failed');
