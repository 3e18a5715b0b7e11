//! The SIMD multi-channel chain against the per-channel scalar kernels
//! (`SosFilter` → `RecursiveStaLta` → `TriggerState`): bit-identical CF and
//! identical triggers for random data, parameters, channel counts (including
//! ones that are not multiples of the lane width), chunkings, instruction
//! sets, sequential/rayon drivers and checkpoint/restore mid-stream.

use fakopp_kernels::detect::{
    RecursiveStaLta, StaLtaWindows, StreamingCf, Trigger, TriggerParams, TriggerState,
};
use fakopp_kernels::filter::{butterworth, Band, Sos, SosFilter};
use fakopp_kernels::multichannel::{ChainParams, ChannelTrigger, Isa, MultiChannelChain, LANES};
use ndarray::{s, Array2};
use proptest::prelude::*;

/// Deterministic noise with bursts (so that triggers happen).
fn data(seed: u64, channels: usize, n: usize) -> Array2<f64> {
    let mut st = seed | 1;
    let mut next = move || {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        (st >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut a = Array2::zeros((channels, n));
    for c in 0..channels {
        let burst_at = (next() + 0.5) * n as f64;
        let burst_len = 20.0 + (next() + 0.5) * 200.0;
        let gain = 5.0 + 50.0 * (next() + 0.5);
        for t in 0..n {
            let tf = t as f64;
            let g = if tf >= burst_at && tf < burst_at + burst_len {
                gain
            } else {
                1.0
            };
            a[[c, t]] = g * next() + 0.3 * (tf * 0.05 * (c + 1) as f64).sin();
        }
    }
    a
}

/// The scalar reference: whole trace per channel, then `finish`.
fn scalar(
    sos: &Sos,
    w: StaLtaWindows,
    tp: TriggerParams,
    x: &Array2<f64>,
) -> (Array2<f64>, Vec<ChannelTrigger>) {
    let mut cf_all = Array2::zeros(x.dim());
    let mut trig = Vec::new();
    for (c, row) in x.outer_iter().enumerate() {
        let mut y = row.to_vec();
        SosFilter::new(sos.clone())
            .process_in_place(&mut y)
            .unwrap();
        let mut cf = Vec::new();
        RecursiveStaLta::new(w).process(&y, &mut cf).unwrap();
        let mut ts = TriggerState::new(tp).unwrap();
        let mut t: Vec<Trigger> = Vec::new();
        ts.process(&cf, &mut t);
        ts.finish(&mut t);
        trig.extend(t.into_iter().map(|trigger| ChannelTrigger {
            channel: c,
            trigger,
        }));
        cf_all.row_mut(c).assign(&ndarray::ArrayView1::from(&cf));
    }
    (cf_all, trig)
}

fn sorted(mut v: Vec<ChannelTrigger>) -> Vec<ChannelTrigger> {
    v.sort_by_key(|t| (t.channel, t.trigger.on));
    v
}

fn same_triggers(a: &[ChannelTrigger], b: &[ChannelTrigger]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.channel == y.channel
                && x.trigger.on == y.trigger.on
                && x.trigger.off == y.trigger.off
                && x.trigger.peak.to_bits() == y.trigger.peak.to_bits()
        })
}

fn bit_equal(a: &Array2<f64>, b: &Array2<f64>) -> Option<(usize, usize, f64, f64)> {
    for ((i, j), &v) in a.indexed_iter() {
        if v.to_bits() != b[[i, j]].to_bits() {
            return Some((i, j, v, b[[i, j]]));
        }
    }
    None
}

fn isas() -> Vec<Isa> {
    [Isa::Portable, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|i| i.is_available())
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Seq,
    SeqCf,
    Par,
    ParCf,
}

/// Runs the chain over `x` in chunks of the given sizes (cycled), optionally
/// checkpointing through JSON after chunk `restore_after`.
fn multichannel(
    mut chain: MultiChannelChain,
    x: &Array2<f64>,
    chunks: &[usize],
    mode: Mode,
    restore_after: Option<usize>,
) -> (Array2<f64>, Vec<ChannelTrigger>) {
    let n = x.ncols();
    let mut cf = Array2::from_elem(x.dim(), f64::NAN);
    let mut out = Vec::new();
    let (mut t0, mut k) = (0, 0);
    while t0 < n {
        let m = chunks[k % chunks.len()].min(n - t0);
        let xin = x.slice(s![.., t0..t0 + m]);
        let cfv = cf.slice_mut(s![.., t0..t0 + m]);
        match mode {
            Mode::Seq => chain.process(xin, &mut out).unwrap(),
            Mode::SeqCf => chain.process_with_cf(xin, cfv, &mut out).unwrap(),
            Mode::Par => chain.process_par(xin, &mut out).unwrap(),
            Mode::ParCf => chain.process_with_cf_par(xin, cfv, &mut out).unwrap(),
        }
        if restore_after == Some(k) {
            let isa = chain.isa();
            let json = serde_json::to_string(&chain).unwrap();
            chain = serde_json::from_str(&json).unwrap();
            chain.set_isa(isa).unwrap();
        }
        t0 += m;
        k += 1;
    }
    chain.finish(&mut out);
    (cf, out)
}

