//! Enforcement: how soon a tenant that exhausts its budget is blocked in a
//! gateway, and how much it spent past the budget meanwhile.
//!
//! A simulated gateway emits usage at a steady rate for many tenants, each
//! with a budget that runs out at a different moment of the run, and asks
//! its [`ThrottleWatcher`] before every event (a blocked tenant's requests
//! are refused, so they cost nothing). The budget service runs in this
//! process against the real broker and Postgres.
//!
//! - Enforcement latency: from the broker's acknowledgement of the event
//!   that exhausted a budget to the moment the watcher answers `Block`.
//! - Overshoot: spend accepted beyond the budget, as % of the budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use meterline_core::avro::Codec;
use meterline_core::budget::Tz;
use meterline_core::{price_event, Budget, BudgetAction, Currency, EventCost, PriceBook};
use meterline_sdk::{Decision, Decisions, Emitter, EmitterConfig, ThrottleWatcher, WatcherConfig};
use meterline_storage::postgres;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::pipeline::{create_topics, delete_topics, percentile};
use meterline_core::config::defaults;

#[derive(clap::Args)]
pub struct Args {
    /// Steady usage rate, events/s, over all tenants.
    #[arg(long, default_value_t = 20_000)]
    rate: u32,
    #[arg(long, default_value_t = 100)]
    tenants: usize,
    /// Length of the run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Budgets run out between these many seconds into the run.
    #[arg(long, default_value_t = 20)]
    exhaust_from: u64,
    #[arg(long, default_value_t = 50)]
    exhaust_to: u64,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    #[arg(long, env = "METERLINE_KAFKA_BROKERS", default_value = defaults::KAFKA_BROKERS)]
    brokers: String,
}

/// One tenant as the gateway sees it.
#[derive(Default)]
struct Tenant {
    budget: Decimal,
    accepted: Decimal,
    /// When the broker acknowledged the event that exhausted the budget.
    exhausted_ack: Option<Instant>,
    exhausted: bool,
    blocked_seen: Option<Instant>,
    /// Wall-clock micros of the acknowledgement, of the budget service's
    /// decision (the command's issued_at) and of the block being seen: the
    /// split between deciding and delivering.
    ack_wall: i64,
    issued_wall: i64,
    seen_wall: i64,
}

