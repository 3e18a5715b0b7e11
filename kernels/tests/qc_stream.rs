//! Property: every streaming QC state (and the stats state) fed random
//! chunkings — with a serde round trip of the state between chunks — emits
//! exactly the one-shot result.

use fakopp_kernels::qc::{self, Flag, QcStream};
use fakopp_kernels::stats::{self, StatsConfig, StatsState};
use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

const S: i64 = 1_000_000_000;

/// Irregular, non-decreasing times (duplicates, sub-second and long steps)
/// and values with flat runs, NaN and ±inf.
fn series() -> impl Strategy<Value = (Vec<i64>, Vec<f64>)> {
    let step = prop_oneof![
        1 => Just(0i64),
        2 => Just(S / 3),
        6 => Just(S),
        2 => Just(3 * S / 2),
        4 => Just(60 * S),
        2 => Just(600 * S),
        1 => Just(7200 * S),
    ];
    let value = prop_oneof![
        8 => (-20i32..20).prop_map(|v| f64::from(v) / 10.0),
        4 => Just(1.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(1e308),
    ];
    proptest::collection::vec((step, value), 1..160).prop_map(|v| {
        let mut t = 1_700_000_000 * S;
        let mut ts = Vec::with_capacity(v.len());
        let mut xs = Vec::with_capacity(v.len());
        for (i, (dt, x)) in v.into_iter().enumerate() {
            if i > 0 {
                t += dt;
            }
            ts.push(t);
            xs.push(x);
        }
        (ts, xs)
    })
}

fn chunks() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..25, 1..40)
}

