//! The rollup service: usage events in, priced events and hourly cost
//! rollups in ClickHouse out, every event counted exactly once.
//!
//! `transform` is the pure part (decode, validate, price, dedupe,
//! aggregate); `pipeline` is the Kafka loop and its exactly-once protocol;
//! `sink` and `dlq` are where results go.

pub mod allocator;
mod app;
mod config;
mod dlq;
mod error;
pub mod metrics;
mod pipeline;
pub mod sink;
pub mod transform;
mod watchdog;

pub use app::run;
pub use config::Config;
pub use error::RollupError;
