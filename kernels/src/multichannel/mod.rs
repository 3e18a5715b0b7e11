//! Multi-channel streaming detection chain in SIMD lanes:
//! Butterworth `sosfilt` → recursive STA/LTA → trigger on/off, for N
//! channels sharing one sampling rate and one set of parameters.
//!
//! Per channel and sample this is exactly the scalar chain
//! [`SosFilter`](crate::filter::SosFilter) →
//! [`RecursiveStaLta`](crate::detect::RecursiveStaLta) →
//! [`TriggerState`](crate::detect::TriggerState), bit for bit, for any
//! chunking (same operations in the same order; tested against the scalar
//! kernels):
//!
//! * filter, per section `[b0, b1, b2, 1, a1, a2]` (direct form II
//!   transposed): `y = b0*x + z0; z0 = b1*x - a1*y + z1; z1 = b2*x - a2*y`;
//! * `sta = csta*y² + (1-csta)*sta`, `lta = clta*y² + (1-clta)*lta` with
//!   `csta = 1/nsta`, `clta = 1/nlta` (sample 0 is not averaged),
//!   `cf = sta/lta` (dimensionless), `cf = 0` during the warm-up `i < nlta`;
//! * triggers: on at the first sample with `cf >= on`, off at the last sample
//!   with `cf >= off` (ObsPy `trigger_onset`), with `peak = max(cf[on..off])`.
//!
//! Units: input in any unit (counts, m/s, …); corners in Hz, STA/LTA windows
//! in seconds (`int(s * sampling_rate)` samples, as ObsPy's `Trace.trigger`);
//! trigger positions in samples since the first sample fed (or since
//! [`MultiChannelChain::finish`]/[`reset`](MultiChannelChain::reset)).
//!
//! # Layout
//!
//! Channels are grouped by [`LANES`] = 8. Each group keeps its state in
//! structure-of-arrays form — per filter section `[z0; 8]`, `[z1; 8]`, and
//! `[sta; 8]`, `[lta; 8]` — so one vector instruction advances 8 channels
//! (AVX-512) or 4 (AVX2, two vectors per group). Chunks arrive channel-major
//! (`input[channel][sample]`, rows contiguous); each group transposes blocks
//! of [`BLOCK`] samples into an interleaved `[sample][lane]` scratch buffer
//! (16 KiB, L1-resident), runs the filter + STA/LTA kernel in place, and
//! feeds each lane's CF to that channel's trigger state (skipping runs in
//! which no trigger can open). A group whose channel count is not a multiple
//! of 8 carries zero-fed padding lanes that are never reported. The layout
//! is the same whatever the instruction set, so a checkpoint taken on an
//! AVX-512 machine restores on an AVX2 one.
//!
//! The kernel is chosen at run time ([`Isa::best`]: AVX-512F, AVX2 or the
//! portable build); every choice gives identical results.
//!
//! Buffers (scratch, per-lane trigger lists) are allocated at construction
//! (or on the first chunk after deserialisation) and reused: processing a
//! chunk does not allocate, except for growing the caller's trigger `Vec`.
//!
//! ```
//! use fakopp_kernels::filter::Band;
//! use fakopp_kernels::detect::TriggerParams;
//! use fakopp_kernels::multichannel::{ChainParams, MultiChannelChain};
//! use ndarray::Array2;
//!
//! let params = ChainParams {
//!     band: Band::Bandpass { freqmin: 1.0, freqmax: 10.0 },
//!     corners: 4,
//!     sta_s: 0.5,
//!     lta_s: 10.0,
//!     trigger: TriggerParams::new(3.5, 1.0),
//!     sampling_rate: 100.0,
//! };
//! let mut chain = MultiChannelChain::new(&params, 64).unwrap();
//! let mut triggers = Vec::new();
//! let chunk = Array2::<f64>::zeros((64, 1000)); // channels x samples
//! chain.process(chunk.view(), &mut triggers).unwrap();
//! chain.finish(&mut triggers);
//! ```

mod simd;

