//! CSV input (docs/reference.md, "Input files"): a header row and a `time` column, in one of two
//! layouts:
//!
//! - long: columns `time`, `sensor` (or `sensor_id`) and `value`, and
//!   optionally `unit`; other columns are ignored;
//! - wide: `time` and one column per sensor, headed by its sensor id.
//!
//! Column names are matched without regard to case or surrounding spaces.
//! Times are RFC 3339 / ISO 8601 ([`crate::model::parse_time_ns`]); naive
//! times are UTC. An empty cell or `NaN` is a missing reading (a NaN
//! sample). A malformed row (bad time, non-numeric value, invalid sensor id,
//! wrong number of cells) is an error naming the file and line, or with
//! `keep_going` a [`BadRecord`] that is skipped.
//!
//! With `raw_text`, each reading keeps its cell's text as read (unquoted,
//! not trimmed): the raw record of the `syntax` test.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use super::{BadRecord, FileReport, InputFormat, RawFile, SensorData};
use crate::model::{parse_time_ns, valid_sensor_id};

/// True when the first line of `head` is a CSV header with a `time` column.
pub fn looks_like_csv(head: &[u8]) -> bool {
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    std::str::from_utf8(first)
        .map(|line| {
            line.split(',')
                .any(|c| c.trim().trim_matches('"').eq_ignore_ascii_case("time"))
        })
        .unwrap_or(false)
}

fn parse_value(cell: &str) -> Result<f64, String> {
    let c = cell.trim();
    if c.is_empty() || c.eq_ignore_ascii_case("nan") {
        return Ok(f64::NAN);
    }
    match c.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("value `{c}` is not finite")),
        Err(_) => Err(format!("value `{c}` is not a number")),
    }
}

enum Layout {
    Long {
        time: usize,
        sensor: usize,
        value: usize,
        unit: Option<usize>,
    },
    Wide {
        time: usize,
        sensors: Vec<(usize, String)>,
    },
}

fn layout(header: &::csv::StringRecord) -> Result<Layout, String> {
    let names: Vec<String> = header
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let find = |want: &[&str]| names.iter().position(|n| want.contains(&n.as_str()));
    let time = find(&["time"]).ok_or("the header row has no `time` column")?;
    if let (Some(sensor), Some(value)) = (find(&["sensor", "sensor_id"]), find(&["value"])) {
        return Ok(Layout::Long {
            time,
            sensor,
            value,
            unit: find(&["unit"]),
        });
    }
    let mut sensors = Vec::new();
    for (i, h) in header.iter().enumerate() {
        if i == time {
            continue;
        }
        let id = h.trim();
        valid_sensor_id(id).map_err(|e| {
            format!(
                "column {} `{id}`: a wide CSV names each sensor column by its sensor id: {e}",
                i + 1
            )
        })?;
        sensors.push((i, id.to_string()));
    }
    if sensors.is_empty() {
        return Err("no sensor columns: expected `time,sensor,value` (long) or `time,<sensor id>...` (wide)".into());
    }
    Ok(Layout::Wide { time, sensors })
}

#[derive(Default)]
struct Sensor {
    readings: Vec<(i64, f64)>,
    texts: Vec<Box<str>>,
    unit: Option<String>,
}

