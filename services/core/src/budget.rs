//! Monthly budgets and how spend is judged against them: the throttle state
//! a tenant should be in, the alert thresholds crossed, and the month-end
//! forecast. Pure: the budget service feeds it spend and a clock.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, LocalResult, TimeZone, Utc};
pub use chrono_tz::Tz;
use rust_decimal::Decimal;

use crate::money::Currency;

/// What happens when spend reaches 100% of the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetAction {
    /// Refuse requests (HTTP 429) once spend passes the grace percentage.
    Block,
    /// Serve requests with this cheaper model instead.
    Degrade { model: String },
    /// Alert only.
    None,
}

impl BudgetAction {
    /// The stored name: `block`, `degrade` or `none`.
    pub fn name(&self) -> &'static str {
        match self {
            BudgetAction::Block => "block",
            BudgetAction::Degrade { .. } => "degrade",
            BudgetAction::None => "none",
        }
    }

    pub fn degrade_model(&self) -> Option<&str> {
        match self {
            BudgetAction::Degrade { model } => Some(model),
            _ => None,
        }
    }

    /// From the stored columns `action` and `degrade_model`.
    pub fn from_parts(action: &str, degrade_model: Option<String>) -> Result<Self, BudgetError> {
        match (action, degrade_model) {
            ("block", _) => Ok(BudgetAction::Block),
            ("none", _) => Ok(BudgetAction::None),
            ("degrade", Some(model)) if !model.trim().is_empty() => Ok(BudgetAction::Degrade { model }),
            ("degrade", _) => Err(BudgetError::Invalid("degrade needs a model: degrade:MODEL".into())),
            (other, _) => Err(BudgetError::Invalid(format!("unknown action {other:?}: use block, degrade:MODEL or none"))),
        }
    }
}

/// The command-line form: `block`, `degrade:MODEL` or `none`.
impl FromStr for BudgetAction {
    type Err = BudgetError;
    fn from_str(s: &str) -> Result<Self, BudgetError> {
        match s.split_once(':') {
            Some(("degrade", model)) => BudgetAction::from_parts("degrade", Some(model.to_owned())),
            Some(_) => BudgetAction::from_parts(s, None),
            None => BudgetAction::from_parts(s, None),
        }
    }
}

impl fmt::Display for BudgetAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetAction::Degrade { model } => write!(f, "degrade:{model}"),
            other => f.write_str(other.name()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    #[error("invalid budget: {0}")]
    Invalid(String),
}

/// One tenant's monthly budget, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub tenant_id: String,
    pub amount: Decimal,
    pub currency: Currency,
    /// Alert thresholds in percent of `amount`, ascending, distinct.
    pub thresholds: Vec<u32>,
    pub action: BudgetAction,
    /// How far past 100% spend may go before `block` takes effect.
    pub grace_percent: Decimal,
    /// Periods are calendar months in this zone.
    pub timezone: Tz,
    /// Grows with every change of the budget.
    pub version: i64,
}

/// Parses `50,80,100` into ascending distinct percentages.
pub fn parse_thresholds(s: &str) -> Result<Vec<u32>, BudgetError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let p: u32 = part.trim().parse().map_err(|_| BudgetError::Invalid(format!("threshold {part:?} is not a whole percentage")))?;
        if p == 0 || p > 1000 {
            return Err(BudgetError::Invalid(format!("threshold {p} must be between 1 and 1000 percent")));
        }
        out.push(p);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

pub fn parse_timezone(s: &str) -> Result<Tz, BudgetError> {
    s.parse::<Tz>().map_err(|_| BudgetError::Invalid(format!("{s:?} is not an IANA time zone (e.g. Europe/Paris)")))
}

impl Budget {
    /// Checks what the database constraints cannot express.
    pub fn check(&self) -> Result<(), BudgetError> {
        if self.amount <= Decimal::ZERO {
            return Err(BudgetError::Invalid("the monthly amount must be positive".into()));
        }
        if self.grace_percent < Decimal::ZERO {
            return Err(BudgetError::Invalid("grace must not be negative".into()));
        }
        if self.thresholds.is_empty() {
            return Err(BudgetError::Invalid("at least one threshold is needed".into()));
        }
        Ok(())
    }

    /// The budget period containing `now`: the calendar month in the
    /// tenant's zone, as UTC instants.
    pub fn period_at(&self, now: DateTime<Utc>) -> Period {
        Period::month_containing(now, self.timezone)
    }
}

