//! Alerts in: each alert on the topic becomes an event and its deliveries in
//! Postgres (one transaction, idempotent by alert id), and only then is its
//! offset stored, so an alert is never lost between Kafka and the outbox,
//! and one read twice (a crash, a rebalance) adds nothing. Sending is the
//! workers' job, never done here: taking an alert in stays fast whatever the
//! receivers do.

use std::sync::Arc;
use std::time::Duration;

use meterline_core::avro::decode_alert;
use meterline_runtime::backoff::Backoff;
use meterline_runtime::http::Health;
use meterline_storage::postgres::notify::{record_event, NewEvent};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use sqlx::PgPool;
use tokio::sync::watch;
use tracing::{debug, error, warn};

use crate::event::NotifyEvent;
use crate::metrics::Metrics;
use crate::NotifyError;

pub struct Intake {
    pub consumer: Arc<StreamConsumer>,
    pub pool: PgPool,
    pub metrics: Metrics,
    pub health: Arc<Health>,
}

impl Intake {
    /// Takes alerts in until `stop`; an alert in hand is recorded first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), NotifyError> {
        loop {
            let message = tokio::select! {
                _ = stop.changed() => return Ok(()),
                m = self.consumer.recv() => m,
            };
            match message {
                Ok(m) => self.take_in(&m, &mut stop).await?,
                Err(e) => {
                    warn!(error = %e, "Kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Records one alert, retrying Postgres until it works or the service
    /// stops (the offset is then not stored, and the alert is read again).
    async fn take_in(&self, m: &BorrowedMessage<'_>, stop: &mut watch::Receiver<bool>) -> Result<(), NotifyError> {
        match m.payload().map(decode_alert) {
            Some(Ok(alert)) => {
                let event = NotifyEvent::from_alert(&alert);
                let new = NewEvent {
                    event_id: event.id,
                    tenant_id: &event.tenant_id,
                    event_type: event.event_type,
                    occurred_at: event.occurred_at,
                    data: &event.data,
                };
                let mut backoff = Backoff::default();
                loop {
                    match record_event(&self.pool, &new).await {
                        Ok(created) => {
                            self.health.set(true);
                            let outcome = if created.is_some() { "new" } else { "repeat" };
                            self.metrics.alerts.with_label_values(&[outcome]).inc();
                            debug!(tenant = %event.tenant_id, alert = %event.id, deliveries = created, "alert taken in");
                            break;
                        }
                        Err(e) => {
                            self.health.set(false);
                            self.metrics.failures.with_label_values(&["postgres"]).inc();
                            let wait = backoff.next_delay();
                            warn!(error = %e, retry_in = ?wait, "recording an alert failed; retrying");
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => {}
                                _ = stop.changed() => return Ok(()),
                            }
                        }
                    }
                }
            }
            // Only the budget service writes this topic: a message it cannot
            // have written is a bug or a stranger's. It is skipped, loudly,
            // rather than stopping every tenant's alerts behind it.
            Some(Err(e)) => {
                self.metrics.alerts.with_label_values(&["undecodable"]).inc();
                error!(partition = m.partition(), offset = m.offset(), error = %e, "undecodable alert skipped");
            }
            None => {
                self.metrics.alerts.with_label_values(&["undecodable"]).inc();
                error!(partition = m.partition(), offset = m.offset(), "alert without a payload skipped");
            }
        }
        self.consumer.store_offset_from_message(m)?;
        Ok(())
    }
}
