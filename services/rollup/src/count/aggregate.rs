//! The hourly rollup of the events a batch counts.

use meterline_core::intake::Priced;
use meterline_core::period::hour_start_secs;
use meterline_core::{Currency, EventCost, Kind, Source};
use rust_decimal::Decimal;

use crate::fast_hash::FastMap;

/// Grouping of the hourly rollup, borrowing from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey<'a> {
    pub partition: i32,
    pub tenant: &'a str,
    pub hour: i64,
    pub provider: &'a str,
    pub model: &'a str,
    pub source: Source,
    pub kind: Kind,
    /// `None` for unpriced events.
    pub currency: Option<Currency>,
}

/// What a group adds up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub events: u64,
    pub unpriced_events: u64,
    pub quantities: [u64; 7],
    pub cost: Decimal,
}

/// Sums counted events per group. Exact: decimal addition never rounds at
/// these magnitudes, and an overflow would be reported by the rows'
/// conversion rather than wrapped.
/// Keys borrow from the priced events (`'e`), which own or borrow the
/// strings, so grouping allocates nothing per event.
pub fn aggregate<'e>(counted: &[&'e Priced<'_>]) -> FastMap<GroupKey<'e>, Totals> {
    let mut groups: FastMap<GroupKey<'e>, Totals> = FastMap::default();
    for &p in counted {
        let e = &p.event;
        let (currency, cost) = match p.cost {
            EventCost::Priced { currency, amount } => (Some(currency), amount),
            EventCost::Unpriced { .. } => (None, Decimal::ZERO),
        };
        let key = GroupKey {
            partition: p.partition,
            tenant: &e.tenant_id,
            hour: hour_start_secs(e.occurred_at_micros),
            provider: e.provider(),
            model: e.model(),
            source: e.source,
            kind: e.kind,
            currency,
        };
        let t = groups.entry(key).or_default();
        t.events += 1;
        if currency.is_none() {
            t.unpriced_events += 1;
        }
        for (slot, q) in t.quantities.iter_mut().zip(e.quantities.0) {
            // Validation rejected negative quantities.
            *slot = slot.saturating_add(q as u64);
        }
        t.cost += cost;
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::fixtures::priced;
    use meterline_core::Unit;
    use std::str::FromStr;

    #[test]
    fn aggregation_is_exact_and_grouped_by_hour_and_model() {
        let mut late = priced(0, 3, "t", "c", "0.000000000000000003");
        late.event.occurred_at_micros -= 3_600_000_000;
        let events = [priced(0, 1, "t", "a", "0.1"), priced(0, 2, "t", "b", "0.2"), late];
        let refs: Vec<&Priced<'_>> = events.iter().collect();
        let groups = aggregate(&refs);
        assert_eq!(groups.len(), 2);
        let now_hour = groups.iter().find(|(k, _)| k.hour == hour_start_secs(1_794_000_000_000_000)).unwrap().1;
        assert_eq!(now_hour.events, 2);
        assert_eq!(now_hour.cost, Decimal::from_str("0.3").unwrap());
        assert_eq!(now_hour.quantities[Unit::InputToken.index()], 200);
    }

    #[test]
    fn unpriced_events_are_grouped_apart_and_flagged() {
        let mut e = priced(0, 1, "t", "a", "0");
        e.cost = EventCost::Unpriced { missing: Unit::InputToken };
        let refs = [&e];
        let groups = aggregate(&refs);
        let (k, t) = groups.iter().next().unwrap();
        assert_eq!(k.currency, None);
        assert_eq!((t.events, t.unpriced_events), (1, 1));
    }
}
