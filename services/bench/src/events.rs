//! Realistic encoded usage events for benchmarks.
//!
//! Not `meterline loadgen`'s generator, and sharing nothing with it: that
//! one streams valid, duplicate and malformed messages with ids from a
//! fixed epoch, for the tests and the demo to check the pipeline against;
//! this makes a seeded set of valid events occurring now, encoded before
//! any clock starts. The README's figures were taken with exactly these
//! events (their mix and their ~118 bytes), so they stay as they are.

use std::borrow::Cow;

use meterline_core::{EventId, Kind, Quantities, Source, Unit, UsageEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MODELS: [(&str, &str, Kind); 6] = [
    ("openai", "gpt-4o", Kind::Chat),
    ("openai", "gpt-4o-mini", Kind::Chat),
    ("anthropic", "claude-3-5-sonnet", Kind::Chat),
    ("anthropic", "claude-3-5-haiku", Kind::Completion),
    ("google", "gemini-1.5-flash", Kind::Chat),
    ("openai", "text-embedding-3-small", Kind::Embedding),
];

/// `n` events over `tenants` tenants, occurring now, each encoded in the
/// single-object format; the key is the tenant.
pub fn encoded(n: usize, tenants: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = chrono::Utc::now().timestamp_micros();
    (0..n)
        .map(|i| {
            let tenant = format!("tenant-{:03}", rng.gen_range(0..tenants));
            let (provider, model, kind) = MODELS[rng.gen_range(0..MODELS.len())];
            let mut q = Quantities::default();
            if kind == Kind::Embedding {
                q[Unit::EmbeddingToken] = rng.gen_range(10..4_000);
            } else {
                q[Unit::InputToken] = rng.gen_range(10..8_000);
                q[Unit::OutputToken] = rng.gen_range(1..2_000);
                q[Unit::CachedInputToken] = rng.gen_range(0..2_000);
            }
            q[Unit::Request] = 1;
            // Time-ordered, as the SDK makes them (see `EventId`), as if
            // made at 50 000 events/s.
            let id = EventId::time_ordered((now / 1000) as u64 + i as u64 / 50, rng.gen()).as_uuid();
            let event = UsageEvent {
                event_id: Cow::Owned(id.hyphenated().to_string()),
                tenant_id: Cow::Borrowed(&tenant),
                occurred_at_micros: now,
                source: if kind == Kind::Embedding { Source::Rag } else { Source::Gateway },
                kind,
                provider: Some(Cow::Borrowed(provider)),
                model: Some(Cow::Borrowed(model)),
                quantities: q,
                attributes: vec![(Cow::Borrowed("feature"), Cow::Borrowed("chat"))],
            };
            let mut bytes = Vec::with_capacity(160);
            meterline_core::avro::encode(&event, &mut bytes);
            (tenant.clone(), bytes)
        })
        .collect()
}