/// Feeds `t, x` in `sizes` chunks (cycled), round-tripping the state
/// through JSON between chunks.
fn stream<S>(mut st: S, t: &[i64], x: &[f64], sizes: &[usize]) -> Vec<Flag>
where
    S: QcStream + Serialize + DeserializeOwned,
{
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < x.len() {
        let n = sizes[k % sizes.len()].min(x.len() - i);
        k += 1;
        st.push(&t[i..i + n], &x[i..i + n], &mut out).unwrap();
        assert_eq!(out.len() + st.pending(), i + n);
        st = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        i += n;
        if k > 10_000 {
            // all-zero chunk sizes: finish the series in one go
            st.push(&t[i..], &x[i..], &mut out).unwrap();
            i = x.len();
        }
    }
    st.finish(&mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn gross_range_stream((t, x) in series(), c in chunks()) {
        let cfg = qc::GrossRangeConfig { fail_span: [-1.5, 1.5], suspect_span: Some([-1.0, 1.0]) };
        prop_assert_eq!(stream(qc::GrossRangeState::new(&cfg).unwrap(), &t, &x, &c), qc::gross_range(&t, &x, &cfg).unwrap());
    }

    #[test]
    fn spike_stream((t, x) in series(), c in chunks(), diff in any::<bool>()) {
        let method = if diff { qc::SpikeMethod::Differential } else { qc::SpikeMethod::Average };
        let cfg = qc::SpikeConfig { suspect_threshold: Some(0.3), fail_threshold: Some(1.0), method };
        prop_assert_eq!(stream(qc::SpikeState::new(&cfg).unwrap(), &t, &x, &c), qc::spike(&t, &x, &cfg).unwrap());
    }

    #[test]
    fn rate_of_change_stream((t, x) in series(), c in chunks()) {
        let cfg = qc::RateOfChangeConfig { threshold: 0.01, fail_threshold: Some(0.5) };
        prop_assert_eq!(stream(qc::RateOfChangeState::new(&cfg).unwrap(), &t, &x, &c), qc::rate_of_change(&t, &x, &cfg).unwrap());
    }

    #[test]
    fn flat_line_stream((t, x) in series(), c in chunks(), iv in prop_oneof![Just(S), Just(60 * S), Just(600 * S)]) {
        let cfg = qc::FlatLineConfig { suspect_threshold_s: 1800.0, fail_threshold_s: 3600.0, tolerance: 0.15 };
        let one = qc::flat_line_with_interval(&t, &x, &cfg, iv).unwrap();
        prop_assert_eq!(stream(qc::FlatLineState::new(&cfg, iv).unwrap(), &t, &x, &c), one);
        // and the median-interval one-shot equals the stream built from the median
        match qc::median_interval_ns(&t) {
            Some(m) if x.len() >= 3 && m >= S => {
                prop_assert_eq!(stream(qc::FlatLineState::new(&cfg, m).unwrap(), &t, &x, &c), qc::flat_line(&t, &x, &cfg).unwrap());
            }
            Some(m) if x.len() >= 3 => {
                prop_assert!(qc::flat_line(&t, &x, &cfg).is_err());
                prop_assert!(qc::FlatLineState::new(&cfg, m).is_err());
            }
            _ => {}
        }
    }

    #[test]
    fn attenuated_signal_stream((t, x) in series(), c in chunks(), range in any::<bool>(), min_obs in prop::option::of(0u64..6)) {
        let cfg = qc::AttenuatedSignalConfig {
            suspect_threshold: 0.4,
            fail_threshold: 0.1,
            test_period_s: Some(900.0),
            min_obs,
            min_period_s: Some(120.0),
            check_type: if range { qc::CheckType::Range } else { qc::CheckType::Std },
        };
        let iv = Some(60 * S);
        let one = qc::attenuated_signal_with_interval(&t, &x, &cfg, iv).unwrap();
        prop_assert_eq!(stream(qc::AttenuatedSignalState::new(&cfg, iv).unwrap(), &t, &x, &c), one);
    }

    #[test]
    fn climatology_stream((t, x) in series(), c in chunks()) {
        let cfg: qc::ClimatologyConfig = serde_json::from_str(r#"{"members": [
            {"season": "SON", "vspan": [-1.0, 1.0], "fspan": [-1.5, 1.5]},
            {"period": "hour", "tspan": [0, 12], "vspan": [0.0, 1.0]},
            {"period": "week", "tspan": [40, 50], "vspan": [-0.5, 0.5]},
            {"tspan_ns": [1700000000000000000, 1700003600000000000], "vspan": [0.0, 0.5]}
        ]}"#).unwrap();
        prop_assert_eq!(stream(qc::ClimatologyState::new(&cfg).unwrap(), &t, &x, &c), qc::climatology(&t, &x, &cfg).unwrap());
    }

    #[test]
    fn time_gap_stream((t, x) in series(), c in chunks()) {
        let cfg = qc::TimeGapConfig { fail_span_s: 300.0 };
        prop_assert_eq!(stream(qc::TimeGapState::new(&cfg).unwrap(), &t, &x, &c), qc::time_gap(&t, &x, &cfg).unwrap());
    }

    #[test]
    fn stats_stream((t, x) in series(), c in chunks(), iv in prop::option::of(Just(S))) {
        let cfg = StatsConfig { window: 600.0 };
        let one = stats::window_stats(&t, &x, &cfg, iv).unwrap();
        let mut st = StatsState::new(&cfg, iv).unwrap();
        let mut out = Vec::new();
        let mut i = 0;
        let mut k = 0;
        while i < x.len() {
            let n = c[k % c.len()].min(x.len() - i).max(1);
            k += 1;
            st.push(&t[i..i + n], &x[i..i + n], &mut out).unwrap();
            st = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
            i += n;
        }
        st.finish(&mut out);
        prop_assert_eq!(out.len(), one.len());
        for (a, b) in out.iter().zip(&one) {
            // bit-identical, NaN included
            prop_assert_eq!(serde_json::to_string(&(a.start_ns, a.count, a.gaps, a.min.to_bits(), a.max.to_bits(), a.mean.to_bits(), a.std.to_bits(), a.rms.to_bits())).unwrap(),
                            serde_json::to_string(&(b.start_ns, b.count, b.gaps, b.min.to_bits(), b.max.to_bits(), b.mean.to_bits(), b.std.to_bits(), b.rms.to_bits())).unwrap());
        }
        let total: u64 = one.iter().map(|w| w.count).sum();
        prop_assert_eq!(total as usize, x.iter().filter(|v| v.is_finite()).count());
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let g = qc::GrossRangeConfig {
        fail_span: [0.0, 1.0],
        suspect_span: None,
    };
    assert!(qc::gross_range(&[], &[], &g).is_err());
    assert!(qc::gross_range(&[0, 1], &[0.5], &g).is_err());
    assert!(qc::gross_range(&[1, 0], &[0.5, 0.5], &g).is_err());
    let mut st = qc::RateOfChangeState::new(&qc::RateOfChangeConfig {
        threshold: 1.0,
        fail_threshold: None,
    })
    .unwrap();
    let mut out = Vec::new();
    st.push(&[10, 20], &[1.0, 2.0], &mut out).unwrap();
    // a chunk going back in time is refused and leaves the state untouched
    assert!(st.push(&[15], &[1.0], &mut out).is_err());
    assert_eq!(out.len(), 2);
    st.push(&[20], &[1.0], &mut out).unwrap();
    assert!(qc::RateOfChangeState::new(&qc::RateOfChangeConfig {
        threshold: -1.0,
        fail_threshold: None
    })
    .is_err());
    assert!(qc::RateOfChangeState::new(&qc::RateOfChangeConfig {
        threshold: f64::NAN,
        fail_threshold: None
    })
    .is_err());
    assert!(qc::FlatLineState::new(
        &qc::FlatLineConfig {
            suspect_threshold_s: -1.0,
            fail_threshold_s: 1.0,
            tolerance: 0.0
        },
        S
    )
    .is_err());
    assert!(qc::TimeGapState::new(&qc::TimeGapConfig {
        fail_span_s: f64::INFINITY
    })
    .is_err());
    // unknown config keys are rejected
    assert!(
        serde_json::from_str::<qc::SpikeConfig>(r#"{"suspect_threshold": 1, "bogus": 2}"#).is_err()
    );
}