/// A budget period, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    /// The calendar month of `zone` that contains `now`.
    pub fn month_containing(now: DateTime<Utc>, zone: Tz) -> Period {
        let local = now.with_timezone(&zone);
        let (y, m) = (local.year(), local.month());
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        Period { start: local_midnight(zone, y, m), end: local_midnight(zone, ny, nm) }
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

/// Midnight on the first of a month in `zone`. Where a DST change skips
/// midnight, the month starts at the first instant that exists.
fn local_midnight(zone: Tz, year: i32, month: u32) -> DateTime<Utc> {
    let naive = chrono::NaiveDate::from_ymd_opt(year, month, 1).expect("valid month").and_hms_opt(0, 0, 0).expect("midnight");
    for hours in 0..4 {
        match zone.from_local_datetime(&(naive + chrono::Duration::hours(hours))) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => return t.with_timezone(&Utc),
            LocalResult::None => continue,
        }
    }
    Utc.from_utc_datetime(&naive)
}

/// Where a tenant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleState {
    Allow,
    Degrade,
    Block,
}

impl ThrottleState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ThrottleState::Allow => "allow",
            ThrottleState::Degrade => "degrade",
            ThrottleState::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(ThrottleState::Allow),
            "degrade" => Some(ThrottleState::Degrade),
            "block" => Some(ThrottleState::Block),
            _ => None,
        }
    }
}

/// The verdict on one budget at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub state: ThrottleState,
    pub target_model: Option<String>,
    pub reason: String,
    /// Spend in percent of the budget (exact).
    pub percent_used: Decimal,
    /// Every configured threshold that spend has reached.
    pub crossed: Vec<u32>,
    /// The month-end projection at the current burn rate, when it exceeds
    /// the budget while spend has not yet reached it.
    pub forecast_over: Option<Decimal>,
}

/// Judges `spend` (in the budget's currency, within `period`) at `now`.
///
/// The forecast needs `forecast_min_elapsed` of the period behind it: a
/// burn rate measured over minutes says little about a month.
pub fn judge(budget: &Budget, spend: Decimal, period: Period, now: DateTime<Utc>, forecast_min_elapsed: chrono::Duration) -> Judgement {
    let hundred = Decimal::ONE_HUNDRED;
    let percent_used = spend * hundred / budget.amount;
    let crossed: Vec<u32> = budget.thresholds.iter().copied().filter(|t| percent_used >= Decimal::from(*t)).collect();
    let exhausted = spend >= budget.amount;
    let block_at = budget.amount * (hundred + budget.grace_percent) / hundred;
    let (state, target_model) = match &budget.action {
        BudgetAction::Block if spend >= block_at => (ThrottleState::Block, None),
        BudgetAction::Degrade { model } if exhausted => (ThrottleState::Degrade, Some(model.clone())),
        _ => (ThrottleState::Allow, None),
    };
    let c = budget.currency;
    let reason = match state {
        ThrottleState::Block => format!(
            "monthly budget of {} {c} exhausted: {} {c} spent ({}%)",
            budget.amount.normalize(),
            spend.normalize(),
            percent_used.round_dp(2).normalize()
        ),
        ThrottleState::Degrade => format!(
            "monthly budget of {} {c} exhausted: {} {c} spent; serving {}",
            budget.amount.normalize(),
            spend.normalize(),
            target_model.as_deref().unwrap_or_default()
        ),
        ThrottleState::Allow => {
            format!("within monthly budget of {} {c}: {}% used", budget.amount.normalize(), percent_used.round_dp(2).normalize())
        }
    };
    let forecast_over = forecast(spend, period, now, forecast_min_elapsed).filter(|p| !exhausted && *p > budget.amount);
    Judgement { state, target_model, reason, percent_used, crossed, forecast_over }
}

