//! ioos_qc's own configuration files as the QC steps of a chain
//! (`ioos_qc_config = "path.yaml"`, docs/reference.md, "ioos_qc
//! configuration files"), so a user who already runs ioos_qc brings the
//! same file.
//!
//! Accepted, as ioos_qc 3.0's `Config` reads them (YAML or JSON): a
//! `StreamConfig` (`qartod:` → test → arguments), a `Config` of streams
//! without `streams:` (stream → `qartod:` → …) and a `ContextConfig`
//! (`streams:` with `region: null` and no `window`). The chain takes the
//! stream `ioos_qc_stream` names, or the file's only one. Each `*_test` of
//! the `qartod` package becomes the FåKopp step of the same test, its
//! arguments translated to FåKopp's names and units (hours to seconds where
//! ioos_qc counts hours); `aggregate` is accepted and ignored (every chain
//! aggregates). Everything else — an unknown test or argument, a test
//! FåKopp does not implement, a time window or region, another package —
//! is an error naming the file, stream, test and key (exit 2).

use std::path::Path;

use serde_json::{Map, Value};

use super::{ConfigError, Mode, Step};

/// One ioos_qc argument: its name, the FåKopp key and how the value maps.
struct Arg {
    ioos: &'static str,
    ours: &'static str,
    conv: Conv,
}

#[derive(Clone, Copy)]
enum Conv {
    Same,
    /// ioos_qc counts hours, FåKopp seconds.
    HoursToSeconds,
    /// `ClimatologyConfig` members (`tspan`, `vspan`, `fspan`, `period`).
    Climatology,
}

const fn same(ioos: &'static str) -> Arg {
    Arg {
        ioos,
        ours: ioos,
        conv: Conv::Same,
    }
}

const fn renamed(ioos: &'static str, ours: &'static str) -> Arg {
    Arg {
        ioos,
        ours,
        conv: Conv::Same,
    }
}

const fn hours(ioos: &'static str, ours: &'static str) -> Arg {
    Arg {
        ioos,
        ours,
        conv: Conv::HoursToSeconds,
    }
}

/// The tests of `ioos_qc.qartod` FåKopp runs: ioos_qc name, FåKopp op,
/// arguments (the data arguments `inp`, `tinp`, `zinp`, `lon`, `lat` come
/// from the observations and the stations file).
const TESTS: &[(&str, &str, &[Arg])] = &[
    (
        "gross_range_test",
        "gross_range",
        &[same("fail_span"), same("suspect_span")],
    ),
    (
        "spike_test",
        "spike",
        &[
            same("suspect_threshold"),
            same("fail_threshold"),
            same("method"),
        ],
    ),
    (
        "rate_of_change_test",
        "rate_of_change",
        &[same("threshold"), same("fail_threshold")],
    ),
    (
        "flat_line_test",
        "flat_line",
        &[
            renamed("suspect_threshold", "suspect_threshold_s"),
            renamed("fail_threshold", "fail_threshold_s"),
            same("tolerance"),
        ],
    ),
    (
        "attenuated_signal_test",
        "attenuated_signal",
        &[
            same("suspect_threshold"),
            same("fail_threshold"),
            renamed("test_period", "test_period_s"),
            same("min_obs"),
            renamed("min_period", "min_period_s"),
            same("check_type"),
        ],
    ),
    (
        "climatology_test",
        "climatology",
        &[Arg {
            ioos: "config",
            ours: "members",
            conv: Conv::Climatology,
        }],
    ),
    (
        "time_gap_test",
        "time_gap",
        &[hours("fail_span", "fail_span_s")],
    ),
    (
        "impossible_date_test",
        "impossible_date",
        &[same("fail_span")],
    ),
    (
        "data_reception_test",
        "data_reception",
        &[hours("fail_span", "fail_span_s"), same("from_time")],
    ),
    (
        "percentile_range_test",
        "percentile_range",
        &[same("low_percentile"), same("hi_percentile"), same("pad")],
    ),
    (
        "syntax_test",
        "syntax",
        &[same("nchar"), same("lentype"), same("delimiter")],
    ),
    (
        "location_test",
        "location",
        &[same("range_max"), same("range_method")],
    ),
    (
        "location_bounds_test",
        "location_bounds",
        &[same("shape"), same("flag_area")],
    ),
];

