//! `scipy.signal.zpk2sos(z, p, k, pairing='nearest')` for digital filters.

use super::complex::C;
use crate::error::{invalid, Result};

const TOL: f64 = 100.0 * f64::EPSILON;

/// `_cplxreal`: conjugate pairs (positive imaginary part, averaged) sorted by
/// real part then |imag|, followed by the real elements sorted by value.
fn cplxreal(z: &[C]) -> Result<Vec<C>> {
    if z.is_empty() {
        return Ok(Vec::new());
    }
    let mut z = z.to_vec();
    z.sort_by(|a, b| {
        a.re.total_cmp(&b.re)
            .then_with(|| a.im.abs().total_cmp(&b.im.abs()))
    });
    let is_r = |v: &C| v.im.abs() <= TOL * v.abs();
    let zr: Vec<C> = z
        .iter()
        .filter(|v| is_r(v))
        .map(|v| C::real(v.re))
        .collect();
    let rest: Vec<C> = z.iter().filter(|v| !is_r(v)).copied().collect();
    let mut zp: Vec<C> = rest.iter().filter(|v| v.im > 0.0).copied().collect();
    let mut zn: Vec<C> = rest.iter().filter(|v| v.im < 0.0).copied().collect();
    if zp.len() != zn.len() {
        return Err(invalid("zpk", "complex value with no matching conjugate"));
    }
    // Runs of (approximately) equal real part: sort each by |imag|.
    let mut start = 0;
    while start < zp.len() {
        let mut stop = start;
        while stop + 1 < zp.len() && zp[stop + 1].re - zp[stop].re <= TOL * zp[stop].abs() {
            stop += 1;
        }
        if stop > start {
            for chunk in [&mut zp[start..=stop], &mut zn[start..=stop]] {
                chunk.sort_by(|a, b| a.im.abs().total_cmp(&b.im.abs()));
            }
        }
        start = stop + 1;
    }
    let mut out = Vec::with_capacity(zp.len() + zr.len());
    for (a, b) in zp.iter().zip(&zn) {
        if (*a - b.conj()).abs() > TOL * b.abs() {
            return Err(invalid("zpk", "complex value with no matching conjugate"));
        }
        let s = *a + b.conj();
        out.push(C::new(s.re * 0.5, s.im * 0.5));
    }
    out.extend(zr);
    Ok(out)
}

fn argmin_by(v: &[C], f: impl Fn(C) -> f64) -> usize {
    // np.argmin: index of the first minimum.
    let mut best = 0;
    let mut bv = f64::INFINITY;
    for (i, &x) in v.iter().enumerate() {
        let d = f(x);
        if d < bv {
            best = i;
            bv = d;
        }
    }
    best
}

fn idx_worst(p: &[C]) -> usize {
    argmin_by(p, |x| (1.0 - x.abs()).abs())
}

#[derive(PartialEq, Clone, Copy)]
enum Which {
    Real,
    Complex,
    Any,
}

/// `_nearest_real_complex_idx`.
fn nearest(fro: &[C], to: C, which: Which) -> Result<usize> {
    let mut order: Vec<usize> = (0..fro.len()).collect();
    order.sort_by(|&a, &b| (fro[a] - to).abs().total_cmp(&(fro[b] - to).abs()));
    order
        .into_iter()
        .find(|&i| match which {
            Which::Any => true,
            Which::Real => fro[i].is_real(),
            Which::Complex => !fro[i].is_real(),
        })
        .ok_or_else(|| invalid("zpk", "no zero available for pairing"))
}

/// `np.poly` of up to two roots, real part (roots are conjugate or real).
fn poly(roots: &[C]) -> Vec<f64> {
    let mut a = vec![C::real(1.0)];
    for &r in roots {
        let mut next = vec![C::real(0.0); a.len() + 1];
        for (i, &ai) in a.iter().enumerate() {
            next[i] = next[i] + ai;
            next[i + 1] = next[i + 1] + ai * (-r);
        }
        // np.convolve gives a[0]*1 for the lead and a[i]*1 + a[i-1]*(-r).
        a = next;
    }
    a.iter().map(|c| c.re).collect()
}

fn single_sos(z: &[C], p: &[C]) -> [f64; 6] {
    let mut s = [0.0; 6];
    let b = poly(z);
    let a = poly(p);
    s[3 - b.len()..3].copy_from_slice(&b);
    s[6 - a.len()..6].copy_from_slice(&a);
    s
}

/// Second-order sections from digital zeros, poles and gain, with SciPy's
/// default `'nearest'` pairing and section ordering (poles closest to the
/// unit circle last).
pub(crate) fn zpk2sos(z: &[C], p: &[C], k: f64) -> Result<Vec<[f64; 6]>> {
    if z.is_empty() && p.is_empty() {
        return Ok(vec![[k, 0.0, 0.0, 1.0, 0.0, 0.0]]);
    }
    let mut z = z.to_vec();
    let mut p = p.to_vec();
    let zero = C::real(0.0);
    while p.len() < z.len() {
        p.push(zero);
    }
    while z.len() < p.len() {
        z.push(zero);
    }
    let n_sections = p.len().div_ceil(2);
    if p.len() % 2 == 1 {
        p.push(zero);
        z.push(zero);
    }
    let mut z = cplxreal(&z)?;
    let mut p = cplxreal(&p)?;
    let mut sos = vec![[0.0; 6]; n_sections];
    for si in (0..n_sections).rev() {
        let p1 = p.remove(idx_worst(&p));
        let n_real_p = p.iter().filter(|v| v.is_real()).count();
        if p1.is_real() && n_real_p == 0 {
            let zi = nearest(&z, p1, Which::Real)?;
            let z1 = z.remove(zi);
            sos[si] = single_sos(&[z1, zero], &[p1, zero]);
        } else if p.len() + 1 == z.len()
            && !p1.is_real()
            && n_real_p == 1
            && z.iter().filter(|v| v.is_real()).count() == 1
        {
            let zi = nearest(&z, p1, Which::Complex)?;
            let z1 = z.remove(zi);
            sos[si] = single_sos(&[z1, z1.conj()], &[p1, p1.conj()]);
        } else {
            let p2 = if p1.is_real() {
                let real_idx: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_real()).collect();
                let reals: Vec<C> = real_idx.iter().map(|&i| p[i]).collect();
                let j = real_idx[idx_worst(&reals)];
                p.remove(j)
            } else {
                p1.conj()
            };
            if !z.is_empty() {
                let zi = nearest(&z, p1, Which::Any)?;
                let z1 = z.remove(zi);
                if !z1.is_real() {
                    sos[si] = single_sos(&[z1, z1.conj()], &[p1, p2]);
                } else if !z.is_empty() {
                    let zj = nearest(&z, p1, Which::Real)?;
                    let z2 = z.remove(zj);
                    sos[si] = single_sos(&[z1, z2], &[p1, p2]);
                } else {
                    sos[si] = single_sos(&[z1], &[p1, p2]);
                }
            } else {
                sos[si] = single_sos(&[], &[p1, p2]);
            }
        }
    }
    for c in &mut sos[0][..3] {
        *c *= k;
    }
    Ok(sos)
}
