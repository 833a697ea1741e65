//! The events the notifier took in and their deliveries: the outbox its
//! senders claim from.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::StorageError;

/// An event to deliver, as the notifier takes it in.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub event_id: Uuid,
    pub tenant_id: &'a str,
    pub event_type: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub data: &'a Value,
}

/// Records events and one pending delivery for each of its tenant's enabled
/// channels subscribed to its type, all in one transaction (one commit for
/// a batch of alerts: the commit's flush is what taking an alert in costs).
/// Idempotent by event id: an event seen before adds nothing (`None` in its
/// place); otherwise the number of deliveries created.
pub async fn record_events(pool: &PgPool, events: &[NewEvent<'_>]) -> Result<Vec<Option<u64>>, StorageError> {
    let mut tx = pool.begin().await?;
    let created = record_events_in(&mut tx, events).await?;
    tx.commit().await?;
    Ok(created)
}

/// [`record_events`] inside a transaction of the caller's.
pub async fn record_events_in(tx: &mut sqlx::PgConnection, events: &[NewEvent<'_>]) -> Result<Vec<Option<u64>>, StorageError> {
    let mut created = Vec::with_capacity(events.len());
    for e in events {
        let payload = serde_json::json!({ "occurred_at": e.occurred_at, "data": e.data });
        let inserted = sqlx::query(
            "INSERT INTO notify_events (event_id, tenant_id, event_type, payload) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(e.event_id)
        .bind(e.tenant_id)
        .bind(e.event_type)
        .bind(&payload)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            created.push(None);
            continue;
        }
        let deliveries = sqlx::query(
            "INSERT INTO notify_deliveries (delivery_id, event_id, channel_id, tenant_id) \
             SELECT gen_random_uuid(), $1, channel_id, tenant_id FROM notify_channels \
             WHERE tenant_id = $2 AND enabled AND (cardinality(event_types) = 0 OR $3 = ANY (event_types)) \
             ON CONFLICT (event_id, channel_id) DO NOTHING",
        )
        .bind(e.event_id)
        .bind(e.tenant_id)
        .bind(e.event_type)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        created.push(Some(deliveries));
    }
    Ok(created)
}

/// A delivery claimed for one attempt, with what sending it needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub channel_id: Uuid,
    pub tenant_id: String,
    /// This attempt's number, from 1.
    pub attempt: i32,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub data: Value,
    pub kind: String,
    pub target: String,
    /// Current secret, then the previous one while it is in its grace period.
    pub secrets: Vec<String>,
}

/// Claims up to `limit` due deliveries for one attempt each. The claim
/// commits before anything is sent and pushes the delivery's due time
/// `lease_ms` ahead: a sender that dies mid-send leaves it due again then,
/// and it is retried (same webhook-id) rather than lost. `SKIP LOCKED` lets
/// several senders claim side by side without waiting on each other.
pub async fn claim_due(pool: &PgPool, limit: i64, lease_ms: i64) -> Result<Vec<Claimed>, StorageError> {
    let rows = sqlx::query(
        "WITH due AS ( \
             SELECT delivery_id FROM notify_deliveries \
             WHERE state IN ('pending', 'failed') AND next_attempt_at <= now() \
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED \
         ), claimed AS ( \
             UPDATE notify_deliveries d SET attempts = d.attempts + 1, \
                 next_attempt_at = now() + $2 * interval '1 millisecond' \
             FROM due WHERE d.delivery_id = due.delivery_id \
             RETURNING d.delivery_id, d.event_id, d.channel_id, d.tenant_id, d.attempts \
         ) \
         SELECT c.delivery_id, c.event_id, c.channel_id, c.tenant_id, c.attempts, e.event_type, e.payload, \
             ch.kind, ch.target, ch.secret, \
             CASE WHEN ch.previous_secret_expires_at > now() THEN ch.previous_secret END AS previous_secret \
         FROM claimed c JOIN notify_events e ON e.event_id = c.event_id JOIN notify_channels ch ON ch.channel_id = c.channel_id",
    )
    .bind(limit)
    .bind(lease_ms)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let payload: Value = row.try_get("payload")?;
            let secrets = [row.try_get::<Option<String>, _>("secret")?, row.try_get::<Option<String>, _>("previous_secret")?];
            Ok(Claimed {
                delivery_id: row.try_get("delivery_id")?,
                event_id: row.try_get("event_id")?,
                channel_id: row.try_get("channel_id")?,
                tenant_id: row.try_get("tenant_id")?,
                attempt: row.try_get("attempts")?,
                event_type: row.try_get("event_type")?,
                occurred_at: serde_json::from_value(payload["occurred_at"].clone())
                    .map_err(|e| StorageError::InvalidData(format!("event occurred_at: {e}")))?,
                data: payload["data"].clone(),
                kind: row.try_get("kind")?,
                target: row.try_get("target")?,
                secrets: secrets.into_iter().flatten().collect(),
            })
        })
        .collect()
}