pub use simd::Isa;

use crate::detect::{StaLtaWindows, Trigger, TriggerParams, TriggerState};
use crate::error::{invalid, Result};
use crate::filter::{butterworth, Band, FilterWarning, Sos};
use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use serde::{Deserialize, Serialize};
use simd::{BlockState, Detector, Lanes, StaLtaCoefs};

/// Channels per lane group (the AVX-512 width in `f64`).
pub const LANES: usize = 8;

/// Samples per interleaved block (8 lanes x 256 x 8 B = 16 KiB scratch).
pub const BLOCK: usize = 256;

/// Parameters of the chain, shared by all channels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChainParams {
    /// Butterworth band, corners in Hz (ObsPy's Nyquist rules apply, see
    /// [`butterworth`]).
    pub band: Band,
    /// Filter order (ObsPy `corners`); a bandpass of `corners = 4` has 4
    /// second-order sections.
    pub corners: usize,
    /// STA window in seconds.
    pub sta_s: f64,
    /// LTA window in seconds.
    pub lta_s: f64,
    /// Trigger thresholds (`off <= on`) and maximum length in samples.
    pub trigger: TriggerParams,
    /// Sampling rate in Hz, the same for every channel.
    pub sampling_rate: f64,
}

/// A completed trigger on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChannelTrigger {
    /// Channel index (row of the input).
    pub channel: usize,
    pub trigger: Trigger,
}

/// Reused buffers of one group (not part of the checkpointed state).
#[derive(Debug, Clone, Default)]
struct Scratch {
    /// Interleaved block, `buf[t][lane]`.
    buf: Vec<Lanes>,
    /// One lane's CF, contiguous.
    lane: Vec<f64>,
    /// Zeros feeding the padding lanes.
    zeros: Vec<f64>,
}

impl Scratch {
    fn ensure(&mut self) {
        if self.buf.len() < BLOCK {
            self.buf = vec![[0.0; LANES]; BLOCK];
            self.lane = vec![0.0; BLOCK];
            self.zeros = vec![0.0; BLOCK];
        }
    }
}

/// State of up to [`LANES`] channels.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LaneGroup {
    /// First channel of the group.
    first: usize,
    /// Per section: `[z0 lanes, z1 lanes]` (SciPy's `zi`, lane-interleaved).
    zi: Vec<[Lanes; 2]>,
    sta: Lanes,
    lta: Lanes,
    /// One per real channel (`len() <= LANES`).
    trig: Vec<TriggerState>,
    /// Triggers completed in the current call, per real channel.
    #[serde(skip)]
    pending: Vec<Vec<Trigger>>,
    #[serde(skip)]
    scratch: Scratch,
    /// State at the start of the current call, for rollback.
    #[serde(skip)]
    backup: Snapshot,
}

/// Rollback copy of a group's state (buffers reused between calls).
#[derive(Debug, Clone, Default)]
struct Snapshot {
    zi: Vec<[Lanes; 2]>,
    sta: Lanes,
    lta: Lanes,
    trig: Vec<TriggerState>,
}

/// Immutable parameters the group kernels need.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    secs: &'a [[f64; 6]],
    k: StaLtaCoefs,
    on: f64,
    isa: Isa,
    i0: u64,
}

/// Streaming multi-channel chain (see the [module docs](self) for the
/// formulas, warm-up and layout). `Clone + Serialize + Deserialize` for
/// checkpoints; the chosen instruction set and scratch buffers are not
/// serialised (re-detected / re-allocated after restore).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MultiChannelChain {
    n_channels: usize,
    sos: Sos,
    windows: StaLtaWindows,
    trigger: TriggerParams,
    warning: Option<FilterWarning>,
    /// Samples fed per channel since construction / reset.
    samples_seen: u64,
    groups: Vec<LaneGroup>,
    #[serde(skip, default = "Isa::best")]
    isa: Isa,
}

