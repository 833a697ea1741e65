//! The notifier: budget alerts from Kafka to the people who must act on
//! them, by signed webhooks and email, each delivery made once. See README.md beside
//! this crate for its boundaries and the delivery state machine.
//!
//! `intake` takes alerts in (Kafka → Postgres outbox, idempotent by alert
//! id); `worker` sends due deliveries (`webhook` or `email` for the
//! channel, `schedule` for retries) and records each attempt; `event` is
//! what is delivered.

mod app;
mod config;
pub mod email;
mod error;
pub mod event;
mod intake;
pub mod metrics;
pub mod outcome;
pub mod schedule;
pub mod throttle;
pub mod webhook;
mod worker;

pub use app::run;
pub use config::Config;
pub use error::NotifyError;
