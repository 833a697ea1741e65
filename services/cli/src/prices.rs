use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use meterline_core::pricing::csv as price_csv;
use meterline_storage::postgres;

#[derive(Subcommand)]
pub enum PricesCommand {
    /// Import prices from a CSV file (provider,model,unit,unit_price,per,currency,effective_from).
    Import { file: PathBuf },
    /// Print the price book as CSV.
    List,
}

pub async fn run(command: PricesCommand) -> Result<()> {
    let pool = postgres::connect(postgres::database_url_from_env().expose()).await.context("connecting to Postgres")?;
    match command {
        PricesCommand::Import { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let entries = price_csv::parse(&text).with_context(|| format!("in {}", file.display()))?;
            // Refuse a file that would make the book inconsistent (one model
            // in two currencies, a tenant's discount that no longer prices
            // exactly) before writing anything: the services would refuse
            // to load it.
            let mut all = postgres::list_prices(&pool).await?;
            all.extend(entries.iter().cloned());
            let overrides = postgres::list_overrides(&pool).await?;
            meterline_core::PriceBook::build(&all, &overrides).context("the imported prices were refused")?;
            let written = postgres::import_prices(&pool, &entries).await?;
            println!("imported {} price entries ({} new or changed)", entries.len(), written);
        }
        PricesCommand::List => {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            writeln!(out, "{}", price_csv::HEADER.join(","))?;
            for e in postgres::list_prices(&pool).await? {
                writeln!(out, "{}", price_csv::to_line(&e))?;
            }
            out.flush()?;
        }
    }
    Ok(())
}
