//! Classic STA/LTA (ObsPy `classic_sta_lta`, C `stalta.c`).

use super::ring::Ring;
use super::windows::StaLtaWindows;
use super::StreamingCf;
use crate::error::{KernelError, Result};
use crate::filter::checks::check_finite;
use serde::{Deserialize, Serialize};

/// Streaming classic STA/LTA on squared samples, identical to ObsPy 1.5
/// `classic_sta_lta(a, nsta, nlta)` (running sums of `a**2`):
///
/// `sta_i = sum(a[i-nsta+1..=i]**2)`, `lta_i = sum(a[i-nlta+1..=i]**2)`,
/// `cf_i = sta_i / lta_i * nlta / nsta` (the ratio of the *means*), updated as
/// ObsPy's C code does: `sta += a_i² - a_{i-nsta}²`, `lta += a_i² - a_{i-nlta}²`.
///
/// Warm-up: `cf_i = 0` for `i < nlta - 1`. Dimensionless. An all-zero LTA
/// window gives NaN (0/0), as in ObsPy. State: the last `nlta` squared
/// samples, so any chunking gives bit-identical output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassicStaLta {
    w: StaLtaWindows,
    sq: Ring,
    i: u64,
    sta: f64,
    lta: f64,
}

impl ClassicStaLta {
    pub fn new(w: StaLtaWindows) -> Self {
        ClassicStaLta {
            w,
            sq: Ring::new(w.nlta),
            i: 0,
            sta: 0.0,
            lta: 0.0,
        }
    }
    /// `sta`, `lta` in seconds → `int(s * sr)` samples (ObsPy `Trace.trigger`).
    pub fn from_seconds(sta_s: f64, lta_s: f64, sampling_rate: f64) -> Result<Self> {
        Ok(Self::new(StaLtaWindows::from_seconds(
            sta_s,
            lta_s,
            sampling_rate,
        )?))
    }
}

impl StreamingCf for ClassicStaLta {
    fn process(&mut self, input: &[f64], out: &mut Vec<f64>) -> Result<()> {
        check_finite(input, self.i as usize)?;
        out.reserve(input.len());
        let (nsta, nlta) = (self.w.nsta as u64, self.w.nlta as u64);
        let frac = self.w.nlta as f64 / self.w.nsta as f64;
        let off_sta = self.w.nlta - self.w.nsta;
        for &x in input {
            let i = self.i;
            let buf = x * x;
            let cf = if i < nsta {
                self.sta += buf;
                if i == nsta - 1 {
                    self.lta = self.sta;
                }
                0.0
            } else if i < nlta {
                self.lta += buf;
                self.sta += buf - self.sq.nth_oldest((i - nsta) as usize);
                if i == nlta - 1 {
                    self.sta / self.lta * frac
                } else {
                    0.0
                }
            } else {
                // ring holds squares of samples i-nlta ..= i-1
                self.sta += buf - self.sq.nth_oldest(off_sta);
                self.lta += buf - self.sq.nth_oldest(0);
                self.sta / self.lta * frac
            };
            self.sq.push(buf);
            out.push(cf);
            self.i += 1;
        }
        Ok(())
    }
    fn reset(&mut self) {
        *self = Self::new(self.w);
    }
}

/// One-shot [`ClassicStaLta`]; like ObsPy, refuses traces shorter than `nlta`.
pub fn classic_sta_lta(data: &[f64], nsta: usize, nlta: usize) -> Result<Vec<f64>> {
    let w = StaLtaWindows::from_samples(nsta, nlta)?;
    if data.len() < nlta {
        return Err(KernelError::TooShort {
            len: data.len(),
            reason: format!("classic STA/LTA needs at least nlta = {nlta} samples"),
        });
    }
    let mut out = Vec::with_capacity(data.len());
    ClassicStaLta::new(w).process(data, &mut out)?;
    Ok(out)
}
