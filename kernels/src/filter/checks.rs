//! Shared input validation for the seismic kernels (`filter`, `detect`).

use crate::error::{invalid, KernelError, Result};

pub(crate) fn check_sampling_rate(sr: f64) -> Result<()> {
    if sr.is_finite() && sr > 0.0 {
        Ok(())
    } else {
        Err(KernelError::InvalidSamplingRate(sr))
    }
}

pub(crate) fn check_positive_finite(name: &'static str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(invalid(name, format!("{v} must be finite and > 0")))
    }
}

pub(crate) fn check_finite_param(name: &'static str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(invalid(name, format!("{v} must be finite")))
    }
}

/// First non-finite sample, as an error (`offset` is added to the index).
pub(crate) fn check_finite(data: &[f64], offset: usize) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(KernelError::NonFinite {
            index: offset + i,
            value: data[i],
        }),
    }
}

pub(crate) fn check_nonempty(data: &[f64]) -> Result<()> {
    if data.is_empty() {
        Err(KernelError::TooShort {
            len: 0,
            reason: "trace is empty".into(),
        })
    } else {
        Ok(())
    }
}

/// `int(seconds * sampling_rate)` as ObsPy's `Trace.trigger` does (truncation),
/// required to be >= `min`.
pub(crate) fn seconds_to_samples(
    name: &'static str,
    seconds: f64,
    sampling_rate: f64,
    min: usize,
) -> Result<usize> {
    check_sampling_rate(sampling_rate)?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(invalid(
            name,
            format!("{seconds} s must be finite and >= 0"),
        ));
    }
    let n = (seconds * sampling_rate) as usize;
    if n < min {
        return Err(invalid(
            name,
            format!("{seconds} s at {sampling_rate} Hz is {n} samples; need at least {min}"),
        ));
    }
    Ok(n)
}
