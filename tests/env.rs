//! A test's private slice of the local stack: its own topics, consumer
//! group, ClickHouse database and Postgres database.

use std::time::Duration;

use anyhow::{Context, Result};
use meterline_core::config::{defaults, Env};
use meterline_storage::clickhouse::ClickHouseConfig;
use meterline_storage::postgres;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

pub struct TestEnv {
    pub name: String,
    pub brokers: String,
    pub usage_topic: String,
    pub dlq_topic: String,
    pub throttle_topic: String,
    pub alerts_topic: String,
    pub group: String,
    pub clickhouse: ClickHouseConfig,
    pub database_url: String,
    pub dir: std::path::PathBuf,
}

impl TestEnv {
    /// Creates topics (`partitions` for usage events), migrates fresh
    /// databases and imports the shipped price book.
    pub async fn new(label: &str, partitions: i32) -> Result<Self> {
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let name = format!("{label}_{suffix}");
        let mut clickhouse = ClickHouseConfig::from_env();
        clickhouse.database = format!("mlt_{name}");
        let base_url = postgres::database_url_from_env().expose().to_owned();
        let database_url = match base_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/mlt_{name}"),
            None => anyhow::bail!("METERLINE_DATABASE_URL {base_url:?} has no database part"),
        };
        let env = TestEnv {
            brokers: Env::process().string("METERLINE_KAFKA_BROKERS", defaults::KAFKA_BROKERS),
            usage_topic: format!("mlt.{name}.usage"),
            dlq_topic: format!("mlt.{name}.dlq"),
            throttle_topic: format!("mlt.{name}.throttle"),
            alerts_topic: format!("mlt.{name}.alerts"),
            group: format!("mlt-{name}"),
            clickhouse,
            database_url,
            dir: std::env::temp_dir().join(format!("meterline-test-{name}")),
            name,
        };
        std::fs::create_dir_all(&env.dir)?;
        env.create_topics(partitions).await?;
        meterline_storage::clickhouse::migrate(&env.clickhouse)
            .await
            .context("ClickHouse is not reachable or migrations failed; is scripts/stack.sh up running?")?;
        let pool = postgres::migrate(&env.database_url)
            .await
            .context("Postgres is not reachable or migrations failed; is scripts/stack.sh up running?")?;
        let prices = meterline_core::pricing::csv::parse(&std::fs::read_to_string(crate::expected::price_file())?)?;
        postgres::import_prices(&pool, &prices).await?;
        pool.close().await;
        Ok(env)
    }

    async fn create_topics(&self, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &self.brokers).create()?;
        let topics = [
            NewTopic::new(&self.usage_topic, partitions, TopicReplication::Fixed(1)),
            NewTopic::new(&self.dlq_topic, 1, TopicReplication::Fixed(1)),
            NewTopic::new(&self.throttle_topic, 2, TopicReplication::Fixed(1)),
            NewTopic::new(&self.alerts_topic, 1, TopicReplication::Fixed(1)),
        ];
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for r in admin.create_topics(&topics, &opts).await.context("Kafka is not reachable; is scripts/stack.sh up running?")? {
            r.map_err(|(t, e)| anyhow::anyhow!("creating topic {t}: {e}"))?;
        }
        Ok(())
    }

    /// The environment a Meterline process of this test runs with.
    pub fn process_env(&self) -> Vec<(String, String)> {
        [
            ("METERLINE_KAFKA_BROKERS", self.brokers.as_str()),
            ("METERLINE_USAGE_TOPIC", &self.usage_topic),
            ("METERLINE_DLQ_TOPIC", &self.dlq_topic),
            ("METERLINE_THROTTLE_TOPIC", &self.throttle_topic),
            ("METERLINE_ALERTS_TOPIC", &self.alerts_topic),
            ("METERLINE_BUDGET_LISTEN", "127.0.0.1:0"),
            ("METERLINE_ROLLUP_GROUP", &self.group),
            ("METERLINE_ROLLUP_LISTEN", "127.0.0.1:0"),
            ("METERLINE_CLICKHOUSE_URL", &self.clickhouse.url),
            ("METERLINE_CLICKHOUSE_DATABASE", &self.clickhouse.database),
            ("METERLINE_CLICKHOUSE_USER", &self.clickhouse.user),
            ("METERLINE_CLICKHOUSE_PASSWORD", &self.clickhouse.password),
            ("METERLINE_DATABASE_URL", &self.database_url),
            // Small batches and a short session make crashes land in more
            // places and failover quick.
            ("METERLINE_ROLLUP_BATCH_EVENTS", "2000"),
            ("METERLINE_ROLLUP_BATCH_WAIT_MS", "50"),
            ("METERLINE_KAFKA_SESSION_TIMEOUT_MS", "6000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl TestEnv {
    /// Waits until the rollup group has committed every message of the
    /// usage topic: the condition after which totals must not change.
    pub async fn wait_consumed(&self, timeout: Duration) -> Result<()> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{Offset, TopicPartitionList};
        // Not subscribed, so it never joins the group; it only reads the
        // group's committed offsets.
        let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &self.brokers).set("group.id", &self.group).create()?;
        let metadata = consumer.fetch_metadata(Some(&self.usage_topic), Duration::from_secs(10))?;
        let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut tpl = TopicPartitionList::new();
            for p in &partitions {
                tpl.add_partition(&self.usage_topic, *p);
            }
            let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
            let mut behind = 0;
            for p in &partitions {
                let (_, high) = consumer.fetch_watermarks(&self.usage_topic, *p, Duration::from_secs(10))?;
                let done = match committed.find_partition(&self.usage_topic, *p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => 0,
                };
                behind += (high - done).max(0);
            }
            if behind == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("rollup still {behind} messages behind after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
