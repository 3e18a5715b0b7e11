//! Tapers: ObsPy's `Trace.taper(type='hann')` (batch) and SeisComP's
//! `InitialTaper` (`ITAPER`, streaming).

use super::checks::{check_finite, check_finite_param, check_sampling_rate};
use crate::error::{invalid, Result};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// ObsPy warns (and shortens the taper to the trace) when every requested
/// half-length exceeds half the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaperTooLong;

impl std::fmt::Display for TaperTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "The requested taper is longer than the trace. The taper will be shortened to trace length.",
        )
    }
}

/// `scipy.signal.windows.hann(m, sym=True)`:
/// `w[i] = 0.5 + 0.5 * cos(-pi + i * 2*pi/(m-1))` (`w` = 1 for `m <= 1`).
pub fn hann_window(m: usize) -> Vec<f64> {
    if m <= 1 {
        return vec![1.0; m];
    }
    let step = 2.0 * PI / (m - 1) as f64;
    (0..m)
        .map(|i| {
            let fac = if i == m - 1 {
                PI
            } else {
                i as f64 * step + -PI
            };
            0.5 + 0.5 * fac.cos()
        })
        .collect()
}

/// `Trace.taper(max_percentage, type='hann', max_length, side='both')`.
///
/// Half-length `wlen = min(int(max_percentage * n), int(max_length * sr),
/// int(n / 2))` (absent limits are skipped); both ends are multiplied by the
/// halves of a Hann window of `2*wlen` (if that equals `n`) or `2*wlen + 1`
/// points. Returns ObsPy's warning if the taper had to be shortened.
/// Batch only.
pub fn taper_hann(
    data: &mut [f64],
    sampling_rate: f64,
    max_percentage: Option<f64>,
    max_length: Option<f64>,
) -> Result<Option<TaperTooLong>> {
    check_sampling_rate(sampling_rate)?;
    check_finite(data, 0)?;
    let npts = data.len();
    let mut limits: Vec<i64> = Vec::new();
    if let Some(p) = max_percentage {
        check_finite_param("max_percentage", p)?;
        if p < 0.0 {
            return Err(invalid("max_percentage", "must be >= 0"));
        }
        limits.push((p * npts as f64) as i64);
    }
    if let Some(l) = max_length {
        check_finite_param("max_length", l)?;
        if l < 0.0 {
            return Err(invalid("max_length", "must be >= 0"));
        }
        limits.push((l * sampling_rate) as i64);
    }
    let warning = limits
        .iter()
        .all(|&h| 2 * h > npts as i64)
        .then_some(TaperTooLong);
    limits.push((npts / 2) as i64);
    let wlen = *limits.iter().min().unwrap_or(&0) as usize;
    let sides = if 2 * wlen == npts {
        hann_window(2 * wlen)
    } else {
        hann_window(2 * wlen + 1)
    };
    let tail = &sides[sides.len() - wlen..];
    for (v, w) in data[..wlen].iter_mut().zip(&sides[..wlen]) {
        *v *= w;
    }
    let start = npts - wlen;
    for (v, w) in data[start..].iter_mut().zip(tail) {
        *v *= w;
    }
    Ok(warning)
}

/// SeisComP `InitialTaper` (`ITAPER(length)`): the first
/// `n = int(length * sr)` samples are multiplied by a rising half cosine,
/// `y[i] = (x[i] - offset) * 0.5 * (1 - cos(pi * i / n)) + offset`; later
/// samples pass unchanged. Causal; any chunking gives identical output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitialTaper {
    length: usize,
    count: usize,
    offset: f64,
}

impl InitialTaper {
    pub fn new(length_s: f64, sampling_rate: f64, offset: f64) -> Result<Self> {
        check_sampling_rate(sampling_rate)?;
        check_finite_param("offset", offset)?;
        if !length_s.is_finite() || length_s < 0.0 {
            return Err(invalid("length", "must be finite and >= 0"));
        }
        Ok(InitialTaper {
            length: (length_s * sampling_rate) as usize,
            count: 0,
            offset,
        })
    }
    pub fn reset(&mut self) {
        self.count = 0;
    }
    pub fn process_in_place(&mut self, data: &mut [f64]) -> Result<()> {
        check_finite(data, 0)?;
        if self.count >= self.length {
            return Ok(());
        }
        let n = self.length as f64;
        for v in data.iter_mut() {
            if self.count >= self.length {
                break;
            }
            let frac = self.count as f64 / n;
            self.count += 1;
            *v = (*v - self.offset) * 0.5 * (1.0 - (PI * frac).cos()) + self.offset;
        }
        Ok(())
    }
}
