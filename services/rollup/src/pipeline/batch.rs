//! A batch between reading and committing: decoded, looked up early,
//! started (its rows on their way into ClickHouse on a task of their own),
//! and what its commit needs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meterline_core::intake::{Message, Priced, Rejected};
use meterline_storage::clickhouse as ch;
use meterline_storage::StorageError;
use rdkafka::message::{BorrowedMessage, Message as _};

use super::resume::Resume;
use crate::count::BatchStarts;
use crate::fast_hash::{FastMap, FastSet};
use crate::RollupError;

/// Spawns a task and lets it start at once. A task spawned from a worker
/// goes to that worker's LIFO slot, which other workers cannot steal from,
/// so it would wait until this task next yields: with the CPU-bound decode
/// and dedupe that come next, an insert's last bytes and a lookup reached
/// ClickHouse tens of milliseconds late, and the overlap was lost.
pub async fn spawn_now<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = tokio::spawn(future);
    tokio::task::yield_now().await;
    handle
}

/// A batch whose rows are on their way into ClickHouse, with its messages.
pub type InFlight<'c> = (Vec<BorrowedMessage<'c>>, Started);

/// Waits for the task that ends a batch's inserts (`None`: never resolves,
/// for a `select!` branch that is disabled anyway). The task fails only if
/// it panicked or the runtime is shutting down under us. Once it has
/// answered, the handle must not be polled again.
pub async fn stored(
    storing: Option<&mut tokio::task::JoinHandle<Result<Duration, StorageError>>>,
) -> Result<Result<Duration, StorageError>, RollupError> {
    match storing {
        Some(handle) => handle.await.map_err(|e| RollupError::task_failed("ClickHouse insert", e)),
        None => std::future::pending().await,
    }
}

/// A batch decoded, validated and priced: its messages, with the valid
/// ones priced and the others rejected (by index into `messages`).
pub struct Decoded<'b> {
    pub messages: Vec<Message<'b>>,
    pub priced: Vec<Priced<'b>>,
    pub rejected: Vec<Rejected>,
}

/// The two inserts of a batch, streamed and not yet ended.
pub struct Inserts {
    pub events: ch::StreamedInsert,
    pub costs: ch::StreamedInsert,
}

impl Inserts {
    /// Ends both inserts at once: done when ClickHouse has stored the
    /// batch's events and its deltas.
    pub async fn end(self) -> Result<(), StorageError> {
        tokio::try_join!(self.events.end(), self.costs.end())?;
        Ok(())
    }
}

/// A batch whose rows are on their way into ClickHouse: what `finish` needs
/// to commit it, or to write it again.
pub struct Started {
    pub resume: Resume,
    pub starts: BatchStarts,
    pub ends: FastMap<i32, i64>,
    pub cuts: FastMap<i32, i64>,
    pub restarted: Vec<i32>,
    /// Ends both inserts; how long that took.
    pub storing: tokio::task::JoinHandle<Result<Duration, StorageError>>,
    /// Hashes of the (tenant, event id) it counts: what a lookup started
    /// before it is stored cannot see.
    pub counted_ids: Arc<FastSet<u64>>,
    pub outcome: Outcome,
    pub started: Instant,
}

/// A duplicate lookup started before the batch in flight (if any) was
/// stored. Its answer is used only if no id of the new batch hashes like an
/// id that batch counted (`unseen`): then whether ClickHouse had stored
/// that batch yet makes no difference. Otherwise (an id sent again right
/// away, or a hash collision) the batch is looked up again, now that the
/// batch before is stored.
pub struct EarlyLookup {
    pub rows: tokio::task::JoinHandle<Result<Vec<ch::SeenEvent>, StorageError>>,
    pub unseen: Option<Arc<FastSet<u64>>>,
}

/// What a batch did, for the metrics once it is committed.
pub struct Outcome {
    pub counted: usize,
    pub duplicates: usize,
    /// Reason of each dead letter.
    pub rejected: Vec<&'static str>,
    pub unpriced: usize,
}

/// A Kafka message as the intake reads it, borrowing its bytes.
pub fn message<'b>(m: &'b BorrowedMessage<'_>) -> Message<'b> {
    Message { partition: m.partition(), offset: m.offset(), key: m.key(), payload: m.payload() }
}
