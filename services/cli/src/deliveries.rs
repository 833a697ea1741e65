//! `meterline deliveries [--tenant] [--state]` and `deliveries retry ID`:
//! the alert delivery outbox, as the notifier leaves it.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use meterline_storage::postgres::{self, notify};
use uuid::Uuid;

const STATES: &[&str] = &["pending", "failed", "sent", "dead"];

#[derive(Args)]
pub struct DeliveriesArgs {
    #[command(subcommand)]
    command: Option<DeliveriesCommand>,
    #[arg(long)]
    tenant: Option<String>,
    /// pending, failed (retrying), sent or dead.
    #[arg(long)]
    state: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: i64,
}

#[derive(Subcommand)]
enum DeliveriesCommand {
    /// Try a failed or dead delivery again, now, with a fresh schedule.
    Retry { id: Uuid },
}

pub async fn run(args: DeliveriesArgs) -> Result<()> {
    let pool = postgres::connect(postgres::database_url_from_env().expose()).await.context("connecting to Postgres")?;
    if let Some(DeliveriesCommand::Retry { id }) = args.command {
        if !notify::retry_delivery(&pool, id).await? {
            bail!("no failed or dead delivery {id} on an enabled channel");
        }
        println!("delivery {id} is due again");
        return Ok(());
    }
    if let Some(state) = args.state.as_deref().filter(|s| !STATES.contains(s)) {
        bail!("--state {state:?}: one of {}", STATES.join(", "));
    }
    let list = notify::list_deliveries(&pool, args.tenant.as_deref(), args.state.as_deref(), args.limit.clamp(1, 10_000)).await?;
    println!("{:<36}  {:<20}  {:<26}  {:<7}  {:<7}  {:>8}  last error", "delivery", "tenant", "event", "channel", "state", "attempts");
    for d in list {
        let error = match (d.last_status, d.last_error) {
            (Some(s), Some(e)) => format!("[{s}] {e}"),
            (None, Some(e)) => e,
            _ => String::new(),
        };
        println!(
            "{:<36}  {:<20}  {:<26}  {:<7}  {:<7}  {:>8}  {}",
            d.delivery_id, d.tenant_id, d.event_type, d.kind, d.state, d.attempts, error
        );
    }
    Ok(())
}
