//! Waits for the broker's acknowledgements after the response has gone.
//!
//! A chat completion is not held until Kafka acknowledges its usage event
//! (that would add the broker's latency to every call), but the
//! acknowledgement is still awaited, so a lost event is logged and counted
//! rather than silently dropped. One task awaits them all, instead of a
//! task per request: the number awaited at once is bounded, and beyond it
//! `track` waits, which slows requests down instead of growing memory.

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use meterline_core::UsageEvent;

use crate::metrics::Metrics;
use crate::sink::Acknowledgement;

struct Pending {
    /// Kept until acknowledged, so a lost event can be logged in full.
    event: UsageEvent<'static>,
    ack: Acknowledgement,
}

/// Hands acknowledgements to the waiting task. Cheap to clone.
#[derive(Clone)]
pub struct Deliveries {
    tx: mpsc::Sender<Pending>,
    metrics: Metrics,
}

/// The waiting task; see [`DeliveryDrain::wait`].
pub struct DeliveryDrain {
    task: JoinHandle<()>,
}

/// Starts the waiting task, awaiting at most `max_pending` acknowledgements
/// at once. Must be called within a Tokio runtime.
pub fn start(metrics: Metrics, max_pending: usize) -> (Deliveries, DeliveryDrain) {
    let max_pending = max_pending.max(1);
    let (tx, rx) = mpsc::channel(max_pending);
    let task = tokio::spawn(run(rx, metrics.clone(), max_pending));
    (Deliveries { tx, metrics }, DeliveryDrain { task })
}

impl Deliveries {
    /// Awaits `ack` in the background; waits first if too many are pending.
    pub async fn track(&self, event: UsageEvent<'static>, ack: Acknowledgement) {
        let pending = Pending { event, ack };
        if let Err(mpsc::error::SendError(pending)) = self.tx.send(pending).await {
            // The waiting task has gone (shutdown): wait here instead.
            settle(pending, &self.metrics).await;
        }
    }
}

impl DeliveryDrain {
    /// Waits until every tracked acknowledgement has settled, at most
    /// `timeout`. Every [`Deliveries`] clone must have been dropped first
    /// (that is how the task knows no more will come). Returns whether all
    /// settled in time.
    pub async fn wait(self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.task).await.is_ok()
    }
}

async fn run(mut rx: mpsc::Receiver<Pending>, metrics: Metrics, max_pending: usize) {
    let mut pending = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            next = rx.recv(), if open && pending.len() < max_pending => match next {
                Some(p) => pending.push(settle(p, &metrics)),
                None => open = false,
            },
            Some(()) = pending.next(), if !pending.is_empty() => {}
            else => break,
        }
    }
}

async fn settle(p: Pending, metrics: &Metrics) {
    if let Err(error) = p.ack.await {
        metrics.emit_failure();
        // Logged in full, so the event can be re-sent from the logs; the
        // rollup counts an event_id once, so a re-send is safe.
        let e = &p.event;
        tracing::error!(event_id = %e.event_id, tenant = %e.tenant_id, %error, event = ?e, "usage event not acknowledged by the broker");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Route;
    use crate::sink::SinkError;

    #[tokio::test]
    async fn failures_are_counted_and_the_drain_waits_for_all() {
        let metrics = Metrics::new(&[Route::ChatCompletions]);
        let (deliveries, drain) = start(metrics.clone(), 2);
        for i in 0..10 {
            let ack: Acknowledgement = if i % 2 == 0 {
                Box::pin(async { Ok(()) })
            } else {
                Box::pin(async {
                    tokio::task::yield_now().await;
                    Err(SinkError::Other("lost".into()))
                })
            };
            let tenant = meterline_core::TenantId::parse("acme").unwrap();
            let event = crate::usage::event(&tenant, meterline_core::Source::Gateway, meterline_core::Kind::Chat, "p", None, &[], vec![]);
            deliveries.track(event, ack).await;
        }
        drop(deliveries);
        assert!(drain.wait(Duration::from_secs(5)).await);
        assert_eq!(metrics.emit_failures(), 5);
    }
}
