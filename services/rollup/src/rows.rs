//! The ClickHouse rows of a counted batch: one `usage_events` row per
//! counted event, and the hourly deltas of `cost_hourly` keyed by where the
//! batch starts.

use std::collections::{HashMap, HashSet};

use meterline_core::intake::Priced;
use meterline_core::EventCost;
use meterline_storage::clickhouse::{CostKey, CostRow, EventRow};
use rust_decimal::Decimal;

use crate::count::{BatchStarts, GroupKey, Totals};
use crate::fast_hash::FastMap;

/// One `usage_events` row per counted event.
pub fn event_rows<'a>(counted: &[&'a Priced<'_>], now_secs: u32) -> Vec<EventRow<'a>> {
    counted
        .iter()
        .map(|p| {
            let e = &p.event;
            let q = e.quantities.0.map(|v| v.max(0) as u64);
            let (priced, currency, cost) = match &p.cost {
                EventCost::Priced { currency, amount } => (1, currency.as_str(), *amount),
                EventCost::Unpriced { .. } => (0, "", Decimal::ZERO),
            };
            EventRow {
                tenant_id: &e.tenant_id,
                event_id: &e.event_id,
                occurred_at: clamp_secs(e.occurred_at_micros.div_euclid(1_000_000)),
                occurred_at_micros: e.occurred_at_micros,
                source: e.source.as_str(),
                kind: e.kind.as_str(),
                provider: e.provider(),
                model: e.model(),
                input_tokens: q[0],
                output_tokens: q[1],
                cached_input_tokens: q[2],
                cache_write_tokens: q[3],
                embedding_tokens: q[4],
                vector_queries: q[5],
                requests: q[6],
                priced,
                currency,
                cost,
                attributes: &e.attributes,
                src_partition: p.partition,
                src_offset: p.offset,
                ingested_at: now_secs,
            }
        })
        .collect()
}

/// The hourly deltas of a batch, keyed by where each partition's batch
/// starts, plus a zero row for every key that a crashed attempt of the same
/// batch wrote and this attempt does not: it replaces that stale delta.
pub fn cost_rows(groups: &FastMap<GroupKey<'_>, Totals>, starts: &BatchStarts, stale: &HashMap<i32, Vec<CostKey>>) -> Vec<CostRow> {
    let mut rows: Vec<CostRow> = groups
        .iter()
        .map(|(k, t)| {
            let mut row = CostRow::zero(cost_key(k), k.partition, starts[&k.partition]);
            row.events = t.events;
            row.unpriced_events = t.unpriced_events;
            [
                row.input_tokens,
                row.output_tokens,
                row.cached_input_tokens,
                row.cache_write_tokens,
                row.embedding_tokens,
                row.vector_queries,
                row.requests,
            ] = t.quantities;
            row.cost = t.cost;
            row
        })
        .collect();
    for (partition, keys) in stale {
        let written: HashSet<CostKey> = rows.iter().filter(|r| r.src_partition == *partition).map(CostRow::key).collect();
        for key in keys {
            if !written.contains(key) {
                rows.push(CostRow::zero(key.clone(), *partition, starts[partition]));
            }
        }
    }
    rows
}

fn cost_key(k: &GroupKey<'_>) -> CostKey {
    CostKey {
        tenant_id: k.tenant.to_owned(),
        hour: clamp_secs(k.hour),
        provider: k.provider.to_owned(),
        model: k.model.to_owned(),
        source: k.source.as_str().to_owned(),
        kind: k.kind.as_str().to_owned(),
        currency: k.currency.map(|c| c.as_str().to_owned()).unwrap_or_default(),
    }
}

/// ClickHouse `DateTime` is an unsigned 32-bit second count; validation has
/// already refused times before 1970 and far in the future.
fn clamp_secs(secs: i64) -> u32 {
    secs.clamp(0, u32::MAX as i64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::aggregate;
    use crate::count::fixtures::priced;

    #[test]
    fn each_counted_event_gets_one_row_with_where_it_was_read_and_when() {
        let events = [priced(0, 10, "t", "a", "1"), priced(1, 20, "u", "b", "2")];
        let refs: Vec<_> = events.iter().collect();
        let rows = event_rows(&refs, 7);
        let got: Vec<_> = rows.iter().map(|r| (r.event_id, r.src_partition, r.src_offset, r.ingested_at, r.priced)).collect();
        assert_eq!(got, vec![("a", 0, 10, 7, 1), ("b", 1, 20, 7, 1)]);
    }

    #[test]
    fn deltas_are_keyed_by_batch_start_and_stale_keys_are_zeroed() {
        let events = [priced(0, 10, "t", "a", "1"), priced(1, 20, "u", "b", "2")];
        let refs: Vec<_> = events.iter().collect();
        let groups = aggregate(&refs);
        let starts: BatchStarts = [(0, 10), (1, 20)].into_iter().collect();
        let mut stale_key = cost_rows(&groups, &starts, &HashMap::new())[0].key();
        stale_key.model = "gone".into();
        let written_key = cost_rows(&groups, &starts, &HashMap::new()).into_iter().find(|r| r.src_partition == 0).unwrap().key();
        let stale = HashMap::from([(0, vec![stale_key.clone(), written_key])]);
        let rows = cost_rows(&groups, &starts, &stale);
        assert_eq!(rows.len(), 3, "two deltas and one zero row");
        let zero = rows.iter().find(|r| r.key() == stale_key).unwrap();
        assert_eq!((zero.src_partition, zero.batch_start, zero.events, zero.cost), (0, 10, 0, Decimal::ZERO));
        assert!(rows.iter().all(|r| r.batch_start == starts[&r.src_partition]));
    }
}
