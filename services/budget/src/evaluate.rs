//! Judging budgets and deciding what to publish.
//!
//! Runs inside a transaction (the ledger's, or its own when a budget
//! changes or time passes) with the tenants' `throttle_state` rows locked,
//! so whichever instance evaluates a tenant, versions grow one at a time and
//! each alert is decided once. Decisions go to the outbox tables
//! (`throttle_state` unpublished, `budget_alerts`), which `outbox` publishes
//! after commit.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use meterline_core::alert::alert_id;
use meterline_core::budget::{judge, Judgement, Tz};
use meterline_core::{AlertKind, Budget, Period, ThrottleState};
use meterline_storage::postgres::budgets::{self, ThrottleRow, THROTTLE_COLUMNS};
use rust_decimal::Decimal;
use sqlx::{PgConnection, Row};

use crate::BudgetServiceError;

/// What an evaluation decided.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Decided {
    pub commands: usize,
    pub alerts: usize,
}

impl Decided {
    pub fn any(&self) -> bool {
        self.commands > 0 || self.alerts > 0
    }
}

/// Judges `tenants` (sorted, distinct) at `now`.
pub async fn evaluate(
    tx: &mut PgConnection,
    tenants: &[String],
    now: DateTime<Utc>,
    forecast_min_elapsed: chrono::Duration,
) -> Result<Decided, BudgetServiceError> {
    let mut decided = Decided::default();
    if tenants.is_empty() {
        return Ok(decided);
    }
    let budgets: HashMap<String, Budget> =
        budgets::load_budgets(&mut *tx, Some(tenants)).await?.into_iter().map(|b| (b.tenant_id.clone(), b)).collect();
    // A budgeted tenant gets a state row on first sight; its epoch period
    // makes the first judgement differ from it, so a command goes out.
    let budgeted: Vec<&str> = budgets.keys().map(String::as_str).collect();
    sqlx::query(
        "INSERT INTO throttle_state (tenant_id, version, state, reason, period_start, period_end, spend, issued_at, published) \
         SELECT t, 0, 'allow', 'no budget', 'epoch', 'epoch', 0, 'epoch', true FROM unnest($1::text[]) AS t \
         ON CONFLICT DO NOTHING",
    )
    .bind(&budgeted)
    .execute(&mut *tx)
    .await?;
    let rows =
        sqlx::query(&format!("SELECT {THROTTLE_COLUMNS} FROM throttle_state WHERE tenant_id = ANY($1) ORDER BY tenant_id FOR UPDATE"))
            .bind(tenants)
            .fetch_all(&mut *tx)
            .await?;
    let states: Vec<ThrottleRow> = rows.iter().map(ThrottleRow::from_row).collect::<Result<_, _>>()?;
    if states.is_empty() {
        return Ok(decided);
    }

    let periods: HashMap<&str, Period> = budgets.values().map(|b| (b.tenant_id.as_str(), b.period_at(now))).collect();
    let asks: Vec<_> = budgets.values().map(|b| (b.tenant_id.clone(), b.currency, periods[b.tenant_id.as_str()])).collect();
    let spend: HashMap<String, Decimal> = budgets::period_spend(&mut *tx, &asks).await?.into_iter().collect();
    let fired = load_fired(&mut *tx, &periods).await?;

    for state in &states {
        let Some(budget) = budgets.get(&state.tenant_id) else {
            decided.commands += lift_unbudgeted(tx, state, now).await?;
            continue;
        };
        let period = periods[budget.tenant_id.as_str()];
        let s = spend.get(&budget.tenant_id).copied().unwrap_or_default();
        let j = judge(budget, s, period, now, forecast_min_elapsed);
        decided.commands += update_command(tx, state, budget, &j, s, period, now).await?;
        decided.alerts += update_alerts(tx, budget, &j, s, period, now, &fired).await?;
    }
    Ok(decided)
}

/// Writes a new command if the verdict differs from the one held (state,
/// model, period or budget version). Returns 1 if it did.
async fn update_command(
    tx: &mut PgConnection,
    held: &ThrottleRow,
    budget: &Budget,
    j: &Judgement,
    spend: Decimal,
    period: Period,
    now: DateTime<Utc>,
) -> Result<usize, BudgetServiceError> {
    let unchanged = held.state == j.state.as_str()
        && held.target_model == j.target_model
        && held.period_start == period.start
        && held.budget_version == Some(budget.version);
    if unchanged {
        return Ok(0);
    }
    write_command(tx, held, j.state, j.target_model.as_deref(), &j.reason, period, spend, Some(budget), now).await?;
    Ok(1)
}

