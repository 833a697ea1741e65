//! What a response tells its caller about metering, beyond OpenAI's
//! shapes: the usage events' ids and, when the budget degraded the
//! request, which model was asked for and which one served it.

use axum::http::HeaderName;
use serde::Serialize;

use crate::throttle::Degraded;

/// Names the model that was asked for when a cheaper one was served.
pub const DEGRADED_FROM: HeaderName = HeaderName::from_static("x-meterline-degraded-from");
/// The usage event's id, to find a response's bill line.
pub const EVENT_ID: HeaderName = HeaderName::from_static("x-meterline-event-id");

/// Said in the body as well as the header: many clients drop headers.
#[derive(Debug, Serialize)]
pub(crate) struct MeterlineInfo {
    degraded: bool,
    requested_model: String,
    served_model: String,
    reason: String,
}

impl MeterlineInfo {
    pub(crate) fn new(degraded: &Degraded, served_model: &str) -> Self {
        Self {
            degraded: true,
            requested_model: degraded.requested_model.clone(),
            served_model: served_model.to_owned(),
            reason: degraded.reason.clone(),
        }
    }
}
