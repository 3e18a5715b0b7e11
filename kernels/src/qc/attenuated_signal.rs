//! QARTOD attenuated signal test (`ioos_qc.qartod.attenuated_signal_test`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{check_chunk, check_threshold, median_interval_s, run_stream, Flag, QcStream};
use crate::error::{invalid, KernelError, Result};

/// Statistic of the attenuated signal test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// Population standard deviation (ddof = 0).
    #[default]
    Std,
    /// Range `max - min` (`np.ptp`).
    Range,
}

/// Parameters of the attenuated signal test (names as ioos_qc, times in
/// seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttenuatedSignalConfig {
    /// A statistic below this is SUSPECT (observation units).
    pub suspect_threshold: f64,
    /// A statistic below this FAILs (observation units).
    pub fail_threshold: f64,
    /// Rolling window length in seconds (`test_period`). Absent or 0: one
    /// statistic over the whole series (batch only).
    #[serde(default)]
    pub test_period_s: Option<f64>,
    /// Minimum number of finite observations in a window (`min_obs`).
    #[serde(default)]
    pub min_obs: Option<u64>,
    /// Minimum seconds of observations in a window (`min_period`),
    /// converted to a count with the sampling interval; ignored when
    /// `min_obs` is set.
    #[serde(default)]
    pub min_period_s: Option<f64>,
    /// `std` (default) or `range`.
    #[serde(default)]
    pub check_type: CheckType,
}

impl AttenuatedSignalConfig {
    /// Thresholds finite and >= 0; times finite and >= 0.
    pub fn validate(&self) -> Result<()> {
        check_threshold("suspect_threshold", self.suspect_threshold)?;
        check_threshold("fail_threshold", self.fail_threshold)?;
        if let Some(p) = self.test_period_s {
            check_threshold("test_period_s", p)?;
        }
        if let Some(p) = self.min_period_s {
            check_threshold("min_period_s", p)?;
        }
        Ok(())
    }

    /// True when the test uses a rolling window (ioos_qc: `if test_period:`).
    pub fn is_windowed(&self) -> bool {
        self.test_period_s.is_some_and(|p| p != 0.0)
    }

    /// pandas' `min_periods` for the window.
    fn min_periods(&self, interval_ns: Option<i64>) -> Result<u64> {
        if let Some(n) = self.min_obs {
            return Ok(n);
        }
        let Some(mp) = self.min_period_s else {
            return Ok(0);
        };
        let Some(ns) = interval_ns else {
            return Err(invalid(
                "sample_interval_ns",
                "min_period_s needs the sampling interval",
            ));
        };
        let secs = ns.div_euclid(1_000_000_000);
        if secs <= 0 {
            return Err(invalid(
                "sample_interval_ns",
                format!("{ns} ns is below one second: ioos_qc cannot convert min_period (pandas raises)"),
            ));
        }
        Ok((mp / secs as f64).trunc() as u64)
    }

    #[inline]
    fn flag(&self, check: f64, x: f64) -> Flag {
        let mut f = Flag::Unknown;
        if check >= self.suspect_threshold {
            f = Flag::Good;
        }
        if check < self.suspect_threshold {
            f = Flag::Suspect;
        }
        if check.is_nan() {
            f = Flag::Unknown;
        }
        if check < self.fail_threshold {
            f = Flag::Fail;
        }
        if !x.is_finite() {
            f = Flag::Missing;
        }
        f
    }
}

