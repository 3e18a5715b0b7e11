//! Baer–Kradolfer P picker (ObsPy `pk_baer`, C `ppick` in `pk_mbaer.c`).

use crate::error::{invalid, KernelError, Result};
use serde::{Deserialize, Serialize};

/// Parameters of [`pk_baer`], named and typed as ObsPy's
/// `pk_baer(reltrc, samp_int, tdownmax, tupevent, thr1, thr2, preset_len, p_dur)`.
/// Floats are rounded to `f32` as ObsPy's ctypes call does; counts are
/// samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BaerParams {
    /// Sampling rate in Hz (ObsPy calls it `samp_int`); scales the
    /// derivative. Finite and > 0.
    pub samp_int: f64,
    /// Samples the CF may stay below `thr1` before the trigger is examined.
    pub tdownmax: usize,
    /// Minimum trigger length (samples) for a pick.
    pub tupevent: usize,
    /// Trigger threshold S1 on the CF.
    pub thr1: f64,
    /// The CF mean and sigma are updated while the CF is below S2 = `thr2`.
    pub thr2: f64,
    /// Samples used for the initial estimates; no trigger before sample
    /// `2 * preset_len`. At least 2.
    pub preset_len: usize,
    /// Samples after the trigger over which the P amplitude (quality) is
    /// taken.
    pub p_dur: usize,
}

/// Result of [`pk_baer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaerPick {
    /// ObsPy's returned pick: `C ptime + 1`, i.e. the 0-based index of the
    /// first triggered sample **plus one** (ObsPy's off-by-one is kept).
    /// `None` where ObsPy returns `(1, "")` (no pick).
    pub pick: Option<usize>,
    /// ObsPy's phase info: onset `I`/`E`, `P`, first motion `U`/`D`
    /// (a space if the derivative was exactly 0 at the trigger), quality
    /// `0`–`4`, e.g. `"IPU0"`. Empty without a pick.
    pub phase: String,
}

/// Upper bound on `preset_len`: the C code forms `preset_len²` in an `int`.
const MAX_PRESET_LEN: usize = 46_340;

/// ObsPy 1.5 `pk_baer` (Baer & Kradolfer 1987, BSSA 77(4)), a faithful
/// port of ObsPy's C `ppick` in single precision (`f32` everywhere the C
/// code uses `float`; the input is rounded to `f32` as ObsPy does).
///
/// Sample 0 is ignored (the C code indexes from 1); with `x = reltrc[i]`,
/// `i >= 1`, `fs = samp_int`:
///
/// - derivative `d_i = (x_i - x_{i-1}) * fs` (units of `x` per second;
///   `x_0` is taken as `x_1`, so `d_1 = 0`),
/// - envelope `E_i = (x_i² + ω d_i²)²`, with `ω = Σx²/Σd²` running sums
///   seeded by the preset window `reltrc[2..=preset_len]`, updated after
///   use,
/// - `CF_i = (E_i - μ)/σ` (dimensionless), `μ`, `σ` the mean and standard
///   deviation of `E` over the samples so far where `CF < thr2` or
///   `i <= 2 * preset_len`; `σ` starts from the preset estimate
///   `sqrt(n Σx² - (Σx)²) / n²` (sic, as in ObsPy), `μ` from 0.
///
/// Warm-up: no trigger before `i > 2 * preset_len`. A trigger starts when
/// `CF > thr1` (the paper's bonus for `CF > 4 thr1` is commented out in
/// ObsPy's C code, hence absent); once the CF has been below `thr1` for
/// more than `tdownmax` samples the trigger is kept as the P pick if
/// `i - itar - dtime + 1 >= tupevent` (else dropped). A trigger
/// still on at the end of the trace is examined the same way. Quality from
/// the ratio of the peak integer-scaled amplitude within `p_dur` samples
/// after the first trigger to the amplitude before it: `> 8` → 0, `> 6` → 1
/// (both impulsive `I`), `> 4` → 2, `> 1.5` → 3, else 4 (emergent `E`).
/// First motion from the derivative at the first sample of the trigger:
/// `> 0` → `U`, `< 0` → `D` (ObsPy: "ADC inverts signals").
///
/// Errors: fewer than 2 samples, non-finite samples (or out of `f32`
/// range), `samp_int`/`thr1`/`thr2` not finite in `f32`, `preset_len`
/// outside `2..=min(len - 1, 46340)`, integer parameters beyond the C
/// `int` range (ObsPy reads out of bounds or overflows there).
pub fn pk_baer(reltrc: &[f64], params: &BaerParams) -> Result<BaerPick> {
    ppick(reltrc, params, false).map(|(p, _)| p)
}

/// [`pk_baer`] also returning ObsPy's characteristic function
/// (`return_cf=True`): `len - 1` values, CF of samples `1..`; as in ObsPy
/// it is written only up to the pick (zeros after) and skips samples where
/// `σ <= 0` (zeros left at the end).
pub fn pk_baer_cf(reltrc: &[f64], params: &BaerParams) -> Result<(BaerPick, Vec<f32>)> {
    ppick(reltrc, params, true)
}

