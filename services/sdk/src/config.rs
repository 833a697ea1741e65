use meterline_core::config::{defaults, Env};

use crate::EmitError;

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
    /// 1.52 % to 0.40 % at p99 (`bench enforcement`, docs/benchmarks.md).
    pub linger_ms: u32,
    pub compression: String,
    /// How long the producer keeps retrying one event before failing it.
    pub delivery_timeout_ms: u32,
}

impl Default for EmitterConfig {
    fn default() -> Self {
        Self {
            brokers: defaults::KAFKA_BROKERS.into(),
            topic: defaults::USAGE_TOPIC.into(),
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
    /// `METERLINE_EMIT_LINGER_MS` from the process environment applied.
    pub fn from_env() -> Result<Self, EmitError> {
        Self::from(&Env::process())
    }

    /// Defaults, with the variables in `env` applied; an unparsable value is
    /// an error naming its variable.
    pub fn from(env: &Env) -> Result<Self, EmitError> {
        let d = Self::default();
        Ok(Self {
            brokers: env.string("METERLINE_KAFKA_BROKERS", &d.brokers),
            topic: env.string("METERLINE_USAGE_TOPIC", &d.topic),
            linger_ms: env.parse("METERLINE_EMIT_LINGER_MS", d.linger_ms)?,
            ..d
        })
    }
}
