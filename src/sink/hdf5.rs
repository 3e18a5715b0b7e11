//! The HDF5 results file (layout in `schemas/hdf5.md`), written atomically.

use crate::h5io::{set_str_attr, write_atomic};
use crate::output::Results;
use anyhow::{anyhow, Context, Result};
use hdf5::types::VarLenUnicode;
use hdf5::H5Type;
use std::collections::BTreeMap;
use std::path::Path;

/// Results file format version (attribute `format_version`).
pub const FORMAT_VERSION: i64 = 1;

#[derive(H5Type, Clone)]
#[repr(C)]
struct TriggerRow {
    chain: VarLenUnicode,
    sensor: VarLenUnicode,
    on_time_ns: i64,
    off_time_ns: i64,
    on_index: u64,
    off_index: u64,
    peak_cf: f64,
    /// i64::MIN when the chain has no aic_pick.
    pick_time_ns: i64,
}

#[derive(H5Type, Clone)]
#[repr(C)]
struct EventRow {
    chain: VarLenUnicode,
    time_ns: i64,
    duration_s: f64,
    /// Sensor ids, comma-separated, in ObsPy's order.
    sensors: VarLenUnicode,
    coincidence_sum: f64,
}

#[derive(H5Type, Clone)]
#[repr(C)]
struct StatsRow {
    window_start_ns: i64,
    window_s: f64,
    count: u64,
    gaps: u64,
    min: f64,
    max: f64,
    mean: f64,
    std: f64,
    rms: f64,
}

#[derive(H5Type, Clone)]
#[repr(C)]
struct StationRow {
    sensor: VarLenUnicode,
    latitude: f64,
    longitude: f64,
    /// NaN when not known (as the coordinates).
    elevation: f64,
    unit: VarLenUnicode,
    /// Empty when not given.
    kind: VarLenUnicode,
}

fn vlu(s: &str) -> Result<VarLenUnicode> {
    s.parse()
        .map_err(|e| anyhow!("string {s:?} cannot be stored in HDF5: {e:?}"))
}

/// Writes `results` to `path` (atomically; an existing file is replaced
/// only when the new one is complete).
pub fn write_file(results: &Results, path: &Path, config_hash: u64) -> Result<()> {
    write_atomic(path, |f| {
        set_str_attr(f, "creator", concat!("fakopp ", env!("CARGO_PKG_VERSION")))?;
        f.new_attr::<i64>()
            .create("format_version")?
            .write_scalar(&FORMAT_VERSION)?;
        f.new_attr::<u64>()
            .create("config_hash")?
            .write_scalar(&config_hash)?;

        let rows: Vec<TriggerRow> = results
            .triggers
            .iter()
            .map(|t| {
                Ok(TriggerRow {
                    chain: vlu(&t.chain)?,
                    sensor: vlu(&t.sensor)?,
                    on_time_ns: t.on_time_ns,
                    off_time_ns: t.off_time_ns,
                    on_index: t.on_index,
                    off_index: t.off_index,
                    peak_cf: t.peak_cf,
                    pick_time_ns: t.pick_time_ns.unwrap_or(i64::MIN),
                })
            })
            .collect::<Result<_>>()?;
        f.new_dataset_builder()
            .with_data(&rows)
            .create("triggers")
            .context("writing /triggers")?;

        let rows: Vec<EventRow> = results
            .events
            .iter()
            .map(|e| {
                Ok(EventRow {
                    chain: vlu(&e.chain)?,
                    time_ns: e.time_ns,
                    duration_s: e.duration_s,
                    sensors: vlu(&e.sensors.join(","))?,
                    coincidence_sum: e.coincidence_sum,
                })
            })
            .collect::<Result<_>>()?;
        f.new_dataset_builder()
            .with_data(&rows)
            .create("events")
            .context("writing /events")?;

        let rows: Vec<StationRow> = results
            .stations
            .iter()
            .map(|st| {
                Ok(StationRow {
                    sensor: vlu(&st.sensor_id)?,
                    latitude: st.latitude,
                    longitude: st.longitude,
                    elevation: st.elevation,
                    unit: vlu(&st.unit)?,
                    kind: vlu(st.kind.map_or("", |k| k.as_str()))?,
                })
            })
            .collect::<Result<_>>()?;
        f.new_dataset_builder()
            .with_data(&rows)
            .create("stations")
            .context("writing /stations")?;

        write_qc(f, results)?;
        write_stats(f, results)?;
        write_traces(f, results)?;
        Ok(())
    })
    .with_context(|| format!("writing results file {}", path.display()))
}

