-- usage_events again, with an index mark every 1 024 rows instead of 8 192.
--
-- The rollup's duplicate lookup (`event_id IN <batch ids>`) reads, per
-- tenant, the index granules its ids fall in. With time-ordered ids
-- (UUIDv7, what the SDK makes) that is the last granule or two of each
-- tenant, whatever the size of the month: 8 192 rows per tenant per lookup
-- at the default, 1 024 here. The primary index stays small (at 100 M rows
-- a month, ~100 000 marks).
--
-- The table is rebuilt and swapped in; run migrations with the rollup
-- stopped, as always. Each step can run again after a crash.
DROP TABLE IF EXISTS usage_events_rebuild;
DROP TABLE IF EXISTS usage_events_before_0004;
CREATE TABLE usage_events_rebuild AS usage_events
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (tenant_id, event_id)
SETTINGS index_granularity = 1024;
INSERT INTO usage_events_rebuild SELECT * FROM usage_events;
RENAME TABLE usage_events TO usage_events_before_0004, usage_events_rebuild TO usage_events;
DROP TABLE usage_events_before_0004;