/// Reads a CSV file: every row gives readings of one (long) or all (wide)
/// sensors. Without `keep_going` the first malformed row is an error (its
/// [`BadRecord`] is the error's source). With `raw_text` each reading
/// keeps its cell's text.
pub fn read_csv(path: &Path, keep_going: bool, raw_text: bool) -> anyhow::Result<RawFile> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read CSV file {}", path.display()))?;
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(file);
    let header = reader
        .headers()
        .with_context(|| format!("{}: cannot read the CSV header row", path.display()))?
        .clone();
    let layout = layout(&header).map_err(|e| anyhow::anyhow!("{}: line 1: {e}", path.display()))?;
    let mut sensors: BTreeMap<String, Sensor> = BTreeMap::new();
    let mut report = FileReport {
        path: path.to_path_buf(),
        format: InputFormat::Csv,
        records: 0,
        samples: 0,
        sensors: 0,
        skipped: BTreeMap::new(),
        bad: 0,
    };
    let mut bad = Vec::new();
    let mut row = ::csv::StringRecord::new();
    loop {
        let result = reader.read_record(&mut row);
        let pos = row
            .position()
            .cloned()
            .unwrap_or_else(|| reader.position().clone());
        let outcome: Result<bool, String> = match result {
            Ok(false) => break,
            Ok(true) => parse_row(&row, &header, &layout, raw_text, &mut sensors).map(|n| {
                report.records += 1;
                report.samples += n as u64;
                true
            }),
            Err(e) => {
                if let ::csv::ErrorKind::Io(_) = e.kind() {
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot read CSV file {}", path.display())));
                }
                Err(format!("not valid CSV: {e}"))
            }
        };
        if let Err(reason) = outcome {
            let rec = BadRecord {
                file: path.to_path_buf(),
                format: InputFormat::Csv,
                record: pos.line(),
                offset: pos.byte(),
                reason,
            };
            if !keep_going {
                return Err(anyhow::Error::new(rec));
            }
            tracing::warn!("skipping bad CSV row: {rec}");
            bad.push(rec);
        }
    }
    report.bad = bad.len() as u64;
    report.sensors = sensors.len() as u64;
    Ok(RawFile {
        counts: sensors
            .iter()
            .map(|(id, s)| (id.clone(), s.readings.len() as u64))
            .collect(),
        sensors: sensors
            .into_iter()
            .map(|(id, s)| {
                (
                    id,
                    SensorData::Readings {
                        readings: s.readings,
                        texts: s.texts,
                        unit: s.unit,
                    },
                )
            })
            .collect(),
        bad,
        report,
    })
}

/// Parses one data row into `sensors` (only if the whole row is good);
/// returns the number of readings.
fn parse_row(
    row: &::csv::StringRecord,
    header: &::csv::StringRecord,
    layout: &Layout,
    raw_text: bool,
    sensors: &mut BTreeMap<String, Sensor>,
) -> Result<usize, String> {
    if row.len() != header.len() {
        return Err(format!(
            "{} cells, the header has {} columns",
            row.len(),
            header.len()
        ));
    }
    match layout {
        Layout::Long {
            time,
            sensor,
            value,
            unit,
        } => {
            let t = parse_time_ns(&row[*time])?;
            let id = row[*sensor].trim();
            valid_sensor_id(id)?;
            let v = parse_value(&row[*value])?;
            let u = unit
                .map(|u| row[u].trim().to_string())
                .filter(|u| !u.is_empty());
            let entry = sensors.entry(id.to_string()).or_default();
            if let Some(u) = u {
                match &entry.unit {
                    Some(prev) if *prev != u => {
                        return Err(format!(
                            "unit `{u}` of sensor {id} differs from `{prev}` in earlier rows"
                        ))
                    }
                    Some(_) => {}
                    None => entry.unit = Some(u),
                }
            }
            entry.readings.push((t, v));
            if raw_text {
                entry.texts.push(row[*value].into());
            }
            Ok(1)
        }
        Layout::Wide {
            time,
            sensors: columns,
        } => {
            let t = parse_time_ns(&row[*time])?;
            let values = columns
                .iter()
                .map(|(i, id)| parse_value(&row[*i]).map_err(|e| format!("column `{id}`: {e}")))
                .collect::<Result<Vec<f64>, String>>()?;
            for ((i, id), v) in columns.iter().zip(values) {
                let entry = sensors.entry(id.clone()).or_default();
                entry.readings.push((t, v));
                if raw_text {
                    entry.texts.push(row[*i].into());
                }
            }
            Ok(columns.len())
        }
    }
}
