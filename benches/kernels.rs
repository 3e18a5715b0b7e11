//! Per-sample cost of the seismic kernels, to compare with ObsPy/SciPy
//! (`benches/obspy_anchor.py`; `benches/run-kernel-bench` runs both and
//! prints the side-by-side table, see BENCHMARKS.md).
//!
//! Data: `$FAKOPP_BENCH_DATA` (raw little-endian f64, `FAKOPP_BENCH_CHANNELS`
//! rows of `FAKOPP_BENCH_SAMPLES`, written by the anchor script so both sides
//! see the same samples), else the same shapes generated here.
//! Parameters (both sides): 100 Hz, bandpass 1–10 Hz corners 4 causal,
//! STA 0.5 s / LTA 10 s (50 / 1000 samples), trigger on 3.5 / off 1.0;
//! single-channel kernels on channel 0 (`SINGLE` samples); chains over the
//! first 64 / 128 channels of `CHAIN` samples in packets of `PACKET`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fakopp_kernels::detect::{
    classic_sta_lta, recursive_sta_lta, RecursiveStaLta, StreamingCf, Trigger, TriggerParams,
    TriggerState,
};
use fakopp_kernels::filter::{butterworth, sosfilt, sosfilt_zerophase, Band, SosFilter};
use fakopp_kernels::multichannel::{ChainParams, ChannelTrigger, Isa, MultiChannelChain};
use ndarray::{s, Array2, ArrayView2};
use std::hint::black_box;

const SR: f64 = 100.0;
const BAND: Band = Band::Bandpass {
    freqmin: 1.0,
    freqmax: 10.0,
};
const CORNERS: usize = 4;
const NSTA: usize = 50;
const NLTA: usize = 1000;
const PACKET: usize = 1000;

