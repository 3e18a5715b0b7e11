//! SeisComP running-mean high-pass (`RMHP(window)`), causal and streaming.

use super::checks::{check_finite, seconds_to_samples};
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// SeisComP's `RunningMeanHighPass`: `y[i] = x[i] - m[i]` where the running
/// mean is, with `n = int(window * sr)` samples,
/// * warm-up (`i < n`): the plain mean of all samples so far,
///   `m[i] = (m[i-1] * i + x[i]) / (i + 1)`;
/// * afterwards an exponential mean `m[i] = (m[i-1] * (n - 1) + x[i]) / n`.
///
/// Units: those of the input. Any chunking gives identical output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rmhp {
    window: usize,
    count: usize,
    average: f64,
}

impl Rmhp {
    /// `window_s` seconds at `sampling_rate` Hz; needs at least 1 sample.
    pub fn new(window_s: f64, sampling_rate: f64) -> Result<Self> {
        Ok(Rmhp {
            window: seconds_to_samples("window", window_s, sampling_rate, 1)?,
            count: 0,
            average: 0.0,
        })
    }
    pub fn window_samples(&self) -> usize {
        self.window
    }
    pub fn reset(&mut self) {
        self.count = 0;
        self.average = 0.0;
    }
    pub fn process_in_place(&mut self, data: &mut [f64]) -> Result<()> {
        check_finite(data, 0)?;
        let n = self.window;
        let mut rest: &mut [f64] = data;
        if self.count < n {
            let navg = (n - self.count).min(rest.len());
            let (head, tail) = rest.split_at_mut(navg);
            for v in head.iter_mut() {
                let c = self.count as f64;
                self.average = (self.average * c + *v) / (c + 1.0);
                *v -= self.average;
                self.count += 1;
            }
            rest = tail;
        }
        let nf = n as f64;
        let nm1 = (n - 1) as f64;
        for v in rest.iter_mut() {
            self.average = (self.average * nm1 + *v) / nf;
            *v -= self.average;
        }
        Ok(())
    }
}

/// One-shot [`Rmhp`].
pub fn rmhp(data: &[f64], window_s: f64, sampling_rate: f64) -> Result<Vec<f64>> {
    let mut out = data.to_vec();
    Rmhp::new(window_s, sampling_rate)?.process_in_place(&mut out)?;
    Ok(out)
}
