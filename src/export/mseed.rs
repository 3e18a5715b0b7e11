//! MiniSEED output through libmseed (the `mseed` crate): Steim-2 for
//! integer series whose differences Steim-2 can hold, 32-bit integers for
//! other integer series within range, float64 otherwise, so every sample
//! is written exactly.

use super::Format;
use crate::source::stored::Run;
use anyhow::{anyhow, bail, Context, Result};
use mseed::{MSControlFlags, MSDataEncoding, PackInfo};
use std::io::Write;

/// Largest difference Steim-2 encodes (30-bit two's complement).
const STEIM2_MAX_DIFF: i64 = (1 << 29) - 1;

pub struct MseedOut<W: Write> {
    out: W,
    version: u8,
    record_length: i32,
    warned_precision: bool,
}

/// The FDSN source identifier of `NET.STA.LOC.CHA`: a SEED channel code
/// of three characters becomes band, source and subsource.
fn source_id(sensor: &str) -> Result<String> {
    let p: Vec<&str> = sensor.split('.').collect();
    let [net, sta, loc, cha] = p[..] else {
        bail!("sensor {sensor}: not NET.STA.LOC.CHA");
    };
    let c: Vec<char> = cha.chars().collect();
    if c.len() != 3 {
        bail!(
            "sensor {sensor}: channel `{cha}` is not a 3-character SEED channel code, which MiniSEED needs; export it with --format csv or jsonl"
        );
    }
    Ok(format!("FDSN:{net}_{sta}_{loc}_{}_{}_{}", c[0], c[1], c[2]))
}

/// The samples as i32 if every one is an integer in range (−0.0 is not:
/// it would come back as +0).
fn as_i32(x: &[f64]) -> Option<Vec<i32>> {
    x.iter()
        .map(|&v| {
            (v.fract() == 0.0
                && v >= f64::from(i32::MIN)
                && v <= f64::from(i32::MAX)
                && !(v == 0.0 && v.is_sign_negative()))
            .then_some(v as i32)
        })
        .collect()
}

/// Checks that `sensor` can be written as MiniSEED (before any data is read).
pub fn check_sensor(sensor: &str) -> Result<()> {
    source_id(sensor).map(|_| ())
}

fn steim2_fits(x: &[i32]) -> bool {
    x.windows(2)
        .all(|w| (i64::from(w[1]) - i64::from(w[0])).abs() <= STEIM2_MAX_DIFF)
}

impl<W: Write> MseedOut<W> {
    pub fn new(out: W, format: Format) -> MseedOut<W> {
        let (version, record_length) = match format {
            Format::Mseed {
                version,
                record_length,
            } => (version, record_length),
            _ => (2, 4096),
        };
        MseedOut {
            out,
            version,
            record_length,
            warned_precision: false,
        }
    }

    pub fn write(&mut self, sensor: &str, run: &Run) -> Result<()> {
        if run.sample_rate_hz == 0.0 {
            bail!(
                "sensor {sensor}: irregular readings (no sample rate) cannot be written as MiniSEED; export them with --format csv or jsonl"
            );
        }
        let seg = &run.segment;
        if seg.samples.is_empty() {
            return Ok(());
        }
        let mut info = PackInfo::with_sample_rate(source_id(sensor)?, run.sample_rate_hz)
            .map_err(|e| anyhow!("sensor {sensor}: {e}"))?;
        info.format_version = self.version;
        info.rec_len = self.record_length;
        let start = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(seg.start_ns))
            .map_err(|e| anyhow!("sensor {sensor}: start time {}: {e}", seg.start_ns))?;
        let mut flags = MSControlFlags::MSF_FLUSHDATA;
        if self.version == 2 {
            flags |= MSControlFlags::MSF_PACKVER2;
            if seg.start_ns % 1_000 != 0 && !self.warned_precision {
                self.warned_precision = true;
                tracing::warn!(
                    sensor,
                    start_ns = seg.start_ns,
                    "MiniSEED 2 keeps start times to the microsecond: nanoseconds are cut (--mseed-version 3 keeps them)"
                );
            }
        }
        let mut failed: Option<std::io::Error> = None;
        let out = &mut self.out;
        let handler = |rec: &[u8]| {
            if failed.is_none() {
                if let Err(e) = out.write_all(rec) {
                    failed = Some(e);
                }
            }
        };
        let packed = match as_i32(&seg.samples) {
            Some(mut ints) => {
                info.encoding = if steim2_fits(&ints) {
                    MSDataEncoding::Steim2
                } else {
                    MSDataEncoding::Integer32
                };
                mseed::pack_raw(&mut ints, &start, handler, &info, flags)
            }
            None => {
                info.encoding = MSDataEncoding::Float64;
                let mut x = seg.samples.clone();
                mseed::pack_raw(&mut x, &start, handler, &info, flags)
            }
        };
        // A failed write is the cause of whatever libmseed says after it.
        if let Some(e) = failed {
            return Err(e).context("writing MiniSEED records");
        }
        packed.map_err(|e| {
            anyhow!(
                "sensor {sensor}: libmseed could not pack the segment starting {}: {e}",
                crate::model::format_time_us(seg.start_ns)
            )
        })?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<W> {
        self.out.flush().context("writing MiniSEED records")?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_split_seed_channels() {
        assert_eq!(source_id("GB.CWF..HHZ").unwrap(), "FDSN:GB_CWF__H_H_Z");
        assert_eq!(source_id("BW.UH1.00.SHZ").unwrap(), "FDSN:BW_UH1_00_S_H_Z");
        let e = source_id("GS.PB01A..TEMP").unwrap_err().to_string();
        assert!(e.contains("TEMP") && e.contains("csv"), "{e}");
    }

    #[test]
    fn integers_only_when_exact() {
        assert_eq!(as_i32(&[1.0, -3.0]), Some(vec![1, -3]));
        assert_eq!(as_i32(&[1.0, 0.5]), None);
        assert_eq!(as_i32(&[3e9]), None);
        assert_eq!(as_i32(&[1.0, -0.0]), None, "-0.0 goes as float64");
        assert!(steim2_fits(&[0, (1 << 29) - 1]));
        assert!(!steim2_fits(&[0, 1 << 29]));
    }
}
