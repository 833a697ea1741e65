//! Notices partitions that nobody in the group is consuming and makes this
//! instance rejoin the group, so they are assigned again.
//!
//! A broker evicts a dead member when its session times out and rebalances.
//! Not every broker does so promptly (Tansu 0.6 evicts dead members only
//! when another member joins), and a partition whose owner died then waits
//! forever. Rejoining is what a new member would do; on a broker that
//! rebalances by itself this never triggers, because no partition stalls.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub struct Watchdog {
    /// Shares the group id but never subscribes, so it reads the group's
    /// committed offsets without being a member.
    observer: BaseConsumer,
    topic: String,
    stall_after: Duration,
    /// Per partition: the committed offset last seen and since when.
    seen: HashMap<i32, (i64, Instant)>,
}

const TIMEOUT: Duration = Duration::from_secs(5);

impl Watchdog {
    pub fn new(brokers: &str, group: &str, topic: &str, stall_after: Duration) -> KafkaResult<Self> {
        let observer =
            ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).set("enable.auto.commit", "false").create()?;
        Ok(Self { observer, topic: topic.to_owned(), stall_after, seen: HashMap::new() })
    }

    /// Partitions outside `mine` with messages waiting whose committed offset
    /// has not moved for `stall_after`.
    pub fn stalled(&mut self, mine: &[i32]) -> KafkaResult<Vec<i32>> {
        let metadata = self.observer.fetch_metadata(Some(&self.topic), TIMEOUT)?;
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition(&self.topic, p.id());
            }
        }
        let committed = self.observer.committed_offsets(tpl.clone(), TIMEOUT)?;
        let now = Instant::now();
        let mut stalled = Vec::new();
        for e in tpl.elements() {
            let p = e.partition();
            let (low, high) = self.observer.fetch_watermarks(&self.topic, p, TIMEOUT)?;
            let done = match committed.find_partition(&self.topic, p).map(|c| c.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => low,
            };
            let since = match self.seen.get(&p) {
                Some((o, t)) if *o == done => *t,
                _ => {
                    self.seen.insert(p, (done, now));
                    now
                }
            };
            if high > done && !mine.contains(&p) && now.duration_since(since) >= self.stall_after {
                stalled.push(p);
            }
        }
        Ok(stalled)
    }

    /// Forget what was seen, after the group was rejoined.
    pub fn reset(&mut self) {
        self.seen.clear();
    }
}
