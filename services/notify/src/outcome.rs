//! What one delivery attempt came to, whatever the channel: the outbox
//! turns it into the delivery's next state.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver took it (a 2xx; the SMTP server accepted it).
    Delivered { status: Option<u16> },
    /// Failed in a way that may pass: try again per the schedule, or later
    /// if the receiver asked (`Retry-After`).
    Retry { error: String, status: Option<u16>, retry_after: Option<Duration> },
    /// Will fail the same way every time: no more attempts. `disable` also
    /// turns the channel off (HTTP 410 Gone: the receiver says it is gone).
    Permanent { error: String, status: Option<u16>, disable: bool },
}

impl Attempt {
    pub fn outcome(&self) -> &'static str {
        match self {
            Attempt::Delivered { .. } => "delivered",
            Attempt::Retry { .. } => "retry",
            Attempt::Permanent { .. } => "permanent",
        }
    }
}

/// An error and its causes on one line, at most 1 000 characters: the
/// clients' own messages are often just "error sending request", and the
/// stored `last_error` must say why.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out.chars().take(1000).collect()
}
