//! Streaming states fed random chunkings give exactly the one-shot output;
//! bad input gives typed errors.

use fakopp_kernels::detect::*;
use fakopp_kernels::filter::*;
use fakopp_kernels::KernelError;
use proptest::prelude::*;

/// Splits `n` samples into chunks whose sizes cycle through `sizes`.
fn chunks(n: usize, sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut s, mut i) = (0, 0);
    while s < n {
        let e = (s + sizes[i % sizes.len()].max(1)).min(n);
        out.push(s..e);
        s = e;
        i += 1;
    }
    out
}

fn stream_cf<S: StreamingCf>(mut st: S, x: &[f64], sizes: &[usize]) -> Vec<f64> {
    let mut out = Vec::new();
    for r in chunks(x.len(), sizes) {
        st.process(&x[r], &mut out).unwrap();
    }
    out
}

fn signal() -> impl Strategy<Value = Vec<f64>> {
    (200usize..1500, any::<u64>()).prop_map(|(n, seed)| {
        // deterministic pseudo-random trace with bursts
        let mut s = seed | 1;
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                let burst = if (i / 97) % 5 == 3 { 20.0 } else { 1.0 };
                u * burst
            })
            .collect()
    })
}

fn sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..80, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sos_filter_stream_equals_oneshot(x in signal(), sz in sizes(), n in 1usize..9) {
        let d = butterworth(Band::Bandpass { freqmin: 1.0, freqmax: 8.0 }, n, 50.0).unwrap();
        let one = sosfilt(&d.sos, &x).unwrap();
        let mut f = SosFilter::new(d.sos.clone());
        let mut out = Vec::new();
        for r in chunks(x.len(), &sz) {
            f.process(&x[r], &mut out).unwrap();
        }
        prop_assert_eq!(out, one);
    }

    #[test]
    fn sta_lta_family_stream_equals_oneshot(x in signal(), sz in sizes(), nsta in 1usize..20, extra in 1usize..60) {
        let nlta = nsta + extra;
        let w = StaLtaWindows::from_samples(nsta, nlta).unwrap();
        prop_assert_eq!(stream_cf(ClassicStaLta::new(w), &x, &sz), classic_sta_lta(&x, nsta, nlta).unwrap());
        prop_assert_eq!(stream_cf(RecursiveStaLta::new(w), &x, &sz), recursive_sta_lta(&x, nsta, nlta).unwrap());
        prop_assert_eq!(stream_cf(DelayedStaLta::new(w), &x, &sz), delayed_sta_lta_causal(&x, nsta, nlta).unwrap());
        prop_assert_eq!(
            stream_cf(CarlStaTrig::new(w, 0.8, 0.8).unwrap(), &x, &sz),
            carl_sta_trig(&x, nsta, nlta, 0.8, 0.8).unwrap()
        );
        prop_assert_eq!(
            stream_cf(StaLtaAbs::new(0.2, 1.0, 50.0).unwrap(), &x, &sz),
            stalta_abs(&x, 0.2, 1.0, 50.0).unwrap()
        );
    }

    #[test]
    fn rmhp_itaper_decimate_stream_equal_oneshot(x in signal(), sz in sizes(), factor in 1usize..17) {
        let one = rmhp(&x, 0.7, 50.0).unwrap();
        let mut st = Rmhp::new(0.7, 50.0).unwrap();
        let mut out = Vec::new();
        for r in chunks(x.len(), &sz) {
            let mut c = x[r].to_vec();
            st.process_in_place(&mut c).unwrap();
            out.extend(c);
        }
        prop_assert_eq!(out, one);

        let mut whole = x.clone();
        InitialTaper::new(1.3, 50.0, 0.0).unwrap().process_in_place(&mut whole).unwrap();
        let mut st = InitialTaper::new(1.3, 50.0, 0.0).unwrap();
        let mut out = Vec::new();
        for r in chunks(x.len(), &sz) {
            let mut c = x[r].to_vec();
            st.process_in_place(&mut c).unwrap();
            out.extend(c);
        }
        prop_assert_eq!(out, whole);

        for nf in [false, true] {
            let one = decimate(&x, factor, 100.0, nf).unwrap();
            let mut st = Decimator::new(factor, 100.0, nf).unwrap();
            let mut out = Vec::new();
            for r in chunks(x.len(), &sz) {
                st.process(&x[r], &mut out).unwrap();
            }
            prop_assert_eq!(out, one);
        }
    }

    #[test]
    fn trigger_state_equals_trigger_onset(
        cf in prop::collection::vec(0.0f64..5.0, 1..600),
        sz in sizes(),
        on in 1.0f64..4.0,
        gap in 0.0f64..2.0,
        max_len in prop::option::of(0u64..40),
        del in any::<bool>(),
    ) {
        let p = TriggerParams { on, off: on - gap, max_len, max_len_delete: del };
        let batch = trigger_onset_with_peaks(&cf, &p).unwrap();
        let mut st = TriggerState::new(p).unwrap();
        let mut out = Vec::new();
        for r in chunks(cf.len(), &sz) {
            st.process(&cf[r], &mut out);
        }
        st.finish(&mut out);
        prop_assert_eq!(out, batch);
    }

    #[test]
    fn aic_picker_stream_equals_batch(x in signal(), sz in sizes(), before in 2usize..60, after in 1usize..60) {
        let cf = recursive_sta_lta(&x, 5, 40).unwrap();
        let p = TriggerParams::new(2.0, 1.0);
        let trig = trigger_onset(&cf, &p).unwrap();
        let batch: Vec<AicPick> = trig
            .iter()
            .filter_map(|&(on, _)| aic_pick(&x, on, before, after).unwrap())
            .collect();
        // stream: register each onset as soon as the trigger reports it
        let mut ts = TriggerState::new(p).unwrap();
        let mut picker = AicPicker::new(before, after).unwrap();
        let (mut picks, mut tr) = (Vec::new(), Vec::new());
        let mut last_on = None;
        for r in chunks(x.len(), &sz) {
            for i in r {
                ts.process(&cf[i..i + 1], &mut tr);
                if let Some(o) = ts.active_onset() {
                    if last_on != Some(o) {
                        picker.add_onset(o).unwrap();
                        last_on = Some(o);
                    }
                }
                picker.process(&x[i..i + 1], &mut picks).unwrap();
            }
        }
        picker.finish(&mut picks);
        prop_assert_eq!(picks, batch);
    }

    #[test]
    fn states_survive_serde_checkpoint(x in signal(), cut in 0usize..200) {
        let w = StaLtaWindows::from_samples(7, 50).unwrap();
        let cut = cut.min(x.len());
        let mut a = ClassicStaLta::new(w);
        let mut out = Vec::new();
        a.process(&x[..cut], &mut out).unwrap();
        let mut b: ClassicStaLta = serde_json_roundtrip(&a);
        b.process(&x[cut..], &mut out).unwrap();
        prop_assert_eq!(out, classic_sta_lta(&x, 7, 50).unwrap());
    }
}

