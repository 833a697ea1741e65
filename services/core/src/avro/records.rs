//! Throttle commands and budget alerts on the wire: single-object encoded
//! like usage events, through `apache-avro` (a few per second, so the
//! generic path is plenty).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::OnceLock;

use apache_avro::types::Value;
use apache_avro::Schema;
use rust_decimal::Decimal;

use super::{schema, split_header, DecodeError};
use crate::alert::{AlertKind, BudgetAlert};
use crate::budget::ThrottleState;
use crate::money::Currency;
use crate::throttle::ThrottleCommand;

pub const THROTTLE_SCHEMA_JSON: &str = include_str!("../../../../schemas/throttle_command.avsc");
pub const ALERT_SCHEMA_JSON: &str = include_str!("../../../../schemas/budget_alert.avsc");

struct Known {
    schema: Schema,
    fingerprint: u64,
}

fn known(json: &'static str, cell: &'static OnceLock<Known>) -> &'static Known {
    cell.get_or_init(|| Known {
        schema: schema::parse(json).expect("compiled-in schemas are valid"),
        fingerprint: schema::fingerprint_of(json).expect("compiled-in schemas are valid"),
    })
}

fn throttle_schema() -> &'static Known {
    static CELL: OnceLock<Known> = OnceLock::new();
    known(THROTTLE_SCHEMA_JSON, &CELL)
}

fn alert_schema() -> &'static Known {
    static CELL: OnceLock<Known> = OnceLock::new();
    known(ALERT_SCHEMA_JSON, &CELL)
}

fn single_object(known: &Known, value: Value) -> Vec<u8> {
    let datum = apache_avro::to_avro_datum(&known.schema, value).expect("records built here match their schema");
    let mut out = Vec::with_capacity(10 + datum.len());
    out.extend_from_slice(&[0xC3, 0x01]);
    out.extend_from_slice(&known.fingerprint.to_le_bytes());
    out.extend_from_slice(&datum);
    out
}

fn read(known: &Known, payload: &[u8]) -> Result<HashMap<String, Value>, DecodeError> {
    reference_limits();
    let (fp, mut datum) = split_header(payload)?;
    if fp != known.fingerprint {
        return Err(DecodeError::UnknownFingerprint(fp));
    }
    match apache_avro::from_avro_datum(&known.schema, &mut datum, None) {
        Ok(Value::Record(fields)) if datum.is_empty() => Ok(fields.into_iter().collect()),
        Ok(_) => Err(DecodeError::Malformed("not one record".into())),
        Err(e) => Err(DecodeError::Malformed(e.to_string())),
    }
}

fn reference_limits() {
    super::reference::limit_allocations();
}

fn optional(v: Option<Value>) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(v)),
    }
}

/// Encodes a throttle command, single-object.
pub fn encode_throttle(c: &ThrottleCommand) -> Vec<u8> {
    let state = match c.state {
        ThrottleState::Allow => 0,
        ThrottleState::Degrade => 1,
        ThrottleState::Block => 2,
    };
    let fields = vec![
        ("tenant_id".to_owned(), Value::String(c.tenant_id.clone())),
        ("version".to_owned(), Value::Long(c.version)),
        ("state".to_owned(), Value::Enum(state, c.state.as_str().to_owned())),
        ("target_model".to_owned(), optional(c.target_model.clone().map(Value::String))),
        ("reason".to_owned(), Value::String(c.reason.clone())),
        ("period_start".to_owned(), Value::TimestampMicros(c.period_start_micros)),
        ("period_end".to_owned(), Value::TimestampMicros(c.period_end_micros)),
        ("spend".to_owned(), Value::String(c.spend.to_string())),
        ("limit".to_owned(), optional(c.limit.map(|l| Value::String(l.to_string())))),
        ("currency".to_owned(), optional(c.currency.map(|cur| Value::String(cur.as_str().to_owned())))),
        ("budget_version".to_owned(), optional(c.budget_version.map(Value::Long))),
        ("issued_at".to_owned(), Value::TimestampMicros(c.issued_at_micros)),
    ];
    single_object(throttle_schema(), Value::Record(fields))
}

