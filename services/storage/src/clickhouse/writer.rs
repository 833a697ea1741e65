//! The rollup's writes and the lookups that make them idempotent.

use std::future::Future;
use std::pin::Pin;

use clickhouse::Client;
use tracing::{instrument, Instrument as _};

use super::rows::{CostKey, CostRow, EventRow};
use crate::StorageError;

/// Inserts priced events. Returns once ClickHouse has written them (the HTTP
/// insert is synchronous), so an offset may be stored afterwards.
pub async fn write_events(client: &Client, rows: &[EventRow<'_>]) -> Result<(), StorageError> {
    stream_events(client, rows).await?.end().await
}

/// Inserts hourly cost deltas.
pub async fn write_costs(client: &Client, rows: &[CostRow]) -> Result<(), StorageError> {
    stream_costs(client, rows).await?.end().await
}

/// An insert whose rows are encoded and owned by it (it borrows nothing):
/// it can be ended later, on another task, while its caller goes on with
/// other work; ending it sends what is not sent yet and waits for
/// ClickHouse. Dropping it without ending it aborts the insert.
#[must_use = "an insert that is not ended is aborted"]
pub struct StreamedInsert(Option<Ending>);

/// What is left of an insert: sending the rest, then ClickHouse's answer.
type Ending = Pin<Box<dyn Future<Output = Result<(), clickhouse::error::Error>> + Send>>;

impl StreamedInsert {
    /// Sends the rest and waits until ClickHouse has stored every row (the
    /// HTTP insert is synchronous), or failed to.
    pub async fn end(self) -> Result<(), StorageError> {
        match self.0 {
            Some(end) => Ok(end.await?),
            None => Ok(()),
        }
    }
}

/// Starts inserting priced events in ClickHouse's columnar Native format
/// (see [`super::native`]): encodes them, and leaves sending them to the
/// returned insert, so that the caller goes on while ClickHouse takes them
/// in at its own pace. (Sent from here, the rollup's loop waited ~40–90 ms
/// per 80 000 events for ClickHouse to read the request.)
#[instrument(skip(client, rows), fields(rows = rows.len()))]
pub async fn stream_events(client: &Client, rows: &[EventRow<'_>]) -> Result<StreamedInsert, StorageError> {
    if rows.is_empty() {
        return Ok(StreamedInsert(None));
    }
    let block = EventRow::native_block(rows)?;
    // One block per insert, so nothing for ClickHouse to squash: with both
    // thresholds 0 it passes the block on instead of also appending it to
    // an accumulator (`perf`: ~2 % of its CPU). With only the rows
    // threshold 0 the bytes one (256 MiB) still made it accumulate. 18.16's
    // squashing stream still copies the block once, whatever the thresholds
    // (it takes the columns as mutable while the caller holds them too).
    let mut insert = client
        .insert_formatted_with("INSERT INTO usage_events FORMAT Native")
        .with_setting("min_insert_block_size_rows", "0")
        .with_setting("min_insert_block_size_bytes", "0");
    // The sending keeps this function's span, though it runs later.
    let send = async move {
        // A column at a time: ClickHouse starts parsing (and, with LZ4 on,
        // the client compressing) before the whole block is out.
        for chunk in block {
            insert.send(chunk).await?;
        }
        insert.end().await
    };
    Ok(StreamedInsert(Some(Box::pin(send.in_current_span()))))
}

/// Starts inserting hourly cost deltas (few rows: RowBinary); see
/// [`stream_events`].
#[instrument(skip(client, rows), fields(rows = rows.len()))]
pub async fn stream_costs(client: &Client, rows: &[CostRow]) -> Result<StreamedInsert, StorageError> {
    if rows.is_empty() {
        return Ok(StreamedInsert(None));
    }
    let mut insert = client.insert::<CostRow>("cost_hourly").await?;
    for row in rows {
        insert.write(row).await?;
    }
    Ok(StreamedInsert(Some(Box::pin(insert.end()))))
}

/// The keys an earlier attempt wrote for the batch of `src_partition`
/// starting at `batch_start`. Only asked when a partition is (re)started,
/// which is when such an attempt can exist.
#[instrument(skip(client))]
pub async fn stale_cost_keys(client: &Client, src_partition: i32, batch_start: i64) -> Result<Vec<CostKey>, StorageError> {
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
