//! `fakopp batch`: archives (or the synthetic network) through the chains.
//!
//! The sensors are spread over the ranks, balanced by sample count. With
//! input files, rank 0 scans them (MiniSEED record headers, no decoding),
//! decides the split, and every rank reads the files decoding only its own
//! sensors' records, so nothing is shipped before processing; from
//! Cassandra (`[source] kind = "cassandra"`), rank 0 lists the stored
//! partitions and every rank reads its own sensors' partitions; the
//! synthetic network is generated on rank 0 and scattered. Every rank
//! (rank 0 included) runs its sensors' chains with rayon; the results are
//! gathered on rank 0, which runs network coincidence and writes the
//! outputs. Results are sorted canonically, so they are identical for any
//! number of ranks and threads.

use crate::chain::{ChainState, CompiledChain};
use crate::cli::OutputFormat;
use crate::config::{Config, SinkKind, SourceKind, Step};
use crate::dist::{
    append_bytes, from_bytes, gather_buffers, scatter_buffers, scatter_flat, to_bytes, Dist,
};
use crate::model::{format_time_us, Series};
use crate::output::{EventRec, Problem, Results};
use crate::progress::Progress;
use crate::source::files::{read_inputs_of, Want};
use crate::source::synthetic::{self, TrueEvent};
use anyhow::{bail, Context, Result};
use fakopp_kernels::detect::{coincidence_trigger, CoincidenceParams, Sensor, StationTrigger};
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

pub struct BatchArgs {
    pub inputs: Vec<PathBuf>,
    pub output: Option<PathBuf>,
    pub format: Option<OutputFormat>,
    pub keep_going: bool,
}

/// Where the results go.
#[derive(Debug, Clone, PartialEq)]
enum Dest {
    JsonlStdout,
    Jsonl(PathBuf),
    Hdf5(PathBuf),
}

fn destinations(cfg: &Config, a: &BatchArgs) -> Result<Vec<Dest>> {
    Ok(match (&a.output, a.format) {
        (None, Some(OutputFormat::Jsonl)) => vec![Dest::JsonlStdout],
        (None, Some(OutputFormat::Hdf5)) => vec![Dest::Hdf5(cfg.sinks.hdf5_path.clone())],
        (Some(p), Some(OutputFormat::Jsonl)) => vec![Dest::Jsonl(p.clone())],
        (Some(p), Some(OutputFormat::Hdf5)) => vec![Dest::Hdf5(p.clone())],
        (Some(p), None) => match p.extension().and_then(|e| e.to_str()) {
            Some("h5" | "hdf5") => vec![Dest::Hdf5(p.clone())],
            _ => vec![Dest::Jsonl(p.clone())],
        },
        (None, None) => {
            let mut d = Vec::new();
            for k in &cfg.sinks.kinds {
                match k {
                    SinkKind::Hdf5 => d.push(Dest::Hdf5(cfg.sinks.hdf5_path.clone())),
                    SinkKind::Jsonl => d.push(Dest::Jsonl(
                        cfg.sinks
                            .jsonl_path
                            .clone()
                            .unwrap_or_else(|| "results.jsonl".into()),
                    )),
                    SinkKind::Cassandra | SinkKind::Kafka => bail!(
                        "sinks.kinds: the {k:?} sink is written by the stream job (`fakopp run`); \
                         for batch use hdf5 or jsonl, or --output"
                    ),
                }
            }
            d
        }
    })
}

/// The input files of the run, if it reads files (from the command line
/// or `source.inputs`).
fn input_files(cfg: &Config, a: &BatchArgs) -> Result<Option<Vec<PathBuf>>> {
    if a.inputs.is_empty() && cfg.source.kind != SourceKind::Files {
        return Ok(None);
    }
    let paths = if a.inputs.is_empty() {
        cfg.source.inputs.clone()
    } else {
        a.inputs.clone()
    };
    if paths.is_empty() {
        bail!("no input files: give them on the command line or in source.inputs");
    }
    Ok(Some(paths))
}

