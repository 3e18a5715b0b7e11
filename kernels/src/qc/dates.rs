//! QARTOD tests on the timestamps alone: `ioos_qc.qartod.impossible_date_test`
//! and `ioos_qc.qartod.data_reception_test`.
//!
//! Both compare each observation's time with "now". ioos_qc takes
//! `np.datetime64("now")`, the wall clock in whole seconds, once per call;
//! the streaming states here read the wall clock (truncated to the second
//! the same way) once per pushed chunk, so in a stream "now" is the time
//! the observation is flagged, which is what a data-reception check is for.
//! `data_reception` pins it with `from_time_ns` (reproducible batch runs);
//! tests pin both with [`ImpossibleDateState::with_now`] and the one-shot
//! functions' `now_ns`. Values are ignored: a NaN reading still has a time, and
//! FåKopp never has a missing timestamp (ioos_qc's NaT → MISSING).

use serde::{Deserialize, Serialize};

use super::{run_stream, Flag, Pointwise};
use crate::error::{invalid, Result};

const NS_PER_S: i64 = 1_000_000_000;

/// The wall clock as `np.datetime64("now")` gives it: whole seconds, in ns.
fn now_ns() -> i64 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(s).unwrap_or(i64::MAX / NS_PER_S) * NS_PER_S
}

/// Parameters of the impossible date test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpossibleDateConfig {
    /// Optional `[earliest, latest]` (UTC epoch ns, inclusive) outside of
    /// which a time FAILs (ioos_qc's `fail_span`).
    #[serde(default)]
    pub fail_span_ns: Option<[i64; 2]>,
}

impl ImpossibleDateConfig {
    /// `fail_span_ns` must have `earliest <= latest`.
    pub fn validate(&self) -> Result<()> {
        match self.fail_span_ns {
            Some([a, b]) if a > b => Err(invalid(
                "fail_span",
                format!("earliest {a} ns is after latest {b} ns"),
            )),
            _ => Ok(()),
        }
    }
}

/// Impossible date test over a whole series, with "now" = `now_ns`.
///
/// FAIL (4) if `t > now` (a reading from the future), or if a `fail_span`
/// is given and `t < fail_span[0]` or `t > fail_span[1]`; GOOD (1)
/// otherwise. No latency, no warm-up.
pub fn impossible_date(
    times_ns: &[i64],
    values: &[f64],
    cfg: &ImpossibleDateConfig,
    now_ns: i64,
) -> Result<Vec<Flag>> {
    run_stream(
        ImpossibleDateState::new(cfg)?.with_now(now_ns),
        times_ns,
        values,
    )
}

/// Streaming impossible date test (no latency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpossibleDateState {
    cfg: ImpossibleDateConfig,
    /// A fixed "now"; `None` reads the wall clock at every push.
    fixed_now_ns: Option<i64>,
    last_t: Option<i64>,
}

impl ImpossibleDateState {
    /// Validates `cfg` and builds a fresh state reading the wall clock.
    pub fn new(cfg: &ImpossibleDateConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg: cfg.clone(),
            fixed_now_ns: None,
            last_t: None,
        })
    }

    /// Pins "now" (reproducible runs and tests).
    pub fn with_now(mut self, now_ns: i64) -> Self {
        self.fixed_now_ns = Some(now_ns);
        self
    }
}

impl Pointwise for ImpossibleDateState {
    fn last_t(&self) -> Option<i64> {
        self.last_t
    }

    fn set_last_t(&mut self, t: Option<i64>) {
        self.last_t = t;
    }

    fn flagger(&self) -> impl Fn(i64, f64) -> Flag + '_ {
        let now = self.fixed_now_ns.unwrap_or_else(now_ns);
        let span = self.cfg.fail_span_ns;
        move |t, _| {
            let outside = span.is_some_and(|[a, b]| t < a || t > b);
            if t > now || outside {
                Flag::Fail
            } else {
                Flag::Good
            }
        }
    }
}

fn six_hours() -> f64 {
    6.0 * 3600.0
}

/// Parameters of the data reception test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataReceptionConfig {
    /// Oldest acceptable age of a reading, in **seconds** (ioos_qc's
    /// `fail_span` is in hours, default 6: `fail_span_s = 3600 * fail_span`).
    /// Truncated to whole seconds, as ioos_qc does.
    #[serde(default = "six_hours")]
    pub fail_span_s: f64,
    /// The time ages are measured from (UTC epoch ns); the wall clock when
    /// absent (ioos_qc's `from_time`).
    #[serde(default)]
    pub from_time_ns: Option<i64>,
}

