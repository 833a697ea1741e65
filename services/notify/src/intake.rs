//! Alerts in: each alert on the alert topic becomes an event and its deliveries in
//! Postgres (idempotent by alert id), and only then is its offset stored, so
//! an alert is never lost between Kafka and the outbox, and one read twice
//! (a crash, a rebalance) adds nothing. The alerts already fetched are taken
//! in together, in one transaction: its commit is what an alert costs here,
//! and one per alert capped a backlog at about a thousand a second. Sending
//! is the workers' job, never done here: taking an alert in stays fast
//! whatever the receivers do.
//!
//! Throttle commands come in too, from the topic gateways obey: a tenant
//! newly blocked or degraded, or allowed again, is a notice (`throttle`),
//! recorded with the state it changed in one transaction.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use meterline_core::avro::{decode_alert, decode_throttle};
use meterline_core::{ThrottleCommand, ThrottleState};
use meterline_runtime::backoff::Backoff;
use meterline_runtime::http::Health;
use meterline_storage::postgres::notify::{record_events, record_events_in, throttle_seen};
use meterline_storage::StorageError;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use sqlx::PgPool;
use tokio::sync::watch;
use tracing::{debug, error, warn};

use crate::event::NotifyEvent;
use crate::metrics::Metrics;
use crate::throttle::{transition, Seen};
use crate::NotifyError;

/// Most alerts taken in per transaction.
const BATCH: usize = 500;

pub struct Intake {
    pub consumer: Arc<StreamConsumer>,
    /// Messages from this topic are throttle commands; the others, alerts.
    pub throttle_topic: String,
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

    /// Records a batch (alerts together, then each command), retrying
    /// Postgres until it works, then stores the offsets. `Ok(false)`: the
    /// service stopped first (the offsets are then not stored, and the
    /// messages are read again).
    async fn take_in(&self, batch: &[BorrowedMessage<'_>], stop: &mut watch::Receiver<bool>) -> Result<bool, NotifyError> {
        let mut alerts = Vec::with_capacity(batch.len());
        let mut commands = Vec::new();
        for m in batch {
            let decoded = if m.topic() == self.throttle_topic {
                m.payload().map(|p| decode_throttle(p).map(|c| commands.push(c)))
            } else {
                m.payload().map(|p| decode_alert(p).map(|a| alerts.push(NotifyEvent::from_alert(&a))))
            };
            // Only the budget service writes these topics: a message it
            // cannot have written is a bug or a stranger's. It is skipped,
            // loudly, rather than stopping every tenant's alerts behind it.
            match decoded {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    self.metrics.alerts.with_label_values(&["undecodable"]).inc();
                    error!(topic = m.topic(), partition = m.partition(), offset = m.offset(), error = %e, "undecodable message skipped");
                }
                None => {
                    self.metrics.alerts.with_label_values(&["undecodable"]).inc();
                    error!(topic = m.topic(), partition = m.partition(), offset = m.offset(), "message without a payload skipped");
                }
            }
        }
        if !alerts.is_empty() && !self.until_recorded(stop, || self.record_alerts(&alerts)).await {
            return Ok(false);
        }
        for c in &commands {
            if !self.until_recorded(stop, || self.record_command(c)).await {
                return Ok(false);
            }
        }
        for m in batch {
            self.consumer.store_offset_from_message(m)?;
        }
        Ok(true)
    }

    async fn record_alerts(&self, alerts: &[NotifyEvent]) -> Result<(), StorageError> {
        let new: Vec<_> = alerts.iter().map(NotifyEvent::as_new).collect();
        let created = record_events(&self.pool, &new).await?;
        for (e, c) in alerts.iter().zip(&created) {
            self.metrics.alerts.with_label_values(&[if c.is_some() { "new" } else { "repeat" }]).inc();
            debug!(tenant = %e.tenant_id, alert = %e.id, deliveries = c, "alert taken in");
        }
        Ok(())
    }

    /// Remembers a newer throttle state and records the notice its change
    /// makes, in one transaction (the tenant's row locked meanwhile).
    async fn record_command(&self, c: &ThrottleCommand) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        let previous = throttle_seen::last_seen(&mut tx, &c.tenant_id)
            .await?
            .and_then(|(version, state)| ThrottleState::parse(&state).map(|state| Seen { version, state }));
        let t = transition(previous, c, chrono::Utc::now().timestamp_micros());
        if let Some(seen) = t.remember {
            throttle_seen::remember(&mut tx, &c.tenant_id, seen.version, seen.state.as_str()).await?;
        }
        if let Some(notice) = &t.notice {
            let created = record_events_in(&mut tx, &[notice.as_new()]).await?;
            self.metrics.alerts.with_label_values(&[if created[0].is_some() { "notice" } else { "repeat" }]).inc();
            debug!(tenant = %c.tenant_id, notice = notice.event_type, "throttle change taken in");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs `step` until it succeeds; `false` if the service stopped first.
    async fn until_recorded<F, Fut>(&self, stop: &mut watch::Receiver<bool>, mut step: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), StorageError>>,
    {
        let mut backoff = Backoff::default();
        loop {
            match step().await {
                Ok(()) => {
                    self.health.set(true);
                    return true;
                }
                Err(e) => {
                    self.health.set(false);
                    self.metrics.failures.with_label_values(&["postgres"]).inc();
                    let wait = backoff.next_delay();
                    warn!(error = %e, retry_in = ?wait, "recording failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => return false,
                    }
                }
            }
        }
    }
}
