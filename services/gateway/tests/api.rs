//! The services' HTTP contract, exercised through the routers in-process:
//! no Kafka, no ports (except the one test of `run`, on port 0).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use meterline_core::{Kind, Source, ThrottleCommand, ThrottleState, Unit, UsageEvent};
use meterline_gateway::auth::mint_token;
use meterline_gateway::metrics::{Outcome, Route};
use meterline_gateway::sink::Failure;
use meterline_gateway::{gateway_router, rag_router, AppState, Config, JwtSecret, MemorySink, Metrics, Service};
use meterline_sdk::CommandTable;
use serde_json::{json, Value};
use tower::ServiceExt;

const SECRET: &str = "a-test-secret-that-is-32-bytes-long";

struct Harness {
    router: Router,
    sink: Arc<MemorySink>,
    table: Arc<CommandTable>,
    metrics: Metrics,
}

fn harness(service: Service) -> Harness {
    let mut config = Config::with_secret(JwtSecret::new(SECRET));
    config.model_latency = Duration::ZERO;
    let sink = Arc::new(MemorySink::new());
    let table = Arc::new(CommandTable::default());
    let (state, _drain) = AppState::new(config, table.clone(), sink.clone(), Metrics::new(service.routes()));
    let metrics = state.metrics().clone();
    let router = match service {
        Service::Gateway => gateway_router(state),
        Service::Rag => rag_router(state),
    };
    Harness { router, sink, table, metrics }
}

