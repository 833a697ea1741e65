//! Budgets, their spend and their throttle state in Postgres.

use chrono::{DateTime, Utc};
use meterline_core::budget::{parse_timezone, BudgetAction};
use meterline_core::{Budget, Currency, Period};
use rust_decimal::Decimal;
use sqlx::{PgExecutor, PgPool, Row};

use crate::StorageError;

const COLUMNS: &str = "tenant_id, amount, currency, thresholds, action, degrade_model, grace_percent, timezone, version";

/// Creates or replaces a tenant's budget; every change bumps its version.
/// Returns the stored budget.
pub async fn set_budget(pool: &PgPool, b: &Budget) -> Result<Budget, StorageError> {
    let thresholds: Vec<i32> = b.thresholds.iter().map(|&t| t as i32).collect();
    let row = sqlx::query(&format!(
        "INSERT INTO budgets (tenant_id, amount, currency, thresholds, action, degrade_model, grace_percent, timezone) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant_id) DO UPDATE SET amount = EXCLUDED.amount, currency = EXCLUDED.currency, \
           thresholds = EXCLUDED.thresholds, action = EXCLUDED.action, degrade_model = EXCLUDED.degrade_model, \
           grace_percent = EXCLUDED.grace_percent, timezone = EXCLUDED.timezone, \
           version = budgets.version + 1, updated_at = now() \
         RETURNING {COLUMNS}"
    ))
    .bind(&b.tenant_id)
    .bind(b.amount)
    .bind(b.currency.as_str())
    .bind(&thresholds)
    .bind(b.action.name())
    .bind(b.action.degrade_model())
    .bind(b.grace_percent)
    .bind(b.timezone.name())
    .fetch_one(pool)
    .await?;
    budget_from_row(&row)
}

/// Removes a tenant's budget. Returns whether there was one.
pub async fn delete_budget(pool: &PgPool, tenant_id: &str) -> Result<bool, StorageError> {
    Ok(sqlx::query("DELETE FROM budgets WHERE tenant_id = $1").bind(tenant_id).execute(pool).await?.rows_affected() > 0)
}

/// Every budget, or only those of `tenants`.
pub async fn load_budgets<'e>(db: impl PgExecutor<'e>, tenants: Option<&[String]>) -> Result<Vec<Budget>, StorageError> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM budgets WHERE $1::text[] IS NULL OR tenant_id = ANY($1) ORDER BY tenant_id"))
        .bind(tenants)
        .fetch_all(db)
        .await?;
    rows.iter().map(budget_from_row).collect()
}

fn budget_from_row(row: &sqlx::postgres::PgRow) -> Result<Budget, StorageError> {
    let invalid = |e: meterline_core::budget::BudgetError| StorageError::InvalidData(e.to_string());
    let currency: String = row.try_get("currency")?;
    let thresholds: Vec<i32> = row.try_get("thresholds")?;
    let action: String = row.try_get("action")?;
    let timezone: String = row.try_get("timezone")?;
    Ok(Budget {
        tenant_id: row.try_get("tenant_id")?,
        amount: row.try_get("amount")?,
        currency: Currency::parse(currency.trim()).map_err(|e| StorageError::InvalidData(e.to_string()))?,
        thresholds: thresholds.into_iter().map(|t| t.max(0) as u32).collect(),
        action: BudgetAction::from_parts(&action, row.try_get("degrade_model")?).map_err(invalid)?,
        grace_percent: row.try_get("grace_percent")?,
        timezone: parse_timezone(&timezone).map_err(invalid)?,
        version: row.try_get("version")?,
    })
}

/// Spend of each `(tenant, currency, period)` asked, summed from the
/// 15-minute buckets. Tenants with no spend are absent.
pub async fn period_spend<'e>(
    db: impl PgExecutor<'e>,
    asks: &[(String, Currency, Period)],
) -> Result<Vec<(String, Decimal)>, StorageError> {
    let tenants: Vec<&str> = asks.iter().map(|a| a.0.as_str()).collect();
    let currencies: Vec<&str> = asks.iter().map(|a| a.1.as_str()).collect();
    let starts: Vec<DateTime<Utc>> = asks.iter().map(|a| a.2.start).collect();
    let ends: Vec<DateTime<Utc>> = asks.iter().map(|a| a.2.end).collect();
    let rows = sqlx::query(
        "SELECT a.tenant_id, SUM(s.amount) AS spend \
         FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS a(tenant_id, currency, p_start, p_end) \
         JOIN budget_spend s ON s.tenant_id = a.tenant_id AND s.currency = a.currency \
              AND s.bucket_start >= a.p_start AND s.bucket_start < a.p_end \
         GROUP BY a.tenant_id",
    )
    .bind(&tenants)
    .bind(&currencies)
    .bind(&starts)
    .bind(&ends)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("tenant_id")?, r.try_get("spend")?))).collect()
}

/// A tenant's current throttle state, as last decided.
#[derive(Debug, Clone)]
pub struct ThrottleRow {
    pub tenant_id: String,
    pub version: i64,
    pub state: String,
    pub target_model: Option<String>,
    pub reason: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub spend: Decimal,
    pub limit_amount: Option<Decimal>,
    pub currency: Option<String>,
    pub budget_version: Option<i64>,
    pub issued_at: DateTime<Utc>,
    pub published: bool,
}

pub const THROTTLE_COLUMNS: &str = "tenant_id, version, state, target_model, reason, period_start, period_end, spend, \
                                    limit_amount, currency, budget_version, issued_at, published";

impl ThrottleRow {
    pub fn from_row(r: &sqlx::postgres::PgRow) -> Result<Self, StorageError> {
        Ok(ThrottleRow {
            tenant_id: r.try_get("tenant_id")?,
            version: r.try_get("version")?,
            state: r.try_get("state")?,
            target_model: r.try_get("target_model")?,
            reason: r.try_get("reason")?,
            period_start: r.try_get("period_start")?,
            period_end: r.try_get("period_end")?,
            spend: r.try_get("spend")?,
            limit_amount: r.try_get("limit_amount")?,
            currency: r.try_get::<Option<String>, _>("currency")?.map(|c| c.trim().to_owned()),
            budget_version: r.try_get("budget_version")?,
            issued_at: r.try_get("issued_at")?,
            published: r.try_get("published")?,
        })
    }
}

/// Throttle states of every tenant, or of `tenants`.
pub async fn load_throttle_states<'e>(db: impl PgExecutor<'e>, tenants: Option<&[String]>) -> Result<Vec<ThrottleRow>, StorageError> {
    let rows = sqlx::query(&format!(
        "SELECT {THROTTLE_COLUMNS} FROM throttle_state WHERE $1::text[] IS NULL OR tenant_id = ANY($1) ORDER BY tenant_id"
    ))
    .bind(tenants)
    .fetch_all(db)
    .await?;
    rows.iter().map(ThrottleRow::from_row).collect()
}
