//! Blocked and recovered notices, from the throttle commands gateways obey.
//!
//! The budget service publishes a command per tenant whenever its state
//! changes (allow, degrade, block), each with a higher version. A tenant
//! going from allow to degrade or block is `budget.blocked` (its requests
//! are now refused or served by a cheaper model); from degrade or block
//! back to allow is `budget.recovered` (a raised budget, a new period).
//! Deciding is pure: the last state seen per tenant is kept in Postgres and
//! passed in, and the notice's id derives from the command that changed
//! the state, so a command read twice raises nothing twice.

use chrono::{DateTime, Utc};
use meterline_core::{ThrottleCommand, ThrottleState};
use serde_json::json;
use uuid::Uuid;

use crate::event::NotifyEvent;

/// A tenant's state as the notifier last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub version: i64,
    pub state: ThrottleState,
}

/// What a command does: the state to remember (if it is newer) and the
/// notice to deliver (if the state changed in a way people must hear of).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub remember: Option<Seen>,
    pub notice: Option<NotifyEvent>,
}

/// Blocks first seen longer ago than this are remembered without a notice:
/// a new notifier reading the topic from its start must not announce every
/// block of the month as news.
pub const STALE_AFTER_MICROS: i64 = 3_600 * 1_000_000;

pub fn transition(previous: Option<Seen>, c: &ThrottleCommand, now_micros: i64) -> Transition {
    if previous.is_some_and(|p| c.version <= p.version) {
        // Older than what was seen, or the same command again.
        return Transition { remember: None, notice: None };
    }
    let remember = Some(Seen { version: c.version, state: c.state });
    let restricted = |s: ThrottleState| s != ThrottleState::Allow;
    let event_type = match (previous.map(|p| p.state), c.state) {
        (Some(was), now) if !restricted(was) && restricted(now) => Some("budget.blocked"),
        (None, now) if restricted(now) && now_micros - c.issued_at_micros <= STALE_AFTER_MICROS => Some("budget.blocked"),
        (Some(was), ThrottleState::Allow) if restricted(was) => Some("budget.recovered"),
        _ => None,
    };
    let notice = event_type.map(|t| notice(t, c));
    Transition { remember, notice }
}

fn notice(event_type: &'static str, c: &ThrottleCommand) -> NotifyEvent {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7465_726c_696e_7468_726f_7474_6c65);
    let id = Uuid::new_v5(&NAMESPACE, format!("{}\u{1f}{}\u{1f}{event_type}", c.tenant_id, c.version).as_bytes());
    let micros = |m: i64| DateTime::<Utc>::from_timestamp_micros(m).unwrap_or_default();
    let data = json!({
        "tenant_id": c.tenant_id,
        // What gateways now do: block (HTTP 429), degrade (to target_model), allow.
        "action": c.state.as_str(),
        "target_model": c.target_model,
        "reason": c.reason,
        "spend": c.spend.to_string(),
        "limit": c.limit.map(|l| l.to_string()),
        "currency": c.currency.map(|cur| cur.as_str().to_owned()),
        "period_start": micros(c.period_start_micros).to_rfc3339(),
        "period_end": micros(c.period_end_micros).to_rfc3339(),
        "budget_version": c.budget_version,
        "command_version": c.version,
    });
    NotifyEvent { id, tenant_id: c.tenant_id.clone(), event_type, occurred_at: micros(c.issued_at_micros), data }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meterline_core::Currency;

    const NOW: i64 = 1_796_100_000_000_000;

    fn command(version: i64, state: ThrottleState) -> ThrottleCommand {
        ThrottleCommand {
            tenant_id: "acme".into(),
            version,
            state,
            target_model: (state == ThrottleState::Degrade).then(|| "gpt-4o-mini".into()),
            reason: "budget exhausted".into(),
            period_start_micros: 1_796_083_200_000_000,
            period_end_micros: 1_798_761_600_000_000,
            spend: "100.5".parse().unwrap(),
            limit: Some("100".parse().unwrap()),
            currency: Some(Currency::USD),
            budget_version: Some(1),
            issued_at_micros: NOW - 1_000_000,
        }
    }

    fn seen(version: i64, state: ThrottleState) -> Option<Seen> {
        Some(Seen { version, state })
    }

    #[test]
    fn a_block_and_its_lifting_are_each_announced_once() {
        let block = transition(seen(1, ThrottleState::Allow), &command(2, ThrottleState::Block), NOW);
        let notice = block.notice.unwrap();
        assert_eq!((notice.event_type, notice.data["action"].as_str()), ("budget.blocked", Some("block")));
        assert_eq!(block.remember, seen(2, ThrottleState::Block));
        let lifted = transition(seen(2, ThrottleState::Block), &command(3, ThrottleState::Allow), NOW).notice.unwrap();
        assert_eq!(lifted.event_type, "budget.recovered");
        // The same command again, or an older one, changes nothing.
        assert_eq!(transition(seen(2, ThrottleState::Block), &command(2, ThrottleState::Block), NOW).notice, None);
        assert_eq!(transition(seen(3, ThrottleState::Allow), &command(2, ThrottleState::Block), NOW).remember, None);
        // Its id is the command's: read twice, delivered once.
        assert_eq!(notice.id, transition(seen(1, ThrottleState::Allow), &command(2, ThrottleState::Block), NOW).notice.unwrap().id);
    }

    #[test]
    fn degrading_counts_as_blocked_and_moving_between_restrictions_is_not_news() {
        let degrade = transition(seen(1, ThrottleState::Allow), &command(2, ThrottleState::Degrade), NOW).notice.unwrap();
        assert_eq!((degrade.event_type, degrade.data["target_model"].as_str()), ("budget.blocked", Some("gpt-4o-mini")));
        assert_eq!(transition(seen(2, ThrottleState::Degrade), &command(3, ThrottleState::Block), NOW).notice, None);
        assert_eq!(transition(seen(2, ThrottleState::Allow), &command(3, ThrottleState::Allow), NOW).notice, None);
    }

    #[test]
    fn a_tenant_first_seen_blocked_is_announced_only_if_the_block_is_recent() {
        assert!(transition(None, &command(5, ThrottleState::Block), NOW).notice.is_some());
        let mut old = command(5, ThrottleState::Block);
        old.issued_at_micros = NOW - 2 * STALE_AFTER_MICROS;
        let t = transition(None, &old, NOW);
        assert_eq!((t.notice, t.remember), (None, seen(5, ThrottleState::Block)));
        assert_eq!(transition(None, &command(5, ThrottleState::Allow), NOW).notice, None);
    }
}
