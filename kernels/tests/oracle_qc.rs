//! QC kernels against the external oracle `ioos_qc` 3.0.
//!
//! Runs `scripts/pyenv` (creates the oracle venv if missing) to get the
//! Python interpreter, runs `tests/oracle/qc.py` into a temp dir, then
//! checks that every test's flags — one-shot and streamed in several
//! chunkings with a serde round trip of the state between chunks — and the
//! `qartod_compare` aggregate are identical to ioos_qc's. Never skipped: if
//! the oracle cannot run, the test fails and says why.

use std::path::{Path, PathBuf};
use std::process::Command;

use fakopp_kernels::qc::{self, Flag, QcStream};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

fn python() -> String {
    let pyenv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pyenv");
    let out = Command::new("bash")
        .arg(&pyenv)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "oracle: cannot run {} to get the ioos_qc venv: {e}",
                pyenv.display()
            )
        });
    assert!(
        out.status.success(),
        "oracle: {} failed ({}), so the ioos_qc oracle is unavailable:\n{}",
        pyenv.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let py = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !py.is_empty(),
        "oracle: {} printed no python path",
        pyenv.display()
    );
    py
}

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!("fakopp-qc-oracle-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

fn load_cases() -> Value {
    let py = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/qc.py");
    let dir = temp_dir();
    let out = Command::new(&py)
        .arg(&script)
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("oracle: cannot run {py} {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "oracle: {} failed ({}):\n{}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("qc_cases.json")).expect("oracle output");
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str(&text).expect("oracle JSON")
}

/// A JSON array of QARTOD flag numbers (the oracle's).
fn flag_numbers(v: &Value) -> Vec<u8> {
    v.as_array()
        .expect("an array of flags")
        .iter()
        .map(|f| f.as_u64().expect("a flag number") as u8)
        .collect()
}

/// Flags as their QARTOD numbers.
fn numbers(flags: &[Flag]) -> Vec<u8> {
    flags.iter().map(|f| f.as_u8()).collect()
}

fn value(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("number"),
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => panic!("bad value {other}"),
    }
}

/// Chunk boundaries: whole, ones, fixed 7, and LCG-random sizes 0..=40.
fn chunkings(n: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut out = vec![vec![n], vec![1; n], {
        let mut v = vec![7; n / 7];
        v.push(n % 7);
        v
    }];
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut v = Vec::new();
    let mut left = n;
    while left > 0 {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let k = ((s >> 33) % 41) as usize;
        let k = k.min(left);
        v.push(k);
        left -= k;
    }
    out.push(v);
    out
}

/// Streams the series through `fresh` with every chunking, round-tripping
/// the state through serde_json between chunks; all must equal `expected`.
fn check_stream<S>(fresh: S, t: &[i64], x: &[f64], expected: &[Flag], what: &str, seed: u64)
where
    S: QcStream + Serialize + DeserializeOwned + Clone,
{
    for chunks in chunkings(x.len(), seed) {
        let mut st = fresh.clone();
        let mut out = Vec::new();
        let mut i = 0;
        for k in &chunks {
            st.push(&t[i..i + k], &x[i..i + k], &mut out).expect("push");
            assert_eq!(out.len() + st.pending(), i + k, "{what}: pending count");
            let json = serde_json::to_string(&st).expect("serialise state");
            st = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("{what}: deserialise state {json}: {e}"));
            i += k;
        }
        st.finish(&mut out);
        assert_eq!(
            out,
            expected,
            "{what}: streamed flags (chunks {:?}...) differ",
            &chunks[..chunks.len().min(8)]
        );
    }
}

fn cfg<C: DeserializeOwned>(v: &Value) -> C {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("config {v}: {e}"))
}

