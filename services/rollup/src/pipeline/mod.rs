//! The consume → process → write → commit loop.
//!
//! Exactly-once without transactions (the local broker has none, and
//! ClickHouse here has no insert deduplication):
//! 1. A batch's offsets are committed before the next batch is written, so
//!    at most one uncommitted batch per partition can exist when an instance
//!    dies, and it starts at the committed offset. Only reading, decoding
//!    and looking up the next batch overlap ClickHouse storing the last one.
//! 2. Each partition's rollup deltas are keyed by the offset its batch starts
//!    at. A replay after a crash starts at the same offset, so it replaces
//!    the crashed attempt's deltas (and zeroes keys only that attempt had).
//! 3. Duplicates are found in `usage_events`, which records where each event
//!    was first read; memory holds only the batches in hand (at most two).
//!
//! This file is the loop; `resume` decides which messages of a batch count
//! after a (re)start and `offsets` asks Kafka what it needs and commits,
//! `batch` holds a batch between reading and committing, `write` looks it
//! up, counts it and streams its rows, `retry` waits out a failing write.

mod batch;
mod offsets;
mod resume;
mod retry;
mod write;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt as _;

use meterline_core::avro::Codec;
use meterline_core::intake::{self, Message};
use meterline_core::{PriceBook, ValidationPolicy};
use meterline_storage::clickhouse as ch;
use meterline_storage::StorageError;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::Offset;
use tokio::sync::watch;
use tracing::{debug, info, instrument, warn};

use batch::{message, spawn_now, stored, Decoded, EarlyLookup, InFlight, Outcome, Started};
pub use resume::ResumeGuard;
use resume::Runs;
use retry::Retry;
use write::Streamed;

use crate::count;
use crate::dlq::DeadLetters;
use crate::fast_hash::FastSet;
use crate::metrics::Metrics;
use crate::RollupError;
use meterline_runtime::http::Health;

pub struct Pipeline {
    pub consumer: Arc<StreamConsumer>,
    pub topic: String,
    pub codec: Codec,
    pub prices: Arc<RwLock<Arc<PriceBook>>>,
    pub policy: ValidationPolicy,
    pub clickhouse: clickhouse::Client,
    pub seen: ch::SeenLookup,
    pub dead_letters: DeadLetters,
    pub metrics: Metrics,
    pub health: Arc<Health>,
    pub batch_max_events: usize,
    pub batch_max_wait: Duration,
    /// Where each partition goes on after our last batch, and whether the
    /// broker resumed where it should after a (re)start.
    pub resume: ResumeGuard,
    pub watchdog: crate::watchdog::Watchdog,
    /// How often the watchdog looks while the instance waits for messages.
    pub watchdog_every: Duration,
    pub next_check: tokio::time::Instant,
    /// Hashes (tenant, event id) pairs for [`EarlyLookup`].
    pub id_hasher: foldhash::fast::RandomState,
}

