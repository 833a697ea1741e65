//! `/metrics` and `/health` for Prometheus and orchestrators.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Whether the service can do its work right now: set while batches are
/// being written, cleared while a dependency is failing.
#[derive(Default)]
pub struct Health {
    healthy: AtomicBool,
}

impl Health {
    pub fn set(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Arc<Health>,
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health", get(health_check))
        .with_state(AppState { metrics, health });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

async fn render_metrics(State(s): State<AppState>) -> String {
    s.metrics.render()
}

async fn health_check(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.health.healthy.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n")
    }
}
