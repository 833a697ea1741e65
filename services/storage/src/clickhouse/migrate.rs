//! Ordered ClickHouse migrations, recorded so that applying them again is a
//! no-op. The files live in `migrations/clickhouse` and are compiled in.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::ClickHouseConfig;
use crate::StorageError;

const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_usage_events", include_str!("../../../../migrations/clickhouse/0001_usage_events.sql")),
    ("0002_cost_hourly", include_str!("../../../../migrations/clickhouse/0002_cost_hourly.sql")),
    ("0003_rollup_views", include_str!("../../../../migrations/clickhouse/0003_rollup_views.sql")),
    ("0004_usage_events_fine_index", include_str!("../../../../migrations/clickhouse/0004_usage_events_fine_index.sql")),
    ("0005_usage_events_by_event_id", include_str!("../../../../migrations/clickhouse/0005_usage_events_by_event_id.sql")),
];

#[derive(Row, Serialize, Deserialize)]
struct Applied {
    name: String,
}

/// Creates the database if missing and applies every migration not yet
/// recorded. Returns the names of the migrations it applied.
pub async fn migrate(cfg: &ClickHouseConfig) -> Result<Vec<String>, StorageError> {
    if !cfg.database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StorageError::Migration {
            name: "database".into(),
            reason: format!("database name {:?} must be [A-Za-z0-9_]", cfg.database),
        });
    }
    cfg.server_client()
        .query(&format!("CREATE DATABASE IF NOT EXISTS {}", cfg.database))
        .execute()
        .await?;
    let client = cfg.client();
    client
        .query(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (name String, applied_at DateTime) ENGINE = MergeTree ORDER BY name",
        )
        .execute()
        .await?;
    let done: Vec<String> = client
        .query("SELECT name FROM schema_migrations")
        .fetch_all::<Applied>()
        .await?
        .into_iter()
        .map(|a| a.name)
        .collect();

    let mut applied = Vec::new();
    for (name, sql) in MIGRATIONS {
        if done.iter().any(|d| d == name) {
            continue;
        }
        for statement in statements(sql) {
            client
                .query(&statement)
                .execute()
                .await
                .map_err(|e| StorageError::Migration {
                    name: (*name).to_owned(),
                    reason: e.to_string(),
                })?;
        }
        client
            .query("INSERT INTO schema_migrations (name, applied_at) VALUES (?, now())")
            .bind(*name)
            .execute()
            .await?;
        info!(migration = name, "applied ClickHouse migration");
        applied.push((*name).to_owned());
    }
    Ok(applied)
}

/// Splits a file into statements on `;` at line ends, dropping comment lines:
/// the HTTP interface takes one statement per request.
fn statements(sql: &str) -> Vec<String> {
    let body: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    body.split(";\n")
        .map(|s| s.trim().trim_end_matches(';').trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_splits_into_statements() {
        for (name, sql) in super::MIGRATIONS {
            let s = super::statements(sql);
            assert!(!s.is_empty(), "{name}");
            assert!(s.iter().all(|s| !s.contains("--")), "{name}");
        }
        assert_eq!(super::statements(super::MIGRATIONS[2].1).len(), 2);
    }
}
