//! Rank 0's per-sensor assembly of a packet stream: packets wait in a
//! reorder buffer until the sensor's data has moved `reorder_window_s`
//! past them, then go in time order through the same [`SegmentCursor`] as
//! batch assembly (duplicates dropped, overlaps trimmed, small gaps
//! interpolated, large gaps start a new segment). So arrival order within
//! the window does not change the result, and stream ≡ batch.
//!
//! A packet that arrives after data later than it has been released is
//! *late*: it is stored raw (flagged) but not processed; an exact re-send
//! of released data is a duplicate and dropped.

use super::work::{Chunk, SensorWork};
use crate::assemble::{AssembleReport, Piece, Placement, SegmentCursor};
use crate::model::SensorPacket;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happened to an offered packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Buffered; it will be processed.
    Accepted,
    /// Behind the released data: store raw, flagged late.
    Late,
    /// An exact re-send of released data.
    Duplicate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SensorBuf {
    rate: f64,
    cursor: Option<SegmentCursor>,
    /// Irregular series: time of the last released reading.
    last_time_ns: Option<i64>,
    /// Waiting packets by (start time, arrival number).
    pending: BTreeMap<(i64, u64), SensorPacket>,
    /// Latest packet end time seen: the sensor's watermark.
    max_end_ns: i64,
}

/// Reorder buffers and assembly state of every sensor (checkpointed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reorder {
    window_ns: i64,
    max_gap: u64,
    tail_cap: usize,
    arrivals: u64,
    sensors: BTreeMap<String, SensorBuf>,
    #[serde(skip)]
    pub report: AssembleReport,
    #[serde(skip)]
    pub late: u64,
}

fn end_ns(p: &SensorPacket) -> i64 {
    if p.sample_rate_hz > 0.0 {
        p.start_time_ns + (p.samples.len() as f64 * 1e9 / p.sample_rate_hz).round() as i64
    } else {
        p.start_time_ns
    }
}

impl Reorder {
    pub fn new(
        reorder_window_s: f64,
        max_gap_interp_samples: u64,
        max_samples_per_packet: usize,
    ) -> Reorder {
        Reorder {
            window_ns: (reorder_window_s * 1e9).round() as i64,
            max_gap: max_gap_interp_samples,
            tail_cap: max_samples_per_packet,
            arrivals: 0,
            sensors: BTreeMap::new(),
            report: AssembleReport::default(),
            late: 0,
        }
    }

    /// Number of packets waiting in reorder buffers.
    pub fn pending(&self) -> usize {
        self.sensors.values().map(|s| s.pending.len()).sum()
    }

    /// Takes a validated packet.
    pub fn offer(&mut self, p: &SensorPacket) -> Offer {
        let buf = self
            .sensors
            .entry(p.sensor_id.clone())
            .or_insert_with(|| SensorBuf {
                rate: p.sample_rate_hz,
                cursor: None,
                last_time_ns: None,
                pending: BTreeMap::new(),
                max_end_ns: i64::MIN,
            });
        // Behind what was released already?
        if buf.rate == p.sample_rate_hz {
            if let Some(c) = &buf.cursor {
                if c.overlaps(p.start_time_ns) {
                    return if c.is_duplicate(p.start_time_ns, &p.samples) {
                        Offer::Duplicate
                    } else {
                        self.late += 1;
                        Offer::Late
                    };
                }
            }
            if p.sample_rate_hz == 0.0 && buf.last_time_ns.is_some_and(|t| p.start_time_ns <= t) {
                self.late += 1;
                return Offer::Late;
            }
        }
        buf.max_end_ns = buf.max_end_ns.max(end_ns(p));
        self.arrivals += 1;
        buf.pending
            .insert((p.start_time_ns, self.arrivals), p.clone());
        Offer::Accepted
    }

    /// Releases every packet that is `reorder_window_s` behind its sensor's
    /// watermark (all of them when `flush`), as chunks in time order.
    pub fn release(&mut self, flush: bool) -> Vec<SensorWork> {
        let mut out = Vec::new();
        for (sensor, buf) in self.sensors.iter_mut() {
            let horizon = if flush {
                i64::MAX
            } else {
                buf.max_end_ns.saturating_sub(self.window_ns)
            };
            let mut chunks = Vec::new();
            while let Some(entry) = buf.pending.first_entry() {
                if entry.key().0 > horizon {
                    break;
                }
                let p = entry.remove();
                place(
                    buf,
                    p,
                    self.max_gap,
                    self.tail_cap,
                    &mut self.report,
                    &mut chunks,
                );
            }
            if !chunks.is_empty() {
                out.push(SensorWork {
                    sensor: sensor.clone(),
                    chunks,
                });
            }
        }
        out
    }
}

fn place(
    buf: &mut SensorBuf,
    p: SensorPacket,
    max_gap: u64,
    tail_cap: usize,
    report: &mut AssembleReport,
    chunks: &mut Vec<Chunk>,
) {
    let rate = p.sample_rate_hz;
    if rate != buf.rate {
        // A new sampling rate: a new series for the chains.
        buf.rate = rate;
        buf.cursor = None;
        buf.last_time_ns = None;
    }
    if rate == 0.0 {
        // Irregular readings: one reading per packet, in time order.
        if buf.last_time_ns.is_some_and(|t| p.start_time_ns <= t) {
            report.duplicates_dropped += 1;
            return;
        }
        if buf.last_time_ns.is_none() {
            chunks.push(Chunk::Segment {
                start_ns: p.start_time_ns,
                sample_rate_hz: 0.0,
            });
        }
        buf.last_time_ns = Some(p.start_time_ns);
        let times = vec![p.start_time_ns; p.samples.len()];
        push_samples(chunks, p.samples, times);
        return;
    }
    let cursor = buf
        .cursor
        .get_or_insert_with(|| SegmentCursor::new(rate, max_gap, tail_cap));
    match cursor.place(Piece::new(p.start_time_ns, p.samples), report) {
        Placement::NewSegment { start_ns, samples } => {
            chunks.push(Chunk::Segment {
                start_ns,
                sample_rate_hz: rate,
            });
            push_samples(chunks, samples, Vec::new());
        }
        Placement::Continue(samples) => push_samples(chunks, samples, Vec::new()),
        Placement::Dropped => {}
    }
}

/// Appends samples, merging with a preceding samples chunk.
fn push_samples(chunks: &mut Vec<Chunk>, samples: Vec<f64>, times: Vec<i64>) {
    if let Some(Chunk::Samples {
        samples: s,
        times_ns: t,
    }) = chunks.last_mut()
    {
        s.extend(samples);
        t.extend(times);
    } else {
        chunks.push(Chunk::Samples {
            samples,
            times_ns: times,
        });
    }
}
