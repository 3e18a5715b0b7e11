//! The `files` source: MiniSEED 2/3 and CSV inputs for `fakopp batch` and
//! `fakopp produce` (docs/reference.md, "Input files").
//!
//! [`read_inputs`] reads every file, collects each sensor's data over all
//! files and assembles it into one [`Series`] per sensor (see
//! [`crate::assemble`]). Bad records (a corrupt or truncated MiniSEED
//! record, a malformed CSV row) are an error naming the file and the record,
//! or, with `keep_going`, reported in [`FileInput::bad`] and skipped; a file
//! that cannot be opened or whose format is unknown is always an error.

pub mod csv;
pub mod mapped;
pub mod mseed;
pub mod steim;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use rayon::prelude::*;

use crate::assemble::{assemble, same_rate, AssembleReport, PieceBuf};
use crate::model::{kind_from_channel, Segment, Series};
use fakopp_kernels::qc::RawTexts;

/// Unit given to series whose input does not name one (MiniSEED, CSV
/// without a `unit` column).
pub const UNKNOWN_UNIT: &str = "";

/// Input file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputFormat {
    MiniSeed,
    Csv,
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::MiniSeed => "MiniSEED",
            InputFormat::Csv => "CSV",
        })
    }
}

/// A record of an input file that could not be used.
///
/// For MiniSEED, `record` is the 0-based index of the record in the file
/// (counting every record-sized block met, including skipped non-data
/// blocks) and `offset` its byte offset. For CSV, `record` is the 1-based
/// line number and `offset` the byte offset of that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub file: PathBuf,
    pub format: InputFormat,
    pub record: u64,
    pub offset: u64,
    pub reason: String,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            InputFormat::MiniSeed => write!(
                f,
                "{}: record {} (byte offset {}): {}",
                self.file.display(),
                self.record,
                self.offset,
                self.reason
            ),
            InputFormat::Csv => write!(
                f,
                "{}: line {}: {}",
                self.file.display(),
                self.record,
                self.reason
            ),
        }
    }
}

impl std::error::Error for BadRecord {}

/// What was read from one input file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    pub path: PathBuf,
    pub format: InputFormat,
    /// Data records (MiniSEED) or data rows (CSV) used.
    pub records: u64,
    /// Samples (readings) taken from the file, NaN ones included.
    pub samples: u64,
    /// Sensors with data in the file.
    pub sensors: u64,
    /// Records skipped on purpose, counted by reason (blank/noise records,
    /// SEED control headers, text/log records, records without samples).
    pub skipped: BTreeMap<String, u64>,
    /// Bad records (see [`FileInput::bad`]).
    pub bad: u64,
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {} records, {} samples, {} sensors, {} bad",
            self.path.display(),
            self.format,
            self.records,
            self.samples,
            self.sensors,
            self.bad
        )?;
        for (reason, n) in &self.skipped {
            write!(f, "; skipped {n}: {reason}")?;
        }
        Ok(())
    }
}

/// Everything read from the input files.
#[derive(Debug, Clone, PartialEq)]
pub struct FileInput {
    /// One series per sensor, sorted by sensor id; a sensor's data from
    /// several files are merged.
    pub series: Vec<Series>,
    /// Records skipped because they were bad (only with `keep_going`).
    pub bad: Vec<BadRecord>,
    /// Per input file, in the order given.
    pub files: Vec<FileReport>,
    /// Per sensor (same order as `series`): how its pieces were assembled.
    pub assembly: Vec<(String, AssembleReport)>,
}

/// Data of one sensor from one file, before assembly.
#[derive(Debug, Clone, PartialEq)]
pub enum SensorData {
    /// Evenly spaced pieces (MiniSEED records) and the sample rates they
    /// declare (one, unless the rate changes within the file).
    Pieces { rates: Vec<f64>, pieces: PieceBuf },
    /// Timestamped readings in file order (CSV), with the unit if known,
    /// and each reading's cell text when it was asked for (else empty).
    Readings {
        readings: Vec<(i64, f64)>,
        texts: Vec<Box<str>>,
        unit: Option<String>,
    },
}

