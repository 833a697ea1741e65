//! Emitting usage events, safely and cheaply.
//!
//! ```no_run
//! # async fn f(event: meterline_core::UsageEvent<'_>) -> Result<(), meterline_sdk::EmitError> {
//! let emitter = meterline_sdk::Emitter::new(meterline_sdk::EmitterConfig::from_env()?)?;
//! // Enqueue (waits only if too many events are unacknowledged)...
//! let delivery = emitter.emit(&event).await?;
//! // ...and, where it matters, wait until the broker has it.
//! let receipt = delivery.await?;
//! # Ok(()) }
//! ```
//!
//! Events are validated before they leave (an invalid event is refused, not
//! sent), encoded in the Avro single-object format, keyed by tenant and
//! produced with an idempotent producer (`acks=all`). At most
//! `max_in_flight` events are unacknowledged at once; beyond that `emit`
//! waits, which is the back-pressure a gateway wants instead of unbounded
//! memory. Success is reported only once the broker acknowledged.
//!
//! Give each event a time-ordered id, [`meterline_core::EventId::generate`]
//! (UUIDv7), and send a retried event with the same id: it is counted once.
//! Random ids are accepted too, but make the rollup's duplicate lookup read
//! the whole month instead of its end (see [`meterline_core::EventId`]).
//!
//! The other direction: a [`ThrottleWatcher`] follows the budget service's
//! throttle commands and answers [`Decisions::decision`] from memory.

mod config;
mod decision;
mod delivery;
mod emitter;
mod error;
mod watcher;

pub use config::EmitterConfig;
pub use decision::{Command, CommandTable, Decision, Decisions, FailMode};
pub use delivery::{Delivery, Receipt};
pub use emitter::Emitter;
pub use error::EmitError;
pub use watcher::{ThrottleWatcher, WatcherConfig};