/// Tests of ioos_qc 3.0's `qartod` module FåKopp does not run, and why.
const NOT_RUN: &[(&str, &str)] = &[
    ("density_inversion_test", "it needs density profiles"),
    ("location_on_land_test", "it needs a land polygon data set"),
];

/// The QC steps of `stream` (or the only stream) of the ioos_qc config at `file`.
pub fn steps(file: &Path, stream: Option<&str>, mode: Mode) -> Result<Vec<Step>, ConfigError> {
    let err = |key: String, reason: String| ConfigError {
        file: file.to_owned(),
        key: (!key.is_empty()).then_some(key),
        reason,
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        err(
            String::new(),
            format!("cannot read the ioos_qc config: {e}"),
        )
    })?;
    // Read as YAML first: it keeps the order of the tests (the order of the
    // flags) and refuses a key given twice, as ioos_qc's loader does.
    let mut yaml: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| err(String::new(), format!("not YAML or JSON: {e}")))?;
    // Merge keys (`<<: *defaults`), as ioos_qc's loader applies them.
    yaml.apply_merge()
        .map_err(|e| err(String::new(), format!("YAML merge keys: {e}")))?;
    let root: Value = serde_json::to_value(&yaml)
        .map_err(|e| err(String::new(), format!("not an ioos_qc config: {e}")))?;
    let Value::Object(root) = root else {
        return Err(err(
            String::new(),
            "an ioos_qc config is a mapping (qartod:, streams: or stream ids)".into(),
        ));
    };
    let streams = stream_map(&root).map_err(|(k, r)| err(k, r))?;
    let (id, prefix, mut tests) = pick(&streams, stream).map_err(|(k, r)| err(k, r))?;
    let packages = if root.contains_key("streams") {
        entry(&yaml["streams"], &id)
    } else if root.contains_key("qartod") {
        &yaml
    } else {
        entry(&yaml, &id)
    };
    let order: Vec<String> = packages["qartod"]
        .as_mapping()
        .map(|m| m.keys().map(key_text).collect())
        .unwrap_or_default();
    let position = |name: &str| order.iter().position(|o| o == name);
    if let Some((name, _)) = tests.iter().find(|(name, _)| position(name).is_none()) {
        return Err(err(
            format!("{prefix}.{name}"),
            "cannot find the test again in the file (its order would be lost)".into(),
        ));
    }
    tests.sort_by_key(|(name, _)| position(name));
    let mut out = Vec::new();
    for (name, args) in tests {
        let key = format!("{prefix}.{name}");
        if name == "aggregate" {
            continue;
        }
        let (_, op, known) = TESTS.iter().find(|t| t.0 == name).ok_or_else(|| {
            let why = NOT_RUN
                .iter()
                .find(|n| n.0 == name)
                .map(|n| format!("`{name}` is not supported by FåKopp: {}", n.1))
                .unwrap_or_else(|| {
                    format!(
                        "`{name}` is not a test of ioos_qc 3.0's qartod module that FåKopp runs (one of {})",
                        TESTS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
                    )
                });
            err(key.clone(), why)
        })?;
        let args = match args {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            other => {
                return Err(err(
                    key,
                    format!("arguments must be a mapping, not {other}"),
                ))
            }
        };
        let mut step = Map::new();
        step.insert("op".into(), Value::String((*op).into()));
        // ioos_qc's defaults where FåKopp's step has none.
        if *op == "time_gap" {
            step.insert("fail_span_s".into(), Value::from(2.0 * 3600.0));
        }
        for (arg, v) in &args {
            let a = known.iter().find(|a| a.ioos == arg).ok_or_else(|| {
                err(
                    format!("{key}.{arg}"),
                    format!(
                        "`{name}` has no argument `{arg}` in ioos_qc 3.0 (it takes {})",
                        known.iter().map(|a| a.ioos).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            let v = convert(a.conv, v).map_err(|r| err(format!("{key}.{arg}"), r))?;
            step.insert(a.ours.into(), v);
        }
        let step: Step = serde_json::from_value(Value::Object(step))
            .map_err(|e| err(key.clone(), e.to_string()))?;
        super::validate::step(&key, &step).map_err(|(k, r)| err(k, r))?;
        if let Some(why) = step.batch_only().filter(|_| mode == Mode::Stream) {
            return Err(err(
                key,
                format!("`{name}` is batch only, not in a stream: {why}"),
            ));
        }
        out.push(step);
    }
    if out.is_empty() {
        return Err(err(prefix, "no QC test to run".into()));
    }
    Ok(out)
}

type Fail = (String, String);

/// A YAML key as the JSON form names it (`1:` is `"1"` there).
fn key_text(k: &serde_yaml::Value) -> String {
    match serde_json::to_value(k) {
        Ok(Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => String::new(),
    }
}

/// The value under the key named `id` (in its JSON form) of a mapping.
fn entry<'a>(m: &'a serde_yaml::Value, id: &str) -> &'a serde_yaml::Value {
    static NULL: serde_yaml::Value = serde_yaml::Value::Null;
    m.as_mapping()
        .and_then(|m| m.iter().find(|(k, _)| key_text(k) == id).map(|(_, v)| v))
        .unwrap_or(&NULL)
}

/// A stream: its id, the key prefix of its packages, the packages.
type Stream<'a> = (String, String, &'a Map<String, Value>);

fn packages<'a>(id: &str, prefix: String, v: &'a Value) -> Result<Stream<'a>, Fail> {
    match v {
        Value::Object(m) => Ok((id.to_string(), prefix, m)),
        _ => Err((prefix, "must map packages (qartod) to their tests".into())),
    }
}

