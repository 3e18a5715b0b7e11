//! What moves between rank 0 and the ranks every micro-batch, and what a
//! rank does with it. Each sensor lives on one rank (affinity), which keeps
//! the sensor's chain states between micro-batches.

use super::part::Part;
use super::store::{RankStore, RawPacket, Written};
use crate::chain::{ChainState, CompiledChain};
use crate::config::CassandraConfig;
use crate::output::{Problem, Results};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A sensor's next data, in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Chunk {
    /// A new contiguous segment starts (first data, or after a gap larger
    /// than the interpolation limit): the chains restart their warm-up.
    Segment { start_ns: i64, sample_rate_hz: f64 },
    /// Samples continuing the current segment; `times_ns` only for
    /// irregular series.
    Samples {
        #[serde(with = "crate::model::f64s_as_bytes")]
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
    /// Connect this rank's Cassandra writer (after rank 0 has applied the
    /// schema); nothing happens on a rank that has one or needs none.
    Open,
    /// Process these sensors' chunks, and store these raw packets of the
    /// rank's sensors (`true`: late, stored but not processed).
    Work {
        items: Vec<SensorWork>,
        #[serde(with = "wire_packets")]
        raw: Vec<RawPacket>,
    },
    /// End of the stream: flush every sensor (open triggers, pending QC).
    Finish,
    /// Write every sensor state of this rank, once its writes are
    /// durable, as its part of checkpoint `generation` at `manifest`;
    /// nothing is processed.
    Snapshot {
        manifest: std::path::PathBuf,
        rank: usize,
        generation: u64,
    },
    /// Install these states (restart from a checkpoint).
    Restore(Vec<(String, SensorState)>),
    /// Leave the loop.
    Stop,
}

