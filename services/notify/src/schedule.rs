//! When a failed delivery is tried again. The default follows what webhook
//! providers converged on (Svix, Standard Webhooks' reference): at once,
//! then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, about a day and a half
//! in all, so an endpoint down over a night still gets its alerts. Each wait
//! is spread by up to ±10 % so deliveries that failed together (one endpoint
//! down) do not all come back in the same instant, and a `Retry-After` the
//! receiver sent is honoured when it asks for longer.

use std::time::Duration;

/// Waits before each attempt: the first entry before the first attempt
/// (normally 0), then one per retry. Its length is the number of attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(Vec<Duration>);

/// The longest `Retry-After` honoured: a receiver cannot park a delivery
/// beyond the schedule's own longest wait by asking for more.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10 * 3600);

impl Default for Schedule {
    fn default() -> Self {
        let s = |secs| Duration::from_secs(secs);
        Self(vec![s(0), s(5), s(300), s(1800), s(7200), s(18_000), s(36_000), s(36_000)])
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    /// A comma-separated list of waits with units: `0s,5s,5m,30m,2h`
    /// (`ms`, `s`, `m`, `h`), e.g. a schedule of seconds for tests.
    fn from_str(s: &str) -> Result<Self, String> {
        let waits = s.split(',').map(|w| parse_wait(w.trim())).collect::<Result<Vec<_>, _>>()?;
        if waits.is_empty() || waits.len() > 50 {
            return Err(format!("a schedule has 1 to 50 attempts, not {}", waits.len()));
        }
        Ok(Self(waits))
    }
}

fn parse_wait(w: &str) -> Result<Duration, String> {
    let split = w.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| format!("{w:?} has no unit (ms, s, m, h)"))?;
    let (n, unit) = w.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{w:?} does not start with a number"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        _ => return Err(format!("{w:?}: the unit is ms, s, m or h")),
    };
    Ok(Duration::from_millis(ms))
}

impl Schedule {
    /// How many attempts a delivery gets.
    pub fn attempts(&self) -> u32 {
        self.0.len() as u32
    }

    /// After attempt `attempt` (1-based) failed retriably: how long until the
    /// next one, or `None` if that was the last. `jitter` in [-1, 1] spreads
    /// the wait by up to ±10 %; `retry_after` is the receiver's request.
    pub fn next_wait(&self, attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Option<Duration> {
        let base = *self.0.get(attempt as usize)?;
        let spread = base.mul_f64(1.0 + 0.1 * jitter.clamp(-1.0, 1.0));
        Some(spread.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_eight_attempts_over_about_a_day_and_a_half() {
        let s = Schedule::default();
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.next_wait(1, 0.0, None), Some(Duration::from_secs(5)));
        assert_eq!(s.next_wait(2, 0.0, None), Some(Duration::from_secs(300)));
        assert_eq!(s.next_wait(7, 0.0, None), Some(Duration::from_secs(36_000)));
        assert_eq!(s.next_wait(8, 0.0, None), None, "the eighth attempt was the last");
        let total: Duration = (1..8).filter_map(|a| s.next_wait(a, 0.0, None)).sum();
        assert_eq!(total.as_secs(), 5 + 300 + 1800 + 7200 + 18_000 + 36_000 + 36_000);
    }

    #[test]
    fn jitter_spreads_by_ten_percent_at_most_and_retry_after_can_only_lengthen() {
        let s = Schedule::default();
        assert_eq!(s.next_wait(2, 1.0, None), Some(Duration::from_secs(330)));
        assert_eq!(s.next_wait(2, -7.0, None), Some(Duration::from_secs(270)));
        assert_eq!(s.next_wait(1, 0.0, Some(Duration::from_secs(60))), Some(Duration::from_secs(60)));
        assert_eq!(s.next_wait(2, 0.0, Some(Duration::from_secs(1))), Some(Duration::from_secs(300)));
        assert_eq!(s.next_wait(1, 0.0, Some(Duration::from_secs(999_999))), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn schedules_parse_with_units_and_bad_ones_say_why() {
        let s: Schedule = "0s, 200ms,1s,2m,1h".parse().unwrap();
        assert_eq!(s.attempts(), 5);
        assert_eq!(s.next_wait(1, 0.0, None), Some(Duration::from_millis(200)));
        assert_eq!(s.next_wait(4, 0.0, None), Some(Duration::from_secs(3600)));
        assert!("5".parse::<Schedule>().unwrap_err().contains("unit"));
        assert!("5d".parse::<Schedule>().unwrap_err().contains("ms, s, m or h"));
        assert!("x5s".parse::<Schedule>().is_err());
    }
}
