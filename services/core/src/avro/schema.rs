//! The usage event's schemas and their fingerprints.

use std::sync::OnceLock;

use apache_avro::rabin::Rabin;
use apache_avro::Schema;

use super::fingerprint::fingerprint_json;
use super::DecodeError;

/// The current version (v2): what `encode` writes and decoders produce.
pub const CURRENT_SCHEMA_JSON: &str = include_str!("../../../../schemas/usage_event.avsc");
/// Version 1: no `cache_write_tokens`, no `attributes`.
pub const V1_SCHEMA_JSON: &str = include_str!("../../../../schemas/usage_event.v1.avsc");

pub(super) fn parse(json: &str) -> Result<Schema, DecodeError> {
    Schema::parse_str(json).map_err(|e| DecodeError::BadSchema(e.to_string()))
}

/// The fingerprint of a schema given as JSON: CRC-64-AVRO of its Parsing
/// Canonical Form, as the specification defines it and as Java, Python and
/// other spec-following emitters compute it. Refuses invalid schemas.
pub fn fingerprint_of(json: &str) -> Result<u64, DecodeError> {
    parse(json)?;
    fingerprint_json(json)
}

/// The fingerprint `apache-avro` 0.21 computes (and puts in the header of its
/// `GenericSingleObjectWriter`). It differs from the specified one for
/// schemas with logical types (see `fingerprint.rs`), so readers accept it
/// as an alias of the same writer schema.
pub(super) fn legacy_fingerprint(schema: &Schema) -> u64 {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(le)
}

/// The current schema's fingerprint, computed once.
pub fn current_fingerprint() -> u64 {
    static FP: OnceLock<u64> = OnceLock::new();
    *FP.get_or_init(|| fingerprint_of(CURRENT_SCHEMA_JSON).expect("compiled-in schema is valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint is the wire identity of a version: editing docs or
    /// defaults must not change it, and changing it by accident would make
    /// every running reader refuse the emitters' events as unknown. The
    /// values were cross-checked with fastavro 1.13
    /// (`fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")`).
    #[test]
    fn the_compiled_in_fingerprints_are_pinned() {
        assert_eq!(format!("{:016x}", current_fingerprint()), "e9c006dc8bd0c79c");
        assert_eq!(format!("{:016x}", fingerprint_of(V1_SCHEMA_JSON).unwrap()), "a255f5a9d78cb8d3");
    }

    /// Parsing Canonical Form drops `logicalType`, so an emitter whose schema
    /// declares `event_id` as a plain string is the same writer version.
    #[test]
    fn the_uuid_logical_type_does_not_change_the_fingerprint() {
        let mut plain: serde_json::Value = serde_json::from_str(CURRENT_SCHEMA_JSON).unwrap();
        assert_eq!(plain["fields"][0]["type"]["logicalType"], "uuid");
        plain["fields"][0]["type"] = "string".into();
        assert_eq!(fingerprint_of(&plain.to_string()).unwrap(), current_fingerprint());
    }

    /// Without logical types `apache-avro`'s canonical form is right, so the
    /// two fingerprints agree; with them they differ, which is why readers
    /// keep the legacy one as an alias.
    #[test]
    fn apache_avro_agrees_only_without_logical_types() {
        let mut plain: serde_json::Value = serde_json::from_str(CURRENT_SCHEMA_JSON).unwrap();
        plain["fields"][0]["type"] = "string".into();
        plain["fields"][2]["type"] = "long".into();
        let plain = plain.to_string();
        assert_eq!(legacy_fingerprint(&parse(&plain).unwrap()), fingerprint_of(&plain).unwrap());
        assert_ne!(legacy_fingerprint(&parse(CURRENT_SCHEMA_JSON).unwrap()), current_fingerprint());
    }

    #[test]
    fn invalid_schemas_are_refused() {
        assert!(matches!(fingerprint_of("{"), Err(DecodeError::BadSchema(_))));
        assert!(matches!(fingerprint_of(r#"{"type":"record","name":"R"}"#), Err(DecodeError::BadSchema(_))));
    }
}
