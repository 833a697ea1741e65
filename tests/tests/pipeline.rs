//! The spine, end to end on real services: loadgen → Kafka → rollup →
//! ClickHouse, with duplicates, malformed messages, SIGKILLs and a second
//! instance. Totals must equal the ground truth to the last decimal.

use std::time::Duration;

use anyhow::Result;
use meterline_tests::env::TestEnv;
use meterline_tests::expected::{self, dead_letters, wait_for_totals, Truth};
use meterline_tests::process::{start_loadgen, wait_ok, Rollup};
use rand::{Rng, SeedableRng};

const CONVERGE: Duration = Duration::from_secs(180);

fn loadgen_args<'a>(truth: &'a str, events: &'a str, rate: &'a str, seed: &'a str) -> Vec<&'a str> {
    vec![
        "--tenants",
        "25",
        "--events",
        events,
        "--rate",
        rate,
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

/// Checks the DLQ holds every malformed message the load generator sent.
fn assert_dead_letters(env: &TestEnv, truth: &Truth) -> Result<()> {
    let dlq = dead_letters(&env.brokers, &env.dlq_topic, truth.malformed_sent as usize)?;
    assert_eq!(dlq.len() as u64, truth.malformed_sent, "distinct dead letters");
    let mut by_reason = std::collections::BTreeMap::<String, u64>::new();
    for reason in dlq.values() {
        *by_reason.entry(reason.clone()).or_default() += 1;
    }
    eprintln!("dead letters by reason: {by_reason:?}; loadgen sent {:?}", truth.malformed_by_reason);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_every_event_once_through_repeated_sigkills() -> Result<()> {
    let env = TestEnv::new("kill", 4).await?;
    let truth_path = env.dir.join("truth.json");
    let truth_arg = truth_path.to_string_lossy().into_owned();
    // The load outlasts the kills (at most 7.5 s of them), so the last
    // instance also starts mid-stream.
    let loadgen = start_loadgen(&env, &loadgen_args(&truth_arg, "40000", "4000", "11"))?;

    // Kill the rollup at random moments while traffic flows, restarting it
    // each time; the seed is printed so a failure can be replayed.
    let seed: u64 = rand::random();
    eprintln!("kill schedule seed: {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut rollup = Rollup::start(&env, "a")?;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..1500))).await;
        rollup.check_alive()?;
        rollup.kill9()?;
        rollup = Rollup::start(&env, "a")?;
    }
    wait_ok(loadgen, "loadgen")?;
    let truth = Truth::read(&truth_path)?;
    assert!(truth.duplicates_sent > 0 && truth.malformed_sent > 0, "the load must contain duplicates and malformed messages");

    let want = expected::expected(&truth, chrono::Utc::now().timestamp_micros())?;
    wait_for_totals(&env.clickhouse, &want, CONVERGE).await?;
    assert_dead_letters(&env, &truth)?;
    rollup.check_alive()?;
    let status = rollup.stop()?;
    assert!(status.success(), "graceful stop exits 0, got {status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_one_killed_give_the_same_totals() -> Result<()> {
    let env = TestEnv::new("pair", 4).await?;
    let truth_path = env.dir.join("truth.json");
    let truth_arg = truth_path.to_string_lossy().into_owned();
    let mut a = Rollup::start(&env, "a")?;
    let mut b = Rollup::start(&env, "b")?;
    // Long enough that the survivor takes over (session timeout 6 s) while
    // traffic still flows.
    let loadgen = start_loadgen(&env, &loadgen_args(&truth_arg, "50000", "5000", "12"))?;

    tokio::time::sleep(Duration::from_millis(2500)).await;
    a.check_alive()?;
    a.kill9()?;
    wait_ok(loadgen, "loadgen")?;
    let truth = Truth::read(&truth_path)?;

    let want = expected::expected(&truth, chrono::Utc::now().timestamp_micros())?;
    wait_for_totals(&env.clickhouse, &want, CONVERGE).await?;
    assert_dead_letters(&env, &truth)?;
    b.check_alive()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_sent_after_a_restart_is_not_counted_again() -> Result<()> {
    let env = TestEnv::new("dup", 1).await?;
    let truth_path = env.dir.join("truth.json");
    let truth_arg = truth_path.to_string_lossy().into_owned();
    let args = ["--tenants", "3", "--events", "500", "--seed", "5", "--truth", truth_arg.as_str()];

    let rollup = Rollup::start(&env, "a")?;
    wait_ok(start_loadgen(&env, &args)?, "loadgen")?;
    let truth = Truth::read(&truth_path)?;
    let want = expected::expected(&truth, chrono::Utc::now().timestamp_micros())?;
    wait_for_totals(&env.clickhouse, &want, CONVERGE).await?;
    let status = rollup.stop()?;
    assert!(status.success());

    // The same seed sends the very same events again, later, to a new
    // instance with nothing in memory: every one is a duplicate.
    let rollup = Rollup::start(&env, "b")?;
    wait_ok(start_loadgen(&env, &args)?, "loadgen again")?;
    // Once the rollup has committed the whole second run, nothing may have
    // changed.
    env.wait_consumed(CONVERGE).await?;
    assert_eq!(expected::actual(&env.clickhouse).await?, want);
    drop(rollup);
    Ok(())
}