fn f32_param(name: &'static str, v: f64) -> Result<f32> {
    let f = v as f32;
    if f.is_finite() {
        Ok(f)
    } else {
        Err(invalid(name, format!("{v} must be finite in float32")))
    }
}

fn int_param(name: &'static str, v: usize, max: usize) -> Result<i64> {
    if v > max {
        Err(invalid(name, format!("{v} exceeds {max}")))
    } else {
        Ok(v as i64)
    }
}

fn validate(reltrc: &[f64], p: &BaerParams) -> Result<(Vec<f32>, f32, f32, f32)> {
    if reltrc.len() < 2 {
        return Err(KernelError::TooShort {
            len: reltrc.len(),
            reason: "pk_baer needs at least 2 samples".into(),
        });
    }
    let imax = i32::MAX as usize;
    if reltrc.len() - 1 > imax {
        return Err(invalid("reltrc", "more than i32::MAX + 1 samples"));
    }
    let mut x = Vec::with_capacity(reltrc.len());
    for (index, &v) in reltrc.iter().enumerate() {
        if !v.is_finite() {
            return Err(KernelError::NonFinite { index, value: v });
        }
        let f = v as f32;
        if !f.is_finite() {
            return Err(invalid(
                "reltrc",
                format!("sample {v} at index {index} overflows float32"),
            ));
        }
        x.push(f);
    }
    let fs = p.samp_int as f32;
    if !(fs.is_finite() && fs > 0.0) {
        return Err(KernelError::InvalidSamplingRate(p.samp_int));
    }
    let thr1 = f32_param("thr1", p.thr1)?;
    let thr2 = f32_param("thr2", p.thr2)?;
    let npts = reltrc.len() - 1;
    if p.preset_len < 2 || p.preset_len > npts.min(MAX_PRESET_LEN) {
        return Err(invalid(
            "preset_len",
            format!(
                "{} must be in 2..={} (trace of {} samples)",
                p.preset_len,
                npts.min(MAX_PRESET_LEN),
                reltrc.len()
            ),
        ));
    }
    int_param("tdownmax", p.tdownmax, imax)?;
    int_param("tupevent", p.tupevent, imax)?;
    int_param("p_dur", p.p_dur, imax - npts)?;
    Ok((x, fs, thr1, thr2))
}

/// Phase string as ObsPy decodes the C `pfm` buffer.
fn phase_info(ifrst: i32, pamp: i64, noise: i64) -> String {
    let xr = pamp as f32 / noise as f32;
    let q = if xr > 8.0 {
        '0'
    } else if xr > 6.0 {
        '1'
    } else if xr > 4.0 {
        '2'
    } else if xr > 1.5 {
        '3'
    } else {
        '4'
    };
    let onset = if q == '0' || q == '1' { 'I' } else { 'E' };
    // ObsPy's buffer starts as five spaces; pfm[2] is left alone if ifrst == 0.
    let motion = match ifrst.signum() {
        -1 => 'U',
        1 => 'D',
        _ => ' ',
    };
    format!("{onset}P{motion}{q}")
}

