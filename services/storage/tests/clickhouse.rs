//! The ClickHouse adapter against the real local server (scripts/stack.sh
//! starts it): decimals survive exactly, replayed deltas replace instead of
//! adding, and the dedupe lookup finds stored events.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::str::FromStr;

use meterline_core::Month;
use meterline_storage::clickhouse::{
    hourly_costs, migrate, month_usage, stale_cost_keys, write_costs, write_events, ClickHouseConfig, CostKey, CostRow, EventRow,
    SeenLookup,
};
use rust_decimal::Decimal;

async fn fresh_db() -> ClickHouseConfig {
    let mut cfg = ClickHouseConfig::from_env();
    cfg.database = format!("mlt_storage_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    migrate(&cfg).await.expect("ClickHouse must be running: scripts/stack.sh up");
    cfg
}

const HOUR: u32 = 1_794_000_000 - 1_794_000_000 % 3600; // within November 2026

fn key(tenant: &str, model: &str) -> CostKey {
    CostKey {
        tenant_id: tenant.into(),
        hour: HOUR,
        provider: "openai".into(),
        model: model.into(),
        source: "gateway".into(),
        kind: "chat".into(),
        currency: "USD".into(),
    }
}

fn delta(k: CostKey, partition: i32, start: i64, events: u64, cost: &str) -> CostRow {
    let mut r = CostRow::zero(k, partition, start);
    r.events = events;
    r.cost = Decimal::from_str(cost).unwrap();
    r
}

fn month() -> Month {
    Month::containing(chrono::DateTime::from_timestamp(HOUR as i64, 0).unwrap())
}

#[tokio::test]
async fn a_replayed_batch_replaces_its_deltas() {
    let cfg = fresh_db().await;
    let c = cfg.client();
    // Batch (p0, 100) written once, then replayed with different contents
    // (a shorter batch) and a zero row for the key only the first had.
    write_costs(&c, &[delta(key("t1", "gpt-4o"), 0, 100, 3, "0.000000000000000001"), delta(key("t1", "gpt-4o-mini"), 0, 100, 2, "1")])
        .await
        .unwrap();
    write_costs(&c, &[delta(key("t1", "gpt-4o"), 0, 100, 2, "0.5")]).await.unwrap();
    let stale = stale_cost_keys(&c, 0, 100).await.unwrap();
    assert_eq!(stale.len(), 2);
    write_costs(&c, &[CostRow::zero(key("t1", "gpt-4o-mini"), 0, 100)]).await.unwrap();
    // Another batch adds.
    write_costs(&c, &[delta(key("t1", "gpt-4o"), 0, 200, 1, "0.25")]).await.unwrap();

    let usage = month_usage(&c, month(), None).await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].events, 3);
    assert_eq!(usage[0].cost, Decimal::from_str("0.75").unwrap());

    let hourly = hourly_costs(&c, "t1", HOUR as i64, HOUR as i64 + 3600).await.unwrap();
    assert_eq!(hourly.len(), 1, "{hourly:?}");
    assert_eq!(hourly[0].model, "gpt-4o");
}

#[tokio::test]
async fn money_round_trips_exactly_and_sums_exactly() {
    let cfg = fresh_db().await;
    let c = cfg.client();
    let amounts = ["0.000000000000000001", "12345678901.123456789012345678", "0.0000025"];
    let rows: Vec<CostRow> = amounts.iter().enumerate().map(|(i, a)| delta(key("t2", "gpt-4o"), 0, i as i64, 1, a)).collect();
    write_costs(&c, &rows).await.unwrap();
    let usage = month_usage(&c, month(), Some("t2")).await.unwrap();
    let expected: Decimal = amounts.iter().map(|a| Decimal::from_str(a).unwrap()).sum();
    assert_eq!(usage[0].cost, expected);
}

/// A priced chat event of `tenant` read at `offset` of partition 1.
fn event<'a>(tenant: &'a str, id: &'a str, offset: i64) -> EventRow<'a> {
    EventRow {
        tenant_id: tenant,
        event_id: id,
        occurred_at: HOUR,
        occurred_at_micros: HOUR as i64 * 1_000_000,
        source: "gateway",
        kind: "chat",
        provider: "openai",
        model: "gpt-4o",
        input_tokens: 1,
        output_tokens: 2,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
        embedding_tokens: 0,
        vector_queries: 0,
        requests: 1,
        priced: 1,
        currency: "USD",
        cost: Decimal::from_str("0.0000125").unwrap(),
        attributes: &[],
        src_partition: 1,
        src_offset: offset,
        ingested_at: HOUR,
    }
}

#[tokio::test]
async fn stored_events_are_found_by_tenant_and_id() {
    let cfg = fresh_db().await;
    let c = cfg.client();
    write_events(&c, &[event("t1", "a", 7), event("t2", "a", 8), event("t1", "b", 9)]).await.unwrap();
    let months: BTreeSet<u32> = [month().yyyymm()].into();
    let seen = SeenLookup::new(&cfg).lookup(&["t1"].into(), &["a", "c", "o'clock"], &months).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].src_partition, seen[0].src_offset), (1, 7));
    let none = SeenLookup::new(&cfg).lookup(&["t1"].into(), &["a"], &[202001].into()).await.unwrap();
    assert!(none.is_empty(), "other months are not searched");
}

