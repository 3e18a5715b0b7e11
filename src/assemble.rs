//! Assembly of timestamped pieces of one sensor into contiguous segments.
//!
//! Sources deliver a sensor's data as pieces (a MiniSEED record, a run of
//! CSV rows, a Kafka packet): a start time and evenly spaced samples at the
//! sensor's rate. [`assemble`] turns any collection of them into the
//! [`Segment`]s of a [`crate::model::Series`]:
//!
//! 1. Pieces are sorted by start time (stable: pieces starting at the same
//!    time keep the order they were given in).
//! 2. A piece continues the current segment when its first sample falls on
//!    the segment's next sample slot, within half a sample period (as ObsPy
//!    and libmseed). Every piece is snapped to the segment's sample grid:
//!    its start is rounded to the nearest slot of the segment's grid.
//! 3. A piece that starts on an already filled slot overlaps the segment.
//!    The earlier data are kept: the piece's overlapping samples are
//!    dropped, and any of them that differ from the samples kept (a NaN
//!    equals a NaN here, but a reading never equals a slot with no
//!    reading) are counted as conflicts. A piece lying entirely within the
//!    segment with identical samples is an exact duplicate.
//! 4. A gap of `g` missing slots with `1 <= g <= max_gap_interp_samples`
//!    stays in the segment as `g` slots marked [`NOT_RECORDED`]: QC leaves
//!    them out (it flags the observations as recorded, as ioos_qc does, and
//!    `time_gap` sees the gap), chains with trace operators interpolate
//!    them linearly (see `chain`). A larger gap closes the segment; the
//!    piece starts a new one at its own start time.
//!
//!    Marking the slots here rather than interpolating or dropping them
//!    keeps one grid for both kinds of chain, and one meaning for a slot
//!    with no reading whether it is a row missing from a CSV file, a gap
//!    between records, or a packet that never arrived, so the stream gives
//!    what batch gives. A reading recorded as NaN (an empty CSV cell, a NaN
//!    in a packet) is an observation and stays NaN.
//!
//! The functions are pure and know nothing of where the pieces come from,
//! so the file sources and the stream assembler share them.

use std::fmt;

use crate::model::{Segment, NOT_RECORDED};

/// Evenly spaced samples of one sensor, starting at `start_ns`.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub start_ns: i64,
    pub samples: Vec<f64>,
}

impl Piece {
    pub fn new(start_ns: i64, samples: Vec<f64>) -> Self {
        Piece { start_ns, samples }
    }
}

/// What [`assemble`] did to the pieces of one sensor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssembleReport {
    /// Non-empty pieces given.
    pub pieces: u64,
    /// Samples in the given pieces.
    pub samples_in: u64,
    /// Pieces dropped because they repeat data already held, sample for sample.
    pub duplicates_dropped: u64,
    /// Pieces that overlapped earlier data (not counting exact duplicates).
    pub overlaps_trimmed: u64,
    /// Samples dropped from those overlapping pieces.
    pub overlap_samples_dropped: u64,
    /// Dropped overlapping samples whose values differed from the ones kept.
    pub overlap_conflicts: u64,
    /// Gaps kept in a segment as slots with no reading ([`NOT_RECORDED`]).
    pub gaps_filled: u64,
    /// Slots with no reading those gaps put in.
    pub samples_missing: u64,
    /// Gaps larger than `max_gap_interp_samples` (each starts a new segment).
    pub gaps_split: u64,
    /// Segments produced.
    pub segments: u64,
}

impl AssembleReport {
    /// Adds another report's counts to this one.
    pub fn add(&mut self, other: &AssembleReport) {
        self.pieces += other.pieces;
        self.samples_in += other.samples_in;
        self.duplicates_dropped += other.duplicates_dropped;
        self.overlaps_trimmed += other.overlaps_trimmed;
        self.overlap_samples_dropped += other.overlap_samples_dropped;
        self.overlap_conflicts += other.overlap_conflicts;
        self.gaps_filled += other.gaps_filled;
        self.samples_missing += other.samples_missing;
        self.gaps_split += other.gaps_split;
        self.segments += other.segments;
    }

    /// True when the pieces fitted together without anything to report.
    pub fn is_clean(&self) -> bool {
        self.duplicates_dropped == 0
            && self.overlaps_trimmed == 0
            && self.gaps_filled == 0
            && self.gaps_split == 0
    }
}