/// Where an attempt leaves its delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    Sent {
        status: Option<u16>,
    },
    /// Retriable failure; due again after `wait_ms`.
    Failed {
        error: String,
        status: Option<u16>,
        wait_ms: i64,
    },
    /// No more attempts; `disable_channel` with a reason turns the channel off.
    Dead {
        error: String,
        status: Option<u16>,
        disable_channel: Option<String>,
    },
}

/// Records how attempt `attempt` of a delivery went. Only that attempt's
/// claim may record: if the delivery was claimed again meanwhile (this
/// sender stalled past its lease), the later attempt owns it and this is a
/// no-op (`Ok(false)`).
pub async fn finish(pool: &PgPool, c: &Claimed, outcome: &Finished) -> Result<bool, StorageError> {
    let (state, error, status, wait_ms) = match outcome {
        Finished::Sent { status } => ("sent", None, *status, 0),
        Finished::Failed { error, status, wait_ms } => ("failed", Some(error.as_str()), *status, *wait_ms),
        Finished::Dead { error, status, .. } => ("dead", Some(error.as_str()), *status, 0),
    };
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE notify_deliveries SET state = $3, last_error = $4, last_status = $5, \
             next_attempt_at = now() + $6 * interval '1 millisecond', \
             sent_at = CASE WHEN $3 = 'sent' THEN now() END \
         WHERE delivery_id = $1 AND attempts = $2 AND state IN ('pending', 'failed')",
    )
    .bind(c.delivery_id)
    .bind(c.attempt)
    .bind(state)
    .bind(error)
    .bind(status.map(i32::from))
    .bind(wait_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if let (true, Finished::Dead { disable_channel: Some(reason), .. }) = (updated, outcome) {
        super::channels::disable(&mut tx, c.channel_id, reason).await?;
    }
    tx.commit().await?;
    Ok(updated)
}

/// A delivery as operators see it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub tenant_id: String,
    pub channel_id: Uuid,
    pub kind: String,
    pub target: String,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub last_status: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Deliveries, newest first, filtered by tenant and state.
pub async fn list_deliveries(
    pool: &PgPool,
    tenant_id: Option<&str>,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<Delivery>, StorageError> {
    let rows = sqlx::query(
        "SELECT d.delivery_id, d.event_id, e.event_type, d.tenant_id, d.channel_id, ch.kind, ch.target, d.state, d.attempts, \
             d.last_error, d.last_status, d.created_at, d.sent_at \
         FROM notify_deliveries d JOIN notify_events e ON e.event_id = d.event_id \
         JOIN notify_channels ch ON ch.channel_id = d.channel_id \
         WHERE ($1::text IS NULL OR d.tenant_id = $1) AND ($2::text IS NULL OR d.state = $2) \
         ORDER BY d.created_at DESC, d.delivery_id LIMIT $3",
    )
    .bind(tenant_id)
    .bind(state)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Delivery {
                delivery_id: row.try_get("delivery_id")?,
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                tenant_id: row.try_get("tenant_id")?,
                channel_id: row.try_get("channel_id")?,
                kind: row.try_get("kind")?,
                target: row.try_get("target")?,
                state: row.try_get("state")?,
                attempts: row.try_get("attempts")?,
                last_error: row.try_get("last_error")?,
                last_status: row.try_get("last_status")?,
                created_at: row.try_get("created_at")?,
                sent_at: row.try_get("sent_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// Makes a failed or dead delivery due now, with a fresh schedule. Returns
/// whether there was such a delivery (a sent one is never sent again).
pub async fn retry_delivery(pool: &PgPool, delivery_id: Uuid) -> Result<bool, StorageError> {
    Ok(sqlx::query(
        "UPDATE notify_deliveries SET state = 'pending', attempts = 0, next_attempt_at = now() \
         WHERE delivery_id = $1 AND state IN ('failed', 'dead') \
           AND EXISTS (SELECT 1 FROM notify_channels ch WHERE ch.channel_id = notify_deliveries.channel_id AND ch.enabled)",
    )
    .bind(delivery_id)
    .execute(pool)
    .await?
    .rows_affected()
        > 0)
}

/// Deliveries waiting (pending or failed), and how long the oldest has waited.
pub async fn queue_depth(pool: &PgPool) -> Result<(i64, f64), StorageError> {
    let row = sqlx::query(
        "SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest \
         FROM notify_deliveries WHERE state IN ('pending', 'failed')",
    )
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("n")?, row.try_get("oldest")?))
}
