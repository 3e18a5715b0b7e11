//! Batch fast path: chains that are exactly a causal Butterworth filter
//! (`bandpass`, `highpass` or `lowpass`, `zerophase = false`) →
//! `recursive_sta_lta` → `trigger`, without `traces`, run with the kernels'
//! SIMD [`MultiChannelChain`] over many sensors at once instead of sensor
//! by sensor.
//!
//! Each contiguous segment of a matching series is one row; rows of the
//! same sampling rate and length are processed together (the chain
//! restarts at every segment in the scalar path too, and trigger indices
//! and times are relative to the segment, so a row's start time only
//! labels its triggers). The multi-channel kernel is bit-identical to the
//! scalar kernels, so the results equal [`crate::batch::run_series`]'s
//! exactly (`tests/batch_fast.rs` checks the JSON lines).
//!
//! Anything else takes the scalar path: other chains, irregular series,
//! series holding missing readings (NaN: the scalar path interpolates or
//! splits them), and chains whose filter design ObsPy would adjust with a
//! warning or reject (the scalar path reports those). Setting
//! `FAKOPP_SCALAR_ONLY=1` in the environment sends everything down the
//! scalar path (for comparisons and benchmarks).

use super::{trigger_params, CompiledChain};
use crate::config::Step;
use crate::model::Series;
use crate::output::{Results, TriggerRec};
use fakopp_kernels::detect::StaLtaWindows;
use fakopp_kernels::filter::{butterworth, Band, Sos};
use fakopp_kernels::multichannel::{all_finite, ChannelTrigger, MultiChannelChain, LANES};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};

/// Environment switch forcing the scalar path.
pub const SCALAR_ONLY_ENV: &str = "FAKOPP_SCALAR_ONLY";

