//! `meterline`: the operator's command line. Each subcommand lives in its own
//! module; this file only parses arguments and dispatches.

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod alerts;
mod bench;
mod budgets;
mod channels;
mod deliveries;
mod dlq;
mod loadgen;
mod migrate;
mod prices;
mod topics;
mod usage;

#[derive(Parser)]
#[command(name = "meterline", version, about = "Meterline operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the databases if missing and apply Postgres and ClickHouse migrations.
    Migrate,
    /// Manage Kafka topics.
    Topics {
        #[command(subcommand)]
        command: topics::TopicsCommand,
    },
    /// Import and list the price book.
    Prices {
        #[command(subcommand)]
        command: prices::PricesCommand,
    },
    /// Budget alerts published by the budget service.
    Alerts(alerts::AlertsArgs),
    /// Monthly budgets per tenant.
    Budgets {
        #[command(subcommand)]
        command: budgets::BudgetsCommand,
    },
    /// Where each tenant's alerts go (webhooks), delivered by meterline-notify.
    Channels {
        #[command(subcommand)]
        command: channels::ChannelsCommand,
    },
    /// Alert deliveries: state, attempts and last error; retry one.
    Deliveries(deliveries::DeliveriesArgs),
    /// Per-tenant events and cost for a month, from ClickHouse.
    Usage(usage::UsageArgs),
    /// Simulated gateway and RAG traffic through the SDK.
    Loadgen(loadgen::LoadgenArgs),
    /// Inspect the dead-letter topic.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Benchmarks that print figures, run by the meterline-bench binary (`meterline bench --help` lists them).
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Count dead letters by reason.
    Summary(dlq::DlqArgs),
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Migrate => migrate::run().await,
        Command::Topics { command } => topics::run(command).await,
        Command::Prices { command } => prices::run(command).await,
        Command::Alerts(args) => alerts::list(args),
        Command::Budgets { command } => budgets::run(command).await,
        Command::Channels { command } => channels::run(command).await,
        Command::Deliveries(args) => deliveries::run(args).await,
        Command::Usage(args) => usage::run(args).await,
        Command::Loadgen(args) => loadgen::run(args).await,
        Command::Dlq { command: DlqCommand::Summary(args) } => dlq::summary(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        // `meterline prices list | head` closing the pipe early is not an error.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().filter_map(|c| c.downcast_ref::<std::io::Error>()).any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