impl MultiChannelChain {
    /// Designs the Butterworth filter as [`butterworth`] (ObsPy/SciPy),
    /// the windows as `int(s * sampling_rate)` and validates the trigger
    /// thresholds (`off <= on`, not NaN). `n_channels >= 1`.
    pub fn new(p: &ChainParams, n_channels: usize) -> Result<Self> {
        let d = butterworth(p.band, p.corners, p.sampling_rate)?;
        let w = StaLtaWindows::from_seconds(p.sta_s, p.lta_s, p.sampling_rate)?;
        let mut c = Self::from_parts(d.sos, w, p.trigger, n_channels)?;
        c.warning = d.warning;
        Ok(c)
    }

    /// From an already designed filter (any SOS cascade), windows in samples
    /// and trigger parameters.
    pub fn from_parts(
        sos: Sos,
        windows: StaLtaWindows,
        trigger: TriggerParams,
        n_channels: usize,
    ) -> Result<Self> {
        if n_channels == 0 {
            return Err(invalid("n_channels", "at least one channel is required"));
        }
        let proto = TriggerState::new(trigger)?;
        let groups = (0..n_channels.div_ceil(LANES))
            .map(|g| {
                let first = g * LANES;
                let n = (n_channels - first).min(LANES);
                let mut scratch = Scratch::default();
                scratch.ensure();
                LaneGroup {
                    first,
                    zi: vec![[[0.0; LANES]; 2]; sos.len()],
                    sta: [0.0; LANES],
                    lta: [0.0; LANES],
                    trig: vec![proto.clone(); n],
                    pending: vec![Vec::new(); n],
                    scratch,
                    backup: Snapshot::default(),
                }
            })
            .collect();
        Ok(MultiChannelChain {
            n_channels,
            sos,
            windows,
            trigger,
            warning: None,
            samples_seen: 0,
            groups,
            isa: Isa::best(),
        })
    }

    pub fn n_channels(&self) -> usize {
        self.n_channels
    }
    pub fn sos(&self) -> &Sos {
        &self.sos
    }
    pub fn windows(&self) -> StaLtaWindows {
        self.windows
    }
    pub fn trigger_params(&self) -> &TriggerParams {
        &self.trigger
    }
    /// ObsPy's design warning (e.g. bandpass turned highpass), if any.
    pub fn filter_warning(&self) -> Option<&FilterWarning> {
        self.warning.as_ref()
    }
    /// Samples fed per channel since construction, [`reset`](Self::reset)
    /// or [`finish`](Self::finish).
    pub fn samples_seen(&self) -> u64 {
        self.samples_seen
    }
    /// Instruction set in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }
    /// Forces an instruction set (e.g. to compare or benchmark); fails if
    /// this CPU lacks it. Results do not depend on the choice.
    pub fn set_isa(&mut self, isa: Isa) -> Result<()> {
        if !isa.is_available() {
            return Err(invalid(
                "isa",
                format!("{isa:?} is not supported by this CPU"),
            ));
        }
        self.isa = isa;
        Ok(())
    }
    /// Onset of the trigger currently on for `channel`, if any.
    pub fn active_onset(&self, channel: usize) -> Option<u64> {
        let g = self.groups.get(channel / LANES)?;
        g.trig.get(channel % LANES)?.active_onset()
    }

    /// Back to rest (filter state zero, STA/LTA warm-up, no trigger on),
    /// e.g. after a gap.
    pub fn reset(&mut self) {
        for g in &mut self.groups {
            g.zi.iter_mut().for_each(|z| *z = [[0.0; LANES]; 2]);
            g.sta = [0.0; LANES];
            g.lta = [0.0; LANES];
            g.trig.iter_mut().for_each(TriggerState::reset);
        }
        self.samples_seen = 0;
    }

    /// Ends the trace: closes every trigger still on at the last sample
    /// (as [`TriggerState::finish`]), appends them to `out` in channel order,
    /// and resets the chain for a new trace.
    pub fn finish(&mut self, out: &mut Vec<ChannelTrigger>) {
        for g in &mut self.groups {
            g.ensure_buffers();
            for (l, t) in g.trig.iter_mut().enumerate() {
                let p = &mut g.pending[l];
                t.finish(p);
                out.extend(p.drain(..).map(|trigger| ChannelTrigger {
                    channel: g.first + l,
                    trigger,
                }));
            }
        }
        self.reset();
    }