#[derive(Debug, Clone)]
struct Case {
    channels: usize,
    n: usize,
    seed: u64,
    band: Band,
    corners: usize,
    sr: f64,
    nsta: usize,
    nlta: usize,
    tp: TriggerParams,
    chunks: Vec<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=21,
        0usize..1500,
        any::<u64>(),
        0usize..4,
        1usize..=6,
        (1usize..15, 2usize..120),
        (1.5f64..5.0, 0.2f64..1.0),
        (any::<bool>(), 5u64..300, any::<bool>()),
        prop::collection::vec(1usize..700, 1..6),
    )
        .prop_map(
            |(channels, n, seed, bk, corners, (nsta, dl), (on, offf), (ml, len, del), chunks)| {
                let band = match bk {
                    0 => Band::Bandpass {
                        freqmin: 1.0,
                        freqmax: 10.0,
                    },
                    1 => Band::Lowpass { freq: 5.0 },
                    2 => Band::Highpass { freq: 2.0 },
                    _ => Band::Bandpass {
                        freqmin: 0.5,
                        freqmax: 20.0,
                    },
                };
                let mut tp = TriggerParams::new(on, on * offf);
                if ml {
                    tp.max_len = Some(len);
                    tp.max_len_delete = del;
                }
                Case {
                    channels,
                    n,
                    seed,
                    band,
                    corners,
                    sr: 100.0,
                    nsta,
                    nlta: nsta + dl,
                    tp,
                    chunks,
                }
            },
        )
}