impl Pipeline {
    /// Runs until `shutdown` changes; the batch in hand is finished first.
    ///
    /// A batch is written in two steps: [`Self::start`] looks its ids up,
    /// encodes its rows and starts the inserts, whose rows a task of their
    /// own sends, and [`Self::finish`] waits until ClickHouse has stored them
    /// and commits. In between, while ClickHouse takes in and writes the
    /// rows, the next batch is read and decoded: on two cores the two overlap
    /// instead of taking turns.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), RollupError> {
        self.health.set(true);
        // Batches borrow librdkafka's fetched buffers (no copy per message)
        // from this handle, not from `self`, which the loop needs mutably.
        let consumer = self.consumer.clone();
        let mut in_flight: Option<InFlight<'_>> = None;
        loop {
            let waited = Instant::now();
            let next = self.next_batch(&consumer, &mut shutdown, &mut in_flight).await?;
            let Some(batch) = next else {
                if let Some(previous) = in_flight.take() {
                    self.complete(previous, &mut shutdown).await?;
                }
                break;
            };
            debug!(messages = batch.len(), collect_ms = waited.elapsed().as_millis() as u64, "batch collected");
            let decoded = self.decode(&batch);
            let early = self.look_up_early(&decoded, in_flight.as_ref().map(|(_, s)| s.counted_ids.clone())).await;
            if let Some(previous) = in_flight.take() {
                self.complete(previous, &mut shutdown).await?;
            }
            in_flight = self.start(&batch, decoded, early, &mut shutdown).await?.map(|started| (batch, started));
            // A busy instance checks between batches.
            if tokio::time::Instant::now() >= self.next_check {
                self.check_group();
            }
        }
        info!("rollup drained and stopped");
        Ok(())
    }

    /// Collects a batch: up to `batch_max_events` messages or
    /// `batch_max_wait`, then whatever is already fetched, so that a batch
    /// ends where a fetch response ended when the local queue is short (with
    /// a deep prefetch it often does not). Fetch responses carry whole
    /// record batches, so the committed offset is then a record-batch
    /// boundary: some brokers (Tansu 0.6) cannot resume from inside a record
    /// batch. The extra draining is capped at `4 × batch_max_events`; a cut
    /// inside a record batch is still safe, as the resume guard rewinds.
    ///
    /// While it waits for the first message, the batch in flight is finished
    /// as soon as ClickHouse has stored it: a stream that goes quiet must not
    /// leave its last batch uncommitted.
    async fn next_batch<'c>(
        &mut self,
        consumer: &'c StreamConsumer,
        shutdown: &mut watch::Receiver<bool>,
        in_flight: &mut Option<InFlight<'c>>,
    ) -> Result<Option<Vec<BorrowedMessage<'c>>>, RollupError> {
        let first = loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(None),
                _ = tokio::time::sleep_until(self.next_check) => self.check_group(),
                stored = stored(in_flight.as_mut().map(|(_, s)| &mut s.storing)), if in_flight.is_some() => {
                    if let Some((batch, started)) = in_flight.take() {
                        self.finish(&batch, started, stored?, shutdown).await?;
                    }
                }
                m = consumer.recv() => match m {
                    Ok(m) => break m,
                    Err(e) => {
                        warn!(error = %e, "Kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        };
        let mut batch = vec![first];
        // One timer for the batch, not one per message: a timeout per
        // message was a visible share of the loop's CPU.
        let deadline = tokio::time::sleep(self.batch_max_wait);
        tokio::pin!(deadline);
        while batch.len() < self.batch_max_events {
            tokio::select! {
                // The deadline first: a stream of errors must not keep the
                // batch open forever.
                biased;
                _ = &mut deadline => break,
                m = consumer.recv() => match m {
                    Ok(m) => batch.push(m),
                    Err(e) => warn!(error = %e, "Kafka consumer error"),
                },
            }
        }
        let cap = self.batch_max_events.saturating_mul(4);
        while batch.len() < cap {
            // Only what librdkafka already holds.
            match consumer.recv().now_or_never() {
                Some(Ok(m)) => batch.push(m),
                Some(Err(e)) => {
                    warn!(error = %e, "Kafka consumer error");
                    break;
                }
                None => break,
            }
        }
        Ok(Some(batch))
    }

    /// Decodes, validates and prices a whole batch, before knowing which of
    /// its messages count: that needs the previous batch committed, and
    /// decoding overlaps its writing. Used only if every message counts.
    fn decode<'b>(&self, batch: &'b [BorrowedMessage<'_>]) -> Decoded<'b> {
        let started = Instant::now();
        let decoded = self.prepare(batch.iter().map(message).collect());
        debug!(decode_ms = started.elapsed().as_millis() as u64, "batch decoded and priced");
        decoded
    }

    /// Decodes, validates and prices `messages` with the current price book.
    fn prepare<'b>(&self, messages: Vec<Message<'b>>) -> Decoded<'b> {
        let book = self.prices.read().unwrap_or_else(|e| e.into_inner()).clone();
        let now = chrono::Utc::now().timestamp_micros();
        let (priced, rejected) = intake::prepare(&self.codec, &book, &self.policy, now, &messages);
        Decoded { messages, priced, rejected }
    }

    /// Starts the duplicate lookup of a decoded batch while the batch before
    /// it may still be on its way into ClickHouse (`in_flight` holds the ids
    /// that one counted, which the lookup may not see). Every batch before
    /// that one is stored, and the ids of the batch in flight are checked in
    /// memory: see [`EarlyLookup`].
    async fn look_up_early(&self, decoded: &Decoded<'_>, in_flight: Option<Arc<FastSet<u64>>>) -> EarlyLookup {
        let (tenants, ids, months) = count::lookup_keys(&decoded.priced);
        EarlyLookup { rows: spawn_now(self.seen.lookup(&tenants, &ids, &months)).await, unseen: in_flight }
    }

    /// Picks the messages of the batch that count, sends the bad ones to the
    /// dead-letter topic, dedupes the rest against ClickHouse and streams
    /// their rows to it. `None` if nothing in the batch counts.
    #[instrument(skip_all, fields(messages = batch.len()))]
    async fn start<'b>(
        &mut self,
        batch: &'b [BorrowedMessage<'_>],
        decoded: Decoded<'b>,
        early: EarlyLookup,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Started>, RollupError> {
        let started = Instant::now();
        let resume = self.resume_points(batch)?;
        let Runs { messages, starts, ends, cuts } = resume.runs(batch.iter().map(message));
        if messages.is_empty() {
            return Ok(None);
        }
        let restarted: Vec<i32> = starts.iter().filter(|(p, s)| !self.resume.continues(**p, **s)).map(|(p, _)| *p).collect();
        // After a restart or a cut, only some messages count: decode those
        // alone, so indices and order are theirs.
        let Decoded { messages, priced, rejected } = if messages.len() == decoded.messages.len() {
            decoded
        } else {
            drop(decoded);
            self.prepare(messages)
        };

        // Dead letters first: once the batch's offsets are committed they
        // must already be safe in their topic.
        let mut retry = Retry::new();
        while let Err(e) = self.dead_letters.send_all(&messages, &rejected).await {
            self.metrics.write_failures.with_label_values(&["dead_letter"]).inc();
            retry.wait("dead-letter topic", &e, &self.health, shutdown).await?;
        }

        let mut retry = Retry::new();
        // The early lookup covered every message decoded, so also those that
        // count after a restart; a retry looks up afresh.
        let mut early = Some(early);
        let Streamed { inserts, counted_ids, counted, duplicates } = loop {
            match self.stream(&priced, &starts, &restarted, early.take()).await {
                Ok(r) => break r,
                Err(e) => self.write_failed(e, &mut retry, shutdown).await?,
            }
        };
        // Ended on its own task, so that ClickHouse storing this batch and
        // this loop reading the next one run at once.
        let storing = spawn_now(async move {
            let t0 = Instant::now();
            inserts.end().await?;
            Ok(t0.elapsed())
        })
        .await;
        Ok(Some(Started {
            resume,
            starts,
            ends,
            cuts,
            restarted,
            storing,
            counted_ids,
            outcome: Outcome {
                counted,
                duplicates,
                rejected: rejected.iter().map(|r| r.reason).collect(),
                unpriced: priced.iter().filter(|p| !p.cost.is_priced()).count(),
            },
            started,
        }))
    }

    /// Waits until ClickHouse has stored a started batch, then finishes it.
    async fn complete(&mut self, (batch, mut started): InFlight<'_>, shutdown: &mut watch::Receiver<bool>) -> Result<(), RollupError> {
        let stored = stored(Some(&mut started.storing)).await?;
        self.finish(&batch, started, stored, shutdown).await
    }

    /// Commits a started batch that ClickHouse has stored.
    /// If storing failed, the batch is written again, whole and in line.
    /// `stored` is how storing it went (see [`stored`]).
    async fn finish(
        &mut self,
        batch: &[BorrowedMessage<'_>],
        started: Started,
        stored: Result<Duration, StorageError>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RollupError> {
        let Started { resume, starts, ends, cuts, restarted, mut outcome, started, .. } = started;
        match stored {
            Ok(waited) => debug!(end_ms = waited.as_millis() as u64, "batch stored"),
            Err(e) => {
                let mut retry = Retry::new();
                self.write_failed(e.into(), &mut retry, shutdown).await?;
                // Every step is idempotent: the same messages, looked up and
                // written again, give the same rows and deltas.
                let Runs { messages, .. } = resume.runs(batch.iter().map(message));
                let Decoded { priced, .. } = self.prepare(messages);
                loop {
                    match self.write(&priced, &starts, &restarted).await {
                        Ok((counted, duplicates)) => {
                            (outcome.counted, outcome.duplicates) = (counted, duplicates);
                            break;
                        }
                        Err(e) => self.write_failed(e, &mut retry, shutdown).await?,
                    }
                }
            }
        }
        self.health.set(true);
        self.commit(&ends, &starts)?;
        for (p, at) in &cuts {
            // Fetch the rest of the partition again, from right after what
            // this batch counted.
            self.resume.forget(*p);
            if let Err(e) = self.consumer.seek(&self.topic, *p, Offset::Offset(*at), Duration::from_secs(5)) {
                debug!(partition = p, error = %e, "seek after a discontinuity (partition likely revoked)");
            }
        }

        for reason in &outcome.rejected {
            self.metrics.dead_letters.with_label_values(&[reason]).inc();
        }
        self.metrics.events.with_label_values(&["counted"]).inc_by(outcome.counted as u64);
        self.metrics.events.with_label_values(&["duplicate"]).inc_by(outcome.duplicates as u64);
        self.metrics.events.with_label_values(&["dead_lettered"]).inc_by(outcome.rejected.len() as u64);
        self.metrics.unpriced_events.inc_by(outcome.unpriced as u64);
        self.metrics.batches.inc();
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        debug!(counted = outcome.counted, duplicates = outcome.duplicates, rejected = outcome.rejected.len(), "batch committed");
        Ok(())
    }

    /// Rejoins the group if a partition nobody consumes has messages
    /// waiting (see `watchdog`). Failures to check are only logged: the
    /// watchdog is a safety net, not part of the data path.
    fn check_group(&mut self) {
        self.next_check = tokio::time::Instant::now() + self.watchdog_every;
        let mine: Vec<i32> = match self.consumer.assignment() {
            Ok(tpl) => tpl.elements().iter().map(|e| e.partition()).collect(),
            Err(e) => return debug!(error = %e, "reading the assignment"),
        };
        let stalled = match self.watchdog.stalled(&mine) {
            Ok(s) => s,
            Err(e) => return debug!(error = %e, "group watchdog could not check"),
        };
        if stalled.is_empty() {
            return;
        }
        warn!(?stalled, "partitions have waiting messages and no consumer; rejoining the group to get them assigned");
        self.metrics.group_rejoins.inc();
        self.consumer.unsubscribe();
        if let Err(e) = self.consumer.subscribe(&[&self.topic]) {
            warn!(error = %e, "resubscribing");
        }
        // Every partition restarts from its committed offset.
        self.resume.forget_all();
        self.watchdog.reset();
    }
}
