//! Decode throughput of the hand-written fast path against the apache-avro
//! reference, on one core, over 1 M distinct typical events.
//!
//! `cargo run --release -p meterline-core --example avro_decode_bench`
//! (add `-- --fast-only` to skip the slow reference, e.g. under `perf`).
//!
//! Machines are shared and noisy: read the ratio of the two figures from one
//! run, not absolute rates across days.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Instant;

use meterline_core::avro::{self, Codec};
use meterline_core::{Kind, Quantities, Source, Unit, UsageEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const EVENTS: usize = 1_000_000;

/// Events shaped like the load generator's: a UUID, a short tenant, provider
/// and model, a few quantities and two attributes.
fn payloads() -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(7);
    let models = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4"), ("openai", "text-embedding-3-small")];
    let features = ["search", "chat", "summarize", "support-bot"];
    (0..EVENTS)
        .map(|_| {
            let (provider, model) = models[rng.gen_range(0..models.len())];
            let mut q = Quantities::default();
            q[Unit::InputToken] = rng.gen_range(10..20_000);
            q[Unit::OutputToken] = rng.gen_range(0..4_000);
            q[Unit::CachedInputToken] = rng.gen_range(0..2_000);
            q[Unit::Request] = 1;
            let user = format!("user-{}", rng.gen_range(1..500));
            let event = UsageEvent {
                event_id: Cow::Owned(uuid::Builder::from_random_bytes(rng.gen()).into_uuid().hyphenated().to_string()),
                tenant_id: Cow::Owned(format!("tenant-{:03}", rng.gen_range(0..200))),
                occurred_at_micros: 1_794_000_000_000_000 + rng.gen_range(0..2_600_000_000_000),
                source: Source::Gateway,
                kind: Kind::Chat,
                provider: Some(Cow::Borrowed(provider)),
                model: Some(Cow::Borrowed(model)),
                quantities: q,
                attributes: vec![
                    (Cow::Borrowed("feature"), Cow::Borrowed(features[rng.gen_range(0..features.len())])),
                    (Cow::Borrowed("user"), Cow::Owned(user)),
                ],
            };
            let mut out = Vec::with_capacity(160);
            avro::encode(&event, &mut out);
            out
        })
        .collect()
}

/// Runs `decode` over every payload, `rounds` times; returns events per second.
fn measure(payloads: &[Vec<u8>], rounds: usize, mut decode: impl FnMut(&[u8]) -> i64) -> f64 {
    let start = Instant::now();
    let mut sum = 0i64;
    for _ in 0..rounds {
        for p in payloads {
            sum = sum.wrapping_add(decode(black_box(p)));
        }
    }
    black_box(sum);
    (payloads.len() * rounds) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let payloads = payloads();
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    println!("{EVENTS} events, {:.1} bytes each on average", bytes as f64 / EVENTS as f64);
    let codec = Codec::new();

    // Best of three: the first pass also warms caches and the allocator.
    let fast = (0..3)
        .map(|_| {
            measure(&payloads, 1, |p| match codec.decode(p) {
                Ok(e) => e.quantities[Unit::InputToken] + e.attributes.len() as i64,
                Err(e) => panic!("fast decode failed: {e}"),
            })
        })
        .fold(0.0, f64::max);
    // The same 1 M decodes over 4096 payloads that stay in cache: the
    // decoder's own cost, without streaming 1 M payloads from memory.
    let hot = &payloads[..4096];
    let fast_hot = (0..3)
        .map(|_| {
            measure(hot, EVENTS / hot.len(), |p| match codec.decode(p) {
                Ok(e) => e.quantities[Unit::InputToken] + e.attributes.len() as i64,
                Err(e) => panic!("fast decode failed: {e}"),
            })
        })
        .fold(0.0, f64::max);
    println!("fast decode      {:>12.0} events/s  ({:.0} ns/event)", fast, 1e9 / fast);
    println!("  in cache       {:>12.0} events/s  ({:.0} ns/event)", fast_hot, 1e9 / fast_hot);
    if std::env::args().any(|a| a == "--fast-only") {
        return;
    }
    let reference = measure(&payloads, 1, |p| match codec.decode_reference(p) {
        Ok(e) => e.quantities[Unit::InputToken] + e.attributes.len() as i64,
        Err(e) => panic!("reference decode failed: {e}"),
    });
    println!("reference decode {:>12.0} events/s  ({:.0} ns/event)", reference, 1e9 / reference);
    println!("ratio            {:>12.1}x", fast / reference);
}