#[tokio::test]
async fn a_rebuild_interrupted_while_swapping_tables_loses_no_rows() {
    let cfg = fresh_db().await;
    let c = cfg.client();
    write_events(&c, &[event("t1", "a", 1), event("t2", "b", 2)]).await.unwrap();
    // The first half of a rebuild's two-table RENAME, and no record of the
    // migrations (so that all of them run again, the rebuilds included).
    for sql in [
        "CREATE TABLE usage_events_rebuild AS usage_events",
        "RENAME TABLE usage_events TO usage_events_before_0005",
        "DROP TABLE schema_migrations",
    ] {
        c.query(sql).execute().await.unwrap();
    }
    migrate(&cfg).await.unwrap();
    let count: u64 = c.query("SELECT count() FROM usage_events").fetch_one().await.unwrap();
    assert_eq!(count, 2);
    let left: u64 = c
        .query("SELECT count() FROM system.tables WHERE database = ? AND name != 'usage_events' AND startsWith(name, 'usage_events')")
        .bind(&cfg.database)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(left, 0, "no side table is left behind");
}

/// Every column of `usage_events` as stored, owned, in table order.
#[derive(Debug, PartialEq, clickhouse::Row, serde::Deserialize)]
struct StoredEvent {
    tenant_id: String,
    event_id: String,
    occurred_at: u32,
    occurred_at_micros: i64,
    source: String,
    kind: String,
    provider: String,
    model: String,
    quantities: (u64, u64, u64, u64, u64, u64, u64),
    priced: u8,
    currency: String,
    #[serde(with = "meterline_storage::decimal::scaled")]
    cost: Decimal,
    attribute_keys: Vec<String>,
    attribute_values: Vec<String>,
    src_partition: i32,
    src_offset: i64,
    ingested_at: u32,
}

impl From<&EventRow<'_>> for StoredEvent {
    fn from(r: &EventRow<'_>) -> Self {
        Self {
            tenant_id: r.tenant_id.into(),
            event_id: r.event_id.into(),
            occurred_at: r.occurred_at,
            occurred_at_micros: r.occurred_at_micros,
            source: r.source.into(),
            kind: r.kind.into(),
            provider: r.provider.into(),
            model: r.model.into(),
            quantities: (
                r.input_tokens,
                r.output_tokens,
                r.cached_input_tokens,
                r.cache_write_tokens,
                r.embedding_tokens,
                r.vector_queries,
                r.requests,
            ),
            priced: r.priced,
            currency: r.currency.into(),
            cost: r.cost,
            attribute_keys: r.attributes.iter().map(|(k, _)| k.to_string()).collect(),
            attribute_values: r.attributes.iter().map(|(_, v)| v.to_string()).collect(),
            src_partition: r.src_partition,
            src_offset: r.src_offset,
            ingested_at: r.ingested_at,
        }
    }
}

/// Events go in as Native blocks, column by column and sorted: every column
/// of every row must come back as written, with and without LZ4 on the wire.
#[tokio::test]
async fn every_column_of_an_event_round_trips() {
    for lz4 in [false, true] {
        let mut cfg = fresh_db().await;
        cfg.lz4 = lz4;
        // A length that takes a two-byte varint, escapes, non-ASCII, empty.
        let attributes = [
            (Cow::Borrowed("feature"), Cow::Borrowed("chat\twith\ntabs")),
            (Cow::Borrowed("user"), Cow::Owned("x".repeat(300))),
            (Cow::Borrowed(""), Cow::Borrowed("é")),
        ];
        let rows = [
            EventRow {
                tenant_id: "t-1",
                // Not in sorting key order: the rows are sorted on the way.
                event_id: "0190a5b2-0000-7000-8000-000000000002",
                occurred_at: HOUR + 59,
                occurred_at_micros: (HOUR as i64 + 59) * 1_000_000 + 123_456,
                source: "gateway",
                kind: "chat",
                provider: "openai",
                model: "gpt-4o",
                input_tokens: u64::MAX,
                output_tokens: 2,
                cached_input_tokens: 3,
                cache_write_tokens: 4,
                embedding_tokens: 5,
                vector_queries: 6,
                requests: 7,
                priced: 1,
                currency: "USD",
                cost: Decimal::from_str("-12345678.123456789012345678").unwrap(),
                attributes: &attributes,
                src_partition: i32::MAX,
                src_offset: i64::MAX,
                ingested_at: HOUR + 60,
            },
            EventRow {
                tenant_id: "t-2",
                event_id: "0190a5b2-0000-7000-8000-000000000001",
                occurred_at: HOUR,
                occurred_at_micros: HOUR as i64 * 1_000_000,
                source: "rag",
                kind: "vector_search",
                provider: "",
                model: "",
                input_tokens: 0,
                output_tokens: 0,
                cached_input_tokens: 0,
                cache_write_tokens: 0,
                embedding_tokens: 0,
                vector_queries: 1,
                requests: 0,
                priced: 0,
                currency: "",
                cost: Decimal::ZERO,
                attributes: &[],
                src_partition: 0,
                src_offset: 0,
                ingested_at: HOUR,
            },
        ];
        write_events(&cfg.client(), &rows).await.unwrap();
        let stored: Vec<StoredEvent> = cfg.client().query("SELECT * FROM usage_events ORDER BY tenant_id").fetch_all().await.unwrap();
        assert_eq!(stored, rows.iter().map(StoredEvent::from).collect::<Vec<_>>(), "lz4 {lz4}");
    }
}

#[tokio::test]
async fn a_cost_with_more_places_than_the_column_is_refused_not_rounded() {
    let cfg = fresh_db().await;
    let row = EventRow { cost: Decimal::from_str("0.0000000000000000001").unwrap(), ..event("t", "e", 0) };
    assert!(write_events(&cfg.client(), &[row]).await.is_err());
}