    /// Feeds one chunk, `input[channel][sample]` (`n_channels` rows, each
    /// row contiguous, any number of samples), on the calling thread.
    /// Completed triggers are appended to `out`, by channel then time.
    /// A chunk holding a non-finite sample is rejected as a whole: the state
    /// is left as before the call (a `cf` output may be partly written).
    pub fn process(
        &mut self,
        input: ArrayView2<'_, f64>,
        out: &mut Vec<ChannelTrigger>,
    ) -> Result<()> {
        self.run(&rows_of(input)?, None, out, false)
    }

    /// [`process`](Self::process) on rows held anywhere (`rows[channel]`,
    /// all of one length): no copy into a 2-D array first.
    pub fn process_rows(&mut self, rows: &[&[f64]], out: &mut Vec<ChannelTrigger>) -> Result<()> {
        self.run(rows, None, out, false)
    }

    /// [`process`](Self::process) that also writes the characteristic
    /// function to `cf` (same shape as `input`, rows contiguous).
    pub fn process_with_cf(
        &mut self,
        input: ArrayView2<'_, f64>,
        cf: ArrayViewMut2<'_, f64>,
        out: &mut Vec<ChannelTrigger>,
    ) -> Result<()> {
        self.run(&rows_of(input)?, Some(cf), out, false)
    }

    /// [`process`](Self::process) with the lane groups spread over the
    /// current rayon pool (`ThreadPool::install` to choose one). Same
    /// output, in the same order.
    pub fn process_par(
        &mut self,
        input: ArrayView2<'_, f64>,
        out: &mut Vec<ChannelTrigger>,
    ) -> Result<()> {
        self.run(&rows_of(input)?, None, out, true)
    }

    /// [`process_with_cf`](Self::process_with_cf) over the rayon pool.
    pub fn process_with_cf_par(
        &mut self,
        input: ArrayView2<'_, f64>,
        cf: ArrayViewMut2<'_, f64>,
        out: &mut Vec<ChannelTrigger>,
    ) -> Result<()> {
        self.run(&rows_of(input)?, Some(cf), out, true)
    }

    fn run(
        &mut self,
        input: &[&[f64]],
        cf: Option<ArrayViewMut2<'_, f64>>,
        out: &mut Vec<ChannelTrigger>,
        parallel: bool,
    ) -> Result<()> {
        let rows = input.len();
        if rows != self.n_channels {
            return Err(invalid(
                "input",
                format!("{rows} rows for a chain of {} channels", self.n_channels),
            ));
        }
        let n = input.first().map_or(0, |r| r.len());
        if let Some((ch, r)) = input.iter().enumerate().find(|(_, r)| r.len() != n) {
            return Err(invalid(
                "input",
                format!("row {ch} has {} samples, row 0 has {n}", r.len()),
            ));
        }
        if let Some(c) = &cf {
            if c.dim() != (rows, n) {
                return Err(invalid(
                    "cf",
                    format!(
                        "shape {:?} differs from the input's {:?}",
                        c.dim(),
                        (rows, n)
                    ),
                ));
            }
            if n > 1 && c.strides()[1] != 1 {
                return Err(invalid("cf", "rows must be contiguous (C order)"));
            }
        }
        if n == 0 {
            return Ok(());
        }
        // Finiteness is checked block by block while transposing (one pass
        // over the input instead of two); on failure every group rolls back
        // to this snapshot, so a rejected chunk changes nothing.
        for g in &mut self.groups {
            g.snapshot();
        }
        let ctx = Ctx {
            secs: self.sos.sections(),
            k: StaLtaCoefs {
                csta: 1.0 / self.windows.nsta as f64,
                icsta: 1.0 - 1.0 / self.windows.nsta as f64,
                clta: 1.0 / self.windows.nlta as f64,
                iclta: 1.0 - 1.0 / self.windows.nlta as f64,
                nlta: self.windows.nlta as u64,
            },
            on: self.trigger.on,
            isa: self.isa,
            i0: self.samples_seen,
        };
        let ok = if parallel {
            par_groups(&mut self.groups, input, cf, &ctx)
        } else {
            let mut cf = cf;
            self.groups.iter_mut().all(|g| {
                let part = cf.take().map(|c| {
                    let (a, b) = c.split_at(Axis(0), g.trig.len());
                    cf = Some(b);
                    a
                });
                g.process(input, part, &ctx)
            })
        };
        if !ok {
            for g in &mut self.groups {
                g.restore();
            }
            check_finite_rows(input, self.samples_seen)?;
            unreachable!("a group saw a non-finite sample that the scan did not find");
        }
        for g in &mut self.groups {
            for (l, p) in g.pending.iter_mut().enumerate() {
                out.extend(p.drain(..).map(|trigger| ChannelTrigger {
                    channel: g.first + l,
                    trigger,
                }));
            }
        }
        self.samples_seen += n as u64;
        Ok(())
    }
}

