//! `fakopp batch` end to end: real recordings against ObsPy and ioos_qc
//! computed in the same run, identical output on 1–4 MPI ranks, and bad
//! input reported with the file and record.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

fn expected(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap()
}

fn batch_jsonl(cfg: &Path, inputs: &[String]) -> Vec<Value> {
    json_lines(&batch_jsonl_out(cfg, 1, inputs))
}

/// The seismic oracle's BW.UH1–4 MiniSEED files, written to `dir`, the
/// first one cut in the middle of its third record.
fn bw_uh_with_a_truncated_record(dir: &Path) -> Vec<String> {
    run_oracle("batch_oracle.py", &["seismic".as_ref(), dir.as_os_str()]);
    let inputs = strings(&expected(dir)["inputs"]);
    let bytes = std::fs::read(&inputs[0]).unwrap();
    assert!(bytes.len() > 3 * 4096);
    std::fs::write(&inputs[0], &bytes[..2 * 4096 + 1000]).unwrap();
    inputs
}

/// A wide CSV of pH readings every 15 minutes from 2024-05-01 for
/// `sensors`, `rows` good rows, and before good row `bad_at` a malformed
/// one (`seven` is no number), so at line `bad_at + 2`.
fn ph_csv_with_a_bad_row(path: &Path, sensors: &[&str], rows: usize, bad_at: usize) {
    let mut text = format!("time,{}\n", sensors.join(","));
    for i in 0..rows {
        if i == bad_at {
            text.push_str("2024-05-01T05:07:00Z");
            text.push_str(&",seven".repeat(sensors.len()));
            text.push('\n');
        }
        text.push_str(&format!("2024-05-01T{:02}:{:02}:00Z", i / 4, (i % 4) * 15));
        for k in 0..sensors.len() {
            text.push_str(&format!(
                ",{}",
                7.5 - 0.3 * k as f64 + 0.01 * ((i + k) % 3) as f64
            ));
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// `fakopp` without MPI (n = 0) or under `mpirun -n n`.
fn on_ranks(n: usize) -> std::process::Command {
    if n == 0 {
        return fakopp();
    }
    let mut c = mpirun(n);
    c.arg(env!("CARGO_BIN_EXE_fakopp"));
    c
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Files through ObsPy's picker, triggers as long as ObsPy lets them be.
fn bw_config() -> String {
    format!("[source]\nkind = \"files\"\n{BW_PICKER}max_trigger_length_s = 1e6\n")
}

#[test]
fn bw_uh_triggers_and_coincidence_equal_obspy() {
    let dir = tempfile::tempdir().unwrap();
    run_oracle(
        "batch_oracle.py",
        &["seismic".as_ref(), dir.path().as_os_str()],
    );
    let exp = expected(dir.path());
    let cfg = write_config(dir.path(), "bw.toml", &bw_config());
    let lines = batch_jsonl(&cfg, &strings(&exp["inputs"]));

    let got: Vec<&Value> = lines.iter().filter(|l| l["type"] == "trigger").collect();
    let mut want: Vec<&Value> = exp["triggers"].as_array().unwrap().iter().collect();
    want.sort_by(|a, b| {
        (a["sensor"].as_str(), a["on_index"].as_u64())
            .cmp(&(b["sensor"].as_str(), b["on_index"].as_u64()))
    });
    assert_eq!(got.len(), want.len(), "trigger count: got {got:?}");
    assert!(
        want.len() >= 10,
        "ObsPy finds triggers on the BW.UH network"
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["sensor"], w["sensor"]);
        assert_eq!(g["on_index"], w["on_index"], "{g} vs {w}");
        assert_eq!(g["off_index"], w["off_index"], "{g} vs {w}");
        let (gp, wp) = (
            g["peak_cf"].as_f64().unwrap(),
            w["peak_cf"].as_f64().unwrap(),
        );
        assert!((gp - wp).abs() <= 1e-9 * wp.abs(), "peak {gp} vs {wp}");
        let on = fakopp::model::parse_time_ns(g["on_time"].as_str().unwrap()).unwrap();
        assert!(
            (on - w["on_time_ns"].as_i64().unwrap()).abs() <= 1_000,
            "{g} vs {w}"
        );
    }

    let events: Vec<&Value> = lines.iter().filter(|l| l["type"] == "event").collect();
    let want = exp["events"].as_array().unwrap();
    assert_eq!(
        events.len(),
        3,
        "ObsPy's published BW.UH result is 3 events"
    );
    assert_eq!(events.len(), want.len());
    for (g, w) in events.iter().zip(want) {
        assert_eq!(g["sensors"], w["sensors"], "stations in ObsPy's order");
        assert_eq!(g["coincidence_sum"].as_f64(), w["coincidence_sum"].as_f64());
        let t = fakopp::model::parse_time_ns(g["time"].as_str().unwrap()).unwrap();
        assert!(
            (t - w["time_ns"].as_i64().unwrap()).abs() <= 1_000,
            "{g} vs {w}"
        );
        assert!(
            (g["duration_s"].as_f64().unwrap() - w["duration_s"].as_f64().unwrap()).abs() < 1e-5
        );
    }
}

#[test]
fn qc_flags_on_a_real_logger_series_equal_ioos_qc() {
    let dir = tempfile::tempdir().unwrap();
    run_oracle("batch_oracle.py", &["qc".as_ref(), dir.path().as_os_str()]);
    let exp = expected(dir.path());
    let p = &exp["params"];
    let cfg = write_config(
        dir.path(),
        "qc.toml",
        &format!(
            r#"
[source]
kind = "files"
[[chains]]
name = "temp-qc"
select = ["GS.*"]
steps = [
  {{ op = "gross_range", fail_span = {}, suspect_span = {} }},
  {{ op = "spike", suspect_threshold = {}, fail_threshold = {} }},
  {{ op = "rate_of_change", threshold = {} }},
  {{ op = "flat_line", suspect_threshold_s = {}, fail_threshold_s = {}, tolerance = {} }},
]
"#,
            p["gross_range"]["fail_span"],
            p["gross_range"]["suspect_span"],
            p["spike"]["suspect_threshold"],
            p["spike"]["fail_threshold"],
            p["rate_of_change"]["threshold"],
            p["flat_line"]["suspect_threshold"],
            p["flat_line"]["fail_threshold"],
            p["flat_line"]["tolerance"]
        ),
    );
    let lines = batch_jsonl(&cfg, &strings(&exp["inputs"]));
    let qc: Vec<&Value> = lines.iter().filter(|l| l["type"] == "qc").collect();
    let agg = exp["aggregate"].as_array().unwrap();
    assert_eq!(qc.len(), agg.len(), "one qc line per reading");
    let tests = strings(&exp["tests"]);
    let mut non_good = 0;
    for (i, line) in qc.iter().enumerate() {
        assert_eq!(line["index"].as_u64(), Some(i as u64));
        assert_eq!(line["sensor"], exp["sensor"]);
        for t in &tests {
            assert_eq!(
                line["flags"][t], exp["flags"][t][i],
                "{t} flag of reading {i}: {line}"
            );
        }
        assert_eq!(
            line["aggregate"], agg[i],
            "aggregate of reading {i}: {line}"
        );
        let t = fakopp::model::parse_time_ns(line["time"].as_str().unwrap()).unwrap();
        assert_eq!(t, exp["time_ns"][i].as_i64().unwrap());
        non_good += (line["aggregate"] != 1) as usize;
    }
    assert!(non_good > 100, "the series exercises the flags");
    assert!(
        qc.iter()
            .any(|l| l["aggregate"] == 9 && l["value"].is_null()),
        "missing readings are flagged 9"
    );
}

const SMALL_SYNTHETIC: &str = r#"
[source]
kind = "synthetic"
[synthetic]
seismic_stations = 7
duration_s = 240.0
events = 2
groundwater_sensors = 2
ph_sensors = 3
env_days = 10.0
[[chains]]
name = "p-picker"
select = ["XX.*..HHZ"]
traces = true
steps = [
  { op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 10.0 },
  { op = "trigger", on = 3.5, off = 1.0 },
  { op = "aic_pick", before = 1.0, after = 0.5 },
]
[[coincidence]]
chain = "p-picker"
threshold_sum = 3
# The network spans ~15 s of P move-out; triggers last ~3 s.
trigger_off_extension_s = 15.0
[[chains]]
name = "env-qc"
select = ["EMB.*"]
steps = [
  { op = "gross_range", fail_span = [-50.0, 14.0] },
  { op = "spike", suspect_threshold = 0.3, fail_threshold = 0.9 },
  { op = "flat_line", suspect_threshold_s = 10800, fail_threshold_s = 21600, tolerance = 0.001 },
  { op = "stats", window = 86400.0 },
]
"#;

#[test]
fn output_is_identical_without_mpi_and_on_one_to_four_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "syn.toml", SMALL_SYNTHETIC);
    // n = 0: without mpirun (no MPI at all); n >= 1: under mpirun -n n.
    let run = |n: usize| -> (Vec<u8>, Vec<u8>) {
        let jsonl = dir.path().join(format!("r{n}.jsonl"));
        let h5 = dir.path().join(format!("r{n}.h5"));
        for (out, fmt) in [(&jsonl, "jsonl"), (&h5, "hdf5")] {
            let o = on_ranks(n)
                .args(["batch", "--config"])
                .arg(&cfg)
                .arg("--output")
                .arg(out)
                .args(["--format", fmt])
                .output()
                .unwrap();
            assert!(o.status.success(), "{n} ranks: {}", stderr(&o));
        }
        let dump = fakopp()
            .args(["checkpoint", "inspect"])
            .arg(&h5)
            .output()
            .unwrap();
        (std::fs::read(&jsonl).unwrap(), dump.stdout)
    };
    let (one, one_h5) = run(0);
    let lines = json_lines(&one);
    let count = |t: &str| lines.iter().filter(|l| l["type"] == t).count();
    assert_eq!(count("event"), 2, "both synthetic events detected");
    assert!(count("trigger") >= 14 && count("qc") > 1000 && count("stats") > 10);
    assert!(
        lines
            .iter()
            .filter(|l| l["type"] == "trigger")
            .all(|l| l["pick_time"].is_string()),
        "every trigger has an AIC pick"
    );
    for n in 1..=4 {
        let (jsonl, h5) = run(n);
        assert!(
            jsonl == one,
            "JSON lines on {n} ranks differ from a run without MPI"
        );
        let strip = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .lines()
                .skip(1)
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&h5), strip(&one_h5), "HDF5 layout on {n} ranks");
    }
}

