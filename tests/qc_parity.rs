//! QC parity with ioos_qc 3.0 on real logger series (15-minute pH, hourly
//! temperature) with missed readings, duplicated timestamps and NaN values
//! (`tests/oracle/qc_parity_oracle.py` computes ioos_qc's flags in the same
//! run): every QARTOD test FåKopp has and the aggregate, flag for flag,
//! exactly one QC row per observation; in batch and through the stream
//! (real Kafka, packets shuffled within the reorder window).

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct Oracle {
    dir: tempfile::TempDir,
    expected: Value,
}

fn oracle() -> Oracle {
    let dir = tempfile::tempdir().unwrap();
    run_oracle("qc_parity_oracle.py", &[dir.path().as_os_str()]);
    let expected =
        serde_json::from_slice(&std::fs::read(dir.path().join("expected.json")).unwrap()).unwrap();
    Oracle { dir, expected }
}

impl Oracle {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn inputs(&self) -> Vec<String> {
        self.expected["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// Config text: the stations file, then `body`, then the chains
    /// (`chains_file`).
    fn config(&self, body: &str, chains_file: &str) -> String {
        format!(
            "stations = \"{}\"\n{body}\n{}",
            self.expected["stations"].as_str().unwrap(),
            std::fs::read_to_string(self.path(chains_file)).unwrap()
        )
    }
}

/// Which tests to compare: all (batch), or only the causal ones (stream:
/// `percentile_range` needs the whole series, `syntax` the cells' text),
/// with their aggregate.
#[derive(Clone, Copy)]
enum Tests {
    All,
    Causal,
}

/// The QC lines of each chain, in index order.
fn qc_by_chain(lines: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut by: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l["type"] == "qc") {
        by.entry(l["chain"].as_str().unwrap().to_string())
            .or_default()
            .push(l.clone());
    }
    for v in by.values_mut() {
        v.sort_by_key(|l| l["index"].as_u64());
    }
    by
}

/// Every flag of every observation equals ioos_qc's; one row each.
fn assert_flags_equal_ioos_qc(exp: &Value, lines: &[Value], which: Tests, what: &str) {
    let by = qc_by_chain(lines);
    for s in exp["series"].as_array().unwrap() {
        let chain = s["chain"].as_str().unwrap();
        let got = by.get(chain).map(Vec::as_slice).unwrap_or_default();
        let times = s["time_ns"].as_array().unwrap();
        let agg = match which {
            Tests::All => s["aggregate"].as_array().unwrap(),
            Tests::Causal => s["aggregate_causal"].as_array().unwrap(),
        };
        assert!(
            s["rows"].as_u64().unwrap() > times.len() as u64,
            "the file repeats timestamps"
        );
        assert_eq!(
            got.len(),
            times.len(),
            "{what}: {chain}: one QC row per observation (ioos_qc has {}), none for a missed reading",
            times.len()
        );
        let tests: Vec<&str> = s["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .filter(|t| {
                matches!(which, Tests::All)
                    || !exp["batch_only"].as_array().unwrap().iter().any(|b| b == t)
            })
            .collect();
        let mut mismatches = Vec::new();
        for (i, line) in got.iter().enumerate() {
            assert_eq!(line["index"].as_u64(), Some(i as u64), "{what}: {line}");
            assert_eq!(line["sensor"], s["sensor"]);
            let t = fakopp::model::parse_time_ns(line["time"].as_str().unwrap()).unwrap();
            assert_eq!(
                t,
                times[i].as_i64().unwrap(),
                "{what}: {chain} time of row {i}"
            );
            for test in &tests {
                if line["flags"][test] != s["flags"][test][i] {
                    mismatches.push(format!(
                        "{test} of row {i} ({}): ours {} ioos_qc {}",
                        line["time"], line["flags"][test], s["flags"][test][i]
                    ));
                }
            }
            if line["aggregate"] != agg[i] {
                mismatches.push(format!(
                    "aggregate of row {i} ({}): ours {} ioos_qc {}",
                    line["time"], line["aggregate"], agg[i]
                ));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{what}: {chain}: {} flags differ from ioos_qc:\n{}",
            mismatches.len(),
            mismatches[..mismatches.len().min(20)].join("\n")
        );
        // The series exercises the tests: each has a non-GOOD flag somewhere
        // but the location tests (a station in its bounds).
        for test in tests.iter().filter(|t| !t.starts_with("location")) {
            assert!(
                s["flags"][test].as_array().unwrap().iter().any(|f| f != 1),
                "{chain}: {test} flags something"
            );
        }
        if tests.contains(&"syntax") {
            assert!(
                s["flags"]["syntax"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f == 1),
                "{chain}: syntax passes some cells"
            );
        }
        assert!(
            got.iter()
                .any(|l| l["value"].is_null() && l["aggregate"] != 1),
            "{chain}: readings recorded as NaN are observations"
        );
    }
}

fn batch(cfg: &Path, inputs: &[String]) -> Vec<Value> {
    json_lines(&batch_jsonl_out(cfg, 1, inputs))
}

#[test]
fn real_logger_series_with_missed_readings_equal_ioos_qc_in_batch() {
    let o = oracle();
    let cfg = write_config(
        o.dir.path(),
        "batch.toml",
        &o.config("[source]\nkind = \"files\"\n", "chains.toml"),
    );
    let lines = batch(&cfg, &o.inputs());
    assert_flags_equal_ioos_qc(&o.expected, &lines, Tests::All, "batch");

    // The stations file beside the results: JSON lines, and HDF5 as h5py reads it.
    let stations: Vec<&Value> = lines.iter().filter(|l| l["type"] == "station").collect();
    assert_eq!(stations.len(), 2, "{stations:?}");
    let ph = stations
        .iter()
        .find(|l| l["sensor"] == "USGS.01650800..PH")
        .expect("the pH station");
    assert_eq!(
        (&ph["latitude"], &ph["longitude"], &ph["unit"], &ph["kind"]),
        (
            &Value::from(38.98567),
            &Value::from(-77.00497),
            &Value::from("pH"),
            &Value::from("ph")
        )
    );
    let h5 = o.path("results.h5");
    let out = fakopp()
        .args(["batch", "--config"])
        .arg(&cfg)
        .arg("--output")
        .arg(&h5)
        .args(o.inputs())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let read = std::process::Command::new(oracle_python())
        .args([
            "-c",
            "import h5py, json, sys; d = h5py.File(sys.argv[1])['stations'][:]; \
             print(json.dumps([[r['sensor'].decode(), float(r['latitude']), float(r['longitude']), r['kind'].decode()] for r in d]))",
        ])
        .arg(&h5)
        .output()
        .unwrap();
    assert!(read.status.success(), "{}", stderr(&read));
    let got: Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(
        got,
        serde_json::json!([
            ["GS.PB01A..TEMP", 52.0116, 4.3571, "temperature"],
            ["USGS.01650800..PH", 38.98567, -77.00497, "ph"]
        ])
    );
}

/// Packets of 6 readings, reversed in groups of four per sensor (at most a
/// day of hourly data out of order, inside the 4-day reorder window), the
/// sensors interleaved, one packet sent twice.
fn shuffled(inputs: &[String]) -> Vec<fakopp::model::SensorPacket> {
    shuffled_packets(inputs, 6, |_| true, 9, 30)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_series_through_kafka_give_the_same_flags() {
    let o = oracle();
    let topic = unique("fakopp_test_qcparity");
    let keyspace = unique("ks");
    let body = format!(
        r#"
[source]
kind = "kafka"
[kafka]
brokers = "{brokers}"
topic = "{topic}"
group = "{topic}_g"
dlq_topic = "{topic}.dlq"
detections_topic = "{topic}.det"
[cassandra]
nodes = ["{node}"]
keyspace = "{keyspace}"
[sinks]
kinds = ["cassandra", "jsonl"]
jsonl_path = "{jsonl}"
[checkpoint]
path = "{ckpt}"
[stream]
batch_interval_ms = 200
reorder_window_s = 345600.0
retire_after_s = 400000.0
"#,
        brokers = kafka_brokers(),
        node = cassandra_node(),
        jsonl = o.path("stream.jsonl").display(),
        ckpt = o.path("state/ckpt.h5").display(),
    );
    let cfg = write_config(
        o.dir.path(),
        "stream.toml",
        &o.config(&body, "chains_stream.toml"),
    );
    let run = |idle: &str| {
        let out = fakopp()
            .args(["run", "--exit-when-idle", idle, "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(out.status.success(), "fakopp run: {}", stderr(&out));
    };
    run("0.5"); // creates the topics and the keyspace
    let prod: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let packets = shuffled(&o.inputs());
    assert!(
        packets.iter().any(|p| p.samples.iter().any(|v| v.is_nan())),
        "readings recorded as NaN travel in packets"
    );
    for p in &packets {
        let bytes = fakopp::codec::encode(fakopp::config::PacketFormat::Avro, p);
        prod.send(
            rdkafka::producer::FutureRecord::to(&topic)
                .key(&p.sensor_id)
                .payload(&bytes),
            std::time::Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("delivery");
    }
    run("4");
    let lines = json_lines(&std::fs::read(o.path("stream.jsonl")).unwrap());
    assert_flags_equal_ioos_qc(&o.expected, &lines, Tests::Causal, "stream");

    // The qc_flags table holds one row per observation too.
    let s = scylla::client::session_builder::SessionBuilder::new()
        .known_node(cassandra_node())
        .build()
        .await
        .unwrap();
    let q = s
        .prepare(format!(
            "SELECT COUNT(*) FROM {keyspace}.qc_flags WHERE chain = ? AND sensor_id = ? AND day = ?"
        ))
        .await
        .unwrap();
    for series in o.expected["series"].as_array().unwrap() {
        let times = series["time_ns"].as_array().unwrap();
        let days: std::collections::BTreeSet<i32> = times
            .iter()
            .map(|t| fakopp::model::day_of(t.as_i64().unwrap()))
            .collect();
        let mut rows = 0i64;
        for d in days {
            let r = s
                .execute_unpaged(
                    &q,
                    (
                        series["chain"].as_str().unwrap(),
                        series["sensor"].as_str().unwrap(),
                        d,
                    ),
                )
                .await
                .unwrap()
                .into_rows_result()
                .unwrap();
            rows += r.single_row::<(i64,)>().unwrap().0;
        }
        assert_eq!(
            rows,
            times.len() as i64,
            "{}: qc_flags rows",
            series["chain"]
        );
    }
    // The stations file beside the results.
    let q = s
        .prepare(format!(
            "SELECT latitude, longitude, unit, kind FROM {keyspace}.stations WHERE sensor_id = ?"
        ))
        .await
        .unwrap();
    let r = s
        .execute_unpaged(&q, ("USGS.01650800..PH",))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let row = r.single_row::<(f64, f64, String, String)>().unwrap();
    assert_eq!(
        row,
        (38.98567, -77.00497, "pH".to_string(), "ph".to_string())
    );
    s.query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[])
        .await
        .unwrap();
}

/// ioos_qc's own configuration files, read by ioos_qc in the oracle and by
/// FåKopp through `ioos_qc_config`: the same flags.
#[test]
fn ioos_qc_config_files_give_ioos_qcs_flags() {
    let o = oracle();
    let mut chains = String::new();
    let configs = o.expected["ioos_configs"].as_array().unwrap();
    for (i, c) in configs.iter().enumerate() {
        let stream = c["stream"].as_str().unwrap();
        chains.push_str(&format!(
            "[[chains]]\nname = \"yaml-{i}\"\nselect = [\"{}\"]\nioos_qc_config = \"{}\"\n{}\n",
            c["sensor"].as_str().unwrap(),
            c["file"].as_str().unwrap(),
            if stream == "_stream" {
                String::new()
            } else {
                format!("ioos_qc_stream = \"{stream}\"")
            }
        ));
    }
    let text = format!(
        "stations = \"{}\"\n[source]\nkind = \"files\"\n{chains}",
        o.expected["stations"].as_str().unwrap()
    );
    let cfg = write_config(o.dir.path(), "yaml.toml", &text);
    let by = qc_by_chain(&batch(&cfg, &o.inputs()));
    for (i, c) in configs.iter().enumerate() {
        let chain = format!("yaml-{i}");
        let got = &by[&chain];
        let times = c["time_ns"].as_array().unwrap();
        assert_eq!(got.len(), times.len(), "{chain}: one row per observation");
        let tests = c["tests"].as_object().unwrap();
        assert!(tests.len() >= 2, "{chain}: {tests:?}");
        let mut mismatches = Vec::new();
        for (k, line) in got.iter().enumerate() {
            for (name, flags) in tests {
                let op = name.strip_suffix("_test").unwrap();
                if line["flags"][op] != flags[k] {
                    mismatches.push(format!(
                        "{name} of row {k} ({}): ours {} ioos_qc {}",
                        line["time"], line["flags"][op], flags[k]
                    ));
                }
            }
            if line["aggregate"] != c["aggregate"][k] {
                mismatches.push(format!("aggregate of row {k}"));
            }
            assert_eq!(
                line["flags"].as_object().unwrap().len(),
                tests.len(),
                "{chain}: exactly the file's tests: {line}"
            );
        }
        assert!(
            mismatches.is_empty(),
            "{chain} ({} / {}): {} flags differ:\n{}",
            c["file"],
            c["stream"],
            mismatches.len(),
            mismatches[..mismatches.len().min(20)].join("\n")
        );
    }
}

/// `fakopp batch` on `cfg` exits 2 (case `i`); its stderr.
fn config_error(cfg: &Path, i: usize) -> String {
    let out = fakopp()
        .args(["batch", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
    err
}

/// Mistakes in an ioos_qc file are configuration errors (exit 2) naming
/// the file, the stream, the test and the key.
#[test]
fn bad_ioos_qc_config_files_exit_2_naming_file_stream_test_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        // The ContextConfig of ioos_qc's documentation: location_test has
        // no bbox in ioos_qc 3.0 (ioos_qc itself fails when it runs it).
        (
            "region: null\nstreams:\n  variable1:\n    qartod:\n      location_test:\n        bbox: [-80, 40, -70, 60]\n  variable2:\n    qartod:\n      gross_range_test:\n        suspect_span: [1, 11]\n        fail_span: [0, 12]\n",
            "variable1",
            &["streams.variable1.qartod.location_test.bbox", "has no argument `bbox`"],
        ),
        (
            "qartod:\n  gross_range_test:\n    fail_span: [0, 12]\n  wobble_test: {}\n",
            "",
            &["qartod.wobble_test", "not a test of ioos_qc 3.0"],
        ),
        (
            "qartod:\n  density_inversion_test:\n    suspect_threshold: -0.03\n",
            "",
            &["qartod.density_inversion_test", "not supported"],
        ),
        (
            "qartod:\n  syntax_test:\n    nchar: 5\n    lentype: word\n",
            "",
            &["qartod.syntax_test", "lentype must be"],
        ),
        (
            "window:\n  starting: 2020-01-01T00:00:00Z\n  ending: 2020-04-01T00:00:00Z\nstreams:\n  v:\n    qartod:\n      gross_range_test:\n        fail_span: [0, 12]\n",
            "v",
            &["key `window`", "not supported"],
        ),
        (
            "streams:\n  a:\n    qartod:\n      gross_range_test:\n        fail_span: [12, 0]\n",
            "a",
            &["streams.a.qartod.gross_range_test.fail_span", "min > max"],
        ),
        (
            "streams:\n  a:\n    qartod:\n      spike_test: {suspect_threshold: 1}\n  b:\n    qartod:\n      spike_test: {suspect_threshold: 1}\n",
            "",
            &["2 streams (a, b)", "ioos_qc_stream"],
        ),
        (
            "qartod:\n  gross_range_test:\n    fail_span: [0, 12]\n",
            "nope",
            &["no stream `nope`"],
        ),
    ];
    for (i, (yaml, stream, want)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let cfg = write_config(
            dir.path(),
            "c.toml",
            &format!(
                "[source]\nkind = \"files\"\n[[chains]]\nname = \"q\"\nselect = [\"A.B..C\"]\nioos_qc_config = \"{}\"\n{}",
                file.display(),
                if stream.is_empty() {
                    String::new()
                } else {
                    format!("ioos_qc_stream = \"{stream}\"\n")
                }
            ),
        );
        let err = config_error(&cfg, i);
        assert!(
            err.contains(&file.display().to_string()),
            "case {i} names the file: {err}"
        );
        for w in *want {
            assert!(err.contains(w), "case {i}: `{w}` in: {err}");
        }
    }
}

/// A stations file naming a sensor no chain selects, or a bad line, is a
/// configuration error naming the file and line.
#[test]
fn stations_file_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "sensor_id,latitude,longitude\nEMB.BH1..PH,52.6,-1.1\nEMB.XX9..PH,52.6,-1.1\n",
            "line 3: sensor EMB.XX9..PH is not selected by any chain",
        ),
        (
            "sensor_id,latitude,longitude\nEMB.BH1..PH,52.6,north\n",
            "line 2:",
        ),
        (
            "sensor_id,latitude,longitude\nEMB.BH1..PH,52.6,-1.1\nEMB.BH1..PH,52.7,-1.1\n",
            "line 3: sensor EMB.BH1..PH is listed again (first on line 2)",
        ),
    ];
    for (i, (csv, want)) in cases.iter().enumerate() {
        let st = dir.path().join(format!("st{i}.csv"));
        std::fs::write(&st, csv).unwrap();
        let cfg = write_config(
            dir.path(),
            "c.toml",
            &format!(
                "stations = \"{}\"\n[source]\nkind = \"files\"\n[[chains]]\nname = \"q\"\nselect = [\"EMB.BH1..*\"]\nsteps = [{{ op = \"location\" }}]\n",
                st.display()
            ),
        );
        let err = config_error(&cfg, i);
        assert!(
            err.contains(&st.display().to_string()) && err.contains(want),
            "case {i}: `{want}` in: {err}"
        );
    }
}

/// `syntax` finds the cell of every observation of regular series whose
/// grid times are computed from the rate (a year of 10-minute readings, a
/// 3 Hz series with timestamps truncated to the microsecond): no reading
/// is left unevaluated (2), and the flags are ioos_qc's on the cells.
#[test]
fn syntax_finds_the_cell_of_every_reading_of_long_and_jittered_series() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = fakopp::model::parse_time_ns("2023-01-01T00:00:00Z").unwrap();
    let mut seed = 0x2545_f491_u64;
    let mut digits = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 60) as usize % 3 + 1
    };
    let mut cells: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let series: [(&str, usize, f64); 2] =
        [("X.LOG..T", 52_560, 600.0), ("X.SEN..Z", 3_000, 1.0 / 3.0)];
    let mut inputs = Vec::new();
    for (sensor, n, step_s) in series {
        let mut text = String::from("time,sensor,value\n");
        let cs = cells.entry(sensor).or_default();
        for k in 0..n {
            // Truncated to the microsecond, as loggers write times.
            let t = t0 + ((k as f64 * step_s * 1e6) as i64) * 1_000;
            let cell = format!("{:.*}", digits(), 10.0 + (k % 97) as f64 / 7.0);
            text.push_str(&format!(
                "{},{sensor},{cell}\n",
                fakopp::model::format_time_us(t)
            ));
            cs.push(cell);
        }
        let p = dir.path().join(format!("{sensor}.csv"));
        std::fs::write(&p, text).unwrap();
        inputs.push(p.display().to_string());
    }
    let cfg = write_config(
        dir.path(),
        "job.toml",
        "[source]\nkind = \"files\"\n[[chains]]\nname = \"syn\"\nselect = [\"X.*\"]\nsteps = [{ op = \"syntax\", nchar = 5 }]\n",
    );
    let lines = batch(&cfg, &inputs);
    for (sensor, cs) in &cells {
        let rows: Vec<&Value> = lines
            .iter()
            .filter(|l| l["type"] == "qc" && l["sensor"] == *sensor)
            .collect();
        assert_eq!(rows.len(), cs.len(), "{sensor}: a QC row per reading");
        let got: Vec<u64> = rows
            .iter()
            .map(|l| l["flags"]["syntax"].as_u64().unwrap())
            .collect();
        let out = std::process::Command::new(oracle_python())
            .args([
                "-c",
                "import json, sys, numpy as np; from ioos_qc import qartod as q; \
                 c = json.load(sys.stdin); print(json.dumps(q.syntax_test(np.array(c, dtype=str), nchar=5).astype(int).tolist()))",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut p| {
                use std::io::Write;
                p.stdin.take().unwrap().write_all(serde_json::to_string(cs).unwrap().as_bytes())?;
                p.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let want: Vec<u64> = serde_json::from_slice(&out.stdout).unwrap();
        assert!(!got.contains(&2), "{sensor}: every reading evaluated");
        assert!(
            want.contains(&1) && want.contains(&4),
            "{sensor}: the cells pass and fail"
        );
        assert_eq!(got, want, "{sensor}: syntax flags equal ioos_qc's");
    }
}
