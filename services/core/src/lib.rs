//! Meterline's domain: the types every service shares and the pure functions
//! that give them meaning (validation, pricing, periods, the Avro wire format).
//!
//! Nothing in this crate performs I/O, so everything here is unit- and
//! property-testable and can be benchmarked in-process.

pub mod alert;
pub mod avro;
pub mod budget;
pub mod config;
pub mod ids;
pub mod intake;
pub mod money;
pub mod period;
pub mod pricing;
pub mod throttle;
pub mod usage;
pub mod validate;
pub mod webhook;

pub use alert::{AlertKind, BudgetAlert};
pub use budget::{Budget, BudgetAction, Period, ThrottleState};
pub use ids::{EventId, TenantId};
pub use money::{Currency, Money};
pub use period::Month;
pub use pricing::{price_event, EventCost, OverrideRule, PriceBook, PriceEntry, PriceError, TenantOverride};
pub use throttle::ThrottleCommand;
pub use usage::{Kind, Quantities, Source, Unit, UsageEvent};
pub use validate::{validate, Rejection, ValidationPolicy};
