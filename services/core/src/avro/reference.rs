//! Decoding through `apache-avro`: the reference implementation, and the
//! path for writer schemas registered at run time (schema resolution).

use std::borrow::Cow;
use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::Schema;

use super::DecodeError;
use crate::usage::{Kind, Quantities, Source, Unit, UsageEvent};

/// Caps any single length `apache-avro` will allocate for at 1 MiB (usage
/// events are a few hundred bytes): its map decoder reserves capacity from
/// the block count, so a corrupted count could otherwise ask for gigabytes.
pub(super) fn limit_allocations() {
    apache_avro::util::max_allocation_bytes(1 << 20);
}

/// Refuses a writer schema whose data cannot be resolved into the reader's.
pub(super) fn check_resolvable(writer: &Schema, reader: &Schema) -> Result<(), DecodeError> {
    apache_avro::schema_compatibility::SchemaCompatibility::can_read(writer, reader)
        .map_err(|e| DecodeError::BadSchema(format!("cannot be read as the current usage event: {e}")))
}

pub(super) fn decode(writer: &Schema, reader: &Schema, datum: &[u8]) -> Result<UsageEvent<'static>, DecodeError> {
    let mut cursor = datum;
    let value = apache_avro::from_avro_datum(writer, &mut cursor, Some(reader)).map_err(classify)?;
    if !cursor.is_empty() {
        return Err(DecodeError::Malformed(format!("{} trailing bytes after the datum", cursor.len())));
    }
    to_event(value)
}

fn classify(e: apache_avro::Error) -> DecodeError {
    let text = e.to_string();
    // apache-avro reports a short read as an I/O error; keep the distinction
    // the fast path makes between "cut short" and "wrong".
    if text.contains("failed to fill whole buffer") || text.contains("UnexpectedEof") {
        DecodeError::Truncated
    } else {
        DecodeError::Malformed(text)
    }
}

fn to_event(value: Value) -> Result<UsageEvent<'static>, DecodeError> {
    let Value::Record(fields) = value else {
        return Err(DecodeError::Malformed("datum is not a record".into()));
    };
    let mut f: HashMap<String, Value> = fields.into_iter().collect();
    let mut take = |name: &str| f.remove(name).ok_or_else(|| DecodeError::Malformed(format!("missing field {name}")));
    let event_id = match take("event_id")? {
        // The reader schema's uuid logical type: apache-avro has parsed it.
        Value::Uuid(u) => u.hyphenated().to_string(),
        other => string(other)?,
    };
    let tenant_id = string(take("tenant_id")?)?;
    let occurred_at_micros = long(take("occurred_at")?)?;
    let source = match take("source")? {
        Value::Enum(i, _) => *Source::ALL.get(i as usize).ok_or_else(|| bad("source index"))?,
        _ => return Err(bad("source")),
    };
    let kind = match take("kind")? {
        Value::Enum(i, _) => *Kind::ALL.get(i as usize).ok_or_else(|| bad("kind index"))?,
        _ => return Err(bad("kind")),
    };
    let provider = optional_string(take("provider")?)?;
    let model = optional_string(take("model")?)?;
    let mut quantities = Quantities::default();
    for unit in Unit::ALL {
        quantities[unit] = long(take(unit.field_name())?)?;
    }
    let attributes = match take("attributes")? {
        Value::Map(m) => {
            let mut pairs: Vec<(String, String)> = m.into_iter().map(|(k, v)| Ok((k, string(v)?))).collect::<Result<_, DecodeError>>()?;
            // A map has no order; give it one so results compare.
            pairs.sort();
            pairs.into_iter().map(|(k, v)| (Cow::Owned(k), Cow::Owned(v))).collect()
        }
        _ => return Err(bad("attributes")),
    };
    Ok(UsageEvent {
        event_id: Cow::Owned(event_id),
        tenant_id: Cow::Owned(tenant_id),
        occurred_at_micros,
        source,
        kind,
        provider: provider.map(Cow::Owned),
        model: model.map(Cow::Owned),
        quantities,
        attributes,
    })
}

fn bad(what: &str) -> DecodeError {
    DecodeError::Malformed(format!("unexpected value for {what}"))
}

fn string(v: Value) -> Result<String, DecodeError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(bad("a string field")),
    }
}

fn long(v: Value) -> Result<i64, DecodeError> {
    match v {
        Value::Long(n) | Value::TimestampMicros(n) => Ok(n),
        Value::Int(n) => Ok(n.into()),
        _ => Err(bad("a long field")),
    }
}

fn optional_string(v: Value) -> Result<Option<String>, DecodeError> {
    match v {
        Value::Union(_, inner) => match *inner {
            Value::Null => Ok(None),
            other => string(other).map(Some),
        },
        Value::Null => Ok(None),
        other => string(other).map(Some),
    }
}