/// Every stream of the file, whichever of ioos_qc's layouts it has.
fn stream_map(root: &Map<String, Value>) -> Result<Vec<Stream<'_>>, Fail> {
    if root.contains_key("contexts") {
        return Err((
            "contexts".into(),
            "several contexts (time windows, regions) are not supported: a chain runs its \
             tests over every observation of the sensors it selects"
                .into(),
        ));
    }
    if let Some(streams) = root.get("streams") {
        for (k, v) in root {
            match k.as_str() {
                "streams" | "attrs" => {}
                "region" | "window" if v.is_null() => {}
                "region" | "window" => {
                    return Err((
                        k.clone(),
                        format!(
                            "a {k} is not supported: a chain runs its tests over every \
                             observation of the sensors it selects (use the chain's select)"
                        ),
                    ))
                }
                _ => return Err((k.clone(), "not a key of an ioos_qc ContextConfig".into())),
            }
        }
        let Value::Object(s) = streams else {
            return Err((
                "streams".into(),
                "must map stream ids to their tests".into(),
            ));
        };
        return s
            .iter()
            .map(|(id, v)| packages(id, format!("streams.{id}"), v))
            .collect();
    }
    if root.contains_key("qartod") {
        // A StreamConfig: the packages are the root itself.
        return Ok(vec![("_stream".into(), String::new(), root)]);
    }
    // A Config: stream ids at the top.
    root.iter()
        .map(|(id, v)| packages(id, id.clone(), v))
        .collect()
}

/// A stream's tests: name and arguments.
type Tests<'a> = Vec<(&'a str, &'a Value)>;

