//! Waiting out a failed write, on the delays of runtime's [`Backoff`].

use meterline_runtime::backoff::Backoff;
use meterline_runtime::http::Health;
use tokio::sync::watch;
use tracing::warn;

use super::Pipeline;
use crate::RollupError;

/// The retries of one write during a dependency outage. Marks the service
/// unhealthy while waiting; gives up only when asked to shut down (the batch
/// stays uncommitted and is replayed after restart).
pub struct Retry {
    backoff: Backoff,
}

impl Retry {
    pub fn new() -> Self {
        Self { backoff: Backoff::default() }
    }

    pub async fn wait(
        &mut self,
        what: &str,
        error: &(dyn std::fmt::Display + Sync),
        health: &Health,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RollupError> {
        health.set(false);
        let delay = self.backoff.next_delay();
        warn!(dependency = what, error = %error, retry_in_ms = delay.as_millis() as u64, "write failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = shutdown.changed() => Err(RollupError::Interrupted(format!("{what} was failing: {error}"))),
        }
    }
}

impl Pipeline {
    /// Counts a failed write and waits before the next attempt; a permanent
    /// failure (see [`meterline_storage::StorageError::is_retriable`] and
    /// [`RollupError::TaskFailed`]) stops the service (the batch stays
    /// uncommitted).
    pub(super) async fn write_failed(
        &self,
        e: RollupError,
        retry: &mut Retry,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RollupError> {
        match e {
            RollupError::Storage(e) if e.is_retriable() => {
                self.metrics.write_failures.with_label_values(&["retriable"]).inc();
                retry.wait("ClickHouse", &e, &self.health, shutdown).await
            }
            e => {
                self.metrics.write_failures.with_label_values(&["permanent"]).inc();
                Err(e)
            }
        }
    }
}
