//! Read-side latency at scale: fills a fresh ClickHouse database with the
//! hourly deltas that `--events` events would leave (in batches as the
//! rollup writes them), then times "month-to-date cost per tenant" and
//! "cost per hour for one tenant by model".

use std::time::Instant;

use anyhow::Result;
use meterline_core::Month;
use meterline_storage::clickhouse::{hourly_costs, migrate, month_usage, ClickHouseConfig, CostKey, CostRow};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

#[derive(clap::Args)]
pub struct Args {
    /// Events the month's rollup rows stand for.
    #[arg(long, default_value_t = 100_000_000)]
    events: u64,
    /// Events per rollup batch.
    #[arg(long, default_value_t = 20_000)]
    batch: u64,
    #[arg(long, default_value_t = 50)]
    tenants: u32,
    /// Distinct provider/model/source/kind combinations.
    #[arg(long, default_value_t = 10)]
    models: u32,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Timed repetitions of each query; the median is reported.
    #[arg(long, default_value_t = 7)]
    runs: usize,
}

pub async fn run(args: Args) -> Result<()> {
    let mut ch = ClickHouseConfig::from_env();
    ch.database = format!("meterline_bench_q_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    migrate(&ch).await?;
    let client = ch.client();
    let month = Month::containing(chrono::Utc::now());
    let start = month.start().timestamp();
    let hours = ((chrono::Utc::now().timestamp() - start) / 3600).max(1);
    let batches = args.events.div_ceil(args.batch);
    let mut rng = StdRng::seed_from_u64(1);

    let t = Instant::now();
    let mut rows = 0u64;
    let mut insert = client.insert::<CostRow>("cost_hourly").await?;
    for b in 0..batches {
        // A batch covers one hour of the month; every tenant uses a few models.
        let hour = (start + (b as i64 * hours / batches as i64) * 3600) as u32;
        let partition = (b % args.partitions as u64) as i32;
        let per_group = (args.batch / u64::from(args.tenants * 3)).max(1);
        for tenant in 0..args.tenants {
            for _ in 0..3 {
                let m = rng.gen_range(0..args.models);
                let mut row = CostRow::zero(
                    CostKey {
                        tenant_id: format!("tenant-{tenant:03}"),
                        hour,
                        provider: "openai".into(),
                        model: format!("model-{m}"),
                        source: "gateway".into(),
                        kind: "chat".into(),
                        currency: "USD".into(),
                    },
                    partition,
                    b as i64 * args.batch as i64,
                );
                row.events = per_group;
                row.input_tokens = per_group * 1000;
                row.cost = Decimal::new(rng.gen_range(1..10_000_000), 9);
                insert.write(&row).await?;
                rows += 1;
            }
        }
        if b % 500 == 499 {
            insert.end().await?;
            insert = client.insert::<CostRow>("cost_hourly").await?;
        }
    }
    insert.end().await?;
    println!(
        "query benchmark: {rows} hourly delta rows standing for {} events ({} batches) inserted in {:.1}s",
        args.events,
        batches,
        t.elapsed().as_secs_f64()
    );

    let mut timed = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        let r = month_usage(&client, month, None).await?;
        timed.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(r.len() == args.tenants as usize, "one row per tenant");
    }
    println!("month-to-date cost per tenant (all {} tenants): median {:.0} ms", args.tenants, median(&mut timed));
    let mut timed = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        hourly_costs(&client, "tenant-007", start, month.end().timestamp()).await?;
        timed.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("cost per hour by model for one tenant, whole month: median {:.0} ms", median(&mut timed));
    client.query(&format!("DROP DATABASE {}", ch.database)).execute().await?;
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
