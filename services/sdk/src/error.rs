use meterline_core::Rejection;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Why an event was not emitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The event breaks the usage event rules; sending it would only put it
    /// in the dead-letter topic.
    #[error("invalid usage event: {0}")]
    Invalid(#[from] Rejection),
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("flush did not finish in time")]
    Timeout,
    #[error("the emitter was shut down before the broker answered")]
    Closed,
    #[error("configuration: {0}")]
    Config(String),
}

impl From<meterline_core::config::EnvError> for EmitError {
    fn from(e: meterline_core::config::EnvError) -> Self {
        EmitError::Config(e.to_string())
    }
}

impl EmitError {
    /// Whether emitting the same event again may succeed. The producer has
    /// already retried for `delivery_timeout_ms`, so a caller that retries
    /// should do so later, with the same `event_id`.
    pub fn is_retriable(&self) -> bool {
        match self {
            EmitError::Kafka(e) => matches!(
                e.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::MessageTimedOut
                        | RDKafkaErrorCode::QueueFull
                        | RDKafkaErrorCode::BrokerTransportFailure
                        | RDKafkaErrorCode::AllBrokersDown
                        | RDKafkaErrorCode::RequestTimedOut
                        | RDKafkaErrorCode::NotEnoughReplicas
                        | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
                        | RDKafkaErrorCode::LeaderNotAvailable
                        | RDKafkaErrorCode::NotLeaderForPartition
                        | RDKafkaErrorCode::NetworkException
                )
            ),
            EmitError::Timeout => true,
            EmitError::Invalid(_) | EmitError::Closed | EmitError::Config(_) => false,
        }
    }
}