/// numpy's pairwise summation (`np.add.reduce` on a contiguous float64
/// array), so that whole-series statistics match `np.ma` bit for bit.
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut r = 0.0;
        for &x in a {
            r += x;
        }
        r
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// Attenuated signal test over a whole series.
///
/// The statistic `c` is the population standard deviation (ddof = 0) or the
/// range (`max - min`) of the values:
///
/// * windowed (`test_period_s` > 0): over the pandas time window
///   `(t[n] - test_period_s, t[n]]` ending at each sample, exactly as
///   `Series.rolling("<P>s", min_periods).std(ddof=0)` /
///   `.apply(np.ptp, raw=True)`: std ignores missing values and reproduces
///   pandas 3's online Welford/Kahan update bit for bit (including its
///   recompute of the window on catastrophic cancellation, and its restart
///   when a window shares no sample with the previous one); range is NaN
///   when the window holds any missing value;
///   both are NaN with fewer than `max(min_periods, 1)` finite values.
///   `min_periods` is `min_obs`, else `trunc(min_period_s / interval_s)`
///   with the median interval in whole seconds, else 1.
/// * whole series (no period): `np.ma.std` / `np.ma.ptp` over the finite
///   values, one statistic for every sample.
///
/// Flag: GOOD if `c >= suspect_threshold`, SUSPECT if below, UNKNOWN if `c`
/// is NaN, FAIL if `c < fail_threshold` (wins); MISSING for a missing
/// sample.
pub fn attenuated_signal(
    times_ns: &[i64],
    values: &[f64],
    cfg: &AttenuatedSignalConfig,
) -> Result<Vec<Flag>> {
    cfg.validate()?;
    if !cfg.is_windowed() {
        return whole_series(times_ns, values, cfg);
    }
    let interval = if cfg.min_obs.is_none() && cfg.min_period_s.is_some() {
        let s = median_interval_s(times_ns).ok_or_else(|| KernelError::TooShort {
            len: values.len(),
            reason: "min_period_s needs at least two samples for the median interval".into(),
        })?;
        Some(s.saturating_mul(1_000_000_000))
    } else {
        None
    };
    attenuated_signal_with_interval(times_ns, values, cfg, interval)
}

/// Windowed [`attenuated_signal`] with a given sampling interval (used only
/// to convert `min_period_s`) instead of the series' median: the streaming
/// state's one-shot twin.
pub fn attenuated_signal_with_interval(
    times_ns: &[i64],
    values: &[f64],
    cfg: &AttenuatedSignalConfig,
    sample_interval_ns: Option<i64>,
) -> Result<Vec<Flag>> {
    run_stream(
        AttenuatedSignalState::new(cfg, sample_interval_ns)?,
        times_ns,
        values,
    )
}

fn whole_series(
    times_ns: &[i64],
    values: &[f64],
    cfg: &AttenuatedSignalConfig,
) -> Result<Vec<Flag>> {
    if values.is_empty() {
        return Err(KernelError::TooShort {
            len: 0,
            reason: "QC needs at least one sample".into(),
        });
    }
    check_chunk(times_ns, values, None)?;
    let cnt = values.iter().filter(|x| x.is_finite()).count();
    if cnt == 0 {
        return Ok(vec![Flag::Missing; values.len()]);
    }
    let check = match cfg.check_type {
        CheckType::Std => {
            let filled: Vec<f64> = values
                .iter()
                .map(|&x| if x.is_finite() { x } else { 0.0 })
                .collect();
            let mean = pairwise_sum(&filled) * 1.0 / cnt as f64;
            let sq: Vec<f64> = values
                .iter()
                .map(|&x| {
                    if x.is_finite() {
                        (x - mean) * (x - mean)
                    } else {
                        0.0
                    }
                })
                .collect();
            (pairwise_sum(&sq) / cnt as f64).sqrt()
        }
        CheckType::Range => {
            let (lo, hi) = values
                .iter()
                .filter(|x| x.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                    (lo.min(x), hi.max(x))
                });
            hi - lo
        }
    };
    Ok(values.iter().map(|&x| cfg.flag(check, x)).collect())
}

/// pandas 3 `roll_var` accumulator: Welford's update with Kahan
/// compensation (separate compensations for adds and removes), and a full
/// recompute of the window when an update loses all but ~3 significant
/// digits (`prev_m2 * eps * 1e3 > m2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RollVar {
    nobs: f64,
    #[serde(with = "super::fbits")]
    mean_x: f64,
    #[serde(with = "super::fbits")]
    ssqdm_x: f64,
    #[serde(with = "super::fbits")]
    comp_add: f64,
    #[serde(with = "super::fbits")]
    comp_remove: f64,
    unstable: bool,
}

/// pandas' `InvCondTol`.
const INV_COND_TOL: f64 = f64::EPSILON * 1e3;

