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
    /// How long the producer waits to fill a batch.
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
            linger_ms: 5,
            compression: "lz4".into(),
            delivery_timeout_ms: 30_000,
        }
    }
}

impl EmitterConfig {
    /// Defaults, with `METERLINE_KAFKA_BROKERS` and `METERLINE_USAGE_TOPIC`
    /// applied when set.
    pub fn from_env() -> Self {
        let mut c = Self::default();
        if let Ok(v) = std::env::var("METERLINE_KAFKA_BROKERS") {
            c.brokers = v;
        }
        if let Ok(v) = std::env::var("METERLINE_USAGE_TOPIC") {
            c.topic = v;
        }
        c
    }
}
