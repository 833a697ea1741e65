//! The state every handler shares: configuration, authentication, the
//! budget's decisions, the usage sink and the metrics.

use std::sync::Arc;

use axum::http::HeaderMap;
use meterline_core::{TenantId, UsageEvent};
use meterline_sdk::Decisions;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::deliveries::{self, Deliveries, DeliveryDrain};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::model::SimulatedModel;
use crate::sink::UsageSink;

/// Most broker acknowledgements awaited at once before requests wait.
const MAX_PENDING_ACKS: usize = 10_000;

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
