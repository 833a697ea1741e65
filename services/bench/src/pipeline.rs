//! End to end: the same encoded events (1) through the bare broker, produced
//! and consumed with no processing — the raw ceiling — and (2) through the
//! SDK, the rollup and ClickHouse until queryable; then (3) emit-to-queryable
//! latency at a steady rate. All in one run, so the figures compare.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use meterline_core::avro::Codec;
use meterline_core::config::defaults;
use meterline_sdk::{Emitter, EmitterConfig};
use meterline_storage::clickhouse::{ClickHouseConfig, SeenLookup};
use meterline_storage::postgres;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Events for the throughput runs (raw and pipeline). Enough for a
    /// sustained rate: at ~300 000 events/s a run of 300 000 lasted about a
    /// second, and the pipeline's fixed tail (its last batch's wait, lookup
    /// and insert, one more poll) and the raw path's own start-up weighed
    /// ~10–20 % of it, differently on each side.
    #[arg(long, default_value_t = 1_500_000)]
    events: usize,
    #[arg(long, default_value_t = 40)]
    tenants: usize,
    /// Steady emit rate of the latency run, events/s.
    #[arg(long, default_value_t = 20_000)]
    latency_rate: u32,
    /// Events of the latency run.
    #[arg(long, default_value_t = 100_000)]
    latency_events: usize,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    #[arg(long, env = "METERLINE_KAFKA_BROKERS", default_value = defaults::KAFKA_BROKERS)]
    brokers: String,
}

pub async fn run(args: Args) -> Result<()> {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let raw_topic = format!("bench.{suffix}.raw");
    let usage_topic = format!("bench.{suffix}.usage");
    let dlq_topic = format!("bench.{suffix}.dlq");
    create_topics(&args.brokers, &[(&raw_topic, args.partitions), (&usage_topic, args.partitions), (&dlq_topic, 1)]).await?;

    let mut ch = ClickHouseConfig::from_env();
    ch.database = format!("meterline_bench_{suffix}");
    meterline_storage::clickhouse::migrate(&ch).await.context("ClickHouse")?;
    let pg_url = bench_database_url()?;
    let pool = postgres::migrate(&pg_url).await.context("Postgres")?;
    let prices = meterline_core::pricing::csv::parse(include_str!("../../../prices/default.csv"))?;
    postgres::import_prices(&pool, &prices).await?;

    // A few events per partition warm each path up before its clock
    // starts: the figures are sustained rates, not group-join time.
    let warmup_n = args.partitions as usize * 8;
    let events = crate::events::encoded(warmup_n + args.events + args.latency_events, args.tenants, 7);
    let (warmup, events) = events.split_at(warmup_n);
    let (throughput_events, latency_events) = events.split_at(args.events);
    let size = throughput_events.iter().map(|(_, v)| v.len()).sum::<usize>() / args.events.max(1);
    println!("pipeline benchmark: {} events of ~{size} bytes, {} partitions, {} tenants", args.events, args.partitions, args.tenants);

    let raw = raw_ceiling(&args.brokers, &raw_topic, warmup, throughput_events).await?;
    println!(
        "raw broker ceiling: produce {:.0} msg/s, end to end (produce+consume, no processing) {:.0} msg/s",
        raw.produce_rate, raw.end_to_end_rate
    );

    // The rollup runs as its own process, as deployed: it does not share an
    // allocator or a runtime with the emitter and the probe.
    let rollup = RollupProcess::start(&[
        ("METERLINE_KAFKA_BROKERS", args.brokers.as_str()),
        ("METERLINE_USAGE_TOPIC", usage_topic.as_str()),
        ("METERLINE_DLQ_TOPIC", dlq_topic.as_str()),
        ("METERLINE_ROLLUP_GROUP", &format!("bench-{suffix}")),
        ("METERLINE_ROLLUP_LISTEN", "127.0.0.1:0"),
        ("METERLINE_CLICKHOUSE_DATABASE", ch.database.as_str()),
        ("METERLINE_DATABASE_URL", pg_url.as_str()),
    ])?;

    let emitter = Emitter::new(EmitterConfig { brokers: args.brokers.clone(), topic: usage_topic.clone(), ..EmitterConfig::from_env()? })?;
    let probe = Probe::start(SeenLookup::new(&ch));
    probe.watch(warmup)?;
    let sent = emit_all(&emitter, warmup, None, None).await?;
    probe.wait_for(&sent, Duration::from_secs(120)).await.context("warm-up events")?;

    // Throughput: emit as fast as the SDK allows; done when ClickHouse has
    // every event (seen up to one poll late, so the rate is if anything
    // understated).
    probe.poll_every(Duration::from_millis(THROUGHPUT_POLL_MS));
    let t0 = Instant::now();
    let sent = emit_all(&emitter, throughput_events, None, None).await?;
    let emitted = t0.elapsed();
    probe.watch_last_of_each_partition(&sent, throughput_events)?;
    let (visible, _) = probe.wait_for(&sent, Duration::from_secs(600)).await?;
    let elapsed = visible.duration_since(t0).as_secs_f64();
    let rate = args.events as f64 / elapsed;
    println!(
        "pipeline: {rate:.0} events/s emit → queryable in ClickHouse ({:.0}% of the raw ceiling); emitting alone took {:.2}s",
        100.0 * rate / raw.end_to_end_rate,
        emitted.as_secs_f64()
    );

    // Latency at a steady rate.
    probe.poll_every(Duration::from_millis(LATENCY_POLL_MS));
    let sent = emit_all(&emitter, latency_events, Some(args.latency_rate), Some((&probe, LATENCY_SAMPLE_EVERY))).await?;
    probe.watch_last_of_each_partition(&sent, latency_events)?;
    let (_, latencies) = probe.wait_for(&sent, Duration::from_secs(600)).await?;
    println!(
        "emit → queryable latency at {} events/s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} events)",
        args.latency_rate,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        latencies.len()
    );

    rollup.stop().await?;
    ch.client().query(&format!("DROP DATABASE {}", ch.database)).execute().await?;
    drop(emitter);
    delete_topics(&args.brokers, &[&raw_topic, &usage_topic, &dlq_topic]).await;
    Ok(())
}

