//! Calendar periods in UTC: hour buckets for rollups, months for budgets and
//! invoices.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_HOUR: i64 = 3_600 * MICROS_PER_SECOND;

/// Start of the UTC hour containing `micros`, in whole seconds (ClickHouse
/// `DateTime` has second resolution).
pub fn hour_start_secs(micros: i64) -> i64 {
    micros.div_euclid(MICROS_PER_HOUR) * 3_600
}

pub fn micros_to_datetime(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("month {0:?} is not of the form YYYY-MM")]
pub struct MonthError(pub String);

/// A calendar month, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    pub fn new(year: i32, month: u32) -> Option<Self> {
        (1..=12).contains(&month).then_some(Self { year, month })
    }

    pub fn parse(s: &str) -> Result<Self, MonthError> {
        let err = || MonthError(s.to_owned());
        let (y, m) = s.split_once('-').ok_or_else(err)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(err());
        }
        let year = y.parse().map_err(|_| err())?;
        let month = m.parse().map_err(|_| err())?;
        Self::new(year, month).ok_or_else(err)
    }

    pub fn containing(t: DateTime<Utc>) -> Self {
        Self { year: t.year(), month: t.month() }
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid month")
    }

    pub fn next(self) -> Self {
        if self.month == 12 {
            Self { year: self.year + 1, month: 1 }
        } else {
            Self { year: self.year, month: self.month + 1 }
        }
    }

    pub fn start(self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&self.first_day().and_hms_opt(0, 0, 0).expect("midnight"))
    }

    /// Exclusive end: the start of the next month.
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }

    /// `YYYYMM`, as ClickHouse's `toYYYYMM` returns it.
    pub fn yyyymm(self) -> u32 {
        self.year as u32 * 100 + self.month
    }
}

impl FromStr for Month {
    type Err = MonthError;
    fn from_str(s: &str) -> Result<Self, MonthError> {
        Month::parse(s)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_roll_over() {
        let m = Month::parse("2026-12").unwrap();
        assert_eq!(m.next().to_string(), "2027-01");
        assert_eq!(m.start().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(m.end().to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert_eq!(m.yyyymm(), 202612);
        assert!(Month::parse("2026-13").is_err());
        assert!(Month::parse("26-01").is_err());
    }

    #[test]
    fn hours_floor_towards_the_past() {
        assert_eq!(hour_start_secs(MICROS_PER_HOUR + 5), 3_600);
        assert_eq!(hour_start_secs(-1), -3_600);
    }
}
