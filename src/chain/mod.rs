//! Processing chains: the configured steps of one `[[chains]]` entry,
//! applied to one sensor by the kernels. A [`ChainState`] holds all of a
//! sensor's kernel state, so it can move between ranks and into
//! checkpoints; fed whole segments (batch) or packets (stream), it gives
//! the same results.
//!
//! Steps run in config order over one buffer: trace operators reshape it
//! (filters, then a detector turns it into a characteristic function),
//! `trigger` reads the characteristic function, `aic_pick` refines each
//! trigger on the trace as it was before the detector, QC steps and
//! `stats` read the buffer at their position. Trace operators restart with
//! their warm-up at every new contiguous segment; QC and stats, which are
//! defined over time, run across segments as ioos_qc runs over a series.
//!
//! Two rules for readings that are missing (docs/architecture.md,
//! "Observations and the sample grid"):
//!
//! * QC steps see the observations as recorded, as ioos_qc does: a reading
//!   recorded as NaN is an observation (flagged 9), a grid slot at which no
//!   reading was made ([`NOT_RECORDED`](crate::model::NOT_RECORDED)) is not one: it gets no QC row,
//!   and the tests with windows in time (`spike`'s neighbours,
//!   `rate_of_change`, `flat_line`, `attenuated_signal`, `time_gap`) see
//!   the actual neighbouring observations.
//! * Trace operators need a regular series without holes, so in chains that
//!   have any, a run of up to `max_gap_interp_samples` missing readings
//!   (recorded NaN or unrecorded) is interpolated linearly between its
//!   neighbours (`y0 + (y1 - y0) * i / (g + 1)` for the `i`-th of `g`), and
//!   a longer run ends the segment: the chain restarts, with its warm-up,
//!   at the next reading. QC steps in such a chain see that grid.
//!
//! `stats` counts both kinds as missing (`gaps`).

pub mod multichannel;
mod qc_stage;
mod trace_ops;

pub use qc_stage::{QcRow, QcStage, QcTest};
pub use trace_ops::TraceOp;

use crate::config::{ChainConfig, Config, Step};
use crate::model::is_recorded;
use crate::output::{Results, StatsRec, TraceRec, TriggerRec};
use anyhow::{Context, Result};
use fakopp_kernels::detect::{AicPick, AicPicker, Trigger, TriggerParams, TriggerState};
use fakopp_kernels::qc::RawTexts;
use fakopp_kernels::stats::{StatsState, WindowStats};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A chain of the config with its sensor selector compiled.
#[derive(Debug, Clone)]
pub struct CompiledChain {
    pub cfg: ChainConfig,
    matcher: globset::GlobSet,
    /// `max_len` / `max_len_delete` from a `[[coincidence]]` over this chain
    /// (ObsPy's coincidence_trigger applies max_trigger_length per trace).
    pub coincidence_max_len_s: Option<(f64, bool)>,
    /// Longest run of missing readings that trace operators interpolate.
    pub max_gap: u64,
    /// Station metadata (`stations` in the config), for location tests.
    pub stations: std::sync::Arc<crate::stations::Stations>,
}

impl CompiledChain {
    pub fn compile(config: &Config) -> Result<Vec<CompiledChain>> {
        config
            .chains
            .iter()
            .map(|c| {
                let mut b = globset::GlobSetBuilder::new();
                for g in &c.select {
                    b.add(
                        globset::Glob::new(g)
                            .with_context(|| format!("chain {}: glob {g}", c.name))?,
                    );
                }
                let co = config.coincidence.iter().find(|co| co.chain == c.name);
                Ok(CompiledChain {
                    cfg: c.clone(),
                    matcher: b.build()?,
                    coincidence_max_len_s: co
                        .map(|co| (co.max_trigger_length_s, co.delete_long_trigger)),
                    max_gap: config.stream.max_gap_interp_samples,
                    stations: config.station_table.clone(),
                })
            })
            .collect()
    }

    /// `(longitude, latitude)` of the sensor's station; NaN when the
    /// stations file does not list it (location tests then flag 9, as
    /// ioos_qc flags missing coordinates).
    pub fn position(&self, sensor_id: &str) -> (f64, f64) {
        self.stations
            .get(sensor_id)
            .map_or((f64::NAN, f64::NAN), |s| (s.longitude, s.latitude))
    }

