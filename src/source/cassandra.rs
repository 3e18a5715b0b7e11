//! Raw packets stored in Cassandra as a source: the sensors and days of
//! `raw_packets` that match sensor globs and a time range, each sensor's
//! recording rebuilt from them ([`super::stored`]). `fakopp export` writes
//! what this reads; `fakopp batch` with `[source] kind = "cassandra"`
//! reprocesses it, each MPI rank reading only its own sensors' partitions.

use super::stored::{Rebuilder, Run};
use crate::assemble::AssembleReport;
use crate::model::{day_of, format_day, SensorKind, Series};
use crate::sink::cassandra::{CassandraSink, RawDecodeError, StoredRaw};
use anyhow::{bail, Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::collections::BTreeMap;

/// The globs as one matcher; the error names the bad glob.
pub fn glob_set(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).with_context(|| format!("sensor glob `{p}`"))?);
    }
    Ok(b.build()?)
}

/// Every sensor matching `want` with the days of its partitions that may
/// hold data in `[from_ns, to_ns)`, in sensor order, days ascending. A
/// packet is stored under the day it starts, so days before `from_ns` are
/// listed too (up to [`LOOKBACK_DAYS`]): their last packets may reach into
/// the range.
pub async fn partitions(
    sink: &CassandraSink,
    want: &GlobSet,
    from_ns: i64,
    to_ns: i64,
) -> Result<BTreeMap<String, Vec<i32>>> {
    let days = day_of(from_ns).saturating_sub(LOOKBACK_DAYS)..=day_of(to_ns - 1);
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    let listed = sink
        .raw_partitions(|sensor, day| days.contains(&day) && want.is_match(sensor))
        .await?;
    for (sensor, day) in listed {
        out.entry(sensor).or_default().push(day);
    }
    for d in out.values_mut() {
        d.sort_unstable();
    }
    Ok(out)
}

/// Days before `from` kept in the partition list, for packets that start
/// before the range and reach into it: a packet of 100 daily readings
/// spans 100 days. Packets that start earlier are not seen.
const LOOKBACK_DAYS: i32 = 400;

/// How many of `days` (ascending) are on or after the day of `from_ns`:
/// the partitions in the range proper, not the look-back ones.
pub fn days_in_range(days: &[i32], from_ns: i64) -> usize {
    let first = day_of(from_ns);
    days.len() - days.partition_point(|d| *d < first)
}

/// The sample rate of a sensor's last packet before `to_ns` (0 for
/// irregular readings), if it has one in `days`.
pub async fn last_rate(
    sink: &CassandraSink,
    sensor: &str,
    days: &[i32],
    to_ns: i64,
) -> Result<Option<f64>> {
    for &day in days.iter().rev() {
        if let Some(row) = sink.read_raw_before(sensor, day, to_ns).await? {
            return Ok(row.ok().map(|(p, _)| p.sample_rate_hz));
        }
    }
    Ok(None)
}

/// What to read of each sensor and how: the range `[from_ns, to_ns)`,
/// gaps up to `max_gap_interp_samples` as missing readings (0: gaps stay
/// gaps), damaged packets skipped (`keep_going`) or fatal, and whether
/// only what later partitions can change is held ([`Rebuilder::bounded`]).
#[derive(Debug, Clone, Copy)]
pub struct ReadSpec {
    pub from_ns: i64,
    pub to_ns: i64,
    pub max_gap_interp_samples: u64,
    pub keep_going: bool,
    pub bounded: bool,
}

/// What reading one sensor met.
#[derive(Debug, Default)]
pub struct SensorRead {
    /// Kind and unit of the sensor's first packet.
    pub meta: Option<(SensorKind, String)>,
    pub packets: u64,
    /// Packets whose blob did not decode, skipped (only with `keep_going`).
    pub damaged: Vec<RawDecodeError>,
    pub report: AssembleReport,
}

/// Reads a sensor's partitions `days` day by day into a [`Rebuilder`]
/// as `spec` says; after each day `on_runs` gets the runs that can no
/// longer grow (and at the end the rest). A damaged packet stops the read,
/// naming it, unless `spec.keep_going`.
pub async fn read_sensor(
    sink: &CassandraSink,
    sensor: &str,
    days: &[i32],
    spec: ReadSpec,
    mut on_runs: impl FnMut(&mut Vec<Run>, &SensorRead) -> Result<()>,
) -> Result<SensorRead> {
    let ReadSpec {
        from_ns,
        to_ns,
        keep_going,
        ..
    } = spec;
    let mut rebuild = Rebuilder::new(from_ns, to_ns, spec.max_gap_interp_samples);
    if spec.bounded {
        rebuild = rebuild.bounded();
    }
    let mut read = SensorRead::default();
    let mut runs = Vec::new();
    let take = |row: StoredRaw, read: &mut SensorRead, rebuild: &mut Rebuilder| match row {
        Ok((p, _late)) => {
            read.packets += 1;
            read.meta.get_or_insert_with(|| (p.kind, p.unit.clone()));
            rebuild.push(&p);
            Ok(())
        }
        Err(e) if keep_going => {
            tracing::warn!("{e}; skipped (keep going)");
            read.damaged.push(e);
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e)
            .context("a stored packet is damaged (stopped; --keep-going skips such packets)")),
    };
    // Packets that start before `from_ns` may reach into the range: walk
    // back from it, packet by packet through the listed days, until one
    // ends at or before it. (An earlier, longer packet can hide behind a
    // later, shorter one only if both came from different cuttings of the
    // same data, whose other packets hold the same samples.)
    let first = day_of(from_ns);
    let mut before_ns = from_ns;
    'walk: for &day in days.iter().rev().filter(|d| **d <= first) {
        loop {
            let row = sink
                .read_raw_before(sensor, day, before_ns)
                .await
                .with_context(|| format!("reading sensor {sensor} day {}", format_day(day)))?;
            let Some(row) = row else { break };
            let (start, end) = match &row {
                Ok((p, _)) => (p.start_time_ns, super::stored::packet_end_ns(p)),
                Err(e) => (e.start_time_ns, i64::MAX),
            };
            take(row, &mut read, &mut rebuild)?;
            if end <= from_ns {
                break 'walk;
            }
            before_ns = start;
        }
    }
    for &day in days.iter().filter(|d| **d >= first) {
        let rows = sink
            .read_raw_range(sensor, day, from_ns, to_ns)
            .await
            .with_context(|| format!("reading sensor {sensor} day {}", format_day(day)))?;
        for row in rows {
            take(row, &mut read, &mut rebuild)?;
        }
        rebuild.end_day(&mut runs, day);
        on_runs(&mut runs, &read)?;
    }
    read.report = rebuild.finish(&mut runs);
    on_runs(&mut runs, &read)?;
    Ok(read)
}

