//! JSON-lines results (docs/reference.md, "Outputs"): one object a line, `type` first, times
//! as RFC 3339 UTC with microseconds; NaN statistics become `null`.

use crate::model::format_time_us;
use crate::output::{qc_flag_keys, Results};
use anyhow::Result;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::io::Write;

#[derive(Serialize)]
struct TriggerLine<'a> {
    r#type: &'static str,
    chain: &'a str,
    sensor: &'a str,
    on_time: String,
    off_time: String,
    on_index: u64,
    off_index: u64,
    peak_cf: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pick_time: Option<String>,
}

#[derive(Serialize)]
struct EventLine<'a> {
    r#type: &'static str,
    chain: &'a str,
    time: String,
    duration_s: f64,
    sensors: &'a [String],
    coincidence_sum: f64,
}

/// Flags as an object in step order.
struct Flags<'a>(&'a [String], &'a [u8]);

impl Serialize for Flags<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.1.len()))?;
        for (name, f) in self.0.iter().zip(self.1) {
            m.serialize_entry(name, f)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
struct QcLine<'a> {
    r#type: &'static str,
    chain: &'a str,
    sensor: &'a str,
    time: String,
    index: u64,
    value: Option<f64>,
    flags: Flags<'a>,
    aggregate: u8,
}

#[derive(Serialize)]
struct StatsLine<'a> {
    r#type: &'static str,
    chain: &'a str,
    sensor: &'a str,
    window_start: String,
    window_s: f64,
    count: u64,
    gaps: u64,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    std: Option<f64>,
    rms: Option<f64>,
}

#[derive(Serialize)]
struct StationLine<'a> {
    r#type: &'static str,
    sensor: &'a str,
    latitude: Option<f64>,
    longitude: Option<f64>,
    elevation: Option<f64>,
    unit: &'a str,
    kind: Option<crate::model::SensorKind>,
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Writes every result as JSON lines: stations, triggers, events, QC
/// rows, stats.
pub fn write(results: &Results, w: &mut dyn Write) -> Result<()> {
    for st in &results.stations {
        let line = StationLine {
            r#type: "station",
            sensor: &st.sensor_id,
            latitude: finite(st.latitude),
            longitude: finite(st.longitude),
            elevation: finite(st.elevation),
            unit: &st.unit,
            kind: st.kind,
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
    }
    for t in &results.triggers {
        let line = TriggerLine {
            r#type: "trigger",
            chain: &t.chain,
            sensor: &t.sensor,
            on_time: format_time_us(t.on_time_ns),
            off_time: format_time_us(t.off_time_ns),
            on_index: t.on_index,
            off_index: t.off_index,
            peak_cf: t.peak_cf,
            pick_time: t.pick_time_ns.map(format_time_us),
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
    }
    for e in &results.events {
        let line = EventLine {
            r#type: "event",
            chain: &e.chain,
            time: format_time_us(e.time_ns),
            duration_s: e.duration_s,
            sensors: &e.sensors,
            coincidence_sum: e.coincidence_sum,
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
    }
    // Keys numbered as Cassandra's: a repeated test is not a duplicate key.
    let keys: Vec<(&str, Vec<String>)> = results
        .qc_tests
        .iter()
        .map(|(c, n)| (c.as_str(), qc_flag_keys(n)))
        .collect();
    let empty = Vec::new();
    for q in &results.qc {
        let names = keys
            .iter()
            .find(|(c, _)| *c == q.chain)
            .map(|(_, n)| n)
            .unwrap_or(&empty);
        let line = QcLine {
            r#type: "qc",
            chain: &q.chain,
            sensor: &q.sensor,
            time: format_time_us(q.time_ns),
            index: q.index,
            value: finite(q.value),
            flags: Flags(names, &q.flags),
            aggregate: q.aggregate,
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
    }
    for s in &results.stats {
        let line = StatsLine {
            r#type: "stats",
            chain: &s.chain,
            sensor: &s.sensor,
            window_start: format_time_us(s.window_start_ns),
            window_s: s.window_s,
            count: s.count,
            gaps: s.gaps,
            min: finite(s.min),
            max: finite(s.max),
            mean: finite(s.mean),
            std: finite(s.std),
            rms: finite(s.rms),
        };
        serde_json::to_writer(&mut *w, &line)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes the results to `path` atomically (temp file, fsync, rename).
pub fn write_file(results: &Results, path: &std::path::Path) -> Result<()> {
    crate::fsutil::write_atomic(path, |f| {
        let mut bw = std::io::BufWriter::new(f);
        write(results, &mut bw)?;
        bw.flush()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::QcRec;

    #[test]
    fn a_repeated_qc_test_is_not_a_duplicate_key() {
        let mut r = Results::default();
        r.qc_tests
            .push(("c".into(), vec!["spike".into(), "spike".into()]));
        r.qc.push(QcRec {
            chain: "c".into(),
            sensor: "XX.A..HHZ".into(),
            time_ns: 0,
            index: 0,
            value: 1.0,
            flags: vec![1, 4],
            aggregate: 4,
        });
        let mut out = Vec::new();
        write(&r, &mut out).unwrap();
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["flags"], serde_json::json!({"spike": 1, "spike#2": 4}));
    }
}
