//! The sample packing is lossless bit for bit on every input, picks the
//! coding the data allows, and refuses damaged blobs (never a panic, never
//! wrong samples).

use fakopp_kernels::pack::{decode, encode, Coding, PackError};
use proptest::prelude::*;

fn round_trip(x: &[f64]) -> Coding {
    let (coding, blob) = encode(x);
    let back = decode(coding.id(), &blob).unwrap_or_else(|e| panic!("{coding:?}: {e}"));
    assert_eq!(back.len(), x.len(), "{coding:?}");
    for (i, (a, b)) in x.iter().zip(&back).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{coding:?} sample {i}: {a:e} came back {b:e}"
        );
    }
    coding
}

/// Values from every corner of f64: specials, subnormals, extremes,
/// integers at the ±2^53 edge and plain random bits.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        Just(-0.0),
        Just(0.0),
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::from_bits(0x7ff0_0000_dead_beef)),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MIN_POSITIVE / 3.0),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(9_007_199_254_740_992.0),
        Just(-9_007_199_254_740_992.0),
        Just(9_007_199_254_740_994.0),
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
        (-100_000i64..100_000).prop_map(|i| i as f64 / 100.0),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_values_round_trip(x in prop::collection::vec(any_f64(), 0..300)) {
        round_trip(&x);
    }

    #[test]
    fn integer_walks_use_int(
        start in -(1i64 << 52)..(1i64 << 52),
        steps in prop::collection::vec(-(1i64 << 20)..(1i64 << 20), 1..2000),
        spike in any::<bool>(),
    ) {
        let mut v = start;
        let mut x: Vec<f64> = steps
            .iter()
            .map(|s| {
                v = (v + s).clamp(-(1i64 << 53), 1i64 << 53);
                v as f64
            })
            .collect();
        if spike {
            let i = x.len() / 2;
            x[i] = if x[i] > 0.0 { -9_007_199_254_740_992.0 } else { 9_007_199_254_740_992.0 };
        }
        prop_assert_eq!(round_trip(&x), Coding::Int);
    }

    #[test]
    fn decimals_use_decimal(
        places in 1u32..=6,
        m in prop::collection::vec(-10_000_000i64..10_000_000, 1..500),
    ) {
        let scale = 10f64.powi(places as i32);
        // As a logger's text would parse: the nearest double to m/10^d.
        let x: Vec<f64> = m.iter().map(|&m| format!("{}", m as f64 / scale).parse().unwrap()).collect();
        let c = round_trip(&x);
        prop_assert!(c == Coding::Decimal || c == Coding::Int, "{:?}", c);
    }

    #[test]
    fn random_bytes_never_panic(coding in -1i32..5, blob in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(coding, &blob);
    }

    #[test]
    fn damaged_blobs_are_refused(
        x in prop::collection::vec(any_f64(), 1..100),
        bit in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let (coding, blob) = encode(&x);
        let mut flipped = blob.clone();
        let b = bit.index(blob.len() * 8);
        flipped[b / 8] ^= 1 << (b % 8);
        prop_assert!(decode(coding.id(), &flipped).is_err(), "bit {} of {:?}", b, coding);
        let n = cut.index(blob.len());
        prop_assert!(decode(coding.id(), &blob[..n]).is_err(), "cut at {}", n);
    }
}

#[test]
fn every_coding_is_chosen_where_it_fits() {
    let counts: Vec<f64> = (0..1000)
        .map(|i| ((i as f64) * 0.1).sin().mul_add(3e4, 0.0).round())
        .collect();
    assert_eq!(round_trip(&counts), Coding::Int);
    let ph: Vec<f64> = (0..288)
        .map(|i| {
            format!("{:.2}", 7.0 + (i as f64 / 40.0).sin() * 0.3)
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(round_trip(&ph), Coding::Decimal);
    // A float32 sensor's readings widened to f64: 29 trailing zero bits.
    let floats: Vec<f64> = (0..500)
        .map(|i| ((i as f64 * 0.37).cos() * 1.234_567e-3) as f32 as f64)
        .collect();
    assert_eq!(round_trip(&floats), Coding::Xor);
    let noise: Vec<f64> = (0..64u64)
        .map(|i| f64::from_bits(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    assert_eq!(round_trip(&noise), Coding::Raw);
    // −0.0 is not an integer here (it would come back +0.0).
    assert_eq!(round_trip(&[-0.0, 0.0, -0.0]), Coding::Xor);
}

#[test]
fn compact_where_it_should_be() {
    // 100 Hz counts with ±200-count noise: about 9 bits of entropy, far
    // below Steim-2's 4 bytes per 3 samples at that width.
    let mut seed = 12345u64;
    let mut gauss = || {
        let mut s = 0.0;
        for _ in 0..12 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s += (seed >> 11) as f64 / (1u64 << 53) as f64;
        }
        s - 6.0
    };
    let x: Vec<f64> = (0..10_000)
        .map(|_| (gauss() * 200.0).round() + 0.0)
        .collect();
    let (c, blob) = encode(&x);
    assert_eq!(c, Coding::Int);
    let bits = blob.len() as f64 * 8.0 / x.len() as f64;
    assert!(bits < 11.0, "{bits:.2} bits per sample");
    // A constant logger reading: well under a bit per sample.
    let (c, blob) = encode(&[12.345; 1000]);
    assert_eq!(c, Coding::Decimal);
    assert!(blob.len() < 250, "{} bytes", blob.len());
}

#[test]
fn errors_name_what_is_wrong() {
    let (c, mut blob) = encode(&[1.0, 2.0, 3.0]);
    assert_eq!(decode(9, &blob), Err(PackError::UnknownCoding(9)));
    assert!(matches!(
        decode(Coding::Xor.id(), &blob),
        Err(PackError::Checksum { .. })
    ));
    blob[0] ^= 4;
    let e = decode(c.id(), &blob).unwrap_err();
    assert!(e.to_string().contains("damaged"), "{e}");
    assert_eq!(decode(c.id(), &[]), Err(PackError::Truncated));
}
