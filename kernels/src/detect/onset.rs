//! Trigger on/off detection on a characteristic function (ObsPy
//! `trigger_onset`), one-shot and streaming.

use crate::error::{invalid, Result};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Trigger thresholds and length limit (ObsPy `trigger_onset` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TriggerParams {
    /// `thres1`: the trigger switches on when `cf >= on`.
    pub on: f64,
    /// `thres2`: the trigger switches off after the last sample `>= off`.
    pub off: f64,
    /// Maximum trigger length in samples (`None` = unlimited, ObsPy's 9e99).
    pub max_len: Option<u64>,
    /// Drop triggers longer than `max_len` instead of cutting them.
    pub max_len_delete: bool,
}

impl TriggerParams {
    pub fn new(on: f64, off: f64) -> Self {
        TriggerParams {
            on,
            off,
            max_len: None,
            max_len_delete: false,
        }
    }
    /// `max_len` from seconds as ObsPy's `coincidence_trigger` does:
    /// `int(seconds * sr + 0.5)`.
    pub fn max_len_from_seconds(seconds: f64, sampling_rate: f64) -> Result<u64> {
        crate::filter::checks::check_sampling_rate(sampling_rate)?;
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(invalid("max_len", "must be finite and >= 0"));
        }
        Ok((seconds * sampling_rate + 0.5) as u64)
    }
    fn check(&self) -> Result<()> {
        if self.on.is_nan() {
            return Err(invalid("on", "threshold is NaN"));
        }
        if self.off.is_nan() {
            return Err(invalid("off", "threshold is NaN"));
        }
        Ok(())
    }
}

/// One trigger: `on` is the first sample with `cf >= on`, `off` the last
/// sample with `cf >= off` (or `on + max_len` when cut; `len(cf)` in one of
/// ObsPy's corner cases), `peak = max(cf[on..off])` (`cf[on]` if `on ==
/// off`), which is the peak `coincidence_trigger` reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub on: u64,
    pub off: u64,
    pub peak: f64,
}

const HUGE: i64 = i64::MAX / 4; // ObsPy's 1e99 sentinel

/// ObsPy 1.5 `trigger_onset(charfct, thres1, thres2, max_len, max_len_delete)`,
/// translated literally (same deques and loop), returning `(on, off)` sample
/// pairs. NaN samples count as below both thresholds.
///
/// Where ObsPy raises (`thres2 > thres1` with no sample reaching `thres2`,
/// or `max_len_delete` emitting its 1e99 sentinel) this returns
/// `InvalidParameter`.
pub fn trigger_onset(cf: &[f64], p: &TriggerParams) -> Result<Vec<(u64, u64)>> {
    p.check()?;
    let ind1: Vec<i64> = (0..cf.len())
        .filter(|&i| cf[i] >= p.on)
        .map(|i| i as i64)
        .collect();
    if ind1.is_empty() {
        return Ok(Vec::new());
    }
    let ind2: Vec<i64> = (0..cf.len())
        .filter(|&i| cf[i] >= p.off)
        .map(|i| i as i64)
        .collect();
    let Some(&last2) = ind2.last() else {
        return Err(invalid(
            "off",
            "ObsPy raises IndexError: no sample reaches the off threshold",
        ));
    };
    let mut on: VecDeque<i64> = VecDeque::from([ind1[0]]);
    let mut of: VecDeque<i64> = VecDeque::from([-1]);
    for w in ind2.windows(2) {
        if w[1] - w[0] > 1 {
            of.push_back(w[0]);
        }
    }
    of.push_back(last2);
    for w in ind1.windows(2) {
        if w[1] - w[0] > 1 {
            on.push_back(w[1]);
        }
    }
    if p.max_len_delete {
        of.push_back(HUGE);
        let l = *on.back().unwrap_or(&0);
        on.push_back(l);
    } else {
        of.push_back(last2);
    }
    of.push_back(cf.len() as i64);
    let max_len = p.max_len.map_or(i64::MAX, |m| m.min(HUGE as u64) as i64);
    let err = || invalid("trigger_onset", "internal: exhausted trigger list");
    let mut picks = Vec::new();
    while on.back().ok_or_else(err)? > of.front().ok_or_else(err)? {
        while on.front().ok_or_else(err)? <= of.front().ok_or_else(err)? {
            on.pop_front();
        }
        while of.front().ok_or_else(err)? < on.front().ok_or_else(err)? {
            of.pop_front();
        }
        let (o, f) = (on[0], of[0]);
        if f.saturating_sub(o) > max_len {
            if p.max_len_delete {
                on.pop_front();
                if on.is_empty() {
                    break;
                }
                continue;
            }
            of.push_front(o + max_len);
        }
        let f = of[0];
        if f >= HUGE {
            return Err(invalid(
                "max_len_delete",
                "ObsPy raises OverflowError: trigger ends at its 1e99 sentinel",
            ));
        }
        picks.push((o as u64, f as u64));
    }
    Ok(picks)
}

