//! Writing a batch: look its ids up, count it, find what a crashed attempt
//! left, and stream its events and deltas to ClickHouse.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::time::Instant;

use meterline_core::intake::Priced;
use meterline_storage::clickhouse::{self as ch, CostKey};
use tracing::{debug, info};

use super::batch::{spawn_now, EarlyLookup, Inserts};
use super::Pipeline;
use crate::count::{self, BatchStarts, Counted};
use crate::fast_hash::FastSet;
use crate::rows;
use crate::RollupError;

/// A batch streamed to ClickHouse, not yet stored.
pub struct Streamed {
    pub inserts: Inserts,
    /// Hashes of the (tenant, event id) it counts.
    pub counted_ids: Arc<FastSet<u64>>,
    pub counted: usize,
    pub duplicates: usize,
}

impl Pipeline {
    /// Dedupes against what is stored and streams the events and deltas to
    /// ClickHouse; they are stored once both inserts are ended. Safe to
    /// call again with the same batch. Every earlier batch must be stored,
    /// except the one an `early` lookup names.
    pub(super) async fn stream(
        &self,
        priced: &[Priced<'_>],
        starts: &BatchStarts,
        restarted: &[i32],
        early: Option<EarlyLookup>,
    ) -> Result<Streamed, RollupError> {
        let t0 = Instant::now();
        let id_hash = |p: &Priced<'_>| self.id_hasher.hash_one((p.event.tenant_id.as_ref(), p.event.event_id.as_ref()));
        let early = match early {
            Some(early) if early.unseen.as_ref().is_some_and(|unseen| priced.iter().any(|p| unseen.contains(&id_hash(p)))) => {
                // An id of the batch before may be here again, and the early
                // lookup may have run before that batch was stored.
                early.rows.abort();
                None
            }
            early => early,
        };
        let lookup = match early {
            Some(early) => early.rows,
            None => {
                let (tenants, ids, months) = count::lookup_keys(priced);
                spawn_now(self.seen.lookup(&tenants, &ids, &months)).await
            }
        };
        // ClickHouse looks the ids up on a task of its own while this one
        // dedupes the batch assuming none of them is stored, as nearly
        // always; if some are, the work is done again with them.
        let now_secs = chrono::Utc::now().timestamp() as u32;
        let mut counted = count::count(priced, starts, &HashMap::new());
        let mut events = rows::event_rows(&counted.counted, now_secs);
        let seen = lookup.await.map_err(|e| RollupError::task_failed("duplicate lookup", e))??;
        let looked_up = t0.elapsed();
        if !seen.is_empty() {
            counted = count::count(priced, starts, &count::stored_places(&seen));
            events = rows::event_rows(&counted.counted, now_secs);
        }
        let Counted { counted, duplicates, groups } = counted;

        let mut stale: HashMap<i32, Vec<CostKey>> = HashMap::new();
        for &p in restarted {
            let keys = ch::stale_cost_keys(&self.clickhouse, p, starts[&p]).await?;
            if !keys.is_empty() {
                info!(partition = p, batch_start = starts[&p], keys = keys.len(), "replacing a crashed attempt's deltas");
                stale.insert(p, keys);
            }
        }

        let costs = rows::cost_rows(&groups, starts, &stale);
        let counted_ids: FastSet<u64> = counted.iter().map(|p| id_hash(p)).collect();
        // Events and deltas are written at once: whatever part of them a
        // crash leaves behind, the replay of this batch comes out the same.
        // It counts events stored at this batch's own offsets again (they
        // are not duplicates of anything earlier), and its deltas, keyed by
        // the batch start, replace the crashed attempt's. Only the commit
        // waits for both.
        let t1 = Instant::now();
        let (events_insert, costs_insert) =
            tokio::try_join!(ch::stream_events(&self.clickhouse, &events), ch::stream_costs(&self.clickhouse, &costs))?;
        debug!(
            events = events.len(),
            lookup_ms = looked_up.as_millis() as u64,
            after_lookup_ms = (t1 - t0 - looked_up).as_millis() as u64,
            stream_ms = t1.elapsed().as_millis() as u64,
            "batch streamed"
        );
        Ok(Streamed {
            inserts: Inserts { events: events_insert, costs: costs_insert },
            counted_ids: Arc::new(counted_ids),
            counted: counted.len(),
            duplicates,
        })
    }

    /// [`Self::stream`], then waits until ClickHouse has stored it all.
    /// Returns (counted, duplicates).
    pub(super) async fn write(
        &self,
        priced: &[Priced<'_>],
        starts: &BatchStarts,
        restarted: &[i32],
    ) -> Result<(usize, usize), RollupError> {
        let Streamed { inserts, counted, duplicates, .. } = self.stream(priced, starts, restarted, None).await?;
        inserts.end().await?;
        Ok((counted, duplicates))
    }
}
