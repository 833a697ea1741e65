//! `meterline loadgen`: simulated gateway and RAG traffic through the SDK,
//! with deliberate duplicates and malformed messages, and the ground truth
//! of what was sent, for tests and the demo to check the pipeline against.

mod generate;
mod truth;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use meterline_core::config::defaults;
use meterline_core::Month;
use meterline_sdk::{Delivery, Emitter, EmitterConfig};

pub use generate::{Generator, Item};
pub use truth::Truth;

#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// Number of tenants (tenant-001, tenant-002, ...).
    #[arg(long, default_value_t = 40)]
    pub tenants: usize,
    /// Distinct valid events to send.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Events per second; unlimited if absent.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Probability that a send is a re-send of an earlier event.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate_ratio: f64,
    /// Probability that a send is a malformed message.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_ratio: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the ground truth (JSON).
    #[arg(long)]
    pub truth: PathBuf,
    /// Spread occurred_at over this month (up to now); default: now.
    #[arg(long, value_parser = Month::parse)]
    pub month: Option<Month>,
    #[arg(long, env = "METERLINE_KAFKA_BROKERS", default_value = defaults::KAFKA_BROKERS)]
    pub brokers: String,
    #[arg(long, env = "METERLINE_USAGE_TOPIC", default_value = defaults::USAGE_TOPIC)]
    pub topic: String,
}

/// Acknowledgements awaited in order, at most this many outstanding here
/// (the SDK bounds the in-flight events themselves).
const MAX_PENDING_DELIVERIES: usize = 20_000;

pub async fn run(args: LoadgenArgs) -> Result<()> {
    anyhow::ensure!((0.0..1.0).contains(&args.duplicate_ratio), "--duplicate-ratio must be in [0, 1)");
    anyhow::ensure!((0.0..1.0).contains(&args.malformed_ratio), "--malformed-ratio must be in [0, 1)");
    anyhow::ensure!(args.tenants > 0, "--tenants must be at least 1");
    let emitter = Emitter::new(EmitterConfig { brokers: args.brokers.clone(), topic: args.topic.clone(), ..EmitterConfig::from_env()? })?;
    let mut generator = Generator::new(&args);
    let mut truth = Truth::default();
    let mut pending: VecDeque<Delivery> = VecDeque::new();
    let started = Instant::now();
    let mut sent = 0u64;

    while let Some(item) = generator.next_item(now_micros()) {
        if let Some(rate) = args.rate {
            let due = started + Duration::from_secs_f64(sent as f64 / f64::from(rate.max(1)));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        let delivery = match &item {
            Item::Event { event, .. } => emitter.emit(event).await.context("emitting a generated event")?,
            Item::Duplicate { key, payload } | Item::Malformed { key, payload, .. } => emitter.emit_raw(key.as_bytes(), payload).await?,
        };
        truth.record(&item);
        pending.push_back(delivery);
        if pending.len() > MAX_PENDING_DELIVERIES {
            pending.pop_front().expect("not empty").await.context("the broker refused an event")?;
        }
        sent += 1;
    }
    for d in pending {
        d.await.context("the broker refused an event")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    truth.write(&args.truth)?;
    println!(
        "loadgen: {} events ({} distinct, {} duplicates, {} malformed) in {:.2}s, {:.0} events/s; truth in {}",
        sent,
        truth.distinct_events,
        truth.duplicates_sent,
        truth.malformed_sent,
        elapsed,
        sent as f64 / elapsed,
        args.truth.display()
    );
    Ok(())
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
