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
//!    dropped, and any of them that differ from the samples kept (NaN equals
//!    NaN here) are counted as conflicts. A piece lying entirely within the
//!    segment with identical samples is an exact duplicate.
//! 4. A gap of `g` missing slots with `1 <= g <= max_gap_interp_samples` is
//!    filled by linear interpolation between the last sample before and the
//!    first sample after it: slot `i` (1-based) gets
//!    `y0 + (y1 - y0) * i / (g + 1)`. If either end is NaN (a missing
//!    reading), the filled samples are NaN. A larger gap closes the segment;
//!    the piece starts a new one at its own start time.
//!
//! The functions are pure and know nothing of where the pieces come from,
//! so the file sources and the stream assembler share them.

use std::fmt;

use crate::model::Segment;

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
    /// Gaps filled by linear interpolation.
    pub gaps_interpolated: u64,
    /// Samples created by that interpolation.
    pub samples_interpolated: u64,
    /// Gaps larger than the interpolation limit (each starts a new segment).
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
        self.gaps_interpolated += other.gaps_interpolated;
        self.samples_interpolated += other.samples_interpolated;
        self.gaps_split += other.gaps_split;
        self.segments += other.segments;
    }

    /// True when the pieces fitted together without anything to report.
    pub fn is_clean(&self) -> bool {
        self.duplicates_dropped == 0
            && self.overlaps_trimmed == 0
            && self.gaps_interpolated == 0
            && self.gaps_split == 0
    }
}

impl fmt::Display for AssembleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pieces ({} samples) -> {} segment(s); {} duplicate piece(s) dropped; \
             {} overlap(s) trimmed ({} samples, {} conflicting); \
             {} gap(s) interpolated ({} samples); {} gap(s) split",
            self.pieces,
            self.samples_in,
            self.segments,
            self.duplicates_dropped,
            self.overlaps_trimmed,
            self.overlap_samples_dropped,
            self.overlap_conflicts,
            self.gaps_interpolated,
            self.samples_interpolated,
            self.gaps_split
        )
    }
}

fn same_sample(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Assembles the pieces of one sensor sampled at `sample_rate_hz` into
/// contiguous segments in time order (see the module documentation for the
/// rules). Empty pieces are ignored.
///
/// # Panics
///
/// If `sample_rate_hz` is not a positive finite number (irregular series
/// have no sample grid to assemble on).
pub fn assemble<I>(
    pieces: I,
    sample_rate_hz: f64,
    max_gap_interp_samples: u64,
) -> (Vec<Segment>, AssembleReport)
where
    I: IntoIterator<Item = Piece>,
{
    assert!(
        sample_rate_hz.is_finite() && sample_rate_hz > 0.0,
        "assemble needs a positive sample rate, got {sample_rate_hz}"
    );
    let period_ns = 1e9 / sample_rate_hz;
    let mut pieces: Vec<Piece> = pieces
        .into_iter()
        .filter(|p| !p.samples.is_empty())
        .collect();
    pieces.sort_by_key(|p| p.start_ns);

    let mut report = AssembleReport::default();
    let mut segments: Vec<Segment> = Vec::new();
    let mut current: Option<Segment> = None;

    for piece in pieces {
        report.pieces += 1;
        report.samples_in += piece.samples.len() as u64;
        let Some(seg) = current.as_mut() else {
            current = Some(Segment {
                start_ns: piece.start_ns,
                samples: piece.samples,
                times_ns: Vec::new(),
            });
            continue;
        };
        let held = seg.samples.len() as i64;
        // Slot of the piece's first sample on the segment's grid. Offsets
        // are small enough (< 2^53 ns, ~104 days) for exact f64 arithmetic;
        // beyond that the rounding error stays far below half a period.
        let slot = ((piece.start_ns - seg.start_ns) as f64 / period_ns).round() as i64;
        if slot < held {
            // Overlap: keep the earlier data, append what extends beyond it.
            let overlap = ((held - slot) as usize).min(piece.samples.len());
            let kept = &seg.samples[slot as usize..slot as usize + overlap];
            let conflicts = kept
                .iter()
                .zip(&piece.samples[..overlap])
                .filter(|(a, b)| !same_sample(**a, **b))
                .count();
            if overlap == piece.samples.len() && conflicts == 0 {
                report.duplicates_dropped += 1;
                continue;
            }
            report.overlaps_trimmed += 1;
            report.overlap_samples_dropped += overlap as u64;
            report.overlap_conflicts += conflicts as u64;
            seg.samples.extend_from_slice(&piece.samples[overlap..]);
        } else if slot == held {
            seg.samples.extend_from_slice(&piece.samples);
        } else {
            let missing = (slot - held) as u64;
            if missing <= max_gap_interp_samples {
                let y0 = *seg.samples.last().expect("segments are never empty");
                let y1 = piece.samples[0];
                let step = (y1 - y0) / (missing + 1) as f64;
                seg.samples
                    .extend((1..=missing).map(|i| y0 + step * i as f64));
                report.gaps_interpolated += 1;
                report.samples_interpolated += missing;
                seg.samples.extend_from_slice(&piece.samples);
            } else {
                report.gaps_split += 1;
                segments.push(current.take().expect("current segment exists"));
                current = Some(Segment {
                    start_ns: piece.start_ns,
                    samples: piece.samples,
                    times_ns: Vec::new(),
                });
            }
        }
    }
    segments.extend(current);
    report.segments = segments.len() as u64;
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
            vec![
                Piece::new(3_000_000_000, vec![3.0]),
                Piece::new(0, vec![0.0, 1.0, 2.0]),
            ],
            1.0,
            0,
        );
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].start_ns, 0);
        assert_eq!(segs[0].samples, vec![0.0, 1.0, 2.0, 3.0]);
        assert!(rep.is_clean());
    }

    #[test]
    fn jitter_below_half_a_period_snaps() {
        // 100 Hz: period 10 ms; 4.9 ms late still continues the segment.
        let (segs, _) = assemble(
            vec![
                Piece::new(0, vec![1.0; 10]),
                Piece::new(104_900_000, vec![2.0]),
            ],
            100.0,
            0,
        );
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].samples.len(), 11);
        // 5.1 ms late is a gap of one sample at 100 Hz: rounds to slot 11.
        let (segs, rep) = assemble(
            vec![
                Piece::new(0, vec![1.0; 10]),
                Piece::new(105_100_000, vec![2.0]),
            ],
            100.0,
            0,
        );
        assert_eq!((segs.len(), rep.gaps_split), (2, 1));
    }
}
