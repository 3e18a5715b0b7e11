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
    let expected = serde_json::from_slice(&std::fs::read(dir.path().join("expected.json")).unwrap()).unwrap();
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

    fn chains(&self) -> String {
        std::fs::read_to_string(self.path("chains.toml")).unwrap()
    }

    /// Config text: the stations file, then `body`, then the chains.
    fn config(&self, body: &str) -> String {
        format!(
            "stations = \"{}\"\n{body}\n{}",
            self.expected["stations"].as_str().unwrap(),
            self.chains()
        )
    }
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
fn assert_flags_equal_ioos_qc(exp: &Value, lines: &[Value], what: &str) {
    let by = qc_by_chain(lines);
    for s in exp["series"].as_array().unwrap() {
        let chain = s["chain"].as_str().unwrap();
        let got = by.get(chain).map(Vec::as_slice).unwrap_or_default();
        let times = s["time_ns"].as_array().unwrap();
        let agg = s["aggregate"].as_array().unwrap();
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
            .collect();
        let mut mismatches = Vec::new();
        for (i, line) in got.iter().enumerate() {
            assert_eq!(line["index"].as_u64(), Some(i as u64), "{what}: {line}");
            assert_eq!(line["sensor"], s["sensor"]);
            let t = fakopp::model::parse_time_ns(line["time"].as_str().unwrap()).unwrap();
            assert_eq!(t, times[i].as_i64().unwrap(), "{what}: {chain} time of row {i}");
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
        assert!(
            got.iter().any(|l| l["value"].is_null() && l["aggregate"] != 1),
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
    let cfg = write_config(o.dir.path(), "batch.toml", &o.config("[source]\nkind = \"files\"\n"));
    let lines = batch(&cfg, &o.inputs());
    assert_flags_equal_ioos_qc(&o.expected, &lines, "batch");
}
