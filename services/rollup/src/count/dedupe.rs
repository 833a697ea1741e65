//! Which events of a batch count: the first occurrence of each
//! `(tenant, event_id)`, unless an earlier one is stored.

use std::collections::{BTreeSet, HashMap};

use meterline_core::intake::Priced;
use meterline_storage::clickhouse::SeenEvent;

use super::BatchStarts;
use crate::fast_hash::FastSet;

/// Where `usage_events` already holds each `(tenant, event_id)` of a batch:
/// the `(partition, offset)` it was read from, per stored row.
pub type Stored<'s> = HashMap<(&'s str, &'s str), Vec<(i32, i64)>>;

/// Groups the rows a lookup found by `(tenant, event_id)`.
pub fn stored_places(seen: &[SeenEvent]) -> Stored<'_> {
    let mut stored: Stored<'_> = HashMap::new();
    for s in seen {
        stored.entry((s.tenant_id.as_str(), s.event_id.as_str())).or_default().push((s.src_partition, s.src_offset));
    }
    stored
}

/// Splits priced events into those counted by this batch and duplicates.
///
/// An occurrence is counted iff it is the first of its `(tenant, event_id)`
/// in the batch and no earlier occurrence is stored. `stored` holds what
/// `usage_events` knows of the batch's ids as `(partition, offset)`; a
/// stored row inside this batch's own range of the same partition is a
/// crashed attempt of this very batch, not an earlier occurrence, so it does
/// not make the event a duplicate.
pub fn dedupe<'e, 'a>(events: &'e [Priced<'a>], starts: &BatchStarts, stored: &Stored<'_>) -> (Vec<&'e Priced<'a>>, usize) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::fixtures::priced;

    fn counted_ids(events: &[Priced<'static>], starts: &BatchStarts, stored: &Stored<'_>) -> (Vec<i64>, usize) {
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
    fn stored_rows_are_grouped_by_tenant_and_id() {
        let row = |tenant: &str, id: &str, src_partition, src_offset| SeenEvent {
            tenant_id: tenant.into(),
            event_id: id.into(),
            src_partition,
            src_offset,
        };
        let seen = [row("t", "a", 0, 3), row("t", "a", 1, 9), row("u", "a", 0, 4)];
        let stored = stored_places(&seen);
        assert_eq!(stored[&("t", "a")], vec![(0, 3), (1, 9)]);
        assert_eq!(stored[&("u", "a")], vec![(0, 4)]);
    }
}
