//! Counting events into the spend ledger, once each.
//!
//! One transaction per batch inserts the batch's ids into
//! `budget_seen_events` (the primary key `(tenant_id, event_id)` is the
//! once-per-event rule, the rollup's key), adds the cost of the ids that
//! were new to `budget_spend`, and moves the stored offsets. A crash before
//! commit leaves nothing; a replay after commit finds every id already
//! seen and adds nothing. Several instances reading the same partitions
//! race on the primary key, and exactly one of them counts each event.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use meterline_core::intake::Priced;
use meterline_core::{Currency, EventCost};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgExecutor, Row};

use crate::BudgetServiceError;

/// Spend buckets are 15 minutes: every time zone's offset is a multiple of
/// that, so any tenant's month is a whole number of buckets.
pub const BUCKET_MICROS: i64 = 15 * 60 * 1_000_000;

/// What one batch did to the ledger.
#[derive(Debug, Default, PartialEq)]
pub struct Recorded {
    pub counted: usize,
    pub duplicates: usize,
    /// Tenants with newly counted events, sorted.
    pub tenants: Vec<String>,
}

pub fn bucket_start(occurred_at_micros: i64) -> DateTime<Utc> {
    let floor = occurred_at_micros.div_euclid(BUCKET_MICROS) * BUCKET_MICROS;
    Utc.timestamp_micros(floor).single().unwrap_or_default()
}

/// Records `events` (valid and priced, in consumption order) and moves the
/// offsets of `topic` to `next_offsets`, in the caller's transaction.
pub async fn record(
    tx: &mut PgConnection,
    topic: &str,
    events: &[Priced<'_>],
    next_offsets: &HashMap<i32, i64>,
) -> Result<Recorded, BudgetServiceError> {
    // First occurrence per id within the batch, then sorted by key so that
    // two instances inserting overlapping batches lock rows in one order.
    let mut first: BTreeMap<(&str, &str), &Priced<'_>> = BTreeMap::new();
    for p in events {
        first.entry((p.event.tenant_id.as_ref(), p.event.event_id.as_ref())).or_insert(p);
    }
    let mut recorded = Recorded { duplicates: events.len() - first.len(), ..Default::default() };
    if !first.is_empty() {
        let tenants: Vec<&str> = first.keys().map(|k| k.0).collect();
        let ids: Vec<&str> = first.keys().map(|k| k.1).collect();
        let times: Vec<DateTime<Utc>> =
            first.values().map(|p| Utc.timestamp_micros(p.event.occurred_at_micros).single().unwrap_or_default()).collect();
        let inserted = sqlx::query(
            "INSERT INTO budget_seen_events (tenant_id, event_id, occurred_at) \
             SELECT * FROM unnest($1::text[], $2::text[]::uuid[], $3::timestamptz[]) \
             ON CONFLICT DO NOTHING RETURNING tenant_id, event_id::text AS event_id",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&times)
        .fetch_all(&mut *tx)
        .await?;
        // The ids that were new, matched back to their events. Postgres
        // prints a uuid the way the decoder normalises it (lowercase,
        // hyphenated); an id that does not match would be counted as seen
        // without its cost, so it fails the transaction instead.
        let mut counted = Vec::with_capacity(inserted.len());
        for row in &inserted {
            let (tenant, id): (&str, &str) = (row.try_get("tenant_id")?, row.try_get("event_id")?);
            let p = first.get(&(tenant, id)).ok_or_else(|| {
                BudgetServiceError::Storage(meterline_storage::StorageError::InvalidData(format!(
                    "the ledger stored event id {id} that is not in the batch as written"
                )))
            })?;
            counted.push(*p);
        }
        recorded.counted = counted.len();
        recorded.duplicates += first.len() - counted.len();
        let spend = sum_spend(counted.into_iter());
        let mut touched: Vec<String> = spend.keys().map(|k| k.0.to_owned()).collect();
        touched.dedup();
        recorded.tenants = touched;
        add_spend(&mut *tx, &spend).await?;
    }
    store_offsets(&mut *tx, topic, next_offsets).await?;
    Ok(recorded)
}

/// Unpriced events are kept under [`Currency::NONE`]: they count as
/// events, never as money.
type SpendKey<'a> = (&'a str, Currency, DateTime<Utc>);

