-- Day and month rollups. They are views over the hourly deltas rather than
-- materialized views: a materialized view would add every replayed delta
-- again, while FINAL over cost_hourly sees each batch once.
CREATE VIEW IF NOT EXISTS cost_daily AS
SELECT tenant_id, toDate(hour) AS day, provider, model, source, kind, currency,
       sum(events) AS events, sum(unpriced_events) AS unpriced_events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(embedding_tokens) AS embedding_tokens, sum(vector_queries) AS vector_queries,
       sum(requests) AS requests, sum(cost) AS cost
FROM cost_hourly FINAL
GROUP BY tenant_id, day, provider, model, source, kind, currency;

CREATE VIEW IF NOT EXISTS cost_monthly AS
SELECT tenant_id, toStartOfMonth(hour) AS month, provider, model, source, kind, currency,
       sum(events) AS events, sum(unpriced_events) AS unpriced_events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(embedding_tokens) AS embedding_tokens, sum(vector_queries) AS vector_queries,
       sum(requests) AS requests, sum(cost) AS cost
FROM cost_hourly FINAL
GROUP BY tenant_id, month, provider, model, source, kind, currency