/// Decodes a throttle command written by [`encode_throttle`].
pub fn decode_throttle(payload: &[u8]) -> Result<ThrottleCommand, DecodeError> {
    let mut f = Fields(read(throttle_schema(), payload)?);
    Ok(ThrottleCommand {
        tenant_id: f.string("tenant_id")?,
        version: f.long("version")?,
        state: match f.take("state")? {
            Value::Enum(_, s) => ThrottleState::parse(&s).ok_or_else(|| bad("state"))?,
            _ => return Err(bad("state")),
        },
        target_model: f.optional_string("target_model")?,
        reason: f.string("reason")?,
        period_start_micros: f.long("period_start")?,
        period_end_micros: f.long("period_end")?,
        spend: decimal(&f.string("spend")?)?,
        limit: f.optional_string("limit")?.map(|s| decimal(&s)).transpose()?,
        currency: f.optional_string("currency")?.map(|s| currency(&s)).transpose()?,
        budget_version: match f.take("budget_version")? {
            Value::Union(_, v) => match *v {
                Value::Null => None,
                Value::Long(n) => Some(n),
                _ => return Err(bad("budget_version")),
            },
            _ => return Err(bad("budget_version")),
        },
        issued_at_micros: f.long("issued_at")?,
    })
}

/// Encodes a budget alert, single-object.
pub fn encode_alert(a: &BudgetAlert) -> Vec<u8> {
    let kind = match a.kind {
        AlertKind::Threshold => 0,
        AlertKind::Forecast => 1,
    };
    let fields = vec![
        ("alert_id".to_owned(), Value::Uuid(a.alert_id)),
        ("tenant_id".to_owned(), Value::String(a.tenant_id.clone())),
        ("kind".to_owned(), Value::Enum(kind, a.kind.as_str().to_owned())),
        ("threshold_percent".to_owned(), Value::Int(a.threshold_percent)),
        ("spend".to_owned(), Value::String(a.spend.to_string())),
        ("limit".to_owned(), Value::String(a.limit.to_string())),
        ("projected".to_owned(), optional(a.projected.map(|p| Value::String(p.to_string())))),
        ("currency".to_owned(), Value::String(a.currency.as_str().to_owned())),
        ("period_start".to_owned(), Value::TimestampMicros(a.period_start_micros)),
        ("period_end".to_owned(), Value::TimestampMicros(a.period_end_micros)),
        ("budget_version".to_owned(), Value::Long(a.budget_version)),
        ("raised_at".to_owned(), Value::TimestampMicros(a.raised_at_micros)),
    ];
    single_object(alert_schema(), Value::Record(fields))
}

/// Decodes a budget alert written by [`encode_alert`].
pub fn decode_alert(payload: &[u8]) -> Result<BudgetAlert, DecodeError> {
    let mut f = Fields(read(alert_schema(), payload)?);
    Ok(BudgetAlert {
        alert_id: match f.take("alert_id")? {
            Value::Uuid(u) => u,
            Value::String(s) => s.parse().map_err(|_| bad("alert_id"))?,
            _ => return Err(bad("alert_id")),
        },
        tenant_id: f.string("tenant_id")?,
        kind: match f.take("kind")? {
            Value::Enum(_, s) => AlertKind::parse(&s).ok_or_else(|| bad("kind"))?,
            _ => return Err(bad("kind")),
        },
        threshold_percent: match f.take("threshold_percent")? {
            Value::Int(n) => n,
            _ => return Err(bad("threshold_percent")),
        },
        spend: decimal(&f.string("spend")?)?,
        limit: decimal(&f.string("limit")?)?,
        projected: f.optional_string("projected")?.map(|s| decimal(&s)).transpose()?,
        currency: currency(&f.string("currency")?)?,
        period_start_micros: f.long("period_start")?,
        period_end_micros: f.long("period_end")?,
        budget_version: f.long("budget_version")?,
        raised_at_micros: f.long("raised_at")?,
    })
}

struct Fields(HashMap<String, Value>);

impl Fields {
    fn take(&mut self, name: &str) -> Result<Value, DecodeError> {
        self.0.remove(name).ok_or_else(|| DecodeError::Malformed(format!("missing field {name}")))
    }

