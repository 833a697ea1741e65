-- The effective-dated price book. A price applies from effective_from until
-- the next entry for the same (provider, model, unit). Importing the same row
-- again replaces it, so imports are idempotent.
CREATE TABLE IF NOT EXISTS prices (
    provider       TEXT        NOT NULL,
    model          TEXT        NOT NULL,   -- '*' prices every model of the provider
    unit           TEXT        NOT NULL CHECK (unit IN ('input_token', 'output_token', 'cached_input_token',
                                                        'cache_write_token', 'embedding_token', 'vector_query', 'request')),
    unit_price     NUMERIC     NOT NULL CHECK (unit_price >= 0),
    per            NUMERIC     NOT NULL CHECK (per > 0),
    currency       CHAR(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    effective_from TIMESTAMPTZ NOT NULL,
    imported_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, model, unit, effective_from)
);

-- Negotiated per-tenant prices: either a rate replacing the list price or a
-- discount off it. unit '*' applies to every unit of the model.
CREATE TABLE IF NOT EXISTS tenant_price_overrides (
    tenant_id      TEXT        NOT NULL,
    provider       TEXT        NOT NULL,
    model          TEXT        NOT NULL,
    unit           TEXT        NOT NULL DEFAULT '*',
    rule           TEXT        NOT NULL CHECK (rule IN ('rate', 'discount_percent')),
    unit_price     NUMERIC     CHECK (unit_price >= 0),
    per            NUMERIC     CHECK (per > 0),
    percent        NUMERIC     CHECK (percent BETWEEN 0 AND 100),
    effective_from TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, provider, model, unit, effective_from),
    CHECK ((rule = 'rate' AND unit_price IS NOT NULL AND per IS NOT NULL)
        OR (rule = 'discount_percent' AND percent IS NOT NULL))
);
