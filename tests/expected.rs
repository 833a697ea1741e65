//! What the pipeline must produce, computed independently of it: from the
//! load generator's ground truth and the price book, with the core crate's
//! exact pricing applied to summed quantities (pricing is linear, and every
//! event of a run falls under the same prices).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use meterline_core::{PriceBook, Unit};
use meterline_storage::clickhouse::{month_usage, ClickHouseConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use rust_decimal::Decimal;
use serde::Deserialize;

pub fn price_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../prices/default.csv")
}

#[derive(Debug, Deserialize)]
pub struct Truth {
    pub distinct_events: u64,
    pub duplicates_sent: u64,
    pub malformed_sent: u64,
    pub malformed_by_reason: BTreeMap<String, u64>,
    pub tenants: BTreeMap<String, TenantTruth>,
}

#[derive(Debug, Deserialize)]
pub struct TenantTruth {
    pub events: u64,
    pub models: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Truth {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// (tenant, currency) → (events, cost); currency "" for unpriced events.
pub type Totals = BTreeMap<(String, String), (u64, Decimal)>;

/// Expected totals, pricing the truth's summed quantities at `at_micros`.
pub fn expected(truth: &Truth, at_micros: i64) -> Result<Totals> {
    let entries = meterline_core::pricing::csv::parse(&std::fs::read_to_string(price_file())?)?;
    let book = PriceBook::build(&entries, &[])?;
    let mut out = Totals::new();
    for (tenant, t) in &truth.tenants {
        for (model_key, q) in &t.models {
            let (provider, model) = model_key.split_once('/').context("model key is provider/model")?;
            let events = *q.get("events").context("events")?;
            let rates = book.rates(tenant, provider, model, at_micros);
            let mut cost = Some(Decimal::ZERO);
            for unit in Unit::ALL {
                let n = q.get(unit.field_name()).copied().unwrap_or(0);
                if n == 0 {
                    continue;
                }
                let c = rates.and_then(|r| r.rate(unit)).and_then(|r| r.cost(n as i64));
                cost = cost.zip(c).map(|(a, b)| a + b);
            }
            let (currency, cost) = match (rates, cost) {
                (Some(r), Some(c)) => (r.currency.to_string(), c),
                _ => (String::new(), Decimal::ZERO),
            };
            let e = out.entry((tenant.clone(), currency)).or_default();
            e.0 += events;
            e.1 += cost;
        }
    }
    Ok(out)
}

/// What ClickHouse reports for the current month.
pub async fn actual(ch: &ClickHouseConfig) -> Result<Totals> {
    let month = meterline_core::Month::containing(chrono::Utc::now());
    let rows = month_usage(&ch.client(), month, None).await?;
    Ok(rows.into_iter().map(|r| ((r.tenant_id, r.currency), (r.events, r.cost.normalize()))).collect())
}

fn normalized(t: &Totals) -> Totals {
    t.iter().map(|(k, (n, c))| (k.clone(), (*n, c.normalize()))).collect()
}

/// Polls until ClickHouse holds `expected` exactly, or fails after `timeout`
/// with the difference.
pub async fn wait_for_totals(ch: &ClickHouseConfig, expected: &Totals, timeout: Duration) -> Result<()> {
    let expected = normalized(expected);
    let deadline = tokio::time::Instant::now() + timeout;
    let want: u64 = expected.values().map(|v| v.0).sum();
    loop {
        let got = actual(ch).await?;
        if got == expected {
            return Ok(());
        }
        let have: u64 = got.values().map(|v| v.0).sum();
        if have > want {
            bail!("over-counted: {have} events stored, {want} distinct sent\n{}", diff(&expected, &got));
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out with {have}/{want} events\n{}", diff(&expected, &got));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn diff(expected: &Totals, got: &Totals) -> String {
    let keys: HashSet<_> = expected.keys().chain(got.keys()).collect();
    let mut lines: Vec<String> = keys
        .into_iter()
        .filter(|k| expected.get(*k) != got.get(*k))
        .map(|k| format!("{k:?}: expected {:?}, got {:?}", expected.get(k), got.get(k)))
        .collect();
    lines.sort();
    lines.truncate(20);
    lines.join("\n")
}

/// Reads the whole dead-letter topic: (source partition, source offset) →
/// reason, over distinct source messages (a replay may send one twice).
pub fn dead_letters(brokers: &str, topic: &str, expected: usize) -> Result<HashMap<(String, String), String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut seen = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline && seen.len() < expected {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else { continue };
        let m = m?;
        let headers = m.headers().context("dead letter without headers")?;
        let get = |name: &str| -> Result<String> {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .with_context(|| format!("dead letter without {name}"))
        };
        let key = (get("meterline.source.partition")?, get("meterline.source.offset")?);
        seen.insert(key, get("meterline.reason")?);
    }
    Ok(seen)
}