impl fmt::Display for AssembleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pieces ({} samples) -> {} segment(s); {} duplicate piece(s) dropped; \
             {} overlap(s) trimmed ({} samples, {} conflicting); \
             {} gap(s) kept as slots with no reading ({} samples); {} gap(s) split",
            self.pieces,
            self.samples_in,
            self.segments,
            self.duplicates_dropped,
            self.overlaps_trimmed,
            self.overlap_samples_dropped,
            self.overlap_conflicts,
            self.gaps_filled,
            self.samples_missing,
            self.gaps_split
        )
    }
}

fn same_sample(a: f64, b: f64) -> bool {
    use crate::model::is_recorded;
    a == b || (a.is_nan() && b.is_nan() && is_recorded(a) == is_recorded(b))
}

/// Where [`SegmentCursor::place`] put a piece.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// The first piece, or one after a gap larger than the limit: a new
    /// segment starts at `start_ns` with these samples.
    NewSegment { start_ns: i64, samples: Vec<f64> },
    /// These samples (a gap's slots with no reading first, then the piece's own
    /// after any overlap) continue the current segment.
    Continue(Vec<f64>),
    /// The piece held nothing new (an exact duplicate, or an overlap
    /// entirely within the data already placed).
    Dropped,
}

/// Where a piece goes, without its samples: what [`SegmentCursor`]
/// decided, for callers that copy the samples themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The piece starts a new segment at its own start time.
    New,
    /// `missing` slots with no reading ([`NOT_RECORDED`]), then the piece's samples from
    /// `skip` on (the ones before overlap data already placed), continue
    /// the current segment.
    Continue { missing: u64, skip: usize },
    /// Nothing of the piece is used.
    Dropped,
}

/// The incremental form of [`assemble`]: pieces are given in time order,
/// one at a time, and each is placed at once. The cursor remembers the
/// segment's grid and the last `tail` samples (to compare overlaps), not
/// the whole segment, so a stream can run through it for ever.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentCursor {
    period_ns: f64,
    max_gap: u64,
    seg_start_ns: i64,
    /// Samples in the current segment (0 before the first piece).
    held: u64,
    tail: std::collections::VecDeque<f64>,
    /// 0: no tail kept (the caller holds the segment and answers for it).
    tail_cap: usize,
}

impl SegmentCursor {
    /// A cursor for a sensor sampled at `sample_rate_hz` (finite, > 0)
    /// that keeps the last `tail_cap` samples; overlaps reaching further
    /// back than that are compared only over the samples kept.
    pub fn new(sample_rate_hz: f64, max_gap_interp_samples: u64, tail_cap: usize) -> SegmentCursor {
        let mut c = SegmentCursor::without_tail(sample_rate_hz, max_gap_interp_samples);
        c.tail_cap = tail_cap.max(1);
        c
    }

    /// A cursor that keeps no samples: for [`assemble`], which holds the
    /// whole segment and gives [`SegmentCursor::decide`] its samples.
    fn without_tail(sample_rate_hz: f64, max_gap_interp_samples: u64) -> SegmentCursor {
        assert!(
            sample_rate_hz.is_finite() && sample_rate_hz > 0.0,
            "assembly needs a positive sample rate, got {sample_rate_hz}"
        );
        SegmentCursor {
            period_ns: 1e9 / sample_rate_hz,
            max_gap: max_gap_interp_samples,
            seg_start_ns: 0,
            held: 0,
            tail: std::collections::VecDeque::new(),
            tail_cap: 0,
        }
    }

    /// Keeps the last `tail_cap` samples from now on (at least one);
    /// a smaller cap drops the oldest ones at once.
    pub fn set_tail_cap(&mut self, tail_cap: usize) {
        self.tail_cap = tail_cap.max(1);
        let excess = self.tail.len().saturating_sub(self.tail_cap);
        self.tail.drain(..excess);
    }

    /// Samples the tail holds now (for state-size checks).
    pub fn tail_len(&self) -> usize {
        self.tail.len()
    }

    /// Time just after the last placed sample (the next slot).
    pub fn next_ns(&self) -> Option<i64> {
        (self.held > 0)
            .then(|| self.seg_start_ns + (self.held as f64 * self.period_ns).round() as i64)
    }

    /// Slot of `start_ns` on the current segment's grid.
    fn slot(&self, start_ns: i64) -> i64 {
        // Offsets are small enough (< 2^53 ns, ~104 days) for exact f64
        // arithmetic; beyond that the error stays far below half a period.
        ((start_ns - self.seg_start_ns) as f64 / self.period_ns).round() as i64
    }

    /// True if a piece starting at `start_ns` would begin before the next
    /// free slot (it overlaps data already placed).
    pub fn overlaps(&self, start_ns: i64) -> bool {
        self.held > 0 && self.slot(start_ns) < self.held as i64
    }

