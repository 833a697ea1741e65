//! Where a tenant's alerts go: channels, added and removed by operators.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::StorageError;

/// Where a tenant's alerts go.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub channel_id: Uuid,
    pub tenant_id: String,
    /// `email` or `webhook`.
    pub kind: String,
    /// The address or URL.
    pub target: String,
    /// Subscribed event types; empty means all.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

const CHANNEL_COLUMNS: &str = "channel_id, tenant_id, kind, target, event_types, enabled, disabled_reason, created_at";

fn channel_from_row(row: &sqlx::postgres::PgRow) -> Result<Channel, sqlx::Error> {
    Ok(Channel {
        channel_id: row.try_get("channel_id")?,
        tenant_id: row.try_get("tenant_id")?,
        kind: row.try_get("kind")?,
        target: row.try_get("target")?,
        event_types: row.try_get("event_types")?,
        enabled: row.try_get("enabled")?,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Adds a channel; `secret` is the webhook's signing secret (`None` for email).
pub async fn add_channel(
    pool: &PgPool,
    tenant_id: &str,
    kind: &str,
    target: &str,
    event_types: &[String],
    secret: Option<&str>,
) -> Result<Channel, StorageError> {
    let row = sqlx::query(&format!(
        "INSERT INTO notify_channels (channel_id, tenant_id, kind, target, event_types, secret) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CHANNEL_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(tenant_id)
    .bind(kind)
    .bind(target)
    .bind(event_types)
    .bind(secret)
    .fetch_one(pool)
    .await?;
    Ok(channel_from_row(&row)?)
}

/// A tenant's channels (every tenant's with `None`), oldest first.
pub async fn list_channels(pool: &PgPool, tenant_id: Option<&str>) -> Result<Vec<Channel>, StorageError> {
    let rows = sqlx::query(&format!(
        "SELECT {CHANNEL_COLUMNS} FROM notify_channels WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY created_at, channel_id"
    ))
    .bind(tenant_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(channel_from_row).collect::<Result<_, _>>()?)
}

/// Gives a webhook channel a new signing secret. The old one keeps signing
/// beside it for `grace_secs` (both signatures are sent), so receivers can
/// switch without missing a message. Returns whether the tenant has that
/// enabled webhook channel.
pub async fn rotate_secret(
    pool: &PgPool,
    tenant_id: &str,
    channel_id: Uuid,
    new_secret: &str,
    grace_secs: i64,
) -> Result<bool, StorageError> {
    Ok(sqlx::query(
        "UPDATE notify_channels SET previous_secret = secret, \
             previous_secret_expires_at = now() + $4 * interval '1 second', secret = $3 \
         WHERE tenant_id = $1 AND channel_id = $2 AND kind = 'webhook' AND enabled",
    )
    .bind(tenant_id)
    .bind(channel_id)
    .bind(new_secret)
    .bind(grace_secs)
    .execute(pool)
    .await?
    .rows_affected()
        > 0)
}

/// Turns a channel off for good: its pending deliveries die with it. Rows
/// stay, so the deliveries already made keep their history. Returns whether
/// the tenant had that channel.
pub async fn remove_channel(pool: &PgPool, tenant_id: &str, channel_id: Uuid) -> Result<bool, StorageError> {
    let mut tx = pool.begin().await?;
    let found = sqlx::query("SELECT 1 FROM notify_channels WHERE tenant_id = $1 AND channel_id = $2 FOR UPDATE")
        .bind(tenant_id)
        .bind(channel_id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if found {
        disable(&mut tx, channel_id, "removed by an operator").await?;
    }
    tx.commit().await?;
    Ok(found)
}

/// Turns a channel off with `reason`, and ends its waiting deliveries: an
/// operator removed it, or its receiver answered 410 Gone.
pub(super) async fn disable(tx: &mut sqlx::PgConnection, channel_id: Uuid, reason: &str) -> Result<(), StorageError> {
    sqlx::query("UPDATE notify_channels SET enabled = false, disabled_reason = $2 WHERE channel_id = $1")
        .bind(channel_id)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE notify_deliveries SET state = 'dead', last_error = $2 WHERE channel_id = $1 AND state IN ('pending', 'failed')")
        .bind(channel_id)
        .bind(format!("channel disabled: {reason}"))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Queues a `notify.test` event for one channel of a tenant, whatever the
/// channel subscribed to: what `meterline channels test` sends. Returns the
/// delivery's id, or `None` if the tenant has no such enabled channel.
pub async fn queue_test_event(pool: &PgPool, tenant_id: &str, channel_id: Uuid) -> Result<Option<Uuid>, StorageError> {
    let mut tx = pool.begin().await?;
    let enabled: Option<bool> = sqlx::query_scalar("SELECT enabled FROM notify_channels WHERE tenant_id = $1 AND channel_id = $2")
        .bind(tenant_id)
        .bind(channel_id)
        .fetch_optional(&mut *tx)
        .await?;
    if enabled != Some(true) {
        return Ok(None);
    }
    let event_id = Uuid::new_v4();
    let now = Utc::now();
    let data = serde_json::json!({ "tenant_id": tenant_id, "channel_id": channel_id, "message": "a test event from Meterline" });
    sqlx::query("INSERT INTO notify_events (event_id, tenant_id, event_type, payload) VALUES ($1, $2, 'notify.test', $3)")
        .bind(event_id)
        .bind(tenant_id)
        .bind(serde_json::json!({ "occurred_at": now, "data": data }))
        .execute(&mut *tx)
        .await?;
    let delivery_id = Uuid::new_v4();
    sqlx::query("INSERT INTO notify_deliveries (delivery_id, event_id, channel_id, tenant_id) VALUES ($1, $2, $3, $4)")
        .bind(delivery_id)
        .bind(event_id)
        .bind(channel_id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(delivery_id))
}
