//! Hash maps for the per-event work (dedupe within a batch, grouping,
//! per-partition bookkeeping): SipHash, the standard one, was ~8 % of the
//! rollup's CPU. foldhash is seeded per process, so crafted ids cannot aim
//! at collisions offline.

use std::collections::{HashMap, HashSet};

pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;
