//! The budget service: month-to-date spend per tenant from the usage
//! stream, judged against each tenant's budget on every change, with
//! throttle commands for gateways and alerts for people published to Kafka.
//!
//! - `ledger`: counts each event once (same intake and pricing as the
//!   rollup, same `(tenant, event_id)` rule) into Postgres, with the
//!   consumed offsets, in one transaction.
//! - `evaluate`: judges budgets and writes throttle commands and alerts to
//!   outbox tables, in the same transaction as the spend that caused them.
//! - `outbox`: publishes what was decided, after commit, exactly once.
//! - `consumer`, `triggers`: what makes evaluation happen (new usage; budget
//!   changes, period rollovers and the passing of time).

mod app;
mod clock;
mod config;
mod consumer;
mod error;
pub mod evaluate;
pub mod ledger;
mod metrics;
mod outbox;
mod triggers;

pub use app::run;
pub use clock::Clock;
pub use config::Config;
pub use error::BudgetServiceError;
