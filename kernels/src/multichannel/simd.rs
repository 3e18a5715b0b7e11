//! Lane kernels of the multi-channel chain and their runtime CPU dispatch.
//!
//! One generic kernel over a small vector trait ([`Vf64`]), written with
//! exactly the scalar kernels' operations in the same order (separate
//! multiply and add, never FMA), instantiated with explicit intrinsics for
//! AVX-512F (a lane group of 8 channels is one `zmm` vector), AVX2
//! (`__m256d`: two vectors per group) and SSE2 (`__m128d`, the x86-64
//! baseline; scalar `f64` on other targets). IEEE-754 `+ - * /` are
//! correctly rounded lane by lane, so every instance gives the scalar
//! kernels' results bit for bit.

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

/// The few `f64` vector operations the kernel needs. Implementations are
/// only called from functions compiled with the matching target feature.
pub(crate) trait Vf64: Copy {
    /// Lanes per vector.
    const W: usize;
    /// # Safety
    /// `p` valid for `W` reads; the CPU supports the instruction set.
    unsafe fn load(p: *const f64) -> Self;
    /// # Safety
    /// `p` valid for `W` writes; the CPU supports the instruction set.
    unsafe fn store(self, p: *mut f64);
    fn splat(v: f64) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    /// Lane-wise `if self > o { self } else { o }` (x86 `maxpd`).
    fn max_gt(self, o: Self) -> Self;
}

impl Vf64 for f64 {
    const W: usize = 1;
    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        *p
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f64) {
        *p = self
    }
    #[inline(always)]
    fn splat(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        self / o
    }
    #[inline(always)]
    fn max_gt(self, o: Self) -> Self {
        if self > o {
            self
        } else {
            o
        }
    }
}