    fn string(&mut self, name: &str) -> Result<String, DecodeError> {
        match self.take(name)? {
            Value::String(s) => Ok(s),
            _ => Err(bad(name)),
        }
    }

    fn long(&mut self, name: &str) -> Result<i64, DecodeError> {
        match self.take(name)? {
            Value::Long(n) | Value::TimestampMicros(n) => Ok(n),
            _ => Err(bad(name)),
        }
    }

    fn optional_string(&mut self, name: &str) -> Result<Option<String>, DecodeError> {
        match self.take(name)? {
            Value::Union(_, v) => match *v {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s)),
                _ => Err(bad(name)),
            },
            _ => Err(bad(name)),
        }
    }
}

fn bad(field: &str) -> DecodeError {
    DecodeError::Malformed(format!("field {field} has the wrong type or value"))
}

fn decimal(s: &str) -> Result<Decimal, DecodeError> {
    Decimal::from_str(s).map_err(|_| DecodeError::Malformed(format!("{s:?} is not a decimal")))
}

fn currency(s: &str) -> Result<Currency, DecodeError> {
    Currency::parse(s).map_err(|e| DecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::alert_id;

    fn command(state: ThrottleState, target: Option<&str>) -> ThrottleCommand {
        ThrottleCommand {
            tenant_id: "acme".into(),
            version: 7,
            state,
            target_model: target.map(str::to_owned),
            reason: "monthly budget exhausted".into(),
            period_start_micros: 1_793_491_200_000_000,
            period_end_micros: 1_796_083_200_000_000,
            spend: "100.000000000001".parse().unwrap(),
            limit: Some("100".parse().unwrap()),
            currency: Some(Currency::USD),
            budget_version: Some(3),
            issued_at_micros: 1_794_000_000_123_456,
        }
    }

    #[test]
    fn throttle_commands_round_trip() {
        for c in [command(ThrottleState::Block, None), command(ThrottleState::Degrade, Some("gpt-4o-mini"))] {
            let bytes = encode_throttle(&c);
            assert_eq!(&bytes[..2], &[0xC3, 0x01]);
            assert_eq!(decode_throttle(&bytes).unwrap(), c);
        }
        let mut none = command(ThrottleState::Allow, None);
        (none.limit, none.currency, none.budget_version) = (None, None, None);
        assert_eq!(decode_throttle(&encode_throttle(&none)).unwrap(), none);
    }

    #[test]
    fn alerts_round_trip_and_ids_are_stable() {
        let a = BudgetAlert {
            alert_id: alert_id("acme", AlertKind::Forecast, 100, 5, 2),
            tenant_id: "acme".into(),
            kind: AlertKind::Forecast,
            threshold_percent: 100,
            spend: "12.5".parse().unwrap(),
            limit: "20".parse().unwrap(),
            projected: Some("37.5".parse().unwrap()),
            currency: Currency::EUR,
            period_start_micros: 5,
            period_end_micros: 10,
            budget_version: 2,
            raised_at_micros: 7,
        };
        assert_eq!(decode_alert(&encode_alert(&a)).unwrap(), a);
        assert_eq!(a.alert_id, alert_id("acme", AlertKind::Forecast, 100, 5, 2));
        assert_ne!(a.alert_id, alert_id("acme", AlertKind::Forecast, 100, 5, 3));
    }

    #[test]
    fn garbage_and_other_records_are_refused() {
        assert!(decode_throttle(b"nope").is_err());
        let alert_bytes = encode_alert(&BudgetAlert {
            alert_id: alert_id("t", AlertKind::Threshold, 50, 0, 1),
            tenant_id: "t".into(),
            kind: AlertKind::Threshold,
            threshold_percent: 50,
            spend: Decimal::ONE,
            limit: Decimal::TWO,
            projected: None,
            currency: Currency::USD,
            period_start_micros: 0,
            period_end_micros: 1,
            budget_version: 1,
            raised_at_micros: 0,
        });
        assert!(matches!(decode_throttle(&alert_bytes), Err(DecodeError::UnknownFingerprint(_))));
        let mut cut = encode_throttle(&command(ThrottleState::Block, None));
        cut.truncate(cut.len() - 3);
        assert!(decode_throttle(&cut).is_err());
    }
}
