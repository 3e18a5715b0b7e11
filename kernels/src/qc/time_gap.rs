//! QARTOD time gap test (`ioos_qc.qartod.time_gap_test`).

use serde::{Deserialize, Serialize};

use super::{check_chunk, check_threshold, run_stream, Flag, QcStream};
use crate::error::Result;

/// Parameters of the time gap test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeGapConfig {
    /// Largest allowed step between consecutive timestamps, in **seconds**
    /// (ioos_qc's `fail_span` is in hours: `fail_span_s = 3600 * fail_span`).
    /// Truncated to whole seconds, as ioos_qc does.
    pub fail_span_s: f64,
}

impl TimeGapConfig {
    /// `fail_span_s` must be finite and >= 0.
    pub fn validate(&self) -> Result<()> {
        check_threshold("fail_span_s", self.fail_span_s)
    }

    fn span_ns(&self) -> i64 {
        (self.fail_span_s.trunc() as i64).saturating_mul(1_000_000_000)
    }
}

/// Time gap test over a whole series. Values are ignored (a NaN reading is
/// still a timestamp).
///
/// For `n >= 1`: FAIL (4) if `t[n] - t[n-1] > trunc(fail_span_s)` seconds
/// (strict), else GOOD. The first sample takes the flag of the second.
/// A single-sample series gives UNKNOWN (ioos_qc raises `IndexError` there;
/// we do not treat one reading as bad input).
pub fn time_gap(times_ns: &[i64], values: &[f64], cfg: &TimeGapConfig) -> Result<Vec<Flag>> {
    run_stream(TimeGapState::new(cfg)?, times_ns, values)
}

/// Streaming time gap test.
///
/// **Latency:** none, except the first sample of a series, whose flag is
/// emitted with the second's (it copies it); `finish` on a one-sample
/// series emits UNKNOWN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeGapState {
    span_ns: i64,
    last_t: Option<i64>,
    /// True while the first sample waits for the second.
    first_pending: bool,
}

impl TimeGapState {
    /// Validates `cfg` and builds a fresh state.
    pub fn new(cfg: &TimeGapConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            span_ns: cfg.span_ns(),
            last_t: None,
            first_pending: false,
        })
    }
}

impl QcStream for TimeGapState {
    fn push(&mut self, times_ns: &[i64], values: &[f64], out: &mut Vec<Flag>) -> Result<()> {
        check_chunk(times_ns, values, self.last_t)?;
        for &t in times_ns {
            match self.last_t {
                None => self.first_pending = true,
                Some(p) => {
                    let f = if t - p > self.span_ns {
                        Flag::Fail
                    } else {
                        Flag::Good
                    };
                    if self.first_pending {
                        out.push(f);
                        self.first_pending = false;
                    }
                    out.push(f);
                }
            }
            self.last_t = Some(t);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Flag>) {
        if self.first_pending {
            out.push(Flag::Unknown);
        }
        self.first_pending = false;
        self.last_t = None;
    }

    fn pending(&self) -> usize {
        usize::from(self.first_pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Flag::*;
    const H: i64 = 3_600_000_000_000;

    #[test]
    fn first_inherits_second() {
        let cfg = TimeGapConfig {
            fail_span_s: 7200.0,
        };
        let t = [0, 3 * H, 4 * H, 6 * H, 9 * H];
        let v = [f64::NAN; 5];
        assert_eq!(
            time_gap(&t, &v, &cfg).unwrap(),
            vec![Fail, Fail, Good, Good, Fail]
        );
        assert_eq!(time_gap(&[0], &[1.0], &cfg).unwrap(), vec![Unknown]);
        assert!(TimeGapState::new(&TimeGapConfig { fail_span_s: -1.0 }).is_err());
    }
}
