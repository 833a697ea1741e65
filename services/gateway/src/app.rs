//! Wiring: the two routers and the server loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use meterline_sdk::Decisions;
use tokio::net::TcpListener;
use tower::limit::ConcurrencyLimitLayer;

use crate::config::Config;
use crate::error::not_found;
use crate::metrics::{Metrics, Route};
use crate::sink::UsageSink;
use crate::state::AppState;
use crate::{openai, rag};

/// How long shutdown waits for outstanding acknowledgements.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// `POST /v1/chat/completions`, plus `/health` and `/metrics`.
pub fn gateway_router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route_layer(ConcurrencyLimitLayer::new(state.config.max_concurrent_requests));
    with_ops(api, state)
}

/// `POST /v1/embeddings` and `POST /v1/search`, plus `/health` and `/metrics`.
pub fn rag_router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/embeddings", post(rag::embeddings))
        .route("/v1/search", post(rag::search))
        .route_layer(ConcurrencyLimitLayer::new(state.config.max_concurrent_requests));
    with_ops(api, state)
}

/// Operational routes stay outside the concurrency limit: a saturated
/// service must still answer its health checks and be observable.
fn with_ops(api: Router<AppState>, state: AppState) -> Router {
    api.route("/health", get(health)).route("/metrics", get(render_metrics)).fallback(not_found).with_state(state)
}

async fn health() -> (StatusCode, &'static str) {
    (StatusCode::OK, "ok\n")
}

async fn render_metrics(State(s): State<AppState>) -> String {
    s.metrics.render()
}

/// Serves `router` until `shutdown` resolves, then until in-flight requests
/// have finished.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// Which service to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Gateway,
    Rag,
}

impl Service {
    pub fn routes(self) -> &'static [Route] {
        match self {
            Service::Gateway => &[Route::ChatCompletions],
            Service::Rag => &[Route::Embeddings, Route::Search],
        }
    }
}

/// Runs `service` on `listener` until `shutdown`, then waits (at most
/// [`DRAIN_TIMEOUT`]) for the acknowledgements of the events it emitted.
/// The caller flushes its sink afterwards.
pub async fn run(
    service: Service,
    config: Config,
    listener: TcpListener,
    decisions: Arc<dyn Decisions>,
    sink: Arc<dyn UsageSink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (state, drain) = AppState::new(config, decisions, sink, Metrics::new(service.routes()));
    let router = match service {
        Service::Gateway => gateway_router(state),
        Service::Rag => rag_router(state),
    };
    serve(listener, router, shutdown).await?;
    if !drain.wait(DRAIN_TIMEOUT).await {
        tracing::warn!(timeout = ?DRAIN_TIMEOUT, "shut down with usage events still unacknowledged");
    }
    Ok(())
}