/// Reads the input files, keeping the sensors `want` names; bad records
/// become problems of the run (no chain; the file as sensor).
fn read_files(cfg: &Config, a: &BatchArgs, paths: &[PathBuf], want: Want<'_>) -> Result<Loaded> {
    let raw_text = cfg.has_step(|s| matches!(s, Step::Syntax(_)));
    let input = read_inputs_of(
        paths,
        cfg.stream.max_gap_interp_samples,
        a.keep_going,
        want,
        raw_text,
    )?;
    let problems = input
        .bad
        .iter()
        .map(|b| Problem {
            chain: String::new(),
            sensor: b.file.display().to_string(),
            reason: b.to_string(),
        })
        .collect();
    Ok(Loaded {
        series: input.series,
        truth: Vec::new(),
        problems,
    })
}

/// What rank 0 read, for the summary.
#[derive(Default)]
struct Loaded {
    series: Vec<Series>,
    truth: Vec<TrueEvent>,
    problems: Vec<Problem>,
}

/// Everything on rank 0: the input files, or the synthetic network.
fn load(cfg: &Config, a: &BatchArgs) -> Result<Loaded> {
    if let Some(paths) = input_files(cfg, a)? {
        return read_files(cfg, a, &paths, Want::All);
    }
    match cfg.source.kind {
        SourceKind::Synthetic => {
            let s = synthetic::generate(&cfg.synthetic)?;
            Ok(Loaded { series: s.series, truth: s.events, problems: Vec::new() })
        }
        SourceKind::Kafka => bail!("source.kind = \"kafka\" is the stream job's source: use `fakopp run`, or give input files"),
        SourceKind::Files | SourceKind::Cassandra => {
            unreachable!("handled by input_files and read_stored")
        }
    }
}

/// Longest-processing-time assignment of items to ranks by weight;
/// deterministic (ties broken by id).
fn lpt<T>(
    mut items: Vec<T>,
    weight: impl Fn(&T) -> u64,
    id: impl Fn(&T) -> &str,
    ranks: usize,
) -> Vec<Vec<T>> {
    items.sort_by(|a, b| weight(b).cmp(&weight(a)).then_with(|| id(a).cmp(id(b))));
    let mut load = vec![0u64; ranks];
    let mut parts: Vec<Vec<T>> = (0..ranks).map(|_| Vec::new()).collect();
    for item in items {
        let r = (0..ranks)
            .min_by_key(|&r| (load[r], r))
            .expect("at least one rank");
        load[r] += weight(&item);
        parts[r].push(item);
    }
    parts
}

/// Sensors assigned to ranks by sample count (see [`lpt`]).
pub fn partition(series: Vec<Series>, ranks: usize) -> Vec<Vec<Series>> {
    lpt(series, |s| s.sample_count() as u64, |s| &s.sensor_id, ranks)
}

/// Runs `chain` over a whole series. Problems with the data are recorded
/// in the results, never fatal.
pub fn run_series(chain: &CompiledChain, series: &Series, out: &mut Results) {
    let problem = |reason: String| Problem {
        chain: chain.name().into(),
        sensor: series.sensor_id.clone(),
        reason,
    };
    let rate = series.sample_rate_hz;
    let interval_ns = if rate > 0.0 {
        Some((1e9 / rate).round() as i64)
    } else if let Some(s) = chain.cfg.nominal_interval_s {
        Some((s * 1e9).round() as i64)
    } else {
        let times: Vec<i64> = series
            .segments
            .iter()
            .flat_map(|s| s.times_ns.iter().copied())
            .collect();
        fakopp_kernels::qc::median_interval_ns(&times)
    };
    let mut state = match ChainState::new(
        chain,
        &series.sensor_id,
        rate,
        interval_ns,
        series.raw_texts.as_ref(),
    ) {
        Ok(s) => s,
        Err(e) => return out.problems.push(problem(format!("{e:#}"))),
    };
    let result = (|| -> Result<()> {
        for seg in &series.segments {
            state.begin_segment(seg.start_ns, out);
            state.push(&seg.times_ns, &seg.samples, out)?;
        }
        state.finish(out);
        Ok(())
    })();
    if let Err(e) = result {
        out.problems.push(problem(format!("{e:#}")));
    }
}

