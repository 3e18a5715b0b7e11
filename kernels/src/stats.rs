//! Per-window statistics of a sensor trace.
//!
//! Windows are fixed, epoch-aligned intervals of `window` seconds:
//! window `k` covers `[k·W, (k+1)·W)` in UTC epoch nanoseconds, so the
//! windows of different sensors and of batch and stream runs line up.
//! A window is reported only if at least one sample (finite or not) falls
//! in it. Per window, over its **finite** samples `x_1..x_n`:
//!
//! * `count = n`, `min`, `max`;
//! * `mean = Σx / n` (Welford's running update, in sample order);
//! * `std = sqrt(Σ(x - mean)² / n)`: the **population** standard deviation
//!   (ddof = 0, like `np.std` and ObsPy's defaults), via Welford's M2;
//! * `rms = sqrt(Σx² / n)`;
//! * `gaps` = number of missing readings (NaN/±inf) in the window, plus,
//!   when a nominal sampling interval `Δ` is known, the samples missing from
//!   timing gaps: a step `dt > Δ` between consecutive samples counts
//!   `round(dt / Δ) - 1` missing samples, attributed to the window of the
//!   sample that ends the gap (a gap before a sensor's first sample is not
//!   counted).
//!
//! With `n = 0` (only missing readings), min/max/mean/std/rms are NaN.
//! Batch and stream give bit-identical results (same accumulation order).

use serde::{Deserialize, Serialize};

use crate::error::{invalid, KernelError, Result};
use crate::qc::check_chunk;

/// Parameters of the `stats` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Window length in seconds (> 0; whole nanoseconds).
    pub window: f64,
}

/// Statistics of one window (see the module docs for the formulas).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Window start, UTC epoch ns (inclusive).
    pub start_ns: i64,
    /// Window end, UTC epoch ns (exclusive).
    pub end_ns: i64,
    /// Finite samples in the window.
    pub count: u64,
    /// Smallest finite sample (NaN if none).
    pub min: f64,
    /// Largest finite sample (NaN if none).
    pub max: f64,
    /// Mean of the finite samples (NaN if none).
    pub mean: f64,
    /// Population standard deviation, ddof = 0 (NaN if none).
    pub std: f64,
    /// Root mean square (NaN if none).
    pub rms: f64,
    /// Missing readings plus samples missing from timing gaps.
    pub gaps: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Acc {
    k: i64,
    count: u64,
    #[serde(with = "crate::qc::fbits")]
    min: f64,
    #[serde(with = "crate::qc::fbits")]
    max: f64,
    #[serde(with = "crate::qc::fbits")]
    mean: f64,
    #[serde(with = "crate::qc::fbits")]
    m2: f64,
    #[serde(with = "crate::qc::fbits")]
    sumsq: f64,
    gaps: u64,
}

impl Acc {
    fn new(k: i64) -> Self {
        Self {
            k,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
            m2: 0.0,
            sumsq: 0.0,
            gaps: 0,
        }
    }

    #[inline]
    fn add(&mut self, x: f64) {
        if !x.is_finite() {
            self.gaps += 1;
            return;
        }
        self.count += 1;
        if self.count == 1 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
        self.sumsq += x * x;
    }

    fn result(&self, w: i64) -> WindowStats {
        let start_ns = self.k.saturating_mul(w);
        let (min, max, mean, std, rms) = if self.count == 0 {
            (f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN)
        } else {
            let n = self.count as f64;
            (
                self.min,
                self.max,
                self.mean,
                (self.m2 / n).max(0.0).sqrt(),
                (self.sumsq / n).sqrt(),
            )
        };
        WindowStats {
            start_ns,
            end_ns: start_ns.saturating_add(w),
            count: self.count,
            min,
            max,
            mean,
            std,
            rms,
            gaps: self.gaps,
        }
    }
}

/// Streaming per-window statistics. A window is emitted when the first
/// sample of a later window arrives (latency: up to one window);
/// [`StatsState::finish`] emits the open window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsState {
    window_ns: i64,
    interval_ns: Option<i64>,
    acc: Option<Acc>,
    last_t: Option<i64>,
}

