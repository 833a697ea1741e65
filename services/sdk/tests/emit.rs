//! The SDK against the real local broker (scripts/stack.sh starts it).

use std::borrow::Cow;
use std::time::Duration;

use meterline_core::avro::Codec;
use meterline_core::{Kind, Quantities, Source, Unit, UsageEvent};
use meterline_sdk::{EmitError, Emitter, EmitterConfig};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;

fn brokers() -> String {
    meterline_core::config::Env::process().string("METERLINE_KAFKA_BROKERS", meterline_core::config::defaults::KAFKA_BROKERS)
}

async fn topic() -> String {
    let name = format!("mlt.sdk.{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers()).create().unwrap();
    let r = admin
        .create_topics(&[NewTopic::new(&name, 2, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("Kafka must be running: scripts/stack.sh up");
    r[0].as_ref().unwrap();
    name
}

fn event(i: u32, tenant: &str) -> UsageEvent<'static> {
    let mut q = Quantities::default();
    q[Unit::InputToken] = i64::from(i);
    UsageEvent {
        event_id: Cow::Owned(uuid::Uuid::new_v4().to_string()),
        tenant_id: Cow::Owned(tenant.to_owned()),
        occurred_at_micros: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64,
        source: Source::Gateway,
        kind: Kind::Chat,
        provider: Some(Cow::Borrowed("openai")),
        model: Some(Cow::Borrowed("gpt-4o")),
        quantities: q,
        attributes: vec![],
    }
}

#[tokio::test]
async fn emitted_events_arrive_keyed_by_tenant_and_decodable() {
    let topic = topic().await;
    let emitter = Emitter::new(EmitterConfig { brokers: brokers(), topic: topic.clone(), max_in_flight: 8, ..Default::default() }).unwrap();
    let sent: Vec<UsageEvent<'static>> = (1..=50).map(|i| event(i, if i % 2 == 0 { "even" } else { "odd" })).collect();
    let mut deliveries = Vec::new();
    for e in &sent {
        deliveries.push(emitter.emit(e).await.unwrap());
    }
    for d in deliveries {
        let r = d.await.unwrap();
        assert!(r.offset >= 0);
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{topic}-check"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let codec = Codec::new();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < sent.len() && std::time::Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
        let m = m.unwrap();
        let e = codec.decode(m.payload().unwrap()).unwrap().into_owned();
        assert_eq!(m.key().unwrap(), e.tenant_id.as_bytes(), "keyed by tenant");
        got.push(e);
    }
    got.sort_by_key(|e| e.quantities[Unit::InputToken]);
    assert_eq!(got, sent);
}

#[tokio::test]
async fn invalid_events_are_refused_before_sending() {
    let emitter = Emitter::new(EmitterConfig { brokers: brokers(), topic: topic().await, ..Default::default() }).unwrap();
    let mut e = event(1, "t");
    e.quantities[Unit::OutputToken] = -5;
    match emitter.emit(&e).await {
        Err(EmitError::Invalid(r)) => assert_eq!(r.code(), "negative_quantity"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    e = event(1, "");
    assert!(matches!(emitter.emit(&e).await, Err(ref err @ EmitError::Invalid(_)) if !err.is_retriable()));
}

#[tokio::test]
async fn an_unreachable_broker_fails_the_delivery_instead_of_reporting_success() {
    let emitter = Emitter::new(EmitterConfig {
        brokers: "127.0.0.1:1".into(),
        topic: "nowhere".into(),
        delivery_timeout_ms: 1_000,
        ..Default::default()
    })
    .unwrap();
    let err = emitter.emit_and_wait(&event(1, "t")).await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
}

#[tokio::test]
async fn dropped_deliveries_do_not_use_up_the_in_flight_bound() {
    let emitter = Emitter::new(EmitterConfig { brokers: brokers(), topic: topic().await, max_in_flight: 4, ..Default::default() }).unwrap();
    // Ten times the bound, every Delivery dropped at once: each permit must
    // come back with the broker's answer, or the fifth emit waits forever.
    let all = async {
        for i in 1..=40 {
            drop(emitter.emit(&event(i, "t")).await.unwrap());
        }
        emitter.emit_and_wait(&event(41, "t")).await.unwrap()
    };
    let receipt = tokio::time::timeout(Duration::from_secs(60), all).await.expect("the in-flight bound was used up");
    assert!(receipt.offset >= 0);
}