    /// The sample `from_head` places back from the head (1 = the last one
    /// placed), if the tail still holds it.
    fn tail_sample(&self, from_head: usize) -> Option<f64> {
        (from_head <= self.tail.len()).then(|| self.tail[self.tail.len() - from_head])
    }

    /// For a piece whose first sample falls on `slot` (before the head):
    /// how many of its samples overlap placed data, and how many of those
    /// differ from the placed samples `recent` knows (see
    /// [`SegmentCursor::decide`]).
    fn overlap_conflicts(
        &self,
        slot: i64,
        samples: &[f64],
        recent: impl Fn(usize) -> Option<f64>,
    ) -> (usize, usize) {
        let back = (self.held as i64 - slot) as usize; // distance of the piece's start from the head
        let overlap = back.min(samples.len());
        let conflicts = (0..overlap)
            .filter(|&k| recent(back - k).is_some_and(|kept| !same_sample(kept, samples[k])))
            .count();
        (overlap, conflicts)
    }

    /// True if the piece lies within the data already placed and equals it
    /// (a re-sent packet).
    pub fn is_duplicate(&self, start_ns: i64, samples: &[f64]) -> bool {
        if self.held == 0 || samples.is_empty() {
            return false;
        }
        let slot = self.slot(start_ns);
        if slot >= self.held as i64 {
            return false;
        }
        let back = (self.held as i64 - slot) as usize;
        // Only a piece the tail can compare in full is a duplicate; one
        // reaching further back is late (stored, flagged), never dropped
        // unseen.
        if back > self.tail.len() {
            return false;
        }
        let (overlap, conflicts) = self.overlap_conflicts(slot, samples, |k| self.tail_sample(k));
        overlap == samples.len() && conflicts == 0
    }

    /// Decides where the piece (`start_ns`, `samples`, non-empty) goes and
    /// counts it in `report`; [`SegmentCursor::commit`] then moves the
    /// cursor past it. `recent(k)` is the placed sample `k` places back
    /// from the head (1 = the last one), `None` if unknown; overlapping
    /// samples are compared with it.
    pub fn decide(
        &self,
        start_ns: i64,
        samples: &[f64],
        recent: impl Fn(usize) -> Option<f64>,
        report: &mut AssembleReport,
    ) -> Slot {
        if samples.is_empty() {
            return Slot::Dropped;
        }
        report.pieces += 1;
        report.samples_in += samples.len() as u64;
        if self.held == 0 {
            report.segments += 1;
            return Slot::New;
        }
        let held = self.held as i64;
        let slot = self.slot(start_ns);
        if slot < held {
            // Overlap: keep the earlier data, append what extends beyond it.
            let (overlap, conflicts) = self.overlap_conflicts(slot, samples, recent);
            if overlap == samples.len() && conflicts == 0 {
                report.duplicates_dropped += 1;
                return Slot::Dropped;
            }
            report.overlaps_trimmed += 1;
            report.overlap_samples_dropped += overlap as u64;
            report.overlap_conflicts += conflicts as u64;
            if overlap == samples.len() {
                return Slot::Dropped;
            }
            Slot::Continue {
                missing: 0,
                skip: overlap,
            }
        } else {
            let missing = (slot - held) as u64;
            if missing > self.max_gap {
                report.gaps_split += 1;
                report.segments += 1;
                return Slot::New;
            }
            if missing > 0 {
                report.gaps_filled += 1;
                report.samples_missing += missing;
            }
            Slot::Continue { missing, skip: 0 }
        }
    }

    /// Moves the cursor past a piece placed as `slot` said.
    pub fn commit(&mut self, slot: Slot, start_ns: i64, samples: &[f64]) {
        match slot {
            Slot::New => {
                self.seg_start_ns = start_ns;
                self.held = 0;
                self.tail.clear();
                self.remember(samples);
            }
            Slot::Continue { missing, skip } => {
                self.remember_missing(missing);
                self.remember(&samples[skip..]);
            }
            Slot::Dropped => {}
        }
    }

    fn remember(&mut self, samples: &[f64]) {
        self.held += samples.len() as u64;
        let keep = samples.len().min(self.tail_cap);
        let excess = (self.tail.len() + keep).saturating_sub(self.tail_cap);
        self.tail.drain(..excess);
        self.tail.extend(&samples[samples.len() - keep..]);
    }

    fn remember_missing(&mut self, n: u64) {
        self.held += n;
        let keep = usize::try_from(n).unwrap_or(usize::MAX).min(self.tail_cap);
        let excess = (self.tail.len() + keep).saturating_sub(self.tail_cap);
        self.tail.drain(..excess);
        self.tail.extend(std::iter::repeat_n(NOT_RECORDED, keep));
    }

