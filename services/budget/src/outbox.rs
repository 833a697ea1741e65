//! Publishing what `evaluate` decided: throttle commands and alerts, from
//! their outbox tables to Kafka.
//!
//! Commands: rows are locked (`FOR UPDATE`), produced (idempotent
//! producer, `acks=all`), and marked published in the same transaction once
//! the broker acknowledged, so two instances do not publish the same row:
//! the second waits for the first, then no longer sees it unpublished. (Not
//! `SKIP LOCKED`: a row locked by another instance's judgement, which may
//! decide nothing and so never flush, would wait for the next tick.) A crash
//! after the acknowledgement sends a command again, which readers ignore:
//! they keep the highest version.
//!
//! Alerts must not repeat, so they are leased before they are produced, and
//! looked for on the topic before a dead publisher's lease is taken over
//! (`flush_alerts`).

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::try_join_all;
use meterline_core::avro::{decode_alert, encode_alert, encode_throttle};
use meterline_core::{AlertKind, BudgetAlert, Currency, ThrottleCommand, ThrottleState};
use meterline_storage::postgres::budgets::{ThrottleRow, THROTTLE_COLUMNS};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rust_decimal::Decimal;
use sqlx::{PgPool, Row};
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::BudgetServiceError;

pub struct Outbox {
    pool: PgPool,
    producer: FutureProducer,
    brokers: String,
    throttle_topic: String,
    alerts_topic: String,
    metrics: Metrics,
}

/// Most rows published per transaction.
const BATCH: i64 = 500;

