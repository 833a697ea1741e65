//! Schema fingerprints as the Avro specification defines them: CRC-64-AVRO
//! (Rabin) of the Parsing Canonical Form.
//!
//! Why not `apache_avro::Schema::fingerprint`: in 0.21 (and 0.23) its
//! canonical form strips `logicalType` but then keeps the object around the
//! primitive, so `{"type":"long","logicalType":"timestamp-micros"}` becomes
//! `{"type":"long"}` instead of `"long"` (see AVRO-4004). Our schemas use
//! logical types, so its fingerprint differs from the one Java, Python
//! (fastavro) and every spec-following emitter put in the single-object
//! header. We compute the specified one here; `Codec` still accepts the
//! `apache-avro` one as an alias (see `schema::legacy_fingerprint`).

use std::collections::HashSet;

use serde_json::Value;

use super::DecodeError;

/// The fingerprint of a schema given as JSON. The JSON must already be a
/// valid schema (`schema::parse` checks that first).
pub(super) fn fingerprint_json(json: &str) -> Result<u64, DecodeError> {
    let value: Value = serde_json::from_str(json).map_err(|e| DecodeError::BadSchema(e.to_string()))?;
    Ok(crc64_avro(canonical_form(&value)?.as_bytes()))
}

/// The Parsing Canonical Form of a schema given as parsed JSON.
pub(super) fn canonical_form(schema: &Value) -> Result<String, DecodeError> {
    let mut out = String::new();
    Canonicalizer { seen: HashSet::new() }.schema(schema, None, &mut out)?;
    Ok(out)
}

const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

struct Canonicalizer {
    /// Full names already written: later uses are written as the name only.
    seen: HashSet<String>,
}

