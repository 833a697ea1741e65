//! The default of every `METERLINE_*` address and name: what runs against
//! the local stack (`scripts/stack.sh`). `scripts/lib.sh` spells the same
//! defaults for the scripts, and a test holds the two in agreement, so a
//! port or topic changed in one place cannot drift from the other.

pub const KAFKA_BROKERS: &str = "127.0.0.1:9092";
pub const USAGE_TOPIC: &str = "meterline.usage.v1";
pub const DLQ_TOPIC: &str = "meterline.usage.dlq";
pub const THROTTLE_TOPIC: &str = "meterline.throttle.v1";
pub const ALERTS_TOPIC: &str = "meterline.alerts.v1";
pub const ROLLUP_GROUP: &str = "meterline-rollup";
pub const ROLLUP_LISTEN: &str = "127.0.0.1:9464";
pub const BUDGET_LISTEN: &str = "127.0.0.1:9465";
pub const NOTIFY_GROUP: &str = "meterline-notify";
pub const NOTIFY_LISTEN: &str = "127.0.0.1:9466";
pub const GATEWAY_LISTEN: &str = "127.0.0.1:8080";
pub const RAG_LISTEN: &str = "127.0.0.1:8081";
pub const CLICKHOUSE_URL: &str = "http://127.0.0.1:8123";
pub const CLICKHOUSE_DATABASE: &str = "meterline";
pub const CLICKHOUSE_USER: &str = "default";
pub const CLICKHOUSE_PASSWORD: &str = "";
pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/meterline";
pub const SMTP_URL: &str = "smtp://127.0.0.1:2525";

/// Every default above with the variable that overrides it.
pub const ALL: &[(&str, &str)] = &[
    ("METERLINE_KAFKA_BROKERS", KAFKA_BROKERS),
    ("METERLINE_USAGE_TOPIC", USAGE_TOPIC),
    ("METERLINE_DLQ_TOPIC", DLQ_TOPIC),
    ("METERLINE_THROTTLE_TOPIC", THROTTLE_TOPIC),
    ("METERLINE_ALERTS_TOPIC", ALERTS_TOPIC),
    ("METERLINE_ROLLUP_GROUP", ROLLUP_GROUP),
    ("METERLINE_ROLLUP_LISTEN", ROLLUP_LISTEN),
    ("METERLINE_BUDGET_LISTEN", BUDGET_LISTEN),
    ("METERLINE_NOTIFY_GROUP", NOTIFY_GROUP),
    ("METERLINE_NOTIFY_LISTEN", NOTIFY_LISTEN),
    ("METERLINE_GATEWAY_LISTEN", GATEWAY_LISTEN),
    ("METERLINE_RAG_LISTEN", RAG_LISTEN),
    ("METERLINE_CLICKHOUSE_URL", CLICKHOUSE_URL),
    ("METERLINE_CLICKHOUSE_DATABASE", CLICKHOUSE_DATABASE),
    ("METERLINE_CLICKHOUSE_USER", CLICKHOUSE_USER),
    ("METERLINE_CLICKHOUSE_PASSWORD", CLICKHOUSE_PASSWORD),
    ("METERLINE_DATABASE_URL", DATABASE_URL),
    ("METERLINE_SMTP_URL", SMTP_URL),
];

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn every_variable_is_listed_once_and_named_for_meterline() {
        let mut names: Vec<&str> = ALL.iter().map(|(k, _)| *k).collect();
        assert!(names.iter().all(|k| k.starts_with("METERLINE_")));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
