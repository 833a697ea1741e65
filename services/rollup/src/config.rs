//! The rollup's configuration: every field has a default that runs against
//! the local stack, and an environment variable that overrides it.

use std::time::Duration;

use meterline_core::config::{defaults, Env, SecretUrl};
use meterline_storage::clickhouse::ClickHouseConfig;

use crate::RollupError;

#[derive(Debug, Clone)]
pub struct Config {
    /// `METERLINE_KAFKA_BROKERS`: bootstrap servers.
    pub brokers: String,
    /// `METERLINE_USAGE_TOPIC`: where usage events arrive.
    pub usage_topic: String,
    /// `METERLINE_DLQ_TOPIC`: where messages that cannot be counted go.
    pub dlq_topic: String,
    /// `METERLINE_ROLLUP_GROUP`: consumer group shared by all instances.
    pub group_id: String,
    /// `METERLINE_ROLLUP_LISTEN`: address of `/metrics` and `/health`.
    pub listen: String,
    /// `METERLINE_CLICKHOUSE_*`.
    pub clickhouse: ClickHouseConfig,
    /// `METERLINE_DATABASE_URL`: Postgres with the price book.
    pub database_url: SecretUrl,
    /// `METERLINE_ROLLUP_BATCH_EVENTS`: most messages in one batch.
    pub batch_max_events: usize,
    /// `METERLINE_ROLLUP_BATCH_WAIT_MS`: how long a batch waits to fill.
    pub batch_max_wait: Duration,
    /// `METERLINE_MAX_FUTURE_SKEW_SECS`: how far ahead of our clock
    /// `occurred_at` may be.
    pub max_future_skew: Duration,
    /// `METERLINE_PRICE_REFRESH_SECS`: how often the price book is reloaded.
    pub price_refresh: Duration,
    /// `METERLINE_KAFKA_SESSION_TIMEOUT_MS`: how soon the group notices a
    /// dead instance and hands its partitions to the others.
    pub session_timeout_ms: u32,
    /// `METERLINE_ROLLUP_STALL_SECS`: how long a partition may have waiting
    /// messages and an unmoving committed offset, while not assigned to this
    /// instance, before the instance rejoins the group to get it assigned
    /// (default: five session timeouts).
    pub stall_after: Duration,
    /// `METERLINE_ROLLUP_PREFETCH_KB`: most message data librdkafka holds
    /// ahead of the batch in hand.
    pub prefetch_kb: u32,
    /// `METERLINE_SCHEMAS_DIR`: optional directory of extra writer schemas
    /// (`*.avsc`, e.g. newer emitters') to accept besides the built-in ones.
    pub schemas_dir: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, RollupError> {
        Self::from(&Env::process())
    }

    pub fn from(env: &Env) -> Result<Self, RollupError> {
        let session_timeout_ms = env.parse("METERLINE_KAFKA_SESSION_TIMEOUT_MS", 10_000)?;
        Ok(Self {
            brokers: env.string("METERLINE_KAFKA_BROKERS", defaults::KAFKA_BROKERS),
            usage_topic: env.string("METERLINE_USAGE_TOPIC", defaults::USAGE_TOPIC),
            dlq_topic: env.string("METERLINE_DLQ_TOPIC", defaults::DLQ_TOPIC),
            group_id: env.string("METERLINE_ROLLUP_GROUP", defaults::ROLLUP_GROUP),
            listen: env.string("METERLINE_ROLLUP_LISTEN", defaults::ROLLUP_LISTEN),
            clickhouse: ClickHouseConfig::from(env),
            database_url: meterline_storage::postgres::database_url(env),
            batch_max_events: env.parse("METERLINE_ROLLUP_BATCH_EVENTS", 20_000)?,
            batch_max_wait: Duration::from_millis(env.parse("METERLINE_ROLLUP_BATCH_WAIT_MS", 100)?),
            max_future_skew: Duration::from_secs(env.parse("METERLINE_MAX_FUTURE_SKEW_SECS", 300)?),
            price_refresh: Duration::from_secs(env.parse("METERLINE_PRICE_REFRESH_SECS", 30)?),
            session_timeout_ms,
            stall_after: Duration::from_secs(env.parse("METERLINE_ROLLUP_STALL_SECS", u64::from(session_timeout_ms) * 5 / 1000)?),
            prefetch_kb: env.parse("METERLINE_ROLLUP_PREFETCH_KB", 32_768)?,
            schemas_dir: env.get("METERLINE_SCHEMAS_DIR"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_the_config_never_prints_a_password() {
        let env = Env::from_pairs(&[
            ("METERLINE_DATABASE_URL", "postgres://app:pg-secret@db:5432/meterline"),
            ("METERLINE_CLICKHOUSE_URL", "http://ch:ch-secret@clickhouse:8123"),
        ]);
        let printed = format!("{:?}", Config::from(&env).unwrap());
        assert!(!printed.contains("pg-secret") && !printed.contains("ch-secret"), "{printed}");
        assert!(printed.contains("postgres://app:***@db:5432/meterline"), "{printed}");
    }

    #[test]
    fn a_bad_number_names_its_variable() {
        let err = Config::from(&Env::from_pairs(&[("METERLINE_ROLLUP_BATCH_EVENTS", "many")])).unwrap_err();
        assert!(err.to_string().contains("METERLINE_ROLLUP_BATCH_EVENTS"), "{err}");
    }
}
