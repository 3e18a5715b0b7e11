//! Trend removal as ObsPy's `Trace.detrend` (batch only).

use super::checks::{check_finite, check_nonempty};
use super::npsum::np_mean;
use crate::error::{KernelError, Result};

/// `Trace.detrend('demean')` (`scipy.signal.detrend(type='constant')`):
/// `x[i] -= mean(x)`, the mean summed exactly as NumPy does. Batch only.
pub fn demean(data: &mut [f64]) -> Result<()> {
    check_nonempty(data)?;
    check_finite(data, 0)?;
    let m = np_mean(data);
    data.iter_mut().for_each(|v| *v -= m);
    Ok(())
}

/// `Trace.detrend('simple')` (`obspy.signal.detrend.simple`): subtracts the
/// line through the first and last samples,
/// `x[i] -= x[0] + i * (x[n-1] - x[0]) / (n - 1)`. Needs `n >= 2`. Batch only.
pub fn detrend_simple(data: &mut [f64]) -> Result<()> {
    check_finite(data, 0)?;
    let n = data.len();
    if n < 2 {
        return Err(KernelError::TooShort {
            len: n,
            reason: "simple detrend needs at least 2 samples".into(),
        });
    }
    let (x1, x2) = (data[0], data[n - 1]);
    let d = x2 - x1;
    let den = (n - 1) as f64;
    for (i, v) in data.iter_mut().enumerate() {
        *v -= x1 + i as f64 * d / den;
    }
    Ok(())
}

/// `Trace.detrend('linear')` (`scipy.signal.detrend(type='linear')`):
/// subtracts the least-squares line `a + b*t`. Solved in closed form on
/// centred time (SciPy uses LAPACK `lstsq`; results agree to rounding,
/// ~1e-12 of the data scale). Batch only.
pub fn detrend_linear(data: &mut [f64]) -> Result<()> {
    check_nonempty(data)?;
    check_finite(data, 0)?;
    let n = data.len();
    if n == 1 {
        data[0] = 0.0;
        return Ok(());
    }
    let nf = n as f64;
    let tm = (nf - 1.0) / 2.0;
    let ym = np_mean(data);
    let mut sty = 0.0;
    let mut stt = 0.0;
    for (i, &y) in data.iter().enumerate() {
        let t = i as f64 - tm;
        sty += t * (y - ym);
        stt += t * t;
    }
    let slope = sty / stt;
    for (i, v) in data.iter_mut().enumerate() {
        *v -= ym + slope * (i as f64 - tm);
    }
    Ok(())
}
