//! Row types of the ClickHouse tables, in column order: RowBinary, which
//! the cost rows and the lookups travel in, is positional; events go as
//! Native blocks ([`EventRow::native_block`]).

use std::borrow::Cow;

use bytes::Bytes;
use clickhouse::Row;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::native::{self, Column};
use crate::StorageError;

/// One priced event (`usage_events`), borrowing its text from the decoded
/// batch: no copies on the way to the insert.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow<'a> {
    pub tenant_id: &'a str,
    pub event_id: &'a str,
    /// Seconds since the epoch (ClickHouse `DateTime`).
    pub occurred_at: u32,
    pub occurred_at_micros: i64,
    pub source: &'static str,
    pub kind: &'static str,
    pub provider: &'a str,
    pub model: &'a str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub embedding_tokens: u64,
    pub vector_queries: u64,
    pub requests: u64,
    pub priced: u8,
    pub currency: &'a str,
    pub cost: Decimal,
    /// Stored as the columns `attribute_keys` and `attribute_values`.
    pub attributes: &'a [(Cow<'a, str>, Cow<'a, str>)],
    pub src_partition: i32,
    pub src_offset: i64,
    pub ingested_at: u32,
}

impl EventRow<'_> {
    /// `rows` as one Native block of `usage_events` (column names and types
    /// as in the migrations), in chunks to send in order. Fails if a cost
    /// has more places than the column keeps.
    ///
    /// The rows go in the table's sorting key order, `(event_id, tenant_id)`
    /// (migration 0005), compared bytewise as ClickHouse compares strings.
    /// ClickHouse checks whether an inserted block is already sorted and
    /// then skips sorting and permuting it, ~8 % of its CPU (`perf`); the
    /// sort here costs less (see [`sorting_key_order`]).
    pub(super) fn native_block(rows: &[EventRow<'_>]) -> Result<Vec<Bytes>, StorageError> {
        let order = sorting_key_order(rows);
        // Bytes a value takes, about, so that the buffers rarely grow.
        let col = |name, type_name, width| Column::new(name, type_name, rows.len() * width);
        let mut columns = [
            col("tenant_id", "String", 16),
            col("event_id", "String", 37),
            col("occurred_at", "DateTime", 4),
            col("occurred_at_micros", "Int64", 8),
            col("source", "String", 8),
            col("kind", "String", 8),
            col("provider", "String", 10),
            col("model", "String", 20),
            col("input_tokens", "UInt64", 8),
            col("output_tokens", "UInt64", 8),
            col("cached_input_tokens", "UInt64", 8),
            col("cache_write_tokens", "UInt64", 8),
            col("embedding_tokens", "UInt64", 8),
            col("vector_queries", "UInt64", 8),
            col("requests", "UInt64", 8),
            col("priced", "UInt8", 1),
            col("currency", "String", 4),
            col("cost", "Decimal(38, 18)", 16),
            col("attribute_keys", "Array(String)", 8),
            col("attribute_values", "Array(String)", 8),
            col("src_partition", "Int32", 4),
            col("src_offset", "Int64", 8),
            col("ingested_at", "DateTime", 4),
        ];
        for r in order.iter().map(|&i| &rows[i as usize]) {
            let [tenant_id, event_id, occurred_at, occurred_at_micros, source, kind, provider, model, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, embedding_tokens, vector_queries, requests, priced, currency, cost, attribute_keys, attribute_values, src_partition, src_offset, ingested_at] =
                &mut columns;
            tenant_id.string(r.tenant_id);
            event_id.string(r.event_id);
            occurred_at.fixed(r.occurred_at.to_le_bytes());
            occurred_at_micros.fixed(r.occurred_at_micros.to_le_bytes());
            source.string(r.source);
            kind.string(r.kind);
            provider.string(r.provider);
            model.string(r.model);
            input_tokens.fixed(r.input_tokens.to_le_bytes());
            output_tokens.fixed(r.output_tokens.to_le_bytes());
            cached_input_tokens.fixed(r.cached_input_tokens.to_le_bytes());
            cache_write_tokens.fixed(r.cache_write_tokens.to_le_bytes());
            embedding_tokens.fixed(r.embedding_tokens.to_le_bytes());
            vector_queries.fixed(r.vector_queries.to_le_bytes());
            requests.fixed(r.requests.to_le_bytes());
            priced.fixed([r.priced]);
            currency.string(r.currency);
            cost.fixed(crate::decimal::to_scaled(r.cost)?.to_le_bytes());
            attribute_keys.string_array(r.attributes.iter().map(|(k, _)| k.as_ref()));
            attribute_values.string_array(r.attributes.iter().map(|(_, v)| v.as_ref()));
            src_partition.fixed(r.src_partition.to_le_bytes());
            src_offset.fixed(r.src_offset.to_le_bytes());
            ingested_at.fixed(r.ingested_at.to_le_bytes());
        }
        Ok(native::block(rows.len(), columns.into()))
    }
}

