//! `/metrics` and `/health` for Prometheus and orchestrators.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

/// Whether the service can do its work right now: set while it makes
/// progress, cleared while a dependency is failing.
#[derive(Default)]
pub struct Health {
    healthy: AtomicBool,
}

impl Health {
    pub fn set(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// Renders the service's metrics in the Prometheus text format.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
struct AppState {
    render: Render,
    health: Arc<Health>,
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    render: Render,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(|State(s): State<AppState>| async move { (s.render)() }))
        .route(
            "/health",
            get(|State(s): State<AppState>| async move {
                if s.health.is_healthy() {
                    (StatusCode::OK, "ok\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable\n")
                }
            }),
        )
        .with_state(AppState { render, health });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// A service's observable shell: its health flag, a stop signal that turns
/// `true` when `shutdown` resolves, and the `/metrics` + `/health` server
/// (which stops with it).
pub struct Observed {
    pub health: Arc<Health>,
    pub stop: tokio::sync::watch::Receiver<bool>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `listen`, serves `/metrics` (from `render`) and `/health` there, and
/// wires `shutdown` to the returned stop signal.
pub async fn observe(
    listen: &str,
    render: Render,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<Observed> {
    let health = Arc::new(Health::default());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /health");
    let mut http_stop = stop.clone();
    let server = tokio::spawn(serve(listener, render, health.clone(), async move {
        let _ = http_stop.changed().await;
    }));
    Ok(Observed { health, stop, server })
}
