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
    /// A task of the service panicked (a bug) or was cancelled (the
    /// runtime is shutting down): not the dependency's failure, and not
    /// retriable, as the same step would most likely fail the same way.
    #[error("task failed: {0}")]
    TaskFailed(String),
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
            BudgetServiceError::Config(_) | BudgetServiceError::Env(_) | BudgetServiceError::Io(_) | BudgetServiceError::TaskFailed(_) => {
                false
            }
        }
    }
}