/// Runs one test one-shot, and streamed where the test has a streaming form.
fn run(kind: &str, c: &Value, t: &[i64], x: &[f64], what: &str, seed: u64) -> Vec<Flag> {
    let med = qc::median_interval_ns(t);
    match kind {
        "gross_range" => {
            let c: qc::GrossRangeConfig = cfg(c);
            let f = qc::gross_range(t, x, &c).unwrap();
            check_stream(qc::GrossRangeState::new(&c).unwrap(), t, x, &f, what, seed);
            f
        }
        "spike" => {
            let c: qc::SpikeConfig = cfg(c);
            let f = qc::spike(t, x, &c).unwrap();
            check_stream(qc::SpikeState::new(&c).unwrap(), t, x, &f, what, seed);
            f
        }
        "rate_of_change" => {
            let c: qc::RateOfChangeConfig = cfg(c);
            let f = qc::rate_of_change(t, x, &c).unwrap();
            check_stream(
                qc::RateOfChangeState::new(&c).unwrap(),
                t,
                x,
                &f,
                what,
                seed,
            );
            f
        }
        "flat_line" => {
            let c: qc::FlatLineConfig = cfg(c);
            let f = qc::flat_line(t, x, &c).unwrap();
            let st = qc::FlatLineState::new(&c, med.expect("median")).unwrap();
            check_stream(st, t, x, &f, what, seed);
            f
        }
        "attenuated_signal" => {
            let c: qc::AttenuatedSignalConfig = cfg(c);
            let f = qc::attenuated_signal(t, x, &c).unwrap();
            if c.is_windowed() {
                let st = qc::AttenuatedSignalState::new(&c, med).unwrap();
                check_stream(st, t, x, &f, what, seed);
            } else {
                assert!(
                    qc::AttenuatedSignalState::new(&c, med).is_err(),
                    "{what}: whole-series mode must be batch only"
                );
            }
            f
        }
        "climatology" => {
            let c: qc::ClimatologyConfig = cfg(c);
            let f = qc::climatology(t, x, &c).unwrap();
            check_stream(qc::ClimatologyState::new(&c).unwrap(), t, x, &f, what, seed);
            f
        }
        "time_gap" => {
            let c: qc::TimeGapConfig = cfg(c);
            let f = qc::time_gap(t, x, &c).unwrap();
            check_stream(qc::TimeGapState::new(&c).unwrap(), t, x, &f, what, seed);
            f
        }
        "impossible_date" => {
            let c: qc::ImpossibleDateConfig = cfg(c);
            let f = qc::impossible_date(t, x, &c, wall_clock_ns()).unwrap();
            check_stream(
                qc::ImpossibleDateState::new(&c).unwrap(),
                t,
                x,
                &f,
                what,
                seed,
            );
            f
        }
        "data_reception" => {
            let c: qc::DataReceptionConfig = cfg(c);
            let f = qc::data_reception(t, x, &c, wall_clock_ns()).unwrap();
            check_stream(
                qc::DataReceptionState::new(&c).unwrap(),
                t,
                x,
                &f,
                what,
                seed,
            );
            f
        }
        "percentile_range" => {
            let c: qc::PercentileRangeConfig = cfg(c);
            let f = qc::percentile_range(t, x, &c).unwrap();
            check_stream(
                qc::PercentileRangeState::new(&c).unwrap(),
                t,
                x,
                &f,
                what,
                seed,
            );
            f
        }
        "location" | "location_bounds" => {
            let mut c = c.clone();
            let obj = c.as_object_mut().expect("config object");
            let coords = |v: Option<Value>| -> Vec<f64> {
                v.expect("lon/lat")
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(coord)
                    .collect()
            };
            let lon = coords(obj.remove("lon"));
            let lat = coords(obj.remove("lat"));
            let fixed = lon.windows(2).all(|w| w[0].to_bits() == w[1].to_bits())
                && lat.windows(2).all(|w| w[0].to_bits() == w[1].to_bits());
            let (f, st) = if kind == "location" {
                let c: qc::LocationConfig = cfg(&c);
                let st =
                    fixed.then(|| qc::FixedPositionState::location(&c, lon[0], lat[0]).unwrap());
                (qc::location(&lon, &lat, &c).unwrap(), st)
            } else {
                let c: qc::LocationBoundsConfig = cfg(&c);
                let st = fixed.then(|| qc::FixedPositionState::bounds(&c, lon[0], lat[0]).unwrap());
                (qc::location_bounds(&lon, &lat, &c).unwrap(), st)
            };
            if let Some(st) = st {
                check_stream(st, t, x, &f, what, seed);
            }
            f
        }
        other => panic!("unknown test kind {other}"),
    }
}