/// Which sensors a read keeps (decodes and assembles): all, or one rank's
/// share of a distributed batch run.
#[derive(Debug, Clone, Copy)]
pub enum Want<'a> {
    All,
    Only(&'a BTreeSet<String>),
}

impl Want<'_> {
    pub fn keeps(&self, sensor: &str) -> bool {
        match self {
            Want::All => true,
            Want::Only(set) => set.contains(sensor),
        }
    }
}

/// The raw content of one file, as the format readers return it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFile {
    /// The sensors kept (see [`Want`]) that have data.
    pub sensors: BTreeMap<String, SensorData>,
    /// Samples per sensor in the file, kept or not (MiniSEED: as the good
    /// record headers declare them, without decoding).
    pub counts: BTreeMap<String, u64>,
    pub bad: Vec<BadRecord>,
    pub report: FileReport,
}

/// Detects a file's format: by extension (`.mseed`, `.ms`, `.miniseed`,
/// `.msd`, `.mseed2`, `.mseed3`; `.csv`), otherwise by content (a MiniSEED
/// record header as libmseed detects it; a CSV header row with a `time`
/// column).
pub fn detect_format(path: &Path) -> anyhow::Result<InputFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("mseed" | "ms" | "miniseed" | "msd" | "mseed2" | "mseed3") => {
            return Ok(InputFormat::MiniSeed)
        }
        Some("csv") => return Ok(InputFormat::Csv),
        _ => {}
    }
    let mut head = Vec::with_capacity(8192);
    std::fs::File::open(path)
        .and_then(|f| f.take(8192).read_to_end(&mut head))
        .with_context(|| format!("cannot read input file {}", path.display()))?;
    if mseed::looks_like_mseed(&head) {
        return Ok(InputFormat::MiniSeed);
    }
    if csv::looks_like_csv(&head) {
        return Ok(InputFormat::Csv);
    }
    bail!(
        "{}: unknown input format: not MiniSEED (no record header found) and not CSV (no header row \
         with a `time` column); name MiniSEED files *.mseed/*.ms/*.miniseed/*.msd and CSV files *.csv",
        path.display()
    )
}

/// Reads one input file in the format its name or content says, keeping
/// the sensors `want` names (and, with `raw_text`, the text of each reading
/// of a text format).
pub fn read_file(
    path: &Path,
    keep_going: bool,
    want: Want<'_>,
    raw_text: bool,
) -> anyhow::Result<RawFile> {
    match detect_format(path)? {
        InputFormat::MiniSeed => mseed::read_mseed(path, keep_going, want),
        InputFormat::Csv => {
            let mut raw = csv::read_csv(path, keep_going, raw_text)?;
            raw.sensors.retain(|id, _| want.keeps(id));
            Ok(raw)
        }
    }
}

/// Samples per sensor over all inputs, for partitioning the sensors
/// before reading them: MiniSEED from record headers only (nothing is
/// decoded), CSV by parsing. Bad records are left to the real read.
pub fn scan_inputs(paths: &[PathBuf]) -> anyhow::Result<BTreeMap<String, u64>> {
    let none = BTreeSet::new();
    let raws: Vec<anyhow::Result<RawFile>> = paths
        .par_iter()
        .map(|p| read_file(p, true, Want::Only(&none), false))
        .collect();
    let mut counts = BTreeMap::new();
    for raw in raws {
        for (id, n) in raw?.counts {
            *counts.entry(id).or_insert(0) += n;
        }
    }
    Ok(counts)
}

/// Reads all inputs (in parallel), merges each sensor's data over the
/// files and assembles it into series (see [`crate::assemble`]); gaps of up
/// to `max_gap_interp_samples` missing samples are interpolated.
///
/// Without `keep_going` the first bad record is an error (a [`BadRecord`]
/// in the error chain); with it, bad records are skipped and listed in
/// [`FileInput::bad`].
pub fn read_inputs(
    paths: &[PathBuf],
    max_gap_interp_samples: u64,
    keep_going: bool,
) -> anyhow::Result<FileInput> {
    read_inputs_of(paths, max_gap_interp_samples, keep_going, Want::All, false)
}

