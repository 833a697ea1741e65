//! `meterline bench`: benchmarks that print figures. Nothing here asserts a
//! time; the README records what was measured and how.

mod enforcement;
mod events;
mod inprocess;
mod pipeline;
mod queries;

use anyhow::Result;
use clap::Subcommand;

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
}

pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Inprocess(args) => inprocess::run(args),
        BenchCommand::Pipeline(args) => pipeline::run(args).await,
        BenchCommand::Queries(args) => queries::run(args).await,
        BenchCommand::Enforcement(args) => enforcement::run(args).await,
    }
}
