//! A rate: a price quoted per some number of units, and what a quantity
//! costs at it, exactly.

use rust_decimal::Decimal;

/// Decimal places a cost may have: what the stored money columns keep
/// (`Decimal(38, 18)`). A rate whose price of one unit needs more would give
/// costs that could only be stored rounded, so the price book refuses it.
pub const COST_PLACES: u32 = 18;

/// A rate in force: cost of `q` units is `q × unit_price / per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub(super) unit_price: Decimal,
    pub(super) per: Decimal,
    /// `unit_price / per` when that quotient is exact (it is for the usual
    /// powers of ten), so pricing multiplies instead of dividing.
    per_unit: Option<Decimal>,
}

impl Rate {
    pub fn new(unit_price: Decimal, per: Decimal) -> Self {
        let per_unit = unit_price.checked_div(per).filter(|q| q.checked_mul(per) == Some(unit_price));
        Self { unit_price, per, per_unit }
    }

    /// Whether every cost at this rate is exact within [`COST_PLACES`]: the
    /// price of one unit is, so a whole number of units is too.
    pub fn is_exact(&self) -> bool {
        self.per_unit.is_some_and(|r| r.normalize().scale() <= COST_PLACES)
    }

    /// Exact cost of `quantity` units; `None` only on decimal overflow.
    pub fn cost(&self, quantity: i64) -> Option<Decimal> {
        let q = Decimal::from(quantity);
        match self.per_unit {
            Some(r) => q.checked_mul(r),
            None => q.checked_mul(self.unit_price)?.checked_div(self.per),
        }
    }

    /// `None` on overflow, or if the discounted rate is not exact (see
    /// `book::check_discount`: the book refuses such a discount of a list price
    /// it knows; one that a later list price makes inexact leaves the unit
    /// unpriced rather than rounded).
    pub(super) fn discounted(&self, percent: Decimal) -> Option<Rate> {
        let factor = (Decimal::ONE_HUNDRED - percent).checked_div(Decimal::ONE_HUNDRED)?;
        Some(Rate::new(self.unit_price.checked_mul(factor)?, self.per)).filter(Rate::is_exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn inexact_quotients_are_divided_at_pricing_time() {
        let r = Rate::new(d("1"), d("3"));
        assert_eq!(r.cost(3), Some(d("1")));
    }
}
