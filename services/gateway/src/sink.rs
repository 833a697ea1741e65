//! Where usage events go: the SDK's Kafka [`Emitter`] in production, a
//! [`MemorySink`] in tests. The handlers only see [`UsageSink`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use futures::future::BoxFuture;
use meterline_core::UsageEvent;
use meterline_sdk::{EmitError, Emitter};

/// Why an event did not reach its destination.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    #[error(transparent)]
    Emit(#[from] EmitError),
    #[error("{0}")]
    Other(String),
}

/// Resolves once the event is durable (the broker acknowledged it), or
/// finally failed.
pub type Acknowledgement = BoxFuture<'static, Result<(), SinkError>>;

/// Takes usage events. Two steps, like the SDK: `record` hands the event
/// over, waiting while the sink is full (the back-pressure that keeps a
/// broker outage from growing the gateway's memory), and the returned
/// [`Acknowledgement`] says when it is durable.
pub trait UsageSink: Send + Sync + 'static {
    fn record(&self, event: UsageEvent<'static>) -> BoxFuture<'_, Result<Acknowledgement, SinkError>>;
}

impl UsageSink for Emitter {
    fn record(&self, event: UsageEvent<'static>) -> BoxFuture<'_, Result<Acknowledgement, SinkError>> {
        Box::pin(async move {
            let delivery = self.emit(&event).await?;
            let ack: Acknowledgement = Box::pin(async move { delivery.await.map(|_receipt| ()).map_err(SinkError::from) });
            Ok(ack)
        })
    }
}

/// How a [`MemorySink`] should fail, to test the failure paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Failure {
    None = 0,
    /// `record` itself fails (e.g. the event was refused).
    Record = 1,
    /// `record` succeeds, the acknowledgement fails (e.g. broker timeout).
    Acknowledgement = 2,
}

/// Keeps acknowledged events in memory, for tests.
#[derive(Default)]
pub struct MemorySink {
    // A std Mutex: it is never held across an `.await`.
    events: Mutex<Vec<UsageEvent<'static>>>,
    failure: AtomicU8,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail_with(&self, failure: Failure) {
        self.failure.store(failure as u8, Ordering::Relaxed);
    }

    /// The events recorded and acknowledged so far, in order.
    pub fn events(&self) -> Vec<UsageEvent<'static>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl UsageSink for MemorySink {
    fn record(&self, event: UsageEvent<'static>) -> BoxFuture<'_, Result<Acknowledgement, SinkError>> {
        let failure = self.failure.load(Ordering::Relaxed);
        let outcome = if failure == Failure::Record as u8 {
            Err(SinkError::Other("memory sink told to refuse".into()))
        } else if failure == Failure::Acknowledgement as u8 {
            let ack: Acknowledgement = Box::pin(async { Err(SinkError::Other("memory sink told to fail delivery".into())) });
            Ok(ack)
        } else {
            self.events.lock().unwrap_or_else(|e| e.into_inner()).push(event);
            let ack: Acknowledgement = Box::pin(async { Ok(()) });
            Ok(ack)
        };
        Box::pin(async move { outcome })
    }
}