/// Raw packets in MPI messages: each packet's samples as one byte string
/// (one copy each way, not a call per sample). The checkpoint keeps its
/// own encoding of [`crate::model::SensorPacket`]. postcard is positional: `Ref` and
/// `Owned` must list the same fields in the same order.
mod wire_packets {
    use crate::model::{SensorKind, SensorPacket};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Ref<'a> {
        sensor_id: &'a str,
        kind: SensorKind,
        start_time_ns: i64,
        sample_rate_hz: f64,
        #[serde(with = "crate::model::f64s_as_bytes")]
        samples: &'a [f64],
        unit: &'a str,
        seq: Option<i64>,
        late: bool,
    }

    #[derive(Deserialize)]
    struct Owned {
        sensor_id: String,
        kind: SensorKind,
        start_time_ns: i64,
        sample_rate_hz: f64,
        #[serde(with = "crate::model::f64s_as_bytes")]
        samples: Vec<f64>,
        unit: String,
        seq: Option<i64>,
        late: bool,
    }

    pub fn serialize<S: Serializer>(v: &[super::RawPacket], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(p, late)| Ref {
            sensor_id: &p.sensor_id,
            kind: p.kind,
            start_time_ns: p.start_time_ns,
            sample_rate_hz: p.sample_rate_hz,
            samples: &p.samples,
            unit: &p.unit,
            seq: p.seq,
            late: *late,
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<super::RawPacket>, D::Error> {
        Ok(Vec::<Owned>::deserialize(d)?
            .into_iter()
            .map(|o| {
                (
                    std::sync::Arc::new(SensorPacket {
                        sensor_id: o.sensor_id,
                        kind: o.kind,
                        start_time_ns: o.start_time_ns,
                        sample_rate_hz: o.sample_rate_hz,
                        samples: o.samples,
                        unit: o.unit,
                        seq: o.seq,
                    }),
                    o.late,
                )
            })
            .collect())
    }
}

/// A rank's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    pub results: Results,
    /// Per sensor: time up to which its data has been processed (ns), and
    /// the on time of a trigger still open, if any (network coincidence
    /// cannot finalise events later than these).
    pub progress: Vec<(String, i64, Option<i64>)>,
    /// The checkpoint part written, for `Snapshot`.
    pub part: Option<Part>,
    /// Sensors retired in this step (their state is gone).
    pub retired: Vec<String>,
    /// Why this rank could not do its part (its Cassandra writes failed
    /// for good, or could not start): the job stops with this message.
    pub failure: Option<String>,
    /// What the rank has stored so far, and how long its last write took.
    pub written: Written,
    pub write_ms: Option<f64>,
    /// Nanoseconds this rank spent on the command, and of the rest,
    /// waiting for its previous Cassandra write to be durable.
    pub busy_ns: u64,
    pub store_wait_ns: u64,
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

/// Where a rank stores its sensors' raw packets and results.
pub struct StoreSpec {
    pub cassandra: CassandraConfig,
    /// Raised by SIGTERM/SIGINT: an endless retry is given up.
    pub stop: Arc<AtomicBool>,
    pub startup_timeout_s: f64,
}

/// The sensors a rank owns.
pub struct Worker {
    chains: Vec<CompiledChain>,
    sensors: BTreeMap<String, SensorState>,
    spec: Option<StoreSpec>,
    store: Option<RankStore>,
}

impl Worker {
    pub fn new(chains: Vec<CompiledChain>) -> Worker {
        Worker {
            chains,
            sensors: BTreeMap::new(),
            spec: None,
            store: None,
        }
    }

    /// A worker that stores its sensors' data in Cassandra, connecting at
    /// [`Command::Open`].
    pub fn storing(chains: Vec<CompiledChain>, spec: Option<StoreSpec>) -> Worker {
        Worker {
            spec,
            ..Worker::new(chains)
        }
    }

    /// This rank's sensor states, by sensor.
    pub fn states(&self) -> Vec<(&String, &SensorState)> {
        self.sensors.iter().collect()
    }

    /// Gives this worker its writer (rank 0 shares its session).
    pub fn attach(&mut self, store: Option<RankStore>) {
        self.store = store;
    }

    /// Settles the write in flight, then starts storing `raw` and the
    /// per-sensor part of `results` (rank 0 stores the events).
    fn persist(&mut self, raw: Vec<RawPacket>, results: Option<&Results>) -> anyhow::Result<()> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        match results {
            Some(r) => {
                let mut own = Results {
                    triggers: r.triggers.clone(),
                    qc: r.qc.clone(),
                    stats: r.stats.clone(),
                    ..Default::default()
                };
                if !own.qc.is_empty() {
                    own.qc_tests = CompiledChain::qc_labels(&self.chains);
                }
                store.write(raw, own)
            }
            None => store.settle(),
        }
    }

    pub fn handle(&mut self, cmd: Command) -> Reply {
        let started = std::time::Instant::now();
        let waited = self.store.as_ref().map(RankStore::waited);
        // Connecting is waiting for Cassandra, all of it.
        let opening = matches!(cmd, Command::Open);
        let mut reply = match self.handle_inner(cmd) {
            Ok(r) => r,
            Err(e) => Reply {
                failure: Some(format!("{e:#}")),
                ..Default::default()
            },
        };
        if let Some(s) = &self.store {
            reply.written = s.totals();
            reply.write_ms = s.last_write_ms();
        }
        // Busy: handling the command, not waiting for the previous write.
        let blocked = match (&self.store, waited) {
            _ if opening => started.elapsed(),
            (Some(s), Some(before)) => s.waited().saturating_sub(before),
            _ => std::time::Duration::ZERO,
        };
        let busy = started.elapsed().saturating_sub(blocked);
        reply.busy_ns = crate::metrics::nanos(busy);
        reply.store_wait_ns = crate::metrics::nanos(blocked);
        reply
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
            // `syntax` is batch-only: packets carry no raw text.
            match ChainState::new(c, sensor, rate, interval_ns, None) {
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

    fn handle_inner(&mut self, cmd: Command) -> anyhow::Result<Reply> {
        let mut reply = Reply::default();
        match cmd {
            Command::Open => {
                if let (None, Some(spec)) = (&self.store, &self.spec) {
                    self.store = Some(RankStore::connect(
                        &spec.cassandra,
                        false,
                        Arc::clone(&spec.stop),
                        crate::startup::Deadline::after_s(spec.startup_timeout_s),
                    )?);
                }
            }
            Command::Work { items, raw } => {
                // The previous write first: a failed one stops the job
                // before more is processed.
                self.persist(Vec::new(), None)?;
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
                self.persist(raw, Some(&reply.results))?;
            }
            Command::Finish => {
                self.persist(Vec::new(), None)?;
                for st in self.sensors.values_mut() {
                    for (_, c) in st.chains.iter_mut() {
                        c.finish(&mut reply.results);
                    }
                }
                reply.progress = self.progress();
                self.persist(Vec::new(), Some(&reply.results))?;
            }
            Command::Snapshot {
                manifest,
                rank,
                generation,
            } => {
                // A checkpoint commits offsets: what came before must be
                // durable on every rank.
                self.persist(Vec::new(), None)?;
                let states = self.states();
                let names: Vec<&str> = states.iter().map(|(k, _)| k.as_str()).collect();
                reply.part = Some(super::part::write(
                    &manifest, generation, rank, &names, &states,
                )?);
            }
            Command::Restore(states) => {
                self.sensors.extend(states);
                reply.progress = self.progress();
            }
            Command::Stop => self.persist(Vec::new(), None)?,
        }
        Ok(reply)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::{from_bytes, to_bytes};
    use crate::model::{SensorKind, SensorPacket};

    #[test]
    fn work_crosses_mpi_bit_for_bit_with_samples_as_bytes() {
        let odd = vec![-0.0, f64::NAN, f64::MIN_POSITIVE / 3.0, 1e308, 7.12];
        let packet = SensorPacket {
            sensor_id: "XX.A..HHZ".into(),
            kind: SensorKind::Seismic,
            start_time_ns: 42,
            sample_rate_hz: 100.0,
            samples: odd.clone(),
            unit: "counts".into(),
            seq: Some(3),
        };
        let cmd = Command::Work {
            items: vec![SensorWork {
                sensor: "XX.A..HHZ".into(),
                chunks: vec![Chunk::Samples {
                    samples: odd.clone(),
                    times_ns: vec![],
                }],
                last: false,
            }],
            raw: vec![(Arc::new(packet.clone()), true)],
        };
        let bytes = to_bytes(&cmd).unwrap();
        let Command::Work { items, raw } = from_bytes(&bytes).unwrap() else {
            panic!("not work")
        };
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let Chunk::Samples { samples, .. } = &items[0].chunks[0] else {
            panic!("not samples")
        };
        assert_eq!(bits(samples), bits(&odd));
        assert_eq!(raw.len(), 1);
        assert!(raw[0].1, "late flag kept");
        assert_eq!(bits(&raw[0].0.samples), bits(&odd));
        assert_eq!(
            (
                raw[0].0.sensor_id.as_str(),
                raw[0].0.seq,
                raw[0].0.start_time_ns
            ),
            ("XX.A..HHZ", Some(3), 42)
        );
    }
}