/// Runs every matching chain over every series, in parallel: detection
/// chains the SIMD fast path can take over many sensors at once
/// ([`crate::chain::multichannel`]; off with `FAKOPP_SCALAR_ONLY=1`), the
/// rest sensor by sensor.
pub fn process(chains: &[CompiledChain], series: &[Series], progress: &Progress) -> Results {
    let fast = crate::chain::multichannel::Plan::new(chains, series);
    let fast_results = fast.run(chains, series);
    let mut results = series
        .par_iter()
        .enumerate()
        .map(|(si, s)| {
            let mut out = Results::default();
            for (ci, c) in chains.iter().enumerate() {
                if c.matches(&s.sensor_id) && !fast.covers(ci, si) {
                    run_series(c, s, &mut out);
                }
            }
            if s.sample_rate_hz > 0.0 {
                for (k, pair) in s.segments.windows(2).enumerate() {
                    let end = pair[0].start_ns
                        + (pair[0].samples.len() as f64 * 1e9 / s.sample_rate_hz).round() as i64;
                    out.qc.push(crate::output::gap_record(
                        &s.sensor_id,
                        end,
                        pair[1].start_ns,
                        k as u64 + 1,
                    ));
                }
            }
            progress.inc(s.sample_count() as u64);
            out
        })
        .reduce(Results::default, |mut a, b| {
            a.extend(b);
            a
        });
    results.extend(fast_results);
    results.qc_tests.extend(CompiledChain::qc_labels(chains));
    results
}

/// Network detection for each `[[coincidence]]` (ObsPy coincidence_trigger).
pub fn coincidence(
    cfg: &Config,
    chains: &[CompiledChain],
    sensors: &[String],
    results: &mut Results,
) -> Result<()> {
    for co in &cfg.coincidence {
        let chain = chains
            .iter()
            .find(|c| c.name() == co.chain)
            .expect("validated: chain exists");
        let members: Vec<Sensor> = sensors
            .iter()
            .filter(|s| chain.matches(s))
            .map(|s| Sensor {
                id: s.clone(),
                weight: co.weights.get(s).copied().unwrap_or(1.0),
            })
            .collect();
        let trig: Vec<StationTrigger> = results
            .triggers
            .iter()
            .filter(|t| t.chain == co.chain)
            .filter_map(|t| {
                members
                    .iter()
                    .position(|m| m.id == t.sensor)
                    .map(|i| StationTrigger {
                        sensor: i,
                        on_ns: t.on_time_ns,
                        off_ns: t.off_time_ns,
                        peak: t.peak_cf,
                    })
            })
            .collect();
        let params = CoincidenceParams {
            threshold_sum: co.threshold_sum,
            trigger_off_extension_s: co.trigger_off_extension_s,
        };
        let events = coincidence_trigger(&members, &trig, &params)
            .with_context(|| format!("coincidence over chain {}", co.chain))?;
        results.events.extend(events.into_iter().map(|e| EventRec {
            chain: co.chain.clone(),
            time_ns: e.time_ns,
            duration_s: e.duration_s,
            sensors: e.sensors.iter().map(|&i| members[i].id.clone()).collect(),
            coincidence_sum: e.coincidence_sum,
        }));
    }
    Ok(())
}

/// What rank 0 knows of the whole run, for coincidence and the summary.
struct RunInfo {
    files: usize,
    sensors: Vec<String>,
    samples: u64,
    truth: Vec<TrueEvent>,
    problems: Vec<Problem>,
}