impl StatsState {
    /// `cfg.window` must be finite and > 0 (at least 1 ns);
    /// `sample_interval_ns`, if given, must be > 0 (it enables gap counting).
    pub fn new(cfg: &StatsConfig, sample_interval_ns: Option<i64>) -> Result<Self> {
        let w = cfg.window * 1e9;
        if !w.is_finite() || w.round() < 1.0 || w > i64::MAX as f64 {
            return Err(invalid(
                "window",
                format!("{} s must be finite and > 0", cfg.window),
            ));
        }
        if let Some(i) = sample_interval_ns {
            if i <= 0 {
                return Err(invalid("sample_interval_ns", format!("{i} must be > 0")));
            }
        }
        Ok(Self {
            window_ns: w.round() as i64,
            interval_ns: sample_interval_ns,
            acc: None,
            last_t: None,
        })
    }

    /// Feeds a chunk (times non-decreasing, also across chunks) and appends
    /// the windows it closed to `out`.
    pub fn push(
        &mut self,
        times_ns: &[i64],
        values: &[f64],
        out: &mut Vec<WindowStats>,
    ) -> Result<()> {
        check_chunk(times_ns, values, self.last_t)?;
        for (&t, &x) in times_ns.iter().zip(values) {
            let k = t.div_euclid(self.window_ns);
            match &self.acc {
                Some(a) if a.k == k => {}
                Some(a) => {
                    out.push(a.result(self.window_ns));
                    self.acc = Some(Acc::new(k));
                }
                None => self.acc = Some(Acc::new(k)),
            }
            let acc = self.acc.as_mut().expect("window accumulator set above");
            if let (Some(p), Some(d)) = (self.last_t, self.interval_ns) {
                let dt = t - p;
                if dt > d {
                    let missing = (dt as f64 / d as f64).round() as u64;
                    acc.gaps += missing.saturating_sub(1);
                }
            }
            acc.add(x);
            self.last_t = Some(t);
        }
        Ok(())
    }

    /// Emits the open window (if any) and resets the state.
    pub fn finish(&mut self, out: &mut Vec<WindowStats>) {
        if let Some(a) = self.acc.take() {
            out.push(a.result(self.window_ns));
        }
        self.last_t = None;
    }
}

/// Per-window statistics of a whole trace (see the module docs).
pub fn window_stats(
    times_ns: &[i64],
    values: &[f64],
    cfg: &StatsConfig,
    sample_interval_ns: Option<i64>,
) -> Result<Vec<WindowStats>> {
    if values.is_empty() && times_ns.is_empty() {
        return Err(KernelError::TooShort {
            len: 0,
            reason: "stats need at least one sample".into(),
        });
    }
    let mut st = StatsState::new(cfg, sample_interval_ns)?;
    let mut out = Vec::new();
    st.push(times_ns, values, &mut out)?;
    st.finish(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    const S: i64 = 1_000_000_000;

    #[test]
    fn basic_windows() {
        let t = [0, S, 2 * S, 10 * S, 11 * S, 15 * S];
        let v = [1.0, 2.0, 3.0, f64::NAN, 4.0, 6.0];
        let w = window_stats(&t, &v, &StatsConfig { window: 10.0 }, Some(S)).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(
            (w[0].start_ns, w[0].end_ns, w[0].count, w[0].gaps),
            (0, 10 * S, 3, 0)
        );
        assert_eq!((w[0].min, w[0].max, w[0].mean), (1.0, 3.0, 2.0));
        assert!((w[0].std - (2.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert!((w[0].rms - (14.0f64 / 3.0).sqrt()).abs() < 1e-15);
        // NaN at 10 s: 1 gap, step 2 s -> 10 s: 7 missing; 11 -> 15: 3 missing.
        assert_eq!((w[1].count, w[1].gaps), (2, 1 + 7 + 3));
        assert_eq!(w[1].mean, 5.0);
        let w = window_stats(&[0], &[f64::NAN], &StatsConfig { window: 1.0 }, None).unwrap();
        assert!(w[0].mean.is_nan() && w[0].count == 0 && w[0].gaps == 1);
    }

    #[test]
    fn bad_input() {
        assert!(StatsState::new(&StatsConfig { window: 0.0 }, None).is_err());
        assert!(StatsState::new(&StatsConfig { window: f64::NAN }, None).is_err());
        assert!(StatsState::new(&StatsConfig { window: 1.0 }, Some(0)).is_err());
        assert!(window_stats(&[], &[], &StatsConfig { window: 1.0 }, None).is_err());
        assert!(window_stats(&[2, 1], &[1.0, 1.0], &StatsConfig { window: 1.0 }, None).is_err());
    }
}
