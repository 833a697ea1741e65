//! The ground truth of a load run: what the pipeline must end up counting.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use meterline_core::Unit;
use serde::Serialize;

use super::Item;

#[derive(Debug, Default, Serialize)]
pub struct Truth {
    pub distinct_events: u64,
    pub duplicates_sent: u64,
    pub malformed_sent: u64,
    /// By the reason code the rollup gives such a message.
    pub malformed_by_reason: BTreeMap<&'static str, u64>,
    pub tenants: BTreeMap<String, TenantTruth>,
}

#[derive(Debug, Default, Serialize)]
pub struct TenantTruth {
    pub events: u64,
    /// By `provider/model` (`provider/` when the model is null): `events`
    /// and the summed quantity of each unit.
    pub models: BTreeMap<String, BTreeMap<&'static str, u64>>,
}

impl Truth {
    pub fn record(&mut self, item: &Item) {
        match item {
            Item::Event { event, .. } => {
                self.distinct_events += 1;
                let tenant = self.tenants.entry(event.tenant_id.to_string()).or_default();
                tenant.events += 1;
                let model = format!("{}/{}", event.provider(), event.model());
                let sums = tenant
                    .models
                    .entry(model)
                    .or_insert_with(|| std::iter::once("events").chain(Unit::ALL.iter().map(|u| u.field_name())).map(|k| (k, 0)).collect());
                *sums.get_mut("events").expect("initialised") += 1;
                for (unit, q) in event.quantities.iter() {
                    *sums.get_mut(unit.field_name()).expect("initialised") += q as u64;
                }
            }
            Item::Duplicate { .. } => self.duplicates_sent += 1,
            Item::Malformed { reason, .. } => {
                self.malformed_sent += 1;
                *self.malformed_by_reason.entry(reason).or_default() += 1;
            }
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?).with_context(|| format!("writing {}", path.display()))
    }
}
