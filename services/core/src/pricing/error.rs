//! Why a price book cannot be built.

use rust_decimal::Decimal;

use super::rate::COST_PLACES;
use crate::money::Currency;
use crate::usage::Unit;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PriceError {
    #[error("{provider}/{model} {unit}: per must be positive, got {per}")]
    NonPositivePer { provider: String, model: String, unit: Unit, per: Decimal },
    #[error("{provider}/{model} {unit}: unit_price must not be negative, got {price}")]
    NegativePrice { provider: String, model: String, unit: Unit, price: Decimal },
    #[error(
        "{provider}/{model} {unit}: {price} per {per} is not an exact price per unit within {COST_PLACES} decimal places, \
         and costs are kept exact; quote it per a power of ten"
    )]
    InexactRate { provider: String, model: String, unit: Unit, price: Decimal, per: Decimal },
    #[error("{provider}/{model} is priced in both {a} and {b}; one model has one currency")]
    MixedCurrency { provider: String, model: String, a: Currency, b: Currency },
    #[error("override for {tenant} on {provider}/{model}: {reason}")]
    BadOverride { tenant: String, provider: String, model: String, reason: String },
}
