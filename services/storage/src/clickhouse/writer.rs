//! The rollup's writes and the lookups that make them idempotent.

use clickhouse::Client;
use tracing::instrument;

use super::rows::{CostKey, CostRow, EventRow};
use crate::StorageError;

/// Inserts priced events. Returns once ClickHouse has written them (the HTTP
/// insert is synchronous), so an offset may be stored afterwards.
#[instrument(skip_all, fields(rows = rows.len()))]
pub async fn write_events(client: &Client, rows: &[EventRow<'_>]) -> Result<(), StorageError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<EventRow<'_>>("usage_events").await?;
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
pub(super) fn quoted_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
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
