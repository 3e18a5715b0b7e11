//! Compares the seismic kernels against ObsPy 1.5 / SciPy, computed by
//! `tests/oracle/seismic.py` in the oracle venv (`scripts/pyenv`). Never
//! skipped: if the venv cannot be created the test fails.

use fakopp_kernels::detect::*;
use fakopp_kernels::filter::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

struct Oracle {
    dir: PathBuf,
    m: Value,
}

fn oracle() -> &'static Oracle {
    static O: OnceLock<Oracle> = OnceLock::new();
    O.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let pyenv = root.join("../scripts/pyenv");
        let out = Command::new(&pyenv).output().unwrap_or_else(|e| {
            panic!(
                "oracle: cannot run {} ({e}); the ObsPy/SciPy oracle venv is required",
                pyenv.display()
            )
        });
        assert!(
            out.status.success(),
            "oracle: {} failed ({}):\n{}",
            pyenv.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let py = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_string();
        assert!(
            !py.is_empty(),
            "oracle: {} printed no python path",
            pyenv.display()
        );
        // Under the target dir, one name: a rerun replaces it, nothing piles up.
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("oracle-seismic");
        let _ = std::fs::remove_dir_all(&dir);
        let script = root.join("tests/oracle/seismic.py");
        let run = Command::new(&py)
            .arg(&script)
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| panic!("oracle: cannot run {py} {} ({e})", script.display()));
        assert!(
            run.status.success(),
            "oracle: {} failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&run.stderr)
        );
        let m: Value = serde_json::from_slice(
            &std::fs::read(dir.join("manifest.json")).expect("manifest.json"),
        )
        .expect("manifest parses");
        Oracle { dir, m }
    })
}

