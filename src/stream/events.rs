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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::output::TriggerRec;
    use fakopp_kernels::detect::{coincidence_trigger, Sensor, StationTrigger};

    const S: i64 = 1_000_000_000;

    /// Station A's trigger never ends by itself: it is cut at the longest
    /// trigger allowed (`max_len` s) and opens again at once, for the
    /// whole run. B and C trigger together every 10 s. One-second
    /// micro-batches over `seconds` of data: the events reported, when each
    /// was reported (batch end), and the most triggers held at once.
    fn run(seconds: i64, max_len: i64) -> (Vec<(EventRec, i64)>, Vec<TriggerRec>, usize) {
        let text = format!(
            "[source]\nkind = \"kafka\"\n[sinks]\nkinds = [\"jsonl\"]\n[[chains]]\nname = \"p\"\nselect = [\"XX.*\"]\n\
             steps = [{{ op = \"recursive_sta_lta\", sta = 0.5, lta = 10.0 }}, {{ op = \"trigger\", on = 3.0, off = 1.0 }}]\n\
             [[coincidence]]\nchain = \"p\"\nthreshold_sum = 2\nmax_trigger_length_s = {max_len}.0\n"
        );
        let cfg = Config::parse(&text, std::path::Path::new("t.toml"), Mode::Stream).unwrap();
        let chains = CompiledChain::compile(&cfg).unwrap();
        let mut ev = StreamEvents::new(&cfg).unwrap();
        let trig = |sensor: &str, on: i64, off: i64| TriggerRec {
            chain: "p".into(),
            sensor: sensor.into(),
            on_time_ns: on,
            off_time_ns: off,
            on_index: 0,
            off_index: 0,
            peak_cf: 4.0,
            pick_time_ns: None,
        };
        let (mut out, mut all, mut held) = (Vec::new(), Vec::new(), 0);
        for b in 0..seconds {
            let end = (b + 1) * S;
            let mut r = Results::default();
            if (b + 1) % max_len == 0 {
                r.triggers
                    .push(trig("XX.A..HHZ", (b + 1 - max_len) * S, end - S / 100));
            }
            if b % 10 == 0 {
                for s in ["XX.B..HHZ", "XX.C..HHZ"] {
                    r.triggers.push(trig(s, b * S, b * S + S / 2));
                }
            }
            let a_open = (b + 1) / max_len * max_len * S;
            let progress = [
                ("XX.A..HHZ".to_string(), end, Some(a_open)),
                ("XX.B..HHZ".to_string(), end, None),
                ("XX.C..HHZ".to_string(), end, None),
            ];
            ev.observe(&cfg, &r, &progress).unwrap();
            all.extend(r.triggers);
            for e in ev.ready(&chains, false, i64::MAX, |_| None).unwrap() {
                out.push((e, end));
            }
            held = held.max(ev.pending());
        }
        for e in ev.ready(&chains, true, i64::MAX, |_| None).unwrap() {
            out.push((e, i64::MAX));
        }
        (out, all, held)
    }

    #[test]
    fn a_trigger_held_open_delays_events_by_at_most_the_longest_trigger() {
        let max_len = 100;
        let (short, _, held_short) = run(2_000, max_len);
        let (events, triggers, held) = run(10_000, max_len);
        // What is held depends on the longest trigger, not on the job's age.
        assert_eq!(
            held, held_short,
            "triggers held after 10,000 s as after 2,000 s"
        );
        assert!(
            held <= 2 * (max_len as usize / 10 + 2) + 2,
            "{held} triggers held"
        );
        assert!(short.len() > 10 && events.len() > 5 * short.len() - 10);
        // Each event is reported at most the longest trigger (and a batch)
        // after it starts, not at the end of the run.
        let flushed = events.iter().filter(|(_, at)| *at == i64::MAX).count();
        assert!(flushed <= 1, "{flushed} events only at the end");
        for (e, at) in events.iter().filter(|(_, at)| *at != i64::MAX) {
            assert!(
                *at - e.time_ns <= (max_len + 2) * S,
                "{e:?} reported at {at}"
            );
        }
        // The events are the batch coincidence's over the same triggers.
        let ids = ["XX.A..HHZ", "XX.B..HHZ", "XX.C..HHZ"];
        let sensors: Vec<Sensor> = ids
            .iter()
            .map(|id| Sensor {
                id: id.to_string(),
                weight: 1.0,
            })
            .collect();
        let st: Vec<StationTrigger> = triggers
            .iter()
            .map(|t| StationTrigger {
                sensor: ids.iter().position(|i| *i == t.sensor).unwrap(),
                on_ns: t.on_time_ns,
                off_ns: t.off_time_ns,
                peak: t.peak_cf,
            })
            .collect();
        let params = CoincidenceParams {
            threshold_sum: 2.0,
            trigger_off_extension_s: 0.0,
        };
        let want: Vec<(i64, Vec<String>, f64)> = coincidence_trigger(&sensors, &st, &params)
            .unwrap()
            .into_iter()
            .map(|e| {
                (
                    e.time_ns,
                    e.sensors.iter().map(|&i| ids[i].to_string()).collect(),
                    e.coincidence_sum,
                )
            })
            .collect();
        let got: Vec<(i64, Vec<String>, f64)> = events
            .iter()
            .map(|(e, _)| (e.time_ns, e.sensors.clone(), e.coincidence_sum))
            .collect();
        assert_eq!(got, want);
    }
}
