//! Lane kernels of the multi-channel chain and their runtime CPU dispatch.
//!
//! One generic kernel over `[f64; LANES]` lane arrays, written with exactly
//! the scalar kernels' operations in the same order (no FMA contraction:
//! Rust never fuses `a * b + c`), compiled three times: for AVX-512F
//! (8 channels per instruction), AVX2 (4 per instruction, two vectors per
//! lane group) and the portable baseline. Results are therefore bit-identical
//! whichever instance runs.

use super::LANES;
use serde::{Deserialize, Serialize};

/// One lane per channel of a group.
pub(crate) type Lanes = [f64; LANES];

/// Instruction set the lane kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Isa {
    /// x86-64 AVX-512F: 8 channels advance per instruction.
    Avx512,
    /// x86-64 AVX2: 4 channels advance per instruction.
    Avx2,
    /// Whatever the compilation target guarantees (SSE2 on x86-64: 2 lanes).
    Portable,
}

impl Isa {
    /// Whether this CPU can run `self`.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
    /// The widest instruction set this CPU supports (detected at run time).
    pub fn best() -> Isa {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Portable)
    }
}

/// Recursive STA/LTA constants shared by all lanes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StaLtaCoefs {
    pub csta: f64,
    pub icsta: f64,
    pub clta: f64,
    pub iclta: f64,
    pub nlta: u64,
}

/// What one block pass needs besides the interleaved samples.
pub(crate) struct BlockState<'a> {
    /// Sections `[b0, b1, b2, 1, a1, a2]`.
    pub secs: &'a [[f64; 6]],
    /// Per section: `[z0 lanes, z1 lanes]`.
    pub zi: &'a mut [[Lanes; 2]],
    pub det: Detector<'a>,
}

/// Recursive STA/LTA lanes of a block pass.
pub(crate) struct Detector<'a> {
    pub sta: &'a mut Lanes,
    pub lta: &'a mut Lanes,
    pub k: StaLtaCoefs,
    /// Index (since start) of the block's first sample.
    pub i0: u64,
    /// Out: per lane, max over the block's non-NaN CF values (`-inf` if none).
    pub cf_max: &'a mut Lanes,
}

/// The sections of one sample for all lanes, `SosFilter`'s operation order.
#[inline(always)]
fn sections<const NS: usize>(secs: &[[f64; 6]; NS], z: &mut [[Lanes; 2]; NS], x: &mut Lanes) {
    for s in 0..NS {
        let c = &secs[s];
        let [z0, z1] = &mut z[s];
        for l in 0..LANES {
            let xi = x[l];
            let y = c[0] * xi + z0[l];
            z0[l] = c[1] * xi - c[4] * y + z1[l];
            z1[l] = c[2] * xi - c[5] * y;
            x[l] = y;
        }
    }
}

/// `NS` sections over the block, in place (state kept in registers).
#[inline(always)]
fn filter_pass<const NS: usize>(secs: &[[f64; 6]], zi: &mut [[Lanes; 2]], buf: &mut [Lanes]) {
    let secs: &[[f64; 6]; NS] = secs.try_into().expect("section chunk");
    let zi: &mut [[Lanes; 2]; NS] = zi.try_into().expect("state chunk");
    let mut z = *zi;
    for x in buf.iter_mut() {
        sections(secs, &mut z, x);
    }
    *zi = z;
}

/// Last `NS` sections fused with the recursive STA/LTA: `buf` goes from
/// samples to CF values.
#[inline(always)]
fn final_pass<const NS: usize>(
    secs: &[[f64; 6]],
    zi: &mut [[Lanes; 2]],
    d: &mut Detector<'_>,
    buf: &mut [Lanes],
) {
    let k = d.k;
    let secs: &[[f64; 6]; NS] = secs.try_into().expect("section chunk");
    let zi: &mut [[Lanes; 2]; NS] = zi.try_into().expect("state chunk");
    let mut z = *zi;
    let (mut s, mut lt, mut mx) = (*d.sta, *d.lta, [f64::NEG_INFINITY; LANES]);
    for (i, x) in (d.i0..).zip(buf.iter_mut()) {
        let mut v = *x;
        sections(secs, &mut z, &mut v);
        let mut cf = [0.0; LANES];
        if i != 0 {
            for l in 0..LANES {
                let sq = v[l] * v[l];
                s[l] = k.csta * sq + k.icsta * s[l];
                lt[l] = k.clta * sq + k.iclta * lt[l];
            }
            if i >= k.nlta {
                for l in 0..LANES {
                    cf[l] = s[l] / lt[l];
                }
            }
        }
        for (m, &c) in mx.iter_mut().zip(&cf) {
            *m = if c > *m { c } else { *m };
        }
        *x = cf;
    }
    *zi = z;
    (*d.sta, *d.lta) = (s, lt);
    for (m, &b) in d.cf_max.iter_mut().zip(&mx) {
        *m = if b > *m { b } else { *m };
    }
}

/// Up to this many sections are kept in registers per pass; longer cascades
/// take several passes over the (L1-resident) block, which is the same
/// arithmetic since each section only sees its predecessor's output.
const SECTIONS_PER_PASS: usize = 4;

#[inline(always)]
fn block_generic(st: &mut BlockState<'_>, buf: &mut [Lanes]) {
    let n_chunks = st.secs.len().div_ceil(SECTIONS_PER_PASS);
    let chunks = st
        .secs
        .chunks(SECTIONS_PER_PASS)
        .zip(st.zi.chunks_mut(SECTIONS_PER_PASS));
    for (ci, (sc, zc)) in chunks.enumerate() {
        if ci + 1 < n_chunks {
            match sc.len() {
                1 => filter_pass::<1>(sc, zc, buf),
                2 => filter_pass::<2>(sc, zc, buf),
                3 => filter_pass::<3>(sc, zc, buf),
                _ => filter_pass::<4>(sc, zc, buf),
            }
        } else {
            let d = &mut st.det;
            match sc.len() {
                1 => final_pass::<1>(sc, zc, d, buf),
                2 => final_pass::<2>(sc, zc, d, buf),
                3 => final_pass::<3>(sc, zc, d, buf),
                _ => final_pass::<4>(sc, zc, d, buf),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(st: &mut BlockState<'_>, buf: &mut [Lanes]) {
    block_generic(st, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_avx2(st: &mut BlockState<'_>, buf: &mut [Lanes]) {
    block_generic(st, buf)
}

fn block_portable(st: &mut BlockState<'_>, buf: &mut [Lanes]) {
    block_generic(st, buf)
}

/// Runs the filter cascade and STA/LTA over one interleaved block
/// (`buf[t][lane]`), turning samples into CF values in place.
/// `isa` must be available (checked by the caller when it was chosen).
pub(crate) fn run_block(isa: Isa, st: &mut BlockState<'_>, buf: &mut [Lanes]) {
    debug_assert!(isa.is_available());
    debug_assert_eq!(st.secs.len(), st.zi.len());
    match isa {
        // SAFETY: `isa` was checked with `Isa::is_available` (runtime CPU
        // feature detection) before being stored in the chain.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { block_avx512(st, buf) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { block_avx2(st, buf) },
        _ => block_portable(st, buf),
    }
}
