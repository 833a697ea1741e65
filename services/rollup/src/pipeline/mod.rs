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

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt as _;

use meterline_core::avro::Codec;
use meterline_core::{PriceBook, ValidationPolicy};
use meterline_storage::clickhouse::{self as ch, CostKey};
use meterline_storage::StorageError;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::{debug, info, instrument, warn};

use crate::dlq::DeadLetters;
use crate::metrics::Metrics;
use crate::transform::{self, BatchStarts, FastMap, FastSet, Message};
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
    /// The offset each partition's next message should have if nothing was
    /// rewound or reassigned since our last batch. A message elsewhere marks
    /// a (re)start, where a crashed attempt of the batch may have left rows.
    pub expected_next: HashMap<i32, i64>,
    /// Partitions being rewound because the broker resumed past the
    /// committed offset, with how far back the last seek went.
    pub rewind_steps: HashMap<i32, i64>,
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
        let (priced, rejected) = transform::prepare(&self.codec, &book, &self.policy, now, &messages);
        Decoded { messages, priced, rejected }
    }

    /// Starts the duplicate lookup of a decoded batch while the batch before
    /// it may still be on its way into ClickHouse (`in_flight` holds the ids
    /// that one counted, which the lookup may not see). Every batch before
    /// that one is stored, and the ids of the batch in flight are checked in
    /// memory: see [`EarlyLookup`].
    async fn look_up_early(&self, decoded: &Decoded<'_>, in_flight: Option<Arc<FastSet<u64>>>) -> EarlyLookup {
        let (tenants, ids, months) = transform::lookup_keys(&decoded.priced);
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
        let Runs { messages, starts, ends, cuts } = accepted_runs(batch, &resume);
        if messages.is_empty() {
            return Ok(None);
        }
        let restarted: Vec<i32> = starts.iter().filter(|(p, s)| self.expected_next.get(p) != Some(s)).map(|(p, _)| *p).collect();
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
        let mut backoff = Backoff::new();
        while let Err(e) = self.dead_letters.send_all(&messages, &rejected).await {
            self.metrics.write_failures.with_label_values(&["dead_letter"]).inc();
            backoff.wait("dead-letter topic", &e, &self.health, shutdown).await?;
        }

        let mut backoff = Backoff::new();
        // The early lookup covered every message decoded, so also those that
        // count after a restart; a retry looks up afresh.
        let mut early = Some(early);
        let (streamed, counted_ids, counted, duplicates) = loop {
            match self.stream(&priced, &starts, &restarted, early.take()).await {
                Ok(r) => break r,
                Err(e) => self.write_failed(e, &mut backoff, shutdown).await?,
            }
        };
        // Ended on its own task, so that ClickHouse storing this batch and
        // this loop reading the next one run at once.
        let storing = spawn_now(async move {
            let t0 = Instant::now();
            end_inserts(streamed).await?;
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
                let mut backoff = Backoff::new();
                self.write_failed(e, &mut backoff, shutdown).await?;
                // Every step is idempotent: the same messages, looked up and
                // written again, give the same rows and deltas.
                let Runs { messages, .. } = accepted_runs(batch, &resume);
                let Decoded { priced, .. } = self.prepare(messages);
                loop {
                    match self.write(&priced, &starts, &restarted).await {
                        Ok((counted, duplicates)) => {
                            (outcome.counted, outcome.duplicates) = (counted, duplicates);
                            break;
                        }
                        Err(e) => self.write_failed(e, &mut backoff, shutdown).await?,
                    }
                }
            }
        }
        self.health.set(true);
        self.commit(&ends, &starts)?;
        for (p, at) in &cuts {
            // Fetch the rest of the partition again, from right after what
            // this batch counted.
            self.expected_next.remove(p);
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

    /// Counts a failed write and waits before the next attempt; a permanent
    /// failure stops the service (the batch stays uncommitted).
    async fn write_failed(&self, e: StorageError, backoff: &mut Backoff, shutdown: &mut watch::Receiver<bool>) -> Result<(), RollupError> {
        if e.is_retriable() {
            self.metrics.write_failures.with_label_values(&["retriable"]).inc();
            backoff.wait("ClickHouse", &e, &self.health, shutdown).await
        } else {
            self.metrics.write_failures.with_label_values(&["permanent"]).inc();
            Err(e.into())
        }
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
        self.expected_next.clear();
        self.watchdog.reset();
    }

    /// For partitions this instance has not read before (start, rebalance,
    /// rewind), checks that the broker resumed exactly at the committed
    /// offset. Records below it were counted already and are skipped. If the
    /// broker skipped ahead (it could not fetch from inside a record batch),
    /// the partition is rewound far enough to include that batch.
    fn resume_points(&mut self, batch: &[BorrowedMessage<'_>]) -> Result<Resume, RollupError> {
        // A partition resumes anywhere but at the offset after our last
        // batch when it was (re)assigned or sought: on a rebalance that
        // keeps it with us as well, so the test is the offset, not whether
        // we read the partition before.
        let mut first: HashMap<i32, i64> = HashMap::new();
        for m in batch {
            first.entry(m.partition()).or_insert(m.offset());
        }
        first.retain(|p, f| self.expected_next.get(p) != Some(f));
        let mut resume = Resume::default();
        if first.is_empty() {
            return Ok(resume);
        }
        let mut tpl = TopicPartitionList::new();
        for p in first.keys() {
            tpl.add_partition(&self.topic, *p);
        }
        let committed = self.consumer.committed_offsets(tpl, Duration::from_secs(10))?;
        for (p, f) in first {
            let Some(Offset::Offset(c)) = committed.find_partition(&self.topic, p).map(|e| e.offset()) else {
                continue; // never committed: start wherever the reset policy put us
            };
            if f <= c {
                self.rewind_steps.remove(&p);
                resume.floor.insert(p, c);
                continue;
            }
            let previous = self.rewind_steps.get(&p).copied();
            if previous.is_some_and(|s| s >= c) {
                // The last seek already went to the start of the partition:
                // the gap is real (compaction, transaction markers).
                warn!(partition = p, committed = c, first = f, "gap after the committed offset; continuing");
                self.rewind_steps.remove(&p);
                continue;
            }
            let step = previous.map_or(256, |s| s * 2);
            let to = (c - step).max(0);
            warn!(partition = p, committed = c, first = f, rewind_to = to, "broker resumed past the committed offset; rewinding");
            self.rewind_steps.insert(p, step);
            if let Err(e) = self.consumer.seek(&self.topic, p, Offset::Offset(to), Duration::from_secs(10)) {
                // Most likely the partition was just revoked; its records in
                // this batch are not trusted either way.
                warn!(partition = p, error = %e, "rewind failed");
            }
            resume.skip.push(p);
        }
        Ok(resume)
    }

    /// Dedupes against what is stored and streams the events and deltas to
    /// ClickHouse; they are stored once both inserts are ended. Returns them
    /// with the ids counted and (counted, duplicates). Safe to call again
    /// with the same batch. Every earlier batch must be stored, except the
    /// one an `early` lookup names.
    async fn stream(
        &self,
        priced: &[transform::Priced<'_>],
        starts: &BatchStarts,
        restarted: &[i32],
        early: Option<EarlyLookup>,
    ) -> Result<(Streamed, Arc<FastSet<u64>>, usize, usize), StorageError> {
        let t0 = Instant::now();
        let id_hash = |p: &transform::Priced<'_>| self.id_hasher.hash_one((p.event.tenant_id.as_ref(), p.event.event_id.as_ref()));
        let early = match early {
            Some(early) if early.unseen.as_ref().is_some_and(|unseen| priced.iter().any(|p| unseen.contains(&id_hash(p)))) => {
                // An id of the batch before may be here again, and the early
                // lookup may have run before that batch was stored.
                early.rows.abort();
                None
            }
            early => early,
        };
        let lookup = match early {
            Some(early) => early.rows,
            None => {
                let (tenants, ids, months) = transform::lookup_keys(priced);
                spawn_now(self.seen.lookup(&tenants, &ids, &months)).await
            }
        };
        // ClickHouse looks the ids up on a task of its own while this one
        // dedupes the batch assuming none of them is stored, as nearly
        // always; if some are, the work is done again with them.
        let now_secs = chrono::Utc::now().timestamp() as u32;
        let count = |stored: &HashMap<(&str, &str), Vec<(i32, i64)>>| {
            let (counted, duplicates) = transform::dedupe(priced, starts, stored);
            let events = crate::sink::event_rows(&counted, now_secs);
            let groups = transform::aggregate(&counted);
            (counted, duplicates, events, groups)
        };
        let (mut counted, mut duplicates, mut events, mut groups) = count(&HashMap::new());
        let seen = lookup.await.map_err(|e| StorageError::ClickHouse(clickhouse::error::Error::Network(Box::new(e))))??;
        let looked_up = t0.elapsed();
        if !seen.is_empty() {
            let mut stored: HashMap<(&str, &str), Vec<(i32, i64)>> = HashMap::new();
            for s in &seen {
                stored.entry((s.tenant_id.as_str(), s.event_id.as_str())).or_default().push((s.src_partition, s.src_offset));
            }
            (counted, duplicates, events, groups) = count(&stored);
        }

        let mut stale: HashMap<i32, Vec<CostKey>> = HashMap::new();
        for &p in restarted {
            let keys = ch::stale_cost_keys(&self.clickhouse, p, starts[&p]).await?;
            if !keys.is_empty() {
                info!(partition = p, batch_start = starts[&p], keys = keys.len(), "replacing a crashed attempt's deltas");
                stale.insert(p, keys);
            }
        }

        let costs = crate::sink::cost_rows(&groups, starts, &stale);
        let counted_ids: FastSet<u64> = counted.iter().map(|p| id_hash(p)).collect();
        // Events and deltas are written at once: whatever part of them a
        // crash leaves behind, the replay of this batch comes out the same.
        // It counts events stored at this batch's own offsets again (they
        // are not duplicates of anything earlier), and its deltas, keyed by
        // the batch start, replace the crashed attempt's. Only the commit
        // waits for both.
        let t1 = Instant::now();
        let streamed = tokio::try_join!(ch::stream_events(&self.clickhouse, &events), ch::stream_costs(&self.clickhouse, &costs))?;
        debug!(
            events = events.len(),
            lookup_ms = looked_up.as_millis() as u64,
            after_lookup_ms = (t1 - t0 - looked_up).as_millis() as u64,
            stream_ms = t1.elapsed().as_millis() as u64,
            "batch streamed"
        );
        Ok((streamed, Arc::new(counted_ids), counted.len(), duplicates))
    }

    /// [`Self::stream`], then waits until ClickHouse has stored it all.
    async fn write(
        &self,
        priced: &[transform::Priced<'_>],
        starts: &BatchStarts,
        restarted: &[i32],
    ) -> Result<(usize, usize), StorageError> {
        let (streamed, _, counted, duplicates) = self.stream(priced, starts, restarted, None).await?;
        end_inserts(streamed).await?;
        Ok((counted, duplicates))
    }

    /// Commits the batch synchronously. On failure (e.g. a rebalance took the
    /// partition) the partitions are rewound to the batch start, so the next
    /// batch is a replay of this one, never a second uncommitted batch.
    fn commit(&mut self, ends: &FastMap<i32, i64>, starts: &BatchStarts) -> Result<(), RollupError> {
        let mut tpl = TopicPartitionList::new();
        for (p, end) in ends {
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*end))?;
        }
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                self.expected_next.extend(ends.iter().map(|(p, e)| (*p, *e)));
                Ok(())
            }
            Err(e) => {
                self.metrics.commit_failures.inc();
                warn!(error = %e, "offset commit failed; rewinding to replay the batch");
                for (p, start) in starts {
                    self.expected_next.remove(p);
                    if let Err(e) = self.consumer.seek(&self.topic, *p, Offset::Offset(*start), Duration::from_secs(5)) {
                        debug!(partition = p, error = %e, "seek after failed commit (partition likely revoked)");
                    }
                }
                Ok(())
            }
        }
    }
}

