//! The dead-letter topic: every message that cannot be counted goes there
//! with its original key and bytes and the reason, so nothing is lost and
//! the stream keeps flowing.

use std::time::Duration;

use meterline_core::intake::{Message, Rejected};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    source_topic: String,
}

impl DeadLetters {
    pub fn new(brokers: &str, topic: &str, source_topic: &str) -> Result<Self, KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(Self { producer, topic: topic.to_owned(), source_topic: source_topic.to_owned() })
    }

    /// Sends every rejected message and waits until the broker has them all;
    /// only then may the batch's offsets be committed.
    pub async fn send_all(&self, messages: &[Message<'_>], rejected: &[Rejected]) -> Result<(), KafkaError> {
        // Enqueue everything first, then collect acknowledgements, so a
        // batch with many rejects costs one round trip, not one per message.
        let mut pending = Vec::with_capacity(rejected.len());
        for r in rejected {
            let m = &messages[r.index];
            let partition = m.partition.to_string();
            let offset = m.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header { key: "meterline.reason", value: Some(r.reason) })
                .insert(Header { key: "meterline.error", value: Some(r.detail.as_str()) })
                .insert(Header { key: "meterline.source.topic", value: Some(self.source_topic.as_str()) })
                .insert(Header { key: "meterline.source.partition", value: Some(partition.as_str()) })
                .insert(Header { key: "meterline.source.offset", value: Some(offset.as_str()) });
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).payload(m.payload.unwrap_or_default()).headers(headers);
            if let Some(key) = m.key {
                record = record.key(key);
            }
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push(delivery),
                // The local queue is full: wait for what is in flight, then
                // send this one the slow way.
                Err((e, record)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    for d in pending.drain(..) {
                        ack(d.await)?;
                    }
                    self.producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e)?;
                }
                Err((e, _)) => return Err(e),
            }
        }
        for d in pending {
            ack(d.await)?;
        }
        Ok(())
    }
}

fn ack(result: Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>) -> Result<(), KafkaError> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}