impl RollVar {
    fn new() -> Self {
        Self {
            nobs: 0.0,
            mean_x: 0.0,
            ssqdm_x: 0.0,
            comp_add: 0.0,
            comp_remove: 0.0,
            unstable: false,
        }
    }

    #[inline]
    fn add(&mut self, val: f64) {
        let prev_m2 = self.ssqdm_x;
        if val.is_nan() {
            return;
        }
        self.nobs += 1.0;
        let prev_mean = self.mean_x - self.comp_add;
        let y = val - self.comp_add;
        let t = y - self.mean_x;
        self.comp_add = t + self.mean_x - y;
        let delta = t;
        if self.nobs != 0.0 {
            self.mean_x += delta / self.nobs;
        } else {
            self.mean_x = 0.0;
        }
        self.ssqdm_x += (val - prev_mean) * (val - self.mean_x);
        if prev_m2 * INV_COND_TOL > self.ssqdm_x {
            self.unstable = true;
        }
    }

    #[inline]
    fn remove(&mut self, val: f64) {
        let prev_m2 = self.ssqdm_x;
        if val.is_nan() {
            return;
        }
        self.nobs -= 1.0;
        if self.nobs != 0.0 {
            let prev_mean = self.mean_x - self.comp_remove;
            let y = val - self.comp_remove;
            let t = y - self.mean_x;
            self.comp_remove = t + self.mean_x - y;
            let delta = t;
            self.mean_x -= delta / self.nobs;
            self.ssqdm_x -= (val - prev_mean) * (val - self.mean_x);
            if prev_m2 * INV_COND_TOL > self.ssqdm_x {
                self.unstable = true;
            }
        } else {
            self.mean_x = 0.0;
            self.ssqdm_x = 0.0;
            self.unstable = false;
        }
    }

    /// Restart from zero and add the whole window.
    fn recompute<I: Iterator<Item = f64>>(&mut self, window: I) {
        self.mean_x = 0.0;
        self.ssqdm_x = 0.0;
        self.nobs = 0.0;
        self.comp_add = 0.0;
        self.comp_remove = 0.0;
        for v in window {
            self.add(v);
        }
        self.unstable = false;
    }

    /// `zsqrt(calc_var(minp, ddof=0, ...))`.
    fn std(&self, minp: u64) -> f64 {
        let var = if self.nobs >= minp as f64 && self.nobs > 0.0 {
            self.ssqdm_x / self.nobs
        } else {
            f64::NAN
        };
        if var < 0.0 {
            0.0
        } else {
            var.sqrt()
        }
    }
}

/// Streaming attenuated signal test (windowed form only: the whole-series
/// statistic is not causal and is refused here).
///
/// Causal: each sample is flagged as soon as it is pushed (no latency); the
/// state keeps the samples of the current time window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttenuatedSignalState {
    cfg: AttenuatedSignalConfig,
    period_ns: i64,
    /// `max(min_periods, 1)`.
    minp: u64,
    /// Samples in the window: (index, time, value or NaN as `f64::to_bits`).
    win: VecDeque<(u64, i64, u64)>,
    var: RollVar,
    max: VecDeque<(u64, f64)>,
    min: VecDeque<(u64, f64)>,
    nan_in_win: u64,
    next: u64,
    last_t: Option<i64>,
}

impl AttenuatedSignalState {
    /// Validates `cfg` and builds a fresh state. `sample_interval_ns` is
    /// needed only when `min_period_s` is set without `min_obs` (it plays
    /// the role of ioos_qc's median interval). Errors when `cfg` has no
    /// `test_period_s` (whole-series mode is batch only).
    pub fn new(cfg: &AttenuatedSignalConfig, sample_interval_ns: Option<i64>) -> Result<Self> {
        cfg.validate()?;
        let Some(p) = cfg.test_period_s.filter(|&p| p != 0.0) else {
            return Err(invalid(
                "test_period_s",
                "streaming attenuated_signal needs a rolling window; the whole-series form is batch only",
            ));
        };
        let minp = cfg.min_periods(sample_interval_ns)?.max(1);
        Ok(Self {
            cfg: cfg.clone(),
            period_ns: (p * 1e9).round() as i64,
            minp,
            win: VecDeque::new(),
            var: RollVar::new(),
            max: VecDeque::new(),
            min: VecDeque::new(),
            nan_in_win: 0,
            next: 0,
            last_t: None,
        })
    }

