//! Evaluation without new usage: a budget changed (Postgres NOTIFY), a
//! period rolled over (the tick), or time passed (the sweep: forecasts, and
//! healing anything a missed notification or failed publish left behind).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::watch;
use tracing::warn;

use crate::evaluate::evaluate;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::{ledger, BudgetServiceError, Clock};

#[derive(Clone)]
pub struct Judge {
    pub pool: PgPool,
    pub outbox: Arc<Outbox>,
    pub clock: Clock,
    pub metrics: Metrics,
    pub forecast_min_elapsed: chrono::Duration,
}

impl Judge {
    /// Judges `tenants` in a transaction of their own, then publishes.
    pub async fn judge(&self, mut tenants: Vec<String>, trigger: &str) -> Result<(), BudgetServiceError> {
        tenants.sort_unstable();
        tenants.dedup();
        if tenants.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let decided = evaluate(&mut tx, &tenants, self.clock.now(), self.forecast_min_elapsed).await?;
        tx.commit().await?;
        self.metrics.evaluations.with_label_values(&[trigger]).inc_by(tenants.len() as u64);
        if decided.any() {
            self.outbox.flush().await?;
        }
        Ok(())
    }

    fn report(&self, result: Result<(), BudgetServiceError>, what: &str) {
        if let Err(e) = result {
            self.metrics.failure(&e);
            warn!(error = %e, "{what} failed; retrying on the next occasion");
        }
    }
}

/// Judges a tenant as soon as its budget changes.
pub async fn on_budget_change(judge: Judge, database_url: String, mut stop: watch::Receiver<bool>) {
    let mut listener = loop {
        match listen(&database_url).await {
            Ok(l) => break l,
            Err(e) => {
                warn!(error = %e, "cannot LISTEN for budget changes; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    loop {
        let n = tokio::select! {
            n = listener.recv() => n,
            _ = stop.changed() => return,
        };
        match n {
            Ok(n) => {
                let mut tenants = vec![n.payload().to_owned()];
                // Take whatever else is already buffered (without waiting):
                // one transaction for a bulk budget import.
                while let Some(more) = listener.next_buffered() {
                    tenants.push(more.payload().to_owned());
                }
                let r = judge.judge(tenants, "budget_change").await;
                judge.report(r, "judging a changed budget");
            }
            // PgListener reconnects by itself; notifications sent meanwhile
            // are lost, which the sweep heals.
            Err(e) => warn!(error = %e, "budget notifications interrupted"),
        }
    }
}

async fn listen(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect(url).await?;
    l.listen("meterline_budgets").await?;
    Ok(l)
}

/// Every `tick`: tenants whose period ended (a new month lifts a block with
/// no new usage) or whose budget has not been judged yet, and a flush of
/// anything left unpublished. Every `sweep`: everyone.
pub async fn on_time(judge: Judge, tick: Duration, sweep: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep = tokio::time::Instant::now() - sweep;
    let mut last_prune = tokio::time::Instant::now() - Duration::from_secs(3600);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let r = due(&judge).await;
        judge.report(r, "judging rolled-over periods");
        if last_sweep.elapsed() >= sweep {
            last_sweep = tokio::time::Instant::now();
            let r = everyone(&judge).await;
            judge.report(r, "the periodic sweep");
        }
        if last_prune.elapsed() >= Duration::from_secs(3600) {
            last_prune = tokio::time::Instant::now();
            let r = prune(&judge).await;
            judge.report(r, "pruning seen event ids");
        }
    }
}

async fn due(judge: &Judge) -> Result<(), BudgetServiceError> {
    let tenants: Vec<String> = sqlx::query_scalar(
        "SELECT tenant_id FROM throttle_state WHERE period_end <= $1 \
         UNION SELECT b.tenant_id FROM budgets b LEFT JOIN throttle_state s USING (tenant_id) WHERE s.tenant_id IS NULL",
    )
    .bind(judge.clock.now())
    .fetch_all(&judge.pool)
    .await?;
    judge.judge(tenants, "tick").await?;
    // Anything a failed or skipped publish left behind goes out within a
    // tick, not a sweep.
    judge.outbox.flush().await
}

/// Tenants judged per transaction by the sweep.
const SWEEP_CHUNK: usize = 20;

async fn everyone(judge: &Judge) -> Result<(), BudgetServiceError> {
    let tenants: Vec<String> =
        sqlx::query_scalar("SELECT tenant_id FROM budgets UNION SELECT tenant_id FROM throttle_state").fetch_all(&judge.pool).await?;
    // Small transactions: judging locks each tenant's throttle row, and a
    // partition loop judging or publishing for one of them waits until the
    // transaction ends. One transaction for everyone held every tenant's
    // row for its whole length, once per sweep.
    for chunk in tenants.chunks(SWEEP_CHUNK) {
        judge.judge(chunk.to_vec(), "sweep").await?;
    }
    judge.outbox.flush().await
}

async fn prune(judge: &Judge) -> Result<(), BudgetServiceError> {
    // Keep this month and the previous one, in any zone: duplicates arrive
    // within their month.
    let now = judge.clock.now();
    let this_month = meterline_core::Month::containing(now);
    let before = this_month.start() - chrono::Duration::days(32);
    let removed = ledger::prune_seen(&judge.pool, before).await?;
    if removed > 0 {
        tracing::info!(removed, "pruned seen event ids older than the previous month");
    }
    Ok(())
}
