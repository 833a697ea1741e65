//! Publishing what `evaluate` decided: throttle commands and alerts, from
//! their outbox tables to Kafka.
//!
//! Rows are locked (`FOR UPDATE`), produced (idempotent producer,
//! `acks=all`), and marked published in the same transaction once the
//! broker acknowledged, so two instances never publish the same row: the
//! second waits for the first, then no longer sees the row as unpublished.
//! (Not `SKIP LOCKED`: a row locked by another instance's judgement, which
//! may decide nothing and so never flush, would be left for the next tick.)
//! What a crash between the acknowledgement and the commit leaves
//! unmarked is found on the alerts topic at start (`reconcile`) instead of
//! being sent twice. Throttle commands need no such care: readers keep the
//! highest version, so a repeat changes nothing.

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
    pub fn new(pool: PgPool, brokers: &str, throttle_topic: &str, alerts_topic: &str, metrics: Metrics) -> Result<Self, BudgetServiceError> {
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
        self.send_all(&self.throttle_topic, &payloads.iter().map(|(t, p, _)| (t.as_str(), p.as_slice())).collect::<Vec<_>>())
            .await?;
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
        tx.commit().await?;
        for (_, _, state) in &payloads {
            self.metrics.commands_published.with_label_values(&[state.as_str()]).inc();
        }
        Ok(held.len())
    }

    async fn flush_alerts(&self) -> Result<usize, BudgetServiceError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM budget_alerts WHERE published_at IS NULL ORDER BY created_at LIMIT {BATCH} FOR UPDATE"
        ))
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let alerts: Vec<BudgetAlert> = rows.iter().map(alert).collect::<Result<_, _>>()?;
        let payloads: Vec<(String, Vec<u8>)> = alerts.iter().map(|a| (a.tenant_id.clone(), encode_alert(a))).collect();
        self.send_all(&self.alerts_topic, &payloads.iter().map(|(t, p)| (t.as_str(), p.as_slice())).collect::<Vec<_>>())
            .await?;
        let ids: Vec<String> = alerts.iter().map(|a| a.alert_id.to_string()).collect();
        sqlx::query("UPDATE budget_alerts SET published_at = now() WHERE alert_id = ANY($1::text[]::uuid[])")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        for a in &alerts {
            self.metrics.alerts_published.with_label_values(&[a.kind.as_str()]).inc();
        }
        Ok(alerts.len())
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

    /// Marks published every unpublished alert that is already on the
    /// alerts topic: a crash between the broker's acknowledgement and the
    /// commit that records it must not send it twice. Reads the topic from
    /// shortly before the oldest unpublished alert was raised.
    pub async fn reconcile(&self) -> Result<(), BudgetServiceError> {
        let oldest: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT min(created_at) FROM budget_alerts WHERE published_at IS NULL").fetch_one(&self.pool).await?;
        let Some(oldest) = oldest else { return Ok(()) };
        // Alerts are stamped with the service's clock, which tests move; a
        // day's margin is cheap (alerts are few).
        let since = oldest.min(Utc::now()) - chrono::Duration::days(1);
        let (brokers, topic) = (self.brokers.clone(), self.alerts_topic.clone());
        let found = tokio::task::spawn_blocking(move || alert_ids_on_topic(&brokers, &topic, since))
            .await
            .map_err(|e| BudgetServiceError::Config(format!("reconcile task failed: {e}")))??;
        let ids: Vec<String> = found.iter().map(|u| u.to_string()).collect();
        let marked = sqlx::query(
            "UPDATE budget_alerts SET published_at = now() WHERE published_at IS NULL AND alert_id = ANY($1::text[]::uuid[])",
        )
        .bind(&ids)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if marked > 0 {
            info!(marked, "alerts found already published after a crash; not sending them again");
        }
        Ok(())
    }
}

/// Every alert id on `topic` from `since` to the current end.
fn alert_ids_on_topic(brokers: &str, topic: &str, since: DateTime<Utc>) -> Result<HashSet<uuid::Uuid>, BudgetServiceError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "meterline-budget-reconcile")
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

const ALERT_COLUMNS: &str = "alert_id::text AS alert_id, tenant_id, period_start, period_end, kind, threshold, budget_version, \
                             spend, limit_amount, projected, currency, created_at";

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
