//! QARTOD flat line test (`ioos_qc.qartod.flat_line_test`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{check_chunk, check_threshold, median_interval_s, run_stream, Flag, QcStream};
use crate::error::{invalid, Result};

/// Parameters of the flat line test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlatLineConfig {
    /// Seconds of values within `tolerance` before SUSPECT
    /// (ioos_qc `suspect_threshold`).
    pub suspect_threshold_s: f64,
    /// Seconds of values within `tolerance` before FAIL
    /// (ioos_qc `fail_threshold`).
    pub fail_threshold_s: f64,
    /// The window range must be *strictly below* this to flag; the default
    /// 0 therefore never flags (as in ioos_qc).
    #[serde(default)]
    pub tolerance: f64,
}

impl FlatLineConfig {
    /// Thresholds and tolerance must be finite and >= 0.
    pub fn validate(&self) -> Result<()> {
        check_threshold("suspect_threshold_s", self.suspect_threshold_s)?;
        check_threshold("fail_threshold_s", self.fail_threshold_s)?;
        check_threshold("tolerance", self.tolerance)?;
        Ok(())
    }

    /// Window lengths in samples, as ioos_qc derives them:
    /// `count = trunc(trunc(threshold_s) / interval_s)` with the interval in
    /// whole seconds (floored).
    fn counts(&self, interval_ns: i64) -> Result<(u64, u64)> {
        if interval_ns < 0 {
            return Err(invalid(
                "sample_interval_ns",
                format!("{interval_ns} must be >= 0"),
            ));
        }
        let secs = interval_ns.div_euclid(1_000_000_000);
        if secs == 0 {
            return Err(invalid(
                "sample_interval_ns",
                format!(
                    "{interval_ns} ns is below one second: ioos_qc's flat_line works in whole \
                     seconds and cannot run (it raises ValueError)"
                ),
            ));
        }
        let c = |th: f64| (th.trunc() / secs as f64).trunc() as u64;
        Ok((c(self.suspect_threshold_s), c(self.fail_threshold_s)))
    }
}

/// Flat line test over a whole series, as ioos_qc: the window length comes
/// from the **median** sampling interval of this series (whole seconds).
///
/// With `count = trunc(trunc(threshold_s) / interval_s)` samples, sample `j`
/// is flagged when `j >= count` and the range `max - min` of the finite
/// values in `x[j-count ..= j]` (count + 1 samples) is `< tolerance`.
/// The suspect window gives SUSPECT, then the fail window FAIL (FAIL wins);
/// otherwise GOOD. Missing samples (NaN/±inf) are MISSING and ignored
/// inside windows. Warm-up: the first `count` samples cannot be flagged by
/// that window. Edge: a series of fewer than 3 samples is all GOOD, even
/// missing ones (ioos_qc returns early).
///
/// Errors if the median interval is below one second (ioos_qc raises).
pub fn flat_line(times_ns: &[i64], values: &[f64], cfg: &FlatLineConfig) -> Result<Vec<Flag>> {
    if values.len() < 3 {
        // ioos_qc returns all GOOD before looking at the times; still check input.
        return run_stream(FlatLineState::with_counts(cfg, 0, 0)?, times_ns, values);
    }
    let interval_s = median_interval_s(times_ns).unwrap_or(0);
    flat_line_with_interval(
        times_ns,
        values,
        cfg,
        interval_s.saturating_mul(1_000_000_000),
    )
}

/// [`flat_line`] with a given sampling interval instead of the series'
/// median (the streaming state's one-shot twin). Only whole seconds of
/// `sample_interval_ns` count.
pub fn flat_line_with_interval(
    times_ns: &[i64],
    values: &[f64],
    cfg: &FlatLineConfig,
    sample_interval_ns: i64,
) -> Result<Vec<Flag>> {
    run_stream(
        FlatLineState::new(cfg, sample_interval_ns)?,
        times_ns,
        values,
    )
}

/// Sliding `max - min` over the last `len` pushed samples, ignoring
/// non-finite ones (monotonic deques, O(1) amortised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SlidingRange {
    len: u64,
    max: VecDeque<(u64, f64)>,
    min: VecDeque<(u64, f64)>,
}

impl SlidingRange {
    fn new(len: u64) -> Self {
        let cap = len.min(1 << 14) as usize;
        Self {
            len,
            max: VecDeque::with_capacity(cap),
            min: VecDeque::with_capacity(cap),
        }
    }

    /// Pushes sample `i` and returns the range of the window ending at it.
    #[inline]
    fn push(&mut self, i: u64, x: f64) -> Option<f64> {
        if x.is_finite() {
            while self.max.back().is_some_and(|&(_, v)| v <= x) {
                self.max.pop_back();
            }
            self.max.push_back((i, x));
            while self.min.back().is_some_and(|&(_, v)| v >= x) {
                self.min.pop_back();
            }
            self.min.push_back((i, x));
        }
        let first = i.saturating_sub(self.len - 1);
        while self.max.front().is_some_and(|&(j, _)| j < first) {
            self.max.pop_front();
        }
        while self.min.front().is_some_and(|&(j, _)| j < first) {
            self.min.pop_front();
        }
        match (self.max.front(), self.min.front()) {
            (Some(&(_, hi)), Some(&(_, lo))) => Some((hi - lo).abs()),
            _ => None,
        }
    }

