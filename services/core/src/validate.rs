//! Decides whether a decoded usage event may be priced and counted.
//!
//! Every rejection has a stable, short reason code: it is the dead-letter
//! header and the metric label, so its set must stay small and fixed.

use crate::ids::check_tenant;
use crate::usage::UsageEvent;

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    #[error("tenant_id is missing")]
    MissingTenant,
    #[error("tenant_id is invalid: {0}")]
    InvalidTenant(String),
    #[error("event_id {0:?} is not a UUID")]
    InvalidEventId(String),
    #[error("{field} is negative ({value})")]
    NegativeQuantity { field: &'static str, value: i64 },
    #[error("occurred_at is {ahead_secs}s in the future, more than the allowed {max_skew_secs}s")]
    FutureTimestamp { ahead_secs: i64, max_skew_secs: i64 },
    #[error("occurred_at {0} is before 1970")]
    TimestampBeforeEpoch(i64),
}

impl Rejection {
    /// Stable reason code for dead-letter headers and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::MissingTenant => "missing_tenant",
            Rejection::InvalidTenant(_) => "invalid_tenant",
            Rejection::InvalidEventId(_) => "invalid_event_id",
            Rejection::NegativeQuantity { .. } => "negative_quantity",
            Rejection::FutureTimestamp { .. } => "future_timestamp",
            Rejection::TimestampBeforeEpoch(_) => "timestamp_before_epoch",
        }
    }
}

/// What the validator tolerates.
#[derive(Debug, Clone, Copy)]
pub struct ValidationPolicy {
    /// How far `occurred_at` may lie ahead of the processor's clock; emitters'
    /// clocks drift, but an event from next month must not land in this one.
    pub max_future_skew_micros: i64,
}

impl Default for ValidationPolicy {
    fn default() -> Self {
        Self { max_future_skew_micros: 5 * 60 * 1_000_000 }
    }
}

/// Checks one event against `policy`, with `now_micros` the processor's clock.
pub fn validate(event: &UsageEvent<'_>, policy: &ValidationPolicy, now_micros: i64) -> Result<(), Rejection> {
    if event.tenant_id.is_empty() {
        return Err(Rejection::MissingTenant);
    }
    check_tenant(&event.tenant_id).map_err(|e| Rejection::InvalidTenant(e.to_string()))?;
    if !is_uuid(&event.event_id) {
        return Err(Rejection::InvalidEventId(event.event_id.to_string()));
    }
    for (unit, value) in event.quantities.iter() {
        if value < 0 {
            return Err(Rejection::NegativeQuantity { field: unit.field_name(), value });
        }
    }
    if event.occurred_at_micros < 0 {
        return Err(Rejection::TimestampBeforeEpoch(event.occurred_at_micros));
    }
    let ahead = event.occurred_at_micros.saturating_sub(now_micros);
    if ahead > policy.max_future_skew_micros {
        return Err(Rejection::FutureTimestamp { ahead_secs: ahead / 1_000_000, max_skew_secs: policy.max_future_skew_micros / 1_000_000 });
    }
    Ok(())
}

const HEX_DIGIT: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).is_ascii_hexdigit();
        i += 1;
    }
    t
};

/// A hyphenated UUID, either case, checked by hand: `Uuid::parse_str`
/// accepts several spellings, and the idempotency key must have exactly
/// one. Checked on every event the rollup reads, so a check per group of
/// hex digits: a per-byte `match` on the position took ~5 % of the
/// rollup's CPU.
fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    // Branch-free over each group: ids are almost always valid.
    let hex = |r: std::ops::Range<usize>| b[r].iter().fold(true, |ok, c| ok & HEX_DIGIT[usize::from(*c)]);
    b.len() == 36
        && b[8] == b'-'
        && b[13] == b'-'
        && b[18] == b'-'
        && b[23] == b'-'
        && hex(0..8)
        && hex(9..13)
        && hex(14..18)
        && hex(19..23)
        && hex(24..36)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{Kind, Quantities, Source, Unit};
    use std::borrow::Cow;

    fn event() -> UsageEvent<'static> {
        let mut q = Quantities::default();
        q[Unit::InputToken] = 10;
        UsageEvent {
            event_id: Cow::Borrowed("67e55044-10b1-426f-9247-bb680e5fe0c8"),
            tenant_id: Cow::Borrowed("acme"),
            occurred_at_micros: 1_700_000_000_000_000,
            source: Source::Gateway,
            kind: Kind::Chat,
            provider: Some(Cow::Borrowed("openai")),
            model: Some(Cow::Borrowed("gpt-4o")),
            quantities: q,
            attributes: vec![],
        }
    }

    const NOW: i64 = 1_700_000_000_000_000;

    #[test]
    fn uuids_are_told_from_near_misses() {
        let good = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        assert!(is_uuid(good));
        assert!(is_uuid(&good.to_uppercase()));
        assert!(!is_uuid(&good[..35]));
        assert!(!is_uuid(&format!("{good}0")));
        assert!(!is_uuid("67e5504410b1-426f-9247-bb680e5fe0c8-"));
        // A non-hex character in each group, and in place of each hyphen.
        for i in 0..36 {
            let mut bad = good.as_bytes().to_vec();
            bad[i] = if matches!(i, 8 | 13 | 18 | 23) { b'0' } else { b'g' };
            assert!(!is_uuid(std::str::from_utf8(&bad).unwrap()), "{i}");
        }
        assert!(!is_uuid("67e55044-10b1-426f-9247-bb680e5fe0cé"));
    }

    #[test]
    fn accepts_a_good_event() {
        assert_eq!(validate(&event(), &ValidationPolicy::default(), NOW), Ok(()));
    }

    #[test]
    fn rejects_each_kind_of_bad_event() {
        let p = ValidationPolicy::default();
        let mut e = event();
        e.tenant_id = Cow::Borrowed("");
        assert_eq!(validate(&e, &p, NOW).unwrap_err().code(), "missing_tenant");

        let mut e = event();
        e.event_id = Cow::Borrowed("42");
        assert_eq!(validate(&e, &p, NOW).unwrap_err().code(), "invalid_event_id");

        let mut e = event();
        e.quantities[Unit::OutputToken] = -1;
        assert_eq!(validate(&e, &p, NOW).unwrap_err().code(), "negative_quantity");

        let mut e = event();
        e.occurred_at_micros = NOW + p.max_future_skew_micros + 1;
        assert_eq!(validate(&e, &p, NOW).unwrap_err().code(), "future_timestamp");
        e.occurred_at_micros = NOW + p.max_future_skew_micros;
        assert!(validate(&e, &p, NOW).is_ok());
    }
}
