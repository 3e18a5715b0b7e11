//! `fakopp export`: a sensor's recording read back from `raw_packets`
//! (docs/architecture.md, "Raw store"). Partitions `(sensor, day)` are
//! listed, filtered by the sensor globs and the time range, and read page
//! by page; each sensor's series is rebuilt ([`crate::source::stored`]) and written as
//! MiniSEED, long CSV or JSON lines, sensor after sensor in id order.
//!
//! Output goes to `PATH.partial` and is renamed to `PATH` only when the
//! export succeeded, so a failed export never leaves a file that looks
//! whole.

mod mseed;
mod text;

use crate::config::Config;
use crate::model::SensorKind;
use crate::progress::Progress;
use crate::sink::cassandra::CassandraSink;
use crate::source::{cassandra, stored};
use anyhow::{Context, Result};
use globset::GlobSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// MiniSEED version 2 or 3 with records of `record_length` bytes (the
    /// largest length for version 3).
    Mseed { version: u8, record_length: i32 },
    /// The long CSV `fakopp batch` reads.
    Csv,
    /// JSON lines of SensorPackets.
    Jsonl,
}

#[derive(Debug, Clone)]
pub struct ExportArgs {
    /// Sensor id globs (`*`, `?`, `[...]`); a sensor matching any is exported.
    pub sensors: Vec<String>,
    pub from_ns: i64,
    pub to_ns: i64,
    pub format: Format,
    /// Output file; `None` is standard output.
    pub output: Option<PathBuf>,
    /// Skip packets whose blob does not decode (each reported) instead of
    /// stopping at the first.
    pub keep_going: bool,
}

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportReport {
    pub sensors: u64,
    pub partitions: u64,
    pub packets: u64,
    pub samples: u64,
    /// Packets skipped because their blob did not decode (`keep_going`).
    pub damaged: u64,
    pub duplicates_dropped: u64,
    pub overlaps_trimmed: u64,
    pub conflicts: u64,
    pub secs: f64,
}

impl std::fmt::Display for ExportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exported {} samples of {} sensors ({} partitions, {} packets) in {:.2} s = {:.0} samples/s",
            self.samples,
            self.sensors,
            self.partitions,
            self.packets,
            self.secs,
            self.samples as f64 / self.secs.max(1e-9)
        )?;
        if self.duplicates_dropped + self.overlaps_trimmed > 0 {
            write!(
                f,
                "; {} duplicate packets dropped, {} overlaps trimmed ({} conflicting samples)",
                self.duplicates_dropped, self.overlaps_trimmed, self.conflicts
            )?;
        }
        if self.damaged > 0 {
            write!(f, "; {} damaged packets skipped", self.damaged)?;
        }
        Ok(())
    }
}

/// A usage error in the export's arguments (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadArgs(pub String);

fn globs(patterns: &[String]) -> Result<GlobSet, BadArgs> {
    cassandra::glob_set(patterns).map_err(|e| BadArgs(format!("--sensor: {e:#}")))
}

enum Out<W: Write> {
    Mseed(mseed::MseedOut<W>),
    Csv(text::CsvOut<W>),
    Jsonl(text::JsonlOut<W>),
}

impl<W: Write> Out<W> {
    fn write(
        &mut self,
        sensor: &str,
        kind: SensorKind,
        unit: &str,
        run: &stored::Run,
    ) -> Result<()> {
        match self {
            Out::Mseed(o) => o.write(sensor, run),
            Out::Csv(o) => o.write(sensor, unit, run),
            Out::Jsonl(o) => o.write(sensor, kind, unit, run),
        }
    }

    fn finish(self) -> Result<W> {
        match self {
            Out::Mseed(o) => o.finish(),
            Out::Csv(o) => o.finish(),
            Out::Jsonl(o) => o.finish(),
        }
    }
}

/// Checks the arguments before anything is opened.
pub fn check(args: &ExportArgs) -> Result<(), BadArgs> {
    if args.sensors.is_empty() {
        return Err(BadArgs("give at least one --sensor GLOB".into()));
    }
    globs(&args.sensors)?;
    if args.from_ns >= args.to_ns {
        return Err(BadArgs("--from must be before --to".into()));
    }
    if let Format::Mseed {
        version,
        record_length,
    } = args.format
    {
        if version != 2 && version != 3 {
            return Err(BadArgs(format!("--mseed-version {version}: 2 or 3")));
        }
        let ok = if version == 2 {
            (256..=65536).contains(&record_length) && (record_length as u32).is_power_of_two()
        } else {
            (64..=1 << 20).contains(&record_length)
        };
        if !ok {
            return Err(BadArgs(format!(
                "--record-length {record_length}: MiniSEED {version} needs {}",
                if version == 2 {
                    "a power of two from 256 to 65536"
                } else {
                    "64 to 1048576 bytes"
                }
            )));
        }
        if args.output.is_none() {
            return Err(BadArgs("MiniSEED needs --output PATH".into()));
        }
    }
    Ok(())
}