/// Spawns a task and lets it start at once. A task spawned from a worker
/// goes to that worker's LIFO slot, which other workers cannot steal from,
/// so it would wait until this task next yields: with the CPU-bound decode
/// and dedupe that come next, an insert's last bytes and a lookup reached
/// ClickHouse tens of milliseconds late, and the overlap was lost.
async fn spawn_now<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = tokio::spawn(future);
    tokio::task::yield_now().await;
    handle
}

/// A batch whose rows are on their way into ClickHouse, with its messages.
type InFlight<'c> = (Vec<BorrowedMessage<'c>>, Started);

/// Waits for the task that ends a batch's inserts (`None`: never resolves,
/// for a `select!` branch that is disabled anyway). The task fails only if
/// the runtime is shutting down under us. Once it has answered, the handle
/// must not be polled again.
async fn stored(
    storing: Option<&mut tokio::task::JoinHandle<Result<Duration, StorageError>>>,
) -> Result<Result<Duration, StorageError>, RollupError> {
    match storing {
        Some(handle) => handle.await.map_err(|e| RollupError::Interrupted(format!("ClickHouse insert task: {e}"))),
        None => std::future::pending().await,
    }
}

/// A batch decoded, validated and priced: its messages, with the valid
/// ones priced and the others rejected (by index into `messages`).
struct Decoded<'b> {
    messages: Vec<Message<'b>>,
    priced: Vec<transform::Priced<'b>>,
    rejected: Vec<transform::Rejected>,
}

