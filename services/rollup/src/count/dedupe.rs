//! The pure heart of the rollup: decode, validate, price, dedupe and
//! aggregate one batch. No I/O, so it is unit-tested here and benchmarked
//! in-process (`examples/inprocess_bench.rs`).

use std::collections::{BTreeSet, HashMap, HashSet};

use meterline_core::period::hour_start_secs;
use meterline_core::{Currency, EventCost, Kind, Source};
use rust_decimal::Decimal;

pub use meterline_core::intake::{prepare, Message, Priced, Rejected};

/// Where a batch of one partition starts: the offset its rollup rows are
/// keyed by.
pub type BatchStarts = FastMap<i32, i64>;

/// Hash maps for the per-event work (dedupe within a batch, grouping,
/// per-partition bookkeeping): SipHash, the standard one, was ~8 % of the
/// rollup's CPU. foldhash is seeded per process, so crafted ids cannot aim
/// at collisions offline.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// Splits priced events into those counted by this batch and duplicates.
///
/// An occurrence is counted iff it is the first of its `(tenant, event_id)`
/// in the batch and no earlier occurrence is stored. `stored` holds what
/// `usage_events` knows of the batch's ids as `(partition, offset)`; a
/// stored row inside this batch's own range of the same partition is a
/// crashed attempt of this very batch, not an earlier occurrence, so it does
/// not make the event a duplicate.
pub fn dedupe<'e, 'a>(
    events: &'e [Priced<'a>],
    starts: &BatchStarts,
    stored: &HashMap<(&str, &str), Vec<(i32, i64)>>,
) -> (Vec<&'e Priced<'a>>, usize) {
    let mut seen_in_batch: FastSet<(&str, &str)> = FastSet::with_capacity_and_hasher(events.len(), Default::default());
    let mut counted = Vec::with_capacity(events.len());
    let mut duplicates = 0;
    for p in events {
        let id = (p.event.tenant_id.as_ref(), p.event.event_id.as_ref());
        let earlier_stored = stored
            .get(&id)
            .is_some_and(|places| places.iter().any(|&(part, off)| !(part == p.partition && starts.get(&part).is_some_and(|&s| off >= s))));
        if earlier_stored || !seen_in_batch.insert(id) {
            duplicates += 1;
        } else {
            counted.push(p);
        }
    }
    (counted, duplicates)
}

/// The ids a batch must look up, with the tenants and months to prune by.
pub fn lookup_keys<'e>(events: &'e [Priced<'_>]) -> (BTreeSet<&'e str>, Vec<&'e str>, BTreeSet<u32>) {
    // Hashed per event, sorted once: tenants are few and events many.
    let mut tenants = FastSet::default();
    let mut ids = Vec::with_capacity(events.len());
    let mut months = FastSet::default();
    for p in events {
        tenants.insert(p.event.tenant_id.as_ref());
        ids.push(p.event.event_id.as_ref());
        months.insert(yyyymm(p.event.occurred_at_micros));
    }
    (tenants.into_iter().collect(), ids, months.into_iter().collect())
}

fn yyyymm(micros: i64) -> u32 {
    use chrono::Datelike;
    let t = meterline_core::period::micros_to_datetime(micros).unwrap_or_default();
    t.year() as u32 * 100 + t.month()
}

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
/// these magnitudes, and an overflow would be reported by the sink's
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
pub(crate) mod tests {
    use super::*;
    use meterline_core::{Quantities, Unit, UsageEvent};
    use std::borrow::Cow;
    use std::str::FromStr;

    pub(crate) fn priced(partition: i32, offset: i64, tenant: &'static str, id: &'static str, cost: &str) -> Priced<'static> {
        let mut q = Quantities::default();
        q[Unit::InputToken] = 100;
        Priced {
            partition,
            offset,
            event: UsageEvent {
                event_id: Cow::Borrowed(id),
                tenant_id: Cow::Borrowed(tenant),
                occurred_at_micros: 1_794_000_000_000_000,
                source: Source::Gateway,
                kind: Kind::Chat,
                provider: Some(Cow::Borrowed("openai")),
                model: Some(Cow::Borrowed("gpt-4o")),
                quantities: q,
                attributes: vec![],
            },
            cost: EventCost::Priced { currency: Currency::USD, amount: Decimal::from_str(cost).unwrap() },
        }
    }

    fn counted_ids(events: &[Priced<'static>], starts: &BatchStarts, stored: &HashMap<(&str, &str), Vec<(i32, i64)>>) -> (Vec<i64>, usize) {
        let (counted, dups) = dedupe(events, starts, stored);
        (counted.iter().map(|p| p.offset).collect(), dups)
    }

    #[test]
    fn the_first_occurrence_in_a_batch_counts() {
        let events = [priced(0, 10, "t", "a", "1"), priced(0, 11, "t", "a", "1"), priced(0, 12, "u", "a", "1")];
        let starts = [(0, 10)].into_iter().collect();
        assert_eq!(counted_ids(&events, &starts, &HashMap::new()), (vec![10, 12], 1));
    }

    #[test]
    fn an_event_stored_earlier_is_a_duplicate_but_a_crashed_attempt_of_this_batch_is_not() {
        let events = [priced(0, 10, "t", "a", "1"), priced(0, 11, "t", "b", "1"), priced(0, 12, "t", "c", "1")];
        let starts = [(0, 10)].into_iter().collect();
        let stored = HashMap::from([
            // Stored from an earlier batch of this partition.
            (("t", "a"), vec![(0, 3)]),
            // Stored by a crashed attempt of this very batch.
            (("t", "b"), vec![(0, 11)]),
            // Stored from another partition.
            (("t", "c"), vec![(1, 50)]),
        ]);
        assert_eq!(counted_ids(&events, &starts, &stored), (vec![11], 2));
    }

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
