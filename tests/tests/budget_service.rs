//! The budget service on real services: spend counted once through
//! SIGKILLs and beside a second instance, equal to the rollups', and one
//! alert per threshold whatever the restarts.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use meterline_core::budget::Tz;
use meterline_core::{AlertKind, Budget, BudgetAction, Currency};
use meterline_storage::postgres::{self, budgets};
use meterline_tests::budgets::{alerts, ledger_totals, wait_budget_consumed};
use meterline_tests::env::TestEnv;
use meterline_tests::expected::{self, wait_for_totals, Truth};
use meterline_tests::process::{start_loadgen, wait_ok, Service};
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

const CONVERGE: Duration = Duration::from_secs(180);

fn loadgen<'a>(truth: &'a str, seed: &'a str) -> Vec<&'a str> {
    vec![
        "--tenants",
        "12",
        "--events",
        "12000",
        "--rate",
        "4000",
        "--duplicate-ratio",
        "0.05",
        "--malformed-ratio",
        "0.01",
        "--seed",
        seed,
        "--truth",
        truth,
    ]
}

fn budget(tenant: &str, amount: Decimal) -> Budget {
    Budget {
        tenant_id: tenant.to_owned(),
        amount,
        currency: Currency::USD,
        thresholds: vec![50, 80, 100],
        action: BudgetAction::Block,
        grace_percent: Decimal::ZERO,
        timezone: Tz::UTC,
        version: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spend_survives_sigkills_matches_the_rollups_and_alerts_once() -> Result<()> {
    let env = TestEnv::new("budget", 3).await?;
    let pool = postgres::connect(&env.database_url).await?;
    let _rollup = Service::start(&env, "a")?;
    let mut service = Service::spawn(&env, "meterline-budget", "a", &[])?;
    // A second instance throughout: both read every partition, and the
    // ledger's key decides which one counts each event.
    let mut other = Service::spawn(&env, "meterline-budget", "b", &[])?;

    // Phase 1: traffic, then budgets at 1.6x what five tenants have spent,
    // so 50% is crossed when the budget is set and 80% and 100% during
    // phase 2, which doubles their spend.
    let t1 = env.dir.join("truth1.json").to_string_lossy().into_owned();
    wait_ok(start_loadgen(&env, &loadgen(&t1, "21"))?, "loadgen phase 1")?;
    wait_budget_consumed(&env, CONVERGE).await?;
    let spent = ledger_totals(&env).await?;
    let mut budgeted = BTreeMap::new();
    for ((tenant, currency), (_, cost)) in spent.iter().filter(|(k, _)| k.1 == "USD").take(5) {
        let amount = (*cost * Decimal::new(16, 1)).round_dp(6);
        budgets::set_budget(&pool, &budget(tenant, amount)).await?;
        budgeted.insert(tenant.clone(), (currency.clone(), amount));
    }
    assert_eq!(budgeted.len(), 5, "five tenants with USD spend: {spent:?}");

    // Phase 2: more traffic while the budget service is SIGKILLed at
    // random moments.
    let t2 = env.dir.join("truth2.json").to_string_lossy().into_owned();
    let load = start_loadgen(&env, &loadgen(&t2, "22"))?;
    let seed: u64 = rand::random();
    eprintln!("kill schedule seed: {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..900))).await;
        service.check_alive()?;
        service.kill9()?;
        service = Service::spawn(&env, "meterline-budget", "a", &[])?;
    }
    wait_ok(load, "loadgen phase 2")?;
    wait_budget_consumed(&env, CONVERGE).await?;

    // The same spend as the rollups, and as the ground truth, exactly.
    let mut want = expected::expected(&Truth::read(std::path::Path::new(&t1))?, chrono::Utc::now().timestamp_micros())?;
    for (k, (n, c)) in expected::expected(&Truth::read(std::path::Path::new(&t2))?, chrono::Utc::now().timestamp_micros())? {
        let e = want.entry(k).or_default();
        e.0 += n;
        e.1 += c;
    }
    wait_for_totals(&env.clickhouse, &want, CONVERGE).await?;
    // The ledger is complete once it equals the rollups (its stored offsets
    // can reach a broker's reported end before the last records).
    let rollup = expected::actual(&env.clickhouse).await?;
    let agreeing = std::time::Instant::now();
    let ledger = loop {
        let ledger = ledger_totals(&env).await?;
        if ledger == rollup || agreeing.elapsed() > CONVERGE {
            break ledger;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(ledger, rollup, "budget ledger and rollups disagree");

    // One alert per tenant x threshold x period x budget version, for
    // exactly the thresholds the final spend crossed. Alerts are published
    // after the commit that raises them (and an alert whose publisher was
    // killed mid-publish waits out its 15 s lease), so poll until the
    // expected ones are there (or time runs out), then check there is
    // nothing else.
    let expected_alerts: BTreeMap<(String, i32), usize> = budgeted
        .iter()
        .flat_map(|(tenant, (currency, amount))| {
            let percent = ledger[&(tenant.clone(), currency.clone())].1 * Decimal::ONE_HUNDRED / amount;
            [50, 80, 100].into_iter().map(move |t| ((tenant.clone(), t), usize::from(percent >= Decimal::from(t))))
        })
        .collect();
    let polling = std::time::Instant::now();
    let seen = loop {
        let mut seen: BTreeMap<(String, i32, i64, i64), usize> = BTreeMap::new();
        for a in alerts(&env)?.iter().filter(|a| a.kind == AlertKind::Threshold) {
            *seen.entry((a.tenant_id.clone(), a.threshold_percent, a.period_start_micros, a.budget_version)).or_insert(0) += 1;
        }
        let raised = |tenant: &str, t: i32| seen.keys().filter(|k| k.0 == tenant && k.1 == t).count();
        if expected_alerts.iter().all(|((tenant, t), n)| raised(tenant, *t) >= *n) || polling.elapsed() > Duration::from_secs(40) {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("alerts complete {} ms after the ledger", polling.elapsed().as_millis());
    assert!(seen.values().all(|&n| n == 1), "duplicate alerts: {seen:?}");
    for ((tenant, t), n) in &expected_alerts {
        let raised = seen.keys().filter(|k| &k.0 == tenant && k.1 == *t).count();
        assert_eq!(raised, *n, "{tenant}: threshold {t} alerts (expected {n})");
    }
    // Those past 100% are blocked, and the last command says so.
    let blocked: Vec<_> = budgets::load_throttle_states(&pool, None).await?.into_iter().filter(|s| s.state == "block").collect();
    for (tenant, (currency, amount)) in &budgeted {
        let over = ledger[&(tenant.clone(), currency.clone())].1 >= *amount;
        assert_eq!(blocked.iter().any(|s| &s.tenant_id == tenant && s.published), over, "{tenant} block state");
    }
    other.check_alive()?;
    service.stop()?;
    Ok(())
}
