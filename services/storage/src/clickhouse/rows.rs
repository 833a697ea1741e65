//! Row types of the ClickHouse tables, in column order (RowBinary is
//! positional).

use clickhouse::Row;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One priced event (`usage_events`), borrowing its text from the decoded
/// batch: no copies on the way to the insert.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
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
    #[serde(with = "crate::decimal::scaled")]
    pub cost: Decimal,
    pub attribute_keys: Vec<&'a str>,
    pub attribute_values: Vec<&'a str>,
    pub src_partition: i32,
    pub src_offset: i64,
    pub ingested_at: u32,
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
