use anyhow::{Context, Result};
use meterline_storage::{clickhouse::ClickHouseConfig, postgres};

/// Applies every migration; running it again is a no-op.
pub async fn run() -> Result<()> {
    let url = postgres::database_url_from_env();
    postgres::migrate(url.expose()).await.context("Postgres migrations")?;
    println!("postgres: migrations applied");
    let applied = meterline_storage::clickhouse::migrate(&ClickHouseConfig::from_env()).await.context("ClickHouse migrations")?;
    if applied.is_empty() {
        println!("clickhouse: up to date");
    } else {
        println!("clickhouse: applied {}", applied.join(", "));
    }
    Ok(())
}
