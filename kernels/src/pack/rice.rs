//! Adaptive Golomb–Rice coding of zig-zagged residuals, in blocks of
//! [`BLOCK`]. Each block stores its Rice parameter `k` (6 bits), then each
//! value `u` as `u >> k` in unary and its low `k` bits. A quotient of
//! [`ESCAPE`] or more (a spike) is written as [`ESCAPE`] ones, the bit
//! length `L` of `u` (7 bits) and `u` in `L` bits, so no value costs more
//! than 103 bits.
//!
//! Why Rice rather than Steim-2's fixed nibble widths: for residuals of
//! roughly Laplacian or Gaussian spread (seismic noise after
//! differencing) Rice coding is within a few percent of their entropy,
//! while Steim-2 rounds each sample up to its word's width class and
//! spends 2 bits of control per sample group; measured per file in
//! BENCHMARKS.md.

use super::bits::{BitReader, BitWriter};
use super::PackError;

pub const BLOCK: usize = 16;
const ESCAPE: u32 = 24;

/// Bits `u` costs with parameter `k`.
#[inline]
fn cost(u: u64, k: u32) -> u64 {
    let q = u >> k;
    if q >= ESCAPE as u64 {
        (ESCAPE + 7 + (64 - u.leading_zeros())) as u64
    } else {
        q + 1 + k as u64
    }
}

/// The cheapest `k` for a block: around log2 of its mean, checked exactly.
fn best_k(block: &[u64]) -> u32 {
    let mean = block.iter().map(|&u| u as u128).sum::<u128>() / block.len() as u128;
    let guess = (128 - mean.leading_zeros()).saturating_sub(1).min(62);
    let total = |k: u32| block.iter().map(|&u| cost(u, k)).sum::<u64>();
    let lo = guess.saturating_sub(1);
    (lo..=(guess + 1).min(62))
        .min_by_key(|&k| (total(k), k))
        .unwrap_or(0)
}

pub fn encode(values: &[u64], w: &mut BitWriter<'_>) {
    for block in values.chunks(BLOCK) {
        let k = best_k(block);
        w.put(k as u64, 6);
        for &u in block {
            let q = u >> k;
            if q >= ESCAPE as u64 {
                w.put_unary_ones(ESCAPE);
                let len = 64 - u.leading_zeros();
                w.put(len as u64, 7);
                w.put(u, len);
            } else {
                w.put_unary(q as u32);
                w.put(u, k);
            }
        }
    }
}

/// Decodes `n` values into `out`.
pub fn decode(n: usize, r: &mut BitReader<'_>, out: &mut Vec<u64>) -> Result<(), PackError> {
    let mut left = n;
    while left > 0 {
        let k = r.get(6)? as u32;
        if k > 62 {
            return Err(PackError::Header("Rice parameter above 62"));
        }
        for _ in 0..left.min(BLOCK) {
            let q = r.get_unary(ESCAPE)?;
            let u = if q == ESCAPE {
                let len = r.get(7)? as u32;
                if len > 64 {
                    return Err(PackError::Header("escaped value longer than 64 bits"));
                }
                r.get(len)?
            } else {
                ((q as u64) << k) | r.get(k)?
            };
            out.push(u);
        }
        left -= left.min(BLOCK);
    }
    Ok(())
}
