//! Network coincidence on a stream. ObsPy's `coincidence_trigger` is defined
//! over a whole trigger list; here triggers arrive micro-batch by
//! micro-batch and go into one incremental coincidence per `[[coincidence]]`
//! ([`CoincidenceStream`]), which reports an event once nothing that
//! arrives later can change it and then forgets the triggers that cannot
//! join another. The *safe time* it is given is the earliest of every
//! member sensor's processed time and open-trigger onset (a trigger not
//! yet closed, or data not yet seen, could still join), and of the data
//! time reached on every partition that still has messages to read, less
//! the reorder window (a sensor not seen yet may be there). The events
//! reported are therefore those of the batch run, as long as data arrive
//! within the reorder window of their partition's time.
//!
//! State: the triggers that can still join an event and one progress entry
//! per live sensor — bounded by the sensors and the configured windows,
//! not by the job's age. A retired sensor ([`StreamEvents::forget`]) no
//! longer holds the safe time back.

use crate::chain::CompiledChain;
use crate::config::Config;
use crate::output::{EventRec, Results};
use anyhow::{Context, Result};
use fakopp_kernels::detect::{CoincidenceParams, CoincidenceStream};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamEvents {
    /// One incremental coincidence per `[[coincidence]]`, in config order:
    /// (chain, state).
    nets: Vec<(String, CoincidenceStream)>,
    /// Per live sensor: processed-until time and open trigger onset.
    progress: BTreeMap<String, (i64, Option<i64>)>,
    /// The earliest safe time of the last [`StreamEvents::ready`]: how far
    /// event reporting trails the data (a status figure, not state).
    #[serde(skip)]
    last_safe_ns: Option<i64>,
}

impl StreamEvents {
    pub fn new(cfg: &Config) -> Result<StreamEvents> {
        let mut nets = Vec::new();
        for co in &cfg.coincidence {
            let params = CoincidenceParams {
                threshold_sum: co.threshold_sum,
                trigger_off_extension_s: co.trigger_off_extension_s,
            };
            let net = CoincidenceStream::new(params)
                .with_context(|| format!("coincidence over chain {}", co.chain))?;
            nets.push((co.chain.clone(), net));
        }
        Ok(StreamEvents {
            nets,
            progress: BTreeMap::new(),
            last_safe_ns: None,
        })
    }

    /// Takes this micro-batch's triggers and per-sensor progress.
    pub fn observe(
        &mut self,
        cfg: &Config,
        r: &Results,
        progress: &[(String, i64, Option<i64>)],
    ) -> Result<()> {
        for t in &r.triggers {
            for (co, (_, net)) in cfg
                .coincidence
                .iter()
                .zip(self.nets.iter_mut())
                .filter(|(co, _)| co.chain == t.chain)
            {
                let weight = co.weights.get(&t.sensor).copied().unwrap_or(1.0);
                net.push(&t.sensor, weight, t.on_time_ns, t.off_time_ns, t.peak_cf)
                    .with_context(|| format!("coincidence over chain {}", co.chain))?;
            }
        }
        for (s, until, open) in progress {
            self.progress.insert(s.clone(), (*until, *open));
        }
        Ok(())
    }

    /// A retired sensor: it no longer bounds the safe time.
    pub fn forget(&mut self, sensor: &str) {
        self.progress.remove(sensor);
    }

    /// The earliest time an event still to be reported can have: the
    /// earliest of the last [`StreamEvents::ready`]'s safe time and the
    /// onsets of the triggers held (none without coincidences, or once
    /// flushed). Every trigger held overlaps the span from it to the
    /// newest data.
    pub fn trailing_ns(&self) -> Option<i64> {
        let oldest = self.nets.iter().filter_map(|(_, n)| n.oldest_on_ns()).min();
        match (self.last_safe_ns, oldest) {
            (Some(s), Some(o)) => Some(s.min(o)),
            (a, b) => a.or(b),
        }
    }

    /// Triggers held that may still join an event.
    pub fn pending(&self) -> usize {
        self.nets.iter().map(|(_, n)| n.pending()).sum()
    }

    /// Events that can no longer change (all of them when `flush`), each
    /// reported once. `bound` caps the safe time for data not yet seen at
    /// all: sensors that have not appeared yet, on partitions consumed
    /// behind the others.
    /// `waiting(chain)` is the earliest data of the chain's sensors still
    /// in the reorder buffers (a sensor that has no progress yet).
    pub fn ready(
        &mut self,
        chains: &[CompiledChain],
        flush: bool,
        bound: i64,
        waiting: impl Fn(&CompiledChain) -> Option<i64>,
    ) -> Result<Vec<EventRec>> {
        let mut out = Vec::new();
        self.last_safe_ns = None;
        for (name, net) in self.nets.iter_mut() {
            let events = if flush {
                net.flush()
            } else {
                let chain = chains
                    .iter()
                    .find(|c| c.name() == name)
                    .expect("validated: the coincidence's chain exists");
                // No live member: every trigger held came from sensors
                // already retired, so only unseen data can still join.
                let safe = self
                    .progress
                    .iter()
                    .filter(|(s, _)| chain.matches(s))
                    .map(|(_, (until, open))| open.map_or(*until, |o| o.min(*until)))
                    .min()
                    .map_or(bound, |s| s.min(bound));
                let safe = waiting(chain).map_or(safe, |w| w.min(safe));
                self.last_safe_ns = Some(self.last_safe_ns.map_or(safe, |l| l.min(safe)));
                net.advance(safe)
            };
            out.extend(events.into_iter().map(|e| EventRec {
                chain: name.clone(),
                time_ns: e.time_ns,
                duration_s: e.duration_s,
                sensors: e.ids,
                coincidence_sum: e.coincidence_sum,
            }));
        }
        Ok(out)
    }
}