fn serde_json_roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
    serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
}

#[test]
fn delayed_causal_equals_obspy_form_when_wrapped_samples_are_zero() {
    let mut x: Vec<f64> = (0..800)
        .map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0)
        .collect();
    let (nsta, nlta) = (10, 60);
    for v in &mut x[800 - (nsta + nlta + 1)..] {
        *v = 0.0;
    }
    assert_eq!(
        delayed_sta_lta(&x, nsta, nlta).unwrap(),
        delayed_sta_lta_causal(&x, nsta, nlta).unwrap()
    );
}

#[test]
fn rmhp_and_stalta_abs_follow_seiscomp_recurrences() {
    // RMHP with n = 3: mean of samples so far, then (m*(n-1)+x)/n.
    let y = rmhp(&[3.0, 6.0, 9.0, 12.0], 0.3, 10.0).unwrap();
    let m = [3.0, 4.5, 6.0, (6.0 * 2.0 + 12.0) / 3.0];
    assert_eq!(y, vec![0.0, 6.0 - m[1], 9.0 - m[2], 12.0 - m[3]]);
    // STALTA(|x|) with nsta = 2, nlta = 4 (int(s*sr + 0.5)).
    let y = stalta_abs(&[-2.0, 4.0, 6.0, -8.0, 10.0], 0.2, 0.4, 10.0).unwrap();
    assert_eq!(&y[..2], &[1.0, 1.0]);
    let (mut sta, mut lta) = (3.0, 3.0);
    let mut exp = vec![1.0, 1.0];
    for (k, x) in [(2.0, 6.0), (3.0, 8.0), (4.0, 10.0)] {
        sta += (x - sta) * 0.5;
        lta = if k < 4.0 {
            (lta * k + x) * (1.0 / (k + 1.0))
        } else {
            lta + (sta - lta) * 0.25
        };
        exp.push(sta / lta);
    }
    assert_eq!(y, exp);
}

