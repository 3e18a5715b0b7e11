//! QARTOD spike test (`ioos_qc.qartod.spike_test`).

use serde::{Deserialize, Serialize};

use super::{check_chunk, check_threshold, run_stream, Flag, QcStream};
use crate::error::Result;

/// How the spike test measures a spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpikeMethod {
    /// `|x[n] - (x[n-1] + x[n+1]) / 2|`.
    #[default]
    Average,
    /// `min(|x[n] - x[n-1]|, |x[n+1] - x[n]|)` when the two steps have
    /// opposite signs, else 0.
    Differential,
}

/// Parameters of the spike test (names as in `ioos_qc`), in observation
/// units. A threshold that is absent **or zero** is not applied (ioos_qc
/// tests them for truthiness).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeConfig {
    /// Spike size above which a sample is SUSPECT.
    #[serde(default)]
    pub suspect_threshold: Option<f64>,
    /// Spike size above which a sample FAILs.
    #[serde(default)]
    pub fail_threshold: Option<f64>,
    /// `average` (default) or `differential`.
    #[serde(default)]
    pub method: SpikeMethod,
}

impl SpikeConfig {
    /// Thresholds must be finite and >= 0.
    pub fn validate(&self) -> Result<()> {
        if let Some(v) = self.suspect_threshold {
            check_threshold("suspect_threshold", v)?;
        }
        if let Some(v) = self.fail_threshold {
            check_threshold("fail_threshold", v)?;
        }
        Ok(())
    }

    /// Flag of an interior sample `x` with neighbours `a` (before) and `b`
    /// (after).
    #[inline]
    fn interior(&self, a: f64, x: f64, b: f64) -> Flag {
        if !x.is_finite() {
            return Flag::Missing;
        }
        if !a.is_finite() || !b.is_finite() {
            return Flag::Unknown;
        }
        let diff = match self.method {
            SpikeMethod::Average => {
                let s = a + b;
                // np.ma's domain-safe division by 2 masks |s| * tiny >= 2,
                // and masked_invalid(ref) masks a non-finite reference.
                if s.abs() * f64::MIN_POSITIVE >= 2.0 {
                    return Flag::Unknown;
                }
                let r = s / 2.0;
                if !r.is_finite() {
                    return Flag::Unknown;
                }
                (x - r).abs()
            }
            SpikeMethod::Differential => {
                let r1 = x - a;
                let r2 = b - x;
                let mut d = r1.abs().min(r2.abs());
                if r1 * r2 >= 0.0 {
                    d = 0.0;
                }
                if !d.is_finite() {
                    return Flag::Unknown;
                }
                d
            }
        };
        let mut f = Flag::Good;
        if let Some(s) = self.suspect_threshold.filter(|&s| s != 0.0) {
            if diff > s {
                f = Flag::Suspect;
            }
        }
        if let Some(t) = self.fail_threshold.filter(|&t| t != 0.0) {
            if diff > t {
                f = Flag::Fail;
            }
        }
        f
    }
}

#[inline]
fn edge(x: f64) -> Flag {
    if x.is_finite() {
        Flag::Unknown
    } else {
        Flag::Missing
    }
}

/// Spike test over a whole series.
///
/// For an interior sample `x[n]` (neighbours `x[n-1]`, `x[n+1]`):
///
/// * `average`: `d = |x[n] - (x[n-1] + x[n+1]) / 2|`;
/// * `differential`: `d = min(|x[n]-x[n-1]|, |x[n+1]-x[n]|)`, set to 0 when
///   `(x[n]-x[n-1]) * (x[n+1]-x[n]) >= 0` (not a reversal).
///
/// Flag: SUSPECT if `d > suspect_threshold`, FAIL if `d > fail_threshold`
/// (strict; FAIL wins), else GOOD. Edges and missing data, as ioos_qc:
///
/// * the first and last samples are UNKNOWN (2) — MISSING (9) if missing;
/// * a missing sample (NaN/±inf) is MISSING;
/// * a sample with a missing neighbour is UNKNOWN, as is one whose
///   reference or difference is not finite (overflow); for `average` also
///   when `|x[n-1] + x[n+1]| * f64::MIN_POSITIVE >= 2` (numpy.ma's
///   domain-safe division masks it).
///
/// Times are only checked for order.
pub fn spike(times_ns: &[i64], values: &[f64], cfg: &SpikeConfig) -> Result<Vec<Flag>> {
    run_stream(SpikeState::new(cfg)?, times_ns, values)
}

