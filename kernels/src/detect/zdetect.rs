//! Z-detector (ObsPy `z_detect`), batch only.

use crate::error::{invalid, KernelError, Result};
use crate::filter::checks::check_finite;
use crate::filter::npsum::{np_mean, np_std};

/// ObsPy 1.5 `z_detect(a, nsta)` (Swindell & Snell 1977): with the
/// cumulative energy `C_i = sum(a[0..=i]**2)`, the one-sample-delayed STA
/// sum `s_i = C_{i-1} - C_{i-nsta-1}` (`s_nsta = C_{nsta-1}`, `s_i = 0` for
/// `i < nsta`) is standardised over the whole trace: `z = (s - mean(s)) /
/// std(s)` (NumPy summation). Dimensionless. A constant `s` gives NaN as in
/// ObsPy. Batch only (needs the whole-trace mean and deviation).
pub fn z_detect(data: &[f64], nsta: usize) -> Result<Vec<f64>> {
    if nsta == 0 {
        return Err(invalid("sta", "window must be at least 1 sample"));
    }
    check_finite(data, 0)?;
    let m = data.len();
    if m <= nsta {
        return Err(KernelError::TooShort {
            len: m,
            reason: format!("z_detect needs more than nsta = {nsta} samples"),
        });
    }
    let mut c = Vec::with_capacity(m);
    let mut acc = 0.0;
    for &x in data {
        acc += x * x;
        c.push(acc);
    }
    let mut s = vec![0.0; m];
    s[nsta] = c[nsta - 1];
    for k in nsta + 1..m {
        s[k] = c[k - 1] - c[k - nsta - 1];
    }
    let mean = np_mean(&s);
    let std = np_std(&s);
    Ok(s.iter().map(|&v| (v - mean) / std).collect())
}