    pub fn matches(&self, sensor_id: &str) -> bool {
        self.matcher.is_match(sensor_id)
    }

    /// The sensors the chain selects (its `select` globs).
    pub fn selection(&self) -> &globset::GlobSet {
        &self.matcher
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// True if the chain reshapes the trace (then it needs a regular series
    /// without missing readings, and restarts at gaps).
    pub fn has_trace_ops(&self) -> bool {
        self.cfg
            .steps
            .iter()
            .any(|s| !s.is_qc() && !matches!(s, Step::Stats(_)))
    }

    /// Flag labels of every chain with QC steps, plus the assembly
    /// pseudo-chain's, as `Results::qc_tests` carries them to the sinks.
    pub fn qc_labels(chains: &[CompiledChain]) -> Vec<(String, Vec<String>)> {
        let mut labels = vec![crate::output::assembly_qc_tests()];
        for c in chains {
            let names = c.qc_names();
            if !names.is_empty() {
                labels.push((c.name().to_string(), names));
            }
        }
        labels
    }

    /// The QC step names, in order (labels of the flags).
    pub fn qc_names(&self) -> Vec<String> {
        self.cfg
            .steps
            .iter()
            .filter(|s| s.is_qc())
            .map(|s| s.op().to_string())
            .collect()
    }
}

/// Trigger parameters of a `trigger` step of `chain` at `rate` Hz: its own
/// `max_len` / `max_len_delete`, else those of a `[[coincidence]]` over
/// the chain.
pub(crate) fn trigger_params(
    chain: &CompiledChain,
    on: f64,
    off: f64,
    max_len: Option<f64>,
    max_len_delete: bool,
    rate: f64,
) -> Result<TriggerParams> {
    let mut p = TriggerParams::new(on, off);
    p.max_len_delete = max_len_delete;
    if let Some(s) = max_len.or(chain.coincidence_max_len_s.map(|m| m.0)) {
        p.max_len = Some(TriggerParams::max_len_from_seconds(s, rate)?);
    }
    if max_len.is_none() {
        if let Some((_, del)) = chain.coincidence_max_len_s {
            p.max_len_delete = del;
        }
    }
    Ok(p)
}

/// One step with its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Stage {
    Trace(TraceOp),
    /// Index into the QC stage's tests.
    Qc(usize),
    Stats(StatsState),
    Trigger(TriggerState),
    Aic(AicPicker),
}

/// All kernel state of one chain on one sensor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainState {
    chain: String,
    sensor: String,
    rate: f64,
    stages: Vec<Stage>,
    qc: QcStage,
    traces: bool,
    /// Current contiguous segment: start time and samples seen in it.
    seg_start_ns: i64,
    seg_len: u64,
    /// Trigger onsets already given to the AIC picker.
    aic_registered: Option<u64>,
    /// Triggers waiting for their AIC pick, and picks made before their
    /// trigger closed (a pick needs only `after` seconds past the onset).
    awaiting_pick: Vec<Trigger>,
    picks: Vec<AicPick>,
    /// Missing-reading handling of chains with trace operators.
    gap: Option<GapFill>,
    #[serde(skip)]
    scratch: Scratch,
}

/// Interpolation of short runs of missing readings (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GapFill {
    max: u64,
    /// Start of the assembled segment and readings seen in it (NaN included).
    raw_start_ns: i64,
    raw_pos: u64,
    last: Option<f64>,
    nan_run: u64,
}

#[derive(Debug, Clone, Default)]
struct Scratch {
    filled: Vec<f64>,
    buf: Vec<f64>,
    tmp: Vec<f64>,
    pre_cf: Vec<f64>,
    times: Vec<i64>,
    triggers: Vec<Trigger>,
    picks: Vec<AicPick>,
    windows: Vec<WindowStats>,
    qc_rows: Vec<QcRow>,
    obs_times: Vec<i64>,
    obs_values: Vec<f64>,
}

/// The observations of the chunk in `s.times` / `s.buf`: every reading
/// made, NaN included, without the grid's [`NOT_RECORDED`](crate::model::NOT_RECORDED) slots.
fn observations(s: &mut Scratch) {
    s.obs_times.clear();
    s.obs_values.clear();
    for (&t, &v) in s.times.iter().zip(&s.buf) {
        if is_recorded(v) {
            s.obs_times.push(t);
            s.obs_values.push(v);
        }
    }
}

