//! The price book's rows in Postgres.

use meterline_core::{Currency, OverrideRule, PriceBook, PriceEntry, TenantId, TenantOverride, Unit};
use rust_decimal::Decimal;
use sqlx::PgPool;
use tracing::instrument;

use crate::StorageError;

/// Upserts `entries` in one transaction: all or nothing, and importing the
/// same file twice changes nothing. Returns how many rows were written.
#[instrument(skip_all, fields(rows = entries.len()))]
pub async fn import_prices(pool: &PgPool, entries: &[PriceEntry]) -> Result<u64, StorageError> {
    let mut tx = pool.begin().await?;
    let mut written = 0;
    for e in entries {
        written += sqlx::query(
            "INSERT INTO prices (provider, model, unit, unit_price, per, currency, effective_from) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (provider, model, unit, effective_from) DO UPDATE \
             SET unit_price = EXCLUDED.unit_price, per = EXCLUDED.per, currency = EXCLUDED.currency, \
                 imported_at = now() \
             WHERE (prices.unit_price, prices.per, prices.currency) \
                IS DISTINCT FROM (EXCLUDED.unit_price, EXCLUDED.per, EXCLUDED.currency)",
        )
        .bind(&e.provider)
        .bind(&e.model)
        .bind(e.unit.as_str())
        .bind(e.unit_price)
        .bind(e.per)
        .bind(e.currency.as_str())
        .bind(e.effective_from)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(written)
}

type PriceRow = (String, String, String, Decimal, Decimal, String, chrono::DateTime<chrono::Utc>);

/// Every list-price entry, ordered for display.
pub async fn list_prices(pool: &PgPool) -> Result<Vec<PriceEntry>, StorageError> {
    let rows: Vec<PriceRow> = sqlx::query_as(
        "SELECT provider, model, unit, unit_price, per, currency, effective_from FROM prices \
         ORDER BY provider, model, unit, effective_from",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(provider, model, unit, unit_price, per, currency, effective_from)| {
            Ok(PriceEntry {
                provider,
                model,
                unit: parse_unit(&unit)?,
                unit_price,
                per,
                currency: Currency::parse(currency.trim()).map_err(|e| StorageError::InvalidData(e.to_string()))?,
                effective_from,
            })
        })
        .collect()
}

type OverrideRow =
    (String, String, String, String, String, Option<Decimal>, Option<Decimal>, Option<Decimal>, chrono::DateTime<chrono::Utc>);

/// Loads list prices and tenant overrides and builds the lookup structure.
#[instrument(skip_all)]
pub async fn load_price_book(pool: &PgPool) -> Result<PriceBook, StorageError> {
    let entries = list_prices(pool).await?;
    let overrides = list_overrides(pool).await?;
    PriceBook::build(&entries, &overrides).map_err(|e| StorageError::InvalidData(e.to_string()))
}

/// Every tenant's price overrides.
#[instrument(skip_all)]
pub async fn list_overrides(pool: &PgPool) -> Result<Vec<TenantOverride>, StorageError> {
    let rows: Vec<OverrideRow> = sqlx::query_as(
        "SELECT tenant_id, provider, model, unit, rule, unit_price, per, percent, effective_from \
         FROM tenant_price_overrides",
    )
    .fetch_all(pool)
    .await?;
    let mut overrides = Vec::with_capacity(rows.len());
    for (tenant, provider, model, unit, rule, unit_price, per, percent, effective_from) in rows {
        let bad = |what: &str| StorageError::InvalidData(format!("override for {tenant}: {what}"));
        let rule = match (rule.as_str(), unit_price, per, percent) {
            ("rate", Some(unit_price), Some(per), _) => OverrideRule::Rate { unit_price, per },
            ("discount_percent", _, _, Some(percent)) => OverrideRule::DiscountPercent { percent },
            _ => return Err(bad("incomplete rule")),
        };
        overrides.push(TenantOverride {
            tenant: TenantId::parse(&tenant).map_err(|e| bad(&e.to_string()))?,
            provider,
            model,
            unit: if unit == "*" { None } else { Some(parse_unit(&unit)?) },
            rule,
            effective_from,
        });
    }
    Ok(overrides)
}

fn parse_unit(s: &str) -> Result<Unit, StorageError> {
    Unit::parse(s).ok_or_else(|| StorageError::InvalidData(format!("unknown unit {s:?}")))
}
