//! `meterline channels add-webhook|add-email|list|remove|test|rotate-secret`: where a tenant's
//! alerts go. The notifier (`meterline-notify`) delivers to them.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use meterline_core::webhook::{check_endpoint_url, WebhookSecret, EVENT_TYPES};
use meterline_storage::postgres::{self, notify};
use rand::RngCore as _;
use uuid::Uuid;

/// Key bytes of a new signing secret (the Standard Webhooks range is 24–64).
const SECRET_BYTES: usize = 32;

#[derive(Subcommand)]
pub enum ChannelsCommand {
    /// Add a webhook endpoint; prints its signing secret, once.
    AddWebhook(AddWebhookArgs),
    /// Add an email address; alerts are sent through `METERLINE_SMTP_URL`.
    AddEmail(AddEmailArgs),
    /// List channels.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Give a webhook channel a new signing secret (printed once); the old
    /// one keeps signing beside it for the grace period.
    RotateSecret {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        channel: Uuid,
        /// Hours both secrets sign.
        #[arg(long, default_value_t = 24)]
        grace_hours: u32,
    },
    /// Turn a channel off for good (its waiting deliveries are dropped).
    Remove {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        channel: Uuid,
    },
    /// Send a `notify.test` event to one channel (signed, for a webhook).
    Test {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        channel: Uuid,
    },
}

#[derive(Args)]
pub struct AddWebhookArgs {
    #[arg(long)]
    tenant: String,
    /// The endpoint, https (or http) without credentials in it.
    #[arg(long)]
    url: String,
    /// Event types to send, comma-separated; all if omitted.
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
}

#[derive(Args)]
pub struct AddEmailArgs {
    #[arg(long)]
    tenant: String,
    /// A bare address, `alerts@example.com` (no display name).
    #[arg(long)]
    to: String,
    /// Event types to send, comma-separated; all if omitted.
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
}

/// A fresh `whsec_` secret from the operating system's CSPRNG.
fn new_secret() -> Result<String> {
    let mut key = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut key);
    Ok(WebhookSecret::from_key(&key)?.expose())
}

pub async fn run(command: ChannelsCommand) -> Result<()> {
    let pool = postgres::connect(postgres::database_url_from_env().expose()).await.context("connecting to Postgres")?;
    match command {
        ChannelsCommand::AddWebhook(args) => {
            meterline_core::TenantId::parse(&args.tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
            check_endpoint_url(&args.url).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
            check_event_types(&args.events)?;
            let secret = new_secret()?;
            let c = notify::add_channel(&pool, &args.tenant, "webhook", &args.url, &args.events, Some(&secret)).await?;
            println!("channel {} added for tenant {}", c.channel_id, c.tenant_id);
            println!("signing secret (shown once; store it where the receiver verifies): {secret}");
        }
        ChannelsCommand::AddEmail(args) => {
            meterline_core::TenantId::parse(&args.tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
            // The notifier parses the target with this same parser.
            args.to.parse::<lettre::Address>().map_err(|e| anyhow::anyhow!("--to {:?}: not an email address: {e}", args.to))?;
            check_event_types(&args.events)?;
            let c = notify::add_channel(&pool, &args.tenant, "email", &args.to, &args.events, None).await?;
            println!("channel {} added for tenant {}: alerts go to {}", c.channel_id, c.tenant_id, c.target);
        }
        ChannelsCommand::List { tenant } => {
            let channels = notify::list_channels(&pool, tenant.as_deref()).await?;
            println!("{:<36}  {:<20}  {:<7}  {:<8}  {:<30}  target", "channel", "tenant", "kind", "enabled", "events");
            for c in channels {
                let events = if c.event_types.is_empty() { "all".to_owned() } else { c.event_types.join(",") };
                let enabled = if c.enabled { "yes".to_owned() } else { format!("no ({})", c.disabled_reason.unwrap_or_default()) };
                println!("{:<36}  {:<20}  {:<7}  {:<8}  {:<30}  {}", c.channel_id, c.tenant_id, c.kind, enabled, events, c.target);
            }
        }
        ChannelsCommand::RotateSecret { tenant, channel, grace_hours } => {
            if grace_hours > 24 * 30 {
                bail!("--grace-hours {grace_hours}: at most 720 (30 days)");
            }
            let secret = new_secret()?;
            if !notify::rotate_secret(&pool, &tenant, channel, &secret, i64::from(grace_hours) * 3600).await? {
                bail!("tenant {tenant} has no enabled webhook channel {channel}");
            }
            println!("new signing secret for channel {channel} (shown once): {secret}");
            println!("the previous secret signs too for {grace_hours} h; switch the receiver within that time");
        }
        ChannelsCommand::Remove { tenant, channel } => {
            if !notify::remove_channel(&pool, &tenant, channel).await? {
                bail!("tenant {tenant} has no channel {channel}");
            }
            println!("channel {channel} removed");
        }
        ChannelsCommand::Test { tenant, channel } => match notify::queue_test_event(&pool, &tenant, channel).await? {
            Some(delivery) => println!("test event queued as delivery {delivery}; see `meterline deliveries --tenant {tenant}`"),
            None => bail!("tenant {tenant} has no enabled channel {channel}"),
        },
    }
    Ok(())
}

fn check_event_types(events: &[String]) -> Result<()> {
    if let Some(bad) = events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        bail!("--events: unknown event type {bad:?}; known: {}", EVENT_TYPES.join(", "));
    }
    Ok(())
}
