//! Minimal complex arithmetic mirroring NumPy's `complex128` loops, used
//! only by filter design (pole/zero algebra).

use std::ops::{Add, Div, Mul, Neg, Sub};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct C {
    pub re: f64,
    pub im: f64,
}

impl C {
    pub const fn new(re: f64, im: f64) -> Self {
        C { re, im }
    }
    pub const fn real(re: f64) -> Self {
        C { re, im: 0.0 }
    }
    pub fn conj(self) -> Self {
        C::new(self.re, -self.im)
    }
    /// `np.abs` (hypot).
    pub fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
    /// `np.isreal`: imaginary part exactly zero.
    pub fn is_real(self) -> bool {
        self.im == 0.0
    }
    /// Principal square root (C99 `csqrt` semantics for finite input).
    pub fn sqrt(self) -> Self {
        let (x, y) = (self.re, self.im);
        if x == 0.0 && y == 0.0 {
            return C::new(0.0, y);
        }
        let t = ((x.abs() + x.hypot(y)) * 0.5).sqrt();
        if x >= 0.0 {
            C::new(t, y / (2.0 * t))
        } else {
            C::new(y.abs() / (2.0 * t), t.copysign(y))
        }
    }
    /// `exp(i * theta)`.
    pub fn cis(theta: f64) -> Self {
        C::new(theta.cos(), theta.sin())
    }
    pub fn scale(self, s: f64) -> Self {
        C::new(self.re * s, self.im * s)
    }
}

impl Add for C {
    type Output = C;
    fn add(self, o: C) -> C {
        C::new(self.re + o.re, self.im + o.im)
    }
}
impl Sub for C {
    type Output = C;
    fn sub(self, o: C) -> C {
        C::new(self.re - o.re, self.im - o.im)
    }
}
impl Neg for C {
    type Output = C;
    fn neg(self) -> C {
        C::new(-self.re, -self.im)
    }
}
impl Mul for C {
    type Output = C;
    fn mul(self, o: C) -> C {
        C::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
}
impl Div for C {
    type Output = C;
    /// NumPy's complex division (Smith's algorithm with a reciprocal scale).
    fn div(self, o: C) -> C {
        let (ar, ai, br, bi) = (self.re, self.im, o.re, o.im);
        if br.abs() >= bi.abs() {
            if br == 0.0 && bi == 0.0 {
                return C::new(ar / br.abs(), ai / br.abs());
            }
            let rat = bi / br;
            let scl = 1.0 / (br + bi * rat);
            C::new((ar + ai * rat) * scl, (ai - ar * rat) * scl)
        } else {
            let rat = br / bi;
            let scl = 1.0 / (bi + br * rat);
            C::new((ar * rat + ai) * scl, (ai * rat - ar) * scl)
        }
    }
}

/// `np.prod` of a sequence (sequential product, 1 for empty).
pub(crate) fn prod(it: impl IntoIterator<Item = C>) -> C {
    let mut acc: Option<C> = None;
    for v in it {
        acc = Some(match acc {
            None => v,
            Some(a) => a * v,
        });
    }
    acc.unwrap_or(C::real(1.0))
}