impl Default for DataReceptionConfig {
    fn default() -> Self {
        DataReceptionConfig {
            fail_span_s: six_hours(),
            from_time_ns: None,
        }
    }
}

impl DataReceptionConfig {
    /// `fail_span_s` must be finite (ioos_qc allows a negative span: then
    /// every reading older than `from_time` minus it fails).
    pub fn validate(&self) -> Result<()> {
        if !self.fail_span_s.is_finite() || self.fail_span_s.abs() > 9.2e9 {
            return Err(invalid(
                "fail_span_s",
                format!(
                    "{} must be a finite number of seconds within ±9.2e9 (292 years)",
                    self.fail_span_s
                ),
            ));
        }
        Ok(())
    }

    fn span_ns(&self) -> i64 {
        (self.fail_span_s.trunc() as i64).saturating_mul(NS_PER_S)
    }
}

/// Data reception test over a whole series, with the wall clock `now_ns`
/// standing in for an absent `from_time_ns`.
///
/// FAIL (4) if `from_time - t > trunc(fail_span_s)` seconds (strict), GOOD
/// (1) otherwise (a reading newer than `from_time` passes).
pub fn data_reception(
    times_ns: &[i64],
    values: &[f64],
    cfg: &DataReceptionConfig,
    now_ns: i64,
) -> Result<Vec<Flag>> {
    let mut st = DataReceptionState::new(cfg)?;
    st.fixed_now_ns = Some(now_ns);
    run_stream(st, times_ns, values)
}

/// Streaming data reception test (no latency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataReceptionState {
    span_ns: i64,
    from_time_ns: Option<i64>,
    fixed_now_ns: Option<i64>,
    last_t: Option<i64>,
}

impl DataReceptionState {
    /// Validates `cfg` and builds a fresh state.
    pub fn new(cfg: &DataReceptionConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            span_ns: cfg.span_ns(),
            from_time_ns: cfg.from_time_ns,
            fixed_now_ns: None,
            last_t: None,
        })
    }
}

impl Pointwise for DataReceptionState {
    fn last_t(&self) -> Option<i64> {
        self.last_t
    }

    fn set_last_t(&mut self, t: Option<i64>) {
        self.last_t = t;
    }

    fn flagger(&self) -> impl Fn(i64, f64) -> Flag + '_ {
        let from = self
            .from_time_ns
            .or(self.fixed_now_ns)
            .unwrap_or_else(now_ns);
        move |t, _| {
            if (from as i128 - t as i128) > self.span_ns as i128 {
                Flag::Fail
            } else {
                Flag::Good
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::QcStream;
    use super::*;
    use Flag::*;
    const H: i64 = 3_600 * NS_PER_S;

    #[test]
    fn future_and_span() {
        let t = [0, H, 2 * H, 3 * H];
        let v = [1.0; 4];
        let cfg = ImpossibleDateConfig { fail_span_ns: None };
        assert_eq!(
            impossible_date(&t, &v, &cfg, 2 * H).unwrap(),
            vec![Good, Good, Good, Fail]
        );
        let cfg = ImpossibleDateConfig {
            fail_span_ns: Some([H, 2 * H]),
        };
        assert_eq!(
            impossible_date(&t, &v, &cfg, 10 * H).unwrap(),
            vec![Fail, Good, Good, Fail]
        );
        assert!(ImpossibleDateState::new(&ImpossibleDateConfig {
            fail_span_ns: Some([2, 1])
        })
        .is_err());
        // The wall clock: nothing from 1970 is in the future.
        let mut st =
            ImpossibleDateState::new(&ImpossibleDateConfig { fail_span_ns: None }).unwrap();
        let mut out = Vec::new();
        st.push(&[0, i64::MAX], &[1.0, 1.0], &mut out).unwrap();
        assert_eq!(out, vec![Good, Fail]);
    }

    #[test]
    fn reception_age() {
        let t = [0, H, 2 * H, 3 * H];
        let v = [f64::NAN; 4];
        let cfg = DataReceptionConfig {
            fail_span_s: 3600.9,
            from_time_ns: Some(2 * H),
        };
        // 2 h and 1 h old (1 h is not > 3600 s), then newer than from_time.
        assert_eq!(
            data_reception(&t, &v, &cfg, 0).unwrap(),
            vec![Fail, Good, Good, Good]
        );
        let cfg = DataReceptionConfig::default();
        assert_eq!(
            data_reception(&t, &v, &cfg, 9 * H).unwrap(),
            vec![Fail, Fail, Fail, Good]
        );
    }
}