fn params() -> ChainParams {
    ChainParams {
        band: BAND,
        corners: CORNERS,
        sta_s: NSTA as f64 / SR,
        lta_s: NLTA as f64 / SR,
        trigger: TriggerParams::new(3.5, 1.0),
        sampling_rate: SR,
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `(channels x samples)` bench data: the anchor's file, or generated
/// (Gaussian-ish noise with a burst per channel).
fn load() -> Array2<f64> {
    let ch = env_usize("FAKOPP_BENCH_CHANNELS", 128);
    let n = env_usize("FAKOPP_BENCH_SAMPLES", 100_000);
    if let Ok(path) = std::env::var("FAKOPP_BENCH_DATA") {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(bytes.len(), ch * n * 8, "{path}: expected {ch} x {n} f64");
        let v: Vec<f64> = bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        return Array2::from_shape_vec((ch, n), v).unwrap();
    }
    let mut st: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut u = move || {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        (st >> 11) as f64 / (1u64 << 53) as f64
    };
    Array2::from_shape_fn((ch, n), |(c, t)| {
        let g: f64 = (0..4).map(|_| u()).sum::<f64>() - 2.0;
        let burst = (t + 997 * c) % 20_000 < 300;
        g * if burst { 20.0 } else { 1.0 }
    })
}

/// The per-channel scalar chain (`SosFilter` → `RecursiveStaLta` →
/// `TriggerState`) in packets, buffers reused.
fn scalar_chain(x: ArrayView2<'_, f64>, p: &ChainParams) -> usize {
    let d = butterworth(p.band, p.corners, p.sampling_rate).unwrap();
    let mut n_trig = 0;
    let (mut y, mut cf, mut out): (Vec<f64>, Vec<f64>, Vec<Trigger>) =
        (Vec::new(), Vec::new(), Vec::new());
    for row in x.outer_iter() {
        let row = row.to_slice().unwrap();
        let mut f = SosFilter::new(d.sos.clone());
        let mut r = RecursiveStaLta::from_seconds(p.sta_s, p.lta_s, p.sampling_rate).unwrap();
        let mut t = TriggerState::new(p.trigger).unwrap();
        for packet in row.chunks(PACKET) {
            y.clear();
            y.extend_from_slice(packet);
            f.process_in_place(&mut y).unwrap();
            cf.clear();
            r.process(&y, &mut cf).unwrap();
            t.process(&cf, &mut out);
        }
        t.finish(&mut out);
        n_trig += out.len();
        out.clear();
    }
    n_trig
}

fn multi_chain(x: ArrayView2<'_, f64>, p: &ChainParams, isa: Isa, par: bool) -> usize {
    let mut c = MultiChannelChain::new(p, x.nrows()).unwrap();
    c.set_isa(isa).unwrap();
    let mut out: Vec<ChannelTrigger> = Vec::new();
    let n = x.ncols();
    let mut t0 = 0;
    while t0 < n {
        let m = PACKET.min(n - t0);
        let v = x.slice(s![.., t0..t0 + m]);
        if par {
            c.process_par(v, &mut out).unwrap();
        } else {
            c.process(v, &mut out).unwrap();
        }
        t0 += m;
    }
    c.finish(&mut out);
    out.len()
}

fn bench(c: &mut Criterion) {
    let data = load();
    let single_n = env_usize("FAKOPP_BENCH_SINGLE", 100_000).min(data.ncols());
    let chain_n = env_usize("FAKOPP_BENCH_CHAIN", 30_000).min(data.ncols());
    let x0 = data.row(0).slice(s![..single_n]).to_vec();
    let p = params();

    let mut g = c.benchmark_group("single");
    g.throughput(Throughput::Elements(single_n as u64));
    g.bench_function("bandpass_c4_causal", |b| {
        b.iter(|| {
            let d = butterworth(BAND, CORNERS, SR).unwrap();
            sosfilt(&d.sos, black_box(&x0)).unwrap()
        })
    });
    g.bench_function("bandpass_c4_zerophase", |b| {
        b.iter(|| {
            let d = butterworth(BAND, CORNERS, SR).unwrap();
            sosfilt_zerophase(&d.sos, black_box(&x0)).unwrap()
        })
    });
    g.bench_function("recursive_sta_lta", |b| {
        b.iter(|| recursive_sta_lta(black_box(&x0), NSTA, NLTA).unwrap())
    });
    g.bench_function("classic_sta_lta", |b| {
        b.iter(|| classic_sta_lta(black_box(&x0), NSTA, NLTA).unwrap())
    });
    g.finish();

    let pool2 = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for ch in [64usize, 128] {
        assert!(
            data.nrows() >= ch,
            "bench data has {} channels",
            data.nrows()
        );
        let x = data.slice(s![..ch, ..chain_n]);
        let x = x.as_standard_layout().into_owned();
        let xv = x.view();
        // All paths find the same triggers.
        let want = scalar_chain(xv, &p);
        eprintln!("fakopp_bench: chain_{ch} triggers {want}");
        assert_eq!(multi_chain(xv, &p, Isa::best(), false), want);
        assert_eq!(
            pool2.install(|| multi_chain(xv, &p, Isa::best(), true)),
            want
        );
        let mut g = c.benchmark_group(format!("chain_{ch}"));
        g.throughput(Throughput::Elements((ch * chain_n) as u64));
        g.bench_function("scalar", |b| b.iter(|| scalar_chain(black_box(xv), &p)));
        g.bench_function("simd", |b| {
            b.iter(|| multi_chain(black_box(xv), &p, Isa::best(), false))
        });
        if Isa::Avx2.is_available() && Isa::best() != Isa::Avx2 {
            g.bench_function("simd_avx2", |b| {
                b.iter(|| multi_chain(black_box(xv), &p, Isa::Avx2, false))
            });
        }
        g.bench_function("rayon2", |b| {
            b.iter(|| pool2.install(|| multi_chain(black_box(xv), &p, Isa::best(), true)))
        });
        // Streaming steady state: one packet into a warm chain (no design,
        // no allocation), to separate per-call cost from set-up.
        g.throughput(Throughput::Elements((ch * PACKET) as u64));
        let packet = x.slice(s![.., ..PACKET]).to_owned();
        g.bench_function("simd_packet", |b| {
            b.iter_batched_ref(
                || (MultiChannelChain::new(&p, ch).unwrap(), Vec::new()),
                |(chain, out)| chain.process(black_box(packet.view()), out).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
