//! Alert delivery end to end: alerts produced on the test's alert topic, a
//! real notifier process, and a real HTTP receiver in this test that checks
//! every signature with its own HMAC code (not the notifier's), or a real
//! SMTP server (aiosmtpd) that writes what it accepts into a maildir.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use meterline_core::avro::encode_alert;
use meterline_core::{alert::alert_id, AlertKind, BudgetAlert, Currency};
use meterline_storage::postgres::{self, notify};
use meterline_tests::env::TestEnv;
use meterline_tests::process::Service;
use meterline_tests::smtp::{Mime, SmtpServer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use sha2::Sha256;

/// What the receiver saw: per endpoint, each request's webhook-id and
/// whether its signature verified.
#[derive(Default)]
struct Seen {
    requests: HashMap<String, Vec<(String, bool, serde_json::Value)>>,
}

#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Seen>>,
    /// Per endpoint, every key its signatures must verify with (two while
    /// a secret is rotated).
    secrets: Arc<Mutex<HashMap<String, Vec<Vec<u8>>>>>,
}

/// Standard Webhooks verification, written from the specification for this
/// test: HMAC-SHA256 over "id.timestamp.body" with the base64-decoded part of
/// the whsec_ secret, compared with each "v1," entry of the header.
fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{}.{}.", get("webhook-id"), get("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    get("webhook-signature").split(' ').any(|s| s == format!("v1,{expected}"))
}

/// `/ok` answers 200; `/flaky` 500 three times, then 200; `/gone` 410.
async fn receive(State(r): State<Receiver>, Path(name): Path<String>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let keys = r.secrets.lock().unwrap().get(&name).cloned().unwrap_or_default();
    let ok = !keys.is_empty() && keys.iter().all(|key| verify(key, &headers, &body));
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let n = {
        let mut seen = r.seen.lock().unwrap();
        let list = seen.requests.entry(name.clone()).or_default();
        list.push((id, ok, json));
        list.len()
    };
    match name.as_str() {
        "flaky" if n <= 3 => StatusCode::INTERNAL_SERVER_ERROR,
        "gone" => StatusCode::GONE,
        _ => StatusCode::OK,
    }
}

fn alert(tenant: &str, threshold: i32) -> BudgetAlert {
    let period_start = 1_796_083_200_000_000; // 2026-12-01T00:00:00Z
    BudgetAlert {
        alert_id: alert_id(tenant, AlertKind::Threshold, threshold, period_start, 1),
        tenant_id: tenant.into(),
        kind: AlertKind::Threshold,
        threshold_percent: threshold,
        spend: "80.5".parse().unwrap(),
        limit: "100".parse().unwrap(),
        projected: None,
        currency: Currency::USD,
        period_start_micros: period_start,
        period_end_micros: 1_798_761_600_000_000,
        budget_version: 1,
        raised_at_micros: 1_796_100_000_000_000,
    }
}

/// The notifier, in the test's group, retrying on `schedule`, plus `extra`.
fn notifier(env: &TestEnv, instance: &str, schedule: &str, extra: &[(&str, &str)]) -> Result<Service> {
    let group = format!("{}-notify", env.group);
    let mut vars = vec![
        ("METERLINE_NOTIFY_GROUP", group.as_str()),
        ("METERLINE_NOTIFY_LISTEN", "127.0.0.1:0"),
        ("METERLINE_NOTIFY_RETRY_SCHEDULE", schedule),
        ("METERLINE_NOTIFY_ATTEMPT_TIMEOUT_MS", "2000"),
    ];
    vars.extend_from_slice(extra);
    Service::spawn(env, "meterline-notify", instance, &vars)
}

