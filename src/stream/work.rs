//! What moves between rank 0 and the ranks every micro-batch, and what a
//! rank does with it. Each sensor lives on one rank (affinity), which keeps
//! the sensor's chain states between micro-batches.

use crate::chain::{ChainState, CompiledChain};
use crate::output::{Problem, Results};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A sensor's next data, in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Chunk {
    /// A new contiguous segment starts (first data, or after a gap larger
    /// than the interpolation limit): the chains restart their warm-up.
    Segment { start_ns: i64, sample_rate_hz: f64 },
    /// Samples continuing the current segment; `times_ns` only for
    /// irregular series.
    Samples {
        samples: Vec<f64>,
        times_ns: Vec<i64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorWork {
    pub sensor: String,
    pub chunks: Vec<Chunk>,
    /// The sensor is retired after these chunks (silent for longer than
    /// `retire_after_s`): its chains finish as at the end of a stream and
    /// its state is dropped.
    pub last: bool,
}

/// What rank 0 tells every rank each micro-batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    /// Process these sensors' chunks.
    Work(Vec<SensorWork>),
    /// End of the stream: flush every sensor (open triggers, pending QC).
    Finish,
    /// Send every sensor state (checkpoint); nothing is processed.
    Snapshot,
    /// Install these states (restart from a checkpoint).
    Restore(Vec<(String, SensorState)>),
    /// Leave the loop.
    Stop,
}

/// A rank's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    pub results: Results,
    /// Per sensor: time up to which its data has been processed (ns), and
    /// the on time of a trigger still open, if any (network coincidence
    /// cannot finalise events later than these).
    pub progress: Vec<(String, i64, Option<i64>)>,
    /// Sensor states, for `Snapshot`.
    pub states: Vec<(String, SensorState)>,
    /// Sensors retired in this step (their state is gone).
    pub retired: Vec<String>,
}

/// Everything one rank keeps about one sensor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SensorState {
    pub sample_rate_hz: f64,
    /// One state per matching chain: (chain name, state).
    pub chains: Vec<(String, ChainState)>,
    /// Time just after the last processed sample.
    pub next_ns: i64,
    /// Current segment: its start, its samples so far, and how many gaps
    /// (new segments) came before it.
    pub seg_start_ns: i64,
    pub seg_samples: u64,
    pub gaps: u64,
}

/// The sensors a rank owns.
pub struct Worker {
    chains: Vec<CompiledChain>,
    sensors: BTreeMap<String, SensorState>,
}

impl Worker {
    pub fn new(chains: Vec<CompiledChain>) -> Worker {
        Worker {
            chains,
            sensors: BTreeMap::new(),
        }
    }

    fn new_state(&self, sensor: &str, rate: f64, out: &mut Results) -> SensorState {
        let mut chains = Vec::new();
        for c in self.chains.iter().filter(|c| c.matches(sensor)) {
            // As in batch: the rate, else the chain's nominal interval
            // (batch's fallback, the series' median interval, needs the
            // whole series).
            let interval_ns = if rate > 0.0 {
                Some((1e9 / rate).round() as i64)
            } else {
                c.cfg.nominal_interval_s.map(|s| (s * 1e9).round() as i64)
            };
            match ChainState::new(c, sensor, rate, interval_ns) {
                Ok(s) => chains.push((c.name().to_string(), s)),
                Err(e) => out.problems.push(Problem {
                    chain: c.name().into(),
                    sensor: sensor.into(),
                    reason: format!("{e:#}"),
                }),
            }
        }
        SensorState {
            sample_rate_hz: rate,
            chains,
            next_ns: i64::MIN,
            seg_start_ns: 0,
            seg_samples: 0,
            gaps: 0,
        }
    }

