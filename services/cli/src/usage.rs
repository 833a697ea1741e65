use std::io::Write;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use meterline_core::Month;
use meterline_storage::clickhouse::{month_usage, ClickHouseConfig, TenantUsage};
use serde::Serialize;

#[derive(Args)]
pub struct UsageArgs {
    /// The month, YYYY-MM (UTC).
    #[arg(long, value_parser = Month::parse)]
    month: Month,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

/// One output row. `cost` is a decimal string so no reader parses money as
/// a float; unpriced events are reported under currency "" with cost 0.
#[derive(Serialize)]
struct Row<'a> {
    tenant_id: &'a str,
    currency: &'a str,
    events: u64,
    cost: String,
    unpriced_events: u64,
}

pub async fn run(args: UsageArgs) -> Result<()> {
    let client = ClickHouseConfig::from_env().client();
    let usage = month_usage(&client, args.month, args.tenant.as_deref()).await.context("querying ClickHouse")?;
    let rows: Vec<Row<'_>> = usage.iter().map(row).collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?,
        Format::Csv => {
            writeln!(out, "tenant_id,currency,events,cost,unpriced_events")?;
            for r in &rows {
                writeln!(out, "{},{},{},{},{}", r.tenant_id, r.currency, r.events, r.cost, r.unpriced_events)?;
            }
        }
        Format::Table => print_table(&mut out, args.month, &rows)?,
    }
    out.flush()?;
    Ok(())
}

fn row(u: &TenantUsage) -> Row<'_> {
    Row { tenant_id: &u.tenant_id, currency: &u.currency, events: u.events, cost: u.cost.to_string(), unpriced_events: u.unpriced_events }
}

fn print_table(out: &mut impl Write, month: Month, rows: &[Row<'_>]) -> std::io::Result<()> {
    writeln!(out, "Month-to-date cost, {month} (exact; invoices round)")?;
    writeln!(out, "{:<24} {:<8} {:>12} {:>10} {:>24}", "tenant", "currency", "events", "unpriced", "cost")?;
    for r in rows {
        let currency = if r.currency.is_empty() { "-" } else { r.currency };
        writeln!(out, "{:<24} {:<8} {:>12} {:>10} {:>24}", r.tenant_id, currency, r.events, r.unpriced_events, r.cost)?;
    }
    let events: u64 = rows.iter().map(|r| r.events).sum();
    writeln!(out, "{} rows, {} events", rows.len(), events)
}