#[test]
fn input_files_read_by_every_rank_give_one_output_on_one_to_three_ranks() {
    // BW.UH1–4 (the first file cut inside its third record) and a pH CSV
    // with a malformed row, --keep-going. Under mpirun every rank decodes
    // only its own sensors' records; the output must not depend on it, and
    // each bad record is reported once however many ranks met it.
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = bw_uh_with_a_truncated_record(dir.path());
    let csv = dir.path().join("ph.csv");
    ph_csv_with_a_bad_row(&csv, &["EMB.X1..PH", "EMB.X2..PH"], 96, 30);
    inputs.push(csv.display().to_string());
    let cfg = write_config(
        dir.path(),
        "mixed.toml",
        &format!(
            "{}\n[[chains]]\nname = \"ph\"\nselect = [\"EMB.*\"]\n\
             steps = [{{ op = \"gross_range\", fail_span = [0.0, 14.0] }}, {{ op = \"spike\", suspect_threshold = 0.3, fail_threshold = 0.9 }}]\n",
            bw_config()
        ),
    );
    let run = |n: usize, keep_going: bool| {
        let out = dir.path().join(format!("r{n}-{keep_going}.jsonl"));
        let mut c = on_ranks(n);
        c.arg("batch");
        if keep_going {
            c.arg("--keep-going");
        }
        let o = c
            .arg("--config")
            .arg(&cfg)
            .arg("--output")
            .arg(&out)
            .args(&inputs)
            .output()
            .unwrap();
        (o, out)
    };
    let (o, out) = run(0, true);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("problems=2"), "{}", stderr(&o));
    let one = std::fs::read(&out).unwrap();
    let lines = json_lines(&one);
    assert!(lines.iter().any(|l| l["type"] == "trigger"));
    assert_eq!(lines.iter().filter(|l| l["type"] == "qc").count(), 2 * 96);
    for n in 1..=3 {
        let (o, out) = run(n, true);
        assert!(o.status.success(), "{n} ranks: {}", stderr(&o));
        assert!(
            stderr(&o).contains("problems=2"),
            "{n} ranks: each bad record once: {}",
            stderr(&o)
        );
        assert!(
            std::fs::read(&out).unwrap() == one,
            "JSON lines on {n} ranks differ from a run without MPI"
        );
    }
    // Without --keep-going the job fails on any rank count, naming the
    // record, and writes nothing.
    for n in [0, 2] {
        let (o, out) = run(n, false);
        let err = stderr(&o);
        assert!(!o.status.success(), "{n} ranks");
        assert!(
            err.contains("record") || err.contains("line"),
            "{n} ranks: {err}"
        );
        assert!(!out.exists(), "{n} ranks: nothing written");
    }
}

