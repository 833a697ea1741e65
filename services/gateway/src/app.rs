//! Wiring: the shared state, the two routers and the server loop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use meterline_core::{TenantId, UsageEvent};
use meterline_sdk::Decisions;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tower::limit::ConcurrencyLimitLayer;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::deliveries::{self, Deliveries, DeliveryDrain};
use crate::error::{not_found, ApiError};
use crate::metrics::{Metrics, Route};
use crate::model::SimulatedModel;
use crate::sink::UsageSink;
use crate::{openai, rag};

/// Most broker acknowledgements awaited at once before requests wait.
const MAX_PENDING_ACKS: usize = 10_000;

/// How long shutdown waits for outstanding acknowledgements.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest accepted model name or `user` value: they travel into every
/// usage event and the rollup's storage.
pub(crate) const MAX_NAME_LEN: usize = 256;

/// What every handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) config: Arc<Config>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) decisions: Arc<dyn Decisions>,
    pub(crate) sink: Arc<dyn UsageSink>,
    pub(crate) deliveries: Deliveries,
    pub(crate) model: SimulatedModel,
    pub(crate) metrics: Metrics,
}

impl AppState {
    /// Builds the state and starts the task that awaits acknowledgements;
    /// drop every clone of the state, then [`DeliveryDrain::wait`], to
    /// shut down without losing track of events. Needs a Tokio runtime.
    pub fn new(config: Config, decisions: Arc<dyn Decisions>, sink: Arc<dyn UsageSink>, metrics: Metrics) -> (Self, DeliveryDrain) {
        let (deliveries, drain) = deliveries::start(metrics.clone(), MAX_PENDING_ACKS);
        let state = Self {
            auth: Arc::new(Authenticator::new(config.jwt_secret.expose())),
            model: SimulatedModel { latency: config.model_latency },
            config: Arc::new(config),
            decisions,
            sink,
            deliveries,
            metrics,
        };
        (state, drain)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<TenantId, ApiError> {
        let tenant = self.auth.authenticate(headers)?;
        tracing::Span::current().record("tenant", tenant.as_str());
        Ok(tenant)
    }

    /// Emits `event`, waiting while the sink is full.
    ///
    /// A failure here does not fail the request: the model call already
    /// happened and its cost is real, so refusing the answer would lose the
    /// revenue *and* the customer's result. The event is logged in full
    /// and counted instead; its `event_id` makes a later re-send safe (the
    /// rollup counts each event_id once).
    pub(crate) async fn record(&self, event: UsageEvent<'static>) {
        // The clone is kept until the broker acknowledges, to log the event
        // in full if it is lost: a few short strings per request.
        match self.sink.record(event.clone()).await {
            Ok(ack) => self.deliveries.track(event, ack).await,
            Err(error) => {
                self.metrics.emit_failure();
                tracing::error!(event_id = %event.event_id, tenant = %event.tenant_id, %error, ?event, "usage event not emitted");
            }
        }
    }
}

/// Reads a JSON body, turning every failure into a JSON 400 with serde's
/// message (axum's `Json` rejection is plain text).
pub(crate) fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body?;
    serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))
}

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
