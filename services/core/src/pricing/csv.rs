//! The price book's CSV form:
//! `provider,model,unit,unit_price,per,currency,effective_from`, e.g.
//! `openai,gpt-4o,input_token,2.50,1000000,USD,2024-05-13`.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use super::book::PriceEntry;
use crate::money::Currency;
use crate::usage::Unit;

pub const HEADER: [&str; 7] = ["provider", "model", "unit", "unit_price", "per", "currency", "effective_from"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct CsvError {
    pub line: usize,
    pub reason: String,
}

/// Parses a whole file. The header line is required; blank lines and lines
/// starting with `#` are skipped. Every error names its line.
pub fn parse(text: &str) -> Result<Vec<PriceEntry>, CsvError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let (n, header) = lines.next().ok_or(CsvError { line: 1, reason: "empty file".into() })?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    if names != HEADER {
        return Err(CsvError { line: n, reason: format!("header must be {}", HEADER.join(",")) });
    }
    lines.map(|(n, l)| parse_line(l).map_err(|reason| CsvError { line: n, reason })).collect()
}

fn parse_line(line: &str) -> Result<PriceEntry, String> {
    let f: Vec<&str> = line.split(',').map(str::trim).collect();
    if f.len() != HEADER.len() {
        return Err(format!("expected {} fields, found {}", HEADER.len(), f.len()));
    }
    if f.iter().any(|v| v.contains('"')) {
        return Err("quoted fields are not supported".into());
    }
    let non_empty = |i: usize| {
        if f[i].is_empty() {
            Err(format!("{} is empty", HEADER[i]))
        } else {
            Ok(f[i].to_owned())
        }
    };
    let decimal = |i: usize| Decimal::from_str(f[i]).map_err(|_| format!("{} {:?} is not a decimal number", HEADER[i], f[i]));
    let unit = Unit::parse(f[2]).ok_or_else(|| format!("unit {:?} is not one of {}", f[2], Unit::ALL.map(Unit::as_str).join(", ")))?;
    let unit_price = decimal(3)?;
    if unit_price < Decimal::ZERO {
        return Err(format!("unit_price {unit_price} is negative"));
    }
    let per = decimal(4)?;
    if per <= Decimal::ZERO {
        return Err(format!("per {per} must be positive"));
    }
    Ok(PriceEntry {
        provider: non_empty(0)?,
        model: non_empty(1)?,
        unit,
        unit_price,
        per,
        currency: Currency::parse(f[5]).map_err(|e| e.to_string())?,
        effective_from: parse_date(f[6])?,
    })
}

/// `YYYY-MM-DD` (midnight UTC) or an RFC 3339 instant.
fn parse_date(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("effective_from {s:?} is not YYYY-MM-DD or RFC 3339"))
}

/// Writes entries back in the same form, for `prices list --format csv`.
pub fn to_line(e: &PriceEntry) -> String {
    format!(
        "{},{},{},{},{},{},{}",
        e.provider,
        e.model,
        e.unit,
        e.unit_price,
        e.per,
        e.currency,
        e.effective_from.format("%Y-%m-%dT%H:%M:%SZ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let rows = parse(
            "provider,model,unit,unit_price,per,currency,effective_from\n\
                          openai,gpt-4o,input_token,2.50,1000000,USD,2024-05-13\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].unit, Unit::InputToken);
        assert_eq!(rows[0].unit_price, Decimal::from_str("2.50").unwrap());
        assert_eq!(to_line(&rows[0]), "openai,gpt-4o,input_token,2.50,1000000,USD,2024-05-13T00:00:00Z");
        assert_eq!(parse(&format!("{}\n{}", HEADER.join(","), to_line(&rows[0]))).unwrap(), rows);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(
            "provider,model,unit,unit_price,per,currency,effective_from\n\
                       openai,gpt-4o,tokens,2.50,1000000,USD,2024-05-13\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("unit"), "{e}");
        assert!(parse("a,b\n").is_err());
        assert!(parse(&format!("{}\nopenai,gpt-4o,input_token,-1,1,USD,2024-01-01", HEADER.join(","))).is_err());
        assert!(parse(&format!("{}\nopenai,gpt-4o,input_token,1,0,USD,2024-01-01", HEADER.join(","))).is_err());
    }

    #[test]
    fn the_shipped_price_book_parses_and_builds() {
        let rows = parse(include_str!("../../../../prices/default.csv")).unwrap();
        assert!(rows.len() > 20);
        crate::PriceBook::build(&rows, &[]).unwrap();
    }
}
