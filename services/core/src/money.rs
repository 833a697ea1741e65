//! Money: an exact decimal amount in an explicit currency.
//!
//! Amounts are `rust_decimal::Decimal` and are never rounded on the metering
//! path; rounding is an invoicing decision and happens only there.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("currency {0:?} is not a three-letter ISO 4217 code")]
pub struct CurrencyError(pub String);

/// An ISO 4217 currency code, stored inline so it is `Copy` and hashes fast.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");
    pub const EUR: Currency = Currency(*b"EUR");
    /// ISO 4217 "no currency": where amounts that are not money (counts of
    /// unpriced events) are kept.
    pub const NONE: Currency = Currency(*b"XXX");

    pub fn parse(s: &str) -> Result<Self, CurrencyError> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(CurrencyError(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII uppercase letters are ever stored.
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }

    /// ISO 4217's minor unit (exponent): how many decimal places an amount
    /// of this currency is shown and settled in. Two for most currencies;
    /// the exceptions are listed (ISO 4217, list one, 2024). Codes unknown
    /// here (and `XXX`, which has no minor unit) are treated as two places,
    /// so an amount is never shown with less precision than cents.
    pub fn minor_units(&self) -> u32 {
        match &self.0 {
            b"BIF" | b"CLP" | b"DJF" | b"GNF" | b"ISK" | b"JPY" | b"KMF" | b"KRW" | b"PYG" | b"RWF" | b"UGX" | b"UYI" | b"VND" | b"VUV"
            | b"XAF" | b"XOF" | b"XPF" => 0,
            b"BHD" | b"IQD" | b"JOD" | b"KWD" | b"LYD" | b"OMR" | b"TND" => 3,
            b"CLF" | b"UYW" => 4,
            _ => 2,
        }
    }
}

impl FromStr for Currency {
    type Err = CurrencyError;
    fn from_str(s: &str) -> Result<Self, CurrencyError> {
        Currency::parse(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = CurrencyError;
    fn try_from(s: String) -> Result<Self, CurrencyError> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exact amount of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Self { amount, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self::new(Decimal::ZERO, currency)
    }

    /// The amount rounded to the currency's minor unit, half to even
    /// (banker's rounding: no bias over many roundings). For showing and
    /// settling amounts; metering never rounds.
    pub fn rounded(&self) -> Decimal {
        let mut r = self.amount.round_dp_with_strategy(self.currency.minor_units(), rust_decimal::RoundingStrategy::MidpointNearestEven);
        // Always as many places as the currency has: 80 USD shows as 80.00.
        r.rescale(self.currency.minor_units());
        r
    }

    /// The rounded amount as text, e.g. `80.00` (USD), `1250` (JPY).
    pub fn format_amount(&self) -> String {
        self.rounded().to_string()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_three_uppercase_letters() {
        assert_eq!(Currency::parse("USD").unwrap(), Currency::USD);
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("US").is_err());
        assert!(Currency::parse("USDT").is_err());
    }

    fn money(amount: &str, currency: &str) -> Money {
        Money::new(amount.parse().unwrap(), Currency::parse(currency).unwrap())
    }

    #[test]
    fn amounts_show_in_the_currencys_minor_unit_rounded_half_to_even() {
        assert_eq!(money("80", "USD").format_amount(), "80.00");
        assert_eq!(money("0.125", "USD").format_amount(), "0.12");
        assert_eq!(money("0.135", "EUR").format_amount(), "0.14");
        assert_eq!(money("1249.5", "JPY").format_amount(), "1250");
        assert_eq!(money("1250.5", "JPY").format_amount(), "1250");
        assert_eq!(money("1.23456", "KWD").format_amount(), "1.235");
        assert_eq!(money("-0.005", "USD").format_amount(), "0.00");
        assert_eq!(money("12.000000000000000001", "USD").format_amount(), "12.00");
    }
}
