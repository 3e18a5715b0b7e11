//! QARTOD gross range test (`ioos_qc.qartod.gross_range_test`).

use serde::{Deserialize, Serialize};

use super::{check_span, run_stream, Flag, Pointwise};
use crate::error::{invalid, Result};

/// Parameters of the gross range test (names as in `ioos_qc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrossRangeConfig {
    /// `[min, max]` outside of which a value FAILs (sensor range), in
    /// observation units.
    pub fail_span: [f64; 2],
    /// Optional `[min, max]` outside of which a value is SUSPECT (user
    /// range); must lie within `fail_span`.
    #[serde(default)]
    pub suspect_span: Option<[f64; 2]>,
}

impl GrossRangeConfig {
    /// Checks the spans: finite, `min <= max` (ioos_qc silently sorts a
    /// reversed span; we reject it), and `suspect_span` within `fail_span`
    /// (ioos_qc raises `ValueError` too).
    pub fn validate(&self) -> Result<()> {
        check_span("fail_span", self.fail_span)?;
        if let Some(s) = self.suspect_span {
            check_span("suspect_span", s)?;
            if s[0] < self.fail_span[0] || s[1] > self.fail_span[1] {
                return Err(invalid(
                    "suspect_span",
                    format!("{s:?} must fall within fail_span {:?}", self.fail_span),
                ));
            }
        }
        Ok(())
    }

    #[inline]
    fn flag(&self, x: f64) -> Flag {
        // ioos_qc sets MISSING for masked values first, then the span
        // comparisons run on the raw data: ±inf lands outside the (finite)
        // fail span and FAILs; only NaN stays MISSING.
        if x.is_nan() {
            return Flag::Missing;
        }
        if x < self.fail_span[0] || x > self.fail_span[1] {
            return Flag::Fail;
        }
        if let Some(s) = self.suspect_span {
            if x < s[0] || x > s[1] {
                return Flag::Suspect;
            }
        }
        Flag::Good
    }
}

/// Gross range test over a whole series.
///
/// For each sample `x`:
///
/// * MISSING (9) if `x` is NaN;
/// * FAIL (4) if `x` is ±inf (ioos_qc masks it, but then compares the raw
///   value with the spans);
/// * FAIL (4) if `x < fail_span[0]` or `x > fail_span[1]`;
/// * SUSPECT (3) if a `suspect_span` is given and `x` lies outside it;
/// * GOOD (1) otherwise. Bounds are inclusive (a value equal to a bound
///   passes).
///
/// No warm-up, no edge effects; times are only checked for order.
pub fn gross_range(times_ns: &[i64], values: &[f64], cfg: &GrossRangeConfig) -> Result<Vec<Flag>> {
    run_stream(GrossRangeState::new(cfg)?, times_ns, values)
}

/// Streaming gross range test: every sample is flagged as soon as it is
/// pushed (no latency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrossRangeState {
    cfg: GrossRangeConfig,
    last_t: Option<i64>,
}

impl GrossRangeState {
    /// Validates `cfg` and builds a fresh state.
    pub fn new(cfg: &GrossRangeConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg: cfg.clone(),
            last_t: None,
        })
    }
}

impl Pointwise for GrossRangeState {
    fn last_t(&self) -> Option<i64> {
        self.last_t
    }

    fn set_last_t(&mut self, t: Option<i64>) {
        self.last_t = t;
    }

    fn flagger(&self) -> impl Fn(i64, f64) -> Flag + '_ {
        |_, x| self.cfg.flag(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Flag::*;

    #[test]
    fn ioos_docstring_example() {
        let cfg = GrossRangeConfig {
            fail_span: [0.0, 5.0],
            suspect_span: Some([1.0, 4.0]),
        };
        let v = [1.0, 2.0, 3.0, 4.0, 8.0];
        let t: Vec<i64> = (0..5).collect();
        assert_eq!(
            gross_range(&t, &v, &cfg).unwrap(),
            vec![Good, Good, Good, Good, Fail]
        );
        let v = [1.0, f64::INFINITY, f64::NAN, 30.0, 0.5];
        let t: Vec<i64> = (0..5).collect();
        assert_eq!(
            gross_range(&t, &v, &cfg).unwrap(),
            vec![Good, Fail, Missing, Fail, Suspect]
        );
    }

    #[test]
    fn bad_config() {
        let bad = GrossRangeConfig {
            fail_span: [5.0, 0.0],
            suspect_span: None,
        };
        assert!(GrossRangeState::new(&bad).is_err());
        let bad = GrossRangeConfig {
            fail_span: [0.0, 5.0],
            suspect_span: Some([-1.0, 4.0]),
        };
        assert!(GrossRangeState::new(&bad).is_err());
        let ok = GrossRangeConfig {
            fail_span: [0.0, 5.0],
            suspect_span: None,
        };
        assert!(gross_range(&[], &[], &ok).is_err());
        assert!(gross_range(&[2, 1], &[1.0, 1.0], &ok).is_err());
    }
}
