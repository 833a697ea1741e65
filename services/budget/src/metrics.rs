//! The budget service's Prometheus metrics: `meterline_budget_*`, labels
//! from small fixed sets, never tenants.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Usage events by outcome: counted, duplicate, rejected (the rollup
    /// dead-letters those; here they are only skipped).
    pub events: IntCounterVec,
    pub batch_seconds: Histogram,
    /// Judgements run, by trigger: usage, budget_change, tick, sweep.
    pub evaluations: IntCounterVec,
    /// Throttle commands published, by state.
    pub commands_published: IntCounterVec,
    /// Alerts published, by kind.
    pub alerts_published: IntCounterVec,
    /// Failed steps, by kind (retriable, permanent); the step is retried.
    pub failures: IntCounterVec,
    pub rewinds: IntCounter,
    pub price_book_entries: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let events = counter_vec("meterline_budget_events_total", "Usage events consumed, by outcome", "outcome");
        let evaluations = counter_vec("meterline_budget_evaluations_total", "Budget judgements, by trigger", "trigger");
        let commands_published =
            counter_vec("meterline_budget_throttle_commands_published_total", "Throttle commands published, by state", "state");
        let alerts_published = counter_vec("meterline_budget_alerts_published_total", "Budget alerts published, by kind", "kind");
        let failures = counter_vec("meterline_budget_failures_total", "Failed steps (retried), by kind", "kind");
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new("meterline_budget_batch_duration_seconds", "Time to count, judge and commit one batch")
                .buckets(vec![0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
        )
        .expect("valid metric");
        registry.register(Box::new(batch_seconds.clone())).expect("unique metric");
        let rewinds =
            IntCounter::new("meterline_budget_rewinds_total", "Partitions rewound because the broker resumed past the stored offset")
                .expect("valid metric");
        registry.register(Box::new(rewinds.clone())).expect("unique metric");
        let price_book_entries = IntGauge::new("meterline_budget_price_book_entries", "List-price entries loaded").expect("valid metric");
        registry.register(Box::new(price_book_entries.clone())).expect("unique metric");
        Self { registry, events, batch_seconds, evaluations, commands_published, alerts_published, failures, rewinds, price_book_entries }
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    pub fn failure(&self, e: &crate::BudgetServiceError) {
        self.failures.with_label_values(&[if e.is_retriable() { "retriable" } else { "permanent" }]).inc();
    }
}
