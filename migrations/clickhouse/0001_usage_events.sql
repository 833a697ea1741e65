-- Priced raw usage events: one row per distinct (tenant_id, event_id).
--
-- This table is also the dedupe state of the rollup: before counting a batch
-- the rollup looks its ids up here, so memory does not grow with the number
-- of events seen. src_partition/src_offset record where the first occurrence
-- was read, which tells a replay of the same batch (same offsets, counted
-- again) from a true duplicate (an earlier offset, not counted).
-- ReplacingMergeTree collapses the identical rows a replayed batch writes.
CREATE TABLE IF NOT EXISTS usage_events
(
    tenant_id           String,
    event_id            String,
    occurred_at         DateTime,
    occurred_at_micros  Int64,
    source              String,
    kind                String,
    provider            String,
    model               String,
    input_tokens        UInt64,
    output_tokens       UInt64,
    cached_input_tokens UInt64,
    cache_write_tokens  UInt64,
    embedding_tokens    UInt64,
    vector_queries      UInt64,
    requests            UInt64,
    priced              UInt8,
    currency            String,
    cost                Decimal(38, 18),
    attribute_keys      Array(String),
    attribute_values    Array(String),
    src_partition       Int32,
    src_offset          Int64,
    ingested_at         DateTime
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (tenant_id, event_id)
