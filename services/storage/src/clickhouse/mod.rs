//! ClickHouse: priced raw events and hourly cost rollups.
//!
//! Written for the SQL subset that both ClickHouse 18.16 (the dev machines)
//! and 24+ (production) accept; see `docs/clickhouse.md`.

mod config;
mod migrate;
mod native;
mod query;
mod rows;
mod seen;
mod writer;

pub use config::ClickHouseConfig;
pub use migrate::migrate;
pub use query::{hourly_costs, month_usage, HourlyCost, TenantUsage};
pub use rows::{CostKey, CostRow, EventRow, SeenEvent};
pub use seen::SeenLookup;
pub use writer::{stale_cost_keys, stream_costs, stream_events, write_costs, write_events, StreamedInsert};
