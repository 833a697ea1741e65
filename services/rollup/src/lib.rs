//! The rollup service: usage events in, priced events and hourly cost
//! rollups in ClickHouse out, every event counted exactly once.
//!
//! A batch is decoded, validated and priced by `meterline_core::intake`
//! (shared with the budget service), counted by `count` (dedupe against
//! what is stored, hourly totals: the pure part), and turned into
//! ClickHouse rows by `rows`; messages that cannot be counted go to the
//! dead-letter topic (`dlq`). `pipeline` is the Kafka loop around them and
//! its exactly-once protocol, with the resume guard in `pipeline::resume`.

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