/// One rank's part of the run, gathered on rank 0.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Share {
    results: Results,
    /// Bad input records this rank met.
    input_problems: Vec<Problem>,
    sensors: Vec<String>,
    samples: u64,
}

/// Spreads rank 0's series over the ranks. Rank 0 keeps its own share as
/// it is (only the other ranks' shares are serialised). If rank 0 could
/// not read its inputs, every rank learns it (the others would otherwise
/// wait in the scatter forever).
fn distribute(dist: &Dist, loaded: Option<Result<Loaded>>) -> Result<Loaded> {
    let Some(world) = dist.world() else {
        return loaded.expect("a world of one is rank 0");
    };
    if !dist.is_root() {
        let buf = scatter_flat::<u8>(&world, None);
        return match from_bytes::<Option<Vec<Series>>>(&buf)? {
            Some(series) => Ok(Loaded {
                series,
                ..Default::default()
            }),
            None => bail!("rank 0 could not read the inputs (see its message)"),
        };
    }
    let shares = loaded.expect("rank 0 loads").and_then(|mut l| {
        let mut parts = partition(std::mem::take(&mut l.series), dist.size());
        l.series = std::mem::take(&mut parts[0]);
        let mut flat = Vec::new();
        let mut counts = vec![0];
        for p in &parts[1..] {
            let at = flat.len();
            append_bytes(&Some(p), &mut flat)?;
            counts.push(flat.len() - at);
        }
        Ok((l, flat, counts))
    });
    match shares {
        Ok((own, flat, counts)) => {
            scatter_flat(&world, Some((&flat, &counts)));
            Ok(own)
        }
        Err(e) => {
            let none = vec![to_bytes(&None::<Vec<Series>>)?; dist.size()];
            scatter_buffers(&world, Some(&none));
            Err(e)
        }
    }
}

/// Rank 0 splits `items` (known on rank 0 only: each with its weight, or
/// the reason there are none) over the ranks by weight ([`lpt`]); every
/// rank gets its own part. Without MPI the part is everything.
fn scatter_plan<T>(
    dist: &Dist,
    items: Option<Result<Vec<(T, u64)>>>,
    id: impl Fn(&T) -> &str,
    what: &str,
) -> Result<Vec<T>>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let Some(world) = dist.world() else {
        let items = items.expect("a world of one is rank 0")?;
        return Ok(items.into_iter().map(|i| i.0).collect());
    };
    type Part<T> = std::result::Result<Vec<T>, String>;
    let plan = match items {
        Some(items) => {
            let parts: Vec<Part<T>> = match items {
                Ok(items) => lpt(items, |i| i.1, |i| id(&i.0), dist.size())
                    .into_iter()
                    .map(|part| Ok(part.into_iter().map(|i| i.0).collect()))
                    .collect(),
                Err(e) => (0..dist.size()).map(|_| Err(format!("{e:#}"))).collect(),
            };
            Some(parts.iter().map(to_bytes).collect::<Result<Vec<_>>>()?)
        }
        None => None,
    };
    let buf = scatter_buffers(&world, plan.as_deref());
    match from_bytes::<Part<T>>(&buf)? {
        Ok(mine) => Ok(mine),
        Err(e) if dist.is_root() => bail!("{e}"),
        Err(e) => bail!("rank 0 could not {what}: {e}"),
    }
}

/// With input files under MPI: rank 0 scans the files and splits the
/// sensors by sample count; every rank reads the files keeping (decoding)
/// only its own sensors. All ranks go on only if all read their share.
fn read_share(cfg: &Config, a: &BatchArgs, paths: &[PathBuf], dist: &Dist) -> Result<Loaded> {
    let counts = dist.is_root().then(|| {
        crate::source::files::scan_inputs(paths).map(|c| c.into_iter().collect::<Vec<_>>())
    });
    let mine: std::collections::BTreeSet<String> =
        scatter_plan(dist, counts, |s: &String| s, "scan the inputs")?
            .into_iter()
            .collect();
    let read = read_files(cfg, a, paths, Want::Only(&mine));
    let all_read = dist.all_ok(read.is_ok());
    let loaded = read?;
    if !all_read {
        bail!("another rank could not read its share of the inputs (see its message)");
    }
    Ok(loaded)
}

