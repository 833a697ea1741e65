//! Read side: the questions operators and dashboards ask of the rollups.

use clickhouse::{Client, Row};
use meterline_core::Month;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::StorageError;

/// Month-to-date usage of one tenant in one currency. Unpriced events carry
/// currency `""`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TenantUsage {
    pub tenant_id: String,
    pub currency: String,
    pub events: u64,
    pub unpriced_events: u64,
    #[serde(with = "crate::decimal::scaled")]
    pub cost: Decimal,
}

/// Per-tenant, per-currency totals for `month`, optionally for one tenant.
#[instrument(skip(client))]
pub async fn month_usage(client: &Client, month: Month, tenant: Option<&str>) -> Result<Vec<TenantUsage>, StorageError> {
    let mut sql = String::from(
        "SELECT tenant_id, currency, sum(events), sum(unpriced_events), sum(cost) \
         FROM cost_hourly FINAL \
         WHERE hour >= toDateTime(?) AND hour < toDateTime(?)",
    );
    if tenant.is_some() {
        sql.push_str(" AND tenant_id = ?");
    }
    sql.push_str(" GROUP BY tenant_id, currency HAVING sum(events) > 0 ORDER BY tenant_id, currency");
    let mut q = client.query(&sql).bind(month.start().timestamp()).bind(month.end().timestamp());
    if let Some(t) = tenant {
        q = q.bind(t);
    }
    Ok(q.fetch_all::<TenantUsage>().await?)
}

/// Cost of one tenant per hour and model.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct HourlyCost {
    pub hour: u32,
    pub provider: String,
    pub model: String,
    pub currency: String,
    pub events: u64,
    #[serde(with = "crate::decimal::scaled")]
    pub cost: Decimal,
}

/// "Cost per hour for one tenant by model" over `[from, to)` (epoch seconds).
#[instrument(skip(client))]
pub async fn hourly_costs(client: &Client, tenant: &str, from: i64, to: i64) -> Result<Vec<HourlyCost>, StorageError> {
    Ok(client
        .query(
            "SELECT hour, provider, model, currency, sum(events), sum(cost) \
             FROM cost_hourly FINAL \
             WHERE tenant_id = ? AND hour >= toDateTime(?) AND hour < toDateTime(?) \
             GROUP BY hour, provider, model, currency \
             HAVING sum(events) > 0 \
             ORDER BY hour, provider, model, currency",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .fetch_all::<HourlyCost>()
        .await?)
}