/// Adds up counted events per (tenant, currency, bucket): amount, events,
/// unpriced events. Keyed in a BTreeMap for a stable lock order.
fn sum_spend<'e>(counted: impl Iterator<Item = &'e Priced<'e>>) -> BTreeMap<SpendKey<'e>, (Decimal, i64, i64)> {
    let mut out: BTreeMap<SpendKey<'e>, (Decimal, i64, i64)> = BTreeMap::new();
    for p in counted {
        let bucket = bucket_start(p.event.occurred_at_micros);
        let (currency, amount, unpriced) = match &p.cost {
            EventCost::Priced { currency, amount } => (*currency, *amount, 0),
            EventCost::Unpriced { .. } => (Currency::NONE, Decimal::ZERO, 1),
        };
        let slot = out.entry((p.event.tenant_id.as_ref(), currency, bucket)).or_default();
        slot.0 += amount;
        slot.1 += 1;
        slot.2 += unpriced;
    }
    out
}

async fn add_spend<'e>(db: impl PgExecutor<'e>, spend: &BTreeMap<SpendKey<'_>, (Decimal, i64, i64)>) -> Result<(), BudgetServiceError> {
    let tenants: Vec<&str> = spend.keys().map(|k| k.0).collect();
    let currencies: Vec<&str> = spend.keys().map(|k| k.1.as_str()).collect();
    let buckets: Vec<DateTime<Utc>> = spend.keys().map(|k| k.2).collect();
    let amounts: Vec<Decimal> = spend.values().map(|v| v.0).collect();
    let events: Vec<i64> = spend.values().map(|v| v.1).collect();
    let unpriced: Vec<i64> = spend.values().map(|v| v.2).collect();
    sqlx::query(
        "INSERT INTO budget_spend (tenant_id, currency, bucket_start, amount, events, unpriced_events) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::numeric[], $5::int8[], $6::int8[]) \
         ON CONFLICT (tenant_id, currency, bucket_start) DO UPDATE SET \
           amount = budget_spend.amount + EXCLUDED.amount, \
           events = budget_spend.events + EXCLUDED.events, \
           unpriced_events = budget_spend.unpriced_events + EXCLUDED.unpriced_events",
    )
    .bind(&tenants)
    .bind(&currencies)
    .bind(&buckets)
    .bind(&amounts)
    .bind(&events)
    .bind(&unpriced)
    .execute(db)
    .await?;
    Ok(())
}

async fn store_offsets<'e>(db: impl PgExecutor<'e>, topic: &str, next: &HashMap<i32, i64>) -> Result<(), BudgetServiceError> {
    if next.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<(i32, i64)> = next.iter().map(|(p, o)| (*p, *o)).collect();
    sorted.sort_unstable();
    let partitions: Vec<i32> = sorted.iter().map(|x| x.0).collect();
    let offsets: Vec<i64> = sorted.iter().map(|x| x.1).collect();
    // GREATEST: an instance that lags behind another never moves it back.
    sqlx::query(
        "INSERT INTO budget_offsets (topic, partition, next_offset) \
         SELECT $1, * FROM unnest($2::int4[], $3::int8[]) \
         ON CONFLICT (topic, partition) DO UPDATE SET next_offset = GREATEST(budget_offsets.next_offset, EXCLUDED.next_offset)",
    )
    .bind(topic)
    .bind(&partitions)
    .bind(&offsets)
    .execute(db)
    .await?;
    Ok(())
}

/// Where to resume each partition of `topic`.
pub async fn stored_offsets<'e>(db: impl PgExecutor<'e>, topic: &str) -> Result<HashMap<i32, i64>, BudgetServiceError> {
    let rows = sqlx::query("SELECT partition, next_offset FROM budget_offsets WHERE topic = $1").bind(topic).fetch_all(db).await?;
    rows.iter().map(|r| Ok((r.try_get("partition")?, r.try_get("next_offset")?))).collect()
}

/// Forgets ids of events older than `before` (the start of the previous
/// month: duplicates arrive within their month), a slice at a time so no
/// transaction grows large. Returns how many were removed.
pub async fn prune_seen(pool: &sqlx::PgPool, before: DateTime<Utc>) -> Result<u64, BudgetServiceError> {
    let mut total = 0;
    loop {
        let n = sqlx::query(
            "DELETE FROM budget_seen_events WHERE ctid IN \
             (SELECT ctid FROM budget_seen_events WHERE occurred_at < $1 LIMIT 10000)",
        )
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected();
        total += n;
        if n < 10_000 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_floor_to_quarter_hours_even_before_1970() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T10:44:59.999999Z").unwrap();
        assert_eq!(bucket_start(t.timestamp_micros()).to_rfc3339(), "2026-11-23T10:30:00+00:00");
        assert_eq!(bucket_start(-1).to_rfc3339(), "1969-12-31T23:45:00+00:00");
    }
}
