//! Which rank owns which sensor (docs/architecture.md, "Scale-out"). A new
//! sensor goes to the rank with the least load so far, its load being its
//! sample rate × the cost of what runs on it: one unit for storing and
//! assembling its samples, plus one per step of every chain that selects
//! it. A 100 Hz seismometer under a four-step picker weighs 25,000 times a
//! logger read every ten minutes; assigning by count would let a few ranks
//! get every seismometer. Rank 0 also coordinates (consumes, reorders,
//! exchanges, checkpoints), so it is filled to `stream.rank0_weight` of
//! what another rank carries. The assignment depends only on the order
//! sensors first appear and their rates (lowest rank on ties).

use super::store::RawPacket;
use super::work::SensorWork;
use crate::chain::CompiledChain;
use std::collections::BTreeMap;

/// The rate an irregular series (rate 0) is weighed at: one reading a
/// minute, more than most loggers send.
const IRREGULAR_HZ: f64 = 1.0 / 60.0;

#[derive(Debug, Clone)]
pub struct Owners {
    /// Per chain, its selection and its cost per sample (steps).
    costs: Vec<(globset::GlobSet, f64)>,
    /// Sensor → (rank, load it adds).
    of: BTreeMap<String, (usize, f64)>,
    load: Vec<f64>,
    /// Each rank's capacity relative to the others (rank 0's is the
    /// configured weight, or 1 when it is alone).
    capacity: Vec<f64>,
}

impl Owners {
    pub fn new(ranks: usize, rank0_weight: f64, chains: &[CompiledChain]) -> Owners {
        let ranks = ranks.max(1);
        let mut capacity = vec![1.0; ranks];
        if ranks > 1 {
            capacity[0] = rank0_weight;
        }
        Owners {
            costs: chains
                .iter()
                .map(|c| (c.selection().clone(), c.cfg.steps.len() as f64))
                .collect(),
            of: BTreeMap::new(),
            load: vec![0.0; ranks],
            capacity,
        }
    }

    /// Samples per second × work per sample.
    pub fn load_of(&self, sensor: &str, rate_hz: f64) -> f64 {
        let rate = if rate_hz > 0.0 { rate_hz } else { IRREGULAR_HZ };
        let steps: f64 = self
            .costs
            .iter()
            .filter(|(sel, _)| sel.is_match(sensor))
            .map(|(_, s)| s)
            .sum();
        rate * (1.0 + steps)
    }

    /// The sensor's rank, assigning it (by `rate_hz`) if it is new.
    pub fn owner(&mut self, sensor: &str, rate_hz: f64) -> usize {
        if let Some(&(r, _)) = self.of.get(sensor) {
            return r;
        }
        let load = self.load_of(sensor, rate_hz);
        // The rank least full once it has the sensor; a rank of capacity
        // 0 takes none.
        let fill = |r: usize| (self.load[r] + load) / self.capacity[r];
        let r = (0..self.load.len())
            .filter(|&r| self.capacity[r] > 0.0)
            .min_by(|&a, &b| fill(a).total_cmp(&fill(b)).then(a.cmp(&b)))
            .expect("a rank with capacity");
        self.load[r] += load;
        self.of.insert(sensor.to_string(), (r, load));
        r
    }

    /// Forgets a retired sensor (its rank's load drops with it).
    pub fn forget(&mut self, sensor: &str) {
        if let Some((r, load)) = self.of.remove(sensor) {
            self.load[r] = (self.load[r] - load).max(0.0);
        }
    }

    /// Sensors assigned.
    pub fn len(&self) -> usize {
        self.of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.of.is_empty()
    }

    /// Each rank's load (samples per second × work per sample).
    #[cfg(test)]
    fn loads(&self) -> &[f64] {
        &self.load
    }

