//! Integer decimation as ObsPy's `Trace.decimate`.

use super::checks::{check_finite, check_sampling_rate};
use super::design::lowpass_cheby2;
use super::sos::SosFilter;
use crate::error::{invalid, Result};
use serde::{Deserialize, Serialize};

/// Streaming decimator: optional anti-alias filter, then keeps every
/// `factor`-th sample (`data[::factor]`, global sample index 0 kept).
///
/// The anti-alias filter is ObsPy's default for `Trace.decimate`:
/// `lowpass_cheby_2(freq = sr * 0.5 / factor, maxorder = 12)` (96 dB at
/// the new Nyquist), applied causally with `sosfilt`. As in ObsPy, factors
/// above 16 are refused when filtering. Any chunking gives identical output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decimator {
    factor: usize,
    filter: Option<SosFilter>,
    phase: usize,
}

impl Decimator {
    /// `no_filter = true` is ObsPy's `decimate(no_filter=True)`.
    pub fn new(factor: usize, sampling_rate: f64, no_filter: bool) -> Result<Self> {
        check_sampling_rate(sampling_rate)?;
        if factor == 0 {
            return Err(invalid("factor", "must be >= 1"));
        }
        let filter = if no_filter {
            None
        } else {
            if factor > 16 {
                return Err(invalid(
                    "factor",
                    "automatic filter design is unstable for decimation factors above 16",
                ));
            }
            if factor == 1 {
                None
            } else {
                let freq = sampling_rate * 0.5 / factor as f64;
                let (sos, _) = lowpass_cheby2(freq, sampling_rate, 12)?;
                Some(SosFilter::new(sos))
            }
        };
        Ok(Decimator {
            factor,
            filter,
            phase: 0,
        })
    }
    pub fn reset(&mut self) {
        self.phase = 0;
        if let Some(f) = &mut self.filter {
            f.reset();
        }
    }
    /// Consumes a chunk (not modified), appending decimated samples to `out`.
    pub fn process(&mut self, input: &[f64], out: &mut Vec<f64>) -> Result<()> {
        check_finite(input, 0)?;
        let mut buf;
        let data: &[f64] = match &mut self.filter {
            Some(f) => {
                buf = input.to_vec();
                f.process_in_place(&mut buf)?;
                &buf
            }
            None => input,
        };
        let first = (self.factor - self.phase) % self.factor;
        out.extend(data.iter().skip(first).step_by(self.factor));
        self.phase = (self.phase + data.len()) % self.factor;
        Ok(())
    }
}

/// One-shot `Trace.decimate(factor, no_filter)`.
pub fn decimate(
    data: &[f64],
    factor: usize,
    sampling_rate: f64,
    no_filter: bool,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(data.len() / factor.max(1) + 1);
    Decimator::new(factor, sampling_rate, no_filter)?.process(data, &mut out)?;
    Ok(out)
}
