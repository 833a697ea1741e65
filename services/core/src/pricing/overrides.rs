//! Per-tenant prices: a negotiated rate or a discount off the list price,
//! effective-dated like list prices.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::error::PriceError;
use super::rate::{Rate, COST_PLACES};
use crate::ids::TenantId;
use crate::usage::Unit;

/// How a tenant's price differs from the list price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OverrideRule {
    /// A negotiated rate replacing the list price, in the model's currency.
    Rate { unit_price: Decimal, per: Decimal },
    /// A percentage off the list price (10 means pay 90%).
    DiscountPercent { percent: Decimal },
}

/// A per-tenant override, effective-dated like list prices. `unit: None`
/// applies to every unit of the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantOverride {
    pub tenant: TenantId,
    pub provider: String,
    pub model: String,
    pub unit: Option<Unit>,
    pub rule: OverrideRule,
    pub effective_from: DateTime<Utc>,
}

pub(super) fn check_override(o: &TenantOverride) -> Result<(), PriceError> {
    let bad = |reason: &str| PriceError::BadOverride {
        tenant: o.tenant.to_string(),
        provider: o.provider.clone(),
        model: o.model.clone(),
        reason: reason.to_owned(),
    };
    match &o.rule {
        OverrideRule::Rate { unit_price, per } => {
            if *per <= Decimal::ZERO || *unit_price < Decimal::ZERO {
                return Err(bad("rate needs unit_price >= 0 and per > 0"));
            }
            if !Rate::new(*unit_price, *per).is_exact() {
                return Err(bad(&format!(
                    "{unit_price} per {per} is not an exact price per unit within {COST_PLACES} decimal places; quote it per a power of ten"
                )));
            }
        }
        OverrideRule::DiscountPercent { percent } => {
            if *percent < Decimal::ZERO || *percent > Decimal::ONE_HUNDRED {
                return Err(bad("discount must be between 0 and 100 percent"));
            }
        }
    }
    Ok(())
}
