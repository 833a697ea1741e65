//! The notifier's configuration: defaults that run against the local stack,
//! each overridable by an environment variable.

use std::time::Duration;

use lettre::message::Mailbox;
use meterline_core::config::{defaults, Env, SecretUrl};

use crate::schedule::Schedule;
use crate::webhook::address::Net;
use crate::NotifyError;

#[derive(Debug, Clone)]
pub struct Config {
    /// `METERLINE_KAFKA_BROKERS`.
    pub brokers: String,
    /// `METERLINE_ALERTS_TOPIC`: the alerts to deliver.
    pub alerts_topic: String,
    /// `METERLINE_THROTTLE_TOPIC`: throttle commands, read for blocked and
    /// recovered notices.
    pub throttle_topic: String,
    /// `METERLINE_NOTIFY_GROUP`: consumer group shared by all instances.
    pub group_id: String,
    /// `METERLINE_DATABASE_URL`: channels and the delivery outbox.
    pub database_url: SecretUrl,
    /// `METERLINE_NOTIFY_LISTEN`: `/metrics` and `/health`.
    pub listen: String,
    /// `METERLINE_NOTIFY_RETRY_SCHEDULE`: waits before each attempt, e.g.
    /// `0s,5s,5m,30m,2h,5h,10h,10h` (the default).
    pub schedule: Schedule,
    /// `METERLINE_NOTIFY_CONCURRENCY`: most deliveries in flight per instance.
    pub concurrency: usize,
    /// `METERLINE_NOTIFY_ATTEMPT_TIMEOUT_MS`: longest one attempt may take.
    pub attempt_timeout: Duration,
    /// `METERLINE_NOTIFY_POLL_MS`: how often an idle sender looks for due
    /// deliveries; a bound on how late a new delivery starts.
    pub poll: Duration,
    /// `METERLINE_KAFKA_SESSION_TIMEOUT_MS`, as for the rollup: how soon the
    /// group hands a dead instance's alert partitions to the others.
    pub session_timeout_ms: u32,
    /// `METERLINE_WEBHOOK_ALLOW_NETS`: comma-separated networks webhooks may
    /// reach although they are not public (e.g. `127.0.0.1/32`). Empty: only
    /// public addresses.
    pub webhook_allow: Vec<Net>,
    /// `METERLINE_SMTP_URL`: the server email goes through, e.g.
    /// `smtp://host:587?tls=required` (STARTTLS) or `smtps://user:pw@host`.
    pub smtp_url: SecretUrl,
    /// `METERLINE_SMTP_FROM`: the sender, `Name <address>` or an address.
    pub smtp_from: Mailbox,
}

/// The sender when none is configured: `.invalid` never resolves, so a
/// server that checks senders refuses it until a real one is set.
const SMTP_FROM: &str = "Meterline <alerts@meterline.invalid>";

impl Config {
    pub fn from_env() -> Result<Self, NotifyError> {
        Self::from(&Env::process())
    }

    pub fn from(env: &Env) -> Result<Self, NotifyError> {
        let attempt_timeout = Duration::from_millis(env.parse("METERLINE_NOTIFY_ATTEMPT_TIMEOUT_MS", 10_000)?);
        let concurrency: usize = env.parse("METERLINE_NOTIFY_CONCURRENCY", 64)?;
        if !(1..=1024).contains(&concurrency) {
            return Err(NotifyError::Config(format!("METERLINE_NOTIFY_CONCURRENCY={concurrency}: 1 to 1024")));
        }
        let webhook_allow = env
            .get("METERLINE_WEBHOOK_ALLOW_NETS")
            .map(|list| list.split(',').filter(|s| !s.trim().is_empty()).map(str::parse).collect::<Result<Vec<Net>, _>>())
            .transpose()
            .map_err(|e| NotifyError::Config(format!("METERLINE_WEBHOOK_ALLOW_NETS: {e}")))?
            .unwrap_or_default();
        let smtp_from = env.string("METERLINE_SMTP_FROM", SMTP_FROM);
        let smtp_from = smtp_from.parse().map_err(|e| NotifyError::Config(format!("METERLINE_SMTP_FROM={smtp_from:?}: {e}")))?;
        Ok(Self {
            brokers: env.string("METERLINE_KAFKA_BROKERS", defaults::KAFKA_BROKERS),
            alerts_topic: env.string("METERLINE_ALERTS_TOPIC", defaults::ALERTS_TOPIC),
            throttle_topic: env.string("METERLINE_THROTTLE_TOPIC", defaults::THROTTLE_TOPIC),
            group_id: env.string("METERLINE_NOTIFY_GROUP", defaults::NOTIFY_GROUP),
            database_url: meterline_storage::postgres::database_url(env),
            listen: env.string("METERLINE_NOTIFY_LISTEN", defaults::NOTIFY_LISTEN),
            schedule: env.parse("METERLINE_NOTIFY_RETRY_SCHEDULE", Schedule::default())?,
            concurrency,
            attempt_timeout,
            poll: Duration::from_millis(env.parse("METERLINE_NOTIFY_POLL_MS", 100)?),
            session_timeout_ms: env.parse("METERLINE_KAFKA_SESSION_TIMEOUT_MS", 10_000)?,
            webhook_allow,
            smtp_url: SecretUrl::new(env.string("METERLINE_SMTP_URL", defaults::SMTP_URL)),
            smtp_from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_locally_and_bad_values_name_their_variable() {
        let c = Config::from(&Env::from_pairs(&[])).unwrap();
        assert_eq!(c.schedule.attempts(), 8);
        assert!(c.webhook_allow.is_empty());
        assert_eq!(c.smtp_from.email.to_string(), "alerts@meterline.invalid");
        assert_eq!(c.smtp_url.expose(), defaults::SMTP_URL);
        let c = Config::from(&Env::from_pairs(&[("METERLINE_WEBHOOK_ALLOW_NETS", "127.0.0.1/32, ::1")])).unwrap();
        assert_eq!(c.webhook_allow.len(), 2);
        for (var, value) in [
            ("METERLINE_WEBHOOK_ALLOW_NETS", "localhost"),
            ("METERLINE_NOTIFY_RETRY_SCHEDULE", "soon"),
            ("METERLINE_NOTIFY_CONCURRENCY", "0"),
            ("METERLINE_SMTP_FROM", "alerts at example"),
        ] {
            let err = Config::from(&Env::from_pairs(&[(var, value)])).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }
}