/// The two inserts of a batch, streamed and not yet ended.
type Streamed = (ch::StreamedInsert, ch::StreamedInsert);

/// Ends both inserts of a batch at once: done when ClickHouse has stored
/// its events and its deltas.
async fn end_inserts((events, costs): Streamed) -> Result<(), StorageError> {
    tokio::try_join!(events.end(), costs.end())?;
    Ok(())
}

/// A batch whose rows are on their way into ClickHouse: what `finish` needs
/// to commit it, or to write it again.
struct Started {
    resume: Resume,
    starts: BatchStarts,
    ends: FastMap<i32, i64>,
    cuts: FastMap<i32, i64>,
    restarted: Vec<i32>,
    /// Ends both inserts; how long that took.
    storing: tokio::task::JoinHandle<Result<Duration, StorageError>>,
    /// Hashes of the (tenant, event id) it counts: what a lookup started
    /// before it is stored cannot see.
    counted_ids: Arc<FastSet<u64>>,
    outcome: Outcome,
    started: Instant,
}

/// A duplicate lookup started before the batch in flight (if any) was
/// stored. Its answer is used only if no id of the new batch hashes like an
/// id that batch counted (`unseen`): then whether ClickHouse had stored
/// that batch yet makes no difference. Otherwise (an id sent again right
/// away, or a hash collision) the batch is looked up again, now that the
/// batch before is stored.
struct EarlyLookup {
    rows: tokio::task::JoinHandle<Result<Vec<ch::SeenEvent>, StorageError>>,
    unseen: Option<Arc<FastSet<u64>>>,
}