/// `[source] kind = "cassandra"`: rank 0 lists the matching partitions and
/// splits the sensors by partition count; every rank reads its own
/// sensors' partitions through its own session.
fn read_stored(cfg: &Config, a: &BatchArgs, dist: &Dist) -> Result<Loaded> {
    use crate::source::cassandra;
    let list = dist.is_root().then(|| {
        let (from_ns, _) = cassandra::range(cfg)?;
        cassandra::list_sensors(cfg).map(|m| {
            m.into_iter()
                .map(|(s, d)| {
                    let w = cassandra::days_in_range(&d, from_ns) as u64 + 1;
                    ((s, d), w)
                })
                .collect::<Vec<_>>()
        })
    });
    let mine = scatter_plan(
        dist,
        list,
        |s: &(String, Vec<i32>)| &s.0,
        "list the stored partitions",
    )?;
    let read = cassandra::read_sensors(cfg, &mine, a.keep_going);
    let all_read = dist.all_ok(read.is_ok());
    let (series, problems) = read?;
    if !all_read {
        bail!("another rank could not read its share from Cassandra (see its message)");
    }
    Ok(Loaded {
        series,
        truth: Vec::new(),
        problems,
    })
}

/// Brings every rank's share to rank 0 (`None` on the other ranks).
fn collect(dist: &Dist, share: Share) -> Result<Option<Vec<Share>>> {
    let Some(world) = dist.world() else {
        return Ok(Some(vec![share]));
    };
    let Some(all) = gather_buffers(&world, &to_bytes(&share)?) else {
        return Ok(None);
    };
    all.iter()
        .map(|b| from_bytes(b))
        .collect::<Result<_>>()
        .map(Some)
}

/// Merges the ranks' shares. Bad records of a file's structure are met by
/// every rank that reads it: each distinct problem counts as often as the
/// rank that met it most often.
fn merge(shares: Vec<Share>, files: usize, truth: Vec<TrueEvent>) -> (Results, RunInfo) {
    let mut results = Results::default();
    let mut problems: std::collections::BTreeMap<(String, String, String), usize> =
        Default::default();
    let mut sensors = Vec::new();
    let mut samples = 0;
    for sh in shares {
        results.extend(sh.results);
        let mut mine: std::collections::BTreeMap<(String, String, String), usize> =
            Default::default();
        for p in sh.input_problems {
            *mine.entry((p.chain, p.sensor, p.reason)).or_default() += 1;
        }
        for (k, n) in mine {
            let m = problems.entry(k).or_default();
            *m = (*m).max(n);
        }
        sensors.extend(sh.sensors);
        samples += sh.samples;
    }
    sensors.sort();
    let problems = problems
        .into_iter()
        .flat_map(|((chain, sensor, reason), n)| {
            std::iter::repeat_n(
                Problem {
                    chain,
                    sensor,
                    reason,
                },
                n,
            )
        })
        .collect();
    let info = RunInfo {
        files,
        sensors,
        samples,
        truth,
        problems,
    };
    (results, info)
}

