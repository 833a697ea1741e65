//! What a gateway should do for a tenant right now, answered from memory.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use meterline_core::{ThrottleCommand, ThrottleState};

/// The verdict for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Serve as asked.
    Allow,
    /// Serve with this cheaper model instead, and say so.
    Degrade { model: Arc<str>, reason: Arc<str> },
    /// Refuse (HTTP 429) until `until_micros` (the end of the budget period),
    /// or, when it is `None`, until the watcher has caught up (fail-closed).
    Block { reason: Arc<str>, until_micros: Option<i64> },
}

/// Whether to serve tenants while the watcher has not yet read the throttle
/// topic to its end (after a start, or when the broker is unreachable at
/// start): a gateway that must never overspend fails closed, one that must
/// never refuse a paying customer fails open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    #[default]
    Open,
    Closed,
}

impl std::str::FromStr for FailMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(FailMode::Open),
            "closed" => Ok(FailMode::Closed),
            other => Err(format!("fail mode {other:?}: use open or closed")),
        }
    }
}

/// Anything that answers `decision(tenant)` without I/O: the Kafka-fed
/// [`ThrottleWatcher`](crate::ThrottleWatcher), or a fixed table in tests.
pub trait Decisions: Send + Sync + 'static {
    fn decision(&self, tenant_id: &str) -> Decision;
}

/// The newest command per tenant, by version.
#[derive(Default)]
pub struct CommandTable {
    commands: RwLock<HashMap<String, Arc<Command>>>,
}

/// A command as the table keeps it, with its verdict precomputed so
/// `decision` only clones two `Arc`s.
#[derive(Debug)]
pub struct Command {
    pub command: ThrottleCommand,
    decision: Decision,
}

impl CommandTable {
    /// Keeps `c` if it is newer than what the table holds for its tenant.
    /// Returns whether it was kept: commands can arrive out of order
    /// (several partitions after a topic change, a replayed outbox), and
    /// only the version says which is current.
    pub fn apply(&self, c: ThrottleCommand) -> bool {
        let mut table = self.commands.write().unwrap_or_else(|e| e.into_inner());
        if table.get(&c.tenant_id).is_some_and(|held| held.command.version >= c.version) {
            return false;
        }
        let decision = match c.state {
            ThrottleState::Allow => Decision::Allow,
            ThrottleState::Degrade => {
                Decision::Degrade { model: c.target_model.as_deref().unwrap_or_default().into(), reason: c.reason.as_str().into() }
            }
            ThrottleState::Block => Decision::Block { reason: c.reason.as_str().into(), until_micros: Some(c.period_end_micros) },
        };
        table.insert(c.tenant_id.clone(), Arc::new(Command { command: c, decision }));
        true
    }

    /// The newest command for `tenant_id`, if any.
    pub fn command(&self, tenant_id: &str) -> Option<Arc<Command>> {
        self.commands.read().unwrap_or_else(|e| e.into_inner()).get(tenant_id).cloned()
    }

    /// The verdict at `now_micros`. A command binds only within its budget
    /// period: a block from last month lifts at the period's end even if the
    /// budget service is down and never says so.
    pub fn decision_at(&self, tenant_id: &str, now_micros: i64) -> Decision {
        let table = self.commands.read().unwrap_or_else(|e| e.into_inner());
        match table.get(tenant_id) {
            Some(c) if now_micros < c.command.period_end_micros => c.decision.clone(),
            _ => Decision::Allow,
        }
    }

    pub fn len(&self) -> usize {
        self.commands.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Decisions for CommandTable {
    fn decision(&self, tenant_id: &str) -> Decision {
        self.decision_at(tenant_id, now_micros())
    }
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(tenant: &str, version: i64, state: ThrottleState, end: i64) -> ThrottleCommand {
        ThrottleCommand {
            tenant_id: tenant.into(),
            version,
            state,
            target_model: (state == ThrottleState::Degrade).then(|| "small".to_owned()),
            reason: format!("v{version}"),
            period_start_micros: 0,
            period_end_micros: end,
            spend: Default::default(),
            limit: None,
            currency: None,
            budget_version: None,
            issued_at_micros: 0,
        }
    }

    #[test]
    fn the_newest_version_wins_whatever_the_arrival_order() {
        let t = CommandTable::default();
        assert!(t.apply(cmd("a", 2, ThrottleState::Block, 100)));
        assert!(!t.apply(cmd("a", 1, ThrottleState::Allow, 100)));
        assert!(!t.apply(cmd("a", 2, ThrottleState::Allow, 100)));
        assert!(matches!(t.decision_at("a", 50), Decision::Block { until_micros: Some(100), .. }));
        assert!(t.apply(cmd("a", 3, ThrottleState::Degrade, 100)));
        assert!(matches!(t.decision_at("a", 50), Decision::Degrade { ref model, .. } if &**model == "small"));
        assert_eq!(t.decision_at("unknown", 50), Decision::Allow);
    }

    #[test]
    fn commands_bind_only_within_their_period() {
        let t = CommandTable::default();
        t.apply(cmd("a", 1, ThrottleState::Block, 100));
        assert!(matches!(t.decision_at("a", 99), Decision::Block { .. }));
        assert_eq!(t.decision_at("a", 100), Decision::Allow);
    }
}
