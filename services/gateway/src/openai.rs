//! `POST /v1/chat/completions`: OpenAI's request and response shapes,
//! served by the simulated model, within the tenant's budget.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meterline_core::{Kind, Source, Unit};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::meterline_info::{MeterlineInfo, DEGRADED_FROM, EVENT_ID};
use crate::metrics::{Outcome, Route};
use crate::request::{check_model, parse_json, MAX_NAME_LEN};
use crate::state::AppState;
use crate::throttle::{self, Plan};
use crate::usage;

/// The fields this gateway reads; others (temperature, tools, a client's
/// `tenant_id`...) are accepted and ignored.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    max_tokens: Option<u32>,
    /// OpenAI's newer name for `max_tokens`.
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    stream: bool,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[allow(dead_code)] // required by the API shape; the simulation ignores roles
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Debug, Serialize)]
struct ChatResponse {
    id: String,
    object: &'static str,
    created: i64,
    model: String,
    choices: [Choice; 1],
    usage: Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    meterline: Option<MeterlineInfo>,
}

#[derive(Debug, Serialize)]
struct Choice {
    index: u32,
    message: ReplyMessage,
    finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
struct ReplyMessage {
    role: &'static str,
    content: String,
}

#[derive(Debug, Serialize)]
struct Usage {
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
}

pub async fn chat_completions(State(s): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    match handle(&s, &headers, body).await {
        Ok((outcome, response)) => {
            s.metrics.request(Route::ChatCompletions, outcome);
            response
        }
        Err(e) => {
            s.metrics.request(Route::ChatCompletions, e.outcome());
            tracing::debug!(error = %e, "chat completion refused");
            e.into_response()
        }
    }
}

#[tracing::instrument(name = "chat.completions", skip_all, fields(tenant = tracing::field::Empty))]
async fn handle(s: &AppState, headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<(Outcome, Response), ApiError> {
    // Authenticate before reading the body: an anonymous caller learns
    // nothing about what a valid request looks like.
    let tenant = s.authenticate(headers)?;
    let req: ChatRequest = parse_json(body)?;
    let texts = check(&req)?;
    let max_tokens = req.max_completion_tokens.or(req.max_tokens);

    let (model, degraded) = match throttle::plan(s.decisions.decision(tenant.as_str()), &req.model, usage::now_micros()) {
        Plan::Serve { model, degraded } => (model, degraded),
        Plan::Refuse { reason, retry_after_secs } => {
            return Err(ApiError::Throttled { tenant_id: tenant.to_string(), reason, retry_after_secs });
        }
    };

    let completion = s.model.complete(&texts, max_tokens).await;

    let mut attributes = vec![("route", Route::ChatCompletions.as_str().to_owned())];
    if let Some(user) = &req.user {
        attributes.push(("user", user.clone()));
    }
    if let Some(d) = &degraded {
        attributes.push(("requested_model", d.requested_model.clone()));
    }
    let event = usage::event(
        &tenant,
        Source::Gateway,
        Kind::Chat,
        &s.config.provider,
        Some(&model),
        &[(Unit::InputToken, completion.input_tokens), (Unit::OutputToken, completion.output_tokens), (Unit::Request, 1)],
        attributes,
    );
    let event_id = event.event_id.to_string();
    let created = event.occurred_at_micros / 1_000_000;
    s.record(event).await;

    let response = ChatResponse {
        id: format!("chatcmpl-{event_id}"),
        object: "chat.completion",
        created,
        meterline: degraded.as_ref().map(|d| MeterlineInfo::new(d, &model)),
        model,
        choices: [Choice {
            index: 0,
            message: ReplyMessage { role: "assistant", content: completion.text },
            finish_reason: if completion.truncated { "length" } else { "stop" },
        }],
        usage: Usage {
            prompt_tokens: completion.input_tokens,
            completion_tokens: completion.output_tokens,
            total_tokens: completion.input_tokens + completion.output_tokens,
        },
    };
    let mut response = Json(response).into_response();
    if let Ok(v) = HeaderValue::from_str(&event_id) {
        response.headers_mut().insert(EVENT_ID, v);
    }
    let outcome = match &degraded {
        Some(d) => {
            // Model names were checked to be header-safe in `check`.
            if let Ok(v) = HeaderValue::from_str(&d.requested_model) {
                response.headers_mut().insert(DEGRADED_FROM, v);
            }
            Outcome::Degraded
        }
        None => Outcome::Served,
    };
    Ok((outcome, response))
}

/// Checks what serde cannot, and returns the messages' texts.
fn check(req: &ChatRequest) -> Result<Vec<&str>, ApiError> {
    let bad = |m: &str| Err(ApiError::BadRequest(m.to_owned()));
    if req.stream {
        return bad("stream: true is not supported by this gateway; omit it");
    }
    check_model(&req.model)?;
    if req.messages.is_empty() {
        return bad("messages must not be empty");
    }
    if req.user.as_ref().is_some_and(|u| u.len() > MAX_NAME_LEN) {
        return Err(ApiError::BadRequest(format!("user is longer than {MAX_NAME_LEN} bytes")));
    }
    if req.max_completion_tokens.or(req.max_tokens) == Some(0) {
        return bad("max_tokens must be at least 1");
    }
    req.messages.iter().enumerate().map(|(i, m)| text_of(i, &m.content)).collect::<Result<Vec<_>, _>>().map(|v| v.concat())
}

/// The text of one message: a string, OpenAI's array of content parts
/// (text parts count, others such as images are ignored), or null (an
/// assistant turn that only called tools).
fn text_of(index: usize, content: &Value) -> Result<Vec<&str>, ApiError> {
    match content {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Null => Ok(vec![]),
        Value::Array(parts) => Ok(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect()),
        _ => Err(ApiError::BadRequest(format!("messages[{index}].content must be a string, an array of parts or null"))),
    }
}
