//! The reference RAG service: `POST /v1/embeddings` (OpenAI's shapes) and
//! `POST /v1/search`, simulated, metered and within the tenant's budget.
//!
//! A search is billed as two events, because it uses two priced things
//! from two providers: the query's embedding (provider = the embedding
//! provider, unit `embedding_token`) and the vector query (provider = the
//! vector store, unit `vector_query`). Prices are looked up per provider
//! and model, so one event carrying both units would find a price for one
//! and leave the event unpriced. The `request` unit goes on the
//! vector_search event only, so a search counts as one request.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meterline_core::{Kind, Source, TenantId, Unit};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::meterline_info::{MeterlineInfo, DEGRADED_FROM, EVENT_ID};
use crate::metrics::{Outcome, Route};
use crate::model::tokens_for;
use crate::request::{check_model, parse_json, MAX_NAME_LEN};
use crate::state::AppState;
use crate::throttle::{self, Degraded, Plan};
use crate::{usage, vectors};

/// Most inputs in one embeddings request (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;
/// Most hits one search returns.
pub const MAX_TOP_K: u32 = 100;
pub const DEFAULT_TOP_K: u32 = 5;
pub const DEFAULT_COLLECTION: &str = "default";

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    model: String,
    input: Value,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SearchRequest {
    query: String,
    #[serde(default)]
    top_k: Option<u32>,
    #[serde(default)]
    collection: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

pub async fn embeddings(State(s): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    finish(&s, Route::Embeddings, handle_embeddings(&s, &headers, body).await)
}

pub async fn search(State(s): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    finish(&s, Route::Search, handle_search(&s, &headers, body).await)
}

fn finish(s: &AppState, route: Route, result: Result<(Outcome, Response), ApiError>) -> Response {
    match result {
        Ok((outcome, response)) => {
            s.metrics.request(route, outcome);
            response
        }
        Err(e) => {
            s.metrics.request(route, e.outcome());
            tracing::debug!(route = route.as_str(), error = %e, "request refused");
            e.into_response()
        }
    }
}

#[tracing::instrument(name = "embeddings", skip_all, fields(tenant = tracing::field::Empty))]
async fn handle_embeddings(
    s: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Outcome, Response), ApiError> {
    let tenant = s.authenticate(headers)?;
    let req: EmbeddingsRequest = parse_json(body)?;
    check_model(&req.model)?;
    check_user(req.user.as_deref())?;
    let inputs = inputs_of(&req.input)?;
    let (model, degraded) = obey(s, &tenant, &req.model)?;

    s.model.wait().await;
    let tokens: i64 = inputs.iter().map(|t| tokens_for(t.chars().count())).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| json!({ "object": "embedding", "index": index, "embedding": vectors::embed(&model, text) }))
        .collect();

    let mut attributes = attributes(Route::Embeddings, req.user.as_deref(), degraded.as_ref());
    attributes.push(("inputs", inputs.len().to_string()));
    let event = usage::event(
        &tenant,
        Source::Rag,
        Kind::Embedding,
        &s.config.provider,
        Some(&model),
        &[(Unit::EmbeddingToken, tokens), (Unit::Request, 1)],
        attributes,
    );
    let event_ids = vec![event.event_id.to_string()];
    s.record(event).await;

    let mut body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    });
    Ok(respond(&mut body, &model, degraded.as_ref(), &event_ids))
}