    /// Places the next piece (pieces must come in start-time order).
    pub fn place(&mut self, piece: Piece, report: &mut AssembleReport) -> Placement {
        let slot = self.decide(
            piece.start_ns,
            &piece.samples,
            |k| self.tail_sample(k),
            report,
        );
        self.commit(slot, piece.start_ns, &piece.samples);
        match slot {
            Slot::New => Placement::NewSegment {
                start_ns: piece.start_ns,
                samples: piece.samples,
            },
            Slot::Continue {
                missing: 0,
                skip: 0,
            } => Placement::Continue(piece.samples),
            Slot::Continue { missing, skip } => {
                let mut out = vec![NOT_RECORDED; missing as usize];
                out.extend_from_slice(&piece.samples[skip..]);
                Placement::Continue(out)
            }
            Slot::Dropped => Placement::Dropped,
        }
    }
}

/// Pieces of one sensor held back to back in one buffer: what a file
/// reader fills, record after record, with no allocation per record. When
/// the pieces already form one contiguous segment (the usual archive),
/// [`assemble`] hands the buffer over as the segment without copying it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PieceBuf {
    samples: Vec<f64>,
    spans: Vec<Span>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    start_ns: i64,
    at: usize,
    len: usize,
}

impl PieceBuf {
    /// Appends a piece starting at `start_ns` whose samples `fill` pushes
    /// onto the buffer (it must only push). An empty piece is ignored.
    pub fn push_with(&mut self, start_ns: i64, fill: impl FnOnce(&mut Vec<f64>)) {
        let at = self.samples.len();
        fill(&mut self.samples);
        let len = self.samples.len() - at;
        if len > 0 {
            self.spans.push(Span { start_ns, at, len });
        }
    }

    /// Appends a piece.
    pub fn push(&mut self, start_ns: i64, samples: &[f64]) {
        self.push_with(start_ns, |buf| buf.extend_from_slice(samples));
    }

    /// Appends one sample to the last piece (a new piece if there is none).
    pub fn extend_last(&mut self, start_ns_if_new: i64, sample: f64) {
        match self.spans.last_mut() {
            Some(last) => {
                last.len += 1;
                self.samples.push(sample);
            }
            None => self.push(start_ns_if_new, &[sample]),
        }
    }

    /// Number of (non-empty) pieces.
    pub fn pieces(&self) -> usize {
        self.spans.len()
    }

    /// Number of samples over all pieces.
    pub fn samples(&self) -> usize {
        self.samples.len()
    }

    fn piece(&self, span: &Span) -> &[f64] {
        &self.samples[span.at..span.at + span.len]
    }
}

impl FromIterator<Piece> for PieceBuf {
    fn from_iter<I: IntoIterator<Item = Piece>>(iter: I) -> Self {
        let mut buf = PieceBuf::default();
        for p in iter {
            buf.push(p.start_ns, &p.samples);
        }
        buf
    }
}

/// A run of a segment under assembly: samples of one buffer, or missing
/// readings.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Run {
    Samples { part: usize, from: usize, to: usize },
    Missing(usize),
}

impl Run {
    fn len(&self) -> usize {
        match *self {
            Run::Samples { from, to, .. } => to - from,
            Run::Missing(n) => n,
        }
    }
}

/// The sample `from_head` places back from the end of `runs` (1 = last).
fn sample_back(parts: &[PieceBuf], runs: &[Run], mut from_head: usize) -> Option<f64> {
    for run in runs.iter().rev() {
        let n = run.len();
        if from_head <= n {
            return Some(match *run {
                Run::Samples { part, to, .. } => parts[part].samples[to - from_head],
                Run::Missing(_) => NOT_RECORDED,
            });
        }
        from_head -= n;
    }
    None
}

