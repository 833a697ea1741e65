//! `meterline bench`: benchmarks that print figures. Nothing here asserts a
//! time; the README records what was measured and how.

mod events;
mod inprocess;
mod pipeline;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Decode + validate + price + aggregate on one core, no I/O.
    Inprocess(inprocess::Args),
    /// Emit → Kafka → rollup → ClickHouse, beside the broker's raw ceiling.
    Pipeline(pipeline::Args),
}

pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Inprocess(args) => inprocess::run(args),
        BenchCommand::Pipeline(args) => pipeline::run(args).await,
    }
}
