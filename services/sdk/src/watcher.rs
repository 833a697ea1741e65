//! Follows the throttle topic and answers `decision(tenant)` from memory.
//!
//! A gateway asks on every request, so the answer must cost nanoseconds:
//! a background thread reads the topic (every partition, from the
//! beginning, no consumer group: every gateway needs every tenant) into a
//! [`CommandTable`], and `decision` is a read-locked map lookup.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use meterline_core::avro::decode_throttle;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tracing::{debug, warn};

use crate::decision::{now_micros, CommandTable, Decision, Decisions, FailMode};
use crate::EmitError;
use meterline_core::config::{defaults, Env};

/// How a [`ThrottleWatcher`] reaches the throttle topic.
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// Bootstrap servers (`METERLINE_KAFKA_BROKERS`).
    pub brokers: String,
    /// Throttle topic (`METERLINE_THROTTLE_TOPIC`).
    pub topic: String,
    /// What to answer before the topic has been read to its end
    /// (`METERLINE_THROTTLE_FAIL_MODE`: `open` or `closed`).
    pub fail_mode: FailMode,
    /// Longest the broker may hold a fetch open: the floor of enforcement
    /// latency when the topic is quiet.
    pub fetch_wait_ms: u32,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        Self {
            brokers: defaults::KAFKA_BROKERS.into(),
            topic: defaults::THROTTLE_TOPIC.into(),
            fail_mode: FailMode::Open,
            fetch_wait_ms: 5,
        }
    }
}

impl WatcherConfig {
    pub fn from_env() -> Result<Self, EmitError> {
        Self::from(&Env::process())
    }

    /// Defaults, with `METERLINE_KAFKA_BROKERS`, `METERLINE_THROTTLE_TOPIC`
    /// and `METERLINE_THROTTLE_FAIL_MODE` in `env` applied.
    pub fn from(env: &Env) -> Result<Self, EmitError> {
        let d = Self::default();
        Ok(Self {
            brokers: env.string("METERLINE_KAFKA_BROKERS", &d.brokers),
            topic: env.string("METERLINE_THROTTLE_TOPIC", &d.topic),
            fail_mode: env.parse("METERLINE_THROTTLE_FAIL_MODE", d.fail_mode)?,
            ..d
        })
    }
}

struct Shared {
    table: CommandTable,
    caught_up: AtomicBool,
    stop: AtomicBool,
    applied: AtomicU64,
    undecodable: AtomicU64,
}

/// The gateway's view of the throttle topic. Dropping it stops the reader.
pub struct ThrottleWatcher {
    shared: Arc<Shared>,
    fail_mode: FailMode,
    reader: Option<JoinHandle<()>>,
}

impl ThrottleWatcher {
    /// Starts reading the topic in a background thread.
    pub fn start(config: WatcherConfig) -> Result<Self, EmitError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            // Required by librdkafka; never used to join a group or commit.
            .set("group.id", "meterline-throttle-watcher")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", config.fetch_wait_ms.to_string())
            .set("fetch.min.bytes", "1")
            // See the budget service: empty partitions must not stall
            // the first command for 500 ms.
            .set("fetch.error.backoff.ms", "20")
            .create()?;
        let shared = Arc::new(Shared {
            table: CommandTable::default(),
            caught_up: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            applied: AtomicU64::new(0),
            undecodable: AtomicU64::new(0),
        });
        let reader_shared = shared.clone();
        let topic = config.topic.clone();
        let reader = std::thread::Builder::new()
            .name("meterline-throttle-watcher".into())
            .spawn(move || read(consumer, &topic, &reader_shared))
            .map_err(|e| EmitError::Config(format!("cannot start the watcher thread: {e}")))?;
        Ok(Self { shared, fail_mode: config.fail_mode, reader: Some(reader) })
    }

    /// Whether the topic has been read to the end it had when the watcher
    /// started.
    pub fn is_caught_up(&self) -> bool {
        self.shared.caught_up.load(Ordering::Acquire)
    }

    /// Waits until caught up, at most `timeout`. Returns whether it is.
    pub async fn wait_caught_up(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_caught_up() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The newest command held for `tenant_id`.
    pub fn command(&self, tenant_id: &str) -> Option<Arc<crate::decision::Command>> {
        self.shared.table.command(tenant_id)
    }

    /// Commands applied (newer than what was held) and payloads that could
    /// not be decoded, since start.
    pub fn counts(&self) -> (u64, u64) {
        (self.shared.applied.load(Ordering::Relaxed), self.shared.undecodable.load(Ordering::Relaxed))
    }
}

impl Decisions for ThrottleWatcher {
    fn decision(&self, tenant_id: &str) -> Decision {
        if self.fail_mode == FailMode::Closed && !self.is_caught_up() {
            return Decision::Block { reason: "budget state not yet known (throttle watcher catching up)".into(), until_micros: None };
        }
        self.shared.table.decision_at(tenant_id, now_micros())
    }
}

impl Drop for ThrottleWatcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn read(consumer: BaseConsumer, topic: &str, shared: &Shared) {
    let mut remaining = loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        match assign_all(&consumer, topic) {
            Ok(partitions) => break partitions,
            Err(e) => {
                warn!(topic, error = %e, "throttle topic not readable yet; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    while !shared.stop.load(Ordering::Acquire) {
        match consumer.poll(Duration::from_millis(100)) {
            // Caught up: past the end offsets seen at start, and nothing more
            // waiting (Tansu 0.6 reports an end offset short of the last
            // record batch's later records).
            None if remaining.is_empty() => shared.caught_up.store(true, Ordering::Release),
            None => {}
            Some(Ok(m)) => {
                remaining.retain(|&(p, end)| !(p == m.partition() && m.offset() + 1 >= end));
                match m.payload().map(decode_throttle) {
                    Some(Ok(c)) => {
                        let kept = shared.table.apply(c);
                        shared.applied.fetch_add(u64::from(kept), Ordering::Relaxed);
                    }
                    Some(Err(e)) => {
                        shared.undecodable.fetch_add(1, Ordering::Relaxed);
                        warn!(partition = m.partition(), offset = m.offset(), error = %e, "undecodable throttle command skipped");
                    }
                    None => {}
                }
            }
            Some(Err(e)) => debug!(error = %e, "throttle topic read error; librdkafka retries"),
        }
    }
}

/// Assigns every partition from the beginning; returns each non-empty
/// partition with the end offset it had, which is what "caught up" means.
fn assign_all(consumer: &BaseConsumer, topic: &str) -> Result<Vec<(i32, i64)>, KafkaError> {
    let timeout = Duration::from_secs(5);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition));
    }
    let mut list = TopicPartitionList::new();
    let mut remaining = Vec::new();
    for &p in &partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)?;
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        if high > low {
            remaining.push((p, high));
        }
    }
    consumer.assign(&list)?;
    Ok(remaining)
}
