//! What every route checks in a request before doing any work: the JSON
//! body, and the names that travel into usage events.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Longest accepted model name or `user` value: they travel into every
/// usage event and the rollup's storage.
pub(crate) const MAX_NAME_LEN: usize = 256;

/// Reads a JSON body, turning every failure into a JSON 400 with serde's
/// message (axum's `Json` rejection is plain text).
pub(crate) fn parse_json<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body?;
    serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))
}

/// A model name that can go into an event and a response header.
pub(crate) fn check_model(model: &str) -> Result<(), ApiError> {
    if model.trim().is_empty() {
        return Err(ApiError::BadRequest("model must not be empty".into()));
    }
    if model.len() > MAX_NAME_LEN || !model.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::BadRequest(format!("model must be at most {MAX_NAME_LEN} printable ASCII characters without spaces")));
    }
    Ok(())
}
