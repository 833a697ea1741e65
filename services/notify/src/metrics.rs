//! The notifier's Prometheus metrics: `meterline_notify_*`, labels from
//! small fixed sets (channel kind, outcome), never tenants or URLs.

use prometheus::{Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Alerts taken in, by outcome: new, repeat (seen before), undecodable.
    pub alerts: IntCounterVec,
    /// Delivery attempts, by channel kind and outcome (delivered, retry,
    /// permanent).
    pub attempts: IntCounterVec,
    /// Time of one attempt, by channel kind.
    pub attempt_seconds: HistogramVec,
    /// Deliveries waiting (pending or failed).
    pub queue_depth: IntGauge,
    /// Age of the oldest waiting delivery.
    pub oldest_pending_seconds: Gauge,
    /// Failed steps of the service itself (Postgres, Kafka), by kind.
    pub failures: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let alerts = counter_vec("meterline_notify_alerts_total", "Alerts taken in, by outcome", &["outcome"]);
        let attempts = counter_vec("meterline_notify_attempts_total", "Delivery attempts, by channel and outcome", &["channel", "outcome"]);
        let failures = counter_vec("meterline_notify_failures_total", "Failed steps of the notifier (retried), by kind", &["kind"]);
        let attempt_seconds = HistogramVec::new(
            HistogramOpts::new("meterline_notify_attempt_duration_seconds", "Time of one delivery attempt, by channel")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["channel"],
        )
        .expect("valid metric");
        registry.register(Box::new(attempt_seconds.clone())).expect("unique metric");
        let queue_depth = IntGauge::new("meterline_notify_queue_depth", "Deliveries waiting (pending or failed)").expect("valid metric");
        registry.register(Box::new(queue_depth.clone())).expect("unique metric");
        let oldest_pending_seconds =
            Gauge::new("meterline_notify_oldest_pending_seconds", "Age of the oldest waiting delivery").expect("valid metric");
        registry.register(Box::new(oldest_pending_seconds.clone())).expect("unique metric");
        Self { registry, alerts, attempts, attempt_seconds, queue_depth, oldest_pending_seconds, failures }
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
