//! The consumer's offsets: where a restarted partition was committed, the
//! seeks the resume guard asks for, and the commit that ends a batch.

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, warn};

use super::resume::Resume;
use super::Pipeline;
use crate::count::BatchStarts;
use crate::fast_hash::FastMap;
use crate::RollupError;

impl Pipeline {
    /// For partitions this instance has not read before (start, rebalance,
    /// rewind), checks that the broker resumed exactly at the committed
    /// offset (see [`super::ResumeGuard`]), and seeks the partitions it rewinds.
    pub(super) fn resume_points(&mut self, batch: &[BorrowedMessage<'_>]) -> Result<Resume, RollupError> {
        let restarts = self.resume.restarts(batch.iter().map(|m| (m.partition(), m.offset())));
        if restarts.is_empty() {
            return Ok(Resume::default());
        }
        let mut tpl = TopicPartitionList::new();
        for p in restarts.keys() {
            tpl.add_partition(&self.topic, *p);
        }
        let committed = self.consumer.committed_offsets(tpl, Duration::from_secs(10))?;
        let resume = self.resume.check(restarts, |p| match committed.find_partition(&self.topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(c)) => Some(c),
            _ => None,
        });
        for &(p, to) in &resume.rewinds {
            if let Err(e) = self.consumer.seek(&self.topic, p, Offset::Offset(to), Duration::from_secs(10)) {
                // Most likely the partition was just revoked; its records in
                // this batch are not trusted either way.
                warn!(partition = p, error = %e, "rewind failed");
            }
        }
        Ok(resume)
    }

    /// Commits the batch synchronously. On failure (e.g. a rebalance took the
    /// partition) the partitions are rewound to the batch start, so the next
    /// batch is a replay of this one, never a second uncommitted batch.
    pub(super) fn commit(&mut self, ends: &FastMap<i32, i64>, starts: &BatchStarts) -> Result<(), RollupError> {
        let mut tpl = TopicPartitionList::new();
        for (p, end) in ends {
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*end))?;
        }
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                self.resume.committed(ends);
                Ok(())
            }
            Err(e) => {
                self.metrics.commit_failures.inc();
                warn!(error = %e, "offset commit failed; rewinding to replay the batch");
                for (p, start) in starts {
                    self.resume.forget(*p);
                    if let Err(e) = self.consumer.seek(&self.topic, *p, Offset::Offset(*start), Duration::from_secs(5)) {
                        debug!(partition = p, error = %e, "seek after failed commit (partition likely revoked)");
                    }
                }
                Ok(())
            }
        }
    }
}
