//! `meterline alerts`: the budget alerts published so far, oldest first.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use meterline_core::avro::decode_alert;
use meterline_core::config::defaults;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;

#[derive(Args)]
pub struct AlertsArgs {
    #[arg(long, env = "METERLINE_KAFKA_BROKERS", default_value = defaults::KAFKA_BROKERS)]
    brokers: String,
    #[arg(long, env = "METERLINE_ALERTS_TOPIC", default_value = defaults::ALERTS_TOPIC)]
    topic: String,
    /// Only this tenant's alerts.
    #[arg(long)]
    tenant: Option<String>,
    /// Stop after this long without a new message.
    #[arg(long, default_value_t = 2)]
    idle_secs: u64,
}

pub fn list(args: AlertsArgs) -> Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", format!("meterline-alerts-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&args.topic])?;
    let mut idle = std::time::Instant::now();
    while idle.elapsed() < Duration::from_secs(args.idle_secs) {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else { continue };
        let m = m?;
        idle = std::time::Instant::now();
        let a = match m.payload().map(decode_alert) {
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                eprintln!("partition {} offset {}: undecodable alert: {e}", m.partition(), m.offset());
                continue;
            }
            None => continue,
        };
        if args.tenant.as_ref().is_some_and(|t| *t != a.tenant_id) {
            continue;
        }
        let raised = chrono::DateTime::from_timestamp_micros(a.raised_at_micros).map(|t| t.to_rfc3339()).unwrap_or_default();
        let what = match a.projected {
            Some(p) => format!("forecast: month-end projection {} {} over budget", p.round_dp(6).normalize(), a.currency),
            None => format!("{}% of budget reached", a.threshold_percent),
        };
        println!(
            "{raised} {:<20} {what}: spent {} of {} {} (budget v{})",
            a.tenant_id,
            a.spend.round_dp(6).normalize(),
            a.limit.normalize(),
            a.currency,
            a.budget_version
        );
    }
    Ok(())
}