/// `null` in a coordinate list is NaN (json.dumps writes NaN as NaN,
/// which serde_json reads only as a string here: see `enc` in qc.py).
fn coord(v: &Value) -> f64 {
    match v {
        Value::Null => f64::NAN,
        other => value(other),
    }
}

/// The wall clock in ns, truncated to whole seconds as ioos_qc's
/// `np.datetime64("now")`.
fn wall_clock_ns() -> i64 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    s as i64 * 1_000_000_000
}

#[test]
fn qc_flags_match_ioos_qc() {
    let root = load_cases();
    eprintln!(
        "oracle: ioos_qc {} (pandas {}, numpy {})",
        root["ioos_qc"], root["pandas"], root["numpy"]
    );
    let cases = root["cases"].as_array().expect("cases");
    assert!(
        cases.len() >= 10,
        "oracle produced only {} cases",
        cases.len()
    );
    let mut n_flags = 0usize;
    let mut kinds = std::collections::BTreeSet::new();
    let mut real = 0;
    for (ci, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        real += usize::from(name.starts_with("real_"));
        let t: Vec<i64> = case["times_ns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let x: Vec<f64> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(value)
            .collect();
        let mut first: Vec<(String, Vec<Flag>)> = Vec::new();
        for (ti, test) in case["tests"].as_array().unwrap().iter().enumerate() {
            let kind = test["test"].as_str().unwrap();
            let what = format!("{name} / {kind} {}", test["config"]);
            let expected = flag_numbers(&test["expected"]);
            let got = run(kind, &test["config"], &t, &x, &what, (ci * 100 + ti) as u64);
            let got_u8 = numbers(&got);
            if got_u8 != expected {
                let bad: Vec<String> = got_u8
                    .iter()
                    .zip(&expected)
                    .enumerate()
                    .filter(|(_, (a, b))| a != b)
                    .take(10)
                    .map(|(i, (a, b))| format!("#{i} (t={}, x={}): ours {a} ioos {b}", t[i], x[i]))
                    .collect();
                panic!("{what}: flags differ from ioos_qc:\n{}", bad.join("\n"));
            }
            n_flags += got.len();
            kinds.insert(kind.to_string());
            if !first.iter().any(|(k, _)| k == kind) {
                first.push((kind.to_string(), got));
            }
        }
        let vecs: Vec<&[Flag]> = first.iter().map(|(_, f)| f.as_slice()).collect();
        let agg = numbers(&qc::qartod_compare(&vecs).unwrap());
        let expected = flag_numbers(&case["aggregate"]);
        assert_eq!(
            agg, expected,
            "{name}: aggregate differs from ioos_qc's qartod_compare"
        );
        n_flags += agg.len();
    }
    // syntax_test counts raw records, not values.
    let syntax = root["syntax"].as_array().expect("syntax cases");
    assert!(!syntax.is_empty(), "oracle produced no syntax cases");
    let mut mixed = 0;
    for case in syntax {
        let c: qc::SyntaxConfig = cfg(&case["cfg"]);
        let records: Vec<&str> = case["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let got = numbers(&qc::syntax(&records, &c).unwrap());
        let expected = flag_numbers(&case["flags"]);
        assert_eq!(
            got.len(),
            expected.len(),
            "syntax {}: a flag per record",
            case["cfg"]
        );
        let bad: Vec<String> = got
            .iter()
            .zip(&expected)
            .zip(&records)
            .filter(|((a, b), _)| a != b)
            .take(10)
            .map(|((a, b), r)| format!("{r:?}: ours {a} ioos {b}"))
            .collect();
        assert!(
            bad.is_empty(),
            "syntax {}: flags differ from ioos_qc:\n{}",
            case["cfg"],
            bad.join("\n")
        );
        mixed += usize::from(got.contains(&1) && got.contains(&4));
        n_flags += got.len();
    }
    assert!(
        mixed + 2 >= syntax.len(),
        "syntax cases pass some records and fail others ({mixed} of {})",
        syntax.len()
    );
    kinds.insert("syntax".into());
    assert_eq!(
        kinds.len(),
        13,
        "all thirteen QARTOD tests must be exercised: {kinds:?}"
    );
    assert!(real >= 2, "the real-data series must be present");
    eprintln!(
        "oracle: {} cases, {n_flags} flags identical to ioos_qc",
        cases.len()
    );
}
