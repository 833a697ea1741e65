//! The services' Prometheus metrics. Names follow `meterline_<what>_<unit>`;
//! labels are small fixed sets (route, outcome), never tenants or models.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// An API route, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    ChatCompletions,
    Embeddings,
    Search,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::ChatCompletions => "chat.completions",
            Route::Embeddings => "embeddings",
            Route::Search => "search",
        }
    }
}

/// How a request ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Served,
    Degraded,
    Throttled,
    Unauthorized,
    BadRequest,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [Outcome::Served, Outcome::Degraded, Outcome::Throttled, Outcome::Unauthorized, Outcome::BadRequest];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Served => "served",
            Outcome::Degraded => "degraded",
            Outcome::Throttled => "throttled",
            Outcome::Unauthorized => "unauthorized",
            Outcome::BadRequest => "bad_request",
        }
    }
}

/// Cheap to clone; clones share the registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    emit_failures: IntCounter,
}

impl Metrics {
    /// Metrics for a service serving `routes`; every route × outcome series
    /// starts at zero so dashboards and `rate()` see it before the first hit.
    pub fn new(routes: &[Route]) -> Self {
        let registry = Registry::new();
        let requests =
            IntCounterVec::new(Opts::new("meterline_gateway_requests_total", "API requests, by route and outcome"), &["route", "outcome"])
                .expect("valid metric");
        let emit_failures = IntCounter::new(
            "meterline_gateway_emit_failures_total",
            "Usage events that could not be enqueued or were not acknowledged by the broker",
        )
        .expect("valid metric");
        registry.register(Box::new(requests.clone())).expect("metric names are unique");
        registry.register(Box::new(emit_failures.clone())).expect("metric names are unique");
        for route in routes {
            for outcome in Outcome::ALL {
                requests.with_label_values(&[route.as_str(), outcome.as_str()]);
            }
        }
        Self { registry, requests, emit_failures }
    }

    pub fn request(&self, route: Route, outcome: Outcome) {
        self.requests.with_label_values(&[route.as_str(), outcome.as_str()]).inc();
    }

    pub fn requests(&self, route: Route, outcome: Outcome) -> u64 {
        self.requests.with_label_values(&[route.as_str(), outcome.as_str()]).get()
    }

    pub fn emit_failure(&self) {
        self.emit_failures.inc();
    }

    pub fn emit_failures(&self) -> u64 {
        self.emit_failures.get()
    }

    /// The text exposition format, for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        out
    }
}
