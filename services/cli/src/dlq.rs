//! `meterline dlq summary`: what is in the dead-letter topic, by reason.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use meterline_core::config::defaults;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;

#[derive(Args)]
pub struct DlqArgs {
    #[arg(long, env = "METERLINE_KAFKA_BROKERS", default_value = defaults::KAFKA_BROKERS)]
    brokers: String,
    #[arg(long, env = "METERLINE_DLQ_TOPIC", default_value = defaults::DLQ_TOPIC)]
    topic: String,
    /// Stop after this long without a new message.
    #[arg(long, default_value_t = 3)]
    idle_secs: u64,
}

/// Reads the whole topic once (a fresh, uncommitted group) and counts dead
/// letters by reason, and distinct source messages (a replay may dead-letter
/// one message twice).
pub fn summary(args: DlqArgs) -> Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", format!("meterline-dlq-summary-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&args.topic])?;
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let mut sources = HashSet::new();
    let mut total = 0u64;
    let mut idle = std::time::Instant::now();
    while idle.elapsed() < Duration::from_secs(args.idle_secs) {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else { continue };
        let m = m?;
        idle = std::time::Instant::now();
        total += 1;
        let header = |name: &str| {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == name).and_then(|h| h.value))
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        *by_reason.entry(header("meterline.reason")).or_default() += 1;
        sources.insert((header("meterline.source.partition"), header("meterline.source.offset")));
    }
    println!("{total} dead letters from {} distinct source messages", sources.len());
    for (reason, n) in by_reason {
        println!("  {reason:<24} {n}");
    }
    Ok(())
}