fn check_case(c: &Case) -> Result<(), TestCaseError> {
    let d = butterworth(c.band, c.corners, c.sr).unwrap();
    let w = StaLtaWindows::from_samples(c.nsta, c.nlta).unwrap();
    let x = data(c.seed, c.channels, c.n);
    let (cf_ref, trig_ref) = scalar(&d.sos, w, c.tp, &x);
    let modes = [Mode::Seq, Mode::SeqCf, Mode::Par, Mode::ParCf];
    for (k, isa) in isas().into_iter().enumerate() {
        for (j, mode) in modes.into_iter().enumerate() {
            let mut chain =
                MultiChannelChain::from_parts(d.sos.clone(), w, c.tp, c.channels).unwrap();
            chain.set_isa(isa).unwrap();
            let restore = ((k + j) % 2 == 0).then_some(k + j);
            let (cf, trig) = multichannel(chain, &x, &c.chunks, mode, restore);
            if matches!(mode, Mode::SeqCf | Mode::ParCf) {
                prop_assert_eq!(bit_equal(&cf, &cf_ref), None, "{:?} {:?}", isa, mode);
            }
            // Within a call triggers come by channel, then time; across
            // calls in call order: compare as sets ordered by (channel, on).
            prop_assert!(
                same_triggers(&sorted(trig.clone()), &sorted(trig_ref.clone())),
                "{:?} {:?}\n got {:?}\nwant {:?}",
                isa,
                mode,
                trig,
                trig_ref
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn multichannel_equals_scalar(c in case()) {
        check_case(&c)?;
    }
}

/// Realistic parameters (ObsPy bandpass 1–10 Hz corners 4, STA 0.5 s /
/// LTA 10 s at 100 Hz), 2 minutes on 37 channels (4 full groups + 5 lanes),
/// packets of 100 samples: triggers do occur and match.
#[test]
fn realistic_chain_matches_scalar_with_triggers() {
    let p = ChainParams {
        band: Band::Bandpass {
            freqmin: 1.0,
            freqmax: 10.0,
        },
        corners: 4,
        sta_s: 0.5,
        lta_s: 10.0,
        trigger: TriggerParams::new(3.0, 1.0),
        sampling_rate: 100.0,
    };
    let chain = MultiChannelChain::new(&p, 37).unwrap();
    assert_eq!(chain.sos().len(), 4);
    assert_eq!(
        chain.windows(),
        StaLtaWindows::from_samples(50, 1000).unwrap()
    );
    let x = data(7, 37, 12_000);
    let (cf_ref, trig_ref) = scalar(chain.sos(), chain.windows(), p.trigger, &x);
    assert!(trig_ref.len() >= 10, "only {} triggers", trig_ref.len());
    let (cf, trig) = multichannel(chain, &x, &[100], Mode::ParCf, Some(3));
    assert_eq!(bit_equal(&cf, &cf_ref), None);
    let want = sorted(trig_ref);
    assert!(
        same_triggers(&sorted(trig.clone()), &want),
        "got {trig:?}\nwant {want:?}"
    );
}

#[test]
fn lane_width_and_best_isa() {
    assert_eq!(LANES, 8);
    assert!(Isa::best().is_available());
    assert!(Isa::Portable.is_available());
}

#[test]
fn rejects_bad_input_without_state_change() {
    let p = ChainParams {
        band: Band::Bandpass {
            freqmin: 1.0,
            freqmax: 10.0,
        },
        corners: 4,
        sta_s: 0.5,
        lta_s: 10.0,
        trigger: TriggerParams::new(3.0, 1.0),
        sampling_rate: 100.0,
    };
    let mut chain = MultiChannelChain::new(&p, 12).unwrap();
    let mut out = Vec::new();
    let mut x = data(1, 12, 300);
    chain.process(x.slice(s![.., ..100]), &mut out).unwrap();
    let before = serde_json::to_string(&chain).unwrap();
    x[[10, 150]] = f64::NAN;
    for par in [false, true] {
        let r = if par {
            chain.process_par(x.slice(s![.., 100..]), &mut out)
        } else {
            chain.process(x.slice(s![.., 100..]), &mut out)
        };
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("channel 10 at index 150"), "{msg}");
        assert_eq!(serde_json::to_string(&chain).unwrap(), before);
    }
    // Wrong channel count, mismatched CF shape, non-contiguous rows.
    assert!(chain.process(x.slice(s![..11, ..]), &mut out).is_err());
    let mut cf = Array2::zeros((12, 5));
    assert!(chain
        .process_with_cf(x.slice(s![.., ..4]), cf.view_mut(), &mut out)
        .is_err());
    let xt = x.t().to_owned();
    assert!(chain.process(xt.t(), &mut out).is_err());
    assert!(MultiChannelChain::new(&p, 0).is_err());
    let mut bad = p;
    bad.trigger = TriggerParams::new(1.0, 2.0);
    assert!(MultiChannelChain::new(&bad, 3).is_err());
    // Empty chunk is a no-op.
    chain.process(x.slice(s![.., ..0]), &mut out).unwrap();
    assert_eq!(serde_json::to_string(&chain).unwrap(), before);
    // Rows held apart: of unequal length is an error that changes nothing.
    let owned: Vec<Vec<f64>> = (0..12).map(|c| x.row(c).to_vec()).collect();
    let mut rows: Vec<&[f64]> = owned.iter().map(|r| &r[100..140]).collect();
    rows[4] = &owned[4][100..139];
    let msg = chain.process_rows(&rows, &mut out).unwrap_err().to_string();
    assert!(msg.contains("row 4 has 39 samples, row 0 has 40"), "{msg}");
    assert_eq!(serde_json::to_string(&chain).unwrap(), before);
}

#[test]
fn rows_held_apart_equal_the_array_path() {
    let p = ChainParams {
        band: Band::Highpass { freq: 2.0 },
        corners: 2,
        sta_s: 0.2,
        lta_s: 2.0,
        trigger: TriggerParams::new(2.5, 1.2),
        sampling_rate: 100.0,
    };
    let x = data(11, 13, 5_000);
    let mut a = MultiChannelChain::new(&p, 13).unwrap();
    let mut b = a.clone();
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    a.process(x.view(), &mut ta).unwrap();
    a.finish(&mut ta);
    let owned: Vec<Vec<f64>> = (0..13).map(|c| x.row(c).to_vec()).collect();
    let rows: Vec<&[f64]> = owned.iter().map(Vec::as_slice).collect();
    b.process_rows(&rows[..], &mut tb).unwrap();
    b.finish(&mut tb);
    assert!(ta.len() >= 5, "only {} triggers", ta.len());
    assert!(same_triggers(&ta, &tb), "{ta:?}\n{tb:?}");
}

#[test]
fn highpass_warning_is_kept() {
    let p = ChainParams {
        band: Band::Bandpass {
            freqmin: 1.0,
            freqmax: 60.0,
        },
        corners: 2,
        sta_s: 0.5,
        lta_s: 10.0,
        trigger: TriggerParams::new(3.0, 1.0),
        sampling_rate: 100.0,
    };
    let chain = MultiChannelChain::new(&p, 3).unwrap();
    assert!(chain.filter_warning().is_some());
}
