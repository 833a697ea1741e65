//! The effective-dated price book.
//!
//! Prices are quoted as `unit_price` per `per` units of one [`Unit`] of a
//! `(provider, model)`, from `effective_from` on. The book is built once from
//! its entries (Postgres holds them) into a lookup structure whose hot path
//! is two borrowed-`str` hash lookups and a binary search, with no allocation.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::error::PriceError;
use super::overrides::{check_override, OverrideRule, TenantOverride};
use super::rate::{Rate, COST_PLACES};
use crate::money::Currency;
use crate::usage::Unit;

/// The model name of a provider-wide price, used when the event's model has
/// no price of its own (vector stores and per-request fees are priced per
/// provider, and events for them often carry no model).
pub const ANY_MODEL: &str = "*";

/// One row of the price book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceEntry {
    pub provider: String,
    pub model: String,
    pub unit: Unit,
    pub unit_price: Decimal,
    pub per: Decimal,
    pub currency: Currency,
    pub effective_from: DateTime<Utc>,
}

/// Every unit's rate of one model from one instant on.
#[derive(Debug, Clone)]
struct Version {
    from_micros: i64,
    rates: [Option<Rate>; Unit::COUNT],
}

#[derive(Debug, Clone)]
struct ModelPrices {
    currency: Currency,
    /// Sorted by `from_micros`; each holds the full state at that instant.
    versions: Vec<Version>,
}

#[derive(Debug, Clone)]
struct OverrideVersion {
    from_micros: i64,
    rules: [Option<OverrideRule>; Unit::COUNT],
}

/// The rates that apply to one event: list prices with the tenant's
/// overrides applied.
#[derive(Debug, Clone, Copy)]
pub struct Rates<'b> {
    pub currency: Currency,
    list: &'b [Option<Rate>; Unit::COUNT],
    overrides: Option<&'b [Option<OverrideRule>; Unit::COUNT]>,
}

impl Rates<'_> {
    /// The rate of `unit`, or `None` if the unit has no price.
    pub fn rate(&self, unit: Unit) -> Option<Rate> {
        let list = self.list[unit.index()];
        match self.overrides.and_then(|o| o[unit.index()].as_ref()) {
            None => list,
            Some(OverrideRule::Rate { unit_price, per }) => Some(Rate::new(*unit_price, *per)),
            Some(OverrideRule::DiscountPercent { percent }) => list?.discounted(*percent),
        }
    }
}

type ByModel<T> = HashMap<String, HashMap<String, T>>;

/// The whole price book, ready for lookups.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    models: ByModel<ModelPrices>,
    overrides: HashMap<String, ByModel<Vec<OverrideVersion>>>,
    entries: usize,
}

impl PriceBook {
    pub fn build(entries: &[PriceEntry], overrides: &[TenantOverride]) -> Result<PriceBook, PriceError> {
        let mut models: ByModel<ModelPrices> = HashMap::new();
        let mut sorted: Vec<&PriceEntry> = entries.iter().collect();
        sorted.sort_by_key(|e| e.effective_from);
        for e in sorted {
            let rate = check_entry(e)?;
            let from = e.effective_from.timestamp_micros();
            let mp = models
                .entry(e.provider.clone())
                .or_default()
                .entry(e.model.clone())
                .or_insert_with(|| ModelPrices { currency: e.currency, versions: Vec::new() });
            if mp.currency != e.currency {
                return Err(PriceError::MixedCurrency {
                    provider: e.provider.clone(),
                    model: e.model.clone(),
                    a: mp.currency,
                    b: e.currency,
                });
            }
            let version = upsert_version(&mut mp.versions, from, |v| Version {
                from_micros: from,
                rates: v.map(|v| v.rates).unwrap_or([None; Unit::COUNT]),
            });
            // A change applies to its own version and every later one that
            // has not set the unit again; entries arrive sorted by date, so
            // later versions are created after this one and copy it.
            version.rates[e.unit.index()] = Some(rate);
        }

        let mut by_tenant: HashMap<String, ByModel<Vec<OverrideVersion>>> = HashMap::new();
        let mut sorted: Vec<&TenantOverride> = overrides.iter().collect();
        sorted.sort_by_key(|o| o.effective_from);
        for o in sorted {
            check_override(o)?;
            check_discount(o, &models)?;
            let from = o.effective_from.timestamp_micros();
            let versions = by_tenant
                .entry(o.tenant.as_str().to_owned())
                .or_default()
                .entry(o.provider.clone())
                .or_default()
                .entry(o.model.clone())
                .or_default();
            let version = upsert_version(versions, from, |v| OverrideVersion {
                from_micros: from,
                rules: v.map(|v| v.rules.clone()).unwrap_or_default(),
            });
            match o.unit {
                Some(u) => version.rules[u.index()] = Some(o.rule.clone()),
                None => version.rules = std::array::from_fn(|_| Some(o.rule.clone())),
            }
        }
        Ok(PriceBook { models, overrides: by_tenant, entries: entries.len() })
    }