/// Spend projected to the period's end at the burn rate so far.
pub fn forecast(spend: Decimal, period: Period, now: DateTime<Utc>, min_elapsed: chrono::Duration) -> Option<Decimal> {
    let elapsed = (now.min(period.end) - period.start).num_seconds();
    if elapsed <= 0 || elapsed < min_elapsed.num_seconds() {
        return None;
    }
    let total = (period.end - period.start).num_seconds();
    spend.checked_mul(Decimal::from(total))?.checked_div(Decimal::from(elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn budget(action: BudgetAction) -> Budget {
        Budget {
            tenant_id: "t".into(),
            amount: dec("100"),
            currency: Currency::USD,
            thresholds: vec![50, 80, 100],
            action,
            grace_percent: Decimal::ZERO,
            timezone: Tz::UTC,
            version: 1,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn periods_are_calendar_months_in_the_tenants_zone() {
        let p = Period::month_containing(at("2026-11-30T23:30:00Z"), Tz::UTC);
        assert_eq!((p.start, p.end), (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z")));
        // Already December in Tokyo.
        let p = Period::month_containing(at("2026-11-30T23:30:00Z"), chrono_tz::Asia::Tokyo);
        assert_eq!((p.start, p.end), (at("2026-11-30T15:00:00Z"), at("2026-12-31T15:00:00Z")));
        // Still October in Los Angeles (and DST ends inside November).
        let p = Period::month_containing(at("2026-11-01T05:00:00Z"), chrono_tz::America::Los_Angeles);
        assert_eq!((p.start, p.end), (at("2026-10-01T07:00:00Z"), at("2026-11-01T07:00:00Z")));
        let p = Period::month_containing(at("2026-12-31T23:00:00Z"), Tz::UTC);
        assert_eq!(p.end, at("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn thresholds_and_states_follow_spend() {
        let period = Period::month_containing(at("2026-11-02T00:00:00Z"), Tz::UTC);
        let now = at("2026-11-02T00:00:00Z");
        let long = chrono::Duration::days(40);
        let j = judge(&budget(BudgetAction::Block), dec("79.99"), period, now, long);
        assert_eq!((j.state, j.crossed.clone()), (ThrottleState::Allow, vec![50]));
        let j = judge(&budget(BudgetAction::Block), dec("100"), period, now, long);
        assert_eq!((j.state, j.crossed.clone()), (ThrottleState::Block, vec![50, 80, 100]));
        let mut graced = budget(BudgetAction::Block);
        graced.grace_percent = dec("10");
        assert_eq!(judge(&graced, dec("109.99"), period, now, long).state, ThrottleState::Allow);
        assert_eq!(judge(&graced, dec("110"), period, now, long).state, ThrottleState::Block);
        let j = judge(&budget(BudgetAction::Degrade { model: "gpt-4o-mini".into() }), dec("100"), period, now, long);
        assert_eq!((j.state, j.target_model.as_deref()), (ThrottleState::Degrade, Some("gpt-4o-mini")));
        assert_eq!(judge(&budget(BudgetAction::None), dec("500"), period, now, long).state, ThrottleState::Allow);
    }

    #[test]
    fn forecast_projects_the_burn_rate_to_month_end() {
        let period = Period::month_containing(at("2026-11-01T00:00:00Z"), Tz::UTC);
        // 30 days; after 3 days 20 spent: 200 projected.
        let now = at("2026-11-04T00:00:00Z");
        let day = chrono::Duration::days(1);
        let j = judge(&budget(BudgetAction::Block), dec("20"), period, now, day);
        assert_eq!(j.forecast_over, Some(dec("200")));
        // 5 spent projects to 50: no forecast alert.
        assert_eq!(judge(&budget(BudgetAction::Block), dec("5"), period, now, day).forecast_over, None);
        // Too early in the period to say.
        assert_eq!(judge(&budget(BudgetAction::Block), dec("20"), period, now, chrono::Duration::days(4)).forecast_over, None);
    }

    #[test]
    fn actions_and_thresholds_parse_with_clear_errors() {
        assert_eq!("degrade:gpt-4o-mini".parse::<BudgetAction>().unwrap().degrade_model(), Some("gpt-4o-mini"));
        assert_eq!("block".parse::<BudgetAction>().unwrap(), BudgetAction::Block);
        assert!("degrade".parse::<BudgetAction>().is_err());
        assert!("explode".parse::<BudgetAction>().is_err());
        assert_eq!(parse_thresholds("100, 50,80,50").unwrap(), vec![50, 80, 100]);
        assert!(parse_thresholds("50,x").is_err());
        assert!(parse_timezone("Mars/Olympus").is_err());
        assert_eq!(parse_timezone("Europe/Paris").unwrap(), chrono_tz::Europe::Paris);
    }
}