async fn produce(env: &TestEnv, alerts: &[BudgetAlert]) -> Result<()> {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &env.brokers).create()?;
    for a in alerts {
        let payload = encode_alert(a);
        producer
            .send(FutureRecord::to(&env.alerts_topic).key(&a.tenant_id).payload(&payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_webhooks_once_signed_retried_and_gone_endpoints_stop() -> Result<()> {
    let env = TestEnv::new("notify", 1).await?;
    let receiver = Receiver { seen: Default::default(), secrets: Default::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().route("/{name}", post(receive)).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let pool = postgres::connect(&env.database_url).await?;
    let mut channels = HashMap::new();
    for (tenant, name) in [("acme", "ok"), ("acme", "flaky"), ("globex", "gone"), ("initech", "never")] {
        let key = [name.len() as u8; 32];
        let secret = meterline_core::webhook::WebhookSecret::from_key(&key)?;
        receiver.secrets.lock().unwrap().insert(name.to_owned(), vec![key.to_vec()]);
        // initech subscribes to forecasts only: a threshold alert is not its.
        let types: Vec<String> = if tenant == "initech" { vec!["budget.forecast_exceeded".into()] } else { vec![] };
        let c = notify::add_channel(&pool, tenant, "webhook", &format!("{base}/{name}"), &types, Some(&secret.expose())).await?;
        channels.insert(name, c.channel_id);
    }

    let _notifier = notifier(&env, "a", "0s,200ms,200ms,200ms,200ms", &[("METERLINE_WEBHOOK_ALLOW_NETS", "127.0.0.1/32")])?;
    // Every alert twice: a redelivery must add nothing.
    let (acme, globex, initech) = (alert("acme", 80), alert("globex", 80), alert("initech", 50));
    produce(&env, &[acme.clone(), globex.clone(), initech.clone(), acme.clone(), globex.clone()]).await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let done = {
            let seen = receiver.seen.lock().unwrap();
            let n = |k: &str| seen.requests.get(k).map_or(0, Vec::len);
            n("ok") >= 1 && n("flaky") >= 4 && n("gone") >= 1
        };
        if done {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "deliveries did not arrive in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Long enough for any extra attempt (the schedule waits 200 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;

    // What arrived, out of the receiver's lock.
    let seen = std::mem::take(&mut *receiver.seen.lock().unwrap());
    let ok = &seen.requests["ok"];
    assert_eq!(ok.len(), 1, "one alert, one delivery to /ok, although the alert was produced twice");
    assert!(ok[0].1, "the signature verifies with the test's own HMAC");
    assert_eq!(ok[0].2["type"], "budget.threshold_crossed");
    assert_eq!(ok[0].2["data"]["spend"], "80.5");
    assert_eq!(ok[0].2["data"]["alert_id"], acme.alert_id.to_string());

    let flaky = &seen.requests["flaky"];
    assert_eq!(flaky.len(), 4, "three 500s, then the 200; nothing after");
    assert!(flaky.iter().all(|(id, ok, _)| *ok && id == &flaky[0].0), "every attempt signed, all with one webhook-id");
    assert_ne!(flaky[0].0, ok[0].0, "each channel gets its own webhook-id");

    assert_eq!(seen.requests["gone"].len(), 1, "410 is final: no retries");
    assert!(!seen.requests.contains_key("never"), "a channel gets only the types it subscribed to");

    let deliveries = notify::list_deliveries(&pool, None, None, 100).await?;
    let by_channel = |id| deliveries.iter().find(|d| d.channel_id == id).context("delivery");
    let flaky = by_channel(channels["flaky"])?;
    assert_eq!((flaky.state.as_str(), flaky.attempts), ("sent", 4));
    let gone = by_channel(channels["gone"])?;
    assert_eq!((gone.state.as_str(), gone.last_status), ("dead", Some(410)));
    let channels_now = notify::list_channels(&pool, Some("globex")).await?;
    assert!(!channels_now[0].enabled, "410 Gone turns the channel off");
    assert_eq!(deliveries.len(), 3, "ok, flaky and gone; none for the unsubscribed channel");

    // A rotated secret: during its grace period both the new secret and the
    // old one sign, so a receiver holding either verifies.
    let new_key = [42u8; 32];
    let new_secret = meterline_core::webhook::WebhookSecret::from_key(&new_key)?.expose();
    assert!(notify::rotate_secret(&pool, "acme", channels["ok"], &new_secret, 3600).await?);
    receiver.secrets.lock().unwrap().get_mut("ok").unwrap().push(new_key.to_vec());
    notify::queue_test_event(&pool, "acme", channels["ok"]).await?.context("the ok channel is enabled")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        // What arrived before was taken out of the receiver above.
        if let Some((_, both, body)) = receiver.seen.lock().unwrap().requests.get("ok").and_then(|r| r.first()).cloned() {
            assert_eq!(body["type"], "notify.test");
            assert!(both, "signed with the new secret and with the old one");
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the test event did not arrive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_email_once_after_the_smtp_server_comes_up() -> Result<()> {
    let env = TestEnv::new("notify_email", 1).await?;
    let pool = postgres::connect(&env.database_url).await?;
    let channel = notify::add_channel(&pool, "umbrella", "email", "ops@umbrella.example", &[], None).await?;
    let port = meterline_tests::http::free_port()?;
    // Enough quick attempts to outlast the SMTP server's start.
    let schedule = format!("0s{}", ",500ms".repeat(30));
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let _notifier = notifier(
        &env,
        "a",
        &schedule,
        &[("METERLINE_SMTP_URL", &smtp_url), ("METERLINE_SMTP_FROM", "Meterline Alerts <alerts@meterline.test>")],
    )?;
    // Twice: a redelivered alert must add no second email.
    let umbrella = alert("umbrella", 80);
    produce(&env, &[umbrella.clone(), umbrella.clone()]).await?;

    // No SMTP server yet: the first attempt fails and is retried.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let deliveries = notify::list_deliveries(&pool, None, None, 10).await?;
        if deliveries.iter().any(|d| d.state == "failed" && d.attempts >= 1) {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no failed first attempt in 30 s: {deliveries:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let server = SmtpServer::start(port, &env.dir.join("maildir"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while server.messages()?.is_empty() {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no email arrived in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Long enough for any extra attempt (the schedule waits 500 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let messages = server.messages()?;
    assert_eq!(messages.len(), 1, "one alert, one email, although the alert was produced twice and the first attempt failed");

    let message = Mime::parse(&messages[0]);
    assert_eq!(message.header("Subject"), Some("[Meterline] umbrella: 80% of December 2026 budget (80.50/100.00 USD)"));
    assert_eq!(message.header("To"), Some("ops@umbrella.example"));
    assert!(message.header("From").unwrap_or_default().contains("<alerts@meterline.test>"), "{:?}", message.header("From"));
    let message_id = message.header("Message-ID").context("no Message-ID")?;
    let local = message_id.strip_prefix("<msg_").and_then(|m| m.strip_suffix("@meterline>")).context(message_id.to_owned())?;
    assert!(local.len() == 32 && local.chars().all(|c| c.is_ascii_hexdigit()), "a stable id from the delivery: {message_id}");
    assert!(message.header("Content-Type").unwrap_or_default().starts_with("multipart/alternative"));

    let parts = message.parts()?;
    let part = |kind: &str| {
        parts.iter().find(|p| p.header("Content-Type").unwrap_or_default().starts_with(kind)).with_context(|| format!("no {kind} part"))
    };
    let text = part("text/plain")?.decoded_body()?;
    let html = part("text/html")?.decoded_body()?;
    for body in [&text, &html] {
        for expected in ["umbrella", "80%", "80.50 USD", "19.50 USD", "100.00 USD", "2026-12-01 00:00", "2027-01-01 00:00"] {
            assert!(body.contains(expected), "{expected:?} missing from {body}");
        }
        assert!(body.contains(&umbrella.alert_id.to_string()), "the alert id is in {body}");
    }
    assert!(html.contains("<table>"), "{html}");

    let deliveries = notify::list_deliveries(&pool, None, None, 10).await?;
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!((d.channel_id, d.state.as_str(), d.last_status), (channel.channel_id, "sent", Some(250)));
    assert!(d.attempts >= 2, "delivered on a retry: {d:?}");

    // `meterline channels test` works for email too.
    notify::queue_test_event(&pool, "umbrella", channel.channel_id).await?.context("the channel is enabled")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let test_message = loop {
        let messages = server.messages()?;
        if let Some(m) = messages.iter().map(|m| Mime::parse(m)).find(|m| m.header("Subject") == Some("[Meterline] umbrella: test message"))
        {
            break m;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no test email arrived in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(test_message.header("Message-ID"), Some(message_id), "another event, another Message-ID");
    Ok(())
}

/// Each request's `webhook-id` and alert id, in arrival order. Answers 30 ms
/// after, so a SIGKILL often lands while requests are in flight.
type Arrivals = Arc<Mutex<Vec<(String, String)>>>;

async fn slow_receive(State(arrivals): State<Arrivals>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let alert = json["data"]["alert_id"].as_str().unwrap_or_default().to_owned();
    // Recorded on arrival, answered later: a sender killed in between has
    // delivered without learning it, the case the webhook-id is for.
    arrivals.lock().unwrap().push((id, alert));
    tokio::time::sleep(Duration::from_millis(30)).await;
    StatusCode::OK
}

/// A [`slow_receive`] server on a free local port, and its URL.
async fn slow_receiver() -> Result<(Arrivals, String)> {
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().route("/hook", post(slow_receive)).with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((arrivals, url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_notifiers_killed_again_and_again_deliver_every_alert_and_none_twice() -> Result<()> {
    const TENANTS: usize = 10;
    const ALERTS: usize = 300;
    const KILLS: usize = 6;
    let env = TestEnv::new("notify_kill", 2).await?;
    let (arrivals, url) = slow_receiver().await?;
    let pool = postgres::connect(&env.database_url).await?;
    for t in 0..TENANTS {
        let secret = meterline_core::webhook::WebhookSecret::from_key(&[t as u8; 32])?;
        notify::add_channel(&pool, &format!("tenant-{t}"), "webhook", &url, &[], Some(&secret.expose())).await?;
    }
    // A short attempt timeout keeps the lease short (2 x timeout + 5 s), so
    // an attempt a kill left unrecorded is due again within seconds.
    let extra = [("METERLINE_WEBHOOK_ALLOW_NETS", "127.0.0.1/32"), ("METERLINE_NOTIFY_ATTEMPT_TIMEOUT_MS", "500")];
    let schedule = "0s,200ms,200ms,200ms,200ms,200ms";
    let mut a = notifier(&env, "a", schedule, &extra)?;
    let mut b = notifier(&env, "b", schedule, &extra)?;

    let alerts: Vec<BudgetAlert> = (0..ALERTS).map(|i| alert(&format!("tenant-{}", i % TENANTS), (i + 1) as i32)).collect();
    let producing = {
        let env_alerts = alerts.clone();
        let brokers = env.brokers.clone();
        let topic = env.alerts_topic.clone();
        tokio::spawn(async move {
            let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
            for chunk in env_alerts.chunks(10) {
                for a in chunk {
                    let payload = encode_alert(a);
                    producer
                        .send(FutureRecord::to(&topic).key(&a.tenant_id).payload(&payload), Duration::from_secs(10))
                        .await
                        .map_err(|(e, _)| e)?;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(())
        })
    };
    // Kill one instance or the other at moments spread over the stream,
    // and start it again at once (its group and its claims carry over).
    for k in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(150 + 97 * k as u64)).await;
        if k % 2 == 0 {
            a.kill9()?;
            a = notifier(&env, "a", schedule, &extra)?;
        } else {
            b.kill9()?;
            b = notifier(&env, "b", schedule, &extra)?;
        }
    }
    producing.await??;

    let expected: std::collections::HashSet<String> = alerts.iter().map(|a| a.alert_id.to_string()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got: std::collections::HashSet<String> = arrivals.lock().unwrap().iter().map(|(_, alert)| alert.clone()).collect();
        if expected.is_subset(&got) {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{} of {ALERTS} alerts never arrived", expected.difference(&got).count());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Past any claim a kill left behind (lease 6 s), so a late resend shows.
    tokio::time::sleep(Duration::from_secs(7)).await;
    a.check_alive()?;
    b.check_alive()?;

    let arrivals = std::mem::take(&mut *arrivals.lock().unwrap());
    let mut per_id: HashMap<&str, (usize, &str)> = HashMap::new();
    for (id, alert) in &arrivals {
        let e = per_id.entry(id.as_str()).or_insert((0, alert.as_str()));
        e.0 += 1;
        assert_eq!(e.1, alert, "one webhook-id, one alert");
    }
    // Deduplicated by webhook-id, as receivers must, every alert arrived
    // exactly once: one channel per tenant, so one webhook-id per alert.
    assert_eq!(per_id.len(), ALERTS, "one webhook-id per alert");
    let delivered: std::collections::HashSet<&str> = per_id.values().map(|(_, alert)| *alert).collect();
    assert_eq!(delivered.len(), ALERTS);
    // What a receiver may see twice: a request a kill interrupted after it
    // was sent and before its outcome was recorded, sent again under the
    // same webhook-id. Each kill can leave at most the attempts then in
    // flight (the concurrency bound, 64) so unrecorded.
    let resent: usize = per_id.values().map(|(n, _)| n - 1).sum();
    assert!(resent <= KILLS * 64, "{resent} resends for {KILLS} kills");
    println!("{} requests for {ALERTS} alerts: {resent} resends of an unknown outcome, each under its first webhook-id", arrivals.len());

    let deliveries = notify::list_deliveries(&pool, None, None, 10_000).await?;
    assert_eq!(deliveries.len(), ALERTS, "one delivery per alert, although both instances and their restarts read the topic");
    assert!(deliveries.iter().all(|d| d.state == "sent"), "every delivery recorded as sent");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_and_its_lifting_reach_the_tenant_once_each() -> Result<()> {
    use meterline_core::avro::encode_throttle;
    use meterline_core::{ThrottleCommand, ThrottleState};
    let env = TestEnv::new("notify_throttle", 1).await?;
    let (arrivals, url) = slow_receiver().await?;
    let pool = postgres::connect(&env.database_url).await?;
    let secret = meterline_core::webhook::WebhookSecret::from_key(&[9; 32])?;
    notify::add_channel(&pool, "hooli", "webhook", &url, &[], Some(&secret.expose())).await?;
    let _notifier = notifier(&env, "a", "0s,200ms", &[("METERLINE_WEBHOOK_ALLOW_NETS", "127.0.0.1/32")])?;

    let now = chrono::Utc::now().timestamp_micros();
    let command = |version: i64, state: ThrottleState| ThrottleCommand {
        tenant_id: "hooli".into(),
        version,
        state,
        target_model: None,
        reason: "test".into(),
        period_start_micros: now - 86_400_000_000,
        period_end_micros: now + 86_400_000_000,
        spend: "100.5".parse().unwrap(),
        limit: Some("100".parse().unwrap()),
        currency: Some(Currency::USD),
        budget_version: Some(1),
        issued_at_micros: now,
    };
    // allow, block, the block again (a redelivery), allow: one notice each
    // for the block and the recovery.
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &env.brokers).create()?;
    for c in [
        command(1, ThrottleState::Allow),
        command(2, ThrottleState::Block),
        command(2, ThrottleState::Block),
        command(3, ThrottleState::Allow),
    ] {
        let payload = encode_throttle(&c);
        producer
            .send(FutureRecord::to(&env.throttle_topic).key("hooli").payload(&payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while arrivals.lock().unwrap().len() < 2 {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "the notices did not arrive in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deliveries = notify::list_deliveries(&pool, Some("hooli"), None, 10).await?;
    let mut types: Vec<&str> = deliveries.iter().map(|d| d.event_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, ["budget.blocked", "budget.recovered"], "one notice for the block, one for its lifting");
    assert_eq!(arrivals.lock().unwrap().len(), 2, "each delivered once");
    Ok(())
}
