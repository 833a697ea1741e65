//! The service's notion of "now". Budget periods turn over at midnight on
//! the first of a month, which tests cannot wait for, so the clock can be
//! read from a file (`METERLINE_BUDGET_CLOCK_FILE`, an RFC 3339 instant)
//! that a test rewrites to move time.

use chrono::{DateTime, Utc};
use tracing::warn;

#[derive(Debug, Clone, Default)]
pub struct Clock {
    file: Option<std::path::PathBuf>,
}

impl Clock {
    pub fn system() -> Self {
        Self { file: None }
    }

    pub fn from_file(path: impl Into<std::path::PathBuf>) -> Self {
        Self { file: Some(path.into()) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let Some(path) = &self.file else { return Utc::now() };
        match std::fs::read_to_string(path).map(|s| DateTime::parse_from_rfc3339(s.trim())) {
            Ok(Ok(t)) => t.with_timezone(&Utc),
            Ok(Err(e)) => {
                warn!(path = %path.display(), error = %e, "clock file is not an RFC 3339 instant; using the system clock");
                Utc::now()
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "clock file unreadable; using the system clock");
                Utc::now()
            }
        }
    }
}