    /// Number of list-price entries the book was built from.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The rates for `tenant` using `provider`/`model` at `at_micros`, or
    /// `None` if that model has no list price in force then.
    pub fn rates(&self, tenant: &str, provider: &str, model: &str, at_micros: i64) -> Option<Rates<'_>> {
        let by_model = self.models.get(provider)?;
        let (model_key, prices) = match by_model.get_key_value(model) {
            Some((k, p)) => (k.as_str(), p),
            None => (ANY_MODEL, by_model.get(ANY_MODEL)?),
        };
        let version = in_force(&prices.versions, at_micros, |v| v.from_micros)?;
        let overrides = self
            .overrides
            .get(tenant)
            .and_then(|p| p.get(provider))
            .and_then(|m| m.get(model_key))
            .and_then(|vs| in_force(vs, at_micros, |v| v.from_micros))
            .map(|v| &v.rules);
        Some(Rates { currency: prices.currency, list: &version.rates, overrides })
    }
}

/// The version in force at `at`: the last one starting at or before it.
fn in_force<T>(versions: &[T], at: i64, from: impl Fn(&T) -> i64) -> Option<&T> {
    let n = versions.partition_point(|v| from(v) <= at);
    n.checked_sub(1).map(|i| &versions[i])
}

/// Finds the version starting at `from`, or appends one built from the
/// latest earlier version. Callers feed dates in ascending order.
fn upsert_version<T>(versions: &mut Vec<T>, from: i64, new: impl FnOnce(Option<&T>) -> T) -> &mut T
where
    T: Dated,
{
    if versions.last().map(Dated::starts_at) != Some(from) {
        let v = new(versions.last());
        versions.push(v);
    }
    versions.last_mut().expect("just ensured")
}

/// Versions know the instant they start at.
trait Dated {
    fn starts_at(&self) -> i64;
}
impl Dated for Version {
    fn starts_at(&self) -> i64 {
        self.from_micros
    }
}
impl Dated for OverrideVersion {
    fn starts_at(&self) -> i64 {
        self.from_micros
    }
}

/// The entry's rate, if the entry is sound.
fn check_entry(e: &PriceEntry) -> Result<Rate, PriceError> {
    if e.per <= Decimal::ZERO {
        return Err(PriceError::NonPositivePer { provider: e.provider.clone(), model: e.model.clone(), unit: e.unit, per: e.per });
    }
    if e.unit_price < Decimal::ZERO {
        return Err(PriceError::NegativePrice { provider: e.provider.clone(), model: e.model.clone(), unit: e.unit, price: e.unit_price });
    }
    let rate = Rate::new(e.unit_price, e.per);
    if !rate.is_exact() {
        return Err(PriceError::InexactRate {
            provider: e.provider.clone(),
            model: e.model.clone(),
            unit: e.unit,
            price: e.unit_price,
            per: e.per,
        });
    }
    Ok(rate)
}

