//! The rollup's Prometheus metrics. Names follow `meterline_<what>_<unit>`;
//! labels are small fixed sets (outcomes, reason codes), never tenants.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Events by outcome: counted, duplicate, dead_lettered.
    pub events: IntCounterVec,
    /// Dead-lettered messages by reason code.
    pub dead_letters: IntCounterVec,
    pub unpriced_events: IntCounter,
    pub batches: IntCounter,
    pub batch_seconds: Histogram,
    /// Failed attempts to write a batch, by kind (retriable, permanent).
    pub write_failures: IntCounterVec,
    pub commit_failures: IntCounter,
    /// Times this instance rejoined its group to pick up stalled partitions.
    pub group_rejoins: IntCounter,
    pub price_book_entries: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let events = IntCounterVec::new(Opts::new("meterline_rollup_events_total", "Usage events consumed, by outcome"), &["outcome"])
            .expect("valid metric");
        let dead_letters = IntCounterVec::new(
            Opts::new("meterline_rollup_dead_letters_total", "Messages sent to the dead-letter topic, by reason"),
            &["reason"],
        )
        .expect("valid metric");
        let unpriced_events = IntCounter::new(
            "meterline_rollup_unpriced_events_total",
            "Counted events with no price in force (stored, flagged, to be repriced)",
        )
        .expect("valid metric");
        let batches = IntCounter::new("meterline_rollup_batches_total", "Batches written and committed").expect("valid metric");
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new("meterline_rollup_batch_duration_seconds", "Time to process, write and commit one batch")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )
        .expect("valid metric");
        let write_failures =
            IntCounterVec::new(Opts::new("meterline_rollup_write_failures_total", "Failed attempts to write a batch, by kind"), &["kind"])
                .expect("valid metric");
        let commit_failures =
            IntCounter::new("meterline_rollup_commit_failures_total", "Offset commits that failed; the batch is replayed")
                .expect("valid metric");
        let group_rejoins = IntCounter::new(
            "meterline_rollup_group_rejoins_total",
            "Times the instance rejoined its consumer group because partitions had no consumer",
        )
        .expect("valid metric");
        let price_book_entries = IntGauge::new("meterline_rollup_price_book_entries", "List-price entries loaded").expect("valid metric");
        for c in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(dead_letters.clone()),
            Box::new(unpriced_events.clone()),
            Box::new(batches.clone()),
            Box::new(batch_seconds.clone()),
            Box::new(write_failures.clone()),
            Box::new(commit_failures.clone()),
            Box::new(group_rejoins.clone()),
            Box::new(price_book_entries.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Self {
            registry,
            events,
            dead_letters,
            unpriced_events,
            batches,
            batch_seconds,
            write_failures,
            commit_failures,
            group_rejoins,
            price_book_entries,
        }
    }

    /// The text exposition format, for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