/// Assembles the pieces of one sensor sampled at `sample_rate_hz` into
/// contiguous segments in time order (see the module documentation for the
/// rules). `parts` are taken in order, and the pieces within each in the
/// order they were pushed, for the stable sort.
///
/// # Panics
///
/// If `sample_rate_hz` is not a positive finite number (irregular series
/// have no sample grid to assemble on).
pub fn assemble(
    mut parts: Vec<PieceBuf>,
    sample_rate_hz: f64,
    max_gap_interp_samples: u64,
) -> (Vec<Segment>, AssembleReport) {
    let mut order: Vec<(i64, usize, Span)> = parts
        .iter()
        .enumerate()
        .flat_map(|(p, buf)| buf.spans.iter().map(move |s| (s.start_ns, p, *s)))
        .collect();
    // A file's records usually come in time order already.
    if !order.is_sorted_by_key(|o| o.0) {
        order.sort_by_key(|o| o.0);
    }
    let mut cursor = SegmentCursor::without_tail(sample_rate_hz, max_gap_interp_samples);
    let mut report = AssembleReport::default();
    // Each segment as runs over the parts' buffers, copied out at the end.
    let mut plans: Vec<(i64, Vec<Run>)> = Vec::new();
    for (start_ns, part, span) in order {
        let samples = parts[part].piece(&span);
        let runs: &[Run] = plans.last().map_or(&[], |p| &p.1);
        let slot = cursor.decide(
            start_ns,
            samples,
            |k| sample_back(&parts, runs, k),
            &mut report,
        );
        cursor.commit(slot, start_ns, samples);
        let run = |skip: usize| Run::Samples {
            part,
            from: span.at + skip,
            to: span.at + span.len,
        };
        match slot {
            Slot::New => plans.push((start_ns, vec![run(0)])),
            Slot::Continue { missing, skip } => {
                let runs = &mut plans.last_mut().expect("a segment was started").1;
                if missing > 0 {
                    runs.push(Run::Missing(missing as usize));
                }
                match (runs.last_mut(), run(skip)) {
                    (
                        Some(Run::Samples { part: p, to, .. }),
                        Run::Samples {
                            part: q,
                            from,
                            to: end,
                        },
                    ) if *p == q && *to == from => *to = end,
                    (_, r) => runs.push(r),
                }
            }
            Slot::Dropped => {}
        }
    }
    let segments = plans
        .into_iter()
        .map(|(start_ns, runs)| {
            let samples = match runs[..] {
                // The whole buffer of one part, in order: no copy.
                [Run::Samples { part, from: 0, to }] if to == parts[part].samples.len() => {
                    std::mem::take(&mut parts[part].samples)
                }
                _ => {
                    let mut v = Vec::with_capacity(runs.iter().map(Run::len).sum());
                    for r in &runs {
                        match *r {
                            Run::Samples { part, from, to } => {
                                v.extend_from_slice(&parts[part].samples[from..to])
                            }
                            Run::Missing(n) => v.extend(std::iter::repeat_n(NOT_RECORDED, n)),
                        }
                    }
                    v
                }
            };
            Segment {
                start_ns,
                samples,
                times_ns: Vec::new(),
            }
        })
        .collect();
    (segments, report)
}

/// Relative tolerance under which two sample rates count as the same
/// (libmseed's `MS_ISRATETOLERABLE`).
pub const RATE_TOLERANCE: f64 = 1e-4;

/// True when two sample rates are the same within [`RATE_TOLERANCE`].
pub fn same_rate(a: f64, b: f64) -> bool {
    (1.0 - a / b).abs() < RATE_TOLERANCE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_pieces_join() {
        let (segs, rep) = assemble(
            vec![[
                Piece::new(3_000_000_000, vec![3.0]),
                Piece::new(0, vec![0.0, 1.0, 2.0]),
            ]
            .into_iter()
            .collect()],
            1.0,
            0,
        );
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].start_ns, 0);
        assert_eq!(segs[0].samples, vec![0.0, 1.0, 2.0, 3.0]);
        assert!(rep.is_clean());
    }

    #[test]
    fn a_reading_over_a_slot_with_no_reading_is_a_conflict() {
        assert!(same_sample(f64::NAN, f64::NAN));
        assert!(!same_sample(f64::NAN, NOT_RECORDED));
        assert!(same_sample(NOT_RECORDED, NOT_RECORDED));
        assert!(!same_sample(1.0, NOT_RECORDED));
    }

    #[test]
    fn jitter_below_half_a_period_snaps() {
        // 100 Hz: period 10 ms; 4.9 ms late still continues the segment.
        let (segs, _) = assemble(
            vec![[
                Piece::new(0, vec![1.0; 10]),
                Piece::new(104_900_000, vec![2.0]),
            ]
            .into_iter()
            .collect()],
            100.0,
            0,
        );
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].samples.len(), 11);
        // 5.1 ms late is a gap of one sample at 100 Hz: rounds to slot 11.
        let (segs, rep) = assemble(
            vec![[
                Piece::new(0, vec![1.0; 10]),
                Piece::new(105_100_000, vec![2.0]),
            ]
            .into_iter()
            .collect()],
            100.0,
            0,
        );
        assert_eq!((segs.len(), rep.gaps_split), (2, 1));
    }
}
