//! Wires the notifier together and runs it until shutdown.

use std::sync::Arc;

use meterline_runtime::http;
use meterline_storage::postgres;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::ClientConfig;
use tokio::task::JoinSet;
use tracing::info;

use crate::email::EmailSender;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::webhook::address::AddressPolicy;
use crate::webhook::WebhookSender;
use crate::worker::Worker;
use crate::{Config, NotifyError};

pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), NotifyError> {
    let metrics = Metrics::new();
    let render = metrics.clone();
    let http::Observed { health, stop, server } = http::observe(&config.listen, Arc::new(move || render.render()), shutdown).await?;
    // Intake and senders each hold a connection at times; the senders'
    // records are short transactions, so a few more than that suffice.
    let pool = postgres::connect_sized(config.database_url.expose(), 8).await?;

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        // Alerts already taken in are stored in Postgres; a new group starts
        // at the beginning so no alert before its first start is missed.
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "10")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", (config.session_timeout_ms / 4).max(100).to_string())
        .create()?;
    consumer.subscribe(&[&config.alerts_topic, &config.throttle_topic])?;
    info!(alerts = %config.alerts_topic, throttle = %config.throttle_topic, group = %config.group_id, "taking alerts in");
    let intake = Intake {
        consumer: Arc::new(consumer),
        throttle_topic: config.throttle_topic.clone(),
        pool: pool.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
    };

    let worker = Arc::new(Worker {
        pool,
        webhooks: WebhookSender::new(AddressPolicy::allowing(config.webhook_allow.clone()), config.attempt_timeout)?,
        email: EmailSender::new(&config.smtp_url, config.smtp_from.clone(), config.attempt_timeout)?,
        schedule: config.schedule.clone(),
        metrics,
        health: health.clone(),
        concurrency: config.concurrency,
        poll: config.poll,
        lease: config.attempt_timeout * 2 + std::time::Duration::from_secs(5),
    });
    health.set(true);

    // Either half failing stops the service; both stop cleanly on shutdown.
    let mut running: JoinSet<(&'static str, Result<(), NotifyError>)> = JoinSet::new();
    running.spawn({
        let stop = stop.clone();
        async move { ("intake", intake.run(stop).await) }
    });
    running.spawn(async move { ("sender", worker.run(stop).await) });
    let mut result = Ok(());
    while let Some(done) = running.join_next().await {
        match done {
            Ok((_, Ok(()))) => {}
            Ok((_, Err(e))) => {
                result = Err(e);
                break;
            }
            Err(e) => {
                result = Err(NotifyError::TaskFailed { task: "intake or sender", reason: e.to_string() });
                break;
            }
        }
    }
    drop(running);
    let _ = server.await;
    result
}
