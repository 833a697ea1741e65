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
            StorageError::ClickHouse(clickhouse::error::Error::BadResponse(text)) => !is_permanent_clickhouse(text),
            StorageError::ClickHouse(e) => {
                matches!(e, clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut)
            }
            StorageError::Postgres(e) => matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed),
            _ => false,
        }
    }
}

/// Server exceptions that say the query itself is wrong: retrying the same
/// query cannot help. (Everything else the server answers, such as too many
/// parts, memory or concurrency limits, or a restart, passes.)
fn is_permanent_clickhouse(response: &str) -> bool {
    // UNKNOWN_TABLE 60, UNKNOWN_IDENTIFIER 47, TYPE_MISMATCH 53, SYNTAX_ERROR 62,
    // TOO_BIG_AST 168, TOO_DEEP_AST 167, CANNOT_PARSE_* 6/27/38/41/72,
    // ILLEGAL_TYPE_OF_ARGUMENT 43, NO_SUCH_COLUMN_IN_TABLE 16, QUERY_IS_TOO_LARGE 63.
    const PERMANENT: [u32; 15] = [6, 16, 27, 38, 41, 43, 47, 53, 60, 62, 63, 72, 167, 168, 70];
    let code = response
        .split("Code: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse::<u32>().ok());
    code.is_some_and(|c| PERMANENT.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_errors_are_permanent_and_load_errors_are_not() {
        let too_big = "Code: 168, e.displayText() = DB::Exception: AST is too big. Maximum: 50000";
        assert!(!StorageError::ClickHouse(clickhouse::error::Error::BadResponse(too_big.into())).is_retriable());
        let parts = "Code: 252, e.displayText() = DB::Exception: Too many parts (300)";
        assert!(StorageError::ClickHouse(clickhouse::error::Error::BadResponse(parts.into())).is_retriable());
        assert!(StorageError::ClickHouse(clickhouse::error::Error::BadResponse("garbled".into())).is_retriable());
    }
}
