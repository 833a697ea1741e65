//! What both binaries do around the library: logging, wiring the SDK's
//! emitter and throttle watcher, signals and the final flush.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meterline_gateway::{auth, Config, Service};
use meterline_sdk::{Decisions, Emitter, EmitterConfig, ThrottleWatcher, WatcherConfig};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// How long start-up waits for the watcher to read the throttle topic to
/// its end, so a restart does not briefly serve tenants that are blocked.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for the producer to deliver what is queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn main(service: Service) -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("mint-token") {
        return mint_token(&args[1..]);
    }

    let config = Config::from_env().context("reading configuration")?;
    if config.jwt_secret.expose().len() < 32 {
        tracing::warn!("METERLINE_JWT_SECRET is shorter than 32 bytes; HS256 wants at least 256 bits of key");
    }
    let (name, addr) = match service {
        Service::Gateway => ("meterline-gateway", config.gateway_listen),
        Service::Rag => ("meterline-rag", config.rag_listen),
    };
    let emitter =
        Emitter::new(EmitterConfig { client_id: name.into(), ..EmitterConfig::from_env().context("reading the emitter configuration")? })
            .context("creating the usage emitter")?;
    let watcher = ThrottleWatcher::start(WatcherConfig::from_env().context("reading the throttle watcher configuration")?)
        .context("starting the throttle watcher")?;
    if !watcher.wait_caught_up(CATCH_UP_TIMEOUT).await {
        tracing::warn!(timeout = ?CATCH_UP_TIMEOUT, "throttle topic not read to its end yet; serving per METERLINE_THROTTLE_FAIL_MODE");
    }
    let decisions: Arc<dyn Decisions> = Arc::new(watcher);

    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(service = name, %addr, "listening");
    meterline_gateway::run(service, config, listener, decisions, Arc::new(emitter.clone()), meterline_runtime::shutdown_signal())
        .await
        .context("serving")?;
    emitter.flush(FLUSH_TIMEOUT).await.context("flushing usage events")?;
    tracing::info!(service = name, "stopped");
    Ok(())
}

/// `mint-token <tenant> [ttl-seconds]`: prints a token signed with
/// METERLINE_JWT_SECRET, for local testing with curl.
fn mint_token(args: &[String]) -> anyhow::Result<()> {
    let tenant = args.first().context("usage: mint-token <tenant> [ttl-seconds]")?;
    let ttl: Option<u64> = args.get(1).map(|s| s.parse()).transpose().context("ttl-seconds must be a whole number")?;
    let secret = std::env::var("METERLINE_JWT_SECRET").context("METERLINE_JWT_SECRET is not set")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let token = auth::mint_token(secret.as_bytes(), tenant, ttl.map(|t| now + t))?;
    println!("{token}");
    Ok(())
}
