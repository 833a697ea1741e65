//! The in-process ceiling: the rollup's pure work per event on one core.

use std::time::Instant;

use anyhow::Result;
use meterline_core::avro::Codec;
use meterline_core::intake::{self, Message};
use meterline_core::{PriceBook, ValidationPolicy};
use meterline_rollup::count::{self, BatchStarts};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Events per batch, as the rollup would consume them.
    #[arg(long, default_value_t = 20_000)]
    batch: usize,
    #[arg(long, default_value_t = 40)]
    tenants: usize,
    /// Rounds; the best is reported (the machine is shared and noisy).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

pub fn run(args: Args) -> Result<()> {
    let entries = meterline_core::pricing::csv::parse(include_str!("../../../prices/default.csv"))?;
    let book = PriceBook::build(&entries, &[])?;
    let codec = Codec::new();
    let policy = ValidationPolicy::default();
    let events = crate::events::encoded(args.events, args.tenants, 42);
    let bytes: usize = events.iter().map(|(_, b)| b.len()).sum();
    let messages: Vec<Message<'_>> = events
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Message { partition: 0, offset: i as i64, key: Some(k.as_bytes()), payload: Some(v) })
        .collect();
    let stored = Default::default();
    let now = chrono::Utc::now().timestamp_micros() + 1_000_000;

    println!(
        "in-process: {} events of {} bytes on average, batches of {}, one thread",
        args.events,
        bytes / args.events.max(1),
        args.batch
    );
    let mut best = f64::MAX;
    for round in 1..=args.rounds {
        let t = Instant::now();
        let mut groups = 0;
        for chunk in messages.chunks(args.batch) {
            let (priced, rejected) = intake::prepare(&codec, &book, &policy, now, chunk);
            let starts: BatchStarts = [(0, chunk[0].offset)].into_iter().collect();
            let (counted, _dups) = count::dedupe(&priced, &starts, &stored);
            groups += count::aggregate(&counted).len();
            anyhow::ensure!(rejected.is_empty(), "benchmark events must be valid");
        }
        let secs = t.elapsed().as_secs_f64();
        best = best.min(secs);
        println!("  round {round}: {:>10.0} events/s ({groups} rollup groups)", args.events as f64 / secs);
    }
    println!("in-process best: {:.0} events/s per core (target >= 500000)", args.events as f64 / best);
    Ok(())
}
