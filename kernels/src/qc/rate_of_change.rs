//! QARTOD rate of change test (`ioos_qc.qartod.rate_of_change_test`).

use serde::{Deserialize, Serialize};

use super::{check_chunk, check_threshold, run_stream, Flag, QcStream};
use crate::error::Result;

/// Parameters of the rate of change test, in observation units per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateOfChangeConfig {
    /// Rate above which a sample is SUSPECT.
    pub threshold: f64,
    /// Optional rate above which a sample FAILs (ioos_qc 3.0 has it).
    #[serde(default)]
    pub fail_threshold: Option<f64>,
}

impl RateOfChangeConfig {
    /// Thresholds must be finite and >= 0.
    pub fn validate(&self) -> Result<()> {
        check_threshold("threshold", self.threshold)?;
        if let Some(v) = self.fail_threshold {
            check_threshold("fail_threshold", v)?;
        }
        Ok(())
    }
}

/// Rate of change test over a whole series.
///
/// For `n >= 1`: `roc[n] = |x[n] - x[n-1]| / dt`, with `dt` the time step
/// **truncated to whole seconds** (`np.diff(t).astype("timedelta64[s]")`);
/// `roc[0] = 0`. Flag: SUSPECT if `roc > threshold`, FAIL if
/// `roc > fail_threshold` (strict), else GOOD; MISSING (9) if `x[n]` is
/// NaN/±inf. Edge semantics reproduced from ioos_qc / numpy.ma:
///
/// * the first sample is GOOD (or MISSING): there is no warm-up flag;
/// * a sample after a NaN is GOOD (`NaN > threshold` is false); a sample
///   after ±inf is compared with an infinite rate;
/// * when `dt` is 0 s (duplicate or sub-second timestamps), or
///   `|dx| * f64::MIN_POSITIVE >= dt`, numpy.ma's domain-safe division
///   yields `|dx|` itself as the rate (no division).
pub fn rate_of_change(
    times_ns: &[i64],
    values: &[f64],
    cfg: &RateOfChangeConfig,
) -> Result<Vec<Flag>> {
    run_stream(RateOfChangeState::new(cfg)?, times_ns, values)
}

/// Streaming rate of change test: causal, every sample is flagged as soon
/// as it is pushed (no latency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateOfChangeState {
    cfg: RateOfChangeConfig,
    /// Previous sample (time ns, value as `f64::to_bits` so that NaN/inf
    /// survive any serde format).
    prev: Option<(i64, u64)>,
}

impl RateOfChangeState {
    /// Validates `cfg` and builds a fresh state.
    pub fn new(cfg: &RateOfChangeConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg: cfg.clone(),
            prev: None,
        })
    }

    #[inline]
    fn flag(&self, t: i64, x: f64) -> Flag {
        let roc = match self.prev {
            None => 0.0,
            Some((tp, xp)) => {
                let xp = f64::from_bits(xp);
                let dt = (t - tp).div_euclid(1_000_000_000) as f64;
                let dx = x - xp;
                if dx.abs() * f64::MIN_POSITIVE >= dt.abs() {
                    dx.abs()
                } else {
                    (dx / dt).abs()
                }
            }
        };
        let mut f = Flag::Good;
        if roc > self.cfg.threshold {
            f = Flag::Suspect;
        }
        if let Some(ft) = self.cfg.fail_threshold {
            if roc > ft {
                f = Flag::Fail;
            }
        }
        if !x.is_finite() {
            f = Flag::Missing;
        }
        f
    }
}

impl QcStream for RateOfChangeState {
    fn push(&mut self, times_ns: &[i64], values: &[f64], out: &mut Vec<Flag>) -> Result<()> {
        check_chunk(times_ns, values, self.prev.map(|p| p.0))?;
        for (&t, &x) in times_ns.iter().zip(values) {
            out.push(self.flag(t, x));
            self.prev = Some((t, x.to_bits()));
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Flag>) {
        self.prev = None;
    }

    fn pending(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const NAN: f64 = f64::NAN;
    const INF: f64 = f64::INFINITY;

    fn run(t_s: &[f64], v: &[f64], thr: f64, fail: Option<f64>) -> Vec<u8> {
        let t: Vec<i64> = t_s.iter().map(|s| (s * 1e9) as i64).collect();
        rate_of_change(
            &t,
            v,
            &RateOfChangeConfig {
                threshold: thr,
                fail_threshold: fail,
            },
        )
        .unwrap()
        .into_iter()
        .map(u8::from)
        .collect()
    }

    #[test]
    fn matches_ioos_probes() {
        // Expected flags printed by ioos_qc 3.0.0 for these inputs.
        let t = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            run(&t[..6], &[1.0, 5.0, NAN, 9.0, 2.0, 2.5], 1.0, None),
            [1, 3, 9, 1, 3, 1]
        );
        assert_eq!(
            run(&t, &[1.0, 5.0, INF, 9.0, -INF, 2.5, 3.0], 1.0, None),
            [1, 3, 9, 3, 9, 3, 1]
        );
        let t = [0.0, 0.5, 0.9, 1.2, 1.3, 2.0, 2.0];
        let v = [1.0, 5.0, 3.0, 3.1, 9.0, 2.5, 8.0];
        assert_eq!(run(&t, &v, 1.0, None), [1, 3, 3, 1, 3, 3, 3]);
        assert_eq!(run(&t, &v, 1.0, Some(3.0)), [1, 4, 3, 1, 4, 4, 4]);
        assert_eq!(
            run(&t[..5], &[1.0, NAN, 3.0, NAN, 9.0], 1.0, None),
            [1, 9, 1, 9, 1]
        );
    }
}