/// A discount must leave every list rate it may apply to exact (see
/// [`Rate::is_exact`]): its costs could otherwise only be stored rounded.
fn check_discount(o: &TenantOverride, models: &ByModel<ModelPrices>) -> Result<(), PriceError> {
    let OverrideRule::DiscountPercent { percent } = &o.rule else { return Ok(()) };
    let Some(prices) = models.get(&o.provider).and_then(|m| m.get(&o.model)) else { return Ok(()) };
    let inexact = prices.versions.iter().flat_map(|v| v.rates.iter().enumerate()).find_map(|(i, rate)| {
        let rate = rate.filter(|_| o.unit.is_none_or(|u| u.index() == i))?;
        rate.discounted(*percent).is_none().then_some(rate)
    });
    match inexact {
        None => Ok(()),
        Some(rate) => Err(PriceError::BadOverride {
            tenant: o.tenant.to_string(),
            provider: o.provider.clone(),
            model: o.model.clone(),
            reason: format!(
                "a {percent} % discount of {} per {} is not an exact price per unit within {COST_PLACES} decimal places",
                rate.unit_price, rate.per
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;
    use chrono::TimeZone;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn day(y: i32, m: u32, dd: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, dd, 0, 0, 0).unwrap()
    }

    fn entry(model: &str, unit: Unit, price: &str, from: DateTime<Utc>) -> PriceEntry {
        PriceEntry {
            provider: "openai".into(),
            model: model.into(),
            unit,
            unit_price: d(price),
            per: d("1000000"),
            currency: Currency::USD,
            effective_from: from,
        }
    }

    #[test]
    fn the_price_in_force_at_the_event_time_applies() {
        let book = PriceBook::build(
            &[
                entry("gpt-4o", Unit::InputToken, "5.00", day(2024, 5, 13)),
                entry("gpt-4o", Unit::OutputToken, "15.00", day(2024, 5, 13)),
                entry("gpt-4o", Unit::InputToken, "2.50", day(2024, 8, 6)),
            ],
            &[],
        )
        .unwrap();
        let at = |t: DateTime<Utc>| book.rates("t", "openai", "gpt-4o", t.timestamp_micros());
        assert!(at(day(2024, 5, 12)).is_none());
        let may = at(day(2024, 6, 1)).unwrap();
        assert_eq!(may.rate(Unit::InputToken).unwrap().cost(1_000_000), Some(d("5")));
        let aug = at(day(2024, 8, 6)).unwrap();
        assert_eq!(aug.rate(Unit::InputToken).unwrap().cost(1_000_000), Some(d("2.5")));
        // The output price set in May is still in force in August.
        assert_eq!(aug.rate(Unit::OutputToken).unwrap().cost(1), Some(d("0.000015")));
        assert!(aug.rate(Unit::EmbeddingToken).is_none());
    }

    #[test]
    fn tenant_overrides_replace_or_discount() {
        let tenant = TenantId::parse("acme").unwrap();
        let book = PriceBook::build(
            &[entry("gpt-4o", Unit::InputToken, "2.50", day(2024, 1, 1)), entry("gpt-4o", Unit::OutputToken, "10.00", day(2024, 1, 1))],
            &[
                TenantOverride {
                    tenant: tenant.clone(),
                    provider: "openai".into(),
                    model: "gpt-4o".into(),
                    unit: None,
                    rule: OverrideRule::DiscountPercent { percent: d("20") },
                    effective_from: day(2024, 2, 1),
                },
                TenantOverride {
                    tenant: tenant.clone(),
                    provider: "openai".into(),
                    model: "gpt-4o".into(),
                    unit: Some(Unit::OutputToken),
                    rule: OverrideRule::Rate { unit_price: d("7"), per: d("1000000") },
                    effective_from: day(2024, 3, 1),
                },
            ],
        )
        .unwrap();
        let cost = |tenant: &str, t: DateTime<Utc>, u: Unit| {
            book.rates(tenant, "openai", "gpt-4o", t.timestamp_micros()).unwrap().rate(u).unwrap().cost(1_000_000).unwrap()
        };
        assert_eq!(cost("acme", day(2024, 1, 15), Unit::InputToken), d("2.5"));
        assert_eq!(cost("acme", day(2024, 2, 15), Unit::InputToken), d("2"));
        assert_eq!(cost("acme", day(2024, 3, 15), Unit::InputToken), d("2"));
        assert_eq!(cost("acme", day(2024, 3, 15), Unit::OutputToken), d("7"));
        assert_eq!(cost("other", day(2024, 3, 15), Unit::OutputToken), d("10"));
    }

    #[test]
    fn a_provider_wide_price_covers_models_without_their_own() {
        let mut e = entry(ANY_MODEL, Unit::VectorQuery, "4", day(2024, 1, 1));
        e.provider = "pgvector".into();
        let book = PriceBook::build(&[e], &[]).unwrap();
        assert!(book.rates("t", "pgvector", "", day(2024, 2, 1).timestamp_micros()).is_some());
        assert!(book.rates("t", "pinecone", "", day(2024, 2, 1).timestamp_micros()).is_none());
    }

    #[test]
    fn mixed_currencies_and_bad_rates_are_refused() {
        let mut eur = entry("gpt-4o", Unit::OutputToken, "1", day(2024, 1, 1));
        eur.currency = Currency::EUR;
        let usd = entry("gpt-4o", Unit::InputToken, "1", day(2024, 1, 1));
        assert!(matches!(PriceBook::build(&[usd, eur], &[]), Err(PriceError::MixedCurrency { .. })));
        let mut zero_per = entry("gpt-4o", Unit::InputToken, "1", day(2024, 1, 1));
        zero_per.per = Decimal::ZERO;
        assert!(PriceBook::build(&[zero_per], &[]).is_err());
    }

    #[test]
    fn prices_whose_costs_would_need_rounding_are_refused() {
        let priced = |price: &str, per: &str| {
            let mut e = entry("gpt-4o", Unit::InputToken, price, day(2024, 1, 1));
            e.per = d(per);
            PriceBook::build(&[e], &[])
        };
        // A third of a unit has no end; 19 places are one too many.
        assert!(matches!(priced("1", "3"), Err(PriceError::InexactRate { .. })));
        assert!(matches!(priced("0.0000000000001", "1000000"), Err(PriceError::InexactRate { .. })));
        assert!(priced("0.000000000001", "1000000").is_ok(), "18 places are kept");
        assert!(priced("1.50", "3").is_ok(), "an exact quotient is fine whatever `per` is");

        let tenant = TenantId::parse("acme").unwrap();
        let list = entry("gpt-4o", Unit::InputToken, "0.000001", day(2024, 1, 1));
        let overriding = |rule| {
            let o = TenantOverride {
                tenant: tenant.clone(),
                provider: "openai".into(),
                model: "gpt-4o".into(),
                unit: None,
                rule,
                effective_from: day(2024, 2, 1),
            };
            PriceBook::build(std::slice::from_ref(&list), &[o])
        };
        assert!(matches!(overriding(OverrideRule::Rate { unit_price: d("1"), per: d("7") }), Err(PriceError::BadOverride { .. })));
        // 0.000001 per million × 0.6666666667 needs 22 places.
        let third_off = overriding(OverrideRule::DiscountPercent { percent: d("33.33333333") });
        assert!(matches!(third_off, Err(PriceError::BadOverride { ref reason, .. }) if reason.contains("discount")), "{third_off:?}");
        assert!(overriding(OverrideRule::DiscountPercent { percent: d("25") }).is_ok());
    }
}
