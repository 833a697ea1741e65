use anyhow::Context;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_rollup::allocator::keep_freed_memory();
    tracing_subscriber::fmt().with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))).init();
    let config = meterline_rollup::Config::from_env().context("reading configuration")?;
    meterline_rollup::run(config, meterline_runtime::shutdown_signal()).await.context("rollup service failed")
}
