//! `meterline-bench` (also run as `meterline bench`, which hands over to
//! this binary): benchmarks that print figures. Nothing here asserts a
//! time; the README records what was measured and how.
//!
//! A crate of its own because the benchmarks link what the operator CLI
//! should not: the rollup's transform (`inprocess`) and the whole budget
//! service, run in-process (`enforcement`). `pipeline` starts the rollup's
//! binary instead, from beside this one.

mod enforcement;
mod events;
mod inprocess;
mod notify;
mod pipeline;
mod queries;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "meterline-bench", version, about = "Meterline benchmarks that print figures")]
pub struct Cli {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Decode + validate + price + aggregate on one core, no I/O.
    Inprocess(inprocess::Args),
    /// Emit → Kafka → rollup → ClickHouse, beside the broker's raw ceiling.
    Pipeline(pipeline::Args),
    /// Budget enforcement latency and overshoot at a steady load.
    Enforcement(enforcement::Args),
    /// Rollup query latency at 100 M events' worth of rows.
    Queries(queries::Args),
    /// Alert delivery: alert acked → webhook received, and deliveries/s.
    Notify(notify::Args),
}

pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Inprocess(args) => inprocess::run(args),
        BenchCommand::Pipeline(args) => pipeline::run(args).await,
        BenchCommand::Queries(args) => queries::run(args).await,
        BenchCommand::Enforcement(args) => enforcement::run(args).await,
        BenchCommand::Notify(args) => notify::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