fn wall_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub async fn run(args: Args) -> Result<()> {
    if args.exhaust_to >= args.seconds || args.exhaust_from >= args.exhaust_to {
        bail!("need exhaust-from < exhaust-to < seconds");
    }
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let usage_topic = format!("bench.{suffix}.usage");
    let throttle_topic = format!("bench.{suffix}.throttle");
    let alerts_topic = format!("bench.{suffix}.alerts");
    create_topics(&args.brokers, &[(&usage_topic, args.partitions), (&throttle_topic, 2), (&alerts_topic, 1)]).await?;
    let base = postgres::database_url_from_env().expose().to_owned();
    let (server, _) = base.rsplit_once('/').context("METERLINE_DATABASE_URL has no database")?;
    let pg_url = format!("{server}/meterline_bench_enf_{suffix}");
    let pool = postgres::migrate(&pg_url).await.context("Postgres")?;
    let entries = meterline_core::pricing::csv::parse(include_str!("../../../prices/default.csv"))?;
    postgres::import_prices(&pool, &entries).await?;
    let book = PriceBook::build(&entries, &[])?;

    // The whole run's traffic, priced up front, so each tenant's budget can
    // be set to exactly what it will have spent at its chosen moment.
    let total = (u64::from(args.rate) * args.seconds) as usize;
    let events = crate::events::encoded(total, args.tenants, 11);
    let costs = price_all(&book, &events)?;
    let mut tenants: HashMap<String, Tenant> = HashMap::new();
    let span = (args.exhaust_to - args.exhaust_from) as f64;
    let mut exhaust_at: HashMap<String, usize> = HashMap::new();
    let mut names: Vec<String> = events.iter().map(|e| e.0.clone()).collect();
    names.sort();
    names.dedup();
    for (i, name) in names.iter().enumerate() {
        let secs = args.exhaust_from as f64 + span * (i as f64 + 0.5) / names.len() as f64;
        exhaust_at.insert(name.clone(), (secs * f64::from(args.rate)) as usize);
    }
    let mut spent: HashMap<&str, Decimal> = HashMap::new();
    for (i, ((tenant, _), cost)) in events.iter().zip(&costs).enumerate() {
        let s = spent.entry(tenant.as_str()).or_default();
        *s += *cost;
        if i < exhaust_at[tenant] {
            tenants.entry(tenant.clone()).or_default().budget = *s;
        }
    }
    for (name, t) in &tenants {
        let budget = Budget {
            tenant_id: name.clone(),
            amount: t.budget.max(Decimal::new(1, 6)),
            currency: Currency::USD,
            thresholds: vec![50, 80, 100],
            action: BudgetAction::Block,
            grace_percent: Decimal::ZERO,
            timezone: Tz::UTC,
            version: 0,
        };
        postgres::budgets::set_budget(&pool, &budget).await?;
    }
    println!(
        "enforcement benchmark: {} events/s for {} s over {} tenants, budgets running out between {} s and {} s, action block",
        args.rate,
        args.seconds,
        tenants.len(),
        args.exhaust_from,
        args.exhaust_to
    );

    let config = meterline_budget::Config {
        brokers: args.brokers.clone(),
        usage_topic: usage_topic.clone(),
        throttle_topic: throttle_topic.clone(),
        alerts_topic: alerts_topic.clone(),
        database_url: meterline_core::config::SecretUrl::new(pg_url),
        listen: "127.0.0.1:9475".into(),
        clock_file: None,
        ..meterline_budget::Config::from_env()?
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(meterline_budget::run(config, async move {
        let _ = stop_rx.await;
    }));
    let watcher = Arc::new(ThrottleWatcher::start(WatcherConfig {
        brokers: args.brokers.clone(),
        topic: throttle_topic.clone(),
        ..WatcherConfig::default()
    })?);
    if !watcher.wait_caught_up(Duration::from_secs(30)).await {
        bail!("throttle watcher did not catch up");
    }
    let emitter = Emitter::new(EmitterConfig { brokers: args.brokers.clone(), topic: usage_topic.clone(), ..EmitterConfig::from_env()? })?;

    let state = Arc::new(Mutex::new(tenants));
    let monitor = spawn_monitor(state.clone(), watcher.clone());
    let started = Instant::now();
    let mut refused = 0u64;
    let mut emitted = 0u64;
    for (i, ((tenant, bytes), cost)) in events.iter().zip(&costs).enumerate() {
        let due = started + Duration::from_secs_f64(i as f64 / f64::from(args.rate));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        // The gateway's question, before the model is called.
        if matches!(watcher.decision(tenant), Decision::Block { .. }) {
            refused += 1;
            continue;
        }
        let delivery = emitter.emit_raw(tenant.as_bytes(), bytes).await?;
        emitted += 1;
        let crossed = {
            let mut s = state.lock().expect("tenant state");
            let t = s.get_mut(tenant).context("tenant")?;
            t.accepted += *cost;
            let crossed = !t.exhausted && t.accepted >= t.budget;
            t.exhausted |= crossed;
            crossed
        };
        if crossed {
            let (state, tenant) = (state.clone(), tenant.clone());
            tokio::spawn(async move {
                if delivery.await.is_ok() {
                    let mut s = state.lock().expect("tenant state");
                    let t = s.get_mut(&tenant).expect("tenant");
                    t.exhausted_ack = Some(Instant::now());
                    t.ack_wall = wall_micros();
                }
            });
        }
    }
    let elapsed = started.elapsed();
    emitter.flush(Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    monitor.abort();
    let _ = monitor.await;
    print_service_metrics().await;
    let _ = stop_tx.send(());
    let _ = service.await;

    report(&state.lock().expect("tenant state"), emitted, refused, elapsed);
    // Every client of the topics stops before they are deleted.
    drop(watcher);
    drop(emitter);
    delete_topics(&args.brokers, &[&usage_topic, &throttle_topic, &alerts_topic]).await;
    Ok(())
}

/// Prints the run's figures from each tenant's record.
fn report(tenants: &HashMap<String, Tenant>, emitted: u64, refused: u64, elapsed: Duration) {
    let mut latencies = Vec::new();
    let mut overshoots = Vec::new();
    let mut unblocked = 0;
    let (mut deciding, mut delivering) = (Vec::new(), Vec::new());
    for t in tenants.values() {
        if t.blocked_seen.is_some() && t.ack_wall > 0 {
            deciding.push((t.issued_wall - t.ack_wall) as f64 / 1000.0);
            delivering.push((t.seen_wall - t.issued_wall) as f64 / 1000.0);
        }
        match (t.exhausted_ack, t.blocked_seen) {
            (Some(ack), Some(seen)) => latencies.push(seen.saturating_duration_since(ack).as_secs_f64() * 1000.0),
            _ => unblocked += 1,
        }
        if t.budget > Decimal::ZERO {
            overshoots.push(((t.accepted - t.budget) * Decimal::ONE_HUNDRED / t.budget).to_f64().unwrap_or(f64::NAN));
        }
    }
    println!(
        "load: {emitted} events accepted + {refused} refused in {:.1} s = {:.0} requests/s",
        elapsed.as_secs_f64(),
        (emitted + refused) as f64 / elapsed.as_secs_f64()
    );
    println!(
        "enforcement latency (ack of the exhausting event -> Block in the watcher), {} tenants: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    println!(
        "  of which ack -> decided in the budget service: p50 {:.0} ms, p99 {:.0} ms; decided -> seen by the watcher: p50 {:.0} ms, p99 {:.0} ms",
        percentile(&deciding, 0.5),
        percentile(&deciding, 0.99),
        percentile(&delivering, 0.5),
        percentile(&delivering, 0.99)
    );
    println!(
        "overshoot (spend accepted beyond the budget, % of budget): p50 {:.3}%, p99 {:.3}%, max {:.3}%",
        percentile(&overshoots, 0.5),
        percentile(&overshoots, 0.99),
        percentile(&overshoots, 1.0)
    );
    if unblocked > 0 {
        println!("NOT BLOCKED: {unblocked} tenants exhausted their budget but never saw a block");
    }
}

/// The budget service's own view of the run: how many ledger
/// transactions it ran and how long they took.
async fn print_service_metrics() {
    let Ok(out) = tokio::process::Command::new("curl").args(["-fsS", "http://127.0.0.1:9475/metrics"]).output().await else { return };
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |name: &str| -> f64 {
        text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
    };
    let (count, sum) = (value("meterline_budget_batch_duration_seconds_count"), value("meterline_budget_batch_duration_seconds_sum"));
    println!("budget service: {count:.0} ledger transactions, {:.1} ms each on average", sum / count * 1000.0);
}

fn price_all(book: &PriceBook, events: &[(String, Vec<u8>)]) -> Result<Vec<Decimal>> {
    let codec = Codec::new();
    events
        .iter()
        .map(|(_, bytes)| match price_event(book, &codec.decode(bytes)?) {
            EventCost::Priced { currency, amount } if currency == Currency::USD => Ok(amount),
            other => bail!("benchmark events must be priced in USD, got {other:?}"),
        })
        .collect()
}

/// Notes, every millisecond, when each exhausted tenant is first seen
/// blocked.
fn spawn_monitor(state: Arc<Mutex<HashMap<String, Tenant>>>, watcher: Arc<ThrottleWatcher>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            {
                let mut s = state.lock().expect("tenant state");
                for (name, t) in s.iter_mut().filter(|(_, t)| t.exhausted && t.blocked_seen.is_none()) {
                    if matches!(watcher.decision(name), Decision::Block { .. }) {
                        t.blocked_seen = Some(Instant::now());
                        t.seen_wall = wall_micros();
                        t.issued_wall = watcher.command(name).map_or(0, |c| c.command.issued_at_micros);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
}
