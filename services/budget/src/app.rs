//! Wires the budget service together and runs it until shutdown.

use std::sync::Arc;

use meterline_core::ValidationPolicy;
use meterline_runtime::intake;
use meterline_storage::postgres;
use rdkafka::consumer::StreamConsumer;
use rdkafka::ClientConfig;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::consumer::{self, Shared};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::triggers::{self, Judge};
use crate::{BudgetServiceError, Clock, Config};
use meterline_runtime::http;

pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), BudgetServiceError> {
    let metrics = Metrics::new();
    let render = metrics.clone();
    let http::Observed { health, stop: stop_rx, server } =
        http::observe(&config.listen, Arc::new(move || render.render()), shutdown).await?;

    let pool = postgres::connect_sized(config.database_url.expose(), config.db_connections).await?;
    let gauge = metrics.price_book_entries.clone();
    let prices = postgres::live_price_book(pool.clone(), config.price_refresh, move |n| gauge.set(n as i64), stop_rx.clone()).await?;

    let clock = match &config.clock_file {
        Some(path) => {
            warn!(path, "reading the time from a file (tests only)");
            Clock::from_file(path)
        }
        None => Clock::system(),
    };
    let outbox = Arc::new(Outbox::new(pool.clone(), &config.brokers, &config.throttle_topic, &config.alerts_topic, metrics.clone())?);
    outbox.flush().await?;

    let judge = Judge {
        pool: pool.clone(),
        outbox: outbox.clone(),
        clock: clock.clone(),
        metrics: metrics.clone(),
        forecast_min_elapsed: config.forecast_min_elapsed,
    };
    tokio::spawn(triggers::on_budget_change(judge.clone(), config.database_url.expose().to_owned(), stop_rx.clone()));
    tokio::spawn(triggers::on_time(judge, config.tick, config.sweep, stop_rx.clone()));

    let mut client = ClientConfig::new();
    if let Ok(contexts) = std::env::var("METERLINE_KAFKA_DEBUG") {
        // librdkafka's own tracing (e.g. "fetch,topic"), for broker trouble.
        client.set("debug", contexts);
    }
    let consumer: StreamConsumer = client
        .set("bootstrap.servers", &config.brokers)
        // Required by librdkafka; partitions are assigned, never joined.
        .set("group.id", "meterline-budget")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "5")
        // An empty partition answers fetches with an error on some brokers
        // (Tansu); the default 500 ms backoff would then delay its first
        // events by that much.
        .set("fetch.error.backoff.ms", "20")
        .set("queued.max.messages.kbytes", "8192")
        .create()?;
    let consumer = Arc::new(consumer);
    let codec = intake::codec(config.schemas_dir.as_deref()).map_err(BudgetServiceError::Config)?;
    let shared = Arc::new(Shared {
        consumer: consumer.clone(),
        topic: config.usage_topic.clone(),
        codec,
        prices,
        policy: ValidationPolicy { max_future_skew_micros: config.max_future_skew.as_micros() as i64 },
        pool,
        outbox,
        clock,
        metrics,
        health,
        failing: Default::default(),
        batch_max_events: config.batch_max_events,
        batch_max_wait: config.batch_max_wait,
        forecast_min_elapsed: config.forecast_min_elapsed,
    });
    let loops = consumer::assign(&shared).await?;
    let driver = tokio::spawn(consumer::drive(consumer, stop_rx.clone()));
    info!(throttle = %config.throttle_topic, alerts = %config.alerts_topic, "budget service started");
    let mut running: JoinSet<Result<(), BudgetServiceError>> = JoinSet::new();
    for l in loops {
        running.spawn(l.run(stop_rx.clone()));
    }
    // The first loop to fail stops the service (the others are stopped by
    // dropping the set); each stops cleanly on shutdown.
    let mut result = Ok(());
    while let Some(done) = running.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                result = Err(e);
                break;
            }
            Err(e) => {
                result = Err(BudgetServiceError::TaskFailed(format!("a usage loop: {e}")));
                break;
            }
        }
    }
    drop(running);
    driver.abort();
    let _ = server.await;
    result
}
