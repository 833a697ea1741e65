//! What every Meterline service shares around its own work: how it stops
//! (`shutdown_signal`), how it is observed (`http`: `/metrics` and
//! `/health`), and how it reads usage events (`intake`: the codec with
//! extra writer schemas, and a price book kept fresh from Postgres).

pub mod http;
pub mod intake;

/// Resolves on SIGINT or SIGTERM: what orchestrators send before a kill.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested; finishing the work in hand");
}
