/// How an [`Emitter`](crate::Emitter) reaches Kafka.
#[derive(Debug, Clone)]
pub struct EmitterConfig {
    /// Bootstrap servers (`METERLINE_KAFKA_BROKERS`).
    pub brokers: String,
    /// Usage topic (`METERLINE_USAGE_TOPIC`).
    pub topic: String,
    pub client_id: String,
    /// Most events enqueued but not yet acknowledged; `emit` waits beyond it.
    pub max_in_flight: usize,
    /// How long the producer waits to fill a batch
    /// (`METERLINE_EMIT_LINGER_MS`). Each produce request costs the broker
    /// and the client far more than each event in it: at 20 000 events/s on
    /// the 2-core dev machine, 5 ms kept the machine saturated (broker ~70 %
    /// of a core, the emitting process ~45 %) and queueing pushed the
    /// budget benchmark's p99 enforcement latency to ~500 ms; with 10 ms it
    /// was 78 ms and the overshoot (which counts the linger) fell from
    /// 1.52 % to 0.40 % at p99 (README, Benchmarks).
    pub linger_ms: u32,
    pub compression: String,
    /// How long the producer keeps retrying one event before failing it.
    pub delivery_timeout_ms: u32,
}

impl Default for EmitterConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "meterline.usage.v1".into(),
            client_id: "meterline-sdk".into(),
            max_in_flight: 50_000,
            linger_ms: 10,
            compression: "lz4".into(),
            delivery_timeout_ms: 30_000,
        }
    }
}

impl EmitterConfig {
    /// Defaults, with `METERLINE_KAFKA_BROKERS`, `METERLINE_USAGE_TOPIC` and
    /// `METERLINE_EMIT_LINGER_MS` applied when set (an unparsable linger is
    /// ignored with a warning).
    pub fn from_env() -> Self {
        let mut c = Self::default();
        if let Ok(v) = std::env::var("METERLINE_KAFKA_BROKERS") {
            c.brokers = v;
        }
        if let Ok(v) = std::env::var("METERLINE_USAGE_TOPIC") {
            c.topic = v;
        }
        if let Ok(v) = std::env::var("METERLINE_EMIT_LINGER_MS") {
            match v.parse() {
                Ok(ms) => c.linger_ms = ms,
                Err(_) => tracing::warn!(value = %v, "METERLINE_EMIT_LINGER_MS is not a number of milliseconds; keeping {}", c.linger_ms),
            }
        }
        c
    }
}
