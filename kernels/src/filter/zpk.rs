//! Analog prototypes and frequency transforms in zero-pole-gain form, as
//! `scipy.signal` (`buttap`, `cheb2ap`, `lp2{lp,hp,bp,bs}_zpk`,
//! `bilinear_zpk`). Internal: the public entry points are in `design`.

use super::complex::{prod, C};
use std::f64::consts::PI;

#[derive(Debug, Clone)]
pub(crate) struct Zpk {
    pub z: Vec<C>,
    pub p: Vec<C>,
    pub k: f64,
}

impl Zpk {
    fn degree(&self) -> usize {
        self.p.len().saturating_sub(self.z.len())
    }
}

/// `scipy.signal.buttap(n)`: poles `-exp(i*pi*m/(2n))`, `m = -n+1, -n+3, ..., n-1`.
pub(crate) fn buttap(n: usize) -> Zpk {
    let nn = n as i64;
    let p = (0..n)
        .map(|i| {
            let m = -nn + 1 + 2 * i as i64;
            -C::cis(PI * m as f64 / (2 * nn) as f64)
        })
        .collect();
    Zpk {
        z: Vec::new(),
        p,
        k: 1.0,
    }
}

/// `scipy.signal.cheb2ap(n, rs)`: Chebyshev type II analog prototype.
pub(crate) fn cheb2ap(n: usize, rs: f64) -> Zpk {
    if n == 0 {
        return Zpk {
            z: Vec::new(),
            p: Vec::new(),
            k: 1.0,
        };
    }
    let nn = n as i64;
    let de = 1.0 / (10f64.powf(0.1 * rs) - 1.0).sqrt();
    let mu = (1.0 / de).asinh() / n as f64;
    let ms: Vec<i64> = if n % 2 == 1 {
        (-nn + 1..0).step_by(2).chain((2..nn).step_by(2)).collect()
    } else {
        (-nn + 1..nn).step_by(2).collect()
    };
    // z = -conj(1j / sin(m*pi/(2n)))
    let z: Vec<C> = ms
        .iter()
        .map(|&m| {
            let s = (m as f64 * PI / (2.0 * n as f64)).sin();
            -(C::new(0.0, 1.0) / C::real(s)).conj()
        })
        .collect();
    let p: Vec<C> = (0..n)
        .map(|i| {
            let m = -nn + 1 + 2 * i as i64;
            let q = -C::cis(PI * m as f64 / (2 * nn) as f64);
            let q = C::new(mu.sinh() * q.re, mu.cosh() * q.im);
            C::real(1.0) / q
        })
        .collect();
    let k = (prod(p.iter().map(|&v| -v)) / prod(z.iter().map(|&v| -v))).re;
    Zpk { z, p, k }
}

pub(crate) fn lp2lp(f: Zpk, wo: f64) -> Zpk {
    let degree = f.degree();
    Zpk {
        z: f.z.iter().map(|&v| v.scale(wo)).collect(),
        p: f.p.iter().map(|&v| v.scale(wo)).collect(),
        k: f.k * wo.powf(degree as f64),
    }
}

pub(crate) fn lp2hp(f: Zpk, wo: f64) -> Zpk {
    let degree = f.degree();
    let w = C::real(wo);
    let mut z: Vec<C> = f.z.iter().map(|&v| w / v).collect();
    z.extend(std::iter::repeat_n(C::real(0.0), degree));
    let p = f.p.iter().map(|&v| w / v).collect();
    let k = f.k * (prod(f.z.iter().map(|&v| -v)) / prod(f.p.iter().map(|&v| -v))).re;
    Zpk { z, p, k }
}

fn shift_band(v: &[C], wo: f64) -> Vec<C> {
    let w2 = C::real(wo * wo);
    let plus = v.iter().map(|&x| x + (x * x - w2).sqrt());
    let minus = v.iter().map(|&x| x - (x * x - w2).sqrt());
    plus.chain(minus).collect()
}

pub(crate) fn lp2bp(f: Zpk, wo: f64, bw: f64) -> Zpk {
    let degree = f.degree();
    let z_lp: Vec<C> = f.z.iter().map(|&v| v.scale(bw).scale(0.5)).collect();
    let p_lp: Vec<C> = f.p.iter().map(|&v| v.scale(bw).scale(0.5)).collect();
    let mut z = shift_band(&z_lp, wo);
    z.extend(std::iter::repeat_n(C::real(0.0), degree));
    Zpk {
        z,
        p: shift_band(&p_lp, wo),
        k: f.k * bw.powf(degree as f64),
    }
}

pub(crate) fn lp2bs(f: Zpk, wo: f64, bw: f64) -> Zpk {
    let degree = f.degree();
    let h = C::real(bw / 2.0);
    let z_hp: Vec<C> = f.z.iter().map(|&v| h / v).collect();
    let p_hp: Vec<C> = f.p.iter().map(|&v| h / v).collect();
    let mut z = shift_band(&z_hp, wo);
    z.extend(std::iter::repeat_n(C::new(0.0, wo), degree));
    z.extend(std::iter::repeat_n(C::new(0.0, -wo), degree));
    let k = f.k * (prod(f.z.iter().map(|&v| -v)) / prod(f.p.iter().map(|&v| -v))).re;
    Zpk {
        z,
        p: shift_band(&p_hp, wo),
        k,
    }
}

/// `scipy.signal.bilinear_zpk(z, p, k, fs)`.
pub(crate) fn bilinear(f: Zpk, fs: f64) -> Zpk {
    let degree = f.degree();
    let fs2 = C::real(2.0 * fs);
    let mut z: Vec<C> = f.z.iter().map(|&v| (fs2 + v) / (fs2 - v)).collect();
    z.extend(std::iter::repeat_n(C::real(-1.0), degree));
    let p = f.p.iter().map(|&v| (fs2 + v) / (fs2 - v)).collect();
    let k = f.k * (prod(f.z.iter().map(|&v| fs2 - v)) / prod(f.p.iter().map(|&v| fs2 - v))).re;
    Zpk { z, p, k }
}