/// `/qc/<sensor>/<chain>/{time_ns, index, value, flags[n, tests], aggregate}`.
fn write_qc(f: &hdf5::File, results: &Results) -> Result<()> {
    let qc = f.create_group("qc")?;
    let mut by: BTreeMap<(&str, &str), Vec<&crate::output::QcRec>> = BTreeMap::new();
    for q in &results.qc {
        by.entry((&q.sensor, &q.chain)).or_default().push(q);
    }
    for ((sensor, chain), rows) in by {
        let sg = match qc.group(sensor) {
            Ok(g) => g,
            Err(_) => qc.create_group(sensor)?,
        };
        let g = sg.create_group(chain)?;
        let tests = results
            .qc_tests
            .iter()
            .find(|(c, _)| c == chain)
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        set_str_attr(&g, "tests", &tests.join(","))?;
        let ntests = rows.first().map(|r| r.flags.len()).unwrap_or(0);
        let time: Vec<i64> = rows.iter().map(|r| r.time_ns).collect();
        let index: Vec<u64> = rows.iter().map(|r| r.index).collect();
        let value: Vec<f64> = rows.iter().map(|r| r.value).collect();
        let agg: Vec<u8> = rows.iter().map(|r| r.aggregate).collect();
        let flags: Vec<u8> = rows.iter().flat_map(|r| r.flags.iter().copied()).collect();
        g.new_dataset_builder().with_data(&time).create("time_ns")?;
        g.new_dataset_builder().with_data(&index).create("index")?;
        g.new_dataset_builder().with_data(&value).create("value")?;
        g.new_dataset_builder()
            .with_data(&agg)
            .create("aggregate")?;
        let flags = ndarray::Array2::from_shape_vec((rows.len(), ntests), flags)?;
        g.new_dataset_builder().with_data(&flags).create("flags")?;
    }
    Ok(())
}

/// `/stats/<sensor>/<chain>`: one compound row per window.
fn write_stats(f: &hdf5::File, results: &Results) -> Result<()> {
    let st = f.create_group("stats")?;
    let mut by: BTreeMap<(&str, &str), Vec<StatsRow>> = BTreeMap::new();
    for s in &results.stats {
        by.entry((&s.sensor, &s.chain)).or_default().push(StatsRow {
            window_start_ns: s.window_start_ns,
            window_s: s.window_s,
            count: s.count,
            gaps: s.gaps,
            min: s.min,
            max: s.max,
            mean: s.mean,
            std: s.std,
            rms: s.rms,
        });
    }
    for ((sensor, chain), rows) in by {
        let sg = match st.group(sensor) {
            Ok(g) => g,
            Err(_) => st.create_group(sensor)?,
        };
        sg.new_dataset_builder().with_data(&rows).create(chain)?;
    }
    Ok(())
}

/// `/traces/<chain>/<sensor>`; a sensor with several segments gets
/// `<sensor>@1`, `<sensor>@2`, ... for the later ones.
fn write_traces(f: &hdf5::File, results: &Results) -> Result<()> {
    if results.traces.is_empty() {
        return Ok(());
    }
    let tg = f.create_group("traces")?;
    let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for t in &results.traces {
        let cg = match tg.group(&t.chain) {
            Ok(g) => g,
            Err(_) => tg.create_group(&t.chain)?,
        };
        let k = seen.entry((&t.chain, &t.sensor)).or_insert(0);
        let name = if *k == 0 {
            t.sensor.clone()
        } else {
            format!("{}@{k}", t.sensor)
        };
        *k += 1;
        let ds = cg
            .new_dataset_builder()
            .with_data(&t.samples)
            .create(name.as_str())?;
        ds.new_attr::<i64>()
            .create("start_time_ns")?
            .write_scalar(&t.start_time_ns)?;
        ds.new_attr::<f64>()
            .create("sample_rate_hz")?
            .write_scalar(&t.sample_rate_hz)?;
    }
    Ok(())
}
