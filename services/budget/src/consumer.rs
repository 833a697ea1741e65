//! The usage loops: read every partition of the usage topic from where the
//! ledger says, count each batch, judge the tenants it touched, commit,
//! publish.
//!
//! No consumer group: offsets live in Postgres next to the spend they
//! cover, and every instance reads every partition. Instances are
//! redundant rather than sharded; the ledger's primary key makes each
//! event count once whichever instance gets there first, so a dead instance
//! needs no rebalance to be covered.
//!
//! Each partition has its own loop and its own transactions, so a batch
//! waits only for its own partition's previous one: the ledger's inserts
//! (mostly primary-key maintenance) run side by side instead of in one
//! queue, and each transaction is a partition's share of the load. Usage
//! is keyed by tenant, so partitions rarely share rows; when they do, the
//! row locks serialise them and every statement locks in key order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use meterline_core::avro::Codec;
use meterline_core::intake::{prepare, Message as Incoming};
use meterline_core::{PriceBook, ValidationPolicy};
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{Consumer, DefaultConsumerContext, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::evaluate::evaluate;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::{ledger, BudgetServiceError, Clock};
use meterline_runtime::backoff::Backoff;
use meterline_runtime::http::Health;
use meterline_runtime::rewind::{RewindGuard, Verdict};

/// What every partition's loop shares.
pub struct Shared {
    pub consumer: Arc<StreamConsumer>,
    pub topic: String,
    pub codec: Codec,
    pub prices: Arc<RwLock<Arc<PriceBook>>>,
    pub policy: ValidationPolicy,
    pub pool: PgPool,
    pub outbox: Arc<Outbox>,
    pub clock: Clock,
    pub metrics: Metrics,
    pub health: Arc<Health>,
    /// How many partition loops are retrying a failed batch: the service is
    /// healthy only while none is, whichever loop committed last.
    pub failing: AtomicUsize,
    pub batch_max_events: usize,
    pub batch_max_wait: Duration,
    pub forecast_min_elapsed: chrono::Duration,
}

/// One partition's loop.
pub struct UsageLoop {
    shared: Arc<Shared>,
    queue: StreamPartitionQueue<DefaultConsumerContext>,
    /// The partition this loop reads.
    partition: i32,
    /// The offset the next message must have, once known.
    expected: Option<i64>,
    /// Whether the broker delivered from `expected`, and how far back to
    /// seek if not.
    rewinds: RewindGuard,
}

/// Assigns every partition at its stored offset (the beginning where none
/// is stored) and gives each its own loop.
pub async fn assign(shared: &Arc<Shared>) -> Result<Vec<UsageLoop>, BudgetServiceError> {
    let (consumer, topic) = (&shared.consumer, shared.topic.as_str());
    let stored = ledger::stored_offsets(&shared.pool, topic).await?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut list = TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        if let Some(e) = t.error() {
            return Err(BudgetServiceError::Config(format!("usage topic {topic}: {e:?}")));
        }
        for p in t.partitions() {
            let at = stored.get(&p.id()).map_or(Offset::Beginning, |&o| Offset::Offset(o));
            list.add_partition_offset(topic, p.id(), at)?;
        }
    }
    if list.count() == 0 {
        return Err(BudgetServiceError::Config(format!("usage topic {topic} has no partitions (create it first)")));
    }
    consumer.assign(&list)?;
    // Split right after assigning (assign undoes earlier splits), before
    // the first fetch can have landed in the main queue; see `drive`.
    let mut loops = Vec::with_capacity(list.count());
    for e in list.elements() {
        let p = e.partition();
        let queue = consumer
            .split_partition_queue(topic, p)
            .ok_or_else(|| BudgetServiceError::Config(format!("cannot read partition {p} of {topic} on its own")))?;
        let expected = stored.get(&p).copied();
        loops.push(UsageLoop { shared: shared.clone(), queue, partition: p, expected, rewinds: RewindGuard::default() });
    }
    info!(topic, partitions = list.count(), resumed = stored.len(), "reading usage events");
    Ok(loops)
}

