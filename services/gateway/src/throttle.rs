//! Turns the budget service's verdict into what this request gets. Pure, so
//! the rules (who is refused, for how long, which model is served) are
//! tested without a server.

use meterline_sdk::Decision;

/// `Retry-After` when a block has no end (the decision source has not
/// caught up yet): soon, since that usually resolves in seconds.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Serve { model: String, degraded: Option<Degraded> },
    Refuse { reason: String, retry_after_secs: u64 },
}

/// A request served with a cheaper model than it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degraded {
    pub requested_model: String,
    pub reason: String,
}

pub fn plan(decision: Decision, requested_model: &str, now_micros: i64) -> Plan {
    match decision {
        Decision::Allow => serve_as_asked(requested_model),
        // A degrade without a target (a malformed command), or to the model
        // already asked for, changes nothing: serve as asked rather than
        // call a model named "".
        Decision::Degrade { model, .. } if model.is_empty() || &*model == requested_model => serve_as_asked(requested_model),
        Decision::Degrade { model, reason } => Plan::Serve {
            model: model.to_string(),
            degraded: Some(Degraded { requested_model: requested_model.to_owned(), reason: reason.to_string() }),
        },
        Decision::Block { reason, until_micros } => Plan::Refuse {
            reason: reason.to_string(),
            retry_after_secs: until_micros.map_or(DEFAULT_RETRY_AFTER_SECS, |until| retry_after_secs(until, now_micros)),
        },
    }
}

fn serve_as_asked(model: &str) -> Plan {
    Plan::Serve { model: model.to_owned(), degraded: None }
}

/// Whole seconds from `now` until `until`, rounded up (a client retrying
/// after the header's value must not arrive before the block lifts), and
/// at least 1 (0 invites a tight retry loop).
fn retry_after_secs(until_micros: i64, now_micros: i64) -> u64 {
    let micros = until_micros.saturating_sub(now_micros).max(0) as u64;
    micros.div_ceil(1_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_serves_as_asked() {
        assert_eq!(plan(Decision::Allow, "gpt-4o", 0), Plan::Serve { model: "gpt-4o".into(), degraded: None });
    }

    #[test]
    fn degrade_serves_the_target_and_remembers_the_request() {
        let d = Decision::Degrade { model: "gpt-4o-mini".into(), reason: "90% of budget".into() };
        let Plan::Serve { model, degraded: Some(degraded) } = plan(d, "gpt-4o", 0) else { panic!("not degraded") };
        assert_eq!(model, "gpt-4o-mini");
        assert_eq!(degraded.requested_model, "gpt-4o");
        assert_eq!(degraded.reason, "90% of budget");
    }

    #[test]
    fn a_degrade_to_nothing_or_to_the_same_model_is_no_degrade() {
        let empty = Decision::Degrade { model: "".into(), reason: "r".into() };
        assert_eq!(plan(empty, "gpt-4o", 0), serve_as_asked("gpt-4o"));
        let same = Decision::Degrade { model: "gpt-4o".into(), reason: "r".into() };
        assert_eq!(plan(same, "gpt-4o", 0), serve_as_asked("gpt-4o"));
    }

    #[test]
    fn block_refuses_until_the_end_rounded_up() {
        let block = |until| Decision::Block { reason: "over budget".into(), until_micros: until };
        assert_eq!(plan(block(Some(10_000_001)), "m", 0), Plan::Refuse { reason: "over budget".into(), retry_after_secs: 11 });
        assert_eq!(plan(block(Some(10_000_000)), "m", 0), Plan::Refuse { reason: "over budget".into(), retry_after_secs: 10 });
        // Already over (clock skew): still at least a second.
        assert_eq!(plan(block(Some(5)), "m", 100), Plan::Refuse { reason: "over budget".into(), retry_after_secs: 1 });
        assert_eq!(plan(block(None), "m", 0), Plan::Refuse { reason: "over budget".into(), retry_after_secs: DEFAULT_RETRY_AFTER_SECS });
    }
}
