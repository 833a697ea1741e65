//! The rollup service: usage events in, priced events and hourly cost
//! rollups in ClickHouse out, every event counted exactly once.
//!
//! A batch goes: decoded, validated and priced by `meterline_core::intake`;
//! counted by `count` (dedupe against what is stored, hourly totals), the
//! pure part; turned into ClickHouse rows by `rows`; bad messages to the
//! dead-letter topic by `dlq`. `pipeline` is the Kafka loop around them and
//! its exactly-once protocol (`pipeline::resume` the resume guard).

pub mod allocator;
mod app;
mod config;
pub mod count;
mod dlq;
mod error;
pub mod fast_hash;
pub mod metrics;
mod pipeline;
pub mod rows;
mod watchdog;

pub use app::run;
pub use config::Config;
pub use error::RollupError;
