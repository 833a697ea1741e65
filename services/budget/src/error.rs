/// Why the budget service stopped or a step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetServiceError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("configuration: {0}")]
    Env(#[from] meterline_core::config::EnvError),
    #[error(transparent)]
    Storage(#[from] meterline_storage::StorageError),
    #[error("Postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A task of the service died (a bug): the service stops.
    #[error("internal: {0}")]
    Internal(String),
}

impl BudgetServiceError {
    /// Whether the same step may succeed later (the service retries those
    /// and replays the batch; anything else stops it).
    pub fn is_retriable(&self) -> bool {
        match self {
            BudgetServiceError::Storage(e) => e.is_retriable(),
            BudgetServiceError::Postgres(e) => {
                !matches!(e, sqlx::Error::Configuration(_) | sqlx::Error::ColumnNotFound(_) | sqlx::Error::TypeNotFound { .. })
            }
            BudgetServiceError::Kafka(_) => true,
            BudgetServiceError::Config(_) | BudgetServiceError::Env(_) | BudgetServiceError::Io(_) | BudgetServiceError::Internal(_) => {
                false
            }
        }
    }
}
