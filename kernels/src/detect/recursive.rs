//! Recursive STA/LTA (ObsPy `recursive_sta_lta`, C `recstalta.c`).

use super::windows::StaLtaWindows;
use super::StreamingCf;
use crate::error::{KernelError, Result};
use crate::filter::checks::check_finite;
use serde::{Deserialize, Serialize};

/// Streaming recursive STA/LTA, identical to ObsPy 1.5
/// `recursive_sta_lta(a, nsta, nlta)` (Withers 1998):
///
/// with `csta = 1/nsta`, `clta = 1/nlta`, starting from `sta = lta = 0`,
/// for `i >= 1`: `sta = csta * a_i² + (1 - csta) * sta`,
/// `lta = clta * a_i² + (1 - clta) * lta`, `cf_i = sta / lta`.
///
/// Sample 0 never enters the averages (as in ObsPy's C loop starting at 1).
/// Warm-up: `cf_i = 0` for `i < nlta` (ObsPy zeroes them whenever the trace
/// is longer than `nlta`). Dimensionless. Any chunking gives bit-identical
/// output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecursiveStaLta {
    w: StaLtaWindows,
    i: u64,
    sta: f64,
    lta: f64,
}

impl RecursiveStaLta {
    pub fn new(w: StaLtaWindows) -> Self {
        RecursiveStaLta {
            w,
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

impl StreamingCf for RecursiveStaLta {
    fn process(&mut self, input: &[f64], out: &mut Vec<f64>) -> Result<()> {
        check_finite(input, self.i as usize)?;
        out.reserve(input.len());
        let csta = 1.0 / self.w.nsta as f64;
        let clta = 1.0 / self.w.nlta as f64;
        let (icsta, iclta) = (1.0 - csta, 1.0 - clta);
        let nlta = self.w.nlta as u64;
        for &x in input {
            let cf = if self.i == 0 {
                0.0
            } else {
                let sq = x * x;
                self.sta = csta * sq + icsta * self.sta;
                self.lta = clta * sq + iclta * self.lta;
                if self.i < nlta {
                    0.0
                } else {
                    self.sta / self.lta
                }
            };
            out.push(cf);
            self.i += 1;
        }
        Ok(())
    }
    fn reset(&mut self) {
        *self = Self::new(self.w);
    }
}

/// One-shot [`RecursiveStaLta`]. Requires more than `nlta` samples (ObsPy
/// leaves its output partly uninitialised otherwise).
pub fn recursive_sta_lta(data: &[f64], nsta: usize, nlta: usize) -> Result<Vec<f64>> {
    let w = StaLtaWindows::from_samples(nsta, nlta)?;
    if data.len() <= nlta {
        return Err(KernelError::TooShort {
            len: data.len(),
            reason: format!("recursive STA/LTA needs more than nlta = {nlta} samples"),
        });
    }
    let mut out = Vec::with_capacity(data.len());
    RecursiveStaLta::new(w).process(data, &mut out)?;
    Ok(out)
}