/// Streaming spike test.
///
/// **Latency: one sample.** The flag of sample `n` is emitted when sample
/// `n + 1` is pushed; [`QcStream::finish`] emits the last sample's flag
/// (UNKNOWN, or MISSING), as the one-shot test treats the series end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeState {
    cfg: SpikeConfig,
    /// `x[n-1]` once at least two samples were seen (`f64::to_bits`, so
    /// that NaN/inf survive any serde format, JSON included).
    prev: Option<u64>,
    /// `x[n]`, the sample waiting for its right neighbour (bits).
    cur: Option<u64>,
    last_t: Option<i64>,
}

impl SpikeState {
    /// Validates `cfg` and builds a fresh state.
    pub fn new(cfg: &SpikeConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg: cfg.clone(),
            prev: None,
            cur: None,
            last_t: None,
        })
    }
}

impl QcStream for SpikeState {
    fn push(&mut self, times_ns: &[i64], values: &[f64], out: &mut Vec<Flag>) -> Result<()> {
        check_chunk(times_ns, values, self.last_t)?;
        for &x in values {
            match (self.prev.map(f64::from_bits), self.cur.map(f64::from_bits)) {
                (_, None) => {}
                (None, Some(c)) => out.push(edge(c)),
                (Some(p), Some(c)) => out.push(self.cfg.interior(p, c, x)),
            }
            self.prev = self.cur;
            self.cur = Some(x.to_bits());
        }
        if let Some(&t) = times_ns.last() {
            self.last_t = Some(t);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Flag>) {
        if let Some(c) = self.cur {
            out.push(edge(f64::from_bits(c)));
        }
        self.prev = None;
        self.cur = None;
        self.last_t = None;
    }

    fn pending(&self) -> usize {
        usize::from(self.cur.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Flag::*;
    const NAN: f64 = f64::NAN;
    const INF: f64 = f64::INFINITY;

    fn run(v: &[f64], s: Option<f64>, f: Option<f64>, m: SpikeMethod) -> Vec<Flag> {
        let t: Vec<i64> = (0..v.len() as i64).collect();
        spike(
            &t,
            v,
            &SpikeConfig {
                suspect_threshold: s,
                fail_threshold: f,
                method: m,
            },
        )
        .unwrap()
    }

    #[test]
    fn matches_ioos_probes() {
        // Expected flags printed by ioos_qc 3.0.0 for these inputs.
        let v = [
            1.0, 2.0, NAN, 3.0, 2.0, 1.0, 5.0, 1.0, 1.0, 8.0, NAN, 9.0, 1.0,
        ];
        let e = [2, 2, 9, 2, 1, 3, 4, 1, 1, 2, 9, 2, 2];
        let got: Vec<u8> = run(&v, Some(0.5), Some(2.0), SpikeMethod::Differential)
            .into_iter()
            .map(u8::from)
            .collect();
        assert_eq!(got, e);
        let v = [
            1.0, 2.0, INF, 3.0, 2.0, 1.0, 5.0, -INF, 1.0, 8.0, 1e308, -1e308, 1e308, 2.0,
        ];
        let e = [2, 2, 9, 2, 1, 3, 2, 9, 2, 1, 4, 2, 4, 2];
        let got: Vec<u8> = run(&v, Some(0.5), Some(2.0), SpikeMethod::Differential)
            .into_iter()
            .map(u8::from)
            .collect();
        assert_eq!(got, e);
        let e = [2, 2, 9, 2, 1, 4, 2, 9, 2, 2, 2, 2, 2, 2];
        let got: Vec<u8> = run(&v, Some(0.5), Some(2.0), SpikeMethod::Average)
            .into_iter()
            .map(u8::from)
            .collect();
        assert_eq!(got, e);
        assert_eq!(
            run(&[3.0], Some(0.5), Some(2.0), SpikeMethod::Average),
            vec![Unknown]
        );
        assert_eq!(
            run(&[NAN], Some(0.5), Some(2.0), SpikeMethod::Average),
            vec![Missing]
        );
        assert_eq!(
            run(
                &[1.0, 5.0, 1.0, 5.0],
                Some(0.0),
                Some(2.0),
                SpikeMethod::Average
            ),
            vec![Unknown, Fail, Fail, Unknown]
        );
    }

    #[test]
    fn negative_threshold_rejected() {
        let cfg = SpikeConfig {
            suspect_threshold: Some(-1.0),
            fail_threshold: None,
            method: SpikeMethod::Average,
        };
        assert!(SpikeState::new(&cfg).is_err());
    }
}
