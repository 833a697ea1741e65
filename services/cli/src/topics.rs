use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use meterline_core::config::defaults;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Create the usage, dead-letter, throttle and alert topics (existing ones are left alone).
    Create(CreateArgs),
    /// Per-partition end offset, committed offset and lag of a consumer group.
    Lag(LagArgs),
}

#[derive(Args)]
pub struct LagArgs {
    #[arg(long, env = "METERLINE_KAFKA_BROKERS", default_value = defaults::KAFKA_BROKERS)]
    brokers: String,
    #[arg(long, env = "METERLINE_USAGE_TOPIC", default_value = defaults::USAGE_TOPIC)]
    topic: String,
    #[arg(long, env = "METERLINE_ROLLUP_GROUP", default_value = defaults::ROLLUP_GROUP)]
    group: String,
}

#[derive(Args)]
pub struct CreateArgs {
    #[arg(long, env = "METERLINE_KAFKA_BROKERS", default_value = defaults::KAFKA_BROKERS)]
    brokers: String,
    #[arg(long, env = "METERLINE_USAGE_TOPIC", default_value = defaults::USAGE_TOPIC)]
    usage_topic: String,
    #[arg(long, env = "METERLINE_DLQ_TOPIC", default_value = defaults::DLQ_TOPIC)]
    dlq_topic: String,
    #[arg(long, env = "METERLINE_THROTTLE_TOPIC", default_value = defaults::THROTTLE_TOPIC)]
    throttle_topic: String,
    #[arg(long, env = "METERLINE_ALERTS_TOPIC", default_value = defaults::ALERTS_TOPIC)]
    alerts_topic: String,
    /// Partitions of the usage topic: the most rollup instances that can share the work.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    #[arg(long, default_value_t = 1)]
    replication: i32,
}

pub async fn run(command: TopicsCommand) -> Result<()> {
    match command {
        TopicsCommand::Create(args) => create(args).await,
        TopicsCommand::Lag(args) => lag(args),
    }
}

fn lag(args: LagArgs) -> Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    // Not subscribed: it reads the group's offsets without joining it.
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &args.brokers).set("group.id", &args.group).create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(&args.topic), timeout)?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition(&args.topic, p.id());
        }
    }
    let committed = consumer.committed_offsets(tpl.clone(), timeout)?;
    println!("{:<10} {:>12} {:>12} {:>10}", "partition", "end", "committed", "lag");
    let mut total = 0;
    for e in tpl.elements() {
        let (_, high) = consumer.fetch_watermarks(&args.topic, e.partition(), timeout)?;
        let done = match committed.find_partition(&args.topic, e.partition()).map(|c| c.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        };
        total += (high - done).max(0);
        println!("{:<10} {:>12} {:>12} {:>10}", e.partition(), high, done, (high - done).max(0));
    }
    println!("total lag {total}");
    Ok(())
}

async fn create(args: CreateArgs) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &args.brokers).create().context("creating Kafka admin client")?;
    let topics = [
        NewTopic::new(&args.usage_topic, args.partitions, TopicReplication::Fixed(args.replication)),
        NewTopic::new(&args.dlq_topic, 1, TopicReplication::Fixed(args.replication)),
        NewTopic::new(&args.throttle_topic, 1, TopicReplication::Fixed(args.replication)),
        NewTopic::new(&args.alerts_topic, 1, TopicReplication::Fixed(args.replication)),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&topics, &opts).await.context("creating topics")?;
    for r in results {
        match r {
            Ok(name) => println!("created topic {name}"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => println!("topic {name} exists"),
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}