impl Oracle {
    fn arr(&self, v: &Value) -> Vec<f64> {
        let name = v.as_str().unwrap_or_else(|| panic!("not a file name: {v}"));
        let bytes = std::fs::read(self.dir.join(name)).expect("array file");
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
    fn trace(&self, name: &str) -> (Vec<f64>, f64) {
        let t = &self.m["traces"][name];
        (self.arr(&t["data"]), t["sr"].as_f64().unwrap())
    }
}

/// Elementwise: |got - exp| <= max(rel * |exp|, abs); NaN matches NaN.
fn assert_close(what: &str, got: &[f64], exp: &[f64], rel: f64, abs: f64) {
    assert_eq!(got.len(), exp.len(), "{what}: length");
    for (i, (&g, &e)) in got.iter().zip(exp).enumerate() {
        if e.is_nan() && g.is_nan() {
            continue;
        }
        if e.is_infinite() && g == e {
            continue;
        }
        let tol = (rel * e.abs()).max(abs);
        assert!(
            (g - e).abs() <= tol,
            "{what}[{i}]: got {g:e}, expected {e:e} (|diff| {:e} > {tol:e})",
            (g - e).abs()
        );
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

fn band_of(kind: &str, p: &Value) -> Band {
    let f = |k: &str| p[k].as_f64().unwrap();
    match kind {
        "lowpass" => Band::Lowpass { freq: f("freq") },
        "highpass" => Band::Highpass { freq: f("freq") },
        "bandpass" => Band::Bandpass {
            freqmin: f("freqmin"),
            freqmax: f("freqmax"),
        },
        "bandstop" => Band::Bandstop {
            freqmin: f("freqmin"),
            freqmax: f("freqmax"),
        },
        _ => panic!("kind {kind}"),
    }
}

fn apply(d: &Design, x: &[f64], zerophase: bool) -> Vec<f64> {
    if zerophase {
        sosfilt_zerophase(&d.sos, x).unwrap()
    } else {
        sosfilt(&d.sos, x).unwrap()
    }
}

#[test]
fn butterworth_sos_matches_scipy_iirfilter() {
    let o = oracle();
    let cases = o.m["design"].as_array().unwrap();
    assert!(cases.len() > 100);
    for c in cases {
        let n = c["corners"].as_u64().unwrap() as usize;
        let bt = c["btype"].as_str().unwrap();
        let wn = &c["wn"];
        let nb = match bt {
            "lowpass" => NormalizedBand::Lowpass(wn.as_f64().unwrap()),
            "highpass" => NormalizedBand::Highpass(wn.as_f64().unwrap()),
            "bandpass" => {
                NormalizedBand::Bandpass(wn[0].as_f64().unwrap(), wn[1].as_f64().unwrap())
            }
            _ => NormalizedBand::Bandstop(wn[0].as_f64().unwrap(), wn[1].as_f64().unwrap()),
        };
        let sos = iirfilter_butter(n, nb).unwrap();
        let exp: Vec<Vec<f64>> = c["sos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(sos.len(), exp.len(), "{bt} N={n} Wn={wn}: sections");
        for (s, (got, e)) in sos.sections().iter().zip(&exp).enumerate() {
            for j in 0..6 {
                let tol = 1e-12 * e[j].abs().max(1.0);
                assert!(
                    (got[j] - e[j]).abs() <= tol,
                    "{bt} N={n} Wn={wn}: sos[{s}][{j}] = {:e}, scipy {:e}",
                    got[j],
                    e[j]
                );
            }
        }
    }
}

#[test]
fn obspy_filter_functions_and_nyquist_rules() {
    let o = oracle();
    for c in o.m["filter"].as_array().unwrap() {
        let kind = c["kind"].as_str().unwrap();
        let band = band_of(kind, &c["params"]);
        let sr = c["sr"].as_f64().unwrap();
        let corners = c["corners"].as_u64().unwrap() as usize;
        let zph = c["zerophase"].as_bool().unwrap();
        let status = c["status"].as_str().unwrap();
        let what = format!("{kind} {} sr={sr} N={corners} zph={zph}", c["params"]);
        let res = butterworth(band, corners, sr);
        if status.starts_with("error") {
            assert!(
                res.is_err(),
                "{what}: ObsPy raised ({status}) but design succeeded"
            );
            continue;
        }
        let d = res.unwrap_or_else(|e| panic!("{what}: {e}"));
        if let Some(msg) = status.strip_prefix("warn:") {
            let w = d
                .warning
                .as_ref()
                .unwrap_or_else(|| panic!("{what}: ObsPy warned: {msg}"));
            assert_eq!(w.to_string(), msg, "{what}: warning text");
        } else {
            assert!(d.warning.is_none(), "{what}: unexpected warning");
        }
        let x = o.arr(&c["input"]);
        let exp = o.arr(&c["expected"]);
        let y = apply(&d, &x, zph);
        assert_close(&what, &y, &exp, 0.0, 1e-10 * max_abs(&exp));
    }
}

#[test]
fn pitsa_filters_rms_below_1e5() {
    let o = oracle();
    let (rjob, sr) = o.trace("rjob");
    assert_eq!(sr, 200.0);
    for c in o.m["pitsa"].as_array().unwrap() {
        let kind = c["kind"].as_str().unwrap();
        let d = butterworth(
            band_of(kind, &c["params"]),
            c["corners"].as_u64().unwrap() as usize,
            200.0,
        )
        .unwrap();
        let zph = c["zerophase"].as_bool().unwrap();
        let y = apply(&d, &rjob, zph);
        let obspy = o.arr(&c["obspy"]);
        assert_close(
            &format!("{kind} vs ObsPy"),
            &y,
            &obspy,
            0.0,
            1e-10 * max_abs(&obspy),
        );
        let pitsa = o.arr(&c["pitsa"]);
        let n = y.len() - c["skip_tail"].as_u64().unwrap() as usize;
        let num: f64 = y[..n]
            .iter()
            .zip(&pitsa[..n])
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let den: f64 = pitsa[..n].iter().map(|b| b * b).sum();
        let rms = (num / den).sqrt();
        assert!(
            rms < 1e-5,
            "{kind} zerophase={zph}: normalised RMS vs PITSA {rms:e}"
        );
    }
}

#[test]
fn characteristic_functions_match_obspy() {
    let o = oracle();
    for c in o.m["cf"].as_array().unwrap() {
        let tname = c["trace"].as_str().unwrap();
        let (x, _) = o.trace(tname);
        let nsta = c["nsta"].as_u64().unwrap() as usize;
        let nlta = c["nlta"].as_u64().unwrap() as usize;
        let what = |k: &str| format!("{k} {tname} nsta={nsta} nlta={nlta}");
        assert_close(
            &what("classic"),
            &classic_sta_lta(&x, nsta, nlta).unwrap(),
            &o.arr(&c["classic"]),
            1e-9,
            1e-12,
        );
        assert_close(
            &what("recursive"),
            &recursive_sta_lta(&x, nsta, nlta).unwrap(),
            &o.arr(&c["recursive"]),
            1e-9,
            1e-12,
        );
        assert_close(
            &what("delayed"),
            &delayed_sta_lta(&x, nsta, nlta).unwrap(),
            &o.arr(&c["delayed"]),
            1e-9,
            1e-12,
        );
        let rq = &c["carl_ratio_quiet"];
        let carl = carl_sta_trig(
            &x,
            nsta,
            nlta,
            rq[0].as_f64().unwrap(),
            rq[1].as_f64().unwrap(),
        )
        .unwrap();
        assert_close(&what("carl"), &carl, &o.arr(&c["carl"]), 1e-9, 1e-12);
        assert_close(
            &what("z_detect"),
            &z_detect(&x, nsta).unwrap(),
            &o.arr(&c["z_detect"]),
            1e-9,
            1e-12,
        );
    }
    // ObsPy's own recursive STA/LTA test (seed 815, nsta=5, nlta=10).
    let r = &o.m["rec815"];
    let cf = recursive_sta_lta(&o.arr(&r["data"]), 5, 10).unwrap();
    assert_close("rec815", &cf, &o.arr(&r["cf"]), 1e-12, 1e-14);
    for (i, v) in [
        (99, 0.80810165),
        (100, 0.75939449),
        (101, 0.91763978),
        (102, 0.97465004),
    ] {
        assert!((cf[i] - v).abs() < 5e-8, "rec815[{i}] = {}", cf[i]);
    }
}

#[test]
fn trigger_onset_matches_obspy_batch_and_stream() {
    let o = oracle();
    for (n, c) in o.m["onset"].as_array().unwrap().iter().enumerate() {
        let cf = o.arr(&c["cf"]);
        let p = TriggerParams {
            on: c["on"].as_f64().unwrap(),
            off: c["off"].as_f64().unwrap(),
            max_len: c["max_len"].as_u64(),
            max_len_delete: c["max_len_delete"].as_bool().unwrap(),
        };
        let what = format!("case {n} {p:?}");
        let status = c["status"].as_str().unwrap();
        let got = trigger_onset_with_peaks(&cf, &p);
        if status.starts_with("error") {
            assert!(got.is_err(), "{what}: ObsPy raised {status}");
            continue;
        }
        let got = got.unwrap_or_else(|e| panic!("{what}: {e}"));
        let exp: Vec<(u64, u64)> = c["picks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
            .collect();
        let got_pairs: Vec<(u64, u64)> = got.iter().map(|t| (t.on, t.off)).collect();
        assert_eq!(got_pairs, exp, "{what}");
        let peaks: Vec<f64> = c["peaks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let gp: Vec<f64> = got.iter().map(|t| t.peak).collect();
        assert_close(&what, &gp, &peaks, 0.0, 0.0);
        if p.off <= p.on {
            for chunk in [1usize, 7, 100, cf.len()] {
                let mut st = TriggerState::new(p).unwrap();
                let mut out = Vec::new();
                for ch in cf.chunks(chunk) {
                    st.process(ch, &mut out);
                }
                st.finish(&mut out);
                assert_eq!(out, got, "{what}: streaming (chunk {chunk})");
            }
        }
    }
}

#[test]
fn coincidence_trigger_matches_obspy_bw_uh() {
    let o = oracle();
    let traces = o.m["coincidence_traces"].as_array().unwrap();
    for (n, c) in o.m["coincidence"].as_array().unwrap().iter().enumerate() {
        let p = &c["params"];
        let weights = c["weights"].as_object().unwrap();
        let mut sensors = Vec::new();
        let mut trig = Vec::new();
        for t in traces {
            let id = t["id"].as_str().unwrap();
            let Some(w) = weights.get(id) else { continue };
            let si = sensors.len();
            sensors.push(Sensor {
                id: id.to_string(),
                weight: w.as_f64().unwrap(),
            });
            let sr = t["sr"].as_f64().unwrap();
            let x = o.arr(&t["data"]);
            let d = butterworth(
                Band::Bandpass {
                    freqmin: 10.0,
                    freqmax: 20.0,
                },
                4,
                sr,
            )
            .unwrap();
            let y = sosfilt(&d.sos, &x).unwrap();
            let w = StaLtaWindows::from_seconds(
                p["sta"].as_f64().unwrap(),
                p["lta"].as_f64().unwrap(),
                sr,
            )
            .unwrap();
            let cf = recursive_sta_lta(&y, w.nsta, w.nlta).unwrap();
            let tp = TriggerParams {
                on: p["thr_on"].as_f64().unwrap(),
                off: p["thr_off"].as_f64().unwrap(),
                max_len: Some(
                    TriggerParams::max_len_from_seconds(
                        p["max_trigger_length"].as_f64().unwrap_or(1e6),
                        sr,
                    )
                    .unwrap(),
                ),
                max_len_delete: p["delete_long_trigger"].as_bool().unwrap_or(false),
            };
            let start = t["start_ns"].as_i64().unwrap();
            for tr in trigger_onset_with_peaks(&cf, &tp).unwrap() {
                trig.push(trigger_to_absolute(si, &tr, start, sr).unwrap());
            }
        }
        let cp = CoincidenceParams {
            threshold_sum: p["thr_sum"].as_f64().unwrap(),
            trigger_off_extension_s: p["trigger_off_extension"].as_f64().unwrap_or(0.0),
        };
        let ev = coincidence_trigger(&sensors, &trig, &cp).unwrap();
        let exp = c["events"].as_array().unwrap();
        assert_eq!(ev.len(), exp.len(), "case {n}: number of events");
        for (g, e) in ev.iter().zip(exp) {
            assert!(
                (g.time_ns - e["time_ns"].as_i64().unwrap()).abs() <= 1000,
                "case {n}: time"
            );
            assert!(
                (g.duration_s - e["duration"].as_f64().unwrap()).abs() <= 1e-6,
                "case {n}: duration"
            );
            let st: Vec<&str> = e["stations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(g.stations, st, "case {n}: stations");
            let ids: Vec<&str> = g.sensors.iter().map(|&i| sensors[i].id.as_str()).collect();
            let eids: Vec<&str> = e["trace_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(ids, eids, "case {n}: trace ids");
            assert_eq!(
                g.coincidence_sum,
                e["coincidence_sum"].as_f64().unwrap(),
                "case {n}: sum"
            );
            let ep: Vec<f64> = e["cft_peaks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_close(&format!("case {n} peaks"), &g.peaks, &ep, 1e-9, 1e-12);
        }
    }
    // ObsPy's published result for its tutorial parameters: 3 events.
    assert_eq!(o.m["coincidence"][0]["events"].as_array().unwrap().len(), 3);
}

#[test]
fn detrend_taper_decimate_match_obspy() {
    let o = oracle();
    for c in o.m["detrend"].as_array().unwrap() {
        let (mut x, _) = o.trace(c["trace"].as_str().unwrap());
        let kind = c["kind"].as_str().unwrap();
        match kind {
            "demean" => demean(&mut x).unwrap(),
            "simple" => detrend_simple(&mut x).unwrap(),
            _ => detrend_linear(&mut x).unwrap(),
        }
        let exp = o.arr(&c["expected"]);
        let (rel, abs) = if kind == "linear" {
            (0.0, 1e-10 * max_abs(&exp))
        } else {
            (0.0, 0.0)
        };
        assert_close(
            &format!("detrend {kind} {}", c["trace"]),
            &x,
            &exp,
            rel,
            abs,
        );
    }
    for c in o.m["taper"].as_array().unwrap() {
        let (mut x, sr) = match c["trace"].as_str() {
            Some(t) => o.trace(t),
            None => (o.arr(&c["input"]), c["sr"].as_f64().unwrap()),
        };
        let w = taper_hann(
            &mut x,
            sr,
            c["max_percentage"].as_f64(),
            c["max_length"].as_f64(),
        )
        .unwrap();
        let status = c["status"].as_str().unwrap();
        assert_eq!(
            w.is_some(),
            status.starts_with("warn"),
            "taper {c}: warning"
        );
        assert_close(
            &format!("taper {}", c["max_percentage"]),
            &x,
            &o.arr(&c["expected"]),
            1e-15,
            0.0,
        );
    }
    for c in o.m["decimate"].as_array().unwrap() {
        let (x, sr) = o.trace(c["trace"].as_str().unwrap());
        let factor = c["factor"].as_u64().unwrap() as usize;
        let y = decimate(&x, factor, sr, c["no_filter"].as_bool().unwrap()).unwrap();
        let exp = o.arr(&c["expected"]);
        assert_close(
            &format!("decimate {factor} {}", c["trace"]),
            &y,
            &exp,
            0.0,
            1e-10 * max_abs(&exp),
        );
    }
}

#[test]
fn aic_simple_matches_obspy() {
    let o = oracle();
    for c in o.m["aic"].as_array().unwrap() {
        let x = o.arr(&c["input"]);
        assert_close(
            &format!("aic n={}", x.len()),
            &aic_simple(&x),
            &o.arr(&c["expected"]),
            1e-12,
            1e-12,
        );
    }
}

#[test]
fn pk_baer_matches_obspy() {
    let o = oracle();
    let cases = o.m["baer"].as_array().unwrap();
    for c in cases {
        let tag = c["tag"].as_str().unwrap();
        let x = o.arr(&c["input"]);
        let p = c["params"].as_array().unwrap();
        let u = |i: usize| p[i].as_u64().unwrap() as usize;
        let params = BaerParams {
            samp_int: p[0].as_f64().unwrap(),
            tdownmax: u(1),
            tupevent: u(2),
            thr1: p[3].as_f64().unwrap(),
            thr2: p[4].as_f64().unwrap(),
            preset_len: u(5),
            p_dur: u(6),
        };
        let (got, cf) = pk_baer_cf(&x, &params).unwrap();
        // ObsPy returns (1, "") when nothing is picked.
        let exp_pick = c["pick"].as_u64().unwrap() as usize;
        let exp_phase = c["phase"].as_str().unwrap();
        assert_eq!(got.pick.unwrap_or(1), exp_pick, "{tag}: pick");
        assert_eq!(got.pick.is_none(), exp_phase.is_empty(), "{tag}: no pick");
        assert_eq!(got.phase, exp_phase, "{tag}: phase");
        assert_eq!(pk_baer(&x, &params).unwrap(), got, "{tag}: without cf");
        let cf: Vec<f64> = cf.iter().map(|&v| v as f64).collect();
        assert_close(&format!("{tag} cf"), &cf, &o.arr(&c["cf"]), 1e-6, 0.0);
    }
    // ObsPy's test_pk_baer / test_pk_baer_cf expectations.
    assert_eq!(cases[0]["tag"], "obspy_test");
    assert_eq!(cases[0]["pick"], 17545);
    assert_eq!(cases[0]["phase"], "IPU0");
    assert_eq!(o.arr(&cases[0]["cf"]).len(), 119999);
    let tags = |f: &dyn Fn(&Value) -> bool| cases.iter().filter(|c| f(c)).count();
    assert!(tags(&|c| c["phase"] == "") >= 1, "a no-pick case");
    assert!(tags(&|c| c["tag"] == "end_of_trace" && c["pick"] != 1) == 1);
}
