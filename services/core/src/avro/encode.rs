//! Writes usage events in the current schema (v2), single-object encoded.

use super::schema::current_fingerprint;
use crate::usage::{Unit, UsageEvent};

/// Appends the single-object encoding of `event` to `out`.
pub fn encode(event: &UsageEvent<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xC3, 0x01]);
    out.extend_from_slice(&current_fingerprint().to_le_bytes());
    put_str(out, &event.event_id);
    put_str(out, &event.tenant_id);
    put_long(out, event.occurred_at_micros);
    put_long(out, event.source as i64);
    put_long(out, event.kind as i64);
    put_optional_str(out, event.provider.as_deref());
    put_optional_str(out, event.model.as_deref());
    for unit in Unit::ALL {
        put_long(out, event.quantities[unit]);
    }
    if !event.attributes.is_empty() {
        put_long(out, event.attributes.len() as i64);
        for (k, v) in &event.attributes {
            put_str(out, k);
            put_str(out, v);
        }
    }
    put_long(out, 0);
}

fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z > 0x7F {
        out.push((z as u8 & 0x7F) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

fn put_optional_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_long(out, 0),
        Some(s) => {
            put_long(out, 1);
            put_str(out, s);
        }
    }
}
