//! What a batch counts, decided without I/O: which priced events count
//! (`dedupe`: the first of each id, unless stored earlier) and the hourly
//! totals they add (`aggregate`). The pipeline looks the stored ids up,
//! and `rows` turns what is counted into ClickHouse rows; [`count`] is the
//! pure step between, unit-tested here and benchmarked in-process
//! (`meterline-bench inprocess`). Decoding, validating and pricing come
//! before it, from `meterline_core::intake`, shared with the budget service.

mod aggregate;
mod dedupe;

use meterline_core::intake::Priced;

pub use aggregate::{aggregate, GroupKey, Totals};
pub use dedupe::{dedupe, lookup_keys, stored_places, Stored};

use crate::fast_hash::FastMap;

/// Where a batch of one partition starts: the offset its rollup rows are
/// keyed by.
pub type BatchStarts = FastMap<i32, i64>;

/// What a batch counts, given what is stored.
pub struct Counted<'e, 'a> {
    /// The events counted, in batch order.
    pub counted: Vec<&'e Priced<'a>>,
    /// Events of the batch that are not counted: seen earlier in the batch
    /// or stored before it.
    pub duplicates: usize,
    /// The hourly totals of the counted events.
    pub groups: FastMap<GroupKey<'e>, Totals>,
}

/// Dedupes `priced` against `stored` (see [`dedupe`]) and sums the counted
/// events per hour. Their rows are `rows`' to build, from `counted`.
pub fn count<'e, 'a>(priced: &'e [Priced<'a>], starts: &BatchStarts, stored: &Stored<'_>) -> Counted<'e, 'a> {
    let (counted, duplicates) = dedupe(priced, starts, stored);
    let groups = aggregate(&counted);
    Counted { counted, duplicates, groups }
}

#[cfg(test)]
pub(crate) mod fixtures {
    use std::borrow::Cow;
    use std::str::FromStr;

    use meterline_core::intake::Priced;
    use meterline_core::{Currency, EventCost, Kind, Quantities, Source, Unit, UsageEvent};
    use rust_decimal::Decimal;

    /// A chat event of 100 input tokens costing `cost` USD, read at
    /// `partition`/`offset`.
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
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::fixtures::priced;
    use super::*;

    #[test]
    fn the_counted_events_and_their_totals_leave_out_every_duplicate() {
        let events = [priced(0, 10, "t", "a", "1"), priced(0, 11, "t", "a", "1"), priced(0, 12, "t", "b", "2")];
        let starts: BatchStarts = [(0, 10)].into_iter().collect();
        let stored: Stored<'_> = HashMap::from([(("t", "b"), vec![(0, 2)])]);
        let c = count(&events, &starts, &stored);
        assert_eq!((c.counted.len(), c.duplicates), (1, 2));
        assert_eq!(c.counted.iter().map(|p| (p.event.event_id.as_ref(), p.offset)).collect::<Vec<_>>(), vec![("a", 10)]);
        assert_eq!(c.groups.values().map(|t| t.events).sum::<u64>(), 1);
    }
}
