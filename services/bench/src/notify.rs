//! `bench notify`: alert delivery. Alerts are produced on a fresh alert
//! topic; the notifier (in this process, as `meterline-notify` runs it)
//! takes them into a fresh Postgres database and delivers each to a webhook
//! channel on a receiver in this process. Two figures: alert acknowledged
//! by the broker → webhook received (p50/p99, at a steady rate), and
//! sustained deliveries per second (a backlog delivered as fast as it goes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use clap::Args as ClapArgs;
use meterline_core::avro::encode_alert;
use meterline_core::config::Env;
use meterline_core::webhook::WebhookSecret;
use meterline_core::{AlertKind, BudgetAlert, Currency};
use meterline_storage::postgres::{self, notify};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use uuid::Uuid;

use crate::pipeline::{create_topics, delete_topics, percentile};

#[derive(ClapArgs)]
pub struct Args {
    /// Tenants, one webhook channel each.
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// Alerts per second in the latency run.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Alerts in the latency run.
    #[arg(long, default_value_t = 1000)]
    latency_alerts: usize,
    /// Alerts in the throughput run (produced at once, then delivered).
    #[arg(long, default_value_t = 20_000)]
    alerts: usize,
    #[arg(long, env = "METERLINE_KAFKA_BROKERS", default_value = meterline_core::config::defaults::KAFKA_BROKERS)]
    brokers: String,
}

/// When each alert's webhook arrived, by alert id.
type Arrivals = Arc<Mutex<HashMap<Uuid, Instant>>>;

async fn receive(State(arrivals): State<Arrivals>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let id =
        serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["data"]["alert_id"].as_str().and_then(|s| s.parse().ok()));
    if let Some(id) = id {
        arrivals.lock().unwrap_or_else(|e| e.into_inner()).insert(id, now);
    }
    StatusCode::NO_CONTENT
}

pub async fn run(args: Args) -> Result<()> {
    let suffix = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let topic = format!("bench.{suffix}.alerts");
    let throttle_topic = format!("bench.{suffix}.throttle");
    create_topics(&args.brokers, &[(&topic, 1), (&throttle_topic, 1)]).await?;
    let base = postgres::database_url_from_env().expose().to_owned();
    let (server, _) = base.rsplit_once('/').context("METERLINE_DATABASE_URL has no database")?;
    let pg_url = format!("{server}/meterline_bench_notify_{suffix}");
    let pool = postgres::migrate(&pg_url).await.context("Postgres")?;

    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().route("/hook", post(receive)).with_state(arrivals.clone());
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });
    let tenants: Vec<String> = (0..args.tenants).map(|i| format!("bench-tenant-{i}")).collect();
    for t in &tenants {
        let secret = WebhookSecret::from_key(&rand::random::<[u8; 32]>())?.expose();
        notify::add_channel(&pool, t, "webhook", &url, &[], Some(&secret)).await?;
    }

    let config = meterline_notify::Config::from(&Env::from_pairs(&[
        ("METERLINE_KAFKA_BROKERS", &args.brokers),
        ("METERLINE_ALERTS_TOPIC", &topic),
        ("METERLINE_THROTTLE_TOPIC", &throttle_topic),
        ("METERLINE_NOTIFY_GROUP", &format!("bench-notify-{suffix}")),
        ("METERLINE_DATABASE_URL", &pg_url),
        ("METERLINE_NOTIFY_LISTEN", "127.0.0.1:0"),
        ("METERLINE_WEBHOOK_ALLOW_NETS", "127.0.0.1/32"),
    ]))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let notifier = tokio::spawn(meterline_notify::run(config, async move {
        let _ = stop_rx.await;
    }));
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", &args.brokers).set("linger.ms", "5").set("enable.idempotence", "true").create()?;
    println!(
        "notify benchmark: {} tenants with a webhook each, receiver and notifier on this machine; concurrency {}",
        args.tenants,
        meterline_notify::Config::from(&Env::from_pairs(&[]))?.concurrency
    );

    // Latency: a steady trickle, each alert timed from its acknowledgement.
    let mut acked = HashMap::new();
    let every = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut next = tokio::time::Instant::now();
    for i in 0..args.latency_alerts {
        tokio::time::sleep_until(next).await;
        next += every;
        let a = alert(&tenants[i % tenants.len()]);
        send(&producer, &topic, &a).await?;
        acked.insert(a.alert_id, Instant::now());
    }
    wait_for(&arrivals, &acked, Duration::from_secs(60)).await?;
    let mut latencies: Vec<f64> = {
        let got = arrivals.lock().unwrap_or_else(|e| e.into_inner());
        acked.iter().map(|(id, at)| got[id].saturating_duration_since(*at).as_secs_f64() * 1000.0).collect()
    };
    latencies.sort_by(f64::total_cmp);
    println!(
        "alert acked → webhook received at {} alerts/s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} alerts)",
        args.rate,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        latencies.len()
    );

    // Throughput: a backlog produced as fast as the broker takes it.
    let started = Instant::now();
    let mut backlog = HashMap::new();
    let sends: Vec<BudgetAlert> = (0..args.alerts).map(|i| alert(&tenants[i % tenants.len()])).collect();
    for chunk in sends.chunks(1000) {
        futures::future::try_join_all(chunk.iter().map(|a| send(&producer, &topic, a))).await?;
        backlog.extend(chunk.iter().map(|a| (a.alert_id, started)));
    }
    wait_for(&arrivals, &backlog, Duration::from_secs(300)).await?;
    let last = {
        let got = arrivals.lock().unwrap_or_else(|e| e.into_inner());
        backlog.keys().map(|id| got[id]).max().unwrap_or(started)
    };
    let secs = last.duration_since(started).as_secs_f64();
    println!("sustained: {} alerts delivered in {secs:.2} s = {:.0} deliveries/s (target >= 1000)", args.alerts, args.alerts as f64 / secs);

    let _ = stop_tx.send(());
    notifier.await.context("notifier task")?.context("notifier")?;
    receiver.abort();
    pool.close().await;
    delete_topics(&args.brokers, &[&topic, &throttle_topic]).await;
    Ok(())
}

fn alert(tenant: &str) -> BudgetAlert {
    let now = chrono::Utc::now().timestamp_micros();
    BudgetAlert {
        alert_id: Uuid::new_v4(),
        tenant_id: tenant.to_owned(),
        kind: AlertKind::Threshold,
        threshold_percent: 80,
        spend: rust_decimal::Decimal::new(8050, 2),
        limit: rust_decimal::Decimal::from(100),
        projected: None,
        currency: Currency::USD,
        period_start_micros: now - 86_400_000_000,
        period_end_micros: now + 86_400_000_000,
        budget_version: 1,
        raised_at_micros: now,
    }
}

async fn send(producer: &FutureProducer, topic: &str, a: &BudgetAlert) -> Result<()> {
    let payload = encode_alert(a);
    producer
        .send(FutureRecord::to(topic).key(&a.tenant_id).payload(&payload), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .context("producing an alert")?;
    Ok(())
}

/// Until every alert of `expected` has arrived.
async fn wait_for(arrivals: &Arrivals, expected: &HashMap<Uuid, Instant>, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let missing = {
            let got = arrivals.lock().unwrap_or_else(|e| e.into_inner());
            expected.keys().filter(|id| !got.contains_key(id)).count()
        };
        if missing == 0 {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{missing} alerts were not delivered within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
