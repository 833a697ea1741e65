//! The traffic itself: deterministic for a seed, with a realistic mix of
//! gateway and RAG requests, duplicates and malformed messages.

use std::borrow::Cow;

use meterline_core::{avro, EventId, Kind, Month, Quantities, Source, Unit, UsageEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::LoadgenArgs;

/// One message to send.
#[derive(Debug, Clone)]
pub enum Item {
    /// A new, valid event (sent through the SDK's validating `emit`).
    Event { event: UsageEvent<'static> },
    /// The exact bytes of an event sent before.
    Duplicate { key: String, payload: Vec<u8> },
    /// A message the rollup must dead-letter, with the reason it will give.
    Malformed { reason: &'static str, key: String, payload: Vec<u8> },
}

/// Past events kept for duplicates: a bounded reservoir, so memory does not
/// grow with the length of the run.
const RESERVOIR: usize = 10_000;

/// The time part of the first generated id (2026-01-01T00:00:00Z); each
/// event's id is a millisecond later than the one before.
const ID_EPOCH_MILLIS: u64 = 1_767_225_600_000;

const GATEWAY_MODELS: [(&str, &str); 5] = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-sonnet"),
    ("anthropic", "claude-3-5-haiku"),
    ("google", "gemini-1.5-flash"),
];
const FEATURES: [&str; 4] = ["chat", "search", "summarize", "agent"];

pub struct Generator {
    rng: StdRng,
    tenants: usize,
    remaining: u64,
    duplicate_ratio: f64,
    malformed_ratio: f64,
    month: Option<Month>,
    reservoir: Vec<(String, Vec<u8>)>,
    last: Option<(String, Vec<u8>)>,
    events_seen: u64,
}

impl Generator {
    pub fn new(args: &LoadgenArgs) -> Self {
        Self {
            rng: StdRng::seed_from_u64(args.seed),
            tenants: args.tenants,
            remaining: args.events,
            duplicate_ratio: args.duplicate_ratio,
            malformed_ratio: args.malformed_ratio,
            month: args.month,
            reservoir: Vec::new(),
            last: None,
            events_seen: 0,
        }
    }

    /// The next message, or `None` once every distinct event was produced.
    pub fn next_item(&mut self, now_micros: i64) -> Option<Item> {
        if self.remaining == 0 {
            return None;
        }
        let roll: f64 = self.rng.gen();
        if roll < self.malformed_ratio {
            return Some(self.malformed(now_micros));
        }
        if roll < self.malformed_ratio + self.duplicate_ratio {
            if let Some(item) = self.duplicate() {
                return Some(item);
            }
        }
        self.remaining -= 1;
        let event = self.event(now_micros);
        self.remember(&event);
        Some(Item::Event { event })
    }

    fn tenant(&mut self) -> String {
        format!("tenant-{:03}", self.rng.gen_range(1..=self.tenants))
    }

    fn occurred_at(&mut self, now: i64) -> i64 {
        match self.month {
            None => now,
            Some(m) => {
                let start = m.start().timestamp_micros();
                let end = m.end().timestamp_micros().min(now);
                if end <= start {
                    start
                } else {
                    self.rng.gen_range(start..end)
                }
            }
        }
    }

    fn event(&mut self, now: i64) -> UsageEvent<'static> {
        let tenant = self.tenant();
        let mut q = Quantities::default();
        let roll = self.rng.gen_range(0..100);
        let (source, kind, provider, model) = match roll {
            0..=64 => {
                let (p, m) = GATEWAY_MODELS[self.rng.gen_range(0..GATEWAY_MODELS.len())];
                let input = self.rng.gen_range(50..8_000);
                q[Unit::InputToken] = input;
                q[Unit::OutputToken] = self.rng.gen_range(10..2_000);
                if self.rng.gen_bool(0.3) {
                    q[Unit::CachedInputToken] = self.rng.gen_range(0..=input / 2);
                }
                if self.rng.gen_bool(0.1) {
                    q[Unit::CacheWriteToken] = self.rng.gen_range(1..1_000);
                }
                let kind = if roll < 60 { Kind::Chat } else { Kind::Completion };
                (Source::Gateway, kind, Some(p), Some(m))
            }
            65..=79 => {
                q[Unit::EmbeddingToken] = self.rng.gen_range(10..4_000);
                (Source::Rag, Kind::Embedding, Some("openai"), Some("text-embedding-3-small"))
            }
            80..=94 => {
                q[Unit::VectorQuery] = self.rng.gen_range(1..10);
                (Source::Rag, Kind::VectorSearch, Some("pgvector"), None)
            }
            _ => (Source::Rag, Kind::Rerank, Some("cohere"), Some("rerank-3.5")),
        };
        q[Unit::Request] = 1;
        let occurred_at_micros = self.occurred_at(now);
        // Time-ordered like the SDK's ids, but from the seed rather than the
        // clock: the same seed must give the same ids, so that a second run
        // is all duplicates.
        let id = EventId::time_ordered(ID_EPOCH_MILLIS + self.events_seen, self.rng.gen()).as_uuid();
        let feature = FEATURES[self.rng.gen_range(0..FEATURES.len())];
        let user = format!("user-{}", self.rng.gen_range(1..500));
        UsageEvent {
            event_id: Cow::Owned(id.hyphenated().to_string()),
            tenant_id: Cow::Owned(tenant),
            occurred_at_micros,
            source,
            kind,
            provider: provider.map(Cow::Borrowed),
            model: model.map(Cow::Borrowed),
            quantities: q,
            attributes: vec![(Cow::Borrowed("feature"), Cow::Borrowed(feature)), (Cow::Borrowed("user"), Cow::Owned(user))],
        }
    }

    fn remember(&mut self, event: &UsageEvent<'_>) {
        let mut payload = Vec::with_capacity(128);
        avro::encode(event, &mut payload);
        let entry = (event.tenant_id.to_string(), payload);
        self.events_seen += 1;
        // Reservoir sampling: every past event is equally likely to be kept.
        if self.reservoir.len() < RESERVOIR {
            self.reservoir.push(entry.clone());
        } else {
            let i = self.rng.gen_range(0..self.events_seen);
            if (i as usize) < RESERVOIR {
                self.reservoir[i as usize] = entry.clone();
            }
        }
        self.last = Some(entry);
    }

    /// Half the time the event just sent (an emitter retry), half the time
    /// one from much earlier in the run (a replayed log, a confused client).
    fn duplicate(&mut self) -> Option<Item> {
        let (key, payload) = if self.rng.gen_bool(0.5) {
            self.last.clone()?
        } else if self.reservoir.is_empty() {
            return None;
        } else {
            self.reservoir[self.rng.gen_range(0..self.reservoir.len())].clone()
        };
        Some(Item::Duplicate { key, payload })
    }

    fn malformed(&mut self, now: i64) -> Item {
        let mut event = self.event(now);
        let key = event.tenant_id.to_string();
        let encode = |e: &UsageEvent<'_>| {
            let mut out = Vec::new();
            avro::encode(e, &mut out);
            out
        };
        let (reason, payload) = match self.rng.gen_range(0..6) {
            0 => {
                let n = self.rng.gen_range(5..60);
                let mut bytes: Vec<u8> = (0..n).map(|_| self.rng.gen()).collect();
                bytes[0] = self.rng.gen_range(0..0xC3);
                ("not_single_object", bytes)
            }
            1 => {
                let mut bytes = encode(&event);
                let mut fp = [0u8; 8];
                self.rng.fill(&mut fp);
                fp[0] ^= 0x5A; // never the real fingerprint's first byte pattern by accident
                if u64::from_le_bytes(fp) == avro::current_fingerprint() {
                    fp[1] ^= 1;
                }
                bytes[2..10].copy_from_slice(&fp);
                ("unknown_schema", bytes)
            }
            2 => {
                let mut bytes = encode(&event);
                let cut = self.rng.gen_range(1..bytes.len() - 10);
                bytes.truncate(bytes.len() - cut);
                ("truncated", bytes)
            }
            3 => {
                event.quantities[Unit::OutputToken] = -self.rng.gen_range(1..100);
                ("negative_quantity", encode(&event))
            }
            4 => {
                event.tenant_id = Cow::Borrowed("");
                ("missing_tenant", encode(&event))
            }
            _ => {
                event.occurred_at_micros = now + 86_400_000_000;
                ("future_timestamp", encode(&event))
            }
        };
        Item::Malformed { reason, key, payload }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::Truth;
    use meterline_core::avro::Codec;
    use meterline_core::{validate, ValidationPolicy};

    fn args(seed: u64) -> LoadgenArgs {
        LoadgenArgs {
            tenants: 5,
            events: 3_000,
            rate: None,
            duplicate_ratio: 0.05,
            malformed_ratio: 0.02,
            seed,
            truth: "unused".into(),
            month: None,
            brokers: String::new(),
            topic: String::new(),
        }
    }

    fn run(seed: u64) -> Vec<Item> {
        let mut g = Generator::new(&args(seed));
        std::iter::from_fn(|| g.next_item(1_794_000_000_000_000)).collect()
    }

    #[test]
    fn a_seed_gives_the_same_traffic() {
        let a: Vec<String> = run(3).iter().map(|i| format!("{i:?}")).collect();
        let b: Vec<String> = run(3).iter().map(|i| format!("{i:?}")).collect();
        assert_eq!(a, b);
        let c: Vec<String> = run(4).iter().map(|i| format!("{i:?}")).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn a_seed_gives_the_same_time_ordered_ids_whenever_it_runs() {
        let ids = |now: i64| {
            let mut g = Generator::new(&args(3));
            std::iter::from_fn(|| g.next_item(now))
                .filter_map(|i| match i {
                    Item::Event { event } => Some(event.event_id.into_owned()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let first = ids(1_794_000_000_000_000);
        assert_eq!(first, ids(1_794_000_000_000_000 + 3_600_000_000), "an hour later");
        assert!(first.windows(2).all(|w| w[0] < w[1]), "ids sort in the order they were made");
    }

    #[test]
    fn every_item_is_what_it_claims_to_be() {
        let codec = Codec::new();
        let policy = ValidationPolicy::default();
        let now = 1_794_000_000_000_000;
        let items = run(9);
        let mut truth = Truth::default();
        let mut ids = std::collections::HashSet::new();
        for item in &items {
            truth.record(item);
            match item {
                Item::Event { event } => {
                    assert!(validate(event, &policy, now).is_ok());
                    assert!(ids.insert(event.event_id.to_string()), "distinct ids");
                }
                Item::Duplicate { payload, .. } => {
                    let e = codec.decode(payload).unwrap();
                    assert!(ids.contains(e.event_id.as_ref()), "a duplicate repeats a sent event");
                }
                Item::Malformed { reason, payload, .. } => {
                    let code = match codec.decode(payload) {
                        Err(e) => e.code(),
                        Ok(e) => validate(&e, &policy, now).unwrap_err().code(),
                    };
                    assert_eq!(code, *reason);
                }
            }
        }
        assert_eq!(truth.distinct_events, 3_000);
        let dup = truth.duplicates_sent as f64 / items.len() as f64;
        let bad = truth.malformed_sent as f64 / items.len() as f64;
        assert!((0.03..0.07).contains(&dup), "duplicate ratio {dup}");
        assert!((0.01..0.03).contains(&bad), "malformed ratio {bad}");
        let per_tenant: u64 = truth.tenants.values().map(|t| t.events).sum();
        let per_model: u64 = truth.tenants.values().flat_map(|t| t.models.values()).map(|m| m["events"]).sum();
        assert_eq!((per_tenant, per_model), (3_000, 3_000));
    }
}
