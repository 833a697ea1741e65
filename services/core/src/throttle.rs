//! What the budget service publishes for gateways: throttle commands.
//! (Its alerts for people are in `alert`.) The wire format is in
//! `avro::records`.

use rust_decimal::Decimal;

use crate::budget::ThrottleState;
use crate::money::Currency;

/// What a gateway must do for one tenant. Readers keep the highest
/// `version` per tenant, whatever order commands arrive in.
#[derive(Debug, Clone, PartialEq)]
pub struct ThrottleCommand {
    pub tenant_id: String,
    pub version: i64,
    pub state: ThrottleState,
    /// The model to serve instead, for `Degrade`.
    pub target_model: Option<String>,
    pub reason: String,
    pub period_start_micros: i64,
    /// A block lasts until here (HTTP `Retry-After`).
    pub period_end_micros: i64,
    pub spend: Decimal,
    /// `None` when the tenant has no budget (any more).
    pub limit: Option<Decimal>,
    pub currency: Option<Currency>,
    pub budget_version: Option<i64>,
    pub issued_at_micros: i64,
}