fn token(tenant: &str) -> String {
    mint_token(SECRET.as_bytes(), tenant, None).unwrap()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn call(router: &Router, path: &str, auth: Option<&str>, body: &str) -> Reply {
    let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let response = router.clone().oneshot(req.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {bytes:?}"));
    Reply { status, headers, body }
}

async fn chat(h: &Harness, tenant: &str, body: Value) -> Reply {
    call(&h.router, "/v1/chat/completions", Some(&format!("Bearer {}", token(tenant))), &body.to_string()).await
}

fn command(tenant: &str, version: i64, state: ThrottleState, target: Option<&str>, reason: &str) -> ThrottleCommand {
    let now = meterline_gateway::usage::now_micros();
    ThrottleCommand {
        tenant_id: tenant.into(),
        version,
        state,
        target_model: target.map(str::to_owned),
        reason: reason.into(),
        period_start_micros: now - 3_600_000_000,
        period_end_micros: now + 3_600_000_000,
        spend: Default::default(),
        limit: None,
        currency: None,
        budget_version: None,
        issued_at_micros: now,
    }
}

fn attr<'a>(e: &'a UsageEvent<'_>, key: &str) -> Option<&'a str> {
    e.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
}

fn hello() -> Value {
    json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": "How are tokens metered?" }] })
}

#[tokio::test]
async fn requests_without_a_valid_token_get_a_json_401() {
    let h = harness(Service::Gateway);
    let forged = mint_token(b"not-the-secret", "acme", None).unwrap();
    for auth in [None, Some("Bearer garbage".to_owned()), Some(format!("Bearer {forged}")), Some("Basic YWNtZTpwdw==".to_owned())] {
        let r = call(&h.router, "/v1/chat/completions", auth.as_deref(), &hello().to_string()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(r.body["error"]["type"], "authentication_error");
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
    }
    assert!(h.sink.events().is_empty());
    assert_eq!(h.metrics.requests(Route::ChatCompletions, Outcome::Unauthorized), 4);
}

#[tokio::test]
async fn a_chat_completion_is_served_and_metered_deterministically() {
    let h = harness(Service::Gateway);
    let a = chat(&h, "acme", hello()).await;
    let b = chat(&h, "acme", hello()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["object"], "chat.completion");
    assert_eq!(a.body["model"], "gpt-4o");
    assert_eq!(a.body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(a.body["usage"], b.body["usage"]);
    assert_eq!(a.body["choices"][0]["message"]["content"], b.body["choices"][0]["message"]["content"]);
    assert!(a.body.get("meterline").is_none());
    // "How are tokens metered?" is 23 characters: 6 tokens.
    assert_eq!(a.body["usage"]["prompt_tokens"], 6);

    let events = h.sink.events();
    assert_eq!(events.len(), 2);
    let e = &events[0];
    assert_eq!((e.tenant_id.as_ref(), e.source, e.kind), ("acme", Source::Gateway, Kind::Chat));
    assert_eq!((e.provider(), e.model()), ("openai", "gpt-4o"));
    assert_eq!(e.quantities[Unit::InputToken], 6);
    assert_eq!(Some(e.quantities[Unit::OutputToken]), a.body["usage"]["completion_tokens"].as_i64());
    assert_eq!(e.quantities[Unit::Request], 1);
    assert_eq!(attr(e, "route"), Some("chat.completions"));
    assert_eq!(a.headers["x-meterline-event-id"], e.event_id.as_ref());
    assert_eq!(a.body["id"], format!("chatcmpl-{}", e.event_id));
    assert_ne!(events[0].event_id, events[1].event_id, "each request is its own event");
    assert_eq!(h.metrics.requests(Route::ChatCompletions, Outcome::Served), 2);
}

#[tokio::test]
async fn the_tenant_comes_from_the_token_never_the_body() {
    let h = harness(Service::Gateway);
    let mut body = hello();
    body["tenant_id"] = json!("someone-else");
    body["user"] = json!("user-7");
    body["max_tokens"] = json!(4);
    let r = chat(&h, "acme", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["usage"]["completion_tokens"], 4);
    assert_eq!(r.body["choices"][0]["finish_reason"], "length");
    let events = h.sink.events();
    assert_eq!(events[0].tenant_id, "acme");
    assert_eq!(attr(&events[0], "user"), Some("user-7"));
    assert_eq!(events[0].quantities[Unit::OutputToken], 4);
}

#[tokio::test]
async fn a_blocked_tenant_gets_429_with_retry_after_and_is_not_metered() {
    let h = harness(Service::Gateway);
    assert!(h.table.apply(command("acme", 1, ThrottleState::Block, None, "monthly budget of 100 USD reached")));
    let r = chat(&h, "acme", hello()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["error"]["type"], "budget_exceeded");
    assert_eq!(r.body["error"]["message"], "monthly budget of 100 USD reached");
    assert_eq!(r.body["error"]["tenant_id"], "acme");
    let retry: u64 = r.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((3590..=3601).contains(&retry), "Retry-After {retry}");
    assert!(h.sink.events().is_empty());
    // Other tenants are untouched.
    assert_eq!(chat(&h, "globex", hello()).await.status, StatusCode::OK);
    assert_eq!(h.metrics.requests(Route::ChatCompletions, Outcome::Throttled), 1);
}

#[tokio::test]
async fn a_degraded_tenant_is_served_the_cheaper_model_and_told_so() {
    let h = harness(Service::Gateway);
    h.table.apply(command("acme", 1, ThrottleState::Degrade, Some("gpt-4o-mini"), "90% of budget used"));
    let r = chat(&h, "acme", hello()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["model"], "gpt-4o-mini");
    assert_eq!(r.headers["x-meterline-degraded-from"], "gpt-4o");
    assert_eq!(
        r.body["meterline"],
        json!({ "degraded": true, "requested_model": "gpt-4o", "served_model": "gpt-4o-mini", "reason": "90% of budget used" })
    );
    let events = h.sink.events();
    assert_eq!(events[0].model(), "gpt-4o-mini");
    assert_eq!(attr(&events[0], "requested_model"), Some("gpt-4o"));
    assert_eq!(h.metrics.requests(Route::ChatCompletions, Outcome::Degraded), 1);
}

#[tokio::test]
async fn malformed_requests_get_a_json_400_with_a_reason() {
    let h = harness(Service::Gateway);
    let auth = format!("Bearer {}", token("acme"));
    let cases = [
        ("{not json", "invalid request body"),
        (r#"{"model":"gpt-4o"}"#, "messages"),
        (r#"{"model":"","messages":[{"role":"user","content":"hi"}]}"#, "model must not be empty"),
        (r#"{"model":"gpt-4o","messages":[]}"#, "messages must not be empty"),
        (r#"{"model":"gpt-4o","messages":[{"role":"user","content":7}]}"#, "messages[0].content"),
        (r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#, "stream"),
        (r#"{"model":"gpt-4o","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}"#, "max_tokens"),
        (r#"{"model":"gpt 4o","messages":[{"role":"user","content":"hi"}]}"#, "model must be"),
        ("", "invalid request body"),
    ];
    for (body, expected) in cases {
        let r = call(&h.router, "/v1/chat/completions", Some(&auth), body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert!(h.sink.events().is_empty());
    assert_eq!(h.metrics.requests(Route::ChatCompletions, Outcome::BadRequest), cases.len() as u64);
    // Array-of-parts content is accepted; null content counts nothing.
    let parts = json!({ "model": "gpt-4o", "messages": [
        { "role": "user", "content": [{ "type": "text", "text": "abcd" }, { "type": "image_url", "image_url": {} }] },
        { "role": "assistant", "content": null }
    ]});
    let r = chat(&h, "acme", parts).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["usage"]["prompt_tokens"], 1);
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let h = harness(Service::Gateway);
    let r = call(&h.router, "/v1/nothing", None, "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["type"], "not_found");
}

#[tokio::test]
async fn an_emit_failure_still_returns_the_completion_and_is_counted() {
    let h = harness(Service::Gateway);
    h.sink.fail_with(Failure::Record);
    assert_eq!(chat(&h, "acme", hello()).await.status, StatusCode::OK);
    assert_eq!(h.metrics.emit_failures(), 1);

    h.sink.fail_with(Failure::Acknowledgement);
    assert_eq!(chat(&h, "acme", hello()).await.status, StatusCode::OK);
    // The acknowledgement is awaited in the background: wait for it.
    tokio::time::timeout(Duration::from_secs(5), async {
        while h.metrics.emit_failures() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the failed acknowledgement is counted");
}

async fn rag(h: &Harness, path: &str, tenant: &str, body: Value) -> Reply {
    call(&h.router, path, Some(&format!("Bearer {}", token(tenant))), &body.to_string()).await
}

#[tokio::test]
async fn embeddings_are_metered_in_embedding_tokens() {
    let h = harness(Service::Rag);
    let r = rag(&h, "/v1/embeddings", "acme", json!({ "model": "text-embedding-3-small", "input": ["abcd", "abcde"] })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["data"][1]["index"], 1);
    assert_eq!(r.body["usage"]["prompt_tokens"], 3);
    let r2 = rag(&h, "/v1/embeddings", "acme", json!({ "model": "text-embedding-3-small", "input": "abcd" })).await;
    assert_eq!(r2.body["data"][0]["embedding"], r.body["data"][0]["embedding"]);

    let events = h.sink.events();
    let e = &events[0];
    assert_eq!((e.tenant_id.as_ref(), e.source, e.kind), ("acme", Source::Rag, Kind::Embedding));
    assert_eq!((e.provider(), e.model()), ("openai", "text-embedding-3-small"));
    assert_eq!(e.quantities[Unit::EmbeddingToken], 3);
    assert_eq!(e.quantities[Unit::Request], 1);
    assert_eq!(e.quantities[Unit::InputToken], 0);

    for bad in [
        json!({ "model": "m", "input": [] }),
        json!({ "model": "m", "input": [1, 2] }),
        json!({ "model": "m", "input": "" }),
        json!({ "input": "x" }),
    ] {
        let r = rag(&h, "/v1/embeddings", "acme", bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(h.sink.events().len(), 2);
}

#[tokio::test]
async fn rag_obeys_the_budget_like_the_gateway() {
    let h = harness(Service::Rag);
    h.table.apply(command("acme", 1, ThrottleState::Degrade, Some("text-embedding-3-tiny"), "near budget"));
    let r = rag(&h, "/v1/embeddings", "acme", json!({ "model": "text-embedding-3-large", "input": "hello" })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["model"], "text-embedding-3-tiny");
    assert_eq!(r.headers["x-meterline-degraded-from"], "text-embedding-3-large");
    assert_eq!(r.body["meterline"]["degraded"], true);
    assert_eq!(h.sink.events()[0].model(), "text-embedding-3-tiny");

    h.table.apply(command("acme", 2, ThrottleState::Block, None, "budget reached"));
    for path in ["/v1/embeddings", "/v1/search"] {
        let r = rag(&h, path, "acme", json!({ "model": "m", "input": "x", "query": "x" })).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert!(r.headers.contains_key(header::RETRY_AFTER));
        assert_eq!(r.body["error"]["type"], "budget_exceeded");
    }
    assert_eq!(h.sink.events().len(), 1);
}

#[tokio::test]
async fn a_search_is_metered_as_a_query_embedding_and_a_vector_query() {
    let h = harness(Service::Rag);
    let body = json!({ "query": "what does a token cost?", "top_k": 3, "collection": "docs", "tenant_id": "globex" });
    let r = rag(&h, "/v1/search", "acme", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["data"], rag(&h, "/v1/search", "acme", body).await.body["data"]);
    // 23 characters: 6 tokens.
    assert_eq!(r.body["usage"], json!({ "embedding_tokens": 6, "vector_queries": 1 }));

    let events = h.sink.events();
    assert_eq!(events.len(), 4);
    let (embedding, search) = (&events[0], &events[1]);
    assert!(events.iter().all(|e| e.tenant_id == "acme" && e.source == Source::Rag));
    assert_eq!(embedding.kind, Kind::Embedding);
    assert_eq!((embedding.provider(), embedding.model()), ("openai", "text-embedding-3-small"));
    assert_eq!(embedding.quantities[Unit::EmbeddingToken], 6);
    assert_eq!(embedding.quantities[Unit::Request], 0, "the search is one request, counted on its vector_search event");
    assert_eq!(search.kind, Kind::VectorSearch);
    assert_eq!(search.provider(), "pgvector");
    assert_eq!(search.quantities[Unit::VectorQuery], 1);
    assert_eq!(search.quantities[Unit::Request], 1);
    assert_eq!(attr(search, "collection"), Some("docs"));
    let ids: Vec<_> = r.headers.get_all("x-meterline-event-id").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert_eq!(ids, [embedding.event_id.to_string(), search.event_id.to_string()]);

    for bad in [
        json!({ "query": "" }),
        json!({ "query": "x", "top_k": 0 }),
        json!({ "query": "x", "top_k": 1000 }),
        json!({ "query": "x", "collection": "a b" }),
    ] {
        assert_eq!(rag(&h, "/v1/search", "acme", bad.clone()).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn metrics_name_routes_and_outcomes_but_no_tenant() {
    let h = harness(Service::Gateway);
    chat(&h, "tenant-secret-name", hello()).await;
    let response = h.router.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.contains(r#"meterline_gateway_requests_total{outcome="served",route="chat.completions"} 1"#), "{text}");
    assert!(text.contains("meterline_gateway_emit_failures_total 0"), "{text}");
    assert!(!text.contains("tenant-secret-name"));
    let health = h.router.clone().oneshot(Request::get("/health").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn run_serves_until_shutdown_then_returns() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut config = Config::with_secret(JwtSecret::new(SECRET));
    config.model_latency = Duration::ZERO;
    let server = tokio::spawn(meterline_gateway::run(
        Service::Gateway,
        config,
        listener,
        Arc::new(CommandTable::default()),
        Arc::new(MemorySink::new()),
        async move {
            let _ = stopped.await;
        },
    ));
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), server).await.expect("run returns after shutdown").unwrap().unwrap();
}
