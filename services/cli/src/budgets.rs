//! `meterline budgets set|list|status|delete`.

use anyhow::{Context, Result};
use chrono::Utc;
use clap::{Args, Subcommand};
use meterline_core::budget::{judge, parse_thresholds, parse_timezone};
use meterline_core::{Budget, BudgetAction, Currency};
use meterline_storage::postgres::{self, budgets};
use rust_decimal::Decimal;
use serde::Serialize;

#[derive(Subcommand)]
pub enum BudgetsCommand {
    /// Create or change a tenant's monthly budget (each change is a new version).
    Set(SetArgs),
    /// Print every budget.
    List,
    /// Spend, limit, percent used and throttle state per tenant.
    Status(StatusArgs),
    /// Remove a tenant's budget (the budget service then allows the tenant).
    Delete {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Args)]
pub struct SetArgs {
    #[arg(long)]
    tenant: String,
    /// Monthly amount, an exact decimal.
    #[arg(long)]
    monthly: Decimal,
    #[arg(long)]
    currency: String,
    /// Alert thresholds in percent.
    #[arg(long, default_value = "50,80,100")]
    thresholds: String,
    /// At 100%: block, degrade:MODEL or none.
    #[arg(long, default_value = "block")]
    action: String,
    /// Percent above 100% before block takes effect.
    #[arg(long, default_value = "0")]
    grace: Decimal,
    /// IANA time zone of the tenant's calendar months.
    #[arg(long, default_value = "UTC")]
    timezone: String,
}

#[derive(Args)]
pub struct StatusArgs {
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long, default_value = "table")]
    format: String,
}

pub async fn run(command: BudgetsCommand) -> Result<()> {
    let pool = postgres::connect(postgres::database_url_from_env().expose()).await.context("connecting to Postgres")?;
    match command {
        BudgetsCommand::Set(a) => {
            meterline_core::ids::check_tenant(&a.tenant)?;
            let budget = Budget {
                tenant_id: a.tenant,
                amount: a.monthly,
                currency: Currency::parse(&a.currency)?,
                thresholds: parse_thresholds(&a.thresholds)?,
                action: a.action.parse::<BudgetAction>()?,
                grace_percent: a.grace,
                timezone: parse_timezone(&a.timezone)?,
                version: 0,
            };
            budget.check()?;
            let stored = budgets::set_budget(&pool, &budget).await?;
            println!(
                "budget for {} set: {} {} per month, thresholds {:?}, action {}, grace {}%, zone {}, version {}",
                stored.tenant_id,
                stored.amount,
                stored.currency,
                stored.thresholds,
                stored.action,
                stored.grace_percent,
                stored.timezone,
                stored.version
            );
        }
        BudgetsCommand::List => {
            println!("tenant_id,monthly,currency,thresholds,action,grace_percent,timezone,version");
            for b in budgets::load_budgets(&pool, None).await? {
                let thresholds: Vec<String> = b.thresholds.iter().map(u32::to_string).collect();
                println!(
                    "{},{},{},\"{}\",{},{},{},{}",
                    b.tenant_id,
                    b.amount,
                    b.currency,
                    thresholds.join(","),
                    b.action,
                    b.grace_percent,
                    b.timezone,
                    b.version
                );
            }
        }
        BudgetsCommand::Status(a) => status(&pool, a).await?,
        BudgetsCommand::Delete { tenant } => {
            let existed = budgets::delete_budget(&pool, &tenant).await?;
            println!("{}", if existed { format!("budget for {tenant} removed") } else { format!("{tenant} had no budget") });
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct Status {
    tenant_id: String,
    period_start: String,
    currency: String,
    spend: String,
    limit: String,
    percent_used: String,
    /// What the numbers say now.
    judged: &'static str,
    /// What the budget service last published (and its version).
    throttle: String,
}

async fn status(pool: &postgres::PgPool, a: StatusArgs) -> Result<()> {
    let only = a.tenant.map(|t| vec![t]);
    let all = budgets::load_budgets(pool, only.as_deref()).await?;
    let now = Utc::now();
    let asks: Vec<_> = all.iter().map(|b| (b.tenant_id.clone(), b.currency, b.period_at(now))).collect();
    let spend: std::collections::HashMap<String, Decimal> = budgets::period_spend(pool, &asks).await?.into_iter().collect();
    let states: std::collections::HashMap<String, budgets::ThrottleRow> =
        budgets::load_throttle_states(pool, only.as_deref()).await?.into_iter().map(|r| (r.tenant_id.clone(), r)).collect();
    let rows: Vec<Status> = all
        .iter()
        .map(|b| {
            let period = b.period_at(now);
            let s = spend.get(&b.tenant_id).copied().unwrap_or_default();
            let j = judge(b, s, period, now, chrono::Duration::days(1));
            Status {
                tenant_id: b.tenant_id.clone(),
                period_start: period.start.to_rfc3339(),
                currency: b.currency.to_string(),
                spend: s.normalize().to_string(),
                limit: b.amount.normalize().to_string(),
                percent_used: j.percent_used.round_dp(2).normalize().to_string(),
                judged: j.state.as_str(),
                throttle: states
                    .get(&b.tenant_id)
                    .map(|r| format!("{} v{}{}", r.state, r.version, if r.published { "" } else { " (publishing)" }))
                    .unwrap_or_else(|| "none yet".into()),
            }
        })
        .collect();
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&rows)?),
        "table" => {
            println!("{:<24} {:>18} {:>14} {:>8} {:>4} {:<8} throttle", "tenant", "spend", "limit", "used %", "cur", "judged");
            for r in rows {
                println!(
                    "{:<24} {:>18} {:>14} {:>8} {:>4} {:<8} {}",
                    r.tenant_id, r.spend, r.limit, r.percent_used, r.currency, r.judged, r.throttle
                );
            }
        }
        other => anyhow::bail!("unknown format {other:?}: use table or json"),
    }
    Ok(())
}