/// One sensor's whole series in `spec`'s range for batch (`spec.bounded`
/// is ignored: a series is wanted whole); `None` when nothing is stored in
/// range. A sensor stored at more than one rate is refused (a series has
/// one rate).
pub async fn read_series(
    sink: &CassandraSink,
    sensor: &str,
    days: &[i32],
    spec: ReadSpec,
) -> Result<(Option<Series>, SensorRead)> {
    let mut all: Vec<Run> = Vec::new();
    let spec = ReadSpec {
        bounded: false,
        ..spec
    };
    let read = read_sensor(sink, sensor, days, spec, |runs, _| {
        all.append(runs);
        Ok(())
    })
    .await?;
    let Some(first) = all.first() else {
        return Ok((None, read));
    };
    let rate = first.sample_rate_hz;
    if let Some(other) = all.iter().find(|r| {
        !(r.sample_rate_hz == rate
            || (rate > 0.0 && crate::assemble::same_rate(r.sample_rate_hz, rate)))
    }) {
        bail!(
            "sensor {sensor}: stored at {rate} Hz and at {} Hz in the range; one series has one rate (narrow source.from/source.to)",
            other.sample_rate_hz
        );
    }
    all.sort_by_key(|r| r.segment.start_ns);
    let (kind, unit) = read
        .meta
        .clone()
        .unwrap_or((SensorKind::Other, String::new()));
    let mut segments: Vec<_> = all.into_iter().map(|r| r.segment).collect();
    if rate == 0.0 {
        // Irregular readings are one segment of timed readings, as the
        // file sources give them.
        let mut one = segments.remove(0);
        for s in segments.drain(..) {
            one.times_ns.extend(s.times_ns);
            one.samples.extend(s.samples);
        }
        segments.push(one);
    }
    let series = Series {
        sensor_id: sensor.to_string(),
        kind,
        unit,
        sample_rate_hz: rate,
        segments,
        raw_texts: None,
    };
    Ok((Some(series), read))
}

/// Sensors whose partitions batch reads at once.
const SENSORS_IN_FLIGHT: usize = 8;

/// The configured time range of `[source]` (checked by the config loader).
pub fn range(cfg: &crate::config::Config) -> Result<(i64, i64)> {
    let t = |v: &Option<String>, key: &str| -> Result<i64> {
        let v = v.as_deref().with_context(|| format!("{key} is not set"))?;
        crate::model::parse_time_ns(v).map_err(|e| anyhow::anyhow!("{key}: {e}"))
    };
    Ok((
        t(&cfg.source.from, "source.from")?,
        t(&cfg.source.to, "source.to")?,
    ))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The sensors `[source]` names, with their partitions' days.
pub fn list_sensors(cfg: &crate::config::Config) -> Result<BTreeMap<String, Vec<i32>>> {
    let (from, to) = range(cfg)?;
    let want = glob_set(&cfg.source.sensors)?;
    runtime()?.block_on(async {
        let sink = CassandraSink::open(&cfg.cassandra).await?;
        partitions(&sink, &want, from, to).await
    })
}

/// The series of `sensors` (with their days) in `[source]`'s range, and a
/// problem for every damaged packet skipped (`keep_going`).
pub fn read_sensors(
    cfg: &crate::config::Config,
    sensors: &[(String, Vec<i32>)],
    keep_going: bool,
) -> Result<(Vec<Series>, Vec<crate::output::Problem>)> {
    use futures::StreamExt;
    let (from_ns, to_ns) = range(cfg)?;
    let spec = ReadSpec {
        from_ns,
        to_ns,
        max_gap_interp_samples: cfg.stream.max_gap_interp_samples,
        keep_going,
        bounded: false,
    };
    // Two workers: the queries' waits overlap with decoding, and ranks on
    // one node do not each take every core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sink = CassandraSink::open(&cfg.cassandra).await?;
        // Sensors read side by side (their queries overlap, and decoding
        // runs on every core), results kept in sensor order.
        let mut reads = futures::stream::iter(sensors.iter().cloned())
            .map(|(sensor, days)| {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let r = read_series(&sink, &sensor, &days, spec).await;
                    (sensor, r)
                })
            })
            .buffered(SENSORS_IN_FLIGHT);
        let mut series = Vec::new();
        let mut problems = Vec::new();
        while let Some(done) = reads.next().await {
            let (sensor, r) = done.context("a sensor's read task failed")?;
            let (s, read) = r?;
            series.extend(s);
            problems.extend(read.damaged.iter().map(|e| crate::output::Problem {
                chain: String::new(),
                sensor: sensor.clone(),
                reason: format!("{e}; skipped"),
            }));
        }
        Ok((series, problems))
    })
}
