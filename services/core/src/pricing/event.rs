//! Prices one usage event: Σ quantity × unit_price / per, exact.

use rust_decimal::Decimal;

use super::book::PriceBook;
use crate::money::Currency;
use crate::usage::{Unit, UsageEvent};

/// The cost of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventCost {
    Priced {
        currency: Currency,
        amount: Decimal,
    },
    /// Some quantity has no price in force. The event is still stored and
    /// counted, flagged, so it can be repriced once a price arrives; it is
    /// never silently free.
    Unpriced {
        missing: Unit,
    },
}

impl EventCost {
    pub fn is_priced(&self) -> bool {
        matches!(self, EventCost::Priced { .. })
    }
}

/// Prices `event` with the rates in force at its `occurred_at`.
pub fn price_event(book: &PriceBook, event: &UsageEvent<'_>) -> EventCost {
    let first_used = || event.quantities.iter().find(|(_, q)| *q != 0).map(|(u, _)| u).unwrap_or(Unit::Request);
    let Some(rates) = book.rates(&event.tenant_id, event.provider(), event.model(), event.occurred_at_micros) else {
        return EventCost::Unpriced { missing: first_used() };
    };
    let mut amount = Decimal::ZERO;
    for (unit, q) in event.quantities.iter() {
        if q == 0 {
            continue;
        }
        let Some(cost) = rates.rate(unit).and_then(|r| r.cost(q)) else {
            return EventCost::Unpriced { missing: unit };
        };
        let Some(sum) = amount.checked_add(cost) else {
            return EventCost::Unpriced { missing: unit };
        };
        amount = sum;
    }
    EventCost::Priced { currency: rates.currency, amount }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::PriceEntry;
    use crate::usage::{Kind, Quantities, Source};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use std::borrow::Cow;
    use std::str::FromStr;

    fn book() -> PriceBook {
        let e = |unit, price: &str| PriceEntry {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            unit,
            unit_price: Decimal::from_str(price).unwrap(),
            per: Decimal::from(1_000_000),
            currency: Currency::USD,
            effective_from: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        };
        PriceBook::build(&[e(Unit::InputToken, "2.50"), e(Unit::OutputToken, "10.00"), e(Unit::CachedInputToken, "1.25")], &[]).unwrap()
    }

    fn event(input: i64, output: i64, cached: i64) -> UsageEvent<'static> {
        let mut q = Quantities::default();
        q[Unit::InputToken] = input;
        q[Unit::OutputToken] = output;
        q[Unit::CachedInputToken] = cached;
        UsageEvent {
            event_id: Cow::Borrowed("67e55044-10b1-426f-9247-bb680e5fe0c8"),
            tenant_id: Cow::Borrowed("acme"),
            occurred_at_micros: Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap().timestamp_micros(),
            source: Source::Gateway,
            kind: Kind::Chat,
            provider: Some(Cow::Borrowed("openai")),
            model: Some(Cow::Borrowed("gpt-4o")),
            quantities: q,
            attributes: vec![],
        }
    }

    #[test]
    fn sums_every_unit_exactly() {
        let cost = price_event(&book(), &event(1234, 567, 89));
        // 1234×2.5e-6 + 567×10e-6 + 89×1.25e-6
        assert_eq!(cost, EventCost::Priced { currency: Currency::USD, amount: Decimal::from_str("0.00886625").unwrap() });
    }

    #[test]
    fn unknown_models_and_unpriced_units_are_flagged() {
        let mut e = event(1, 0, 0);
        e.model = Some(Cow::Borrowed("gpt-9"));
        assert_eq!(price_event(&book(), &e), EventCost::Unpriced { missing: Unit::InputToken });
        let mut e = event(1, 0, 0);
        e.quantities[Unit::Request] = 1;
        assert_eq!(price_event(&book(), &e), EventCost::Unpriced { missing: Unit::Request });
    }

    proptest! {
        /// Pricing is linear: the cost of an event is the sum of the costs of
        /// its parts, to the last decimal place.
        #[test]
        fn cost_is_additive(a in 0i64..10_000_000, b in 0i64..10_000_000, c in 0i64..10_000_000) {
            let whole = price_event(&book(), &event(a, b, c));
            let parts: Decimal = [event(a, 0, 0), event(0, b, 0), event(0, 0, c)]
                .iter()
                .map(|e| match price_event(&book(), e) {
                    EventCost::Priced { amount, .. } => amount,
                    other => panic!("unpriced {other:?}"),
                })
                .sum();
            prop_assert_eq!(whole, EventCost::Priced { currency: Currency::USD, amount: parts });
        }
    }
}