#[tracing::instrument(name = "search", skip_all, fields(tenant = tracing::field::Empty))]
async fn handle_search(s: &AppState, headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<(Outcome, Response), ApiError> {
    let tenant = s.authenticate(headers)?;
    let req: SearchRequest = parse_json(body)?;
    if req.query.trim().is_empty() {
        return Err(ApiError::BadRequest("query must not be empty".into()));
    }
    check_user(req.user.as_deref())?;
    let top_k = req.top_k.unwrap_or(DEFAULT_TOP_K);
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(ApiError::BadRequest(format!("top_k must be between 1 and {MAX_TOP_K}")));
    }
    let collection = req.collection.as_deref().unwrap_or(DEFAULT_COLLECTION);
    check_model(collection)
        .map_err(|_| ApiError::BadRequest(format!("collection must be 1 to {MAX_NAME_LEN} printable ASCII characters without spaces")))?;
    // The query is embedded before it is searched: the budget's degrade
    // applies to that embedding model.
    let (model, degraded) = obey(s, &tenant, &s.config.embedding_model)?;

    s.model.wait().await;
    let tokens = tokens_for(req.query.chars().count());
    let hits = vectors::search(collection, &req.query, top_k as usize);

    let mut embed_attrs = attributes(Route::Search, req.user.as_deref(), degraded.as_ref());
    embed_attrs.push(("collection", collection.to_owned()));
    let embedding = usage::event(
        &tenant,
        Source::Rag,
        Kind::Embedding,
        &s.config.provider,
        Some(&model),
        &[(Unit::EmbeddingToken, tokens)],
        embed_attrs,
    );
    let mut search_attrs = attributes(Route::Search, req.user.as_deref(), None);
    search_attrs.push(("collection", collection.to_owned()));
    search_attrs.push(("top_k", top_k.to_string()));
    let vector_search = usage::event(
        &tenant,
        Source::Rag,
        Kind::VectorSearch,
        &s.config.vector_store,
        None,
        &[(Unit::VectorQuery, 1), (Unit::Request, 1)],
        search_attrs,
    );
    let event_ids = vec![embedding.event_id.to_string(), vector_search.event_id.to_string()];
    s.record(embedding).await;
    s.record(vector_search).await;

    let mut body = json!({
        "object": "list",
        "data": hits,
        "collection": collection,
        "model": model,
        "usage": { "embedding_tokens": tokens, "vector_queries": 1 },
    });
    Ok(respond(&mut body, &model, degraded.as_ref(), &event_ids))
}

/// The budget's verdict for serving `requested` to `tenant`.
fn obey(s: &AppState, tenant: &TenantId, requested: &str) -> Result<(String, Option<Degraded>), ApiError> {
    match throttle::plan(s.decisions.decision(tenant.as_str()), requested, usage::now_micros()) {
        Plan::Serve { model, degraded } => Ok((model, degraded)),
        Plan::Refuse { reason, retry_after_secs } => Err(ApiError::Throttled { tenant_id: tenant.to_string(), reason, retry_after_secs }),
    }
}

fn attributes(route: Route, user: Option<&str>, degraded: Option<&Degraded>) -> Vec<(&'static str, String)> {
    let mut a = vec![("route", route.as_str().to_owned())];
    if let Some(user) = user {
        a.push(("user", user.to_owned()));
    }
    if let Some(d) = degraded {
        a.push(("requested_model", d.requested_model.clone()));
    }
    a
}

/// Adds the degrade notice to `body` and the headers to the response.
fn respond(body: &mut Value, model: &str, degraded: Option<&Degraded>, event_ids: &[String]) -> (Outcome, Response) {
    if let Some(d) = degraded {
        body["meterline"] = json!(MeterlineInfo::new(d, model));
    }
    let mut response = Json(body.take()).into_response();
    for id in event_ids {
        if let Ok(v) = HeaderValue::from_str(id) {
            response.headers_mut().append(EVENT_ID, v);
        }
    }
    match degraded {
        Some(d) => {
            if let Ok(v) = HeaderValue::from_str(&d.requested_model) {
                response.headers_mut().insert(DEGRADED_FROM, v);
            }
            (Outcome::Degraded, response)
        }
        None => (Outcome::Served, response),
    }
}

fn check_user(user: Option<&str>) -> Result<(), ApiError> {
    if user.is_some_and(|u| u.len() > MAX_NAME_LEN) {
        return Err(ApiError::BadRequest(format!("user is longer than {MAX_NAME_LEN} bytes")));
    }
    Ok(())
}

/// OpenAI's `input`: one string or an array of strings. (Token-id arrays
/// are not supported: the simulation counts characters.)
fn inputs_of(input: &Value) -> Result<Vec<&str>, ApiError> {
    let bad = |m: String| Err(ApiError::BadRequest(m));
    let inputs: Vec<&str> = match input {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => match items.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
            Some(v) => v,
            None => return bad("input must be a string or an array of strings".into()),
        },
        _ => return bad("input must be a string or an array of strings".into()),
    };
    if inputs.is_empty() {
        return bad("input must not be empty".into());
    }
    if inputs.len() > MAX_INPUTS {
        return bad(format!("input has {} items; at most {MAX_INPUTS} are accepted", inputs.len()));
    }
    if inputs.iter().any(|s| s.is_empty()) {
        return bad("input must not contain empty strings".into());
    }
    Ok(inputs)
}
