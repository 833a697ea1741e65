//! The wire format against the reference implementation (apache-avro):
//! round trips, differential decoding of generated and mutated payloads,
//! compatibility in both directions, and schema evolution.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use apache_avro::types::Value;
use apache_avro::Schema;
use meterline_core::avro::{self, Codec, DecodeError, CURRENT_SCHEMA_JSON, V1_SCHEMA_JSON};
use meterline_core::{Kind, Quantities, Source, Unit, UsageEvent};
use proptest::prelude::*;

const V3_SCHEMA_JSON: &str = include_str!("../../../schemas/testdata/usage_event.v3.avsc");

fn arb_event() -> impl Strategy<Value = UsageEvent<'static>> {
    (
        ".{0,40}",
        "[a-z0-9._:-]{0,20}|.{0,8}",
        any::<i64>(),
        0..2usize,
        0..5usize,
        proptest::option::of(".{0,12}"),
        proptest::option::of(".{0,24}"),
        proptest::array::uniform7(prop_oneof![any::<i64>(), 0..100_000i64]),
        proptest::collection::btree_map(".{0,10}", ".{0,16}", 0..6),
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

/// Encodes with apache-avro: `fields` maps each field name of `schema` to a value.
fn reference_encode(schema_json: &str, e: &UsageEvent<'_>, extra: &[(&str, Value)]) -> Vec<u8> {
    let schema = Schema::parse_str(schema_json).unwrap();
    let Schema::Record(record) = &schema else { panic!("record") };
    let opt = |s: &Option<Cow<'_, str>>| match s {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(s) => Value::Union(1, Box::new(Value::String(s.to_string()))),
    };
    let mut values: HashMap<&str, Value> = HashMap::from([
        ("event_id", Value::String(e.event_id.to_string())),
        ("tenant_id", Value::String(e.tenant_id.to_string())),
        ("occurred_at", Value::TimestampMicros(e.occurred_at_micros)),
        ("source", Value::Enum(e.source as u32, e.source.as_str().into())),
        ("kind", Value::Enum(e.kind as u32, e.kind.as_str().into())),
        ("provider", opt(&e.provider)),
        ("model", opt(&e.model)),
        (
            "attributes",
            Value::Map(e.attributes.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect()),
        ),
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
    let datum = apache_avro::to_avro_datum(&schema, Value::Record(fields)).unwrap();
    let mut out = vec![0xC3, 0x01];
    out.extend_from_slice(&avro::fingerprint_of(schema_json).unwrap().to_le_bytes());
    out.extend_from_slice(&datum);
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
    fn decoders_agree_on_generated_events(e in arb_event()) {
        assert_agree(&Codec::new(), &encoded(&e))?;
    }

    #[test]
    fn decoders_agree_on_mutated_payloads(
        e in arb_event(),
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
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200), v1 in any::<bool>()) {
        let codec = Codec::new();
        prop_assert!(codec.decode(&bytes).is_err() || bytes.len() >= 10);
        // Behind a valid header too.
        let json = if v1 { V1_SCHEMA_JSON } else { CURRENT_SCHEMA_JSON };
        let mut framed = vec![0xC3, 0x01];
        framed.extend_from_slice(&avro::fingerprint_of(json).unwrap().to_le_bytes());
        framed.append(&mut bytes);
        assert_agree(&codec, &framed)?;
    }

    #[test]
    fn apache_avro_reads_what_we_write_and_we_read_what_it_writes(e in arb_event()) {
        let theirs = reference_encode(CURRENT_SCHEMA_JSON, &e, &[]);
        let ours = encoded(&e);
        prop_assert_eq!(canonical(&Codec::new().decode(&theirs).unwrap()), canonical(&e));
        prop_assert_eq!(canonical(&Codec::new().decode_reference(&ours).unwrap()), canonical(&e));
    }
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

#[test]
fn the_fast_path_borrows_from_the_payload() {
    let bytes = encoded(&sample());
    let e = Codec::new().decode(&bytes).unwrap();
    assert!(matches!(e.tenant_id, Cow::Borrowed(_)) && matches!(e.model, Some(Cow::Borrowed(_))));
}

#[test]
fn events_from_the_older_v1_schema_decode_with_defaults() {
    let bytes = reference_encode(V1_SCHEMA_JSON, &sample(), &[]);
    let codec = Codec::new();
    let mut want = sample();
    want.quantities[Unit::CacheWriteToken] = 0;
    want.attributes.clear();
    assert_eq!(codec.decode(&bytes).unwrap(), want);
    assert_eq!(canonical(&codec.decode_reference(&bytes).unwrap()), canonical(&want));
}

#[test]
fn events_from_a_newer_schema_decode_once_it_is_registered() {
    let bytes = reference_encode(
        V3_SCHEMA_JSON,
        &sample(),
        &[("region", Value::Union(1, Box::new(Value::String("eu".into())))), ("reasoning_tokens", Value::Long(99))],
    );
    let mut codec = Codec::new();
    let fp = avro::fingerprint_of(V3_SCHEMA_JSON).unwrap();
    assert_eq!(codec.decode(&bytes), Err(DecodeError::UnknownFingerprint(fp)));
    assert_eq!(codec.register_writer_schema(V3_SCHEMA_JSON).unwrap(), fp);
    assert_eq!(canonical(&codec.decode(&bytes).unwrap()), canonical(&sample()));
}

#[test]
fn a_schema_that_cannot_be_read_is_refused() {
    let mut schema: serde_json::Value = serde_json::from_str(CURRENT_SCHEMA_JSON).unwrap();
    schema["fields"][1]["type"] = "long".into();
    assert_eq!(schema["fields"][1]["name"], "tenant_id");
    let incompatible = schema.to_string();
    assert!(matches!(Codec::new().register_writer_schema(&incompatible), Err(DecodeError::BadSchema(_))));
}

#[test]
fn damaged_payloads_give_the_right_reason() {
    let codec = Codec::new();
    let good = encoded(&sample());
    assert_eq!(codec.decode(b"hello").unwrap_err().code(), "not_single_object");
    let mut unknown = good.clone();
    unknown[2] ^= 0xFF;
    assert_eq!(codec.decode(&unknown).unwrap_err().code(), "unknown_schema");
    assert_eq!(codec.decode(&good[..good.len() - 3]).unwrap_err().code(), "truncated");
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(codec.decode(&trailing).unwrap_err().code(), "malformed");
}

#[test]
fn the_encoding_is_compact() {
    let n = encoded(&sample()).len();
    assert!(n < 120, "a typical event encodes to {n} bytes");
}
