//! Akaike Information Criterion onset picking (ObsPy `aic_simple`).

use super::ring::Ring;
use crate::error::{invalid, Result};
use crate::filter::checks::{check_finite, seconds_to_samples};
use serde::{Deserialize, Serialize};

/// ObsPy 1.5 `aic_simple(a)` (Maeda 1985), as its C code computes it with
/// Welford running variances:
///
/// `AIC(k) = k * ln(var(a[0..=k])) + (N - k - 1) * ln(var(a[k+1..N]))`
/// (population variances), with the last value repeated so the output has
/// the input length (`aic[N-1] == aic[N-2]`). `N <= 2` gives zeros;
/// zero-variance segments give `-inf`. Dimensionless.
pub fn aic_simple(a: &[f64]) -> Vec<f64> {
    let n = a.len();
    let mut aic = vec![0.0; n];
    if n <= 2 {
        return aic;
    }
    let (mut mean, mut varsum, mut count) = (a[0], 0.0f64, 1u32);
    for i in 1..n - 1 {
        count += 1;
        let delta = a[i] - mean;
        mean += delta / count as f64;
        varsum += delta * (a[i] - mean);
        aic[i] = count as f64 * (varsum / count as f64).ln();
    }
    let (mut mean, mut varsum, mut count) = (a[n - 1], 0.0f64, 1u32);
    for i in (1..=n - 2).rev() {
        count += 1;
        let delta = a[i] - mean;
        mean += delta / count as f64;
        varsum += delta * (a[i] - mean);
        aic[i - 1] += (count - 1) as f64 * (varsum / count as f64).ln();
    }
    aic[n - 1] = aic[n - 2];
    aic
}

/// Index of the AIC minimum (first one; NaN ignored), `None` if all NaN.
fn argmin(aic: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &v) in aic.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v < b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// An AIC pick refining a trigger onset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AicPick {
    /// Trigger onset the pick refines (sample index).
    pub onset: u64,
    /// Picked sample index (AIC minimum).
    pub pick: u64,
    /// AIC value at the pick.
    pub aic: f64,
}

/// Refines `onset` to the minimum of [`aic_simple`] over the window
/// `data[onset - before .. onset + after]` (sample counts, clipped to the
/// trace). `None` if the window is empty or its AIC is all NaN.
pub fn aic_pick(data: &[f64], onset: u64, before: usize, after: usize) -> Result<Option<AicPick>> {
    check_finite(data, 0)?;
    let on = onset as usize;
    if on >= data.len() {
        return Err(invalid(
            "onset",
            format!("{on} beyond trace of {} samples", data.len()),
        ));
    }
    let s = on.saturating_sub(before);
    let e = (on + after).min(data.len());
    let aic = aic_simple(&data[s..e]);
    Ok(argmin(&aic).map(|i| AicPick {
        onset,
        pick: (s + i) as u64,
        aic: aic[i],
    }))
}

/// Streaming AIC picker: keeps the last `before + after` samples; register
/// each trigger onset with [`add_onset`] while it is still within `before`
/// samples of the stream head (e.g. as soon as [`TriggerState::active_onset`]
/// reports it); the pick is emitted once `onset + after` samples are in, or
/// at [`finish`] with the window clipped to the data. Identical to
/// [`aic_pick`] on the whole trace for any chunking.
///
/// [`add_onset`]: AicPicker::add_onset
/// [`finish`]: AicPicker::finish
/// [`TriggerState::active_onset`]: super::TriggerState::active_onset
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AicPicker {
    before: usize,
    after: usize,
    hist: Ring,
    k: u64,
    pending: Vec<u64>,
    scratch: Vec<f64>,
}

impl AicPicker {
    pub fn new(before: usize, after: usize) -> Result<Self> {
        if before + after < 3 {
            return Err(invalid(
                "after",
                "window before + after must be at least 3 samples",
            ));
        }
        Ok(AicPicker {
            before,
            after,
            hist: Ring::new(before + after),
            k: 0,
            pending: Vec::new(),
            scratch: Vec::with_capacity(before + after),
        })
    }
    /// Window in seconds around the onset: `int(s * sr)` samples each.
    pub fn from_seconds(before_s: f64, after_s: f64, sampling_rate: f64) -> Result<Self> {
        Self::new(
            seconds_to_samples("before", before_s, sampling_rate, 0)?,
            seconds_to_samples("after", after_s, sampling_rate, 0)?,
        )
    }
    /// Registers a trigger onset (sample index). It must not be older than
    /// `before` samples relative to the samples still buffered.
    pub fn add_onset(&mut self, onset: u64) -> Result<()> {
        let held = self.k.min((self.before + self.after) as u64);
        let oldest = self.k - held;
        if onset.saturating_sub(self.before as u64) < oldest {
            return Err(invalid(
                "onset",
                format!("onset {onset} is older than the buffered window"),
            ));
        }
        self.pending.push(onset);
        Ok(())
    }
    fn window_pick(&mut self, onset: u64) -> Option<AicPick> {
        let s = onset.saturating_sub(self.before as u64);
        let e = (onset + self.after as u64).min(self.k);
        if e <= s {
            return None;
        }
        let held = self.k.min((self.before + self.after) as u64);
        let oldest = self.k - held;
        self.scratch.clear();
        for idx in s..e {
            self.scratch
                .push(self.hist.nth_oldest((idx - oldest) as usize));
        }
        let aic = aic_simple(&self.scratch);
        argmin(&aic).map(|i| AicPick {
            onset,
            pick: s + i as u64,
            aic: aic[i],
        })
    }
    fn emit_ready(&mut self, out: &mut Vec<AicPick>, all: bool) {
        if self.pending.is_empty() {
            return;
        }
        let start = out.len();
        let mut i = 0;
        while i < self.pending.len() {
            let o = self.pending[i];
            if all || o + self.after as u64 <= self.k {
                self.pending.remove(i);
                if let Some(p) = self.window_pick(o) {
                    out.push(p);
                }
            } else {
                i += 1;
            }
        }
        out[start..].sort_by_key(|p| p.onset);
    }
    pub fn process(&mut self, data: &[f64], out: &mut Vec<AicPick>) -> Result<()> {
        check_finite(data, self.k as usize)?;
        for &x in data {
            self.emit_ready(out, false);
            self.hist.push(x);
            self.k += 1;
        }
        self.emit_ready(out, false);
        Ok(())
    }
    /// Emits the remaining picks with windows clipped to the data seen.
    pub fn finish(&mut self, out: &mut Vec<AicPick>) {
        self.emit_ready(out, true);
        self.hist.clear();
        self.k = 0;
    }
}
