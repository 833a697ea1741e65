-- Monthly budgets per tenant. `version` grows on every change, so alerts
-- and throttle commands can say which budget they were judged against.
CREATE TABLE IF NOT EXISTS budgets (
    tenant_id     TEXT        PRIMARY KEY,
    amount        NUMERIC     NOT NULL CHECK (amount > 0),
    currency      CHAR(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    thresholds    INTEGER[]   NOT NULL DEFAULT '{50,80,100}',
    action        TEXT        NOT NULL DEFAULT 'block' CHECK (action IN ('block', 'degrade', 'none')),
    degrade_model TEXT        CHECK ((action = 'degrade') = (degrade_model IS NOT NULL)),
    grace_percent NUMERIC     NOT NULL DEFAULT 0 CHECK (grace_percent >= 0),
    timezone      TEXT        NOT NULL DEFAULT 'UTC',
    version       BIGINT      NOT NULL DEFAULT 1,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Budget changes wake the budget service at once (LISTEN meterline_budgets),
-- so a raised budget lifts a block within a second without new usage.
CREATE OR REPLACE FUNCTION meterline_budgets_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('meterline_budgets', COALESCE(NEW.tenant_id, OLD.tenant_id));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS budgets_notify ON budgets;
CREATE TRIGGER budgets_notify AFTER INSERT OR UPDATE OR DELETE ON budgets
    FOR EACH ROW EXECUTE FUNCTION meterline_budgets_notify();

-- Every counted usage event, once: the budget service's once-per-event_id
-- rule, the same key as the rollups' (tenant_id, event_id). Rows older than
-- the previous month are pruned (duplicates arrive within their month).
CREATE TABLE IF NOT EXISTS budget_seen_events (
    tenant_id   TEXT        NOT NULL,
    event_id    UUID        NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX IF NOT EXISTS budget_seen_events_occurred_at ON budget_seen_events (occurred_at);

-- Spend in 15-minute buckets: every time zone's offset is a multiple of 15
-- minutes, so any tenant's period (in any zone, even after a zone change) is
-- an exact sum of whole buckets. Exact decimals, never rounded.
CREATE TABLE IF NOT EXISTS budget_spend (
    tenant_id       TEXT        NOT NULL,
    currency        CHAR(3)     NOT NULL,
    bucket_start    TIMESTAMPTZ NOT NULL,
    amount          NUMERIC     NOT NULL,
    events          BIGINT      NOT NULL,
    unpriced_events BIGINT      NOT NULL,
    PRIMARY KEY (tenant_id, currency, bucket_start)
);

-- Where each budget-service instance resumes, per usage partition, updated
-- in the same transaction as the spend it covers.
CREATE TABLE IF NOT EXISTS budget_offsets (
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset BIGINT  NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- The newest throttle command per tenant, an outbox: written with the spend
-- that caused it, published to Kafka after commit, marked when acknowledged.
CREATE TABLE IF NOT EXISTS throttle_state (
    tenant_id      TEXT        PRIMARY KEY,
    version        BIGINT      NOT NULL,
    state          TEXT        NOT NULL CHECK (state IN ('allow', 'degrade', 'block')),
    target_model   TEXT,
    reason         TEXT        NOT NULL,
    period_start   TIMESTAMPTZ NOT NULL,
    period_end     TIMESTAMPTZ NOT NULL,
    spend          NUMERIC     NOT NULL,
    limit_amount   NUMERIC,
    currency       CHAR(3),
    budget_version BIGINT,
    issued_at      TIMESTAMPTZ NOT NULL,
    published      BOOLEAN     NOT NULL DEFAULT false
);

-- Which thresholds are currently fired in a period. A row is removed when its
-- threshold is no longer crossed (a raised budget), which re-arms it.
CREATE TABLE IF NOT EXISTS budget_fired (
    tenant_id      TEXT        NOT NULL,
    period_start   TIMESTAMPTZ NOT NULL,
    kind           TEXT        NOT NULL CHECK (kind IN ('threshold', 'forecast')),
    threshold      INTEGER     NOT NULL,
    PRIMARY KEY (tenant_id, period_start, kind, threshold)
);

-- Every alert ever raised, an outbox like throttle_state. The key makes it
-- one alert per tenant x threshold x period x budget version, whatever the
-- number of instances or restarts.
CREATE TABLE IF NOT EXISTS budget_alerts (
    alert_id       UUID        NOT NULL UNIQUE,
    tenant_id      TEXT        NOT NULL,
    period_start   TIMESTAMPTZ NOT NULL,
    period_end     TIMESTAMPTZ NOT NULL,
    kind           TEXT        NOT NULL CHECK (kind IN ('threshold', 'forecast')),
    threshold      INTEGER     NOT NULL,
    budget_version BIGINT      NOT NULL,
    spend          NUMERIC     NOT NULL,
    limit_amount   NUMERIC     NOT NULL,
    projected      NUMERIC,
    currency       CHAR(3)     NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    published_at   TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, period_start, kind, threshold, budget_version)
);
CREATE INDEX IF NOT EXISTS budget_alerts_unpublished ON budget_alerts (created_at) WHERE published_at IS NULL;