/// Splits the groups (and the matching CF rows) over the rayon pool;
/// `false` if any group met a non-finite sample.
fn par_groups(
    groups: &mut [LaneGroup],
    input: &[&[f64]],
    cf: Option<ArrayViewMut2<'_, f64>>,
    ctx: &Ctx<'_>,
) -> bool {
    match groups.len() {
        0 => true,
        1 => groups[0].process(input, cf, ctx),
        len => {
            let mid = len / 2;
            let (ga, gb) = groups.split_at_mut(mid);
            let (ca, cb) = match cf {
                Some(c) => {
                    let (a, b) = c.split_at(Axis(0), mid * LANES);
                    (Some(a), Some(b))
                }
                None => (None, None),
            };
            let (a, b) = rayon::join(
                || par_groups(ga, input, ca, ctx),
                || par_groups(gb, input, cb, ctx),
            );
            a && b
        }
    }
}

/// The rows of a view whose rows are contiguous.
fn rows_of(input: ArrayView2<'_, f64>) -> Result<Vec<&[f64]>> {
    if input.ncols() > 1 && input.strides()[1] != 1 {
        return Err(invalid(
            "input",
            "rows must be contiguous (C order; see ndarray `as_standard_layout`)",
        ));
    }
    Ok((0..input.nrows())
        .map(|ch| {
            input
                .index_axis_move(Axis(0), ch)
                .to_slice()
                .expect("rows checked contiguous")
        })
        .collect())
}

/// True if no sample is NaN or ±inf: what [`MultiChannelChain`] accepts.
///
/// Branch-free scan (exponent bits all ones = inf or NaN); integer
/// OR-reductions vectorise, unlike float or bool ones.
#[inline]
pub fn all_finite(r: &[f64]) -> bool {
    const EXP: u64 = 0x7ff0_0000_0000_0000;
    let bad = |v: &f64| ((v.to_bits() & EXP) == EXP) as u64;
    let mut acc = [0u64; 8];
    let mut chunks = r.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a |= bad(v);
        }
    }
    let tail = chunks.remainder().iter().fold(0, |a, v| a | bad(v));
    acc.iter().fold(tail, |a, &b| a | b) == 0
}

/// The first non-finite sample (lowest channel, then earliest), as an error.
fn check_finite_rows(input: &[&[f64]], offset: u64) -> Result<()> {
    for (ch, r) in input.iter().enumerate() {
        if !all_finite(r) {
            let i = r.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(invalid(
                "input",
                format!(
                    "non-finite sample {} in channel {ch} at index {}",
                    r[i],
                    offset + i as u64
                ),
            ));
        }
    }
    Ok(())
}

