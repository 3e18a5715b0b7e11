//! carlSTAtrig (ObsPy `carl_sta_trig`).

use super::ring::Ring;
use super::windows::StaLtaWindows;
use super::StreamingCf;
use crate::error::{KernelError, Result};
use crate::filter::checks::{check_finite, check_finite_param};
use serde::{Deserialize, Serialize};

/// Streaming carlSTAtrig, identical to ObsPy 1.5
/// `carl_sta_trig(a, nsta, nlta, ratio, quiet)`. On the raw (unsquared)
/// samples, with trailing means that exclude the current sample
/// (`mean_n(x)_i = sum(x[i-n..i]) / n`, 0 for `i < n`):
///
/// * `sta = mean_nsta(a)`, `lta_i = mean_nlta(sta)_{i-1}` (`lta_0 = 0`),
/// * `star = mean_nsta(|a - lta|)`, `ltar = mean_nlta(star)`,
/// * `eta = star - ratio * ltar - |sta - lta| - quiet`.
///
/// Warm-up: `eta_i = -1` for `i < nlta`. Units of `a`. The windowed sums are
/// recomputed in ObsPy's accumulation order from ring buffers, so any
/// chunking gives bit-identical output (cost O(nsta + nlta) per sample).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarlStaTrig {
    w: StaLtaWindows,
    ratio: f64,
    quiet: f64,
    a_hist: Ring,
    sta_hist: Ring,
    d_hist: Ring,
    star_hist: Ring,
    prev_lta0: f64,
    i: u64,
}

impl CarlStaTrig {
    pub fn new(w: StaLtaWindows, ratio: f64, quiet: f64) -> Result<Self> {
        check_finite_param("ratio", ratio)?;
        check_finite_param("quiet", quiet)?;
        Ok(CarlStaTrig {
            w,
            ratio,
            quiet,
            a_hist: Ring::new(w.nsta),
            sta_hist: Ring::new(w.nlta),
            d_hist: Ring::new(w.nsta),
            star_hist: Ring::new(w.nlta),
            prev_lta0: 0.0,
            i: 0,
        })
    }
    pub fn from_seconds(
        sta_s: f64,
        lta_s: f64,
        sampling_rate: f64,
        ratio: f64,
        quiet: f64,
    ) -> Result<Self> {
        Self::new(
            StaLtaWindows::from_seconds(sta_s, lta_s, sampling_rate)?,
            ratio,
            quiet,
        )
    }
}

impl StreamingCf for CarlStaTrig {
    fn process(&mut self, input: &[f64], out: &mut Vec<f64>) -> Result<()> {
        check_finite(input, self.i as usize)?;
        out.reserve(input.len());
        let (nsta, nlta) = (self.w.nsta as u64, self.w.nlta as u64);
        let (fs, fl) = (self.w.nsta as f64, self.w.nlta as f64);
        for &a in input {
            let i = self.i;
            let sta = if i < nsta {
                0.0
            } else {
                self.a_hist.seq_sum() / fs
            };
            let lta0 = if i < nlta {
                0.0
            } else {
                self.sta_hist.seq_sum() / fl
            };
            let lta = if i == 0 { 0.0 } else { self.prev_lta0 };
            let star = if i < nsta {
                0.0
            } else {
                self.d_hist.seq_sum() / fs
            };
            let ltar = if i < nlta {
                0.0
            } else {
                self.star_hist.seq_sum() / fl
            };
            let eta = if i < nlta {
                -1.0
            } else {
                star - self.ratio * ltar - (sta - lta).abs() - self.quiet
            };
            out.push(eta);
            self.a_hist.push(a);
            self.sta_hist.push(sta);
            self.d_hist.push((a - lta).abs());
            self.star_hist.push(star);
            self.prev_lta0 = lta0;
            self.i += 1;
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.a_hist.clear();
        self.sta_hist.clear();
        self.d_hist.clear();
        self.star_hist.clear();
        self.prev_lta0 = 0.0;
        self.i = 0;
    }
}

/// One-shot [`CarlStaTrig`]; requires at least `nlta` samples.
pub fn carl_sta_trig(
    data: &[f64],
    nsta: usize,
    nlta: usize,
    ratio: f64,
    quiet: f64,
) -> Result<Vec<f64>> {
    let w = StaLtaWindows::from_samples(nsta, nlta)?;
    if data.len() < nlta {
        return Err(KernelError::TooShort {
            len: data.len(),
            reason: format!("carl_sta_trig needs at least nlta = {nlta} samples"),
        });
    }
    let mut out = Vec::with_capacity(data.len());
    CarlStaTrig::new(w, ratio, quiet)?.process(data, &mut out)?;
    Ok(out)
}