/// Implements [`Vf64`] for an x86 vector type from its intrinsics. The
/// methods are `#[inline(always)]` without target features of their own:
/// they are only inlined into `#[target_feature]` entry points, where the
/// intrinsics then inline too.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_vf64 {
    ($t:ty, $w:expr, $load:ident, $store:ident, $set1:ident, $add:ident, $sub:ident,
     $mul:ident, $div:ident, $max:ident) => {
        impl Vf64 for $t {
            const W: usize = $w;
            #[inline(always)]
            unsafe fn load(p: *const f64) -> Self {
                std::arch::x86_64::$load(p)
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut f64) {
                std::arch::x86_64::$store(p, self)
            }
            #[inline(always)]
            fn splat(v: f64) -> Self {
                // SAFETY: only reached from code compiled for this ISA.
                unsafe { std::arch::x86_64::$set1(v) }
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                // SAFETY: as above.
                unsafe { std::arch::x86_64::$add(self, o) }
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                // SAFETY: as above.
                unsafe { std::arch::x86_64::$sub(self, o) }
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                // SAFETY: as above.
                unsafe { std::arch::x86_64::$mul(self, o) }
            }
            #[inline(always)]
            fn div(self, o: Self) -> Self {
                // SAFETY: as above.
                unsafe { std::arch::x86_64::$div(self, o) }
            }
            #[inline(always)]
            fn max_gt(self, o: Self) -> Self {
                // SAFETY: as above. maxpd(a, b) = a > b ? a : b.
                unsafe { std::arch::x86_64::$max(self, o) }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
x86_vf64!(
    std::arch::x86_64::__m512d,
    8,
    _mm512_loadu_pd,
    _mm512_storeu_pd,
    _mm512_set1_pd,
    _mm512_add_pd,
    _mm512_sub_pd,
    _mm512_mul_pd,
    _mm512_div_pd,
    _mm512_max_pd
);
#[cfg(target_arch = "x86_64")]
x86_vf64!(
    std::arch::x86_64::__m256d,
    4,
    _mm256_loadu_pd,
    _mm256_storeu_pd,
    _mm256_set1_pd,
    _mm256_add_pd,
    _mm256_sub_pd,
    _mm256_mul_pd,
    _mm256_div_pd,
    _mm256_max_pd
);
#[cfg(target_arch = "x86_64")]
x86_vf64!(
    std::arch::x86_64::__m128d,
    2,
    _mm_loadu_pd,
    _mm_storeu_pd,
    _mm_set1_pd,
    _mm_add_pd,
    _mm_sub_pd,
    _mm_mul_pd,
    _mm_div_pd,
    _mm_max_pd
);

/// Loads lanes `[j*W, (j+1)*W)` for `j < N` (`N * W == LANES`).
#[inline(always)]
unsafe fn load_lanes<V: Vf64, const N: usize>(x: &Lanes) -> [V; N] {
    debug_assert_eq!(N * V::W, LANES);
    std::array::from_fn(|j| V::load(x.as_ptr().add(j * V::W)))
}

#[inline(always)]
unsafe fn store_lanes<V: Vf64, const N: usize>(v: &[V; N], x: &mut Lanes) {
    for (j, v) in v.iter().enumerate() {
        v.store(x.as_mut_ptr().add(j * V::W));
    }
}

/// Splatted `[b0, b1, b2, a1, a2]` of `NS` sections.
#[inline(always)]
fn coefs<V: Vf64, const NS: usize>(secs: &[[f64; 6]; NS]) -> [[V; 5]; NS] {
    std::array::from_fn(|s| {
        let c = &secs[s];
        [c[0], c[1], c[2], c[4], c[5]].map(V::splat)
    })
}

/// `NS` sections for one sample of all lanes, `SosFilter`'s operation order:
/// `y = b0*x + z0; z0 = (b1*x - a1*y) + z1; z1 = b2*x - a2*y`.
#[inline(always)]
fn sections<V: Vf64, const N: usize, const NS: usize>(
    c: &[[V; 5]; NS],
    z0: &mut [[V; N]; NS],
    z1: &mut [[V; N]; NS],
    x: &mut [V; N],
) {
    for s in 0..NS {
        let [b0, b1, b2, a1, a2] = c[s];
        for j in 0..N {
            let xi = x[j];
            let y = b0.mul(xi).add(z0[s][j]);
            z0[s][j] = b1.mul(xi).sub(a1.mul(y)).add(z1[s][j]);
            z1[s][j] = b2.mul(xi).sub(a2.mul(y));
            x[j] = y;
        }
    }
}

#[inline(always)]
unsafe fn load_state<V: Vf64, const N: usize, const NS: usize>(
    zi: &[[Lanes; 2]; NS],
) -> ([[V; N]; NS], [[V; N]; NS]) {
    (
        std::array::from_fn(|s| load_lanes(&zi[s][0])),
        std::array::from_fn(|s| load_lanes(&zi[s][1])),
    )
}

#[inline(always)]
unsafe fn store_state<V: Vf64, const N: usize, const NS: usize>(
    z0: &[[V; N]; NS],
    z1: &[[V; N]; NS],
    zi: &mut [[Lanes; 2]; NS],
) {
    for s in 0..NS {
        store_lanes(&z0[s], &mut zi[s][0]);
        store_lanes(&z1[s], &mut zi[s][1]);
    }
}

/// `NS` sections over the block, in place (state kept in registers).
#[inline(always)]
unsafe fn filter_pass<V: Vf64, const N: usize, const NS: usize>(
    secs: &[[f64; 6]],
    zi: &mut [[Lanes; 2]],
    buf: &mut [Lanes],
) {
    let secs: &[[f64; 6]; NS] = secs.try_into().expect("section chunk");
    let zi: &mut [[Lanes; 2]; NS] = zi.try_into().expect("state chunk");
    let c = coefs::<V, NS>(secs);
    let (mut z0, mut z1) = load_state::<V, N, NS>(zi);
    for x in buf.iter_mut() {
        let mut v = load_lanes::<V, N>(x);
        sections(&c, &mut z0, &mut z1, &mut v);
        store_lanes(&v, x);
    }
    store_state(&z0, &z1, zi);
}

/// Last `NS` sections fused with the recursive STA/LTA
/// (`sta = csta*y² + (1-csta)*sta`, same for `lta`, `cf = sta/lta`):
/// `buf` goes from samples to CF values.
#[inline(always)]
unsafe fn final_pass<V: Vf64, const N: usize, const NS: usize>(
    secs: &[[f64; 6]],
    zi: &mut [[Lanes; 2]],
    d: &mut Detector<'_>,
    buf: &mut [Lanes],
) {
    let secs: &[[f64; 6]; NS] = secs.try_into().expect("section chunk");
    let zi: &mut [[Lanes; 2]; NS] = zi.try_into().expect("state chunk");
    let c = coefs::<V, NS>(secs);
    let (mut z0, mut z1) = load_state::<V, N, NS>(zi);
    let k = d.k;
    let (csta, icsta) = (V::splat(k.csta), V::splat(k.icsta));
    let (clta, iclta) = (V::splat(k.clta), V::splat(k.iclta));
    let zero = V::splat(0.0);
    let mut sta = load_lanes::<V, N>(d.sta);
    let mut lta = load_lanes::<V, N>(d.lta);
    let mut mx = [V::splat(f64::NEG_INFINITY); N];
    for (i, x) in (d.i0..).zip(buf.iter_mut()) {
        let mut v = load_lanes::<V, N>(x);
        sections(&c, &mut z0, &mut z1, &mut v);
        let mut cf = [zero; N];
        if i != 0 {
            for j in 0..N {
                let sq = v[j].mul(v[j]);
                sta[j] = csta.mul(sq).add(icsta.mul(sta[j]));
                lta[j] = clta.mul(sq).add(iclta.mul(lta[j]));
            }
            if i >= k.nlta {
                for j in 0..N {
                    cf[j] = sta[j].div(lta[j]);
                }
            }
        }
        for j in 0..N {
            mx[j] = cf[j].max_gt(mx[j]);
        }
        store_lanes(&cf, x);
    }
    store_state(&z0, &z1, zi);
    store_lanes(&sta, d.sta);
    store_lanes(&lta, d.lta);
    let mut m = [0.0; LANES];
    store_lanes(&mx, &mut m);
    for (o, &b) in d.cf_max.iter_mut().zip(&m) {
        *o = if b > *o { b } else { *o };
    }
}

/// The whole cascade over a block: passes of up to `P` sections (kept in
/// registers; longer cascades re-read the L1-resident block, which is the
/// same arithmetic since a section only sees its predecessor's output), the
/// last pass fused with the STA/LTA.
#[inline(always)]
unsafe fn block_generic<V: Vf64, const N: usize, const P: usize>(
    st: &mut BlockState<'_>,
    buf: &mut [Lanes],
) {
    let n_chunks = st.secs.len().div_ceil(P);
    let chunks = st.secs.chunks(P).zip(st.zi.chunks_mut(P));
    for (ci, (sc, zc)) in chunks.enumerate() {
        if ci + 1 < n_chunks {
            match sc.len() {
                1 => filter_pass::<V, N, 1>(sc, zc, buf),
                2 => filter_pass::<V, N, 2>(sc, zc, buf),
                3 => filter_pass::<V, N, 3>(sc, zc, buf),
                _ => filter_pass::<V, N, 4>(sc, zc, buf),
            }
        } else {
            let d = &mut st.det;
            match sc.len() {
                1 => final_pass::<V, N, 1>(sc, zc, d, buf),
                2 => final_pass::<V, N, 2>(sc, zc, d, buf),
                3 => final_pass::<V, N, 3>(sc, zc, d, buf),
                _ => final_pass::<V, N, 4>(sc, zc, d, buf),
            }
        }
    }
}

/// AVX-512: one 8-lane vector per lane group; 32 registers hold 4 sections.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(st: &mut BlockState<'_>, buf: &mut [Lanes]) {
    block_generic::<std::arch::x86_64::__m512d, 1, 4>(st, buf)
}

const AVX2_PASS: usize = 4;

/// AVX2: two `__m256d` per group (two independent dependency chains);
/// 16 registers hold 2 sections.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_avx2(st: &mut BlockState<'_>, buf: &mut [Lanes]) {
    block_generic::<std::arch::x86_64::__m256d, 2, AVX2_PASS>(st, buf)
}

/// Baseline: SSE2 on x86-64 (four `__m128d` per group), scalar elsewhere.
fn block_portable(st: &mut BlockState<'_>, buf: &mut [Lanes]) {
    // SAFETY: SSE2 is part of the x86-64 baseline; the scalar instance has
    // no requirement.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        block_generic::<std::arch::x86_64::__m128d, 4, 1>(st, buf)
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: the scalar instance has no CPU requirement.
    unsafe {
        block_generic::<f64, 8, 1>(st, buf)
    }
}

/// Runs the filter cascade and STA/LTA over one interleaved block
/// (`buf[t][lane]`), turning samples into CF values in place.
/// `isa` must be available (checked when it was chosen).
pub(crate) fn run_block(isa: Isa, st: &mut BlockState<'_>, buf: &mut [Lanes]) {
    assert!(isa.is_available());
    assert_eq!(st.secs.len(), st.zi.len());
    match isa {
        // SAFETY: the CPU supports `isa` (runtime feature detection above).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { block_avx512(st, buf) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above: `isa.is_available()` was asserted.
        Isa::Avx2 => unsafe { block_avx2(st, buf) },
        _ => block_portable(st, buf),
    }
}