fn ppick(reltrc: &[f64], p: &BaerParams, want_cf: bool) -> Result<(BaerPick, Vec<f32>)> {
    let (r, fs, thr1, thr2) = validate(reltrc, p)?;
    let npts = r.len() - 1;
    let n = p.preset_len;
    let len2 = 2 * n;
    let (tdownmax, tupevent, p_dur) = (p.tdownmax as i64, p.tupevent as i64, p.p_dur as i64);

    // Integer copy scaled to ±256 (C: (int)(256.0*x/scale + 0.5), in double).
    let mut max = r[1];
    let mut min = r[1];
    for &v in &r[1..] {
        if v > max {
            max = v;
        }
        if v < min {
            min = v;
        }
    }
    let scale = if max.abs() < min.abs() {
        min.abs()
    } else {
        max.abs()
    };
    // scale == 0 (all zero): the C conversion gives INT_MIN, never above
    // amp = 0; `as` gives 0, likewise never above it.
    let iabs = |v: f32| -> i64 { ((256.0 * v as f64 / scale as f64 + 0.5) as i32 as i64).abs() };

    // preset()
    let mut ysv = r[1];
    let mut rawold = ysv;
    let mut sumx = ysv;
    let (mut y2, mut yt) = (0.0f32, 0.0f32);
    for &yy2 in &r[2..=n] {
        let yyt = (yy2 - ysv) * fs;
        ysv = yy2;
        sumx += ysv;
        y2 += yy2 * yy2;
        yt += yyt * yyt;
    }
    let nn = (n * n) as f32;
    let var = n as f32 * y2 - sumx * sumx;
    let mut sdev: f32 = if var / nn > 0.0 {
        ((var as f64).sqrt() / (n * n) as f64) as f32
    } else {
        1.0
    };
    let (mut ssx, mut ssx2) = (0.0f32, 0.0f32);
    let mut num: i32 = 0;
    let mut mean = 0.0f32;

    let mut omega = y2 / yt;
    let mut amp: i64 = 0;
    let mut end_dur: i64 = 0;
    let mut noise: i64 = 0;
    let mut ipkflg: i64 = 0;
    let mut ptime: i64 = 0;
    let mut pamp: i64 = 0;
    let mut ifrst: i32 = 0;
    let mut itar: i64 = 0;
    let mut dtime: i64 = 0;
    let mut edev = 0.0f32;
    let mut cf = if want_cf {
        vec![0.0f32; npts]
    } else {
        Vec::new()
    };
    let mut cf_counter = 0usize;
    let mut phase = String::new();

    for (i, &rdat) in r.iter().enumerate().skip(1) {
        let ii = i as i64;
        let rdif = (rdat - rawold) * fs;
        rawold = rdat;
        let rda2 = rdat * rdat;
        let rdi2 = rdif * rdif;
        y2 += rda2;
        yt += rdi2;
        let mut edat = rda2 + omega * rdi2;
        edat *= edat;
        omega = y2 / yt;

        if sdev > 0.0 {
            edev = (edat - mean) / sdev;
            if want_cf {
                cf[cf_counter] = edev;
            }
            cf_counter += 1;
        }

        let iamp = iabs(rdat);
        if iamp > amp {
            amp = iamp;
        }
        if ii <= end_dur {
            pamp = amp;
        }

        if edev > thr1 && i > len2 {
            if ipkflg == 0 {
                itar = ii;
                ipkflg = 1;
                if ptime == 0 {
                    end_dur = itar + p_dur;
                    if noise == 0 {
                        noise = amp;
                    }
                    if rdif < 0.0 {
                        ifrst = 1;
                    }
                    if rdif > 0.0 {
                        ifrst = -1;
                    }
                }
            }
            // The C code's `ipkflg += 2` bonus for CF > 4 thr1 sits inside a
            // comment, so ObsPy never applies it (ipkflg stays 1).
            dtime = 0;
        } else if ipkflg != 0 {
            dtime += 1;
            if dtime > tdownmax {
                let itrm = ii - itar - dtime + ipkflg;
                if itrm >= tupevent {
                    if ptime == 0 {
                        ptime = itar;
                        phase = phase_info(ifrst, pamp, noise);
                        break;
                    }
                } else {
                    itar = 0;
                }
                ipkflg = 0;
            }
        }

        if edev < thr2 || i <= len2 {
            ssx += edat;
            ssx2 += edat * edat;
            let sum = (num + 1) as f32;
            let v = (sum * ssx2 - ssx * ssx) / (sum * sum);
            sdev = if v >= 0.0 { v.sqrt() } else { 1.0 };
            mean = ssx / sum;
            num = (sum as f64 + 0.5) as i32;
        }
    }
    // End of trace: a trigger still pending is examined once more.
    if ptime == 0 && itar != 0 {
        let itrm = npts as i64 + 1 - itar - dtime + ipkflg;
        if itrm >= tupevent {
            ptime = itar;
            phase = phase_info(ifrst, pamp, noise);
        }
    }
    let pick = (ptime != 0).then(|| ptime as usize + 1);
    Ok((BaerPick { pick, phase }, cf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> BaerParams {
        BaerParams {
            samp_int: 100.0,
            tdownmax: 20,
            tupevent: 60,
            thr1: 7.0,
            thr2: 12.0,
            preset_len: 100,
            p_dur: 100,
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        let x = vec![0.5; 1000];
        assert!(matches!(
            pk_baer(&[1.0], &params()),
            Err(KernelError::TooShort { .. })
        ));
        let mut y = x.clone();
        y[3] = f64::NAN;
        assert!(matches!(
            pk_baer(&y, &params()),
            Err(KernelError::NonFinite { index: 3, .. })
        ));
        y[3] = 1e300;
        assert!(pk_baer(&y, &params()).is_err());
        for p in [
            BaerParams {
                samp_int: 0.0,
                ..params()
            },
            BaerParams {
                thr1: f64::INFINITY,
                ..params()
            },
            BaerParams {
                thr2: 1e40,
                ..params()
            },
            BaerParams {
                preset_len: 1,
                ..params()
            },
            BaerParams {
                preset_len: 1000,
                ..params()
            },
            BaerParams {
                p_dur: usize::MAX,
                ..params()
            },
            BaerParams {
                tdownmax: usize::MAX,
                ..params()
            },
        ] {
            assert!(pk_baer(&x, &p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn picks_onset_and_cf_length() {
        let mut x: Vec<f64> = (0..3000)
            .map(|i| ((i * 7919) % 97) as f64 / 97.0 - 0.5)
            .collect();
        for (k, v) in x[1500..1800].iter_mut().enumerate() {
            *v += 20.0 * (k as f64 * 0.4).sin();
        }
        let (p, cf) = pk_baer_cf(&x, &params()).unwrap();
        assert_eq!(cf.len(), 2999);
        let pick = p.pick.unwrap();
        assert!((1495..1510).contains(&pick), "{p:?}");
        assert_eq!(p.phase.len(), 4);
        assert_eq!(pk_baer(&x, &params()).unwrap(), p);
        let flat = pk_baer(&[0.0; 500], &params()).unwrap();
        assert_eq!(flat.pick, None);
        assert_eq!(flat.phase, "");
    }
}
