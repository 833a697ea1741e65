//! How a refused request is answered: one enum, one status per variant, and
//! always a JSON body in OpenAI's error shape, so clients written for
//! OpenAI can read it.

use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::auth::AuthError;
use crate::metrics::Outcome;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error("{0}")]
    BadRequest(String),
    /// The body could not be read (too large, connection broken).
    #[error(transparent)]
    Body(#[from] BytesRejection),
    #[error("{reason}")]
    Throttled { tenant_id: String, reason: String, retry_after_secs: u64 },
}

impl ApiError {
    pub fn outcome(&self) -> Outcome {
        match self {
            ApiError::Unauthorized(_) => Outcome::Unauthorized,
            ApiError::BadRequest(_) | ApiError::Body(_) => Outcome::BadRequest,
            ApiError::Throttled { .. } => Outcome::Throttled,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Body(r) => r.status(),
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// OpenAI-style `error.type`.
    fn kind(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "authentication_error",
            ApiError::BadRequest(_) | ApiError::Body(_) => "invalid_request_error",
            ApiError::Throttled { .. } => "budget_exceeded",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut error = json!({ "type": self.kind(), "message": self.to_string() });
        if let ApiError::Throttled { tenant_id, .. } = &self {
            error["tenant_id"] = json!(tenant_id);
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Throttled { retry_after_secs, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

/// For unknown paths: JSON like every other error, not axum's empty 404.
pub async fn not_found() -> Response {
    let body = json!({ "error": { "type": "not_found", "message": "no such route" } });
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}
