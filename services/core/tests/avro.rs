//! The wire format against the reference implementation (apache-avro):
//! round trips, differential decoding of generated and mutated payloads,
//! compatibility in both directions, and schema evolution.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use apache_avro::types::Value;
use apache_avro::{GenericSingleObjectWriter, Schema};
use meterline_core::avro::{self, Codec, DecodeError, CURRENT_SCHEMA_JSON, V1_SCHEMA_JSON};
use meterline_core::{Kind, Quantities, Source, Unit, UsageEvent};
use proptest::prelude::*;
use uuid::Uuid;

const V3_SCHEMA_JSON: &str = include_str!("../../../schemas/testdata/usage_event.v3.avsc");

/// A canonical event id: lowercase hyphenated, what every emitter writes.
fn arb_uuid() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| Uuid::from_u128(n).hyphenated().to_string())
}

/// Event ids of every shape the wire can carry: the forms `apache-avro`'s
/// uuid reading accepts (and normalises), and strings it refuses.
fn arb_any_event_id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => arb_uuid(),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).hyphenated().to_string().to_uppercase()),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).simple().to_string()),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).braced().to_string()),
        1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).urn().to_string()),
        1 => "[ -~]{16}",
        1 => ".{0,40}",
    ]
}

fn arb_event_with(ids: impl Strategy<Value = String>) -> impl Strategy<Value = UsageEvent<'static>> {
    (
        ids,
        "[a-z0-9._:-]{0,20}|.{0,8}",
        any::<i64>(),
        0..2usize,
        0..5usize,
        proptest::option::of(".{0,12}"),
        proptest::option::of(".{0,24}"),
        proptest::array::uniform7(prop_oneof![any::<i64>(), 0..100_000i64]),
        proptest::collection::vec((".{0,10}", ".{0,16}"), 0..12),
    )
        .prop_map(|(id, tenant, at, s, k, provider, model, q, attrs)| UsageEvent {
            event_id: Cow::Owned(id),
            tenant_id: Cow::Owned(tenant),
            occurred_at_micros: at,
            source: Source::ALL[s],
            kind: Kind::ALL[k],
            provider: provider.map(Cow::Owned),
            model: model.map(Cow::Owned),
            quantities: Quantities(q),
            attributes: attrs.into_iter().map(|(k, v)| (Cow::Owned(k), Cow::Owned(v))).collect(),
        })
}

fn arb_event() -> impl Strategy<Value = UsageEvent<'static>> {
    arb_event_with(arb_uuid())
}

fn encoded(e: &UsageEvent<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    avro::encode(e, &mut out);
    out
}

/// Events compare as maps: Avro maps have no order and keep the last of a
/// repeated key.
fn canonical(e: &UsageEvent<'_>) -> (UsageEvent<'static>, BTreeMap<String, String>) {
    let attrs = e.attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut plain = e.clone().into_owned();
    plain.attributes.clear();
    (plain, attrs)
}

/// Both decoders agree: equal events, or both refuse.
fn assert_agree(codec: &Codec, payload: &[u8]) -> Result<(), TestCaseError> {
    match (codec.decode(payload), codec.decode_reference(payload)) {
        (Ok(a), Ok(b)) => prop_assert_eq!(canonical(&a), canonical(&b)),
        (Err(_), Err(_)) => {}
        (a, b) => prop_assert!(false, "decoders disagree on {:02x?}:\nfast {:?}\nreference {:?}", payload, a, b),
    }
    Ok(())
}

/// The apache-avro value of `e` under `schema_json`; `extra` gives the
/// fields `UsageEvent` does not have (newer versions).
fn apache_value(schema_json: &str, e: &UsageEvent<'_>, extra: &[(&str, Value)]) -> (Schema, Value) {
    let schema = Schema::parse_str(schema_json).unwrap();
    let Schema::Record(record) = &schema else { panic!("record") };
    let opt = |s: &Option<Cow<'_, str>>| match s {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(s) => Value::Union(1, Box::new(Value::String(s.to_string()))),
    };
    let event_id = match Uuid::parse_str(&e.event_id) {
        Ok(u) => Value::Uuid(u),
        // apache-avro writes a string under the uuid logical type as is.
        Err(_) => Value::String(e.event_id.to_string()),
    };
    let mut values: HashMap<&str, Value> = HashMap::from([
        ("event_id", event_id),
        ("tenant_id", Value::String(e.tenant_id.to_string())),
        ("occurred_at", Value::TimestampMicros(e.occurred_at_micros)),
        ("source", Value::Enum(e.source as u32, e.source.as_str().into())),
        ("kind", Value::Enum(e.kind as u32, e.kind.as_str().into())),
        ("provider", opt(&e.provider)),
        ("model", opt(&e.model)),
        ("attributes", Value::Map(e.attributes.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect())),
    ]);
    for u in Unit::ALL {
        values.insert(u.field_name(), Value::Long(e.quantities[u]));
    }
    values.extend(extra.iter().cloned());
    let fields = record
        .fields
        .iter()
        .map(|f| (f.name.clone(), values.remove(f.name.as_str()).unwrap_or_else(|| panic!("no value for {}", f.name))))
        .collect();
    (schema, Value::Record(fields))
}

