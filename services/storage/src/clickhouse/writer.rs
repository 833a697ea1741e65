//! The rollup's writes and the lookups that make them idempotent.

use std::collections::BTreeSet;

use clickhouse::Client;
use tracing::instrument;

use super::rows::{CostKey, CostRow, EventRow, SeenEvent};
use crate::StorageError;

/// Large enough for the id lists of a whole batch; the default (256 KiB)
/// would cap a dedupe lookup at a few thousand ids.
const MAX_QUERY_SIZE: &str = "67108864";

/// Inserts priced events. Returns once ClickHouse has written them (the HTTP
/// insert is synchronous), so an offset may be stored afterwards.
#[instrument(skip_all, fields(rows = rows.len()))]
pub async fn write_events(client: &Client, rows: &[EventRow]) -> Result<(), StorageError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<EventRow>("usage_events").await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}

/// Inserts hourly cost deltas.
#[instrument(skip_all, fields(rows = rows.len()))]
pub async fn write_costs(client: &Client, rows: &[CostRow]) -> Result<(), StorageError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<CostRow>("cost_hourly").await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}

/// Where each of `event_ids` (of `tenants`) was first stored, searching only
/// the given months (`YYYYMM`): an event's duplicates are expected within
/// the month it occurred in, and partition pruning keeps the lookup cheap.
#[instrument(skip_all, fields(ids = event_ids.len()))]
pub async fn lookup_seen(
    client: &Client,
    tenants: &BTreeSet<&str>,
    event_ids: &[&str],
    months: &BTreeSet<u32>,
) -> Result<Vec<SeenEvent>, StorageError> {
    // Each query scans the batch's tenants' month, so one query per batch is
    // far cheaper than several; the syntax-tree limits (50 000 elements by
    // default, a few per quoted id) are raised to fit a batch, and very
    // large batches still go in slices.
    let mut seen = Vec::new();
    for ids in event_ids.chunks(LOOKUP_SLICE) {
        let sql = format!(
            "SELECT tenant_id, event_id, src_partition, src_offset FROM usage_events \
             WHERE toYYYYMM(occurred_at) IN ({}) AND tenant_id IN ({}) AND event_id IN ({})",
            months.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
            quoted_list(tenants.iter().copied()),
            quoted_list(ids.iter().copied()),
        );
        seen.extend(
            client
                .query(&sql)
                .with_setting("max_query_size", MAX_QUERY_SIZE)
                .with_setting("max_ast_elements", MAX_AST_ELEMENTS)
                .with_setting("max_expanded_ast_elements", MAX_AST_ELEMENTS)
                .fetch_all::<SeenEvent>()
                .await?,
        );
    }
    Ok(seen)
}

/// Ids per dedupe lookup query, and the syntax-tree bound that admits them.
const LOOKUP_SLICE: usize = 100_000;
const MAX_AST_ELEMENTS: &str = "2000000";

/// The keys an earlier attempt wrote for the batch of `src_partition`
/// starting at `batch_start`. Only asked when a partition is (re)started,
/// which is when such an attempt can exist.
#[instrument(skip(client))]
pub async fn stale_cost_keys(
    client: &Client,
    src_partition: i32,
    batch_start: i64,
) -> Result<Vec<CostKey>, StorageError> {
    Ok(client
        .query(
            "SELECT DISTINCT tenant_id, hour, provider, model, source, kind, currency \
             FROM cost_hourly WHERE src_partition = ? AND batch_start = ?",
        )
        .bind(src_partition)
        .bind(batch_start)
        .fetch_all::<CostKey>()
        .await?)
}

/// `'a','b'` with ClickHouse string escaping. Tenant ids are validated to a
/// plain alphabet and event ids are UUIDs, but escape anyway: these are
/// values that came off the wire.
fn quoted_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('\'');
        for c in item.chars() {
            if c == '\'' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('\'');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_and_escapes() {
        assert_eq!(super::quoted_list(["a", "b'c", "d\\"].into_iter()), r"'a','b\'c','d\\'");
    }
}