    fn clear(&mut self) {
        self.max.clear();
        self.min.clear();
    }
}

/// Streaming flat line test with a fixed sampling interval.
///
/// Equal to [`flat_line_with_interval`] for any chunking, and to
/// [`flat_line`] when `sample_interval_ns` has the same whole seconds as the
/// series' median interval (regular sampling). **Latency:** none, except
/// that the first two samples of a series are held until the third arrives
/// (a series of fewer than 3 samples is all GOOD); `finish` flushes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlatLineState {
    tolerance: f64,
    suspect_count: u64,
    fail_count: u64,
    suspect: SlidingRange,
    fail: SlidingRange,
    seen: u64,
    /// Flags of the first (< 3) samples, held back.
    held: Vec<Flag>,
    last_t: Option<i64>,
}

impl FlatLineState {
    /// Validates `cfg` and builds a fresh state for a sensor sampled every
    /// `sample_interval_ns` (must be at least one second).
    pub fn new(cfg: &FlatLineConfig, sample_interval_ns: i64) -> Result<Self> {
        cfg.validate()?;
        let (s, f) = cfg.counts(sample_interval_ns)?;
        Self::with_counts(cfg, s, f)
    }

    fn with_counts(cfg: &FlatLineConfig, suspect_count: u64, fail_count: u64) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            tolerance: cfg.tolerance,
            suspect_count,
            fail_count,
            suspect: SlidingRange::new(suspect_count + 1),
            fail: SlidingRange::new(fail_count + 1),
            seen: 0,
            held: Vec::with_capacity(2),
            last_t: None,
        })
    }

    /// Window lengths in samples `(suspect, fail)` (each window holds
    /// `count + 1` samples).
    pub fn counts(&self) -> (u64, u64) {
        (self.suspect_count, self.fail_count)
    }

    #[inline]
    fn flag(&mut self, x: f64) -> Flag {
        let j = self.seen;
        self.seen += 1;
        let rs = self.suspect.push(j, x);
        let rf = self.fail.push(j, x);
        if !x.is_finite() {
            return Flag::Missing;
        }
        let mut f = Flag::Good;
        if j >= self.suspect_count && rs.is_some_and(|r| r < self.tolerance) {
            f = Flag::Suspect;
        }
        if j >= self.fail_count && rf.is_some_and(|r| r < self.tolerance) {
            f = Flag::Fail;
        }
        f
    }
}

impl QcStream for FlatLineState {
    fn push(&mut self, times_ns: &[i64], values: &[f64], out: &mut Vec<Flag>) -> Result<()> {
        check_chunk(times_ns, values, self.last_t)?;
        for &x in values {
            let f = self.flag(x);
            if self.seen < 3 {
                self.held.push(f);
            } else {
                out.append(&mut self.held);
                out.push(f);
            }
        }
        if let Some(&t) = times_ns.last() {
            self.last_t = Some(t);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Flag>) {
        // Fewer than 3 samples in the whole series: all GOOD (ioos_qc).
        out.extend(self.held.drain(..).map(|_| Flag::Good));
        self.suspect.clear();
        self.fail.clear();
        self.seen = 0;
        self.last_t = None;
    }

    fn pending(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const NAN: f64 = f64::NAN;
    const INF: f64 = f64::INFINITY;
    const S: i64 = 1_000_000_000;

    #[test]
    fn matches_ioos_probes() {
        let v = [
            1.0, 1.0, 1.0, INF, 1.0, 1.0, 1.0, NAN, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0,
        ];
        let t: Vec<i64> = (0..15).map(|i| i * S).collect();
        let cfg = FlatLineConfig {
            suspect_threshold_s: 2.0,
            fail_threshold_s: 4.0,
            tolerance: 0.1,
        };
        let got: Vec<u8> = flat_line(&t, &v, &cfg)
            .unwrap()
            .into_iter()
            .map(u8::from)
            .collect();
        assert_eq!(got, [1, 1, 3, 9, 4, 4, 4, 9, 4, 4, 1, 1, 3, 3, 4]);
        let cfg = FlatLineConfig {
            suspect_threshold_s: 10.0,
            fail_threshold_s: 20.0,
            tolerance: 0.1,
        };
        assert_eq!(
            flat_line(&[0, S], &[NAN, 1.0], &cfg).unwrap(),
            vec![Flag::Good, Flag::Good]
        );
        let t: Vec<i64> = (0..10).map(|i| i * S / 2).collect();
        assert!(flat_line(&t, &[1.0; 10], &cfg).is_err());
    }
}
