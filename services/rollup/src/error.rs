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
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
