//! The intake every consumer of usage events shares: decode, validate and
//! price one batch of Kafka messages. The rollup and the budget service both
//! run exactly this, so they can never price an event differently.

use crate::avro::Codec;
use crate::{price_event, validate, EventCost, PriceBook, UsageEvent, ValidationPolicy};

/// One consumed Kafka message, borrowed from the batch.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

/// A decoded, valid, priced event and where it was read.
#[derive(Debug, Clone)]
pub struct Priced<'a> {
    pub partition: i32,
    pub offset: i64,
    pub event: UsageEvent<'a>,
    pub cost: EventCost,
}

/// A message that cannot be counted, with its stable reason code.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Index into the batch's messages.
    pub index: usize,
    pub reason: &'static str,
    pub detail: String,
}

/// Decodes, validates and prices every message of a batch, in order.
pub fn prepare<'a>(
    codec: &Codec,
    book: &PriceBook,
    policy: &ValidationPolicy,
    now_micros: i64,
    messages: &[Message<'a>],
) -> (Vec<Priced<'a>>, Vec<Rejected>) {
    let mut priced = Vec::with_capacity(messages.len());
    let mut rejected = Vec::new();
    for (index, m) in messages.iter().enumerate() {
        let Some(payload) = m.payload else {
            rejected.push(Rejected { index, reason: "empty_payload", detail: "message has no value".into() });
            continue;
        };
        let event = match codec.decode(payload) {
            Ok(e) => e,
            Err(e) => {
                rejected.push(Rejected { index, reason: e.code(), detail: e.to_string() });
                continue;
            }
        };
        if let Err(e) = validate(&event, policy, now_micros) {
            rejected.push(Rejected { index, reason: e.code(), detail: e.to_string() });
            continue;
        }
        let cost = price_event(book, &event);
        priced.push(Priced { partition: m.partition, offset: m.offset, event, cost });
    }
    (priced, rejected)
}
