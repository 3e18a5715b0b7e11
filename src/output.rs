//! Results of the chains, as they travel between ranks and into sinks.
//! All times are ns since the epoch (UTC).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One STA/LTA trigger of one sensor (`trigger` step), with its AIC pick
/// when the chain has an `aic_pick` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerRec {
    pub chain: String,
    pub sensor: String,
    pub on_time_ns: i64,
    pub off_time_ns: i64,
    /// Samples from the first sample of the contiguous segment.
    pub on_index: u64,
    pub off_index: u64,
    pub peak_cf: f64,
    pub pick_time_ns: Option<i64>,
}

/// A network detection (`[[coincidence]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRec {
    pub chain: String,
    pub time_ns: i64,
    pub duration_s: f64,
    pub sensors: Vec<String>,
    pub coincidence_sum: f64,
}

/// QARTOD flags of one reading: one per QC step of the chain, in step
/// order, and their aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QcRec {
    pub chain: String,
    pub sensor: String,
    pub time_ns: i64,
    /// Reading number in the sensor's series (from 0).
    pub index: u64,
    pub value: f64,
    pub flags: Vec<u8>,
    pub aggregate: u8,
}

/// Pseudo-chain under which assembly records gaps larger than
/// `max_gap_interp_samples` (each one restarts the chains' warm-up).
pub const ASSEMBLY_CHAIN: &str = "assembly";

/// The record of such a gap: a QARTOD `time_gap` FAIL (4) at the first
/// sample after it; `index` is the number of the segment that starts
/// there (1 for the second segment), `value` the gap's length in seconds.
pub fn gap_record(sensor: &str, gap_start_ns: i64, next_start_ns: i64, segment: u64) -> QcRec {
    QcRec {
        chain: ASSEMBLY_CHAIN.into(),
        sensor: sensor.into(),
        time_ns: next_start_ns,
        index: segment,
        value: (next_start_ns - gap_start_ns) as f64 / 1e9,
        flags: vec![4],
        aggregate: 4,
    }
}

/// Map keys for the flags of one chain: the QC test names in step order; a
/// name repeated in the chain gets `#k` appended for its k-th occurrence
/// (k ≥ 2), so no flag is lost in a map (Cassandra's `flags`, JSON lines' `flags`
/// object).
pub fn qc_flag_keys(names: &[String]) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    names
        .iter()
        .map(|n| {
            let k = seen.entry(n.as_str()).or_insert(0);
            *k += 1;
            if *k == 1 {
                n.clone()
            } else {
                format!("{n}#{k}")
            }
        })
        .collect()
}

/// The flag names of the assembly pseudo-chain.
pub fn assembly_qc_tests() -> (String, Vec<String>) {
    (ASSEMBLY_CHAIN.into(), vec!["time_gap".into()])
}

/// Statistics of one window (`stats` step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsRec {
    pub chain: String,
    pub sensor: String,
    pub window_start_ns: i64,
    pub window_s: f64,
    pub count: u64,
    pub gaps: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
    pub rms: f64,
}

/// A processed trace (chains with `traces = true`), one per contiguous segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRec {
    pub chain: String,
    pub sensor: String,
    pub start_time_ns: i64,
    pub sample_rate_hz: f64,
    pub samples: Vec<f64>,
}

/// A problem with one sensor's data that was reported and skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub chain: String,
    pub sensor: String,
    pub reason: String,
}

/// Everything the chains produced; merged across sensors and ranks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub triggers: Vec<TriggerRec>,
    pub events: Vec<EventRec>,
    pub qc: Vec<QcRec>,
    pub stats: Vec<StatsRec>,
    pub traces: Vec<TraceRec>,
    pub problems: Vec<Problem>,
    /// Names of the QC steps of each chain that has any (for flag labels).
    pub qc_tests: Vec<(String, Vec<String>)>,
    /// The stations file's table, written beside the results (batch:
    /// JSON lines and HDF5; stream: Cassandra, once at start).
    #[serde(default)]
    pub stations: Vec<crate::stations::Station>,
}

impl Results {
    pub fn extend(&mut self, other: Results) {
        self.triggers.extend(other.triggers);
        self.events.extend(other.events);
        self.qc.extend(other.qc);
        self.stats.extend(other.stats);
        self.traces.extend(other.traces);
        self.problems.extend(other.problems);
        for t in other.qc_tests {
            if !self.qc_tests.iter().any(|(c, _)| *c == t.0) {
                self.qc_tests.push(t);
            }
        }
        for st in other.stations {
            if !self.stations.iter().any(|s| s.sensor_id == st.sensor_id) {
                self.stations.push(st);
            }
        }
    }

    /// Puts every list in a canonical order, so results do not depend on
    /// how sensors were spread over ranks and threads.
    pub fn sort(&mut self) {
        self.triggers.sort_by(|a, b| {
            (&a.chain, &a.sensor, a.on_time_ns).cmp(&(&b.chain, &b.sensor, b.on_time_ns))
        });
        self.events
            .sort_by(|a, b| (&a.chain, a.time_ns).cmp(&(&b.chain, b.time_ns)));
        self.qc
            .sort_by(|a, b| (&a.chain, &a.sensor, a.index).cmp(&(&b.chain, &b.sensor, b.index)));
        self.stats.sort_by(|a, b| {
            (&a.chain, &a.sensor, a.window_start_ns).cmp(&(&b.chain, &b.sensor, b.window_start_ns))
        });
        self.traces.sort_by(|a, b| {
            (&a.chain, &a.sensor, a.start_time_ns).cmp(&(&b.chain, &b.sensor, b.start_time_ns))
        });
        self.problems.sort_by(|a, b| {
            (&a.chain, &a.sensor, &a.reason).cmp(&(&b.chain, &b.sensor, &b.reason))
        });
        self.qc_tests.sort();
        self.stations.sort_by(|a, b| a.sensor_id.cmp(&b.sensor_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_test_names_get_numbered_keys() {
        let names: Vec<String> = ["spike", "gross_range", "spike", "spike"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            qc_flag_keys(&names),
            ["spike", "gross_range", "spike#2", "spike#3"]
        );
    }
}
