//! The resume guard: which messages of a batch count, given where each
//! partition (re)started. Pure: the Kafka loop fetches committed offsets
//! and seeks; this decides.
//!
//! A partition resumes anywhere but at the offset after our last batch
//! when it was (re)assigned or sought: on a rebalance that keeps it with
//! us as well, so the test is the offset, not whether we read the
//! partition before. A resume is then checked against the committed
//! offset: records below it were counted already and are skipped; if the
//! broker skipped ahead (it could not fetch from inside a record batch) the
//! partition is rewound far enough to include that batch
//! ([`meterline_runtime::rewind`]). Within a batch, a partition whose
//! offsets stop being consecutive is cut where its run ends.

use std::collections::HashMap;

use meterline_core::intake::Message;
use meterline_runtime::rewind::{RewindGuard, Verdict};
use tracing::warn;

use crate::count::BatchStarts;
use crate::fast_hash::FastMap;

/// Where each partition's stream must go on, and the rewinds in progress.
#[derive(Default)]
pub struct ResumeGuard {
    /// The offset each partition's next message should have if nothing was
    /// rewound or reassigned since our last batch. A message elsewhere marks
    /// a (re)start, where a crashed attempt of the batch may have left rows.
    expected_next: HashMap<i32, i64>,
    /// Partitions being rewound because the broker resumed past the
    /// committed offset.
    rewinds: HashMap<i32, RewindGuard>,
}

impl ResumeGuard {
    /// The partitions that (re)start in a batch whose messages are at
    /// `positions` (partition, offset), with the first offset of each.
    pub fn restarts(&self, positions: impl Iterator<Item = (i32, i64)>) -> HashMap<i32, i64> {
        let mut first: HashMap<i32, i64> = HashMap::new();
        for (p, o) in positions {
            first.entry(p).or_insert(o);
        }
        first.retain(|p, f| !self.continues(*p, *f));
        first
    }

    /// Whether `offset` is where `partition` went on after our last batch.
    pub fn continues(&self, partition: i32, offset: i64) -> bool {
        self.expected_next.get(&partition) == Some(&offset)
    }

    /// Checks each restart (partition, first offset) against the
    /// partition's committed offset (`None`: never committed, so it starts
    /// wherever the reset policy put it).
    pub fn check(&mut self, restarts: HashMap<i32, i64>, committed: impl Fn(i32) -> Option<i64>) -> Resume {
        let mut resume = Resume::default();
        for (p, f) in restarts {
            let Some(c) = committed(p) else {
                continue;
            };
            let guard = self.rewinds.entry(p).or_default();
            match guard.check(c, f) {
                Verdict::Accept => {
                    resume.floor.insert(p, c);
                }
                Verdict::GiveUp => {
                    // The last seek already went as far back as a rewind
                    // goes: the gap is real (compaction, transaction markers).
                    warn!(partition = p, committed = c, first = f, "gap after the committed offset; continuing");
                }
                Verdict::Rewind { to } => {
                    warn!(partition = p, committed = c, first = f, rewind_to = to, "broker resumed past the committed offset; rewinding");
                    resume.rewinds.push((p, to));
                }
            }
            if !guard.is_rewinding() {
                self.rewinds.remove(&p);
            }
        }
        resume
    }

    /// A batch ending at `ends` is committed: its partitions go on there.
    pub fn committed(&mut self, ends: &FastMap<i32, i64>) {
        self.expected_next.extend(ends.iter().map(|(p, e)| (*p, *e)));
    }

    /// `partition` was sought: its next message is a restart.
    pub fn forget(&mut self, partition: i32) {
        self.expected_next.remove(&partition);
    }

    /// Every partition restarts (the group was rejoined).
    pub fn forget_all(&mut self) {
        self.expected_next.clear();
    }
}

/// Which records of a batch to process after a (re)start.
#[derive(Default)]
pub struct Resume {
    /// Per partition, the committed offset: records below it were counted.
    floor: FastMap<i32, i64>,
    /// Partitions being rewound, and where to: their records in this batch
    /// are dropped.
    pub rewinds: Vec<(i32, i64)>,
}

