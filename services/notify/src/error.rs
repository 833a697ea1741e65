/// Why the notifier stopped or a step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("configuration: {0}")]
    Env(#[from] meterline_core::config::EnvError),
    #[error(transparent)]
    Storage(#[from] meterline_storage::StorageError),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A task of the service died (a bug, or the runtime shutting down).
    #[error("task {task} failed: {reason}")]
    TaskFailed { task: &'static str, reason: String },
}