/// The chain's stream: its id, the key prefix of its tests, its `qartod`
/// tests.
fn pick<'a>(
    streams: &'a [Stream<'a>],
    wanted: Option<&str>,
) -> Result<(String, String, Tests<'a>), Fail> {
    let names = || {
        streams
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (id, prefix, pk) = match wanted {
        Some(w) => streams.iter().find(|s| s.0 == w).ok_or_else(|| {
            (
                "streams".to_string(),
                format!(
                    "no stream `{w}` (the chain's ioos_qc_stream); the file has {}",
                    names()
                ),
            )
        })?,
        None => match streams {
            [one] => one,
            _ => {
                return Err((
                    "streams".into(),
                    format!(
                        "the file has {} streams ({}): name one with the chain's ioos_qc_stream",
                        streams.len(),
                        names()
                    ),
                ))
            }
        },
    };
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    let mut tests = Vec::new();
    for (package, t) in pk.iter() {
        if package == "attrs" {
            continue;
        }
        if package != "qartod" {
            return Err((
                join(package),
                format!("package `{package}` is not supported: FåKopp runs ioos_qc's qartod tests"),
            ));
        }
        let Value::Object(t) = t else {
            return Err((
                join(package),
                "must map test names to their arguments".into(),
            ));
        };
        tests.extend(t.iter().map(|(k, v)| (k.as_str(), v)));
    }
    Ok((id.clone(), join("qartod"), tests))
}

/// An ioos_qc argument's value in FåKopp's form.
fn convert(conv: Conv, v: &Value) -> Result<Value, String> {
    match conv {
        Conv::Same => Ok(v.clone()),
        Conv::HoursToSeconds => {
            let h = v
                .as_f64()
                .ok_or_else(|| format!("{v} is not a number of hours"))?;
            // As ioos_qc: `int(fail_span * 3600)` seconds.
            Ok(Value::from(h * 3600.0))
        }
        Conv::Climatology => {
            let Value::Array(members) = v else {
                return Err("must be a list of {tspan, vspan, fspan, zspan, period}".into());
            };
            members
                .iter()
                .enumerate()
                .map(|(i, m)| climatology_member(m).map_err(|e| format!("member {i}: {e}")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
    }
}

/// A pair of numbers in ascending order (anything else as it is, for the
/// step's own check to name).
fn sorted_pair(v: &Value) -> Value {
    match v
        .as_array()
        .map(|a| a.iter().map(Value::as_f64).collect::<Vec<_>>())
    {
        Some(p) if p.len() == 2 && p.iter().all(Option::is_some) => {
            let (a, b) = (p[0].unwrap_or_default(), p[1].unwrap_or_default());
            if a > b {
                Value::from(vec![v[1].clone(), v[0].clone()])
            } else {
                v.clone()
            }
        }
        _ => v.clone(),
    }
}

/// One `ClimatologyConfig.add(tspan, vspan, fspan, zspan, period)` entry:
/// with a `period`, `tspan` is numeric; without, it is a date range.
fn climatology_member(m: &Value) -> Result<Value, String> {
    let Value::Object(m) = m else {
        return Err("must be a mapping".into());
    };
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            // `ClimatologyConfig.add` sorts each span.
            "vspan" | "fspan" => {
                out.insert(k.clone(), sorted_pair(v));
            }
            // The pandas names with an underscore, as ioos_qc takes them.
            "period" => {
                let p = match v.as_str() {
                    Some("day_of_year") => Value::from("dayofyear"),
                    Some("day_of_week") => Value::from("dayofweek"),
                    _ => v.clone(),
                };
                out.insert(k.clone(), p);
            }
            "zspan" if v.is_null() => {}
            "zspan" => {
                return Err("zspan (depth ranges) is not supported: sensors have no depth".into())
            }
            "tspan" => {}
            other => {
                return Err(format!(
                    "no key `{other}` (tspan, vspan, fspan, zspan, period)"
                ))
            }
        }
    }
    let tspan = m.get("tspan").ok_or("tspan is required")?;
    if m.get("period").is_some_and(|p| !p.is_null()) {
        out.insert("tspan".into(), sorted_pair(tspan));
    } else {
        let dates = tspan
            .as_array()
            .filter(|a| a.len() == 2)
            .ok_or("tspan must be two dates")?;
        let ns = dates
            .iter()
            .map(|d| {
                let s = d
                    .as_str()
                    .ok_or_else(|| format!("tspan date {d} is not a string"))?;
                crate::model::parse_time_ns(s).map_err(|e| format!("tspan `{s}`: {e}"))
            })
            .collect::<Result<Vec<i64>, String>>()?;
        out.insert(
            "tspan_ns".into(),
            Value::from(vec![ns[0].min(ns[1]), ns[0].max(ns[1])]),
        );
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("qc.yaml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn tests_keep_file_order_defaults_and_sorted_spans() {
        let (_d, p) = file(
            "qartod:\n  spike_test: {suspect_threshold: 1}\n  time_gap_test:\n  gross_range_test: {fail_span: [0, 12]}\n  climatology_test:\n    config:\n      - {tspan: [3, 1], vspan: [9, 2], period: day_of_year}\n",
        );
        let steps = steps(&p, None, Mode::Batch).unwrap();
        let ops: Vec<&str> = steps.iter().map(Step::op).collect();
        assert_eq!(ops, ["spike", "time_gap", "gross_range", "climatology"]);
        match &steps[1] {
            Step::TimeGap(c) => assert_eq!(c.fail_span_s, 7200.0),
            s => panic!("{s:?}"),
        }
        match &steps[3] {
            Step::Climatology(c) => {
                let m = &c.members[0];
                assert_eq!((m.tspan, m.vspan), (Some([1.0, 3.0]), [2.0, 9.0]));
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn duplicates_and_batch_only_tests_in_a_stream_are_named() {
        let (_d, p) = file(
            "qartod:\n  spike_test: {suspect_threshold: 1}\n  spike_test: {suspect_threshold: 2}\n",
        );
        let e = steps(&p, None, Mode::Batch).unwrap_err();
        assert!(e.reason.contains("duplicate"), "{e}");
        let (_d, p) = file("qartod:\n  percentile_range_test: {}\n");
        assert!(steps(&p, None, Mode::Batch).is_ok());
        let e = steps(&p, None, Mode::Stream).unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("qartod.percentile_range_test"),
            "{e}"
        );
        assert!(e.reason.contains("batch only"), "{e}");
        let (_d, p) =
            file("qartod:\n  syntax_test: {nchar: 4, lentype: ' Byte', delimiter: ','}\n");
        match &steps(&p, None, Mode::Batch).unwrap()[..] {
            [Step::Syntax(c)] => assert_eq!(
                (c.nchar, c.lentype, c.delimiter.as_deref()),
                (4.0, fakopp_kernels::qc::LenType::Byte, Some(","))
            ),
            s => panic!("{s:?}"),
        }
        let e = steps(&p, None, Mode::Stream).unwrap_err();
        assert!(e.reason.contains("raw text"), "{e}");
        let (_d, p) = file("qartod:\n  syntax_test: {nchar: 4, length: 2}\n");
        let e = steps(&p, None, Mode::Batch).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("qartod.syntax_test.length"), "{e}");
    }

    #[test]
    fn numeric_stream_ids_and_merge_keys() {
        let (_d, p) = file(
            "defaults: &d\n  suspect_threshold: 1\nstreams:\n  7:\n    qartod:\n      spike_test:\n        <<: *d\n        fail_threshold: 3\n      gross_range_test: {fail_span: [0, 12]}\n",
        );
        // `defaults` is not a ContextConfig key.
        assert!(steps(&p, Some("7"), Mode::Batch).is_err());
        let (_d, p) = file(
            "7:\n  qartod:\n    spike_test: {suspect_threshold: 1, fail_threshold: 3}\n    gross_range_test: {fail_span: [0, 12]}\n",
        );
        let ops: Vec<&str> = steps(&p, Some("7"), Mode::Batch)
            .unwrap()
            .iter()
            .map(Step::op)
            .collect::<Vec<_>>();
        assert_eq!(ops, ["spike", "gross_range"]);
        let (_d, p) =
            file("qartod:\n  spike_test:\n    <<: {suspect_threshold: 1}\n    fail_threshold: 3\n");
        match &steps(&p, None, Mode::Batch).unwrap()[0] {
            Step::Spike(c) => assert_eq!(
                (c.suspect_threshold, c.fail_threshold),
                (Some(1.0), Some(3.0))
            ),
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn tooling_commands_leave_the_file_unread() {
        let text = "[source]\nkind = \"files\"\n[[chains]]\nname = \"q\"\nselect = [\"A.B..C\"]\nioos_qc_config = \"/nonexistent/qc.yaml\"\n";
        let path = Path::new("t.toml");
        assert!(crate::config::Config::parse(text, path, Mode::Tooling).is_ok());
        let e = crate::config::Config::parse(text, path, Mode::Batch).unwrap_err();
        assert!(e.reason.contains("cannot read the ioos_qc config"), "{e}");
        let text = "[source]\nkind = \"files\"\n[[chains]]\nname = \"q\"\nselect = [\"A.B..C\"]\nioos_qc_stream = \"x\"\nsteps = [{ op = \"location\" }]\n";
        let e = crate::config::Config::parse(text, path, Mode::Batch).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("chains[0].ioos_qc_stream"), "{e}");
    }
}