/// Runs the export (see the module documentation).
pub fn run(cfg: &Config, args: &ExportArgs) -> Result<ExportReport> {
    check(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match &args.output {
        None => {
            let stdout = std::io::stdout().lock();
            let (report, _) = rt.block_on(export(cfg, args, std::io::BufWriter::new(stdout)))?;
            Ok(report)
        }
        Some(path) => {
            let mut partial = path.clone().into_os_string();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            let file = std::fs::File::create(&partial)
                .with_context(|| format!("cannot create {}", partial.display()))?;
            let done = rt
                .block_on(export(cfg, args, std::io::BufWriter::new(file)))
                .and_then(|(report, w)| {
                    let file = w.into_inner().map_err(|e| e.into_error())?;
                    file.sync_all()
                        .with_context(|| format!("writing {}", partial.display()))?;
                    std::fs::rename(&partial, path).with_context(|| {
                        format!("renaming {} to {}", partial.display(), path.display())
                    })?;
                    Ok(report)
                });
            if done.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            done
        }
    }
}

async fn export<W: Write>(cfg: &Config, args: &ExportArgs, w: W) -> Result<(ExportReport, W)> {
    let started = Instant::now();
    let want = globs(&args.sensors)?;
    let sink = CassandraSink::open(&cfg.cassandra).await?;
    let days = cassandra::partitions(&sink, &want, args.from_ns, args.to_ns).await?;
    let in_range = |d: &[i32]| cassandra::days_in_range(d, args.from_ns) as u64;
    if days.values().all(|d| in_range(d) == 0) {
        tracing::warn!(
            sensors = %args.sensors.join(" "),
            "no stored sensor matches in the time range: the output is empty"
        );
    }
    if matches!(args.format, Format::Mseed { .. }) {
        let mut bad = Vec::new();
        for (sensor, d) in &days {
            if let Err(e) = mseed::check_sensor(sensor) {
                bad.push(format!("{e:#}"));
            } else if cassandra::last_rate(&sink, sensor, d, args.to_ns).await? == Some(0.0) {
                bad.push(format!(
                    "sensor {sensor}: irregular readings (no sample rate) cannot be written as MiniSEED; export them with --format csv or jsonl"
                ));
            }
        }
        if !bad.is_empty() {
            return Err(BadArgs(bad.join("; ")).into());
        }
    }
    // One step per partition in the range, and one per sensor for its last
    // segments.
    let total: u64 = days.values().map(|d| in_range(d) + 1).sum();
    let progress = Progress::counting(total, true, "steps");
    let mut out = match args.format {
        Format::Mseed { .. } => Out::Mseed(mseed::MseedOut::new(w, args.format)),
        Format::Csv => Out::Csv(text::CsvOut::new(w)),
        Format::Jsonl => Out::Jsonl(text::JsonlOut::new(w)),
    };
    let mut report = ExportReport::default();
    for (sensor, ds) in days {
        let samples_before = report.samples;
        let spec = cassandra::ReadSpec {
            from_ns: args.from_ns,
            to_ns: args.to_ns,
            max_gap_interp_samples: 0,
            keep_going: args.keep_going,
            bounded: true,
        };
        let read = cassandra::read_sensor(&sink, &sensor, &ds, spec, |runs, read| {
            progress.inc(1);
            write_runs(&mut out, &sensor, read.meta.as_ref(), runs, &mut report)
        })
        .await?;
        report.partitions += in_range(&ds);
        report.sensors += u64::from(report.samples > samples_before);
        report.packets += read.packets;
        report.damaged += read.damaged.len() as u64;
        report.duplicates_dropped += read.report.duplicates_dropped;
        report.overlaps_trimmed += read.report.overlaps_trimmed;
        report.conflicts += read.report.overlap_conflicts;
    }
    progress.finish();
    let w = out.finish()?;
    report.secs = started.elapsed().as_secs_f64();
    Ok((report, w))
}

fn write_runs<W: Write>(
    out: &mut Out<W>,
    sensor: &str,
    meta: Option<&(SensorKind, String)>,
    runs: &mut Vec<stored::Run>,
    report: &mut ExportReport,
) -> Result<()> {
    let (kind, unit) = match meta {
        Some((k, u)) => (*k, u.as_str()),
        None => (SensorKind::Other, ""),
    };
    for run in runs.drain(..) {
        report.samples += run.segment.samples.len() as u64;
        out.write(sensor, kind, unit, &run)?;
    }
    Ok(())
}
