//! Alerts in: each alert on the topic becomes an event and its deliveries in
//! Postgres (idempotent by alert id), and only then is its offset stored, so
//! an alert is never lost between Kafka and the outbox, and one read twice
//! (a crash, a rebalance) adds nothing. The alerts already fetched are taken
//! in together, in one transaction: its commit is what an alert costs here,
//! and one per alert capped a backlog at about a thousand a second. Sending
//! is the workers' job, never done here: taking an alert in stays fast
//! whatever the receivers do.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use meterline_core::avro::decode_alert;
use meterline_runtime::backoff::Backoff;
use meterline_runtime::http::Health;
use meterline_storage::postgres::notify::{record_events, NewEvent};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use sqlx::PgPool;
use tokio::sync::watch;
use tracing::{debug, error, warn};

use crate::event::NotifyEvent;
use crate::metrics::Metrics;
use crate::NotifyError;

/// Most alerts taken in per transaction.
const BATCH: usize = 500;

pub struct Intake {
    pub consumer: Arc<StreamConsumer>,
    pub pool: PgPool,
    pub metrics: Metrics,
    pub health: Arc<Health>,
}

impl Intake {
    /// Takes alerts in until `stop`; the alerts in hand are recorded first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), NotifyError> {
        loop {
            let first = tokio::select! {
                _ = stop.changed() => return Ok(()),
                m = self.consumer.recv() => m,
            };
            let mut batch = match first {
                Ok(m) => vec![m],
                Err(e) => {
                    warn!(error = %e, "Kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            // Whatever librdkafka already holds, without waiting for more.
            while batch.len() < BATCH {
                match self.consumer.recv().now_or_never() {
                    Some(Ok(m)) => batch.push(m),
                    Some(Err(e)) => {
                        warn!(error = %e, "Kafka consumer error");
                        break;
                    }
                    None => break,
                }
            }
            if !self.take_in(&batch, &mut stop).await? {
                return Ok(());
            }
        }
    }

    /// Records a batch of alerts, retrying Postgres until it works, then
    /// stores their offsets. `Ok(false)`: the service stopped first (the
    /// offsets are then not stored, and the alerts are read again).
    async fn take_in(&self, batch: &[BorrowedMessage<'_>], stop: &mut watch::Receiver<bool>) -> Result<bool, NotifyError> {
        let mut events = Vec::with_capacity(batch.len());
        for m in batch {
            match m.payload().map(decode_alert) {
                Some(Ok(alert)) => events.push(NotifyEvent::from_alert(&alert)),
                // Only the budget service writes this topic: a message it
                // cannot have written is a bug or a stranger's. It is
                // skipped, loudly, rather than stopping every tenant's
                // alerts behind it.
                Some(Err(e)) => {
                    self.metrics.alerts.with_label_values(&["undecodable"]).inc();
                    error!(partition = m.partition(), offset = m.offset(), error = %e, "undecodable alert skipped");
                }
                None => {
                    self.metrics.alerts.with_label_values(&["undecodable"]).inc();
                    error!(partition = m.partition(), offset = m.offset(), "alert without a payload skipped");
                }
            }
        }
        let new: Vec<NewEvent<'_>> = events
            .iter()
            .map(|e| NewEvent {
                event_id: e.id,
                tenant_id: &e.tenant_id,
                event_type: e.event_type,
                occurred_at: e.occurred_at,
                data: &e.data,
            })
            .collect();
        let mut backoff = Backoff::default();
        while !new.is_empty() {
            match record_events(&self.pool, &new).await {
                Ok(created) => {
                    self.health.set(true);
                    for (e, c) in events.iter().zip(&created) {
                        self.metrics.alerts.with_label_values(&[if c.is_some() { "new" } else { "repeat" }]).inc();
                        debug!(tenant = %e.tenant_id, alert = %e.id, deliveries = c, "alert taken in");
                    }
                    break;
                }
                Err(e) => {
                    self.health.set(false);
                    self.metrics.failures.with_label_values(&["postgres"]).inc();
                    let wait = backoff.next_delay();
                    warn!(error = %e, alerts = new.len(), retry_in = ?wait, "recording alerts failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => return Ok(false),
                    }
                }
            }
        }
        for m in batch {
            self.consumer.store_offset_from_message(m)?;
        }
        Ok(true)
    }
}
