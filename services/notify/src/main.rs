use anyhow::Context;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))).init();
    let config = meterline_notify::Config::from_env().context("reading configuration")?;
    meterline_notify::run(config, meterline_runtime::shutdown_signal()).await.context("notifier failed")
}
