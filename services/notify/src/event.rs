//! What the notifier delivers: an event with a stable id, a type from a
//! fixed, documented list, a tenant, and a JSON `data` object, versioned by
//! its type (a breaking change gets a new type name, never a new meaning for
//! an old one). The webhook body is the Standard Webhooks envelope
//! `{"type", "timestamp", "data"}`; email renders the same data.

use chrono::{DateTime, Utc};
use meterline_core::{AlertKind, BudgetAlert};
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct NotifyEvent {
    /// The alert's id: the same for every redelivery of the alert, so it is
    /// taken in once, and the deliveries' `webhook-id` derives from it.
    pub id: Uuid,
    pub tenant_id: String,
    pub event_type: &'static str,
    pub occurred_at: DateTime<Utc>,
    pub data: Value,
}

impl NotifyEvent {
    pub fn from_alert(a: &BudgetAlert) -> Self {
        let event_type = match a.kind {
            AlertKind::Threshold => "budget.threshold_crossed",
            AlertKind::Forecast => "budget.forecast_exceeded",
        };
        let micros = |m: i64| DateTime::<Utc>::from_timestamp_micros(m).unwrap_or_default();
        let occurred_at = micros(a.raised_at_micros);
        let data = json!({
            "alert_id": a.alert_id,
            "tenant_id": a.tenant_id,
            "threshold_percent": a.threshold_percent,
            // Exact decimals as strings: JSON numbers lose digits in most
            // parsers.
            "spend": a.spend.to_string(),
            "limit": a.limit.to_string(),
            "projected": a.projected.map(|p| p.to_string()),
            "currency": a.currency.as_str(),
            "period_start": micros(a.period_start_micros).to_rfc3339(),
            "period_end": micros(a.period_end_micros).to_rfc3339(),
            "budget_version": a.budget_version,
        });
        Self { id: a.alert_id, tenant_id: a.tenant_id.clone(), event_type, occurred_at, data }
    }

    /// The event as the outbox records it.
    pub fn as_new(&self) -> meterline_storage::postgres::notify::NewEvent<'_> {
        meterline_storage::postgres::notify::NewEvent {
            event_id: self.id,
            tenant_id: &self.tenant_id,
            event_type: self.event_type,
            occurred_at: self.occurred_at,
            data: &self.data,
        }
    }

    /// The webhook body.
    pub fn envelope(event_type: &str, occurred_at: DateTime<Utc>, data: &Value) -> Vec<u8> {
        let body = json!({ "type": event_type, "timestamp": occurred_at.to_rfc3339(), "data": data });
        serde_json::to_vec(&body).expect("JSON values serialise")
    }
}

/// The `webhook-id` of a delivery: stable across its attempts, distinct per
/// channel (one alert to two endpoints is two messages).
pub fn webhook_id(event_id: Uuid, channel_id: Uuid) -> String {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7465_726c_696e_6577_6869_6f6b_7331);
    let key = [event_id.as_bytes().as_slice(), channel_id.as_bytes().as_slice()].concat();
    format!("msg_{}", Uuid::new_v5(&NAMESPACE, &key).simple())
}

/// The `Message-ID` of an email delivery: the delivery's `webhook_id` as
/// its left part, so it is stable across attempts (a resend whose first
/// outcome was never learnt is one message to mail clients) and distinct
/// per channel.
pub fn message_id(event_id: Uuid, channel_id: Uuid) -> String {
    format!("<{}@meterline>", webhook_id(event_id, channel_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meterline_core::Currency;

    fn alert(kind: AlertKind) -> BudgetAlert {
        BudgetAlert {
            alert_id: Uuid::from_u128(7),
            tenant_id: "acme".into(),
            kind,
            threshold_percent: 80,
            spend: "80.000000000000000001".parse().unwrap(),
            limit: "100".parse().unwrap(),
            projected: None,
            currency: Currency::USD,
            period_start_micros: 1_795_000_000_000_000,
            period_end_micros: 1_797_000_000_000_000,
            budget_version: 3,
            raised_at_micros: 1_796_000_000_000_000,
        }
    }

    #[test]
    fn alerts_become_typed_events_with_exact_amounts() {
        let e = NotifyEvent::from_alert(&alert(AlertKind::Threshold));
        assert_eq!(e.event_type, "budget.threshold_crossed");
        assert_eq!(e.data["spend"], "80.000000000000000001");
        assert_eq!(e.data["currency"], "USD");
        assert_eq!(NotifyEvent::from_alert(&alert(AlertKind::Forecast)).event_type, "budget.forecast_exceeded");
        assert!(meterline_core::webhook::EVENT_TYPES.contains(&e.event_type));
        let body: Value = serde_json::from_slice(&NotifyEvent::envelope(e.event_type, e.occurred_at, &e.data)).unwrap();
        assert_eq!(body["type"], "budget.threshold_crossed");
        assert_eq!(body["data"]["threshold_percent"], 80);
    }

    #[test]
    fn webhook_ids_are_stable_per_delivery_and_differ_between_channels() {
        let (e, a, b) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        assert_eq!(webhook_id(e, a), webhook_id(e, a));
        assert_ne!(webhook_id(e, a), webhook_id(e, b));
        assert!(webhook_id(e, a).starts_with("msg_"));
        assert_eq!(message_id(e, a), format!("<{}@meterline>", webhook_id(e, a)));
    }
}
