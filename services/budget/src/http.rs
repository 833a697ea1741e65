//! `/metrics` and `/health`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Healthy while batches commit; unhealthy while a dependency fails.
#[derive(Default)]
pub struct Health(AtomicBool);

impl Health {
    pub fn set(&self, healthy: bool) {
        self.0.store(healthy, Ordering::Relaxed);
    }
}

pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(|State((m, _)): State<(Metrics, Arc<Health>)>| async move { m.render() }))
        .route(
            "/health",
            get(|State((_, h)): State<(Metrics, Arc<Health>)>| async move {
                if h.0.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ok\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n")
                }
            }),
        )
        .with_state((metrics, health));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
