//! What a batch counts, decided without I/O: which priced events count
//! (`dedupe`: the first of each id, unless stored earlier), their
//! `usage_events` rows, and the hourly totals they add (`aggregate`). The
//! pipeline looks the stored ids up and writes the rows; [`count`] is the
//! pure step between, unit-tested here and benchmarked in-process
//! (`meterline-bench inprocess`). Decoding, validating and pricing come
//! before it, from `meterline_core::intake`, shared with the budget service.

mod aggregate;
mod dedupe;

use meterline_core::intake::Priced;
use meterline_storage::clickhouse::EventRow;

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
    /// One `usage_events` row per counted event.
    pub events: Vec<EventRow<'e>>,
    /// The hourly totals of the counted events.
    pub groups: FastMap<GroupKey<'e>, Totals>,
}

/// Dedupes `priced` against `stored` (see [`dedupe`]), builds the counted
/// events' rows (ingested at `now_secs`) and sums them per hour.
pub fn count<'e, 'a>(priced: &'e [Priced<'a>], starts: &BatchStarts, stored: &Stored<'_>, now_secs: u32) -> Counted<'e, 'a> {
    let (counted, duplicates) = dedupe(priced, starts, stored);
    let events = crate::rows::event_rows(&counted, now_secs);
    let groups = aggregate(&counted);
    Counted { counted, duplicates, events, groups }
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
    fn rows_and_totals_cover_exactly_the_counted_events() {
        let events = [priced(0, 10, "t", "a", "1"), priced(0, 11, "t", "a", "1"), priced(0, 12, "t", "b", "2")];
        let starts: BatchStarts = [(0, 10)].into_iter().collect();
        let stored: Stored<'_> = HashMap::from([(("t", "b"), vec![(0, 2)])]);
        let c = count(&events, &starts, &stored, 7);
        assert_eq!((c.counted.len(), c.duplicates), (1, 2));
        assert_eq!(c.events.iter().map(|r| (r.event_id, r.src_offset, r.ingested_at)).collect::<Vec<_>>(), vec![("a", 10, 7)]);
        assert_eq!(c.groups.values().map(|t| t.events).sum::<u64>(), 1);
    }
}