/// What a batch did, for the metrics once it is committed.
struct Outcome {
    counted: usize,
    duplicates: usize,
    /// Reason of each dead letter.
    rejected: Vec<&'static str>,
    unpriced: usize,
}

fn message<'b>(m: &'b BorrowedMessage<'_>) -> Message<'b> {
    Message { partition: m.partition(), offset: m.offset(), key: m.key(), payload: m.payload() }
}

/// The messages of `batch` that count, given where each partition resumed.
fn accepted_runs<'b>(batch: &'b [BorrowedMessage<'_>], resume: &Resume) -> Runs<'b> {
    contiguous_runs(batch.iter().filter(|m| resume.accepts(m.partition(), m.offset())).map(message))
}

/// What a batch counts: per partition, one run of consecutive offsets.
struct Runs<'a> {
    messages: Vec<Message<'a>>,
    /// Where each partition's run starts: its rollup rows' key.
    starts: BatchStarts,
    /// The offset after each partition's run: what the commit stores.
    ends: FastMap<i32, i64>,
    /// Where each cut partition must be read again.
    cuts: FastMap<i32, i64>,
}

/// Keeps, per partition, the run of consecutive offsets the batch starts
/// with. A rebalance or seek while the batch was collected restarts a
/// partition elsewhere; the messages fetched before it may end inside a
/// record batch that the broker then resumes past, so counting both runs
/// could skip records between them.
fn contiguous_runs<'a>(messages: impl Iterator<Item = Message<'a>>) -> Runs<'a> {
    let mut runs = Runs { messages: Vec::new(), starts: BatchStarts::default(), ends: FastMap::default(), cuts: FastMap::default() };
    for m in messages {
        if runs.cuts.contains_key(&m.partition) {
            continue;
        }
        match runs.ends.get(&m.partition) {
            Some(&want) if m.offset != want => {
                warn!(
                    partition = m.partition,
                    expected = want,
                    got = m.offset,
                    "partition restarted within a batch; reading on from the expected offset"
                );
                runs.cuts.insert(m.partition, want);
                continue;
            }
            Some(_) => {}
            None => {
                runs.starts.insert(m.partition, m.offset);
            }
        }
        runs.ends.insert(m.partition, m.offset + 1);
        runs.messages.push(m);
    }
    runs
}

