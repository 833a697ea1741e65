//! The budget service's configuration: defaults that run against the local
//! stack, each overridable by an environment variable.

use std::time::Duration;

use meterline_core::config::{defaults, Env, SecretUrl};

use crate::BudgetServiceError;

#[derive(Debug, Clone)]
pub struct Config {
    /// `METERLINE_KAFKA_BROKERS`.
    pub brokers: String,
    /// `METERLINE_USAGE_TOPIC`: the usage events to count.
    pub usage_topic: String,
    /// `METERLINE_THROTTLE_TOPIC`: where throttle commands go.
    pub throttle_topic: String,
    /// `METERLINE_ALERTS_TOPIC`: where budget alerts go.
    pub alerts_topic: String,
    /// `METERLINE_DATABASE_URL`: prices, budgets and the spend ledger.
    pub database_url: SecretUrl,
    /// `METERLINE_BUDGET_LISTEN`: `/metrics` and `/health`.
    pub listen: String,
    /// `METERLINE_BUDGET_BATCH_EVENTS`: most messages per ledger transaction.
    pub batch_max_events: usize,
    /// `METERLINE_BUDGET_BATCH_WAIT_MS`: how long a batch waits to fill; a
    /// bound on how stale a throttle decision can be.
    pub batch_max_wait: Duration,
    /// `METERLINE_BUDGET_DB_CONNECTIONS`: the Postgres pool; each usage
    /// partition runs its own transactions, so at least the partition count
    /// plus a few for the triggers and the outbox.
    pub db_connections: u32,
    /// `METERLINE_BUDGET_TICK_MS`: how often period rollovers are checked
    /// (a new month lifts a block within this).
    pub tick: Duration,
    /// `METERLINE_BUDGET_SWEEP_SECS`: how often every budget is judged again
    /// (forecasts change with time alone; a missed notification heals).
    pub sweep: Duration,
    /// `METERLINE_FORECAST_MIN_ELAPSED_HOURS`: how much of a period must have
    /// passed before its burn rate is projected.
    pub forecast_min_elapsed: chrono::Duration,
    /// `METERLINE_MAX_FUTURE_SKEW_SECS`, as for the rollup.
    pub max_future_skew: Duration,
    /// `METERLINE_PRICE_REFRESH_SECS`, as for the rollup.
    pub price_refresh: Duration,
    /// `METERLINE_SCHEMAS_DIR`, as for the rollup.
    pub schemas_dir: Option<String>,
    /// `METERLINE_BUDGET_CLOCK_FILE`: read "now" from this file (tests).
    pub clock_file: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, BudgetServiceError> {
        Self::from(&Env::process())
    }

    pub fn from(env: &Env) -> Result<Self, BudgetServiceError> {
        Ok(Self {
            brokers: env.string("METERLINE_KAFKA_BROKERS", defaults::KAFKA_BROKERS),
            usage_topic: env.string("METERLINE_USAGE_TOPIC", defaults::USAGE_TOPIC),
            throttle_topic: env.string("METERLINE_THROTTLE_TOPIC", defaults::THROTTLE_TOPIC),
            alerts_topic: env.string("METERLINE_ALERTS_TOPIC", defaults::ALERTS_TOPIC),
            database_url: meterline_storage::postgres::database_url(env),
            listen: env.string("METERLINE_BUDGET_LISTEN", defaults::BUDGET_LISTEN),
            batch_max_events: env.parse("METERLINE_BUDGET_BATCH_EVENTS", 5_000)?,
            batch_max_wait: Duration::from_millis(env.parse("METERLINE_BUDGET_BATCH_WAIT_MS", 10)?),
            db_connections: env.parse("METERLINE_BUDGET_DB_CONNECTIONS", 16)?,
            tick: Duration::from_millis(env.parse("METERLINE_BUDGET_TICK_MS", 250)?),
            sweep: Duration::from_secs(env.parse("METERLINE_BUDGET_SWEEP_SECS", 30)?),
            forecast_min_elapsed: chrono::Duration::hours(env.parse("METERLINE_FORECAST_MIN_ELAPSED_HOURS", 24)?),
            max_future_skew: Duration::from_secs(env.parse("METERLINE_MAX_FUTURE_SKEW_SECS", 300)?),
            price_refresh: Duration::from_secs(env.parse("METERLINE_PRICE_REFRESH_SECS", 30)?),
            schemas_dir: env.get("METERLINE_SCHEMAS_DIR"),
            clock_file: env.get("METERLINE_BUDGET_CLOCK_FILE"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_the_config_never_prints_a_password() {
        let env = Env::from_pairs(&[("METERLINE_DATABASE_URL", "postgres://app:pg-secret@db:5432/meterline")]);
        let printed = format!("{:?}", Config::from(&env).unwrap());
        assert!(!printed.contains("pg-secret") && printed.contains("postgres://app:***@db"), "{printed}");
    }
}
