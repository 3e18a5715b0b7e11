//! NumPy's float64 summation (`np.sum`/`np.mean`/`np.std` on a contiguous
//! array): pairwise summation with an 8-way unrolled base case, applied to
//! consecutive blocks of 8192 elements (the ufunc buffer size) that are
//! accumulated sequentially. Reproducing it makes means match bit for bit.

const BLOCK: usize = 8192;

fn pairwise(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        for c in a[8..full].chunks_exact(8) {
            for (rj, &cj) in r.iter_mut().zip(c) {
                *rj += cj;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[full..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise(&a[..n2]) + pairwise(&a[n2..])
    }
}

/// `np.sum(a)` for a contiguous float64 array.
pub(crate) fn np_sum(a: &[f64]) -> f64 {
    let mut acc = 0.0;
    for block in a.chunks(BLOCK) {
        acc += pairwise(block);
    }
    acc
}

/// `np.mean(a)`.
pub(crate) fn np_mean(a: &[f64]) -> f64 {
    np_sum(a) / a.len() as f64
}

/// `np.std(a)` (population, ddof = 0).
pub(crate) fn np_std(a: &[f64]) -> f64 {
    let m = np_mean(a);
    let sq: Vec<f64> = a.iter().map(|&x| (x - m) * (x - m)).collect();
    (np_sum(&sq) / a.len() as f64).sqrt()
}