/// True when `FAKOPP_SCALAR_ONLY` is set to anything but empty or `0`.
pub fn scalar_only() -> bool {
    std::env::var_os(SCALAR_ONLY_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The kernel parameters of an eligible chain at one rate.
#[derive(Clone)]
struct Kernel {
    sos: Sos,
    windows: StaLtaWindows,
    trigger: fakopp_kernels::detect::TriggerParams,
}

/// `Some` if `chain` at `rate` Hz can take the fast path.
fn kernel_for(chain: &CompiledChain, rate: f64) -> Option<Kernel> {
    if chain.cfg.traces || rate.is_nan() || rate <= 0.0 {
        return None;
    }
    let [filt, Step::RecursiveStaLta { sta, lta }, Step::Trigger {
        on,
        off,
        max_len,
        max_len_delete,
    }] = chain.cfg.steps.as_slice()
    else {
        return None;
    };
    let (band, corners) = match *filt {
        Step::Bandpass {
            freqmin,
            freqmax,
            corners,
            zerophase: false,
        } => (Band::Bandpass { freqmin, freqmax }, corners),
        Step::Highpass {
            freq,
            corners,
            zerophase: false,
        } => (Band::Highpass { freq }, corners),
        Step::Lowpass {
            freq,
            corners,
            zerophase: false,
        } => (Band::Lowpass { freq }, corners),
        _ => return None,
    };
    let design = butterworth(band, corners as usize, rate).ok()?;
    if design.warning.is_some() {
        return None;
    }
    Some(Kernel {
        sos: design.sos,
        windows: StaLtaWindows::from_seconds(*sta, *lta, rate).ok()?,
        trigger: trigger_params(chain, *on, *off, *max_len, *max_len_delete, rate).ok()?,
    })
}

/// A regular series without missing readings.
fn series_eligible(s: &Series) -> bool {
    s.sample_rate_hz > 0.0
        && s.segments
            .iter()
            .all(|seg| seg.times_ns.is_empty() && all_finite(&seg.samples))
}

/// One segment to run: series index and segment index.
type Row = (usize, usize);

/// Rows of one chain at one rate and segment length, run together.
struct Job {
    chain: usize,
    rate: f64,
    kernel: Kernel,
    rows: Vec<Row>,
}

/// Which (chain, series) pairs the fast path runs, and how.
pub struct Plan {
    covered: HashSet<(usize, usize)>,
    jobs: Vec<Job>,
}

impl Plan {
    /// Plans the fast path over `series` (nothing when
    /// [`scalar_only`]).
    pub fn new(chains: &[CompiledChain], series: &[Series]) -> Plan {
        let mut plan = Plan {
            covered: HashSet::new(),
            jobs: Vec::new(),
        };
        if scalar_only() {
            return plan;
        }
        let eligible: Vec<bool> = series.par_iter().map(series_eligible).collect();
        for (ci, chain) in chains.iter().enumerate() {
            // Per rate: the kernel (None if the chain cannot run at it).
            let mut kernels: BTreeMap<u64, Option<Kernel>> = BTreeMap::new();
            let mut groups: BTreeMap<(u64, usize), Vec<Row>> = BTreeMap::new();
            for (si, s) in series.iter().enumerate() {
                if !eligible[si] || !chain.matches(&s.sensor_id) {
                    continue;
                }
                let rate = s.sample_rate_hz.to_bits();
                let k = kernels
                    .entry(rate)
                    .or_insert_with(|| kernel_for(chain, s.sample_rate_hz));
                if k.is_none() {
                    continue;
                }
                plan.covered.insert((ci, si));
                for (gi, seg) in s.segments.iter().enumerate() {
                    if !seg.samples.is_empty() {
                        groups
                            .entry((rate, seg.samples.len()))
                            .or_default()
                            .push((si, gi));
                    }
                }
            }
            for ((rate, _len), rows) in groups {
                let kernel = kernels[&rate].clone().expect("only eligible rates grouped");
                // One job per lane group: rayon balances them over threads.
                for chunk in rows.chunks(LANES) {
                    plan.jobs.push(Job {
                        chain: ci,
                        rate: f64::from_bits(rate),
                        kernel: kernel.clone(),
                        rows: chunk.to_vec(),
                    });
                }
            }
        }
        tracing::debug!(
            "batch fast path: {} (chain, sensor) pairs in {} multi-channel jobs",
            plan.covered.len(),
            plan.jobs.len()
        );
        plan
    }

    /// True if the fast path runs `chains[chain]` over `series[series]`.
    pub fn covers(&self, chain: usize, series: usize) -> bool {
        self.covered.contains(&(chain, series))
    }

    /// Runs the planned rows (in parallel over the current rayon pool).
    pub fn run(&self, chains: &[CompiledChain], series: &[Series]) -> Results {
        self.jobs
            .par_iter()
            .map(|j| run_job(j, &chains[j.chain], series))
            .reduce(Results::default, |mut a, b| {
                a.extend(b);
                a
            })
    }
}

fn run_job(job: &Job, chain: &CompiledChain, series: &[Series]) -> Results {
    let mut out = Results::default();
    let n = job.rows.len();
    let mut mc = MultiChannelChain::from_parts(
        job.kernel.sos.clone(),
        job.kernel.windows,
        job.kernel.trigger,
        n,
    )
    .expect("parameters validated when planning");
    let rows: Vec<&[f64]> = job
        .rows
        .iter()
        .map(|&(si, gi)| series[si].segments[gi].samples.as_slice())
        .collect();
    let mut trig: Vec<ChannelTrigger> = Vec::new();
    mc.process_rows(&rows, &mut trig)
        .expect("rows checked finite and of one length when planning");
    mc.finish(&mut trig);
    for ct in trig {
        let (si, gi) = job.rows[ct.channel];
        let start = series[si].segments[gi].start_ns;
        let time = |i: u64| start + ((i as f64) * 1e9 / job.rate).round_ties_even() as i64;
        out.triggers.push(TriggerRec {
            chain: chain.name().to_string(),
            sensor: series[si].sensor_id.clone(),
            on_time_ns: time(ct.trigger.on),
            off_time_ns: time(ct.trigger.off),
            on_index: ct.trigger.on,
            off_index: ct.trigger.off,
            peak_cf: ct.trigger.peak,
            pick_time_ns: None,
        });
    }
    out
}
