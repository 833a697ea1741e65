//! The resume check of every consumer of the usage topic: did the broker
//! deliver from the offset we asked for?
//!
//! Kafka returns the whole record batch containing a fetch offset and the
//! client skips the records before it. Some brokers (Tansu 0.6 among them)
//! return only record batches that *start* at or after the fetch offset, so
//! a consumer resuming inside a record batch silently skips the rest of it.
//! Seeking back far enough to reach that record batch's start reads the
//! skipped records again; how far is unknown, so each rewind for the same
//! offset goes twice as far back as the one before. Records read twice are
//! the consumer's to skip (the rollup drops those below its committed
//! offset, the budget service's ledger ignores what it has counted).
//!
//! A rewind that reached the start of the partition, or went back
//! [`RewindGuard::MAX_STEP`] records, and still resumed past the offset
//! means no record batch holds it: the offsets are missing from the log
//! (compaction, transaction markers), and the consumer reads on. The cap
//! bounds what one gap costs: without it, a gap far into a partition was
//! accepted only after rewinds back to its start.

/// What to do with the first message the broker delivered for an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At or before the offset asked for: read on.
    Accept,
    /// Past it: drop what was delivered and seek back to `to`.
    Rewind { to: i64 },
    /// Still past it after rewinding as far as the guard goes: the gap is
    /// real, read on from what was delivered.
    GiveUp,
}

/// The rewinds of one partition. Pure: the consumer seeks and logs.
#[derive(Debug, Default, Clone, Copy)]
pub struct RewindGuard {
    rewinding: Option<Rewinding>,
}

/// The rewind in progress: for which offset, and how far back it went.
#[derive(Debug, Clone, Copy)]
struct Rewinding {
    target: i64,
    step: i64,
}

impl RewindGuard {
    /// The first rewind (both services' guards started there before they
    /// shared this one): a short replay when the record batch is small, and
    /// a few doublings reach a large one.
    pub const FIRST_STEP: i64 = 256;
    /// The furthest rewind: more records than one record batch can hold. A
    /// batch is at most the broker's `message.max.bytes` (1 MB by default)
    /// and each record in it takes several bytes even when empty (length,
    /// attributes, timestamp and offset deltas, key, value and header
    /// counts), so fewer than 2^20 records fit.
    pub const MAX_STEP: i64 = 1 << 20;

    /// Checks a resume: `expected` is the offset the partition should have
    /// resumed at, `got` the offset of the first message delivered.
    ///
    /// Rewinds for the same `expected` offset go twice as far back each
    /// time; a delivery at or before it ends the rewind, and another offset
    /// starts over. A consumer that reads on from where a rewind landed
    /// (the budget service) may check every message: deliveries below the
    /// offset being rewound for leave the rewind as it is, so a gap that
    /// is real is still recognised once the reading reaches it again.
    pub fn check(&mut self, expected: i64, got: i64) -> Verdict {
        if got <= expected {
            // Reading on below the offset being rewound for is not yet
            // reaching it.
            if self.rewinding.is_none_or(|r| expected >= r.target) {
                self.rewinding = None;
            }
            return Verdict::Accept;
        }
        let previous = self.rewinding.filter(|r| r.target == expected).map(|r| r.step);
        if previous.is_some_and(|step| step >= expected || step >= Self::MAX_STEP) {
            self.rewinding = None;
            return Verdict::GiveUp;
        }
        let step = previous.map_or(Self::FIRST_STEP, |s| (s * 2).min(Self::MAX_STEP));
        self.rewinding = Some(Rewinding { target: expected, step });
        Verdict::Rewind { to: (expected - step).max(0) }
    }

    /// Whether a rewind is in progress.
    pub fn is_rewinding(&self) -> bool {
        self.rewinding.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdicts for a broker that keeps resuming past `expected`.
    fn rewinds_while_past(guard: &mut RewindGuard, expected: i64) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        loop {
            let v = guard.check(expected, expected + 10);
            verdicts.push(v);
            if v == Verdict::GiveUp {
                return verdicts;
            }
        }
    }

