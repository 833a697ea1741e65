//! Reading what the budget service did: its ledger in Postgres, its
//! progress through the usage topic, and the alerts and commands it
//! published.

use std::time::Duration;

use anyhow::{bail, Result};
use meterline_core::avro::{decode_alert, decode_throttle};
use meterline_core::{BudgetAlert, Month, ThrottleCommand};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rust_decimal::Decimal;
use sqlx::Row;

use crate::env::TestEnv;
use crate::expected::Totals;

/// The ledger's per-tenant events and spend for the current UTC month, in
/// the shape of the rollup's totals (currency "" for unpriced events).
pub async fn ledger_totals(env: &TestEnv) -> Result<Totals> {
    let pool = meterline_storage::postgres::connect(&env.database_url).await?;
    let month = Month::containing(chrono::Utc::now());
    let rows = sqlx::query(
        "SELECT tenant_id, currency::text AS currency, sum(events)::int8 AS events, sum(amount) AS amount FROM budget_spend \
         WHERE bucket_start >= $1 AND bucket_start < $2 GROUP BY tenant_id, currency",
    )
    .bind(month.start())
    .bind(month.end())
    .fetch_all(&pool)
    .await?;
    let mut out = Totals::new();
    for r in rows {
        let currency: String = r.try_get("currency")?;
        let currency = if currency.trim() == "XXX" { String::new() } else { currency.trim().to_owned() };
        let events: i64 = r.try_get("events")?;
        let amount: Decimal = r.try_get("amount")?;
        out.insert((r.try_get("tenant_id")?, currency), (events as u64, amount.normalize()));
    }
    pool.close().await;
    Ok(out)
}

/// Waits until the budget service's stored offsets reach the end of every
/// usage partition.
pub async fn wait_budget_consumed(env: &TestEnv, timeout: Duration) -> Result<()> {
    let pool = meterline_storage::postgres::connect(&env.database_url).await?;
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &env.brokers).create()?;
    let metadata = consumer.fetch_metadata(Some(&env.usage_topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let stored: Vec<(i32, i64)> = sqlx::query_as("SELECT partition, next_offset FROM budget_offsets WHERE topic = $1")
            .bind(&env.usage_topic)
            .fetch_all(&pool)
            .await?;
        let mut behind = 0;
        for p in &partitions {
            let (_, high) = consumer.fetch_watermarks(&env.usage_topic, *p, Duration::from_secs(10))?;
            let done = stored.iter().find(|s| s.0 == *p).map_or(0, |s| s.1);
            behind += (high - done).max(0);
        }
        if behind == 0 {
            pool.close().await;
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("budget service still {behind} messages behind after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every payload of `topic`, read from the beginning to its current end.
pub fn read_topic(brokers: &str, topic: &str) -> Result<Vec<Vec<u8>>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "meterline-tests-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut list = TopicPartitionList::new();
    let mut ends = Vec::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            if high > low {
                ends.push((p.id(), high));
                list.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            }
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&list)?;
    // Read to the end offsets, then on until nothing arrives for half a
    // second: Tansu 0.6 reports an end offset one past the *first* record
    // of the last record batch, not past its last record.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut quiet_since = None;
    loop {
        if std::time::Instant::now() > deadline {
            bail!("{topic} not read to its end in 30 s");
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m?;
                out.push(m.payload().unwrap_or_default().to_vec());
                ends.retain(|&(p, end)| !(p == m.partition() && m.offset() + 1 >= end));
                quiet_since = None;
            }
            None if ends.is_empty() => {
                let since = *quiet_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= Duration::from_millis(500) {
                    return Ok(out);
                }
            }
            None => {}
        }
    }
}

pub fn alerts(env: &TestEnv) -> Result<Vec<BudgetAlert>> {
    read_topic(&env.brokers, &env.alerts_topic)?.iter().map(|p| Ok(decode_alert(p)?)).collect()
}

pub fn commands(env: &TestEnv) -> Result<Vec<ThrottleCommand>> {
    read_topic(&env.brokers, &env.throttle_topic)?.iter().map(|p| Ok(decode_throttle(p)?)).collect()
}
