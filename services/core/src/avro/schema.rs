//! The usage event's schemas and their fingerprints.

use std::sync::OnceLock;

use apache_avro::rabin::Rabin;
use apache_avro::Schema;

use super::DecodeError;

/// The current version (v2): what `encode` writes and decoders produce.
pub const CURRENT_SCHEMA_JSON: &str = include_str!("../../../../schemas/usage_event.avsc");
/// Version 1: no `cache_write_tokens`, no `attributes`.
pub const V1_SCHEMA_JSON: &str = include_str!("../../../../schemas/usage_event.v1.avsc");

pub(super) fn parse(json: &str) -> Result<Schema, DecodeError> {
    Schema::parse_str(json).map_err(|e| DecodeError::BadSchema(e.to_string()))
}

/// CRC-64-AVRO of the schema's Parsing Canonical Form.
pub(super) fn fingerprint(schema: &Schema) -> u64 {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    u64::from_le_bytes(bytes.try_into().expect("Rabin fingerprints are 8 bytes"))
}

/// The fingerprint of a schema given as JSON.
pub fn fingerprint_of(json: &str) -> Result<u64, DecodeError> {
    parse(json).map(|s| fingerprint(&s))
}

/// The current schema's fingerprint, computed once.
pub fn current_fingerprint() -> u64 {
    static FP: OnceLock<u64> = OnceLock::new();
    *FP.get_or_init(|| fingerprint_of(CURRENT_SCHEMA_JSON).expect("compiled-in schema is valid"))
}