    #[test]
    fn a_resume_at_or_before_the_offset_is_accepted() {
        let mut g = RewindGuard::default();
        assert_eq!(g.check(1000, 1000), Verdict::Accept);
        assert_eq!(g.check(1000, 700), Verdict::Accept);
        assert!(!g.is_rewinding());
    }

    #[test]
    fn a_resume_past_the_offset_rewinds_twice_as_far_each_time() {
        let mut g = RewindGuard::default();
        assert_eq!(g.check(10_000, 10_050), Verdict::Rewind { to: 10_000 - 256 });
        assert_eq!(g.check(10_000, 10_050), Verdict::Rewind { to: 10_000 - 512 });
        assert_eq!(g.check(10_000, 10_050), Verdict::Rewind { to: 10_000 - 1024 });
        assert!(g.is_rewinding());
    }

    #[test]
    fn rewinds_are_capped_and_a_capped_rewind_that_fails_gives_up() {
        let expected = 1 << 30;
        let verdicts = rewinds_while_past(&mut RewindGuard::default(), expected);
        let steps: Vec<i64> =
            verdicts.iter().filter_map(|v| if let Verdict::Rewind { to } = v { Some(expected - to) } else { None }).collect();
        // 256, 512, … 1 << 20: 13 rewinds, then the gap is accepted.
        assert_eq!(steps, (8..=20).map(|bits| 1i64 << bits).collect::<Vec<_>>());
        assert_eq!(verdicts.last(), Some(&Verdict::GiveUp));
    }

    #[test]
    fn a_rewind_to_the_partition_start_that_fails_gives_up() {
        let mut g = RewindGuard::default();
        assert_eq!(g.check(300, 400), Verdict::Rewind { to: 44 });
        assert_eq!(g.check(300, 400), Verdict::Rewind { to: 0 });
        assert_eq!(g.check(300, 400), Verdict::GiveUp);
        // Accepting the gap ends the rewind: the next gap starts over.
        assert!(!g.is_rewinding());
        assert_eq!(g.check(300, 400), Verdict::Rewind { to: 44 });
    }

    #[test]
    fn a_successful_resume_resets_the_step() {
        let mut g = RewindGuard::default();
        g.check(5000, 5100);
        g.check(5000, 5100);
        assert_eq!(g.check(5000, 4800), Verdict::Accept);
        assert!(!g.is_rewinding());
        assert_eq!(g.check(5000, 5100), Verdict::Rewind { to: 5000 - 256 });
    }

    #[test]
    fn another_offset_starts_over() {
        let mut g = RewindGuard::default();
        g.check(5000, 5100);
        g.check(5000, 5100);
        assert_eq!(g.check(7000, 7100), Verdict::Rewind { to: 7000 - 256 });
    }

    #[test]
    fn reading_on_below_the_offset_keeps_the_rewind_until_it_is_reached() {
        let mut g = RewindGuard::default();
        assert_eq!(g.check(100, 101), Verdict::Rewind { to: 0 });
        // The budget service reads 0..=99 again, checking each message.
        for offset in 0..100 {
            assert_eq!(g.check(offset, offset), Verdict::Accept);
        }
        assert!(g.is_rewinding());
        // 100 is still missing after a rewind to the start: a real gap.
        assert_eq!(g.check(100, 101), Verdict::GiveUp);
        assert_eq!(g.check(102, 102), Verdict::Accept);
        assert!(!g.is_rewinding());
    }

    #[test]
    fn reaching_the_offset_ends_the_rewind() {
        let mut g = RewindGuard::default();
        g.check(1000, 1024);
        for offset in 744..=1000 {
            assert_eq!(g.check(offset, offset), Verdict::Accept);
        }
        assert!(!g.is_rewinding());
    }
}