impl LaneGroup {
    fn snapshot(&mut self) {
        let b = &mut self.backup;
        b.zi.clone_from(&self.zi);
        (b.sta, b.lta) = (self.sta, self.lta);
        b.trig.clone_from(&self.trig);
    }

    fn restore(&mut self) {
        let b = &self.backup;
        self.zi.clone_from(&b.zi);
        (self.sta, self.lta) = (b.sta, b.lta);
        self.trig.clone_from(&b.trig);
        self.pending.iter_mut().for_each(Vec::clear);
    }

    /// (Re)allocates the non-serialised buffers once, e.g. after restore.
    fn ensure_buffers(&mut self) {
        self.scratch.ensure();
        if self.pending.len() != self.trig.len() {
            self.pending = vec![Vec::new(); self.trig.len()];
        }
    }

    /// Runs this group's channels over the whole chunk. `cf`, if given,
    /// holds exactly this group's rows. Stops and returns `false` at the
    /// first block holding a non-finite sample (the caller rolls back).
    fn process(
        &mut self,
        input: &[&[f64]],
        cf: Option<ArrayViewMut2<'_, f64>>,
        ctx: &Ctx<'_>,
    ) -> bool {
        self.ensure_buffers();
        let nreal = self.trig.len();
        let n = input[self.first].len();
        let mut cf_rows: [Option<&mut [f64]>; LANES] = Default::default();
        if let Some(mut rest) = cf {
            for slot in cf_rows.iter_mut().take(nreal) {
                let (head, tail) = rest.split_at(Axis(0), 1);
                *slot = head.index_axis_move(Axis(0), 0).into_slice();
                rest = tail;
            }
        }
        let Scratch { buf, lane, zeros } = &mut self.scratch;
        let mut t0 = 0;
        while t0 < n {
            let m = (n - t0).min(BLOCK);
            let buf = &mut buf[..m];
            // Transpose in: buf[t][l] = input[first + l][t0 + t].
            let src: [&[f64]; LANES] = std::array::from_fn(|l| {
                if l < nreal {
                    &input[self.first + l][t0..t0 + m]
                } else {
                    &zeros[..m]
                }
            });
            for (t, dst) in buf.iter_mut().enumerate() {
                // SAFETY: every `src[l]` has length `m == buf.len() > t`.
                *dst = std::array::from_fn(|l| unsafe { *src[l].get_unchecked(t) });
            }
            if !all_finite(buf.as_flattened()) {
                return false;
            }
            let mut cf_max = [f64::NEG_INFINITY; LANES];
            let mut st = BlockState {
                secs: ctx.secs,
                zi: &mut self.zi,
                det: Detector {
                    sta: &mut self.sta,
                    lta: &mut self.lta,
                    k: ctx.k,
                    i0: ctx.i0 + t0 as u64,
                    cf_max: &mut cf_max,
                },
            };
            simd::run_block(ctx.isa, &mut st, buf);
            // Transpose out (to the caller's CF rows or the lane buffer) and
            // feed the triggers.
            for l in 0..nreal {
                let trig = &mut self.trig[l];
                let any_on = cf_max[l] >= ctx.on;
                let lane_cf: &[f64] = match &mut cf_rows[l] {
                    Some(r) => {
                        let dst = &mut r[t0..t0 + m];
                        deinterleave(buf, l, dst);
                        dst
                    }
                    None if !any_on && trig.active_onset().is_none() => {
                        // No trigger can open: only the last CF value matters.
                        trig.skip_below_on(m, buf[m - 1][l]);
                        continue;
                    }
                    None => {
                        let dst = &mut lane[..m];
                        deinterleave(buf, l, dst);
                        dst
                    }
                };
                trig.process_sparse(lane_cf, any_on, &mut self.pending[l]);
            }
            t0 += m;
        }
        true
    }
}

/// `dst[t] = buf[t][l]`.
#[inline]
fn deinterleave(buf: &[Lanes], l: usize, dst: &mut [f64]) {
    assert!(l < LANES);
    for (d, s) in dst.iter_mut().zip(buf) {
        *d = s[l];
    }
}