pub fn run(cfg: &Config, args: BatchArgs) -> Result<()> {
    let t0 = Instant::now();
    let dist = Dist::init()?;
    let chains = CompiledChain::compile(cfg)?;
    let dests = destinations(cfg, &args)?;

    let files = input_files(cfg, &args)?;
    let mine = match &files {
        Some(paths) if dist.size() > 1 => read_share(cfg, &args, paths, &dist)?,
        None if cfg.source.kind == SourceKind::Cassandra => read_stored(cfg, &args, &dist)?,
        _ => distribute(&dist, dist.is_root().then(|| load(cfg, &args)))?,
    };
    let progress = Progress::new(
        mine.series.iter().map(|s| s.sample_count() as u64).sum(),
        dist.is_root(),
    );
    let results = process(&chains, &mine.series, &progress);
    progress.finish();
    let share = Share {
        results,
        input_problems: mine.problems,
        sensors: mine.series.iter().map(|s| s.sensor_id.clone()).collect(),
        samples: mine.series.iter().map(|s| s.sample_count() as u64).sum(),
    };
    drop(mine.series);

    let Some(shares) = collect(&dist, share)? else {
        return Ok(());
    };
    let (mut results, info) = merge(shares, files.map_or(0, |f| f.len()), mine.truth);
    results.problems.extend(info.problems.iter().cloned());
    coincidence(cfg, &chains, &info.sensors, &mut results)?;
    results.stations = cfg.station_table.iter().cloned().collect();
    results.sort();

    for d in &dests {
        match d {
            Dest::JsonlStdout => {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                crate::sink::jsonl::write(&results, &mut out)?;
                std::io::Write::flush(&mut out)?;
            }
            Dest::Jsonl(p) => crate::sink::jsonl::write_file(&results, p)?,
            Dest::Hdf5(p) => crate::sink::hdf5::write_file(&results, p, cfg.chains_hash())?,
        }
    }
    summary(
        &info,
        &results,
        &dests,
        t0.elapsed().as_secs_f64(),
        dist.size(),
    );
    Ok(())
}

fn summary(l: &RunInfo, r: &Results, dests: &[Dest], secs: f64, ranks: usize) {
    let mut flags = std::collections::BTreeMap::<u8, u64>::new();
    for q in &r.qc {
        *flags.entry(q.aggregate).or_default() += 1;
    }
    let flags_txt: Vec<String> = flags.iter().map(|(f, n)| format!("{f}:{n}")).collect();
    tracing::info!(
        files = l.files,
        sensors = l.sensors.len(),
        samples = l.samples,
        samples_per_s = format!("{:.0}", l.samples as f64 / secs),
        triggers = r.triggers.len(),
        events = r.events.len(),
        qc_readings = r.qc.len(),
        qc_aggregate = %flags_txt.join(" "),
        problems = r.problems.len(),
        ranks,
        seconds = format!("{secs:.2}"),
        "batch done"
    );
    for p in &r.problems {
        tracing::warn!(chain = %p.chain, sensor = %p.sensor, "{}", p.reason);
    }
    if !l.truth.is_empty() {
        eprintln!("\nsynthetic events: true first P arrival vs detected network event");
        for ev in &l.truth {
            let best = r
                .events
                .iter()
                .min_by_key(|e| (e.time_ns - ev.first_arrival_ns).abs());
            match best.filter(|e| (e.time_ns - ev.first_arrival_ns).abs() < 10_000_000_000) {
                Some(e) => eprintln!(
                    "  {}  →  {}  ({:+.2} s, {} stations)",
                    format_time_us(ev.first_arrival_ns),
                    format_time_us(e.time_ns),
                    (e.time_ns - ev.first_arrival_ns) as f64 / 1e9,
                    e.sensors.len()
                ),
                None => eprintln!("  {}  →  not detected", format_time_us(ev.first_arrival_ns)),
            }
        }
        let spurious = r
            .events
            .iter()
            .filter(|e| {
                !l.truth
                    .iter()
                    .any(|t| (e.time_ns - t.first_arrival_ns).abs() < 10_000_000_000)
            })
            .count();
        eprintln!(
            "  {} detected events, {} without a true event\n",
            r.events.len(),
            spurious
        );
    }
    for d in dests {
        match d {
            Dest::JsonlStdout => {}
            Dest::Jsonl(p) | Dest::Hdf5(p) => eprintln!("wrote {}", p.display()),
        }
    }
}