/// How often the throughput run looks for its last events. Nothing is
/// watched (and nothing asked of ClickHouse) until the emitter is done;
/// then each poll looks up one id per partition. At 100 ms the clock
/// stopped ~50 ms late on average, ~5 % of a default run.
const THROUGHPUT_POLL_MS: u64 = 20;
const LATENCY_POLL_MS: u64 = 10;
/// One event in this many is looked for in the latency run: with 4
/// partitions at 20 000 events/s, a sampled event every ~3 ms per partition.
const LATENCY_SAMPLE_EVERY: usize = 16;

/// The `meterline-rollup` binary built beside this one, as a child
/// process; killed if the benchmark fails before stopping it.
struct RollupProcess(tokio::process::Child);

impl RollupProcess {
    fn start(env: &[(&str, &str)]) -> Result<Self> {
        let exe = std::env::current_exe()?.with_file_name("meterline-rollup");
        let child = tokio::process::Command::new(&exe)
            .envs(env.iter().copied())
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} (build the workspace: cargo build --release --workspace)", exe.display()))?;
        Ok(Self(child))
    }

    /// SIGTERM, then the graceful drain; fails if the rollup failed.
    async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.0.id() {
            tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        }
        let status = tokio::time::timeout(Duration::from_secs(60), self.0.wait()).await.context("rollup did not stop")??;
        if !status.success() {
            bail!("the rollup exited with {status}");
        }
        Ok(())
    }
}

fn bench_database_url() -> Result<String> {
    let base = postgres::database_url_from_env().expose().to_owned();
    let (server, _) = base.rsplit_once('/').context("METERLINE_DATABASE_URL has no database")?;
    Ok(format!("{server}/meterline_bench"))
}

pub(crate) async fn create_topics(brokers: &str, topics: &[(&str, i32)]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let new: Vec<NewTopic<'_>> = topics.iter().map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1))).collect();
    for r in admin.create_topics(&new, &AdminOptions::new()).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

/// Deletes the benchmark's topics, best effort. Brokers keep them
/// otherwise, and one with in-memory storage (Tansu, locally) slows down
/// as they pile up: its fetches scan every stored batch.
pub(crate) async fn delete_topics(brokers: &str, topics: &[&str]) {
    let deleted = async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
        for r in admin.delete_topics(topics, &AdminOptions::new()).await? {
            r.map_err(|(t, e)| anyhow::anyhow!("deleting {t}: {e}"))?;
        }
        Ok::<_, anyhow::Error>(())
    };
    if let Err(e) = deleted.await {
        println!("note: the benchmark's topics were not deleted: {e:#}");
    }
}

