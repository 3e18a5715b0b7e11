//! Delayed STA/LTA (ObsPy `delayed_sta_lta`).

use super::ring::Ring;
use super::windows::StaLtaWindows;
use super::StreamingCf;
use crate::error::{KernelError, Result};
use crate::filter::checks::check_finite;
use serde::{Deserialize, Serialize};

/// ObsPy 1.5 `delayed_sta_lta(a, nsta, nlta)`, reproduced literally:
///
/// `sta_i = (a_i² + a_{i-nsta}²) / nsta + sta_{i-1}`,
/// `lta_i = (a_{i-nsta-1}² + a_{i-nsta-nlta-1}²) / nlta + lta_{i-1}`,
/// `cf_i = sta_i / lta_i`, with `cf_i = 0` for `i < nlta + nsta + 50`.
///
/// Note ObsPy's recurrences *add* the sample leaving the window (so they
/// are cumulative sums), and its negative indices wrap around to the end of
/// the trace (`a[-1]` is the last sample), which makes this batch form
/// non-causal. Requires at least `nsta + nlta + 1` samples (ObsPy raises
/// `IndexError` below that). Batch only; see [`DelayedStaLta`] for the
/// causal streaming form.
pub fn delayed_sta_lta(data: &[f64], nsta: usize, nlta: usize) -> Result<Vec<f64>> {
    StaLtaWindows::from_samples(nsta, nlta)?;
    check_finite(data, 0)?;
    let m = data.len();
    if m < nsta + nlta + 1 {
        return Err(KernelError::TooShort {
            len: m,
            reason: format!(
                "delayed STA/LTA needs at least nsta + nlta + 1 = {} samples",
                nsta + nlta + 1
            ),
        });
    }
    let at = |j: isize| -> f64 {
        let k = if j < 0 {
            (j + m as isize) as usize
        } else {
            j as usize
        };
        data[k]
    };
    let (ns, nl) = (nsta as isize, nlta as isize);
    let mut sta = vec![0.0; m];
    let mut lta = vec![0.0; m];
    for i in 0..m {
        let ii = i as isize;
        let (sprev, lprev) = if i == 0 {
            (sta[m - 1], lta[m - 1])
        } else {
            (sta[i - 1], lta[i - 1])
        };
        let a0 = at(ii);
        let a1 = at(ii - ns);
        sta[i] = (a0 * a0 + a1 * a1) / nsta as f64 + sprev;
        let b0 = at(ii - ns - 1);
        let b1 = at(ii - ns - nl - 1);
        lta[i] = (b0 * b0 + b1 * b1) / nlta as f64 + lprev;
    }
    let warm = (nlta + nsta + 50).min(m);
    Ok((0..m)
        .map(|i| if i < warm { 0.0 } else { sta[i] / lta[i] })
        .collect())
}

/// Causal streaming form of [`delayed_sta_lta`]: the same recurrences with
/// samples before the start of the stream taken as 0 (instead of ObsPy's
/// wrap-around to the trace end). Equal to [`delayed_sta_lta_causal`] for
/// any chunking; equal to ObsPy's batch output only where the wrapped
/// samples are zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayedStaLta {
    w: StaLtaWindows,
    hist: Ring,
    i: u64,
    sta: f64,
    lta: f64,
}

impl DelayedStaLta {
    pub fn new(w: StaLtaWindows) -> Self {
        DelayedStaLta {
            w,
            hist: Ring::new(w.nsta + w.nlta + 1),
            i: 0,
            sta: 0.0,
            lta: 0.0,
        }
    }
    pub fn from_seconds(sta_s: f64, lta_s: f64, sampling_rate: f64) -> Result<Self> {
        Ok(Self::new(StaLtaWindows::from_seconds(
            sta_s,
            lta_s,
            sampling_rate,
        )?))
    }
    /// Raw sample `age` steps back from the current one (age >= 1), 0 if
    /// before the stream start.
    fn back(&self, age: usize) -> f64 {
        let cap = self.w.nsta + self.w.nlta + 1;
        let held = if self.hist.is_full() {
            cap
        } else {
            self.i as usize
        };
        if age > held {
            0.0
        } else {
            self.hist.nth_oldest(held - age)
        }
    }
}

impl StreamingCf for DelayedStaLta {
    fn process(&mut self, input: &[f64], out: &mut Vec<f64>) -> Result<()> {
        check_finite(input, self.i as usize)?;
        out.reserve(input.len());
        let (nsta, nlta) = (self.w.nsta, self.w.nlta);
        let warm = (nsta + nlta + 50) as u64;
        for &x in input {
            let a1 = self.back(nsta);
            let b0 = self.back(nsta + 1);
            let b1 = self.back(nsta + nlta + 1);
            self.sta += (x * x + a1 * a1) / nsta as f64;
            self.lta += (b0 * b0 + b1 * b1) / nlta as f64;
            out.push(if self.i < warm {
                0.0
            } else {
                self.sta / self.lta
            });
            self.hist.push(x);
            self.i += 1;
        }
        Ok(())
    }
    fn reset(&mut self) {
        *self = Self::new(self.w);
    }
}

/// One-shot [`DelayedStaLta`] (causal variant of ObsPy's delayed STA/LTA).
pub fn delayed_sta_lta_causal(data: &[f64], nsta: usize, nlta: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(data.len());
    DelayedStaLta::new(StaLtaWindows::from_samples(nsta, nlta)?).process(data, &mut out)?;
    Ok(out)
}
