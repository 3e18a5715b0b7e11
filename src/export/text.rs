//! Text outputs: the long CSV that `fakopp batch` reads (`time,sensor,
//! value,unit`, one row per reading), and JSON lines of SensorPackets (the
//! Kafka packet form, at most [`JSONL_PACKET_SAMPLES`] samples each).

use crate::model::{format_time_exact, SensorKind, SensorPacket};
use crate::source::stored::Run;
use anyhow::{Context, Result};
use std::io::Write;

/// Samples per JSON line at most.
pub const JSONL_PACKET_SAMPLES: usize = 1000;

pub struct CsvOut<W: Write> {
    out: W,
    header: bool,
}

impl<W: Write> CsvOut<W> {
    pub fn new(out: W) -> CsvOut<W> {
        CsvOut { out, header: false }
    }

    /// Rows of the readings of `run` (values in Rust's shortest form that
    /// reads back to the same f64); a reading recorded as NaN is an empty
    /// cell, as `fakopp batch` reads it; slots with no reading get no row.
    pub fn write(&mut self, sensor: &str, unit: &str, run: &Run) -> Result<()> {
        if !self.header {
            self.out.write_all(b"time,sensor,value,unit\n")?;
            self.header = true;
        }
        let seg = &run.segment;
        let unit = csv_cell(unit);
        for (i, &v) in seg.samples.iter().enumerate() {
            if !crate::model::is_recorded(v) {
                continue;
            }
            let t = format_time_exact(seg.time_of(i, run.sample_rate_hz));
            if v.is_nan() {
                writeln!(self.out, "{t},{sensor},,{unit}")
            } else {
                writeln!(self.out, "{t},{sensor},{v:?},{unit}")
            }
            .context("writing CSV")?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<W> {
        if !self.header {
            self.out.write_all(b"time,sensor,value,unit\n")?;
        }
        self.out.flush().context("writing CSV")?;
        Ok(self.out)
    }
}

/// A unit as a CSV cell: quoted when it holds a comma, quote or newline.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub struct JsonlOut<W: Write> {
    out: W,
}

impl<W: Write> JsonlOut<W> {
    pub fn new(out: W) -> JsonlOut<W> {
        JsonlOut { out }
    }

    pub fn write(&mut self, sensor: &str, kind: SensorKind, unit: &str, run: &Run) -> Result<()> {
        let seg = &run.segment;
        let mut line = |start_time_ns, sample_rate_hz, samples: &[f64]| -> Result<()> {
            let p = SensorPacket {
                sensor_id: sensor.to_string(),
                kind,
                start_time_ns,
                sample_rate_hz,
                samples: samples.to_vec(),
                unit: unit.to_string(),
                seq: None,
            };
            serde_json::to_writer(&mut self.out, &p)?;
            self.out.write_all(b"\n").context("writing JSON lines")
        };
        if seg.times_ns.is_empty() {
            for a in (0..seg.samples.len()).step_by(JSONL_PACKET_SAMPLES) {
                let b = (a + JSONL_PACKET_SAMPLES).min(seg.samples.len());
                line(
                    seg.time_of(a, run.sample_rate_hz),
                    run.sample_rate_hz,
                    &seg.samples[a..b],
                )?;
            }
        } else {
            for (t, v) in seg.times_ns.iter().zip(&seg.samples) {
                line(*t, 0.0, std::slice::from_ref(v))?;
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<W> {
        self.out.flush().context("writing JSON lines")?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_time_ns;

    #[test]
    fn times_read_back_exactly() {
        for t in [
            0i64,
            1_714_564_800_000_000_000,
            1_714_564_800_250_000_000,
            1_714_564_800_000_001_000,
            1_714_564_800_000_000_007,
            -1_500_000_000,
        ] {
            let s = format_time_exact(t);
            assert_eq!(parse_time_ns(&s).unwrap(), t, "{s}");
        }
        assert_eq!(
            format_time_exact(1_714_564_800_250_000_000),
            "2024-05-01T12:00:00.250Z"
        );
    }

    #[test]
    fn csv_values_read_back_bit_for_bit() {
        let run = Run {
            sample_rate_hz: 1.0,
            segment: crate::model::Segment {
                start_ns: 0,
                samples: vec![0.1 + 0.2, -0.0, 1e-310, 7.12, 123456789.0],
                times_ns: Vec::new(),
            },
        };
        let mut w = CsvOut::new(Vec::new());
        w.write("XX.A..PH", "pH, raw", &run).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let mut r = ::csv::Reader::from_reader(text.as_bytes());
        let vals: Vec<f64> = r
            .records()
            .map(|rec| rec.unwrap()[2].parse().unwrap())
            .collect();
        assert_eq!(
            vals.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            run.segment
                .samples
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        );
        assert!(text.contains("\"pH, raw\""), "{text}");
    }
}