/// Encodes with apache-avro: the datum from `to_avro_datum` behind the
/// specified fingerprint (what Java or fastavro emitters write).
fn reference_encode(schema_json: &str, e: &UsageEvent<'_>, extra: &[(&str, Value)]) -> Vec<u8> {
    let (schema, value) = apache_value(schema_json, e, extra);
    let datum = apache_avro::to_avro_datum(&schema, value).unwrap();
    let mut out = vec![0xC3, 0x01];
    out.extend_from_slice(&avro::fingerprint_of(schema_json).unwrap().to_le_bytes());
    out.extend_from_slice(&datum);
    out
}

/// Encodes with apache-avro's own single-object writer, whose header
/// carries apache-avro's (non-standard, see `fingerprint.rs`) fingerprint.
fn apache_single_object(schema_json: &str, e: &UsageEvent<'_>, extra: &[(&str, Value)]) -> Vec<u8> {
    let (schema, value) = apache_value(schema_json, e, extra);
    let mut out = Vec::new();
    GenericSingleObjectWriter::new_with_capacity(&schema, 256).unwrap().write_value(value, &mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_is_the_identity(e in arb_event()) {
        let bytes = encoded(&e);
        prop_assert_eq!(Codec::new().decode(&bytes).unwrap(), e);
    }

    #[test]
    fn decoders_agree_on_generated_events(e in arb_event_with(arb_any_event_id())) {
        assert_agree(&Codec::new(), &encoded(&e))?;
    }

    #[test]
    fn decoders_agree_on_mutated_payloads(
        e in arb_event_with(arb_any_event_id()),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = encoded(&e);
        // Mutate the datum only: a damaged header is refused before either
        // decoder runs.
        for (at, byte) in flips {
            let i = 10 + at.index(bytes.len() - 10);
            bytes[i] = byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(10 + cut.index(bytes.len() - 10));
        }
        assert_agree(&Codec::new(), &bytes)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200), header in 0..4usize) {
        let codec = Codec::new();
        prop_assert!(codec.decode(&bytes).is_err() || bytes.len() >= 10);
        // Behind each known header too, where the decoders do real work.
        let fp = match header {
            0 => avro::fingerprint_of(V1_SCHEMA_JSON).unwrap(),
            1 => avro::fingerprint_of(CURRENT_SCHEMA_JSON).unwrap(),
            2 => apache_fingerprint(V1_SCHEMA_JSON),
            _ => apache_fingerprint(CURRENT_SCHEMA_JSON),
        };
        let mut framed = vec![0xC3, 0x01];
        framed.extend_from_slice(&fp.to_le_bytes());
        framed.append(&mut bytes);
        assert_agree(&codec, &framed)?;
    }

    #[test]
    fn we_read_what_apache_avro_writes(e in arb_event()) {
        let codec = Codec::new();
        // Its single-object writer (apache-avro's fingerprint in the header)...
        let theirs = apache_single_object(CURRENT_SCHEMA_JSON, &e, &[]);
        prop_assert_eq!(canonical(&codec.decode(&theirs).unwrap()), canonical(&e));
        // ...and its datum behind the specified fingerprint.
        let theirs = reference_encode(CURRENT_SCHEMA_JSON, &e, &[]);
        prop_assert_eq!(canonical(&codec.decode(&theirs).unwrap()), canonical(&e));
    }

    #[test]
    fn apache_avro_reads_what_we_write(e in arb_event()) {
        let ours = encoded(&e);
        prop_assert_eq!(&ours[..2], &[0xC3, 0x01]);
        prop_assert_eq!(&ours[2..10], &avro::current_fingerprint().to_le_bytes());
        let schema = Schema::parse_str(CURRENT_SCHEMA_JSON).unwrap();
        let mut datum = &ours[10..];
        let value = apache_avro::from_avro_datum(&schema, &mut datum, None).unwrap();
        prop_assert!(datum.is_empty());
        prop_assert_eq!(value, apache_value(CURRENT_SCHEMA_JSON, &e, &[]).1);
    }
}

/// The header fingerprint apache-avro's own single-object writer uses.
fn apache_fingerprint(json: &str) -> u64 {
    let bytes = Schema::parse_str(json).unwrap().fingerprint::<apache_avro::rabin::Rabin>().bytes;
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}

