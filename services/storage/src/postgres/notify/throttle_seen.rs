//! The throttle state the notifier last saw per tenant
//! (`notify_throttle_seen`), read and written inside the transaction that
//! records a notice, so two instances cannot both announce one change.

use sqlx::Row;

use crate::StorageError;

/// The tenant's last seen `(version, state)`, locked until the transaction
/// ends (a new tenant's row is created by [`remember`] in the same one).
pub async fn last_seen(tx: &mut sqlx::PgConnection, tenant_id: &str) -> Result<Option<(i64, String)>, StorageError> {
    let row = sqlx::query("SELECT version, state FROM notify_throttle_seen WHERE tenant_id = $1 FOR UPDATE")
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(match row {
        Some(r) => Some((r.try_get("version")?, r.try_get("state")?)),
        None => None,
    })
}

/// Records a newer state; an older or equal version never replaces one
/// (two instances racing on a new tenant: the higher version stays).
pub async fn remember(tx: &mut sqlx::PgConnection, tenant_id: &str, version: i64, state: &str) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO notify_throttle_seen (tenant_id, version, state) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state, seen_at = now() \
         WHERE notify_throttle_seen.version < EXCLUDED.version",
    )
    .bind(tenant_id)
    .bind(version)
    .bind(state)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