/// NaN-propagating max of a non-empty slice (NumPy `max`).
fn np_max(v: &[f64]) -> f64 {
    let mut m = v[0];
    for &x in &v[1..] {
        if x.is_nan() || m.is_nan() {
            return f64::NAN;
        }
        if x > m {
            m = x;
        }
    }
    m
}

/// [`trigger_onset`] with each trigger's peak as `coincidence_trigger`
/// computes it (`max(cf[on:off])`, or `cf[on]` when that slice is empty).
pub fn trigger_onset_with_peaks(cf: &[f64], p: &TriggerParams) -> Result<Vec<Trigger>> {
    Ok(trigger_onset(cf, p)?
        .into_iter()
        .map(|(on, off)| {
            let (a, b) = (on as usize, (off as usize).min(cf.len()));
            let peak = if b > a { np_max(&cf[a..b]) } else { cf[a] };
            Trigger { on, off, peak }
        })
        .collect())
}

/// Streaming trigger state machine giving exactly [`trigger_onset_with_peaks`]
/// for any chunking: feed the characteristic function with [`process`], call
/// [`finish`] at the end of the trace (a trigger still on is closed at the
/// last sample, as ObsPy does).
///
/// Requires `off <= on` (the usual hysteresis; ObsPy's `off > on` corner
/// cases are only supported by the batch function). A trigger is emitted
/// one sample after the CF falls below `off` (or when it reaches `max_len`).
/// Sample indices count from the first sample fed since construction/reset.
///
/// [`process`]: TriggerState::process
/// [`finish`]: TriggerState::finish
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerState {
    p: TriggerParams,
    k: u64,
    prev_a: bool,
    prev_b: bool,
    active: Option<u64>,
    peak: Option<f64>,
    last: f64,
}

impl TriggerState {
    pub fn new(p: TriggerParams) -> Result<Self> {
        p.check()?;
        if p.off > p.on {
            return Err(invalid(
                "off",
                format!(
                    "off threshold {} must not exceed on threshold {}",
                    p.off, p.on
                ),
            ));
        }
        Ok(TriggerState {
            p,
            k: 0,
            prev_a: false,
            prev_b: false,
            active: None,
            peak: None,
            last: 0.0,
        })
    }
    pub fn params(&self) -> &TriggerParams {
        &self.p
    }
    /// Onset of the trigger currently on (not yet closed), if any: known as
    /// soon as the CF reaches `on`, e.g. to start an AIC pick window.
    pub fn active_onset(&self) -> Option<u64> {
        self.active
    }
    /// Index of the next sample to be fed.
    pub fn position(&self) -> u64 {
        self.k
    }
    pub fn reset(&mut self) {
        *self = TriggerState {
            p: self.p,
            k: 0,
            prev_a: false,
            prev_b: false,
            active: None,
            peak: None,
            last: 0.0,
        };
    }