#[test]
fn missing_input_file_fails_with_its_name_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "bw.toml", &bw_config());
    let out_path = dir.path().join("out.h5");
    let o = fakopp()
        .args(["batch", "--config"])
        .arg(&cfg)
        .arg("--output")
        .arg(&out_path)
        .arg(dir.path().join("nope.mseed"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nope.mseed"), "{}", stderr(&o));
    assert!(!out_path.exists(), "no output from a failed run");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary files left"
    );
}

#[test]
fn malformed_csv_row_is_named_and_skipped_with_keep_going() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("ph.csv");
    ph_csv_with_a_bad_row(&csv, &["EMB.X1..PH"], 48, 20);
    let cfg = write_config(
        dir.path(),
        "ph.toml",
        "[source]\nkind = \"files\"\n[[chains]]\nname = \"ph\"\nselect = [\"EMB.*\"]\nsteps = [{ op = \"gross_range\", fail_span = [0.0, 14.0] }]\n",
    );
    let out_path = dir.path().join("out.jsonl");
    let o = fakopp()
        .args(["batch", "--config"])
        .arg(&cfg)
        .arg("--output")
        .arg(&out_path)
        .arg(&csv)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("ph.csv") && err.contains("22"),
        "names the file and the line: {err}"
    );
    assert!(!out_path.exists());

    let o = fakopp()
        .args(["batch", "--keep-going", "--config"])
        .arg(&cfg)
        .arg("--output")
        .arg(&out_path)
        .arg(&csv)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ph.csv"),
        "the skipped row is reported: {}",
        stderr(&o)
    );
    let lines = json_lines(&std::fs::read(&out_path).unwrap());
    assert_eq!(
        lines.iter().filter(|l| l["type"] == "qc").count(),
        48,
        "every good row processed"
    );
}

#[test]
fn truncated_miniseed_names_the_record_and_keep_going_reads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = bw_uh_with_a_truncated_record(dir.path());
    let cfg = write_config(dir.path(), "bw.toml", &bw_config());
    let o = fakopp()
        .args(["batch", "--format", "jsonl", "--config"])
        .arg(&cfg)
        .args(&inputs)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let name = Path::new(&inputs[0])
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        stderr(&o).contains(&name) && stderr(&o).contains("record"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty(), "nothing written on failure");

    let o = fakopp()
        .args(["batch", "--keep-going", "--format", "jsonl", "--config"])
        .arg(&cfg)
        .args(&inputs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&o.stdout);
    for s in ["BW.UH2..SHZ", "BW.UH3..SHZ", "BW.UH4..EHZ"] {
        assert!(
            lines
                .iter()
                .any(|l| l["type"] == "trigger" && l["sensor"] == s),
            "{s} still processed"
        );
    }
}
