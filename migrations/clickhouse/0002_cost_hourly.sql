-- Hourly cost rollup, written as one delta row per
-- (tenant, hour, provider, model, source, kind, currency) and per source batch
-- (src_partition, batch_start). A batch is keyed by where it starts, so a
-- replay after a crash writes the same keys and replaces what the crashed
-- attempt wrote instead of adding to it (the rollup also zeroes keys only the
-- crashed attempt had). Queries read it with FINAL, which collapses any
-- replaced row not merged away yet. currency is '' for unpriced events.
CREATE TABLE IF NOT EXISTS cost_hourly
(
    tenant_id           String,
    hour                DateTime,
    provider            String,
    model               String,
    source              String,
    kind                String,
    currency            String,
    src_partition       Int32,
    batch_start         Int64,
    events              UInt64,
    unpriced_events     UInt64,
    input_tokens        UInt64,
    output_tokens       UInt64,
    cached_input_tokens UInt64,
    cache_write_tokens  UInt64,
    embedding_tokens    UInt64,
    vector_queries      UInt64,
    requests            UInt64,
    cost                Decimal(38, 18)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour, provider, model, source, kind, currency, src_partition, batch_start)