fn sample() -> UsageEvent<'static> {
    let mut q = Quantities::default();
    q[Unit::InputToken] = 1200;
    q[Unit::OutputToken] = 300;
    q[Unit::CacheWriteToken] = 64;
    q[Unit::Request] = 1;
    UsageEvent {
        event_id: Cow::Borrowed("0192f3c4-5b6a-7c8d-9e0f-1a2b3c4d5e6f"),
        tenant_id: Cow::Borrowed("acme"),
        occurred_at_micros: 1_794_000_000_000_000,
        source: Source::Gateway,
        kind: Kind::Chat,
        provider: Some(Cow::Borrowed("openai")),
        model: Some(Cow::Borrowed("gpt-4o")),
        quantities: q,
        attributes: vec![(Cow::Borrowed("feature"), Cow::Borrowed("search"))],
    }
}

/// The datum of `e` (current schema) without its attributes map, so tests
/// can append map blocks of their own.
fn without_attributes(e: &UsageEvent<'_>) -> Vec<u8> {
    let mut e = e.clone();
    e.attributes.clear();
    let mut bytes = encoded(&e);
    assert_eq!(bytes.pop(), Some(0), "an empty map is the single byte 0");
    bytes
}

fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z > 0x7F {
        out.push((z as u8 & 0x7F) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

#[test]
fn the_fast_path_borrows_from_the_payload() {
    let bytes = encoded(&sample());
    let e = Codec::new().decode(&bytes).unwrap();
    assert!(matches!(e.event_id, Cow::Borrowed(_)));
    assert!(matches!(e.tenant_id, Cow::Borrowed(_)) && matches!(e.model, Some(Cow::Borrowed(_))));
    assert!(e.attributes.iter().all(|(k, v)| matches!((k, v), (Cow::Borrowed(_), Cow::Borrowed(_)))));
}

#[test]
fn event_ids_are_read_as_uuids_like_apache_avro_reads_them() {
    let codec = Codec::new();
    let canonical_id = "0192f3c4-5b6a-7c8d-9e0f-1a2b3c4d5e6f";
    for (wire, want) in [
        ("0192F3C4-5B6A-7C8D-9E0F-1A2B3C4D5E6F", Ok(canonical_id)),
        ("0192f3c45b6a7c8d9e0f1a2b3c4d5e6f", Ok(canonical_id)),
        ("{0192f3c4-5b6a-7c8d-9e0f-1a2b3c4d5e6f}", Ok(canonical_id)),
        ("urn:uuid:0192f3c4-5b6a-7c8d-9e0f-1a2b3c4d5e6f", Ok(canonical_id)),
        // apache-avro takes a 16-byte string as the UUID's raw bytes.
        ("0123456789abcdef", Ok("30313233-3435-3637-3839-616263646566")),
        ("42", Err("malformed")),
        ("0192f3c4-5b6a-7c8d-9e0f-1a2b3c4d5e6g", Err("malformed")),
    ] {
        let mut e = sample();
        e.event_id = Cow::Borrowed(wire);
        let bytes = encoded(&e);
        let fast = codec.decode(&bytes).map(|e| e.event_id.into_owned()).map_err(|e| e.code());
        let reference = codec.decode_reference(&bytes).map(|e| e.event_id.into_owned()).map_err(|e| e.code());
        let want = want.map(String::from);
        assert_eq!(fast, want, "{wire}");
        assert_eq!(reference, want, "{wire}");
    }
}

#[test]
fn map_entries_keep_wire_order_and_negative_block_counts_are_read() {
    let mut bytes = without_attributes(&sample());
    // A block with a negative count is followed by its size in bytes.
    let mut block = Vec::new();
    for (k, v) in [("zeta", "1"), ("alpha", "2")] {
        put_str(&mut block, k);
        put_str(&mut block, v);
    }
    put_long(&mut bytes, -2);
    put_long(&mut bytes, block.len() as i64);
    bytes.extend_from_slice(&block);
    put_long(&mut bytes, 1);
    put_str(&mut bytes, "mid");
    put_str(&mut bytes, "3");
    put_long(&mut bytes, 0);

    let codec = Codec::new();
    let e = codec.decode(&bytes).unwrap();
    let pairs: Vec<(&str, &str)> = e.attributes.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    assert_eq!(pairs, [("zeta", "1"), ("alpha", "2"), ("mid", "3")]);
    assert_eq!(canonical(&codec.decode_reference(&bytes).unwrap()), canonical(&e));
}

#[test]
fn lengths_beyond_the_payload_are_truncation_not_allocation() {
    let codec = Codec::new();
    // An event id claiming 2^62 bytes.
    let mut bytes = encoded(&sample())[..10].to_vec();
    put_long(&mut bytes, 1 << 62);
    bytes.extend_from_slice(b"0192f3c4");
    assert_eq!(codec.decode(&bytes), Err(DecodeError::Truncated));
    assert!(codec.decode_reference(&bytes).is_err());
    // A map claiming 2^62 entries, in either block form.
    for count in [1i64 << 62, -(1i64 << 62)] {
        let mut bytes = without_attributes(&sample());
        put_long(&mut bytes, count);
        put_long(&mut bytes, 8);
        assert_eq!(codec.decode(&bytes), Err(DecodeError::Truncated));
        assert!(codec.decode_reference(&bytes).is_err());
    }
}

#[test]
fn events_from_the_older_v1_schema_decode_with_defaults() {
    let codec = Codec::new();
    let mut want = sample();
    want.quantities[Unit::CacheWriteToken] = 0;
    want.attributes.clear();
    for bytes in [reference_encode(V1_SCHEMA_JSON, &sample(), &[]), apache_single_object(V1_SCHEMA_JSON, &sample(), &[])] {
        assert_eq!(codec.decode(&bytes).unwrap(), want);
        assert_eq!(canonical(&codec.decode_reference(&bytes).unwrap()), canonical(&want));
    }
}

#[test]
fn events_from_a_newer_schema_decode_once_it_is_registered() {
    let extra = [("region", Value::Union(1, Box::new(Value::String("eu".into())))), ("reasoning_tokens", Value::Long(99))];
    let spec = reference_encode(V3_SCHEMA_JSON, &sample(), &extra);
    let apache = apache_single_object(V3_SCHEMA_JSON, &sample(), &extra);
    let mut codec = Codec::new();
    let fp = avro::fingerprint_of(V3_SCHEMA_JSON).unwrap();
    assert_eq!(format!("{fp:016x}"), "1986140ff621fda3", "as fastavro computes it");
    assert_eq!(codec.decode(&spec), Err(DecodeError::UnknownFingerprint(fp)));
    assert_eq!(codec.decode(&spec).unwrap_err().code(), "unknown_schema");
    assert!(matches!(codec.decode(&apache), Err(DecodeError::UnknownFingerprint(_))));
    assert_eq!(codec.register_writer_schema(V3_SCHEMA_JSON).unwrap(), fp);
    assert_eq!(codec.register_writer_schema(V3_SCHEMA_JSON).unwrap(), fp, "registering twice is harmless");
    for bytes in [spec, apache] {
        assert_eq!(canonical(&codec.decode(&bytes).unwrap()), canonical(&sample()));
        assert_eq!(canonical(&codec.decode_reference(&bytes).unwrap()), canonical(&sample()));
    }
}

#[test]
fn a_schema_that_cannot_be_read_is_refused() {
    let mut schema: serde_json::Value = serde_json::from_str(CURRENT_SCHEMA_JSON).unwrap();
    schema["fields"][1]["type"] = "long".into();
    assert_eq!(schema["fields"][1]["name"], "tenant_id");
    let incompatible = schema.to_string();
    let err = Codec::new().register_writer_schema(&incompatible).unwrap_err();
    assert_eq!(err.code(), "bad_schema");
    assert_eq!(Codec::new().register_writer_schema("not json").unwrap_err().code(), "bad_schema");
}

#[test]
fn damaged_payloads_give_the_right_reason() {
    let codec = Codec::new();
    let good = encoded(&sample());
    assert_eq!(codec.decode(b"hello").unwrap_err().code(), "not_single_object");
    assert_eq!(codec.decode(&good[..9]).unwrap_err().code(), "not_single_object");
    let mut unknown = good.clone();
    unknown[2] ^= 0xFF;
    assert_eq!(codec.decode(&unknown).unwrap_err().code(), "unknown_schema");
    for cut in 10..good.len() {
        assert_eq!(codec.decode(&good[..cut]).unwrap_err().code(), "truncated", "cut at {cut}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(codec.decode(&trailing).unwrap_err().code(), "malformed");
    let mut bad_enum = without_attributes(&sample());
    let mut prefix = Vec::new();
    put_str(&mut prefix, &sample().event_id);
    put_str(&mut prefix, &sample().tenant_id);
    put_long(&mut prefix, sample().occurred_at_micros);
    put_long(&mut prefix, sample().source as i64);
    let kind_at = 10 + prefix.len();
    assert_eq!(bad_enum[kind_at], 0, "kind chat");
    bad_enum[kind_at] = 10; // index 5
    bad_enum.push(0);
    assert_eq!(codec.decode(&bad_enum).unwrap_err().code(), "malformed");
    assert!(codec.decode_reference(&bad_enum).is_err());
}

#[test]
fn the_encoding_is_compact() {
    let n = encoded(&sample()).len();
    assert!(n < 120, "a typical event encodes to {n} bytes");
}
