//! The Avro wire format of usage events: single-object encoding
//! (`C3 01`, the writer schema's 8-byte little-endian CRC-64-AVRO
//! fingerprint, then the binary datum).
//!
//! Decoding has two paths. The compiled-in writer versions get a hand-written
//! decoder that borrows strings from the payload: generic `apache-avro`
//! decoding measures ~180 k events/s per core, far below the rollup's
//! target. `apache-avro` remains the reference (differential tests compare
//! the two on generated and mutated inputs) and decodes writer schemas
//! registered at run time, through Avro schema resolution.

mod encode;
mod fast;
mod fingerprint;
mod records;
mod reference;
mod schema;
mod wire;

use std::collections::HashMap;

use crate::usage::UsageEvent;

pub use encode::encode;
pub use records::{decode_alert, decode_throttle, encode_alert, encode_throttle, ALERT_SCHEMA_JSON, THROTTLE_SCHEMA_JSON};
pub use schema::{current_fingerprint, fingerprint_of, CURRENT_SCHEMA_JSON, V1_SCHEMA_JSON};

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("not an Avro single-object encoding (expected the C3 01 marker and a fingerprint)")]
    NotSingleObject,
    #[error("unknown writer schema fingerprint {0:016x}")]
    UnknownFingerprint(u64),
    #[error("payload ends inside the datum")]
    Truncated,
    #[error("malformed datum: {0}")]
    Malformed(String),
    #[error("bad schema: {0}")]
    BadSchema(String),
}

impl DecodeError {
    /// Stable reason code for dead-letter headers and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::NotSingleObject => "not_single_object",
            DecodeError::UnknownFingerprint(_) => "unknown_schema",
            DecodeError::Truncated => "truncated",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::BadSchema(_) => "bad_schema",
        }
    }
}

/// How one known writer schema is decoded.
#[derive(Debug)]
enum Writer {
    Fast { layout: fast::Layout, schema: apache_avro::Schema },
    Generic { schema: apache_avro::Schema },
}

/// Decodes usage events written with any known writer schema into the
/// current shape. Cheap to share (`Send + Sync`, immutable once built).
#[derive(Debug)]
pub struct Codec {
    writers: HashMap<u64, Writer>,
    reader: apache_avro::Schema,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec {
    /// Knows the compiled-in versions (v1 and v2) with fast decoders.
    ///
    /// Each version is known by its specified fingerprint (what we and
    /// spec-following emitters write) and by the one `apache-avro` 0.21
    /// computes (what its single-object writer, and builds of this crate
    /// before the fix, wrote); see `fingerprint.rs`.
    pub fn new() -> Codec {
        reference::limit_allocations();
        let mut writers = HashMap::new();
        for (json, layout) in [(V1_SCHEMA_JSON, fast::Layout::V1), (CURRENT_SCHEMA_JSON, fast::Layout::V2)] {
            let schema = schema::parse(json).expect("compiled-in schemas are valid");
            let fp = schema::fingerprint_of(json).expect("compiled-in schemas are valid");
            writers.insert(schema::legacy_fingerprint(&schema), Writer::Fast { layout, schema: schema.clone() });
            writers.insert(fp, Writer::Fast { layout, schema });
        }
        let reader = schema::parse(CURRENT_SCHEMA_JSON).expect("compiled-in schemas are valid");
        Codec { writers, reader }
    }

    /// Registers another writer schema (e.g. a newer emitter's), decoded
    /// through schema resolution into the current shape. Returns its
    /// (specified) fingerprint; the `apache-avro` one is accepted too. A
    /// schema the current reader cannot resolve is refused.
    pub fn register_writer_schema(&mut self, json: &str) -> Result<u64, DecodeError> {
        let schema = schema::parse(json)?;
        let fp = schema::fingerprint_of(json)?;
        if self.writers.contains_key(&fp) {
            return Ok(fp);
        }
        reference::check_resolvable(&schema, &self.reader)?;
        let legacy = schema::legacy_fingerprint(&schema);
        self.writers.entry(legacy).or_insert_with(|| Writer::Generic { schema: schema.clone() });
        self.writers.insert(fp, Writer::Generic { schema });
        Ok(fp)
    }

    /// Decodes one Kafka payload. Compiled-in versions borrow their strings
    /// from `payload`.
    pub fn decode<'a>(&self, payload: &'a [u8]) -> Result<UsageEvent<'a>, DecodeError> {
        let (fp, datum) = split_header(payload)?;
        match self.writers.get(&fp) {
            Some(Writer::Fast { layout, .. }) => fast::decode(*layout, datum),
            Some(Writer::Generic { schema }) => reference::decode(schema, &self.reader, datum),
            None => Err(DecodeError::UnknownFingerprint(fp)),
        }
    }

    /// The same decode through `apache-avro`'s generic reader: the reference
    /// implementation for differential tests. Slow.
    pub fn decode_reference(&self, payload: &[u8]) -> Result<UsageEvent<'static>, DecodeError> {
        let (fp, datum) = split_header(payload)?;
        match self.writers.get(&fp) {
            Some(Writer::Fast { schema, .. } | Writer::Generic { schema }) => reference::decode(schema, &self.reader, datum),
            None => Err(DecodeError::UnknownFingerprint(fp)),
        }
    }
}

/// The marker and fingerprint of a single-object encoding, and the datum.
fn split_header(payload: &[u8]) -> Result<(u64, &[u8]), DecodeError> {
    match payload {
        [0xC3, 0x01, rest @ ..] if rest.len() >= 8 => {
            let (fp, datum) = rest.split_at(8);
            let mut le = [0u8; 8];
            le.copy_from_slice(fp);
            Ok((u64::from_le_bytes(le), datum))
        }
        _ => Err(DecodeError::NotSingleObject),
    }
}