    fn peak_to(&self, o: u64, f: u64) -> f64 {
        // peak covers [o, k-1), last = cf[k-1]; f == k-1 here.
        if f == o {
            self.last
        } else {
            self.peak.unwrap_or(self.last)
        }
    }

    /// Resolves the run end at `k - 1` and the max_len cut before sample `k`.
    fn step_boundaries(&mut self, b_now: bool, out: &mut Vec<Trigger>) {
        let k = self.k;
        if self.prev_b && !b_now {
            let e = k - 1;
            if let Some(o) = self.active.take() {
                let too_long = self.p.max_len.is_some_and(|m| e - o > m);
                if !(too_long && self.p.max_len_delete) {
                    out.push(Trigger {
                        on: o,
                        off: e,
                        peak: self.peak_to(o, e),
                    });
                }
                self.peak = None;
            }
        }
        if let (Some(o), Some(m), false) = (self.active, self.p.max_len, self.p.max_len_delete) {
            if k > o + m {
                let f = o + m;
                out.push(Trigger {
                    on: o,
                    off: f,
                    peak: self.peak_to(o, f),
                });
                self.active = None;
                self.peak = None;
            }
        }
    }

    /// Feeds CF samples; completed triggers are appended to `out`.
    pub fn process(&mut self, cf: &[f64], out: &mut Vec<Trigger>) {
        for &x in cf {
            self.step(x, out);
        }
    }

    /// One CF sample of [`process`](TriggerState::process).
    #[inline]
    fn step(&mut self, x: f64, out: &mut Vec<Trigger>) {
        let a = x >= self.p.on;
        let b = x >= self.p.off;
        if self.k > 0 {
            self.step_boundaries(b, out);
            if self.active.is_some() {
                self.peak = Some(match self.peak {
                    None => self.last,
                    Some(m) if m.is_nan() || self.last.is_nan() => f64::NAN,
                    Some(m) => m.max(self.last),
                });
            }
        }
        if a && (self.k == 0 || !self.prev_a) && self.active.is_none() {
            self.active = Some(self.k);
            self.peak = None;
        }
        self.last = x;
        self.prev_a = a;
        self.prev_b = b;
        self.k += 1;
    }

    /// Same result as [`process`](TriggerState::process), faster when no
    /// trigger is on: while `active` is `None` and the CF stays below `on`
    /// (NaN counts as below) no trigger can open or close, so only the
    /// last-sample bookkeeping changes and the run is skipped in one step.
    /// `any_on = false` promises that no sample of `cf` is `>= on`.
    pub(crate) fn process_sparse(&mut self, cf: &[f64], any_on: bool, out: &mut Vec<Trigger>) {
        let Some(&last) = cf.last() else { return };
        if !any_on && self.active.is_none() {
            self.skip_below_on(cf.len(), last);
            return;
        }
        let mut i = 0;
        while i < cf.len() {
            if self.active.is_none() {
                let on = self.p.on;
                let n = cf[i..]
                    .iter()
                    .position(|&x| x >= on)
                    .unwrap_or(cf.len() - i);
                if n > 0 {
                    self.skip_below_on(n, cf[i + n - 1]);
                    i += n;
                    if i == cf.len() {
                        break;
                    }
                }
            }
            self.step(cf[i], out);
            i += 1;
        }
    }

    /// `n >= 1` samples, all `< on` (or NaN), the last being `last`, with no
    /// trigger on ([`active_onset`](Self::active_onset) is `None`): exactly
    /// what `n` calls of [`process`](Self::process) do in that case.
    #[inline]
    pub(crate) fn skip_below_on(&mut self, n: usize, last: f64) {
        debug_assert!(self.active.is_none() && n > 0);
        self.last = last;
        self.prev_a = false;
        self.prev_b = last >= self.p.off;
        self.k += n as u64;
    }

    /// Ends the trace: closes a trigger still on at the last sample and
    /// resets the state for a new trace.
    pub fn finish(&mut self, out: &mut Vec<Trigger>) {
        if self.k > 0 {
            self.step_boundaries(false, out);
        }
        self.reset();
    }
}