impl Canonicalizer {
    fn schema(&mut self, schema: &Value, ns: Option<&str>, out: &mut String) -> Result<(), DecodeError> {
        match schema {
            Value::String(name) => {
                if PRIMITIVES.contains(&name.as_str()) {
                    quoted(name, out);
                } else {
                    quoted(&full_name(name, None, ns), out);
                }
                Ok(())
            }
            Value::Array(branches) => {
                out.push('[');
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.schema(branch, ns, out)?;
                }
                out.push(']');
                Ok(())
            }
            Value::Object(map) => {
                let Some(Value::String(ty)) = map.get("type") else {
                    // `{"type": {...}}` only appears as a field's type, which
                    // `record` handles; anything else is not a schema.
                    return Err(bad("a schema object without a string \"type\""));
                };
                match ty.as_str() {
                    // [PRIMITIVES]: attributes such as logicalType are
                    // stripped, leaving the simple form.
                    t if PRIMITIVES.contains(&t) => {
                        quoted(t, out);
                        Ok(())
                    }
                    "record" | "error" | "enum" | "fixed" => self.named(map, ty, ns, out),
                    "array" => {
                        out.push_str(r#"{"type":"array","items":"#);
                        self.schema(map.get("items").ok_or_else(|| bad("array without items"))?, ns, out)?;
                        out.push('}');
                        Ok(())
                    }
                    "map" => {
                        out.push_str(r#"{"type":"map","values":"#);
                        self.schema(map.get("values").ok_or_else(|| bad("map without values"))?, ns, out)?;
                        out.push('}');
                        Ok(())
                    }
                    // A reference to a named type, written as an object.
                    reference => {
                        quoted(&full_name(reference, None, ns), out);
                        Ok(())
                    }
                }
            }
            _ => Err(bad("a schema must be a string, an array or an object")),
        }
    }

    fn named(&mut self, map: &serde_json::Map<String, Value>, ty: &str, ns: Option<&str>, out: &mut String) -> Result<(), DecodeError> {
        let name = map.get("name").and_then(Value::as_str).ok_or_else(|| bad("named type without a name"))?;
        let full = full_name(name, map.get("namespace").and_then(Value::as_str), ns);
        if !self.seen.insert(full.clone()) {
            quoted(&full, out);
            return Ok(());
        }
        // [ORDER]: name, type, fields, symbols, items, values, size.
        out.push_str(r#"{"name":"#);
        quoted(&full, out);
        out.push_str(r#","type":"#);
        // An `error` is parsed as a record.
        quoted(if ty == "error" { "record" } else { ty }, out);
        let inner_ns = full.rsplit_once('.').map(|(ns, _)| ns);
        match ty {
            "record" | "error" => {
                out.push_str(r#","fields":["#);
                let fields = map.get("fields").and_then(Value::as_array).ok_or_else(|| bad("record without fields"))?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let fname = field.get("name").and_then(Value::as_str).ok_or_else(|| bad("field without a name"))?;
                    out.push_str(r#"{"name":"#);
                    quoted(fname, out);
                    out.push_str(r#","type":"#);
                    self.schema(field.get("type").ok_or_else(|| bad("field without a type"))?, inner_ns, out)?;
                    out.push('}');
                }
                out.push(']');
            }
            "enum" => {
                out.push_str(r#","symbols":["#);
                let symbols = map.get("symbols").and_then(Value::as_array).ok_or_else(|| bad("enum without symbols"))?;
                for (i, symbol) in symbols.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    quoted(symbol.as_str().ok_or_else(|| bad("enum symbol is not a string"))?, out);
                }
                out.push(']');
            }
            _ => {
                // [INTEGERS]: a size is written as a bare number.
                let size = match map.get("size") {
                    Some(Value::Number(n)) => n.as_u64(),
                    Some(Value::String(s)) => s.parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| bad("fixed without a size"))?;
                out.push_str(&format!(r#","size":{size}"#));
            }
        }
        out.push('}');
        Ok(())
    }
}

/// [FULLNAMES]: a dotted name is already full; otherwise the type's own
/// namespace, else the enclosing one, qualifies it.
fn full_name(name: &str, own_ns: Option<&str>, enclosing_ns: Option<&str>) -> String {
    if name.contains('.') {
        return name.to_owned();
    }
    match own_ns.or(enclosing_ns).filter(|ns| !ns.is_empty()) {
        Some(ns) => format!("{ns}.{name}"),
        None => name.to_owned(),
    }
}

/// [STRINGS]: names and symbols are restricted to `[A-Za-z0-9_.]` by the
/// parser that validated the schema, so nothing needs escaping.
fn quoted(s: &str, out: &mut String) {
    out.push('"');
    out.push_str(s);
    out.push('"');
}

fn bad(what: &str) -> DecodeError {
    DecodeError::BadSchema(format!("cannot compute the canonical form: {what}"))
}

/// CRC-64-AVRO, as given in the specification's "Schema Fingerprints".
pub(super) fn crc64_avro(bytes: &[u8]) -> u64 {
    let mut fp = EMPTY;
    for b in bytes {
        fp = (fp >> 8) ^ TABLE[((fp ^ u64::from(*b)) & 0xFF) as usize];
    }
    fp
}

const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn pcf(json: &str) -> String {
        canonical_form(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn the_crc_matches_the_specification_test_vector() {
        assert_eq!(crc64_avro(br#""null""#), 7_195_948_357_588_979_594);
    }

    #[test]
    fn logical_types_reduce_to_their_primitive() {
        assert_eq!(pcf(r#"{"type":"long","logicalType":"timestamp-micros"}"#), r#""long""#);
        assert_eq!(pcf(r#"{"type":"string","logicalType":"uuid","doc":"x"}"#), r#""string""#);
    }

    #[test]
    fn names_are_qualified_stripped_and_ordered() {
        let json = r#"{"fields":[{"name":"a","type":{"symbols":["X","Y"],"type":"enum","name":"E","doc":"d"}},
            {"name":"b","type":"E","default":"X"},{"name":"c","type":{"type":"fixed","name":"F","size":"16","namespace":"o"}},
            {"name":"d","type":{"type":"array","items":{"type":"map","values":["null","o.F"]}}}],
            "type":"record","name":"R","namespace":"n","aliases":["Q"]}"#;
        assert_eq!(
            pcf(json),
            r#"{"name":"n.R","type":"record","fields":[{"name":"a","type":{"name":"n.E","type":"enum","symbols":["X","Y"]}},{"name":"b","type":"n.E"},{"name":"c","type":{"name":"o.F","type":"fixed","size":16}},{"name":"d","type":{"type":"array","items":{"type":"map","values":["null","o.F"]}}}]}"#
        );
    }
}
