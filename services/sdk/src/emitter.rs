use std::sync::Arc;
use std::time::Duration;

use meterline_core::{validate, UsageEvent, ValidationPolicy};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::Semaphore;

use crate::delivery::{self, Delivery, Notifier, Receipt};
use crate::{EmitError, EmitterConfig};

struct Callbacks;

impl ClientContext for Callbacks {}

impl ProducerContext for Callbacks {
    type DeliveryOpaque = Notifier;

    fn delivery(&self, result: &DeliveryResult<'_>, notifier: Notifier) {
        // The caller may have dropped its Delivery; the event was still sent.
        notifier.complete(match result {
            Ok(m) => Ok(Receipt { partition: m.partition(), offset: m.offset() }),
            Err((e, _)) => Err(e.clone()),
        });
    }
}

/// Emits usage events. Cheap to clone; clones share one producer.
#[derive(Clone)]
pub struct Emitter {
    producer: Arc<ThreadedProducer<Callbacks>>,
    topic: Arc<str>,
    permits: Arc<Semaphore>,
    policy: ValidationPolicy,
}

impl Emitter {
    pub fn new(config: EmitterConfig) -> Result<Emitter, EmitError> {
        if config.max_in_flight == 0 {
            return Err(EmitError::Config("max_in_flight must be at least 1".into()));
        }
        let producer: ThreadedProducer<Callbacks> = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", &config.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", config.linger_ms.to_string())
            .set("compression.type", &config.compression)
            .set("message.timeout.ms", config.delivery_timeout_ms.to_string())
            // librdkafka's own queue must never be the limit: the semaphore is.
            .set("queue.buffering.max.messages", (config.max_in_flight + 1024).min(10_000_000).to_string())
            .create_with_context(Callbacks)
            .map_err(|e| EmitError::Config(e.to_string()))?;
        Ok(Emitter {
            producer: Arc::new(producer),
            topic: config.topic.into(),
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            policy: ValidationPolicy::default(),
        })
    }

    /// Validates, encodes and enqueues `event`, waiting first if too many
    /// events are unacknowledged. The returned [`Delivery`] resolves when the
    /// broker has acknowledged (or finally refused) the event.
    pub async fn emit(&self, event: &UsageEvent<'_>) -> Result<Delivery, EmitError> {
        let now = now_micros();
        validate(event, &self.policy, now)?;
        let mut payload = Vec::with_capacity(128);
        meterline_core::avro::encode(event, &mut payload);
        self.emit_raw(event.tenant_id.as_bytes(), &payload).await
    }

    /// `emit`, then wait for the broker.
    pub async fn emit_and_wait(&self, event: &UsageEvent<'_>) -> Result<Receipt, EmitError> {
        self.emit(event).await?.await
    }

    /// Sends `payload` under `key` as it is, without validation: for tools
    /// and tests that must produce malformed messages. The bytes are copied
    /// into the producer's queue before this returns, so they are borrowed.
    pub async fn emit_raw(&self, key: &[u8], payload: &[u8]) -> Result<Delivery, EmitError> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| EmitError::Closed)?;
        let (notifier, delivery) = delivery::pair(permit);
        let mut record = BaseRecord::with_opaque_to(&self.topic, notifier).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(delivery),
                // Only possible if librdkafka's queue is smaller than our
                // bound (another producer setting); wait for it to drain.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Waits until every enqueued event is acknowledged or failed.
    pub async fn flush(&self, timeout: Duration) -> Result<(), EmitError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(timeout)).await.map_err(|_| EmitError::Closed)?.map_err(|e| match e {
            KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut) => EmitError::Timeout,
            e => EmitError::Kafka(e),
        })
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}