    #[inline]
    fn flag(&mut self, t: i64, x: f64) -> Flag {
        let v = if x.is_finite() { x } else { f64::NAN };
        let i = self.next;
        self.next += 1;
        let bound = t.saturating_sub(self.period_ns);
        let std_mode = self.cfg.check_type == CheckType::Std;
        // pandas restarts the accumulator when the new window shares no
        // sample with the previous one (`start[i] >= end[i - 1]`).
        let reset = self.win.back().is_none_or(|&(_, tb, _)| tb <= bound);
        while let Some(&(_, tf, vf)) = self.win.front() {
            if tf > bound {
                break;
            }
            self.win.pop_front();
            let vf = f64::from_bits(vf);
            if vf.is_nan() {
                self.nan_in_win -= 1;
            }
            if std_mode && !reset {
                self.var.remove(vf);
            }
        }
        self.win.push_back((i, t, v.to_bits()));
        if v.is_nan() {
            self.nan_in_win += 1;
        }
        let check = if std_mode {
            if !reset {
                self.var.add(v);
            }
            if reset || self.var.unstable {
                self.var
                    .recompute(self.win.iter().map(|w| f64::from_bits(w.2)));
            }
            self.var.std(self.minp)
        } else {
            if !v.is_nan() {
                while self.max.back().is_some_and(|&(_, m)| m <= v) {
                    self.max.pop_back();
                }
                self.max.push_back((i, v));
                while self.min.back().is_some_and(|&(_, m)| m >= v) {
                    self.min.pop_back();
                }
                self.min.push_back((i, v));
            }
            let first = self.win.front().map_or(i, |w| w.0);
            while self.max.front().is_some_and(|&(j, _)| j < first) {
                self.max.pop_front();
            }
            while self.min.front().is_some_and(|&(j, _)| j < first) {
                self.min.pop_front();
            }
            let finite = self.win.len() as u64 - self.nan_in_win;
            if self.nan_in_win > 0 || finite < self.minp {
                f64::NAN
            } else {
                match (self.max.front(), self.min.front()) {
                    (Some(&(_, hi)), Some(&(_, lo))) => hi - lo,
                    _ => f64::NAN,
                }
            }
        };
        self.cfg.flag(check, x)
    }
}

impl QcStream for AttenuatedSignalState {
    fn push(&mut self, times_ns: &[i64], values: &[f64], out: &mut Vec<Flag>) -> Result<()> {
        check_chunk(times_ns, values, self.last_t)?;
        for (&t, &x) in times_ns.iter().zip(values) {
            let f = self.flag(t, x);
            out.push(f);
        }
        if let Some(&t) = times_ns.last() {
            self.last_t = Some(t);
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Flag>) {
        self.win.clear();
        self.var = RollVar::new();
        self.max.clear();
        self.min.clear();
        self.nan_in_win = 0;
        self.next = 0;
        self.last_t = None;
    }

    fn pending(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_matches_simple_for_small() {
        let a: Vec<f64> = (0..300).map(|i| (i as f64).sin() * 1e3).collect();
        let s: f64 = a.iter().sum();
        assert!((pairwise_sum(&a) - s).abs() < 1e-9);
    }

    #[test]
    fn stream_refuses_whole_series() {
        let cfg = AttenuatedSignalConfig {
            suspect_threshold: 1.0,
            fail_threshold: 0.5,
            test_period_s: None,
            min_obs: None,
            min_period_s: None,
            check_type: CheckType::Std,
        };
        assert!(AttenuatedSignalState::new(&cfg, None).is_err());
        let t: Vec<i64> = (0..4).collect();
        let f = attenuated_signal(&t, &[1.0, 1.0, f64::NAN, 1.0], &cfg).unwrap();
        assert_eq!(f, vec![Flag::Fail, Flag::Fail, Flag::Missing, Flag::Fail]);
    }
}
