/// Every way the storage adapters fail, grouped by cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("Postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("Postgres migration: {0}")]
    PostgresMigration(#[from] sqlx::migrate::MigrateError),
    #[error("migration {name}: {reason}")]
    Migration { name: String, reason: String },
    #[error("amount {0} does not fit the storage's decimal type")]
    DecimalOverflow(String),
    #[error("invalid stored data: {0}")]
    InvalidData(String),
}

impl StorageError {
    /// Whether trying the same operation again later may succeed. Network and
    /// server-side trouble is retriable; a value the schema cannot hold is not.
    pub fn is_retriable(&self) -> bool {
        match self {
            // BadResponse is the server refusing for now (overloaded, too
            // many parts, restarting); malformed rows are Custom/DataFormat.
            StorageError::ClickHouse(e) => matches!(
                e,
                clickhouse::error::Error::Network(_)
                    | clickhouse::error::Error::TimedOut
                    | clickhouse::error::Error::BadResponse(_)
            ),
            StorageError::Postgres(e) => matches!(
                e,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            ),
            _ => false,
        }
    }
}