/// Which records of a batch to process after a (re)start.
#[derive(Default)]
struct Resume {
    /// Per partition, the committed offset: records below it were counted.
    floor: FastMap<i32, i64>,
    /// Partitions being rewound: their records in this batch are dropped.
    skip: Vec<i32>,
}

impl Resume {
    fn accepts(&self, partition: i32, offset: i64) -> bool {
        !self.skip.contains(&partition) && self.floor.get(&partition).is_none_or(|c| offset >= *c)
    }
}

/// Capped exponential backoff for a dependency outage. Marks the service
/// unhealthy while waiting; gives up only when asked to shut down (the batch
/// stays uncommitted and is replayed after restart).
struct Backoff {
    delay: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self { delay: Duration::from_millis(100) }
    }

    async fn wait(
        &mut self,
        what: &str,
        error: &(dyn std::fmt::Display + Sync),
        health: &Health,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RollupError> {
        health.set(false);
        warn!(dependency = what, error = %error, retry_in_ms = self.delay.as_millis() as u64, "write failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(self.delay) => {}
            _ = shutdown.changed() => {
                return Err(RollupError::Interrupted(format!("{what} was failing: {error}")));
            }
        }
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(list: &[(i32, i64)]) -> Vec<Message<'static>> {
        list.iter().map(|&(partition, offset)| Message { partition, offset, key: None, payload: None }).collect()
    }

    fn positions(kept: &[Message<'_>]) -> Vec<(i32, i64)> {
        kept.iter().map(|m| (m.partition, m.offset)).collect()
    }

    #[test]
    fn a_partition_restarted_mid_batch_is_cut_where_its_run_ends() {
        // Partition 0 ran 10..=12, then resumed at 20 (a record batch past
        // 13); partition 1 is contiguous throughout.
        let input = msgs(&[(0, 10), (1, 5), (0, 11), (0, 12), (1, 6), (0, 20), (1, 7), (0, 21)]);
        let runs = contiguous_runs(input.into_iter());
        assert_eq!(positions(&runs.messages), vec![(0, 10), (1, 5), (0, 11), (0, 12), (1, 6), (1, 7)]);
        assert_eq!(runs.cuts, [(0, 13)].into_iter().collect());
        assert_eq!(runs.starts, [(0, 10), (1, 5)].into_iter().collect());
        assert_eq!(runs.ends, [(0, 13), (1, 8)].into_iter().collect());
    }

    #[test]
    fn a_partition_that_goes_back_is_cut_too() {
        let runs = contiguous_runs(msgs(&[(2, 100), (2, 101), (2, 100), (2, 101), (2, 102)]).into_iter());
        assert_eq!(positions(&runs.messages), vec![(2, 100), (2, 101)]);
        assert_eq!(runs.cuts, [(2, 102)].into_iter().collect());
        assert_eq!(runs.ends, [(2, 102)].into_iter().collect());
    }

    #[test]
    fn contiguous_batches_are_kept_whole() {
        let input = msgs(&[(0, 0), (1, 0), (0, 1), (1, 1)]);
        let runs = contiguous_runs(input.into_iter());
        assert_eq!(runs.messages.len(), 4);
        assert!(runs.cuts.is_empty());
        assert_eq!(runs.starts, [(0, 0), (1, 0)].into_iter().collect());
    }
}
