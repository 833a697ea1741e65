//! Prices and what things cost.
//!
//! [`PriceBook`] is the effective-dated price book with its tenants'
//! overrides, built once and then read on every event; [`price_event`]
//! prices one usage event with it; [`csv`] is the book's file format.

pub mod csv;

mod book;
mod error;
mod event;
mod overrides;
mod rate;

pub use book::{PriceBook, PriceEntry, Rates, ANY_MODEL};
pub use error::PriceError;
pub use event::{price_event, EventCost};
pub use overrides::{OverrideRule, TenantOverride};
pub use rate::{Rate, COST_PLACES};
