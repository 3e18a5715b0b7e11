//! Network coincidence on a stream. ObsPy's `coincidence_trigger` is defined
//! over a whole trigger list; here the list grows as triggers arrive, and
//! an event is reported once nothing that arrives later can change it: its
//! off time plus `trigger_off_extension_s` lies before the *safe time*, the
//! earliest of every sensor's processed time and open-trigger onset (a
//! trigger not yet closed, or data not yet seen, could still join), and of
//! the data time reached on every partition that still has messages to
//! read, less the reorder window (a sensor not seen yet may be there). The
//! events reported are therefore those of the batch run, as long as data
//! arrive within the reorder window of their partition's time.

use crate::batch;
use crate::chain::CompiledChain;
use crate::config::Config;
use crate::output::{EventRec, Results, TriggerRec};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamEvents {
    /// Triggers of chains under a `[[coincidence]]`, kept to recompute events.
    triggers: Vec<TriggerRec>,
    /// Every sensor seen, per chain (the coincidence membership).
    sensors: BTreeSet<String>,
    /// (chain, time) of events already reported.
    reported: BTreeSet<(String, i64)>,
    /// Per sensor: processed-until time and open trigger onset.
    progress: BTreeMap<String, (i64, Option<i64>)>,
}

impl StreamEvents {
    /// Takes this micro-batch's triggers and per-sensor progress.
    pub fn observe(&mut self, cfg: &Config, r: &Results, progress: &[(String, i64, Option<i64>)]) {
        for t in &r.triggers {
            if cfg.coincidence.iter().any(|c| c.chain == t.chain) {
                self.triggers.push(t.clone());
            }
        }
        for (s, until, open) in progress {
            self.sensors.insert(s.clone());
            self.progress.insert(s.clone(), (*until, *open));
        }
    }

    /// Events that can no longer change (all of them when `flush`), each
    /// reported once. `bound` caps the safe time for data not yet seen at
    /// all: sensors that have not appeared yet, on partitions consumed
    /// behind the others.
    pub fn ready(
        &mut self,
        cfg: &Config,
        chains: &[CompiledChain],
        flush: bool,
        bound: i64,
    ) -> Result<Vec<EventRec>> {
        if cfg.coincidence.is_empty() {
            return Ok(Vec::new());
        }
        let sensors: Vec<String> = self.sensors.iter().cloned().collect();
        let mut r = Results {
            triggers: self.triggers.clone(),
            ..Default::default()
        };
        batch::coincidence(cfg, chains, &sensors, &mut r)?;
        let mut out = Vec::new();
        for e in r.events {
            let co = cfg
                .coincidence
                .iter()
                .find(|c| c.chain == e.chain)
                .expect("event of a configured chain");
            let chain = chains
                .iter()
                .find(|c| c.name() == e.chain)
                .expect("validated");
            let safe = self
                .progress
                .iter()
                .filter(|(s, _)| chain.matches(s))
                .map(|(_, (until, open))| open.map_or(*until, |o| o.min(*until)))
                .min()
                .unwrap_or(i64::MIN)
                .min(bound);
            let off_ns =
                e.time_ns + (e.duration_s * 1e9) as i64 + (co.trigger_off_extension_s * 1e9) as i64;
            if (flush || off_ns < safe) && self.reported.insert((e.chain.clone(), e.time_ns)) {
                out.push(e);
            }
        }
        Ok(out)
    }
}