impl ChainState {
    /// State for `sensor` sampled at `rate` Hz (0 for irregular series)
    /// with readings nominally `interval_ns` apart, and the raw text of its
    /// readings if the source kept it (for `syntax`).
    pub fn new(
        chain: &CompiledChain,
        sensor: &str,
        rate: f64,
        interval_ns: Option<i64>,
        raw_texts: Option<&Arc<RawTexts>>,
    ) -> Result<ChainState> {
        let mut stages = Vec::new();
        let mut qc = QcStage::default();
        let mut qc_count = 0;
        for (i, step) in chain.cfg.steps.iter().enumerate() {
            let ctx = || {
                format!(
                    "chain `{}` step {} (`{}`) on {sensor}",
                    chain.name(),
                    i,
                    step.op()
                )
            };
            let needs_rate = || -> Result<()> {
                if rate > 0.0 {
                    Ok(())
                } else {
                    anyhow::bail!(
                        "{} needs evenly sampled data; the series is irregular",
                        step.op()
                    )
                }
            };
            if let Some(t) = QcTest::build(step, interval_ns, chain.position(sensor), raw_texts)
                .with_context(ctx)?
            {
                qc.add(t);
                stages.push(Stage::Qc(qc_count));
                qc_count += 1;
                continue;
            }
            let stage = match step {
                Step::Stats(c) => Stage::Stats(StatsState::new(c, interval_ns).with_context(ctx)?),
                Step::Trigger {
                    on,
                    off,
                    max_len,
                    max_len_delete,
                } => {
                    needs_rate().with_context(ctx)?;
                    let p = trigger_params(chain, *on, *off, *max_len, *max_len_delete, rate)
                        .with_context(ctx)?;
                    Stage::Trigger(TriggerState::new(p).with_context(ctx)?)
                }
                Step::AicPick { before, after } => {
                    needs_rate().with_context(ctx)?;
                    Stage::Aic(AicPicker::from_seconds(*before, *after, rate).with_context(ctx)?)
                }
                _ => {
                    needs_rate().with_context(ctx)?;
                    let op = TraceOp::build(step, rate).with_context(ctx)?;
                    Stage::Trace(op.expect("every other step is a trace operator"))
                }
            };
            stages.push(stage);
        }
        Ok(ChainState {
            chain: chain.name().to_string(),
            sensor: sensor.to_string(),
            rate,
            stages,
            qc,
            traces: chain.cfg.traces,
            seg_start_ns: 0,
            seg_len: 0,
            aic_registered: None,
            awaiting_pick: Vec::new(),
            picks: Vec::new(),
            gap: chain.has_trace_ops().then_some(GapFill {
                max: chain.max_gap,
                raw_start_ns: 0,
                raw_pos: 0,
                last: None,
                nan_run: 0,
            }),
            scratch: Scratch::default(),
        })
    }

    /// Starts a new contiguous segment at `start_ns`: trace operators,
    /// triggers and picks start again with their warm-up.
    pub fn begin_segment(&mut self, start_ns: i64, out: &mut Results) {
        self.restart(start_ns, out);
        if let Some(g) = self.gap.as_mut() {
            *g = GapFill {
                raw_start_ns: start_ns,
                raw_pos: 0,
                last: None,
                nan_run: 0,
                ..*g
            };
        }
    }

    fn restart(&mut self, start_ns: i64, out: &mut Results) {
        self.end_segment(out);
        self.seg_start_ns = start_ns;
        self.seg_len = 0;
    }

