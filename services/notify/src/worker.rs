//! Deliveries out: claims due deliveries from the outbox (`claim_due`,
//! `FOR UPDATE SKIP LOCKED`, committed before sending), sends each on its
//! channel with at most `concurrency` in flight, and records each outcome
//! under its attempt number. A sender that dies between sending and
//! recording leaves its claim to expire; the delivery is then sent again
//! with the same `webhook-id`, the one resend receivers must deduplicate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use meterline_core::webhook::WebhookSecret;
use meterline_runtime::backoff::Backoff;
use meterline_runtime::http::Health;
use meterline_storage::postgres::notify::{claim_due, finish, queue_depth, Claimed, Finished};
use rand::Rng as _;
use sqlx::PgPool;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::email::{self, EmailSender};
use crate::event::{message_id, webhook_id, NotifyEvent};
use crate::metrics::Metrics;
use crate::outcome::Attempt;
use crate::schedule::Schedule;
use crate::webhook::{WebhookRequest, WebhookSender};
use crate::NotifyError;

pub struct Worker {
    pub pool: PgPool,
    pub webhooks: WebhookSender,
    pub email: EmailSender,
    pub schedule: Schedule,
    pub metrics: Metrics,
    pub health: Arc<Health>,
    pub concurrency: usize,
    pub poll: Duration,
    /// How long a claim holds a delivery: longer than an attempt can take,
    /// so a live sender's delivery is never claimed twice.
    pub lease: Duration,
}

impl Worker {
    /// Sends until `stop`; attempts in flight are finished first.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> Result<(), NotifyError> {
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let mut in_flight = JoinSet::new();
        let mut backoff = Backoff::default();
        let mut next_gauge = Instant::now();
        loop {
            if *stop.borrow() {
                break;
            }
            while in_flight.try_join_next().is_some() {}
            if Instant::now() >= next_gauge {
                next_gauge = Instant::now() + Duration::from_secs(1);
                self.update_gauges().await;
            }
            let free = permits.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                match claim_due(&self.pool, free as i64, self.lease.as_millis() as i64).await {
                    Ok(c) => {
                        backoff.reset();
                        self.health.set(true);
                        c
                    }
                    Err(e) => {
                        self.health.set(false);
                        self.metrics.failures.with_label_values(&["postgres"]).inc();
                        let wait = backoff.next_delay();
                        warn!(error = %e, retry_in = ?wait, "claiming deliveries failed; retrying");
                        sleep_or_stop(wait, &mut stop).await;
                        continue;
                    }
                }
            };
            if claimed.is_empty() {
                // Nothing due (or no free permit): wait a poll, or for a
                // send to finish.
                tokio::select! {
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = in_flight.join_next(), if !in_flight.is_empty() => {}
                    _ = stop.changed() => break,
                }
                continue;
            }
            for c in claimed {
                let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
                let worker = self.clone();
                in_flight.spawn(async move {
                    worker.deliver(c).await;
                    drop(permit);
                });
            }
        }
        info!(in_flight = in_flight.len(), "sender stopping; finishing the attempts in flight");
        while in_flight.join_next().await.is_some() {}
        Ok(())
    }

    /// One attempt of one delivery, start to record.
    async fn deliver(&self, c: Claimed) {
        let started = Instant::now();
        let attempt = self.send(&c).await;
        self.metrics.attempt_seconds.with_label_values(&[&c.kind]).observe(started.elapsed().as_secs_f64());
        self.metrics.attempts.with_label_values(&[&c.kind, attempt.outcome()]).inc();
        let finished = self.next_state(&c, attempt);
        debug!(tenant = %c.tenant_id, delivery = %c.delivery_id, attempt = c.attempt, outcome = ?finished, "attempt done");
        let mut backoff = Backoff::default();
        // The outcome must be recorded, or the delivery is sent again when
        // its claim expires; Postgres trouble is waited out within the lease.
        let deadline = Instant::now() + self.lease / 2;
        loop {
            match finish(&self.pool, &c, &finished).await {
                Ok(true) => return,
                Ok(false) => return warn!(delivery = %c.delivery_id, "attempt outlived its claim; a later attempt owns the delivery"),
                Err(e) if Instant::now() < deadline => {
                    self.metrics.failures.with_label_values(&["postgres"]).inc();
                    let wait = backoff.next_delay();
                    warn!(error = %e, retry_in = ?wait, "recording an attempt failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return warn!(error = %e, delivery = %c.delivery_id, "attempt not recorded; it will be sent again"),
            }
        }
    }

    async fn send(&self, c: &Claimed) -> Attempt {
        match c.kind.as_str() {
            "webhook" => {
                let secrets: Result<Vec<WebhookSecret>, _> = c.secrets.iter().map(|s| WebhookSecret::parse(s)).collect();
                let secrets = match secrets {
                    Ok(s) if !s.is_empty() => s,
                    Ok(_) => return permanent("the channel has no signing secret"),
                    Err(e) => return permanent(&format!("the channel's signing secret is unusable: {e}")),
                };
                let id = webhook_id(c.event_id, c.channel_id);
                let body = NotifyEvent::envelope(&c.event_type, c.occurred_at, &c.data);
                let request =
                    WebhookRequest { url: &c.target, id: &id, body: &body, secrets: &secrets, timestamp_secs: Utc::now().timestamp() };
                self.webhooks.send(&request).await
            }
            "email" => {
                let content = email::render(&c.event_type, &c.data);
                self.email.send(&c.target, message_id(c.event_id, c.channel_id), &content).await
            }
            other => permanent(&format!("channel kind {other:?} cannot be delivered by this notifier")),
        }
    }

    /// What the attempt's outcome makes of the delivery, per the schedule.
    fn next_state(&self, c: &Claimed, attempt: Attempt) -> Finished {
        match attempt {
            Attempt::Delivered { status } => Finished::Sent { status },
            Attempt::Permanent { error, status, disable } => {
                Finished::Dead { disable_channel: disable.then(|| error.clone()), error, status }
            }
            Attempt::Retry { error, status, retry_after } => {
                let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
                match self.schedule.next_wait(c.attempt.max(1) as u32, jitter, retry_after) {
                    Some(wait) => Finished::Failed { error, status, wait_ms: wait.as_millis() as i64 },
                    None => Finished::Dead {
                        error: format!("{error} (attempt {}, the last of the schedule)", c.attempt),
                        status,
                        disable_channel: None,
                    },
                }
            }
        }
    }

    async fn update_gauges(&self) {
        match queue_depth(&self.pool).await {
            Ok((depth, oldest)) => {
                self.metrics.queue_depth.set(depth);
                self.metrics.oldest_pending_seconds.set(oldest);
            }
            Err(e) => debug!(error = %e, "reading the queue depth"),
        }
    }
}

fn permanent(error: &str) -> Attempt {
    Attempt::Permanent { error: error.to_owned(), status: None, disable: false }
}

async fn sleep_or_stop(wait: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = stop.changed() => {}
    }
}