impl Outbox {
    pub fn new(
        pool: PgPool,
        brokers: &str,
        throttle_topic: &str,
        alerts_topic: &str,
        metrics: Metrics,
    ) -> Result<Self, BudgetServiceError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Commands are few and latency is the point: send at once.
            .set("linger.ms", "0")
            .set("message.timeout.ms", "10000")
            .create()?;
        Ok(Self {
            pool,
            producer,
            brokers: brokers.to_owned(),
            throttle_topic: throttle_topic.to_owned(),
            alerts_topic: alerts_topic.to_owned(),
            metrics,
        })
    }

    /// Publishes every unpublished command and alert.
    pub async fn flush(&self) -> Result<(), BudgetServiceError> {
        while self.flush_commands().await? == BATCH as usize {}
        while self.flush_alerts().await? == BATCH as usize {}
        Ok(())
    }

    async fn flush_commands(&self) -> Result<usize, BudgetServiceError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {THROTTLE_COLUMNS} FROM throttle_state WHERE NOT published ORDER BY tenant_id LIMIT {BATCH} FOR UPDATE"
        ))
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let held: Vec<ThrottleRow> = rows.iter().map(ThrottleRow::from_row).collect::<Result<_, _>>()?;
        let payloads: Vec<(String, Vec<u8>, ThrottleState)> = held
            .iter()
            .map(|r| {
                let c = command(r)?;
                Ok((r.tenant_id.clone(), encode_throttle(&c), c.state))
            })
            .collect::<Result<_, BudgetServiceError>>()?;
        self.send_all(&self.throttle_topic, &payloads.iter().map(|(t, p, _)| (t.as_str(), p.as_slice())).collect::<Vec<_>>()).await?;
        let tenants: Vec<&str> = held.iter().map(|r| r.tenant_id.as_str()).collect();
        let versions: Vec<i64> = held.iter().map(|r| r.version).collect();
        sqlx::query(
            "UPDATE throttle_state s SET published = true FROM unnest($1::text[], $2::int8[]) AS p(tenant_id, version) \
             WHERE s.tenant_id = p.tenant_id AND s.version = p.version",
        )
        .bind(&tenants)
        .bind(&versions)
        .execute(&mut *tx)
        .await?;
        // Losing this mark to a Postgres crash only sends the commands
        // again, which readers ignore, so the commit need not wait for the
        // WAL flush; a concurrent flush waits on these rows' locks until it
        // returns, and a flush behind a disk stall delayed every command.
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        tx.commit().await?;
        for (_, _, state) in &payloads {
            self.metrics.commands_published.with_label_values(&[state.as_str()]).inc();
        }
        Ok(held.len())
    }

    /// Alerts must go out exactly once, so unlike commands they are not
    /// produced under a row lock that a crash would roll back: each is first
    /// leased (`attempted_at`, committed), then produced, then marked. A
    /// lease younger than [`LEASE`] belongs to a live publisher; an older
    /// one to a dead or failed one, and before sending such an alert again
    /// the publisher looks for it on the topic.
    async fn flush_alerts(&self) -> Result<usize, BudgetServiceError> {
        let rows = sqlx::query(&format!(
            "WITH picked AS ( \
               SELECT alert_id, attempted_at AS previous FROM budget_alerts \
               WHERE published_at IS NULL AND (attempted_at IS NULL OR attempted_at < now() - interval '{LEASE_SECS} seconds') \
               ORDER BY created_at LIMIT {BATCH} FOR UPDATE SKIP LOCKED) \
             UPDATE budget_alerts b SET attempted_at = now() FROM picked WHERE b.alert_id = picked.alert_id \
             RETURNING {ALERT_COLUMNS_OF_B}, picked.previous"
        ))
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut alerts: Vec<BudgetAlert> = rows.iter().map(alert).collect::<Result<_, _>>()?;
        let retried: Vec<DateTime<Utc>> =
            rows.iter().filter_map(|r| r.try_get::<Option<DateTime<Utc>>, _>("previous").ok().flatten()).collect();
        if let Some(since) = retried.iter().min() {
            let on_topic = self.on_topic(*since - chrono::Duration::minutes(1)).await?;
            let (sent, unsent): (Vec<BudgetAlert>, Vec<BudgetAlert>) = alerts.into_iter().partition(|a| on_topic.contains(&a.alert_id));
            if !sent.is_empty() {
                info!(alerts = sent.len(), "alerts found already published by a publisher that died before recording it");
                self.mark_published(&sent).await?;
            }
            alerts = unsent;
        }
        let payloads: Vec<(String, Vec<u8>)> = alerts.iter().map(|a| (a.tenant_id.clone(), encode_alert(a))).collect();
        self.send_all(&self.alerts_topic, &payloads.iter().map(|(t, p)| (t.as_str(), p.as_slice())).collect::<Vec<_>>()).await?;
        self.mark_published(&alerts).await?;
        for a in &alerts {
            self.metrics.alerts_published.with_label_values(&[a.kind.as_str()]).inc();
        }
        Ok(rows.len())
    }

    async fn mark_published(&self, alerts: &[BudgetAlert]) -> Result<(), BudgetServiceError> {
        let ids: Vec<String> = alerts.iter().map(|a| a.alert_id.to_string()).collect();
        sqlx::query("UPDATE budget_alerts SET published_at = now() WHERE alert_id = ANY($1::text[]::uuid[])")
            .bind(&ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ids of the alerts on the topic since `since` (broker time).
    async fn on_topic(&self, since: DateTime<Utc>) -> Result<HashSet<uuid::Uuid>, BudgetServiceError> {
        let (brokers, topic) = (self.brokers.clone(), self.alerts_topic.clone());
        tokio::task::spawn_blocking(move || alert_ids_on_topic(&brokers, &topic, since))
            .await
            .map_err(|e| BudgetServiceError::TaskFailed(format!("reading the alerts topic: {e}")))?
    }

    async fn send_all(&self, topic: &str, records: &[(&str, &[u8])]) -> Result<(), BudgetServiceError> {
        let sends = records.iter().map(|(key, payload)| async move {
            self.producer
                .send(FutureRecord::to(topic).key(*key).payload(*payload), Timeout::After(Duration::from_secs(10)))
                .await
                .map_err(|(e, _)| e)
        });
        try_join_all(sends).await?;
        Ok(())
    }
}

/// Every alert id on `topic` from `since` to the current end.
fn alert_ids_on_topic(brokers: &str, topic: &str, since: DateTime<Utc>) -> Result<HashSet<uuid::Uuid>, BudgetServiceError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "meterline-budget-alert-check")
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut ends = Vec::new();
    let mut list = TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            if high > low {
                ends.push((p.id(), high));
                list.add_partition_offset(topic, p.id(), Offset::Offset(since.timestamp_millis()))?;
            }
        }
    }
    let mut found = HashSet::new();
    if ends.is_empty() {
        return Ok(found);
    }
    let starts = consumer.offsets_for_times(list, timeout)?;
    let mut assign = TopicPartitionList::new();
    for e in starts.elements() {
        let start = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            // No message at or after `since`: nothing to read there.
            _ => {
                ends.retain(|(p, _)| *p != e.partition());
                continue;
            }
        };
        assign.add_partition_offset(topic, e.partition(), start)?;
    }
    consumer.assign(&assign)?;
    // To the end offsets, then on until the topic is quiet for half a
    // second: Tansu 0.6 reports an end offset that stops short of the last
    // record batch's later records.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut quiet_since: Option<std::time::Instant> = None;
    loop {
        if std::time::Instant::now() > deadline {
            warn!("alerts topic not read to its end within 60 s; unmatched alerts will be sent");
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if let Some(Ok(a)) = m.payload().map(decode_alert) {
                    found.insert(a.alert_id);
                }
                ends.retain(|&(p, end)| !(p == m.partition() && m.offset() + 1 >= end));
                quiet_since = None;
            }
            Some(Err(e)) => warn!(error = %e, "reading the alerts topic"),
            None if ends.is_empty() && quiet_since.get_or_insert_with(std::time::Instant::now).elapsed() >= Duration::from_millis(500) => {
                break;
            }
            None => {}
        }
    }
    Ok(found)
}