#[test]
fn bad_input_gives_typed_errors() {
    let nan = [1.0, f64::NAN, 2.0];
    assert!(matches!(
        sosfilt(
            &butterworth(Band::Lowpass { freq: 1.0 }, 2, 10.0)
                .unwrap()
                .sos,
            &nan
        ),
        Err(KernelError::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        classic_sta_lta(&[f64::INFINITY; 20], 2, 5),
        Err(KernelError::NonFinite { index: 0, .. })
    ));
    assert!(matches!(
        recursive_sta_lta(&[1.0; 10], 2, 10),
        Err(KernelError::TooShort { .. })
    ));
    assert!(matches!(
        classic_sta_lta(&[1.0; 4], 2, 5),
        Err(KernelError::TooShort { .. })
    ));
    assert!(matches!(
        carl_sta_trig(&[], 2, 5, 0.8, 0.8),
        Err(KernelError::TooShort { .. })
    ));
    assert!(matches!(
        z_detect(&[1.0; 3], 3),
        Err(KernelError::TooShort { .. })
    ));
    assert!(matches!(demean(&mut []), Err(KernelError::TooShort { .. })));
    assert!(matches!(
        StaLtaWindows::from_samples(10, 10),
        Err(KernelError::InvalidParameter { .. })
    ));
    assert!(matches!(
        StaLtaWindows::from_samples(0, 10),
        Err(KernelError::InvalidParameter { .. })
    ));
    assert!(matches!(
        StaLtaWindows::from_seconds(0.5, 10.0, 0.0),
        Err(KernelError::InvalidSamplingRate(_))
    ));
    assert!(matches!(
        StaLtaWindows::from_seconds(0.5, 10.0, -1.0),
        Err(KernelError::InvalidSamplingRate(_))
    ));
    assert!(matches!(
        StaLtaWindows::from_seconds(0.001, 10.0, 100.0),
        Err(KernelError::InvalidParameter { .. })
    ));
    for band in [
        Band::Lowpass { freq: 0.0 },
        Band::Lowpass { freq: 50.0 },
        Band::Highpass { freq: 50.0 },
        Band::Highpass { freq: -1.0 },
        Band::Bandpass {
            freqmin: 55.0,
            freqmax: 60.0,
        },
        Band::Bandpass {
            freqmin: 10.0,
            freqmax: 5.0,
        },
        Band::Bandstop {
            freqmin: 5.0,
            freqmax: 50.0,
        },
        Band::Bandpass {
            freqmin: f64::NAN,
            freqmax: 5.0,
        },
    ] {
        assert!(butterworth(band, 4, 100.0).is_err(), "{band:?}");
    }
    assert!(matches!(
        butterworth(Band::Lowpass { freq: 1.0 }, 4, f64::NAN),
        Err(KernelError::InvalidSamplingRate(_))
    ));
    assert!(butterworth(Band::Lowpass { freq: 1.0 }, 0, 100.0).is_err());
    assert!(TriggerState::new(TriggerParams::new(1.0, 2.0)).is_err());
    assert!(trigger_onset(&[1.0], &TriggerParams::new(f64::NAN, 1.0)).is_err());
    assert!(Decimator::new(17, 100.0, false).is_err());
    assert!(Rmhp::new(0.001, 100.0).is_err());
    let mut st = RecursiveStaLta::new(StaLtaWindows::from_samples(2, 5).unwrap());
    let mut out = Vec::new();
    assert!(st.process(&[1.0, f64::NAN], &mut out).is_err());
    assert!(out.is_empty(), "state untouched on rejected chunk");
    // The bandpass warning path: designs a highpass and says so.
    let d = butterworth(
        Band::Bandpass {
            freqmin: 1.0,
            freqmax: 50.0,
        },
        4,
        100.0,
    )
    .unwrap();
    assert_eq!(d.band, Band::Highpass { freq: 1.0 });
    assert!(d.warning.is_some());
}
