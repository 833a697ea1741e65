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

/// A `name` column's value: of a recorded migration, or of a table.
#[derive(Row, Serialize, Deserialize)]
struct Named {
    name: String,
}

/// Migrations that rebuild `usage_events` (0004, 0005) swap the copy in with
/// `RENAME TABLE usage_events TO usage_events_before_N, usage_events_rebuild
/// TO usage_events`, and a re-run starts by dropping both side tables. A
/// multi-table RENAME is not atomic in ClickHouse 18.16: interrupted between
/// its two renames, it leaves no `usage_events` and every row in
/// `usage_events_before_N`, which the re-run would then drop.
const REBUILT: &str = "usage_events";
const REBUILD_BACKUP_PREFIX: &str = "usage_events_before_";

/// Creates the database if missing and applies every migration not yet
/// recorded. Returns the names of the migrations it applied.
pub async fn migrate(cfg: &ClickHouseConfig) -> Result<Vec<String>, StorageError> {
    if !cfg.database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StorageError::Migration {
            name: "database".into(),
            reason: format!("database name {:?} must be [A-Za-z0-9_]", cfg.database),
        });
    }
    cfg.server_client().query(&format!("CREATE DATABASE IF NOT EXISTS {}", cfg.database)).execute().await?;
    let client = cfg.client();
    client
        .query(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (name String, applied_at DateTime) ENGINE = MergeTree ORDER BY name",
        )
        .execute()
        .await?;
    let done: Vec<String> =
        client.query("SELECT name FROM schema_migrations").fetch_all::<Named>().await?.into_iter().map(|a| a.name).collect();

    recover_interrupted_rebuild(cfg).await?;

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
                .map_err(|e| StorageError::Migration { name: (*name).to_owned(), reason: e.to_string() })?;
        }
        client.query("INSERT INTO schema_migrations (name, applied_at) VALUES (?, now())").bind(*name).execute().await?;
        info!(migration = name, "applied ClickHouse migration");
        applied.push((*name).to_owned());
    }
    Ok(applied)
}

/// Puts `usage_events` back from the backup a rebuild's interrupted swap left
/// (see [`REBUILT`]), so that the rebuild runs again from the start instead
/// of dropping the only copy.
async fn recover_interrupted_rebuild(cfg: &ClickHouseConfig) -> Result<(), StorageError> {
    let client = cfg.client();
    let tables: Vec<String> = client
        .query("SELECT name FROM system.tables WHERE database = ? AND (name = ? OR startsWith(name, ?)) ORDER BY name")
        .bind(&cfg.database)
        .bind(REBUILT)
        .bind(REBUILD_BACKUP_PREFIX)
        .fetch_all::<Named>()
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    if tables.iter().any(|t| t == REBUILT) {
        return Ok(());
    }
    // The newest rebuild's backup: names end in the migration's number.
    let Some(backup) = tables.last() else { return Ok(()) };
    tracing::warn!(backup, "a rebuild of usage_events was interrupted while swapping tables; putting the backup back");
    client
        .query(&format!("RENAME TABLE `{backup}` TO {REBUILT}"))
        .execute()
        .await
        .map_err(|e| StorageError::Migration { name: backup.clone(), reason: format!("restoring {REBUILT}: {e}") })
}

/// Splits a file into statements on `;` at line ends, dropping comment lines:
/// the HTTP interface takes one statement per request.
fn statements(sql: &str) -> Vec<String> {
    let body: String = sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    body.split(";\n").map(|s| s.trim().trim_end_matches(';').trim().to_owned()).filter(|s| !s.is_empty()).collect()
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
