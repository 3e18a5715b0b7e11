//! SeisComP `STALTA` on |x| (`stalta_abs`).

use super::StreamingCf;
use crate::error::{invalid, Result};
use crate::filter::checks::{check_finite, check_sampling_rate};
use serde::{Deserialize, Serialize};

/// SeisComP's `STALTA(sta, lta)` filter on absolute amplitudes (SeisComP ≥ 4
/// `Math::Filtering::STALTA`). Windows `n = int(seconds * sr + 0.5)`
/// (rounded, unlike ObsPy). With `x = |a_i|` and `k` samples seen:
///
/// * STA: mean of all samples while `k < nsta`, then `sta += (x - sta)/nsta`;
/// * LTA: mean of all samples while `k < nlta`, then
///   `lta += (sta - lta)/nlta` (SeisComP's smoothed, delayed LTA);
/// * output `sta / lta`, and exactly 1 while `k < nsta`.
///
/// Dimensionless; any chunking gives bit-identical output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaLtaAbs {
    nsta: u64,
    nlta: u64,
    count: u64,
    sta: f64,
    lta: f64,
}

impl StaLtaAbs {
    /// Requires `0 < sta_s <= lta_s` and windows of at least one sample.
    pub fn new(sta_s: f64, lta_s: f64, sampling_rate: f64) -> Result<Self> {
        check_sampling_rate(sampling_rate)?;
        if !(sta_s.is_finite() && sta_s > 0.0) {
            return Err(invalid("sta", "STA length must be positive"));
        }
        if !(lta_s.is_finite() && lta_s > 0.0) {
            return Err(invalid("lta", "LTA length must be positive"));
        }
        if sta_s > lta_s {
            return Err(invalid("sta", "STA length must not exceed LTA length"));
        }
        let nsta = (sta_s * sampling_rate + 0.5) as u64;
        let nlta = (lta_s * sampling_rate + 0.5) as u64;
        if nsta == 0 {
            return Err(invalid("sta", "STA window is shorter than one sample"));
        }
        Ok(StaLtaAbs {
            nsta,
            nlta,
            count: 0,
            sta: 0.0,
            lta: 0.0,
        })
    }
}

impl StreamingCf for StaLtaAbs {
    fn process(&mut self, input: &[f64], out: &mut Vec<f64>) -> Result<()> {
        check_finite(input, self.count as usize)?;
        out.reserve(input.len());
        let norm_sta = 1.0 / self.nsta as f64;
        let norm_lta = 1.0 / self.nlta as f64;
        for &a in input {
            let x = a.abs();
            let k = self.count;
            if k < self.nsta {
                self.sta = (self.sta * k as f64 + x) * (1.0 / (k + 1) as f64);
            } else {
                self.sta += (x - self.sta) * norm_sta;
            }
            if k < self.nlta {
                self.lta = (self.lta * k as f64 + x) * (1.0 / (k + 1) as f64);
            } else {
                self.lta += (self.sta - self.lta) * norm_lta;
            }
            out.push(if k < self.nsta {
                1.0
            } else {
                self.sta / self.lta
            });
            self.count += 1;
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.count = 0;
        self.sta = 0.0;
        self.lta = 0.0;
    }
}

/// One-shot [`StaLtaAbs`].
pub fn stalta_abs(data: &[f64], sta_s: f64, lta_s: f64, sampling_rate: f64) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(data.len());
    StaLtaAbs::new(sta_s, lta_s, sampling_rate)?.process(data, &mut out)?;
    Ok(out)
}
