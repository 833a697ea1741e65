use meterline_storage::StorageError;
use rdkafka::error::KafkaError;

/// Why the rollup service stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollupError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("configuration: {0}")]
    Env(#[from] meterline_core::config::EnvError),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("schema: {0}")]
    Schema(String),
    #[error("shut down before the batch in hand could be written ({0}); it will be replayed")]
    Interrupted(String),
    /// A task the rollup spawned (a duplicate lookup, the end of a batch's
    /// inserts) panicked or was cancelled: not ClickHouse failing, so not
    /// retried as an outage is. A panic is a bug that the same batch would
    /// most likely hit again, and tasks are cancelled only when the runtime
    /// shuts down. The service stops with the batch uncommitted; it is
    /// replayed after the restart.
    #[error("{task} task failed: {reason}")]
    TaskFailed { task: &'static str, reason: String },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl RollupError {
    /// A spawned task that did not answer (see [`RollupError::TaskFailed`]).
    pub(crate) fn task_failed(task: &'static str, e: tokio::task::JoinError) -> Self {
        RollupError::TaskFailed { task, reason: e.to_string() }
    }
}
