//! Postgres: the price book, budgets and the budget service's ledger.

pub mod budgets;
mod live_prices;
pub mod notify;
mod prices;

pub use live_prices::{live_price_book, LivePriceBook};
pub use prices::{import_prices, list_overrides, list_prices, load_price_book};
pub use sqlx::PgPool;

use meterline_core::config::{defaults, Env, SecretUrl};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use tracing::info;

use crate::StorageError;

/// `METERLINE_DATABASE_URL` in `env`, or the local default.
pub fn database_url(env: &Env) -> SecretUrl {
    SecretUrl::new(env.string("METERLINE_DATABASE_URL", defaults::DATABASE_URL))
}

/// `METERLINE_DATABASE_URL` in the process environment, or the local default.
pub fn database_url_from_env() -> SecretUrl {
    database_url(&Env::process())
}

/// A small pool: most of Meterline's Postgres traffic is configuration,
/// not events.
pub async fn connect(url: &str) -> Result<PgPool, StorageError> {
    connect_sized(url, 4).await
}

/// A pool of at most `max_connections`, for a service that runs that many
/// transactions side by side.
pub async fn connect_sized(url: &str, max_connections: u32) -> Result<PgPool, StorageError> {
    let options = PgConnectOptions::from_str(url)?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options)
        .await?)
}

/// Creates the database named in `url` if it does not exist, then applies
/// the migrations in `migrations/postgres`.
pub async fn migrate(url: &str) -> Result<PgPool, StorageError> {
    let options = PgConnectOptions::from_str(url)?;
    let database = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)").bind(&database).fetch_one(&mut admin).await?;
    if !exists {
        // Identifiers cannot be bound as parameters; quote it instead.
        let quoted = format!("\"{}\"", database.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}")).execute(&mut admin).await {
            Ok(_) => info!(database, "created Postgres database"),
            // Another process created it between the check and here.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    let pool = connect(url).await?;
    sqlx::migrate!("../../migrations/postgres").run(&pool).await?;
    Ok(pool)
}