/// [`read_inputs`] keeping only the sensors `want` names (the others are
/// not decoded); bad records are reported whichever sensor they hold. With
/// `raw_text`, series read from text keep each observation's text
/// ([`Series::raw_texts`]).
pub fn read_inputs_of(
    paths: &[PathBuf],
    max_gap_interp_samples: u64,
    keep_going: bool,
    want: Want<'_>,
    raw_text: bool,
) -> anyhow::Result<FileInput> {
    let raws: Vec<anyhow::Result<RawFile>> = paths
        .par_iter()
        .map(|p| read_file(p, keep_going, want, raw_text))
        .collect();
    let mut merged: BTreeMap<String, Vec<(usize, SensorData)>> = BTreeMap::new();
    let mut bad = Vec::new();
    let mut files = Vec::new();
    for (i, raw) in raws.into_iter().enumerate() {
        let raw = raw?;
        bad.extend(raw.bad);
        files.push(raw.report);
        for (id, data) in raw.sensors {
            merged.entry(id).or_default().push((i, data));
        }
    }
    let mut series = Vec::with_capacity(merged.len());
    let mut assembly = Vec::with_capacity(merged.len());
    for (id, parts) in merged {
        let (s, rep) = build_series(&id, parts, paths, max_gap_interp_samples)?;
        series.push(s);
        assembly.push((id, rep));
    }
    Ok(FileInput {
        series,
        bad,
        files,
        assembly,
    })
}

fn build_series(
    id: &str,
    parts: Vec<(usize, SensorData)>,
    paths: &[PathBuf],
    max_gap: u64,
) -> anyhow::Result<(Series, AssembleReport)> {
    let mut bufs: Vec<(Vec<f64>, PieceBuf, usize)> = Vec::new();
    let mut readings: Vec<(i64, f64)> = Vec::new();
    let mut texts: Vec<Box<str>> = Vec::new();
    let mut unit: Option<(String, usize)> = None;
    for (file, data) in parts {
        match data {
            SensorData::Pieces { rates, pieces } => bufs.push((rates, pieces, file)),
            SensorData::Readings {
                readings: r,
                texts: x,
                unit: u,
            } => {
                readings.extend(r);
                texts.extend(x);
                if let Some(u) = u {
                    match &unit {
                        Some((prev, pf)) if *prev != u => bail!(
                            "sensor {id}: unit `{u}` in {} differs from unit `{prev}` in {}",
                            paths[file].display(),
                            paths[*pf].display()
                        ),
                        Some(_) => {}
                        None => unit = Some((u, file)),
                    }
                }
            }
        }
    }
    if !bufs.is_empty() && !readings.is_empty() {
        bail!("sensor {id} has data both in MiniSEED and in CSV inputs; give each sensor in one format");
    }
    let unit = unit
        .map(|(u, _)| u)
        .unwrap_or_else(|| UNKNOWN_UNIT.to_string());
    // Before assembly takes the readings: texts follow its rule for
    // readings at one time (the first is kept).
    let raw_texts = (!texts.is_empty()).then(|| {
        debug_assert_eq!(texts.len(), readings.len(), "a text per reading");
        Arc::new(RawTexts::first_per_time(
            readings.iter().zip(&texts).map(|(r, x)| (r.0, &**x)),
        ))
    });
    let (rate, segments, report) = if let Some((rates, _, first_file)) = bufs.first() {
        let rate = rates[0];
        for (rates, _, file) in &bufs {
            if let Some(other) = rates.iter().find(|r| !same_rate(**r, rate)) {
                bail!(
                    "sensor {id}: sample rate {other} Hz in {} differs from {rate} Hz in {}; \
                     a series has one rate (split the inputs or rename the channel)",
                    paths[*file].display(),
                    paths[*first_file].display()
                );
            }
        }
        let (segments, report) =
            assemble(bufs.into_iter().map(|(_, p, _)| p).collect(), rate, max_gap);
        (rate, segments, report)
    } else {
        readings_to_segments(readings, max_gap)
    };
    Ok((
        Series {
            sensor_id: id.to_string(),
            kind: kind_from_channel(id),
            unit,
            sample_rate_hz: rate,
            segments,
            raw_texts,
        },
        report,
    ))
}