/// Serves the consumer's main queue (errors, statistics) while the
/// partitions are read from their own queues. A message here was fetched
/// before its partition was split off; it is sent back to the partition's
/// queue by seeking there (the loop skips what it has counted already).
pub async fn drive(consumer: Arc<StreamConsumer>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let m = tokio::select! {
            m = consumer.recv() => m,
            _ = shutdown.changed() => return,
        };
        match m {
            Ok(m) => {
                let (topic, p, o) = (m.topic().to_owned(), m.partition(), m.offset());
                drop(m);
                debug!(partition = p, offset = o, "message on the main queue; re-reading it through the partition's queue");
                if let Err(e) = consumer.seek(&topic, p, Offset::Offset(o), Duration::from_secs(5)) {
                    warn!(partition = p, error = %e, "seek back to the partition queue failed");
                }
            }
            Err(e) => debug!(error = %e, "usage topic read error; librdkafka retries"),
        }
    }
}

impl UsageLoop {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), BudgetServiceError> {
        self.shared.health.set(true);
        let mut backoff = Backoff::default();
        loop {
            let batch = self.next_batch(&mut shutdown).await;
            if batch.is_empty() {
                if *shutdown.borrow() {
                    return Ok(());
                }
                continue;
            }
            let batch = self.guard(batch);
            // A failed batch is retried as it is: every step is idempotent,
            // and the offsets move only with the commit that counts it.
            let mut failing = false;
            loop {
                match self.handle(&batch).await {
                    Ok(()) => {
                        if failing {
                            self.shared.failing.fetch_sub(1, Ordering::Relaxed);
                        }
                        self.shared.health.set(self.shared.failing.load(Ordering::Relaxed) == 0);
                        backoff.reset();
                        break;
                    }
                    Err(e) => {
                        self.shared.metrics.failure(&e);
                        if !failing {
                            failing = true;
                            self.shared.failing.fetch_add(1, Ordering::Relaxed);
                        }
                        self.shared.health.set(false);
                        if !e.is_retriable() {
                            return Err(e);
                        }
                        let delay = backoff.next_delay();
                        warn!(error = %e, retry_in = ?delay, "batch failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.changed() => return Ok(()),
                        }
                    }
                }
            }
        }
    }

    /// Waits for a first message, then takes what arrives without pausing
    /// (up to the size and time bounds): low latency when traffic is light,
    /// large transactions when it is heavy.
    async fn next_batch(&mut self, shutdown: &mut watch::Receiver<bool>) -> Vec<OwnedMessage> {
        let mut batch = Vec::new();
        let first = tokio::select! {
            m = self.queue.recv() => m,
            _ = shutdown.changed() => return batch,
        };
        match first {
            Ok(m) => batch.push(m.detach()),
            Err(e) => {
                debug!(error = %e, "usage topic read error; librdkafka retries");
                return batch;
            }
        }
        let deadline = tokio::time::Instant::now() + self.shared.batch_max_wait;
        while batch.len() < self.shared.batch_max_events {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            let pause = (deadline - now).min(Duration::from_millis(5));
            match tokio::time::timeout(pause, self.queue.recv()).await {
                Ok(Ok(m)) => batch.push(detach(m)),
                Ok(Err(e)) => debug!(error = %e, "usage topic read error"),
                Err(_) => break,
            }
        }
        batch
    }

    /// Drops the rest of the batch where the broker resumed past the
    /// expected offset, and rewinds the partition (see
    /// [`meterline_runtime::rewind`]). Rewinding is safe: the ledger ignores
    /// what it has seen. Every message is checked, not only a batch's
    /// first: a fetch can resume past a record batch's start mid-stream too.
    fn guard(&mut self, batch: Vec<OwnedMessage>) -> Vec<OwnedMessage> {
        let p = self.partition;
        let mut kept = Vec::with_capacity(batch.len());
        for m in batch {
            if let Some(want) = self.expected {
                match self.rewinds.check(want, m.offset()) {
                    Verdict::Accept => {}
                    Verdict::Rewind { to } => {
                        warn!(
                            partition = p,
                            expected = want,
                            got = m.offset(),
                            rewind_to = to,
                            "broker resumed past the stored offset; rewinding"
                        );
                        self.shared.metrics.rewinds.inc();
                        if let Err(e) = self.shared.consumer.seek(&self.shared.topic, p, Offset::Offset(to), Duration::from_secs(5)) {
                            warn!(partition = p, error = %e, "rewind failed; will retry on the next message");
                        }
                        // The rest of the batch lies past the gap too.
                        break;
                    }
                    Verdict::GiveUp => {
                        warn!(partition = p, expected = want, got = m.offset(), "gap after the expected offset; continuing");
                    }
                }
            }
            self.expected = Some(m.offset() + 1);
            kept.push(m);
        }
        // Messages below `want` (from a rewind) are kept: they are counted
        // already, so the ledger skips them, and they carry `expected` on.
        kept
    }

    async fn handle(&self, batch: &[OwnedMessage]) -> Result<(), BudgetServiceError> {
        if batch.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let book = self.shared.prices.read().unwrap_or_else(|e| e.into_inner()).clone();
        let messages: Vec<Incoming<'_>> =
            batch.iter().map(|m| Incoming { partition: m.partition(), offset: m.offset(), key: m.key(), payload: m.payload() }).collect();
        // Validation uses the real clock, as the rollup does: the same
        // events are valid for both.
        let (priced, rejected) = prepare(&self.shared.codec, &book, &self.shared.policy, chrono::Utc::now().timestamp_micros(), &messages);
        let mut next: HashMap<i32, i64> = HashMap::new();
        for m in batch {
            let e = next.entry(m.partition()).or_insert(0);
            *e = (*e).max(m.offset() + 1);
        }
        let mut tx = self.shared.pool.begin().await?;
        let t0 = std::time::Instant::now();
        let recorded = ledger::record(&mut tx, &self.shared.topic, &priced, &next).await?;
        let t1 = std::time::Instant::now();
        let decided = evaluate(&mut tx, &recorded.tenants, self.shared.clock.now(), self.shared.forecast_min_elapsed).await?;
        if !decided.any() {
            // Nothing leaves the service from this transaction, so it need
            // not wait for the WAL flush: if Postgres crashes and loses it,
            // its offsets go with its spend and the events are read from
            // Kafka and counted again. A transaction that queues a command
            // or an alert commits durably, before anything is published.
            // (Waiting for every flush let the disk's stalls, 60–150 ms at
            // once on every partition, into enforcement latency.)
            sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        }
        let t2 = std::time::Instant::now();
        tx.commit().await?;
        debug!(
            record_ms = (t1 - t0).as_secs_f64() * 1000.0,
            judge_ms = (t2 - t1).as_secs_f64() * 1000.0,
            commit_ms = t2.elapsed().as_secs_f64() * 1000.0,
            "ledger transaction"
        );
        self.shared.metrics.events.with_label_values(&["counted"]).inc_by(recorded.counted as u64);
        self.shared.metrics.events.with_label_values(&["duplicate"]).inc_by(recorded.duplicates as u64);
        self.shared.metrics.events.with_label_values(&["rejected"]).inc_by(rejected.len() as u64);
        self.shared.metrics.evaluations.with_label_values(&["usage"]).inc_by(recorded.tenants.len() as u64);
        if decided.any() {
            // A failure here is not the batch's: the outbox rows are
            // committed and the periodic flush publishes them.
            if let Err(e) = self.shared.outbox.flush().await {
                self.shared.metrics.failure(&e);
                warn!(error = %e, "publishing decisions failed; the periodic flush will retry");
            }
        }
        self.shared.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        // first_event_age_ms: how long the batch's first event waited since
        // it was produced (producer clock), where enforcement latency goes.
        // Worked out only when debug logging is on.
        debug!(
            messages = batch.len(),
            counted = recorded.counted,
            tenants = recorded.tenants.len(),
            commands = decided.commands,
            alerts = decided.alerts,
            ms = started.elapsed().as_millis() as u64,
            first_event_age_ms =
                chrono::Utc::now().timestamp_millis() - batch.iter().filter_map(|m| m.timestamp().to_millis()).min().unwrap_or(0),
            "batch committed"
        );
        Ok(())
    }
}

fn detach(m: BorrowedMessage<'_>) -> OwnedMessage {
    m.detach()
}