    pub fn handle(&mut self, cmd: Command) -> Reply {
        let mut reply = Reply::default();
        match cmd {
            Command::Work(items) => {
                // Sensors are independent: rayon over them.
                let mut owned: Vec<(SensorWork, Option<SensorState>)> = items
                    .into_iter()
                    .map(|w| {
                        let s = self.sensors.remove(&w.sensor);
                        (w, s)
                    })
                    .collect();
                let outs: Vec<(String, Option<SensorState>, Results)> = {
                    use rayon::prelude::*;
                    owned
                        .par_iter_mut()
                        .map(|(w, st)| {
                            let mut out = Results::default();
                            let mut st = self.run_sensor(w, st.take(), &mut out);
                            if w.last {
                                // Retired: what a stream's end would flush.
                                for (_, c) in st.chains.iter_mut() {
                                    c.finish(&mut out);
                                }
                                return (w.sensor.clone(), None, out);
                            }
                            (w.sensor.clone(), Some(st), out)
                        })
                        .collect()
                };
                for (sensor, st, out) in outs {
                    reply.results.extend(out);
                    match st {
                        Some(st) => {
                            self.sensors.insert(sensor, st);
                        }
                        None => reply.retired.push(sensor),
                    }
                }
                reply.progress = self.progress();
            }
            Command::Finish => {
                for st in self.sensors.values_mut() {
                    for (_, c) in st.chains.iter_mut() {
                        c.finish(&mut reply.results);
                    }
                }
                reply.progress = self.progress();
            }
            Command::Snapshot => {
                reply.states = self
                    .sensors
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
            }
            Command::Restore(states) => {
                self.sensors.extend(states);
                reply.progress = self.progress();
            }
            Command::Stop => {}
        }
        reply
    }

    fn progress(&self) -> Vec<(String, i64, Option<i64>)> {
        self.sensors
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    s.next_ns,
                    s.chains
                        .iter()
                        .filter_map(|(_, c)| c.open_trigger_on_ns())
                        .min(),
                )
            })
            .collect()
    }

    fn run_sensor(
        &self,
        w: &SensorWork,
        st: Option<SensorState>,
        out: &mut Results,
    ) -> SensorState {
        let mut st = st;
        for chunk in &w.chunks {
            match chunk {
                Chunk::Segment {
                    start_ns,
                    sample_rate_hz,
                } => {
                    let rate_changed = st
                        .as_ref()
                        .is_some_and(|s| s.sample_rate_hz != *sample_rate_hz);
                    if st.is_none() || rate_changed {
                        if let Some(old) = st.as_mut() {
                            for (_, c) in old.chains.iter_mut() {
                                c.finish(out);
                            }
                        }
                        st = Some(self.new_state(&w.sensor, *sample_rate_hz, out));
                    }
                    let s = st.as_mut().expect("set above");
                    if s.next_ns != i64::MIN && s.sample_rate_hz > 0.0 {
                        // A gap too large to fill (assembly split here).
                        s.gaps += 1;
                        out.qc.push(crate::output::gap_record(
                            &w.sensor, s.next_ns, *start_ns, s.gaps,
                        ));
                    }
                    for (_, c) in s.chains.iter_mut() {
                        c.begin_segment(*start_ns, out);
                    }
                    s.next_ns = *start_ns;
                    s.seg_start_ns = *start_ns;
                    s.seg_samples = 0;
                }
                Chunk::Samples { samples, times_ns } => {
                    let Some(s) = st.as_mut() else { continue };
                    let mut failed = Vec::new();
                    for (i, (name, c)) in s.chains.iter_mut().enumerate() {
                        if let Err(e) = c.push(times_ns, samples, out) {
                            out.problems.push(Problem {
                                chain: name.clone(),
                                sensor: w.sensor.clone(),
                                reason: format!("{e:#}"),
                            });
                            failed.push(i);
                        }
                    }
                    // A chain that failed on bad data is dropped for this
                    // sensor rather than producing garbage.
                    for i in failed.into_iter().rev() {
                        s.chains.remove(i);
                    }
                    s.seg_samples += samples.len() as u64;
                    s.next_ns = match times_ns.last() {
                        Some(t) => t + 1,
                        // From the segment start, as batch computes it.
                        None => {
                            s.seg_start_ns
                                + (s.seg_samples as f64 * 1e9 / s.sample_rate_hz).round() as i64
                        }
                    };
                }
            }
        }
        st.unwrap_or_else(|| SensorState {
            sample_rate_hz: 0.0,
            chains: Vec::new(),
            next_ns: i64::MIN,
            seg_start_ns: 0,
            seg_samples: 0,
            gaps: 0,
        })
    }
}