/// Turns timestamped readings into segments.
///
/// Readings are sorted by time (stable); readings at the same time are
/// duplicates (dropped if equal, otherwise the first one given is kept and
/// a conflict counted). The series is regular when every reading lies, to
/// 1 µs, on a grid `t0 + k·dt`: all consecutive differences are equal
/// (`sample_rate_hz = 1e9 / dt`), or at least half of them equal the
/// smallest one and the others are whole multiples of it (missing rows,
/// treated as gaps: interpolated up to `max_gap` missing samples, otherwise
/// a new segment). Otherwise the
/// series is irregular: rate 0, one segment with `times_ns`. A single
/// reading is irregular.
pub fn readings_to_segments(
    mut readings: Vec<(i64, f64)>,
    max_gap: u64,
) -> (f64, Vec<Segment>, AssembleReport) {
    let mut report = AssembleReport {
        pieces: readings.len() as u64,
        samples_in: readings.len() as u64,
        ..Default::default()
    };
    readings.sort_by_key(|r| r.0);
    let mut unique: Vec<(i64, f64)> = Vec::with_capacity(readings.len());
    for (t, v) in readings {
        match unique.last() {
            Some(&(lt, lv)) if lt == t => {
                if lv == v || (lv.is_nan() && v.is_nan()) {
                    report.duplicates_dropped += 1;
                } else {
                    report.overlaps_trimmed += 1;
                    report.overlap_samples_dropped += 1;
                    report.overlap_conflicts += 1;
                }
            }
            _ => unique.push((t, v)),
        }
    }
    if unique.is_empty() {
        return (0.0, Vec::new(), report);
    }
    if let Some(rate) = regular_rate(&unique) {
        // Runs of consecutive grid slots become pieces; assemble snaps them
        // onto one grid and handles the gaps.
        let period = 1e9 / rate;
        let t0 = unique[0].0;
        let mut pieces = PieceBuf::default();
        let mut last_slot = i64::MIN;
        for &(t, v) in &unique {
            let slot = ((t - t0) as f64 / period).round() as i64;
            if slot == last_slot + 1 {
                pieces.extend_last(t, v);
            } else {
                pieces.push(t, &[v]);
            }
            last_slot = slot;
        }
        let (segments, mut rep) = assemble(vec![pieces], rate, max_gap);
        rep.pieces = report.pieces;
        rep.samples_in = report.samples_in;
        rep.duplicates_dropped += report.duplicates_dropped;
        rep.overlaps_trimmed += report.overlaps_trimmed;
        rep.overlap_samples_dropped += report.overlap_samples_dropped;
        rep.overlap_conflicts += report.overlap_conflicts;
        return (rate, segments, rep);
    }
    report.segments = 1;
    let segment = Segment {
        start_ns: unique[0].0,
        times_ns: unique.iter().map(|r| r.0).collect(),
        samples: unique.iter().map(|r| r.1).collect(),
    };
    (0.0, vec![segment], report)
}

/// The rate of readings (sorted, distinct times) lying on a regular grid,
/// to 1 µs; `None` if they do not (or are fewer than two).
fn regular_rate(readings: &[(i64, f64)]) -> Option<f64> {
    const TOL_NS: f64 = 1_000.0;
    if readings.len() < 2 {
        return None;
    }
    let t0 = readings[0].0;
    let min_dt = readings.windows(2).map(|w| w[1].0 - w[0].0).min()?;
    if min_dt <= 0 {
        return None;
    }
    let last = readings[readings.len() - 1].0 - t0;
    let k_last = (last as f64 / min_dt as f64).round();
    if k_last < 1.0 {
        return None;
    }
    let dt = last as f64 / k_last;
    if (dt - min_dt as f64).abs() > TOL_NS {
        return None;
    }
    let on_grid = readings.iter().all(|&(t, _)| {
        let x = (t - t0) as f64;
        (x - (x / dt).round() * dt).abs() <= TOL_NS
    });
    // Missing rows are gaps only while the grid step is the usual spacing:
    // at least half of the consecutive differences must be one step.
    let steps = readings
        .windows(2)
        .filter(|w| ((w[1].0 - w[0].0) as f64 - dt).abs() <= 2.0 * TOL_NS)
        .count();
    (on_grid && 2 * steps >= readings.len() - 1).then_some(1e9 / dt)
}