    /// Feeds the next samples of the current segment. `times_ns` gives the
    /// time of each sample for irregular series and may be empty for
    /// regular ones.
    pub fn push(&mut self, times_ns: &[i64], values: &[f64], out: &mut Results) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let mut s = std::mem::take(&mut self.scratch);
        let r = match self.gap.take() {
            None => self.push_inner(times_ns, values, &mut s, out),
            Some(mut g) => {
                let r = self.push_filled(&mut g, values, &mut s, out);
                self.gap = Some(g);
                r
            }
        };
        self.scratch = s;
        r
    }

    /// Trace chains: interpolates short runs of missing readings, restarts
    /// the segment after long ones (module docs), pushes the rest.
    fn push_filled(
        &mut self,
        g: &mut GapFill,
        values: &[f64],
        s: &mut Scratch,
        out: &mut Results,
    ) -> Result<()> {
        let mut run = std::mem::take(&mut s.filled);
        run.clear();
        let mut result = Ok(());
        for &v in values {
            let pos = g.raw_pos;
            g.raw_pos += 1;
            if !v.is_finite() {
                g.nan_run += 1;
                continue;
            }
            if g.nan_run > 0 {
                match g.last {
                    Some(y0) if g.nan_run <= g.max => {
                        let step = (v - y0) / (g.nan_run + 1) as f64;
                        run.extend((1..=g.nan_run).map(|i| y0 + step * i as f64));
                    }
                    _ => {
                        result = result.and_then(|()| self.push_inner(&[], &run, s, out));
                        run.clear();
                        let t = g.raw_start_ns + ((pos as f64) * 1e9 / self.rate).round() as i64;
                        self.restart(t, out);
                    }
                }
                g.nan_run = 0;
            }
            run.push(v);
            g.last = Some(v);
        }
        let r = result.and_then(|()| self.push_inner(&[], &run, s, out));
        s.filled = run;
        r
    }

    fn push_inner(
        &mut self,
        times_ns: &[i64],
        values: &[f64],
        s: &mut Scratch,
        out: &mut Results,
    ) -> Result<()> {
        s.times.clear();
        if times_ns.is_empty() {
            let (t0, k0, rate) = (self.seg_start_ns, self.seg_len, self.rate);
            s.times.extend(
                (0..values.len() as u64)
                    .map(|i| t0 + (((k0 + i) as f64) * 1e9 / rate).round() as i64),
            );
        } else {
            s.times.extend_from_slice(times_ns);
        }
        s.buf.clear();
        s.buf.extend_from_slice(values);
        let mut noted_qc = false;
        let mut active_onset = None;
        let mut stages = std::mem::take(&mut self.stages);
        // A trace chain's buffer holds no unrecorded slot (the gap fill
        // interpolated them) and changes from step to step: each QC step
        // reads it as it is. A QC-only chain's buffer stays the chunk as
        // assembled: its observations, if it has slots with no reading, are
        // taken out once.
        let trace_chain = stages.iter().any(|st| matches!(st, Stage::Trace(_)));
        let unrecorded = !trace_chain
            && (self.traces || !self.qc.is_empty())
            && values.iter().any(|&v| !is_recorded(v));
        if unrecorded {
            observations(s);
        }
        let res = (|| -> Result<()> {
            for stage in stages.iter_mut() {
                match stage {
                    Stage::Trace(op) => {
                        if op.is_detector() {
                            s.pre_cf.clear();
                            s.pre_cf.extend_from_slice(&s.buf);
                        }
                        op.apply(&mut s.buf, &mut s.tmp, self.rate)?;
                    }
                    Stage::Qc(i) => {
                        let (t, v): (&[i64], &[f64]) = if unrecorded {
                            (&s.obs_times, &s.obs_values)
                        } else {
                            (&s.times, &s.buf)
                        };
                        if !noted_qc {
                            self.qc.note_readings(t, v);
                            noted_qc = true;
                        }
                        if !v.is_empty() {
                            self.qc.push_test(*i, t, v)?;
                        }
                    }
                    Stage::Stats(st) => {
                        s.windows.clear();
                        st.push(&s.times, &s.buf, &mut s.windows)?;
                        self.emit_stats(&s.windows, out);
                    }
                    Stage::Trigger(tr) => {
                        s.triggers.clear();
                        tr.process(&s.buf, &mut s.triggers);
                        self.awaiting_pick.append(&mut s.triggers);
                        active_onset = tr.active_onset();
                    }
                    Stage::Aic(p) => {
                        // Register onsets (closed triggers, then the open
                        // one) before the picker sees this chunk, so each
                        // window is still buffered.
                        let onsets: Vec<u64> = self
                            .awaiting_pick
                            .iter()
                            .map(|t| t.on)
                            .chain(active_onset)
                            .collect();
                        for on in onsets {
                            if self.aic_registered.is_none_or(|r| on > r) {
                                p.add_onset(on)?;
                                self.aic_registered = Some(on);
                            }
                        }
                        s.picks.clear();
                        p.process(&s.pre_cf, &mut s.picks)?;
                    }
                }
            }
            Ok(())
        })();
        self.stages = stages;
        res?;
        self.seg_len += values.len() as u64;
        if self.traces {
            self.emit_trace(&s.buf, unrecorded, out);
        }
        self.picks.append(&mut s.picks);
        self.emit_triggers(false, out);
        s.qc_rows.clear();
        self.qc.drain(&mut s.qc_rows);
        self.emit_qc(&s.qc_rows, out);
        Ok(())
    }

    /// On time of a trigger that is still open (or waiting for its AIC
    /// pick), if any: later network coincidence may still include it.
    pub fn open_trigger_on_ns(&self) -> Option<i64> {
        let open = self.stages.iter().find_map(|st| match st {
            Stage::Trigger(t) => t.active_onset(),
            _ => None,
        });
        let waiting = self.awaiting_pick.iter().map(|t| t.on).min();
        let on = match (open, waiting) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(self.seg_start_ns + ((on as f64) * 1e9 / self.rate).round_ties_even() as i64)
    }

    fn has_aic(&self) -> bool {
        self.stages.iter().any(|s| matches!(s, Stage::Aic(_)))
    }

    /// Moves triggers whose pick is known (or all, at segment end) to `out`.
    fn emit_triggers(&mut self, all: bool, out: &mut Results) {
        let has_aic = self.has_aic();
        let mut keep = Vec::new();
        for t in self.awaiting_pick.drain(..) {
            let pick = self
                .picks
                .iter()
                .position(|p| p.onset == t.on)
                .map(|i| self.picks.remove(i).pick);
            if has_aic && pick.is_none() && !all {
                keep.push(t);
                continue;
            }
            let time = |i: u64| {
                self.seg_start_ns + ((i as f64) * 1e9 / self.rate).round_ties_even() as i64
            };
            out.triggers.push(TriggerRec {
                chain: self.chain.clone(),
                sensor: self.sensor.clone(),
                on_time_ns: time(t.on),
                off_time_ns: time(t.off),
                on_index: t.on,
                off_index: t.off,
                peak_cf: t.peak,
                pick_time_ns: pick.map(time),
            });
        }
        self.awaiting_pick = keep;
    }

    fn emit_stats(&self, windows: &[WindowStats], out: &mut Results) {
        for w in windows {
            out.stats.push(StatsRec {
                chain: self.chain.clone(),
                sensor: self.sensor.clone(),
                window_start_ns: w.start_ns,
                window_s: (w.end_ns - w.start_ns) as f64 / 1e9,
                count: w.count,
                gaps: w.gaps,
                min: w.min,
                max: w.max,
                mean: w.mean,
                std: w.std,
                rms: w.rms,
            });
        }
    }

    fn emit_qc(&self, rows: &[QcRow], out: &mut Results) {
        for (index, time_ns, value, flags, aggregate) in rows {
            out.qc.push(crate::output::QcRec {
                chain: self.chain.clone(),
                sensor: self.sensor.clone(),
                time_ns: *time_ns,
                index: *index,
                value: *value,
                flags: flags.clone(),
                aggregate: *aggregate,
            });
        }
    }

    /// Appends the chunk's trace; `unrecorded`: `buf` holds slots with no
    /// reading (a chain without trace operators), which a kept trace shows
    /// as the plain NaN (the mark is internal).
    fn emit_trace(&self, buf: &[f64], unrecorded: bool, out: &mut Results) {
        let seg_start = self.seg_start_ns;
        let samples = match out.traces.last_mut() {
            Some(t)
                if t.chain == self.chain
                    && t.sensor == self.sensor
                    && t.start_time_ns == seg_start =>
            {
                &mut t.samples
            }
            _ => {
                out.traces.push(TraceRec {
                    chain: self.chain.clone(),
                    sensor: self.sensor.clone(),
                    start_time_ns: seg_start,
                    sample_rate_hz: self.rate,
                    samples: Vec::with_capacity(buf.len()),
                });
                &mut out.traces.last_mut().expect("just pushed").samples
            }
        };
        if unrecorded {
            samples.extend(buf.iter().map(|&v| crate::model::canonical_nan(v)));
        } else {
            samples.extend_from_slice(buf);
        }
    }

    /// Ends the current segment: open triggers and pending picks are
    /// flushed and trace operators go back to warm-up.
    pub fn end_segment(&mut self, out: &mut Results) {
        let mut picks = std::mem::take(&mut self.picks);
        let mut trig = Vec::new();
        for st in self.stages.iter_mut() {
            match st {
                Stage::Trace(op) => op.reset(),
                Stage::Trigger(t) => t.finish(&mut trig),
                // Open triggers' onsets were registered while they were open.
                Stage::Aic(p) => p.finish(&mut picks),
                _ => {}
            }
        }
        self.awaiting_pick.extend(trig);
        self.picks = picks;
        self.emit_triggers(true, out);
        self.picks.clear();
        self.aic_registered = None;
    }

    /// End of the series: flushes everything (QC, stats, open segment).
    pub fn finish(&mut self, out: &mut Results) {
        self.end_segment(out);
        let mut rows = Vec::new();
        self.qc.finish(&mut rows);
        self.emit_qc(&rows, out);
        let mut stages = std::mem::take(&mut self.stages);
        for st in stages.iter_mut() {
            if let Stage::Stats(s) = st {
                let mut w = Vec::new();
                s.finish(&mut w);
                self.emit_stats(&w, out);
            }
        }
        self.stages = stages;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;

    const CFG: &str = r#"
[source]
kind = "synthetic"
[synthetic]
seismic_stations = 3
duration_s = 200.0
events = 2
groundwater_sensors = 1
ph_sensors = 1
env_days = 4.0
[[chains]]
name = "p"
select = ["XX.*"]
traces = true
steps = [
  { op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 10.0 },
  { op = "trigger", on = 3.5, off = 1.0 },
  { op = "aic_pick", before = 1.0, after = 0.5 },
]
[[chains]]
name = "q"
select = ["EMB.*"]
steps = [
  { op = "gross_range", fail_span = [-50.0, 14.0] },
  { op = "spike", suspect_threshold = 0.3, fail_threshold = 0.9 },
  { op = "flat_line", suspect_threshold_s = 10800, fail_threshold_s = 21600, tolerance = 0.001 },
  { op = "stats", window = 3600.0 },
]
"#;

    fn one_chain(steps: &str, traces: bool) -> CompiledChain {
        let text = format!(
            "[source]\nkind = \"files\"\n[[chains]]\nname = \"c\"\nselect = [\"A.B..C\"]\ntraces = {traces}\nsteps = [{steps}]\n"
        );
        let cfg = Config::parse(&text, std::path::Path::new("t.toml"), Mode::Batch).unwrap();
        CompiledChain::compile(&cfg).unwrap().remove(0)
    }

    fn run(chain: &CompiledChain, values: &[f64]) -> Results {
        let mut st = ChainState::new(chain, "A.B..C", 1.0, Some(1_000_000_000), None).unwrap();
        let mut out = Results::default();
        st.begin_segment(0, &mut out);
        st.push(&[], values, &mut out).unwrap();
        st.finish(&mut out);
        out
    }

    /// QC flags observations as recorded: a slot with no reading gets no
    /// row, a reading recorded as NaN gets one (9); the kept trace shows
    /// the plain NaN.
    #[test]
    fn qc_rows_are_observations() {
        let nr = crate::model::NOT_RECORDED;
        let chain = one_chain(r#"{ op = "gross_range", fail_span = [0.0, 10.0] }"#, true);
        let out = run(&chain, &[1.0, nr, f64::NAN, 11.0, nr, 2.0]);
        let rows: Vec<(u64, i64, u8)> = out
            .qc
            .iter()
            .map(|q| (q.index, q.time_ns, q.flags[0]))
            .collect();
        let s = 1_000_000_000;
        assert_eq!(
            rows,
            [(0, 0, 1), (1, 2 * s, 9), (2, 3 * s, 4), (3, 5 * s, 1)]
        );
        assert!(out.traces[0]
            .samples
            .iter()
            .all(|v| crate::model::is_recorded(*v)));
    }

    /// `syntax` reads each observation's raw text by its time; a reading
    /// read without text (MiniSEED, packets) is not evaluated (2).
    #[test]
    fn syntax_flags_the_text_of_each_observation() {
        let chain = one_chain(r#"{ op = "syntax", nchar = 3 }"#, false);
        let s = 1_000_000_000;
        let texts = Arc::new(RawTexts::first_per_time([
            (0, "7.1"),
            (2 * s, ""),
            (3 * s, "7.25"),
        ]));
        let nr = crate::model::NOT_RECORDED;
        let flags = |texts: Option<&Arc<RawTexts>>| {
            let mut st = ChainState::new(&chain, "A.B..C", 1.0, Some(s), texts).unwrap();
            let mut out = Results::default();
            st.begin_segment(0, &mut out);
            st.push(&[], &[7.1, nr, f64::NAN, 7.25], &mut out).unwrap();
            st.finish(&mut out);
            out.qc
                .iter()
                .map(|q| (q.time_ns, q.flags[0]))
                .collect::<Vec<_>>()
        };
        assert_eq!(flags(Some(&texts)), [(0, 1), (2 * s, 4), (3 * s, 4)]);
        assert_eq!(flags(None), [(0, 2), (2 * s, 2), (3 * s, 2)]);
    }

    /// In a chain with trace operators, each QC step reads the buffer as
    /// the steps before it left it (both kinds of missing reading are
    /// interpolated first).
    #[test]
    fn qc_after_a_trace_operator_reads_its_output() {
        let chain = one_chain(
            r#"{ op = "gross_range", fail_span = [-100.0, 100.0] }, { op = "demean" }, { op = "gross_range", fail_span = [-0.5, 0.5] }"#,
            false,
        );
        let out = run(
            &chain,
            &[10.0, 10.0, crate::model::NOT_RECORDED, 10.0, 14.0],
        );
        let second: Vec<u8> = out.qc.iter().map(|q| q.flags[1]).collect();
        // Demeaned (the slot interpolated to 10): -0.8 four times, 3.2.
        assert_eq!(second, [4, 4, 4, 4, 4]);
        let out = run(&chain, &[10.0, 10.0, 10.0, 10.0, 10.25]);
        let second: Vec<u8> = out.qc.iter().map(|q| q.flags[1]).collect();
        assert_eq!(second, [1, 1, 1, 1, 1]);
        assert_eq!(out.qc.len(), 5);
    }

    /// Feeding a series in chunks of any size gives what one push gives,
    /// for every kind of step (triggers with AIC picks, QC, stats, traces).
    #[test]
    fn chunking_does_not_change_results() {
        let cfg = Config::parse(CFG, std::path::Path::new("test.toml"), Mode::Batch).unwrap();
        let chains = CompiledChain::compile(&cfg).unwrap();
        let net = crate::source::synthetic::generate(&cfg.synthetic).unwrap();
        for series in &net.series {
            for chain in chains.iter().filter(|c| c.matches(&series.sensor_id)) {
                let mut whole = Results::default();
                crate::batch::run_series(chain, series, &mut whole);
                assert!(whole.problems.is_empty(), "{:?}", whole.problems);
                for size in [1usize, 3, 50, 777, 4096] {
                    let rate = series.sample_rate_hz;
                    let mut st = ChainState::new(
                        chain,
                        &series.sensor_id,
                        rate,
                        Some((1e9 / rate).round() as i64),
                        None,
                    )
                    .unwrap();
                    let mut out = Results::default();
                    for seg in &series.segments {
                        st.begin_segment(seg.start_ns, &mut out);
                        for c in seg.samples.chunks(size) {
                            st.push(&[], c, &mut out).unwrap();
                        }
                    }
                    st.finish(&mut out);
                    // Traces come in pieces; join them per segment.
                    let mut joined: Vec<TraceRec> = Vec::new();
                    for t in out.traces.drain(..) {
                        match joined.last_mut() {
                            Some(j) if j.start_time_ns == t.start_time_ns => {
                                j.samples.extend(t.samples)
                            }
                            _ => joined.push(t),
                        }
                    }
                    out.traces = joined;
                    let (mut a, mut b) = (whole.clone(), out);
                    a.sort();
                    b.sort();
                    assert_eq!(
                        a.triggers, b.triggers,
                        "{} chunks of {size}",
                        series.sensor_id
                    );
                    assert!(
                        a.triggers.iter().all(|t| t.pick_time_ns.is_some()) || chain.name() != "p"
                    );
                    assert_eq!(a.qc.len(), b.qc.len());
                    assert!(a
                        .qc
                        .iter()
                        .zip(&b.qc)
                        .all(|(x, y)| x.flags == y.flags && x.index == y.index));
                    assert_eq!(a.stats.len(), b.stats.len());
                    assert_eq!(a.traces, b.traces, "{} chunks of {size}", series.sensor_id);
                }
            }
        }
    }
}
