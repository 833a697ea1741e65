//! How long to wait before retrying a dependency that failed: the rollup's
//! writes to ClickHouse and the dead-letter topic, the budget service's
//! ledger transactions. One schedule for both, so an outage looks the same
//! in every service's logs and health.
//!
//! No jitter: jitter spreads many clients that would otherwise retry in
//! step against one server. Here the rollup retries from one loop per
//! instance, and the budget service from one loop per partition, whose
//! transactions are bounded by its connection pool: a handful of retries
//! at once every few seconds at most, nothing worth spreading. Fixed delays
//! keep the logged `retry_in` exact and the tests deterministic.

use std::time::Duration;

/// Capped exponential backoff: `initial`, then twice the previous delay,
/// never more than `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// The first retry after 100 ms rides out a blip (a restart, a dropped
    /// connection) at once; the 5 s cap notices a recovered dependency
    /// within 5 s without retrying a dead one more than once a few seconds.
    pub const INITIAL: Duration = Duration::from_millis(100);
    pub const CAP: Duration = Duration::from_secs(5);

    /// A schedule from `initial` doubling up to `cap` (an `initial` above
    /// `cap` starts at `cap`).
    pub const fn new(initial: Duration, cap: Duration) -> Self {
        let initial = if initial.as_nanos() > cap.as_nanos() { cap } else { initial };
        Self { initial, cap, next: initial }
    }

    /// The delay to wait now; the one after it is twice as long (capped).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.cap);
        delay
    }

    /// Back to the initial delay, after the dependency answered again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    /// [`Backoff::INITIAL`] doubling up to [`Backoff::CAP`].
    fn default() -> Self {
        Self::new(Self::INITIAL, Self::CAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_double_from_the_initial_one_up_to_the_cap() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..9).map(|_| b.next_delay()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000].map(ms));
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(ms(10), ms(1000));
        for _ in 0..4 {
            b.next_delay();
        }
        b.reset();
        assert_eq!((b.next_delay(), b.next_delay()), (ms(10), ms(20)));
    }

    #[test]
    fn an_initial_delay_above_the_cap_is_the_cap() {
        let mut b = Backoff::new(ms(300), ms(200));
        assert_eq!((b.next_delay(), b.next_delay()), (ms(200), ms(200)));
    }

    #[test]
    fn huge_delays_saturate_instead_of_overflowing() {
        let mut b = Backoff::new(Duration::MAX / 2 + ms(1), Duration::MAX);
        b.next_delay();
        assert_eq!(b.next_delay(), Duration::MAX);
    }
}