/// A tenant whose budget was removed: allowed, once.
async fn lift_unbudgeted(tx: &mut PgConnection, held: &ThrottleRow, now: DateTime<Utc>) -> Result<usize, BudgetServiceError> {
    if held.state == "allow" && held.budget_version.is_none() && held.period_end > now {
        return Ok(0);
    }
    let period = Period::month_containing(now, Tz::UTC);
    write_command(tx, held, ThrottleState::Allow, None, "no budget", period, Decimal::ZERO, None, now).await?;
    Ok(1)
}

#[allow(clippy::too_many_arguments)]
async fn write_command(
    tx: &mut PgConnection,
    held: &ThrottleRow,
    state: ThrottleState,
    target_model: Option<&str>,
    reason: &str,
    period: Period,
    spend: Decimal,
    budget: Option<&Budget>,
    now: DateTime<Utc>,
) -> Result<(), BudgetServiceError> {
    sqlx::query(
        "UPDATE throttle_state SET version = version + 1, state = $2, target_model = $3, reason = $4, \
           period_start = $5, period_end = $6, spend = $7, limit_amount = $8, currency = $9, budget_version = $10, \
           issued_at = $11, published = false \
         WHERE tenant_id = $1",
    )
    .bind(&held.tenant_id)
    .bind(state.as_str())
    .bind(target_model)
    .bind(reason)
    .bind(period.start)
    .bind(period.end)
    .bind(spend)
    .bind(budget.map(|b| b.amount))
    .bind(budget.map(|b| b.currency.as_str()))
    .bind(budget.map(|b| b.version))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

type FiredKey = (String, DateTime<Utc>, AlertKind, i32);

async fn load_fired(tx: &mut PgConnection, periods: &HashMap<&str, Period>) -> Result<HashSet<FiredKey>, BudgetServiceError> {
    let tenants: Vec<&str> = periods.keys().copied().collect();
    let starts: Vec<DateTime<Utc>> = tenants.iter().map(|t| periods[t].start).collect();
    let rows = sqlx::query(
        "SELECT f.tenant_id, f.period_start, f.kind, f.threshold FROM budget_fired f \
         JOIN unnest($1::text[], $2::timestamptz[]) AS a(tenant_id, period_start) \
           ON f.tenant_id = a.tenant_id AND f.period_start = a.period_start",
    )
    .bind(&tenants)
    .bind(&starts)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = HashSet::new();
    for r in rows {
        let kind: String = r.try_get("kind")?;
        let Some(kind) = AlertKind::parse(&kind) else { continue };
        out.insert((r.try_get("tenant_id")?, r.try_get("period_start")?, kind, r.try_get("threshold")?));
    }
    Ok(out)
}

/// Fires thresholds newly crossed (one alert each per budget version) and
/// re-arms those no longer crossed. Returns the number of alerts raised.
async fn update_alerts(
    tx: &mut PgConnection,
    budget: &Budget,
    j: &Judgement,
    spend: Decimal,
    period: Period,
    now: DateTime<Utc>,
    fired: &HashSet<FiredKey>,
) -> Result<usize, BudgetServiceError> {
    let mut wanted: Vec<(AlertKind, i32, bool, Option<Decimal>)> =
        budget.thresholds.iter().map(|&t| (AlertKind::Threshold, t as i32, j.crossed.contains(&t), None)).collect();
    wanted.push((AlertKind::Forecast, 100, j.forecast_over.is_some(), j.forecast_over));
    let mut raised = 0;
    for (kind, threshold, crossed, projected) in wanted {
        let key = (budget.tenant_id.clone(), period.start, kind, threshold);
        let is_fired = fired.contains(&key);
        if crossed && !is_fired {
            sqlx::query(
                "INSERT INTO budget_fired (tenant_id, period_start, kind, threshold) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&budget.tenant_id)
            .bind(period.start)
            .bind(kind.as_str())
            .bind(threshold)
            .execute(&mut *tx)
            .await?;
            let id = alert_id(&budget.tenant_id, kind, threshold, period.start.timestamp_micros(), budget.version);
            raised += sqlx::query(
                "INSERT INTO budget_alerts (alert_id, tenant_id, period_start, period_end, kind, threshold, budget_version, \
                   spend, limit_amount, projected, currency, created_at) \
                 VALUES ($1::text::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
            )
            .bind(id.to_string())
            .bind(&budget.tenant_id)
            .bind(period.start)
            .bind(period.end)
            .bind(kind.as_str())
            .bind(threshold)
            .bind(budget.version)
            .bind(spend)
            .bind(budget.amount)
            .bind(projected)
            .bind(budget.currency.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        } else if !crossed && is_fired {
            sqlx::query("DELETE FROM budget_fired WHERE tenant_id = $1 AND period_start = $2 AND kind = $3 AND threshold = $4")
                .bind(&budget.tenant_id)
                .bind(period.start)
                .bind(kind.as_str())
                .bind(threshold)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(raised)
}
