//! What the budget service publishes for people: budget alerts. (Its
//! commands for gateways are in `throttle`.) The wire format is in
//! `avro::records`.

use rust_decimal::Decimal;
use uuid::Uuid;

use crate::money::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// Spend reached a threshold percentage of the budget.
    Threshold,
    /// The month-end projection at the current burn rate exceeds the budget.
    Forecast,
}

impl AlertKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertKind::Threshold => "threshold",
            AlertKind::Forecast => "forecast",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "threshold" => Some(AlertKind::Threshold),
            "forecast" => Some(AlertKind::Forecast),
            _ => None,
        }
    }
}

/// One alert, raised once per tenant x kind x threshold x period x budget
/// version. `alert_id` is derived from that key, so it is the same on every
/// redelivery and consumers can drop repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetAlert {
    pub alert_id: Uuid,
    pub tenant_id: String,
    pub kind: AlertKind,
    pub threshold_percent: i32,
    pub spend: Decimal,
    pub limit: Decimal,
    pub projected: Option<Decimal>,
    pub currency: Currency,
    pub period_start_micros: i64,
    pub period_end_micros: i64,
    pub budget_version: i64,
    pub raised_at_micros: i64,
}

/// The stable id of the alert for this key.
pub fn alert_id(tenant_id: &str, kind: AlertKind, threshold: i32, period_start_micros: i64, budget_version: i64) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7465_726c_696e_6561_6c65_7274_7331);
    let key = format!("{tenant_id}\u{1f}{}\u{1f}{threshold}\u{1f}{period_start_micros}\u{1f}{budget_version}", kind.as_str());
    Uuid::new_v5(&NAMESPACE, key.as_bytes())
}
