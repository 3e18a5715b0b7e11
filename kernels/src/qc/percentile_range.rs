//! QARTOD percentile range test (`ioos_qc.qartod.percentile_range_test`).
//!
//! The bounds are percentiles of the whole series, so the test is not
//! causal: the streaming state holds every reading until
//! [`QcStream::finish`] (batch only; a stream config rejects it).

use serde::{Deserialize, Serialize};

use super::{check_chunk, run_stream, Flag, QcStream};
use crate::error::{invalid, Result};

fn five() -> f64 {
    5.0
}
fn ninety_five() -> f64 {
    95.0
}

/// Parameters of the percentile range test (names as in ioos_qc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PercentileRangeConfig {
    /// Lower percentile, 0..=100 (default 5).
    #[serde(default = "five")]
    pub low_percentile: f64,
    /// Upper percentile, 0..=100 (default 95).
    #[serde(default = "ninety_five")]
    pub hi_percentile: f64,
    /// Added outside both bounds, in observation units (default 0).
    #[serde(default)]
    pub pad: f64,
}

impl PercentileRangeConfig {
    /// Percentiles within 0..=100 (numpy raises otherwise), low ≤ hi (a
    /// reversed pair is accepted by ioos_qc and flags nonsense; we refuse
    /// it), finite pad.
    pub fn validate(&self) -> Result<()> {
        for (name, p) in [
            ("low_percentile", self.low_percentile),
            ("hi_percentile", self.hi_percentile),
        ] {
            if !(0.0..=100.0).contains(&p) {
                return Err(invalid(name, format!("{p} must be within 0 ..= 100")));
            }
        }
        if self.low_percentile > self.hi_percentile {
            return Err(invalid(
                "low_percentile",
                format!(
                    "{} is above hi_percentile {}",
                    self.low_percentile, self.hi_percentile
                ),
            ));
        }
        if !self.pad.is_finite() {
            return Err(invalid("pad", format!("{} must be finite", self.pad)));
        }
        Ok(())
    }
}

/// `np.percentile(sorted, p)` with numpy's default `linear` method, to the
/// bit: virtual index `h = (n - 1) · (p / 100)`, `lo = ⌊h⌋` (clipped to
/// the data), `γ = h - lo`, and numpy's `_lerp`: `a + (b - a)·γ`, or
/// `b - (b - a)·(1 - γ)` when `γ ≥ 0.5`. `sorted` must be sorted and
/// non-empty (±inf allowed, as numpy sorts them).
pub fn percentile_linear(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let q = p / 100.0;
    let h = (n - 1) as f64 * q;
    let lo_f = h.floor();
    let last = (n - 1) as f64;
    let (lo, hi) = if lo_f >= last {
        (n - 1, n - 1)
    } else if lo_f < 0.0 {
        (0, 0)
    } else {
        (lo_f as usize, lo_f as usize + 1)
    };
    let g = h - lo_f;
    let (a, b) = (sorted[lo], sorted[hi]);
    let d = b - a;
    if g >= 0.5 {
        b - d * (1.0 - g)
    } else {
        a + d * g
    }
}

/// Percentile range test over a whole series.
///
/// Bounds: `low = percentile(low_percentile) - pad`, `hi =
/// percentile(hi_percentile) + pad` over every non-NaN reading (±inf
/// included, as ioos_qc includes them). Each reading is MISSING (9) if NaN,
/// SUSPECT (3) if `x < low` or `x > hi`, GOOD (1) otherwise. A series with
/// no non-NaN reading is all MISSING (ioos_qc raises there).
pub fn percentile_range(
    times_ns: &[i64],
    values: &[f64],
    cfg: &PercentileRangeConfig,
) -> Result<Vec<Flag>> {
    run_stream(PercentileRangeState::new(cfg)?, times_ns, values)
}

/// The batch-only state: every reading of the series, flagged at finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PercentileRangeState {
    cfg: PercentileRangeConfig,
    #[serde(with = "super::fbits_vec")]
    values: Vec<f64>,
    last_t: Option<i64>,
}

impl PercentileRangeState {
    /// Validates `cfg` and builds a fresh state.
    pub fn new(cfg: &PercentileRangeConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg: cfg.clone(),
            values: Vec::new(),
            last_t: None,
        })
    }
}

impl QcStream for PercentileRangeState {
    fn push(&mut self, times_ns: &[i64], values: &[f64], _out: &mut Vec<Flag>) -> Result<()> {
        check_chunk(times_ns, values, self.last_t)?;
        self.values.extend_from_slice(values);
        if let Some(&t) = times_ns.last() {
            self.last_t = Some(t);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Flag>) {
        let mut sorted: Vec<f64> = self
            .values
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .collect();
        sorted.sort_unstable_by(f64::total_cmp);
        let bounds = (!sorted.is_empty()).then(|| {
            (
                percentile_linear(&sorted, self.cfg.low_percentile) - self.cfg.pad,
                percentile_linear(&sorted, self.cfg.hi_percentile) + self.cfg.pad,
            )
        });
        out.extend(self.values.iter().map(|&x| match bounds {
            _ if x.is_nan() => Flag::Missing,
            Some((lo, hi)) if x < lo || x > hi => Flag::Suspect,
            _ => Flag::Good,
        }));
        self.values.clear();
        self.last_t = None;
    }

    fn pending(&self) -> usize {
        self.values.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Flag::*;

    #[test]
    fn ioos_qc_docstring_example() {
        // percentile_range_test([4.1, 4.0, 4.3, 4.5, 6.1, 6.2]) -> [1, 3, 1, 1, 1, 3]
        let v = [4.1, 4.0, 4.3, 4.5, 6.1, 6.2];
        let t: Vec<i64> = (0..6).collect();
        let cfg = PercentileRangeConfig {
            low_percentile: 5.0,
            hi_percentile: 95.0,
            pad: 0.0,
        };
        assert_eq!(
            percentile_range(&t, &v, &cfg).unwrap(),
            vec![Good, Suspect, Good, Good, Good, Suspect]
        );
        let cfg = PercentileRangeConfig {
            low_percentile: 50.0,
            hi_percentile: 40.0,
            pad: 0.0,
        };
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn all_nan_is_missing() {
        let cfg = PercentileRangeConfig {
            low_percentile: 5.0,
            hi_percentile: 95.0,
            pad: 0.0,
        };
        assert_eq!(
            percentile_range(&[0, 1], &[f64::NAN, f64::NAN], &cfg).unwrap(),
            vec![Missing, Missing]
        );
    }
}
