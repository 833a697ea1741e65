//! Meterline's storage adapters.
//!
//! - [`clickhouse`]: priced raw events and hourly cost rollups, written
//!   idempotently by key (ClickHouse has no insert deduplication here).
//! - [`postgres`]: the price book.
//!
//! Both apply their own migrations from `migrations/`.

pub mod clickhouse;
pub mod decimal;
mod error;
pub mod postgres;

pub use error::StorageError;