/// Indices of `rows` in `usage_events` sorting key order: by `event_id`,
/// then `tenant_id`, bytewise with a prefix first (ClickHouse's order for
/// `String`, and `[u8]`'s).
///
/// Sorted by the ids' first 32 bytes as two integers, in a flat array, and
/// only rows whose first 32 bytes tie are compared whole: comparing the
/// strings themselves, through the index, took ~0.3 µs per event, as much
/// as it saved ClickHouse. Zero padding keeps the order: when two padded
/// prefixes differ, the strings differ first at the same byte, or the one
/// whose padding differs is a prefix of the other and so sorts first.
fn sorting_key_order(rows: &[EventRow<'_>]) -> Vec<u32> {
    let half = |id: &[u8], at: usize| {
        let mut bytes = [0u8; 16];
        let part = id.get(at..).unwrap_or_default();
        let n = part.len().min(16);
        bytes[..n].copy_from_slice(&part[..n]);
        u128::from_be_bytes(bytes)
    };
    let mut keyed: Vec<(u128, u128, u32)> =
        rows.iter().zip(0u32..).map(|(r, i)| (half(r.event_id.as_bytes(), 0), half(r.event_id.as_bytes(), 16), i)).collect();
    let whole = |i: u32| {
        let r = &rows[i as usize];
        (r.event_id.as_bytes(), r.tenant_id.as_bytes())
    };
    keyed.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| whole(a.2).cmp(&whole(b.2))));
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

/// The grouping of an hourly cost row, without the batch it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Row, Serialize, Deserialize)]
pub struct CostKey {
    pub tenant_id: String,
    /// Start of the hour, seconds since the epoch.
    pub hour: u32,
    pub provider: String,
    pub model: String,
    pub source: String,
    pub kind: String,
    /// `""` for unpriced events.
    pub currency: String,
}

/// One delta of `cost_hourly`: what one batch of one partition adds to a
/// key. Fields are spelled out (no `flatten`) because RowBinary is positional.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct CostRow {
    pub tenant_id: String,
    pub hour: u32,
    pub provider: String,
    pub model: String,
    pub source: String,
    pub kind: String,
    pub currency: String,
    pub src_partition: i32,
    pub batch_start: i64,
    pub events: u64,
    pub unpriced_events: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub embedding_tokens: u64,
    pub vector_queries: u64,
    pub requests: u64,
    #[serde(with = "crate::decimal::scaled")]
    pub cost: Decimal,
}

impl CostRow {
    /// An empty delta for `key`; also what cancels a key that only a crashed
    /// attempt of the same batch wrote.
    pub fn zero(key: CostKey, src_partition: i32, batch_start: i64) -> Self {
        Self {
            tenant_id: key.tenant_id,
            hour: key.hour,
            provider: key.provider,
            model: key.model,
            source: key.source,
            kind: key.kind,
            currency: key.currency,
            src_partition,
            batch_start,
            events: 0,
            unpriced_events: 0,
            input_tokens: 0,
            output_tokens: 0,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            embedding_tokens: 0,
            vector_queries: 0,
            requests: 0,
            cost: Decimal::ZERO,
        }
    }

    pub fn key(&self) -> CostKey {
        CostKey {
            tenant_id: self.tenant_id.clone(),
            hour: self.hour,
            provider: self.provider.clone(),
            model: self.model.clone(),
            source: self.source.clone(),
            kind: self.kind.clone(),
            currency: self.currency.clone(),
        }
    }
}

/// Where an event id was first read, as recorded in `usage_events`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct SeenEvent {
    pub tenant_id: String,
    pub event_id: String,
    pub src_partition: i32,
    pub src_offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(tenant_id: &'a str, event_id: &'a str) -> EventRow<'a> {
        EventRow {
            tenant_id,
            event_id,
            occurred_at: 0,
            occurred_at_micros: 0,
            source: "gateway",
            kind: "chat",
            provider: "",
            model: "",
            input_tokens: 0,
            output_tokens: 0,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            embedding_tokens: 0,
            vector_queries: 0,
            requests: 0,
            priced: 0,
            currency: "",
            cost: Decimal::ZERO,
            attributes: &[],
            src_partition: 0,
            src_offset: 0,
            ingested_at: 0,
        }
    }

    #[test]
    fn rows_go_in_sorting_key_order_bytewise() {
        // Short ids, ids that tie on their first 32 bytes, a NUL that
        // looks like padding, and ids that tie whole.
        let long = |tail: &str| format!("{}{tail}", "x".repeat(32));
        let (l1, l0, l_nul) = (long("1"), long("0"), long("\0"));
        let x32 = "x".repeat(32);
        let rows = [
            row("t", "b"),
            row("t2", "a"),
            row("t1", "a"),
            row("t", "B"),
            row("t", "ab"),
            row("t", "a"),
            row("t", "a\0"),
            row("t", &l1),
            row("t", &l0),
            row("t", &x32),
            row("t", &l_nul),
        ];
        let ids: Vec<(&str, &str)> =
            sorting_key_order(&rows).iter().map(|&i| (rows[i as usize].event_id, rows[i as usize].tenant_id)).collect();
        let mut expected: Vec<(&str, &str)> = rows.iter().map(|r| (r.event_id, r.tenant_id)).collect();
        expected.sort_by(|a, b| (a.0.as_bytes(), a.1.as_bytes()).cmp(&(b.0.as_bytes(), b.1.as_bytes())));
        assert_eq!(ids, expected);
        assert_eq!(&ids[..4], [("B", "t"), ("a", "t"), ("a", "t1"), ("a", "t2")]);
    }
}
