//! Budgets that bite, seen from a client of the reference gateway: alerts
//! at 50/80/100%, 429 at 100% with `block`, service again after a raise,
//! the cheaper model under `degrade`, and a new period lifting a block.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use meterline_core::budget::Tz;
use meterline_core::{AlertKind, Budget, BudgetAction, Currency, Month, PriceBook, Unit};
use meterline_storage::postgres::{self, budgets};
use meterline_tests::budgets::alerts;
use meterline_tests::env::TestEnv;
use meterline_tests::expected::price_file;
use meterline_tests::http::{free_port, post_json, wait_healthy, Response};
use meterline_tests::process::Service;
use rust_decimal::Decimal;
use serde_json::json;

const SECRET: &str = "gateway-test-secret";
/// Generous bounds: the measured times are printed; the benchmark, not this
/// test, is where speed is judged.
const LIFT: Duration = Duration::from_secs(10);

struct Gateway {
    url: String,
    book: PriceBook,
}

impl Gateway {
    fn chat(&self, tenant: &str) -> Result<Response> {
        let token = meterline_gateway::auth::mint_token(SECRET.as_bytes(), tenant, None)?;
        let prompt = "Summarise the quarterly usage report for the finance team in three bullet points. ".repeat(40);
        post_json(
            &format!("{}/v1/chat/completions", self.url),
            &token,
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}),
        )
    }

    /// What one such request costs, from the usage the gateway reports.
    fn cost(&self, r: &Response) -> Result<Decimal> {
        let usage = &r.body["usage"];
        let rates = self.book.rates("any", "openai", "gpt-4o", Utc::now().timestamp_micros()).context("gpt-4o price")?;
        let input = rates.rate(Unit::InputToken).and_then(|p| p.cost(usage["prompt_tokens"].as_i64()?)).context("input")?;
        let output = rates.rate(Unit::OutputToken).and_then(|p| p.cost(usage["completion_tokens"].as_i64()?)).context("output")?;
        Ok(input + output)
    }

    /// Sends requests (one every 20 ms) until `stop` holds for a response.
    async fn until(&self, tenant: &str, max: usize, stop: impl Fn(&Response) -> bool) -> Result<(usize, Response)> {
        for i in 1..=max {
            let r = self.chat(tenant)?;
            if stop(&r) {
                return Ok((i, r));
            }
            if r.status != 200 {
                bail!("{tenant}: unexpected {} {}", r.status, r.body);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("{tenant}: condition not met after {max} requests")
    }
}

fn budget(tenant: &str, amount: Decimal, action: BudgetAction) -> Budget {
    Budget {
        tenant_id: tenant.to_owned(),
        amount,
        currency: Currency::USD,
        thresholds: vec![50, 80, 100],
        action,
        grace_percent: Decimal::ZERO,
        timezone: Tz::UTC,
        version: 0,
    }
}

fn set_clock(path: &std::path::Path, t: DateTime<Utc>) -> Result<()> {
    // Write then rename, so the service never reads half a timestamp.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, t.to_rfc3339())?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_throttle_the_gateway_and_lift() -> Result<()> {
    let env = TestEnv::new("gateway", 2).await?;
    let pool = postgres::connect(&env.database_url).await?;
    // The budget service's clock: one minute before this month ends, so
    // the test can roll the period over by moving it.
    let month = Month::containing(Utc::now());
    let clock = env.dir.join("clock");
    set_clock(&clock, month.end() - chrono::Duration::seconds(60))?;
    let clock_arg = clock.to_string_lossy().into_owned();
    let _budget = Service::spawn(&env, "meterline-budget", "a", &[("METERLINE_BUDGET_CLOCK_FILE", &clock_arg)])?;
    let port = free_port()?.to_string();
    let listen = format!("127.0.0.1:{port}");
    let _gateway = Service::spawn(
        &env,
        "meterline-gateway",
        "a",
        &[("METERLINE_GATEWAY_LISTEN", &listen), ("METERLINE_JWT_SECRET", SECRET), ("METERLINE_MODEL_LATENCY_MS", "1")],
    )?;
    let url = format!("http://{listen}");
    wait_healthy(&format!("{url}/health"), Duration::from_secs(30)).await?;
    let entries = meterline_core::pricing::csv::parse(&std::fs::read_to_string(price_file())?)?;
    let gw = Gateway { url, book: PriceBook::build(&entries, &[])? };

    // What one request costs; budgets are sized in requests.
    let probe = gw.chat("probe")?;
    assert_eq!(probe.status, 200, "{}", probe.body);
    let per_request = gw.cost(&probe)?;
    assert!(per_request > Decimal::ZERO);
    // The services are warm once the probe's usage is counted (a fresh
    // consumer takes about a second to fetch its first messages).
    let warm = Instant::now() + Duration::from_secs(30);
    while !meterline_tests::budgets::ledger_totals(&env).await?.keys().any(|k| k.0 == "probe") {
        if Instant::now() > warm {
            bail!("the probe's usage was never counted");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // block: 50% and 80% alert, 100% blocks with a 429 naming the budget.
    budgets::set_budget(&pool, &budget("blocky", per_request * Decimal::from(8), BudgetAction::Block)).await?;
    let (served, refused) = gw.until("blocky", 60, |r| r.status == 429).await?;
    eprintln!("blocky refused after {served} requests (budget: 8 requests)");
    assert!(served > 8, "blocked before the budget was spent ({served} requests)");
    assert_eq!(refused.body["error"]["type"], "budget_exceeded", "{}", refused.body);
    assert!(refused.body["error"]["message"].as_str().unwrap_or_default().contains("budget"), "{}", refused.body);
    let retry_after: u64 = refused.headers.get("retry-after").context("Retry-After")?.parse()?;
    assert!(retry_after >= 1, "Retry-After {retry_after}");

    // Raising the budget lifts the block without new usage.
    let raised = Instant::now();
    budgets::set_budget(&pool, &budget("blocky", per_request * Decimal::from(1000), BudgetAction::Block)).await?;
    let (_, ok) = poll_until_served(&gw, "blocky").await?;
    eprintln!("blocky served again {} ms after the raise", raised.elapsed().as_millis());
    assert_eq!(ok.status, 200);

    // degrade: served by the cheaper model, and told so.
    budgets::set_budget(&pool, &budget("degrady", per_request * Decimal::from(3), BudgetAction::Degrade { model: "gpt-4o-mini".into() }))
        .await?;
    let (n, degraded) = gw.until("degrady", 60, |r| r.body["model"] == "gpt-4o-mini").await?;
    eprintln!("degrady degraded after {n} requests (budget: 3 requests)");
    assert_eq!(degraded.status, 200);
    assert_eq!(degraded.headers.get("x-meterline-degraded-from").map(String::as_str), Some("gpt-4o"));
    assert_eq!(degraded.body["meterline"]["degraded"], true, "{}", degraded.body);

    // A new period lifts a block: move the budget service's clock.
    budgets::set_budget(&pool, &budget("monthly", per_request * Decimal::from(2), BudgetAction::Block)).await?;
    gw.until("monthly", 60, |r| r.status == 429).await?;
    let rolled = Instant::now();
    set_clock(&clock, month.end() + chrono::Duration::seconds(5))?;
    poll_until_served(&gw, "monthly").await?;
    eprintln!("monthly served again {} ms after the period rolled over", rolled.elapsed().as_millis());

    // Exactly one alert per threshold for blocky, all under the first
    // budget version: the raise to 1000 requests' worth re-armed them, and
    // spend never reached them again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = alerts(&env)?;
    let mut blocky: Vec<(i32, i64)> = all
        .iter()
        .filter(|a| a.tenant_id == "blocky" && a.kind == AlertKind::Threshold)
        .map(|a| (a.threshold_percent, a.budget_version))
        .collect();
    blocky.sort_unstable();
    assert_eq!(blocky, vec![(50, 1), (80, 1), (100, 1)], "blocky's alerts: {all:#?}");
    Ok(())
}

/// Polls (every 50 ms) until a request is served, within [`LIFT`].
async fn poll_until_served(gw: &Gateway, tenant: &str) -> Result<(usize, Response)> {
    let deadline = Instant::now() + LIFT;
    let mut n = 0;
    loop {
        n += 1;
        let r = gw.chat(tenant)?;
        if r.status == 200 {
            return Ok((n, r));
        }
        if Instant::now() > deadline {
            bail!("{tenant} still refused after {LIFT:?}: {} {}", r.status, r.body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