struct Raw {
    produce_rate: f64,
    end_to_end_rate: f64,
}

/// The same messages, produced with the SDK's producer settings and
/// consumed by a plain consumer, with nothing done to them. The clock
/// starts once the consumer has read the warm-up messages.
async fn raw_ceiling(brokers: &str, topic: &str, warmup: &[(String, Vec<u8>)], events: &[(String, Vec<u8>)]) -> Result<Raw> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        // As the rollup's consumer (see meterline_rollup::app).
        .set("fetch.wait.max.ms", "10")
        .create()?;
    consumer.subscribe(&[topic])?;
    let (n, warm) = (events.len(), warmup.len());
    let (warmed_tx, warmed_rx) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(async move {
        for _ in 0..warm {
            consumer.recv().await?;
        }
        let _ = warmed_tx.send(());
        for _ in 0..n {
            consumer.recv().await?;
        }
        Ok::<_, anyhow::Error>(Instant::now())
    });
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", EmitterConfig::from_env()?.linger_ms.to_string())
        .set("compression.type", "lz4")
        .create()?;
    for (k, v) in warmup {
        producer.send(FutureRecord::to(topic).key(k.as_str()).payload(v.as_slice()), Duration::from_secs(30)).await.map_err(|(e, _)| e)?;
    }
    tokio::time::timeout(Duration::from_secs(120), warmed_rx).await.context("raw consumer warm-up")??;
    let t0 = Instant::now();
    let mut pending = Vec::with_capacity(n);
    for (k, v) in events {
        loop {
            match producer.send_result(FutureRecord::to(topic).key(k.as_str()).payload(v.as_slice())) {
                Ok(d) => {
                    pending.push(d);
                    break;
                }
                Err((e, _)) => {
                    // Queue full: let deliveries drain.
                    tracing::debug!(error = %e, "raw producer queue full");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for d in pending {
        d.await?.map_err(|(e, _)| e)?;
    }
    let produced = t0.elapsed().as_secs_f64();
    let done = tokio::time::timeout(Duration::from_secs(300), reader).await???;
    Ok(Raw { produce_rate: n as f64 / produced, end_to_end_rate: n as f64 / done.duration_since(t0).as_secs_f64() })
}

/// Emits every event (optionally paced at `rate` per second, and with every
/// n-th watched by a probe) and returns each one's broker position and emit
/// instant. Unpaced, every event gets the run's start instead: no latency
/// is read from such a run, and a clock read per event is work the raw
/// path does not do.
async fn emit_all(
    emitter: &Emitter,
    events: &[(String, Vec<u8>)],
    rate: Option<u32>,
    sample: Option<(&Probe, usize)>,
) -> Result<Vec<(i32, i64, Instant)>> {
    let t0 = Instant::now();
    let mut deliveries = Vec::with_capacity(events.len());
    for (i, (k, v)) in events.iter().enumerate() {
        if let Some(rate) = rate {
            let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        if let Some((probe, every)) = sample {
            if i % every == 0 {
                probe.watch([&events[i]])?;
            }
        }
        let at = if rate.is_some() { Instant::now() } else { t0 };
        deliveries.push((emitter.emit_raw(k.as_bytes(), v).await?, at));
    }
    let mut sent = Vec::with_capacity(deliveries.len());
    for (d, at) in deliveries {
        let r = d.await?;
        sent.push((r.partition, r.offset, at));
    }
    Ok(sent)
}

/// When a poll ran, and how far each partition was queryable then.
type Polls = Vec<(Instant, HashMap<i32, i64>)>;

/// Watches events become queryable by looking up the ids of a sample of
/// them, as the rollup's duplicate check does: a few primary-key point
/// lookups per poll. Batches are written whole and in offset order, so a
/// sampled event being queryable means every earlier offset of its
/// partition is. (A probe that scanned the last seconds' rows instead
/// read every row of the throughput run on each poll and took more of
/// ClickHouse's CPU than the pipeline's own duplicate lookups.)
struct Probe {
    seen: Arc<Mutex<Polls>>,
    /// Sampled events, (tenant, id), not seen yet.
    pending: Arc<Mutex<Vec<(String, String)>>>,
    /// Milliseconds between polls: seldom in the throughput run, often in
    /// the latency run, for resolution.
    every_ms: Arc<AtomicU64>,
}

impl Probe {
    fn start(lookup: SeenLookup) -> Self {
        let seen: Arc<Mutex<Polls>> = Arc::new(Mutex::new(Vec::new()));
        let pending: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let every_ms = Arc::new(AtomicU64::new(10));
        let (log, watched, every) = (seen.clone(), pending.clone(), every_ms.clone());
        tokio::spawn(async move {
            let month = meterline_core::Month::containing(chrono::Utc::now()).yyyymm();
            loop {
                let batch = watched.lock().expect("probe watch list").clone();
                let tenants: BTreeSet<&str> = batch.iter().map(|(t, _)| t.as_str()).collect();
                let ids: Vec<&str> = batch.iter().map(|(_, id)| id.as_str()).collect();
                if let Ok(rows) = lookup.lookup(&tenants, &ids, &BTreeSet::from([month])).await {
                    let at = Instant::now();
                    let found: HashSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
                    watched.lock().expect("probe watch list").retain(|(_, id)| !found.contains(id.as_str()));
                    let mut log = log.lock().expect("probe log");
                    let mut map: HashMap<i32, i64> = log.last().map(|(_, m)| m.clone()).unwrap_or_default();
                    for r in rows {
                        let e = map.entry(r.src_partition).or_insert(r.src_offset);
                        *e = (*e).max(r.src_offset);
                    }
                    log.push((at, map));
                }
                tokio::time::sleep(Duration::from_millis(every.load(Ordering::Relaxed))).await;
            }
        });
        Self { seen, pending, every_ms }
    }

    fn poll_every(&self, interval: Duration) {
        self.every_ms.store(interval.as_millis() as u64, Ordering::Relaxed);
    }

    /// Adds encoded events to the sample being looked for.
    fn watch<'a>(&self, events: impl IntoIterator<Item = &'a (String, Vec<u8>)>) -> Result<()> {
        let codec = Codec::new();
        let mut pending = self.pending.lock().expect("probe watch list");
        for (tenant, bytes) in events {
            let event = codec.decode(bytes)?;
            pending.push((tenant.clone(), event.event_id.into_owned()));
        }
        Ok(())
    }

    /// Watches the last of `sent` in each partition: when those are
    /// queryable, all are.
    fn watch_last_of_each_partition(&self, sent: &[(i32, i64, Instant)], events: &[(String, Vec<u8>)]) -> Result<()> {
        let mut last: HashMap<i32, usize> = HashMap::new();
        for (i, (p, _, _)) in sent.iter().enumerate() {
            last.insert(*p, i);
        }
        self.watch(last.values().map(|&i| &events[i]))
    }

    /// Waits until every sent event is visible; returns when the poll that
    /// first saw them all ran, and each event's latency in milliseconds:
    /// the first poll, after its emit, that saw a sampled event at or after
    /// its offset (so a latency is if anything overstated by the sampling).
    async fn wait_for(&self, sent: &[(i32, i64, Instant)], timeout: Duration) -> Result<(Instant, Vec<f64>)> {
        let mut last: HashMap<i32, i64> = HashMap::new();
        for (p, o, _) in sent {
            let e = last.entry(*p).or_insert(*o);
            *e = (*e).max(*o);
        }
        let deadline = Instant::now() + timeout;
        let all_seen = |m: &HashMap<i32, i64>| last.iter().all(|(p, o)| m.get(p).is_some_and(|v| v >= o));
        loop {
            let done = {
                let seen = self.seen.lock().expect("probe log");
                seen.last().is_some_and(|(_, m)| all_seen(m))
            };
            if done {
                break;
            }
            if Instant::now() > deadline {
                bail!("events did not become queryable within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = self.seen.lock().expect("probe log");
        // Polls only ever see more, so the first that saw everything is
        // found by bisection; the clock stops there, not after the
        // latencies below are worked out.
        let visible = seen[seen.partition_point(|(_, m)| !all_seen(m))].0;
        let latencies = sent
            .iter()
            .map(|(p, o, at)| {
                let i = seen.partition_point(|(t, m)| *t < *at || m.get(p).is_none_or(|v| v < o));
                seen.get(i).map_or(f64::NAN, |(t, _)| t.duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect();
        Ok((visible, latencies))
    }
}

pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}