    /// Released work by owner. A new sensor's first chunk is its segment,
    /// which gives its rate.
    pub fn split(&mut self, work: Vec<SensorWork>) -> Vec<Vec<SensorWork>> {
        let mut per: Vec<Vec<SensorWork>> = (0..self.load.len()).map(|_| Vec::new()).collect();
        for w in work {
            let rate = w
                .chunks
                .iter()
                .find_map(|c| match c {
                    super::work::Chunk::Segment { sample_rate_hz, .. } => Some(*sample_rate_hz),
                    _ => None,
                })
                .unwrap_or(0.0);
            let r = self.owner(&w.sensor, rate);
            per[r].push(w);
        }
        per
    }

    /// Raw packets by the rank that stores them: their sensor's owner.
    pub fn split_raw(&mut self, raw: Vec<RawPacket>) -> Vec<Vec<RawPacket>> {
        let mut per: Vec<Vec<RawPacket>> = (0..self.load.len()).map(|_| Vec::new()).collect();
        for p in raw {
            let r = self.owner(&p.0.sensor_id, p.0.sample_rate_hz);
            per[r].push(p);
        }
        per
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Mode};

    fn chains() -> Vec<CompiledChain> {
        let text = r#"
[source]
kind = "kafka"
[sinks]
kinds = ["jsonl"]
[[chains]]
name = "picker"
select = ["XX.*"]
steps = [
  { op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 10.0 },
  { op = "trigger", on = 3.5, off = 1.0 },
]
[[chains]]
name = "qc"
select = ["EMB.*"]
steps = [{ op = "gross_range", fail_span = [0.0, 14.0] }]
"#;
        let cfg = Config::parse(text, std::path::Path::new("t.toml"), Mode::Stream).unwrap();
        CompiledChain::compile(&cfg).unwrap()
    }

    #[test]
    fn seismometers_spread_over_the_ranks_whatever_the_loggers_between_them() {
        let mut o = Owners::new(2, 1.0, &chains());
        // Alternating seismometer, logger: by count every seismometer
        // would land on rank 0.
        let mut seismic = [0usize; 2];
        for i in 0..10 {
            seismic[o.owner(&format!("XX.S{i}..HHZ"), 100.0)] += 1;
            o.owner(&format!("EMB.L{i}..PH"), 1.0 / 900.0);
        }
        assert_eq!(seismic, [5, 5]);
        let l = o.loads();
        assert!((l[0] - l[1]).abs() <= 400.0 + 1.0, "{l:?}");
    }

    #[test]
    fn a_retired_sensor_gives_its_load_back() {
        let mut o = Owners::new(2, 1.0, &chains());
        assert_eq!(o.owner("XX.A..HHZ", 100.0), 0);
        assert_eq!(o.owner("XX.B..HHZ", 100.0), 1);
        assert_eq!(o.owner("XX.A..HHZ", 0.0), 0, "an owner is kept");
        o.forget("XX.A..HHZ");
        assert_eq!(o.owner("XX.C..HHZ", 100.0), 0, "rank 0 is free again");
        assert_eq!(o.len(), 2);
        // Irregular series weigh something: they do not all pile up.
        let mut o = Owners::new(2, 1.0, &chains());
        let r: Vec<usize> = (0..4).map(|i| o.owner(&format!("EMB.I{i}"), 0.0)).collect();
        assert_eq!(r, [0, 1, 0, 1]);
    }

    #[test]
    fn rank_0_carries_its_weight() {
        // Ten equal sensors on three ranks: rank 0 at half weight takes
        // one for every two the others take.
        let mut o = Owners::new(3, 0.5, &chains());
        let mut n = [0usize; 3];
        for i in 0..10 {
            n[o.owner(&format!("XX.S{i}..HHZ"), 100.0)] += 1;
        }
        assert_eq!(n, [2, 4, 4]);
        // Weight 0: rank 0 only coordinates.
        let mut o = Owners::new(2, 0.0, &chains());
        assert!((0..4).all(|i| o.owner(&format!("XX.S{i}..HHZ"), 100.0) == 1));
        // Alone, rank 0 takes everything whatever its weight.
        let mut o = Owners::new(1, 0.0, &chains());
        assert_eq!(o.owner("XX.A..HHZ", 100.0), 0);
    }
}