fn command(r: &ThrottleRow) -> Result<ThrottleCommand, BudgetServiceError> {
    let invalid = |what: &str| BudgetServiceError::Storage(meterline_storage::StorageError::InvalidData(what.to_owned()));
    Ok(ThrottleCommand {
        tenant_id: r.tenant_id.clone(),
        version: r.version,
        state: ThrottleState::parse(&r.state).ok_or_else(|| invalid("throttle state"))?,
        target_model: r.target_model.clone(),
        reason: r.reason.clone(),
        period_start_micros: r.period_start.timestamp_micros(),
        period_end_micros: r.period_end.timestamp_micros(),
        spend: r.spend,
        limit: r.limit_amount,
        currency: r.currency.as_deref().map(Currency::parse).transpose().map_err(|_| invalid("currency"))?,
        budget_version: r.budget_version,
        issued_at_micros: r.issued_at.timestamp_micros(),
    })
}

const ALERT_COLUMNS_OF_B: &str = "b.alert_id::text AS alert_id, b.tenant_id, b.period_start, b.period_end, b.kind, b.threshold, \
                                  b.budget_version, b.spend, b.limit_amount, b.projected, b.currency, b.created_at";

/// How long a publisher owns an alert it started to publish: longer than
/// the producer's delivery timeout (10 s), so a live publisher is never
/// doubled.
const LEASE_SECS: u32 = 15;

fn alert(r: &sqlx::postgres::PgRow) -> Result<BudgetAlert, BudgetServiceError> {
    let invalid = |what: &str| BudgetServiceError::Storage(meterline_storage::StorageError::InvalidData(what.to_owned()));
    let id: String = r.try_get("alert_id")?;
    let kind: String = r.try_get("kind")?;
    let currency: String = r.try_get("currency")?;
    let period_start: DateTime<Utc> = r.try_get("period_start")?;
    let period_end: DateTime<Utc> = r.try_get("period_end")?;
    let created_at: DateTime<Utc> = r.try_get("created_at")?;
    Ok(BudgetAlert {
        alert_id: id.parse().map_err(|_| invalid("alert id"))?,
        tenant_id: r.try_get("tenant_id")?,
        kind: AlertKind::parse(&kind).ok_or_else(|| invalid("alert kind"))?,
        threshold_percent: r.try_get("threshold")?,
        spend: r.try_get("spend")?,
        limit: r.try_get("limit_amount")?,
        projected: r.try_get::<Option<Decimal>, _>("projected")?,
        currency: Currency::parse(currency.trim()).map_err(|_| invalid("currency"))?,
        period_start_micros: period_start.timestamp_micros(),
        period_end_micros: period_end.timestamp_micros(),
        budget_version: r.try_get("budget_version")?,
        raised_at_micros: created_at.timestamp_micros(),
    })
}