impl Resume {
    fn accepts(&self, partition: i32, offset: i64) -> bool {
        !self.rewinds.iter().any(|(p, _)| *p == partition) && self.floor.get(&partition).is_none_or(|c| offset >= *c)
    }

    /// The messages of a batch that count, given where each partition
    /// resumed.
    pub fn runs<'a>(&self, messages: impl Iterator<Item = Message<'a>>) -> Runs<'a> {
        contiguous_runs(messages.filter(|m| self.accepts(m.partition, m.offset)))
    }
}

/// What a batch counts: per partition, one run of consecutive offsets.
pub struct Runs<'a> {
    pub messages: Vec<Message<'a>>,
    /// Where each partition's run starts: its rollup rows' key.
    pub starts: BatchStarts,
    /// The offset after each partition's run: what the commit stores.
    pub ends: FastMap<i32, i64>,
    /// Where each cut partition must be read again.
    pub cuts: FastMap<i32, i64>,
}

/// Keeps, per partition, the run of consecutive offsets the batch starts
/// with. A rebalance or seek while the batch was collected restarts a
/// partition elsewhere; the messages fetched before it may end inside a
/// record batch that the broker then resumes past, so counting both runs
/// could skip records between them.
fn contiguous_runs<'a>(messages: impl Iterator<Item = Message<'a>>) -> Runs<'a> {
    let mut runs = Runs { messages: Vec::new(), starts: BatchStarts::default(), ends: FastMap::default(), cuts: FastMap::default() };
    for m in messages {
        if runs.cuts.contains_key(&m.partition) {
            continue;
        }
        match runs.ends.get(&m.partition) {
            Some(&want) if m.offset != want => {
                warn!(
                    partition = m.partition,
                    expected = want,
                    got = m.offset,
                    "partition restarted within a batch; reading on from the expected offset"
                );
                runs.cuts.insert(m.partition, want);
                continue;
            }
            Some(_) => {}
            None => {
                runs.starts.insert(m.partition, m.offset);
            }
        }
        runs.ends.insert(m.partition, m.offset + 1);
        runs.messages.push(m);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(list: &[(i32, i64)]) -> Vec<Message<'static>> {
        list.iter().map(|&(partition, offset)| Message { partition, offset, key: None, payload: None }).collect()
    }

    fn positions(kept: &[Message<'_>]) -> Vec<(i32, i64)> {
        kept.iter().map(|m| (m.partition, m.offset)).collect()
    }

    #[test]
    fn a_partition_restarted_mid_batch_is_cut_where_its_run_ends() {
        // Partition 0 ran 10..=12, then resumed at 20 (a record batch past
        // 13); partition 1 is contiguous throughout.
        let input = msgs(&[(0, 10), (1, 5), (0, 11), (0, 12), (1, 6), (0, 20), (1, 7), (0, 21)]);
        let runs = contiguous_runs(input.into_iter());
        assert_eq!(positions(&runs.messages), vec![(0, 10), (1, 5), (0, 11), (0, 12), (1, 6), (1, 7)]);
        assert_eq!(runs.cuts, [(0, 13)].into_iter().collect());
        assert_eq!(runs.starts, [(0, 10), (1, 5)].into_iter().collect());
        assert_eq!(runs.ends, [(0, 13), (1, 8)].into_iter().collect());
    }

    #[test]
    fn a_partition_that_goes_back_is_cut_too() {
        let runs = contiguous_runs(msgs(&[(2, 100), (2, 101), (2, 100), (2, 101), (2, 102)]).into_iter());
        assert_eq!(positions(&runs.messages), vec![(2, 100), (2, 101)]);
        assert_eq!(runs.cuts, [(2, 102)].into_iter().collect());
        assert_eq!(runs.ends, [(2, 102)].into_iter().collect());
    }

    #[test]
    fn contiguous_batches_are_kept_whole() {
        let input = msgs(&[(0, 0), (1, 0), (0, 1), (1, 1)]);
        let runs = contiguous_runs(input.into_iter());
        assert_eq!(runs.messages.len(), 4);
        assert!(runs.cuts.is_empty());
        assert_eq!(runs.starts, [(0, 0), (1, 0)].into_iter().collect());
    }

    /// Checks a batch at `positions` against `committed` and returns what
    /// counts.
    fn resume(guard: &mut ResumeGuard, positions: &[(i32, i64)], committed: &[(i32, i64)]) -> (Resume, Vec<(i32, i64)>) {
        let committed: HashMap<i32, i64> = committed.iter().copied().collect();
        let restarts = guard.restarts(positions.iter().copied());
        let resume = guard.check(restarts, |p| committed.get(&p).copied());
        let kept = positions_of(&resume, positions);
        (resume, kept)
    }

    fn positions_of(resume: &Resume, list: &[(i32, i64)]) -> Vec<(i32, i64)> {
        positions(&resume.runs(msgs(list).into_iter()).messages)
    }

    #[test]
    fn a_resume_at_or_before_the_committed_offset_skips_what_was_counted() {
        let mut guard = ResumeGuard::default();
        let (resume, kept) = resume(&mut guard, &[(0, 98), (0, 99), (0, 100), (1, 7)], &[(0, 100), (1, 7)]);
        assert_eq!(kept, vec![(0, 100), (1, 7)]);
        assert!(resume.rewinds.is_empty());
    }

    #[test]
    fn a_partition_never_committed_counts_from_wherever_it_starts() {
        let (_, kept) = resume(&mut ResumeGuard::default(), &[(3, 40), (3, 41)], &[]);
        assert_eq!(kept, vec![(3, 40), (3, 41)]);
    }

    #[test]
    fn a_resume_past_the_committed_offset_is_rewound_further_each_time() {
        let mut guard = ResumeGuard::default();
        let (resume1, kept) = resume(&mut guard, &[(0, 1024), (0, 1025), (1, 7)], &[(0, 1000), (1, 7)]);
        assert_eq!(resume1.rewinds, vec![(0, 1000 - 256)]);
        assert_eq!(kept, vec![(1, 7)], "the rewound partition's records are dropped");
        guard.committed(&[(1, 8)].into_iter().collect());
        let (resume2, _) = resume(&mut guard, &[(0, 1024)], &[(0, 1000)]);
        assert_eq!(resume2.rewinds, vec![(0, 1000 - 512)]);
        // The broker now resumes at the record batch holding 1000.
        let (resume3, kept) = resume(&mut guard, &[(0, 990), (0, 1000), (0, 1001)], &[(0, 1000)]);
        assert!(resume3.rewinds.is_empty());
        assert_eq!(kept, vec![(0, 1000), (0, 1001)]);
        // Which ended the rewind: the next resume past starts over.
        let (resume4, _) = resume(&mut guard, &[(0, 2000)], &[(0, 1500)]);
        assert_eq!(resume4.rewinds, vec![(0, 1500 - 256)]);
    }

    #[test]
    fn a_gap_still_there_after_a_rewind_to_the_start_is_accepted() {
        let mut guard = ResumeGuard::default();
        assert_eq!(resume(&mut guard, &[(0, 300)], &[(0, 200)]).0.rewinds, vec![(0, 0)]);
        let (resume, kept) = resume(&mut guard, &[(0, 300), (0, 301)], &[(0, 200)]);
        assert!(resume.rewinds.is_empty());
        assert_eq!(kept, vec![(0, 300), (0, 301)]);
        assert!(guard.rewinds.is_empty());
    }

    #[test]
    fn only_partitions_that_do_not_go_on_from_the_last_batch_are_checked() {
        let mut guard = ResumeGuard::default();
        guard.committed(&[(0, 50), (1, 60)].into_iter().collect());
        let restarts = guard.restarts([(0, 50), (1, 70), (2, 5), (0, 51)].into_iter());
        assert_eq!(restarts, HashMap::from([(1, 70), (2, 5)]));
        guard.forget(0);
        assert!(!guard.continues(0, 50));
        guard.forget_all();
        assert!(!guard.continues(1, 60));
    }
}
