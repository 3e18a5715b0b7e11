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
//!
//! State is bounded by the sensors and the window, never by the job's age
//! (docs/architecture.md, "Bounded state"): the samples kept to compare
//! overlaps are the sensor's largest packet or `reorder_window_s` of data,
//! whichever is more — what an overlap or re-send inside the window can
//! reach; a sensor whose data fall `retire_after_s` behind its partition's
//! data time is released in full and forgotten.

use super::work::{Chunk, SensorWork};
use crate::assemble::{AssembleReport, Piece, Placement, SegmentCursor};
use crate::model::SensorPacket;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// Kafka partition its packets last came on (the clock it is judged
    /// silent by).
    partition: i32,
    /// Most samples in one packet of this sensor so far.
    largest: usize,
    rate: f64,
    cursor: Option<SegmentCursor>,
    /// Irregular series: time of the last released reading.
    last_time_ns: Option<i64>,
    /// Waiting packets by (start time, arrival number).
    /// Shared with the raw store's copy of the micro-batch they came in.
    pending: BTreeMap<(i64, u64), Arc<SensorPacket>>,
    /// Latest packet end time seen: the sensor's watermark.
    max_end_ns: i64,
    /// The data time of its partition's clock when its last packet came
    /// (or its own data time, if later): silence is measured from here, so
    /// a sensor whose backlog is read behind its peers is not silent.
    seen_at_ns: i64,
}

/// Reorder buffers and assembly state of every sensor (checkpointed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reorder {
    window_ns: i64,
    max_gap: u64,
    tail_cap: usize,
    arrivals: u64,
    sensors: BTreeMap<String, SensorBuf>,
    /// Per partition: the end times of its last [`CLOCK_PACKETS`] accepted
    /// packets, and their median as of the last release — the partition's
    /// data-time clock (see [`Reorder::partition_clocks`]).
    recent: BTreeMap<i32, std::collections::VecDeque<i64>>,
    clocks: BTreeMap<i32, i64>,
    /// The clocks sensors are judged by (see [`Reorder::release`]).
    judged: BTreeMap<i32, i64>,
    #[serde(skip)]
    pub report: AssembleReport,
    #[serde(skip)]
    pub late: u64,
}

/// Packets whose end times make a partition's clock.
const CLOCK_PACKETS: usize = 31;

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
            recent: BTreeMap::new(),
            clocks: BTreeMap::new(),
            judged: BTreeMap::new(),
            report: AssembleReport::default(),
            late: 0,
        }
    }

    /// Number of packets waiting in reorder buffers.
    pub fn pending(&self) -> usize {
        self.sensors.values().map(|s| s.pending.len()).sum()
    }

    /// Sensors with state here.
    pub fn sensors(&self) -> usize {
        self.sensors.len()
    }

    /// Samples held over all sensors: overlap tails and waiting packets
    /// (for state-size checks).
    pub fn samples_held(&self) -> usize {
        self.sensors
            .values()
            .map(|b| {
                b.cursor.as_ref().map_or(0, |c| c.tail_len())
                    + b.pending.values().map(|p| p.samples.len()).sum::<usize>()
            })
            .sum()
    }

    /// Start of the earliest packet still waiting among the sensors that
    /// `select` picks: a sensor seen only here so far (new, or back after
    /// retirement) may still trigger from there on.
    pub fn earliest_pending(&self, select: impl Fn(&str) -> bool) -> Option<i64> {
        self.sensors
            .iter()
            .filter(|(s, _)| select(s))
            .filter_map(|(_, b)| b.pending.first_key_value().map(|(k, _)| k.0))
            .min()
    }

    /// Takes a validated packet read from Kafka partition `partition`.
    pub fn offer(&mut self, p: &Arc<SensorPacket>, partition: i32) -> Offer {
        let clock = self.judged.get(&partition).copied();
        let seen_at = clock.unwrap_or(i64::MIN).max(end_ns(p));
        // A known sensor (nearly every packet) costs no key allocation.
        if !self.sensors.contains_key(&p.sensor_id) {
            self.sensors.insert(
                p.sensor_id.clone(),
                SensorBuf {
                    partition,
                    largest: 0,
                    rate: p.sample_rate_hz,
                    cursor: None,
                    last_time_ns: None,
                    pending: BTreeMap::new(),
                    max_end_ns: i64::MIN,
                    seen_at_ns: i64::MIN,
                },
            );
        }
        let buf = self.sensors.get_mut(&p.sensor_id).expect("inserted above");
        // Any packet, late or repeated too, shows the sensor is alive.
        buf.seen_at_ns = buf.seen_at_ns.max(seen_at);
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
        buf.partition = partition;
        buf.largest = buf.largest.max(p.samples.len());
        let ends = self.recent.entry(partition).or_default();
        if ends.len() == CLOCK_PACKETS {
            ends.pop_front();
        }
        ends.push_back(end_ns(p));
        buf.max_end_ns = buf.max_end_ns.max(end_ns(p));
        self.arrivals += 1;
        buf.pending
            .insert((p.start_time_ns, self.arrivals), Arc::clone(p));
        Offer::Accepted
    }

    /// The data time of each partition: the median end time of its last
    /// [`CLOCK_PACKETS`] accepted packets, never going back — robust to a packet with a wild
    /// timestamp, moving while any sensor of the partition sends (however
    /// many are silent), and following a partition read behind the others
    /// (a backlog). A sensor is silent when its partition's clock has moved
    /// on by `retire_after_s` since its last packet came.
    fn clocks_now(&self) -> BTreeMap<i32, i64> {
        self.recent
            .iter()
            .map(|(&p, ends)| {
                let mut v: Vec<i64> = ends.iter().copied().collect();
                v.sort_unstable();
                // Never back: a burst of old data (a logger's backlog)
                // does not rewind the others' clock.
                let before = self.clocks.get(&p).copied().unwrap_or(i64::MIN);
                (p, v[v.len() / 2].max(before))
            })
            .collect()
    }

    /// The partitions' data-time clocks as of the last release.
    pub fn partition_clocks(&self) -> &BTreeMap<i32, i64> {
        &self.clocks
    }

    /// Releases every packet that is `reorder_window_s` behind its sensor's
    /// watermark (all of them when `flush`), as chunks in time order.
    /// A sensor from which nothing came while its partition's clock (see
    /// [`Reorder::clocks_now`]) moved on by `retire_after_ns` has all its
    /// packets released, is marked [`SensorWork::last`] and forgotten here.
    /// A partition that is not `lagging` (read to its end) is judged by
    /// the median of all partitions' clocks when that is later than its own:
    /// if nothing came on it for so long, its sensors are silent too.
    pub fn release(
        &mut self,
        flush: bool,
        retire_after_ns: i64,
        lagging: &[i32],
    ) -> Vec<SensorWork> {
        self.clocks = self.clocks_now();
        let mut all: Vec<i64> = self.clocks.values().copied().collect();
        all.sort_unstable();
        let network = all.get(all.len() / 2).copied();
        self.judged = self
            .clocks
            .iter()
            .map(|(&p, &c)| match network {
                Some(n) if !lagging.contains(&p) => (p, c.max(n)),
                _ => (p, c),
            })
            .collect();
        let judged = &self.judged;
        let clock = |p: i32| judged.get(&p).copied();
        let mut out = Vec::new();
        let mut retired = Vec::new();
        for (sensor, buf) in self.sensors.iter_mut() {
            let silent = clock(buf.partition)
                .is_some_and(|now| buf.seen_at_ns < now.saturating_sub(retire_after_ns));
            let horizon = if flush || silent {
                i64::MAX
            } else {
                buf.max_end_ns.saturating_sub(self.window_ns)
            };
            let mut chunks = Vec::new();
            while let Some(entry) = buf.pending.first_entry() {
                if entry.key().0 > horizon {
                    break;
                }
                // Only the samples are needed. They are moved when the raw
                // store has let go of the packet; copied when it still
                // holds it (stored in this micro-batch, or a write in
                // flight).
                let (start_ns, rate, samples) = match Arc::try_unwrap(entry.remove()) {
                    Ok(p) => (p.start_time_ns, p.sample_rate_hz, p.samples),
                    Err(p) => (p.start_time_ns, p.sample_rate_hz, p.samples.clone()),
                };
                place(
                    buf,
                    (start_ns, rate, samples),
                    self.max_gap,
                    self.tail_cap,
                    self.window_ns,
                    &mut self.report,
                    &mut chunks,
                );
            }
            if silent {
                retired.push(sensor.clone());
            }
            if !chunks.is_empty() || silent {
                out.push(SensorWork {
                    sensor: sensor.clone(),
                    chunks,
                    last: silent,
                });
            }
        }
        for s in retired {
            self.sensors.remove(&s);
        }
        out
    }
}

/// Places one packet's samples, `(start_ns, rate_hz, samples)`.
fn place(
    buf: &mut SensorBuf,
    (start_ns, rate, samples): (i64, f64, Vec<f64>),
    max_gap: u64,
    tail_cap: usize,
    window_ns: i64,
    report: &mut AssembleReport,
    chunks: &mut Vec<Chunk>,
) {
    if rate != buf.rate {
        // A new sampling rate: a new series for the chains.
        buf.rate = rate;
        buf.cursor = None;
        buf.last_time_ns = None;
    }
    if rate == 0.0 {
        // Irregular readings: one reading per packet, in time order.
        if buf.last_time_ns.is_some_and(|t| start_ns <= t) {
            report.duplicates_dropped += 1;
            return;
        }
        if buf.last_time_ns.is_none() {
            chunks.push(Chunk::Segment {
                start_ns,
                sample_rate_hz: 0.0,
            });
        }
        buf.last_time_ns = Some(start_ns);
        let times = vec![start_ns; samples.len()];
        push_samples(chunks, samples, times);
        return;
    }
    // Packets are released in start order and each was accepted only if
    // it starts at or after the cursor, so an overlap reaches back at most
    // one earlier packet; a re-send inside the window at most the window.
    let window_samples = (window_ns as f64 * rate / 1e9).ceil() as usize;
    let keep = buf.largest.max(window_samples).min(tail_cap);
    let cursor = buf
        .cursor
        .get_or_insert_with(|| SegmentCursor::new(rate, max_gap, keep));
    cursor.set_tail_cap(keep);
    match cursor.place(Piece::new(start_ns, samples), report) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SensorKind;

    fn packet(sensor: &str, start_ns: i64, n: usize, rate: f64) -> Arc<SensorPacket> {
        Arc::new(SensorPacket {
            sensor_id: sensor.into(),
            kind: SensorKind::Seismic,
            start_time_ns: start_ns,
            sample_rate_hz: rate,
            samples: (0..n)
                .map(|i| ((start_ns / 1_000_000) as f64 + i as f64).sin())
                .collect(),
            unit: "counts".into(),
            seq: None,
        })
    }

    /// `hours` of 100 Hz data from `sensors` sensors in 100-sample packets,
    /// each window of 8 packets shuffled: the most samples held at once.
    fn peak_held(hours: u64, sensors: usize) -> (usize, usize) {
        let mut r = Reorder::new(5.0, 15, 100_000);
        let mut peak = (0, 0);
        let packets = hours * 3600;
        for k in (0..packets).step_by(8) {
            for j in [3u64, 0, 7, 1, 6, 2, 5, 4] {
                let t = ((k + j) * 1_000_000_000) as i64;
                for s in 0..sensors {
                    let p = packet(&format!("XX.S{s}..HHZ"), t, 100, 100.0);
                    assert_eq!(r.offer(&p, 0), Offer::Accepted);
                }
            }
            r.release(false, 3_600_000_000_000, &[]);
            peak = peak.max((r.samples_held(), r.sensors()));
        }
        peak
    }

    #[test]
    fn held_samples_do_not_grow_with_the_hours_streamed() {
        let (one, sensors) = peak_held(1, 3);
        let (ten, _) = peak_held(10, 3);
        assert_eq!(sensors, 3);
        assert_eq!(one, ten, "state after 10 h equals state after 1 h");
        // Per sensor: the 5 s window (500 samples) as overlap tail plus
        // the packets waiting in the window and one micro-batch's worth.
        assert!(one <= 3 * (500 + 1400), "held {one}");
    }

    #[test]
    fn a_silent_sensor_is_released_in_full_and_forgotten() {
        let mut r = Reorder::new(5.0, 15, 100_000);
        let s = 1_000_000_000i64;
        for k in 0..20 {
            r.offer(&packet("XX.A..HHZ", k * s, 100, 100.0), 0);
            r.offer(&packet("XX.B..HHZ", k * s, 100, 100.0), 0);
            r.offer(&packet("XX.C..HHZ", k * s, 100, 100.0), 0);
        }
        let samples_of = |w: &SensorWork| {
            w.chunks
                .iter()
                .map(|c| match c {
                    Chunk::Samples { samples, .. } => samples.len(),
                    Chunk::Segment { .. } => 0,
                })
                .sum::<usize>()
        };
        let work = r.release(false, 3600 * s, &[]);
        assert!(work.iter().all(|w| !w.last));
        let mut a_samples: usize = work
            .iter()
            .filter(|w| w.sensor == "XX.A..HHZ")
            .map(samples_of)
            .sum();
        assert!(a_samples < 2000, "the window's packets wait");
        // B goes on for an hour and a minute; A is silent.
        let mut retired = Vec::new();
        for k in 20..3680 {
            r.offer(&packet("XX.B..HHZ", k * s, 100, 100.0), 0);
            r.offer(&packet("XX.C..HHZ", k * s, 100, 100.0), 0);
            for w in r.release(false, 3600 * s, &[]) {
                if w.sensor == "XX.A..HHZ" {
                    a_samples += samples_of(&w);
                }
                if w.last {
                    retired.push((k, w.sensor));
                }
            }
        }
        assert_eq!(retired.len(), 1, "{retired:?}");
        assert_eq!(retired[0].1, "XX.A..HHZ");
        // Retired once the partition's clock (the median of its last
        // packets, a few seconds behind the newest) is an hour past A's
        // last packet (end 20 s).
        assert!((3620..3640).contains(&retired[0].0), "{retired:?}");
        assert_eq!(a_samples, 2000, "every sample of A was processed");
        assert_eq!(r.sensors(), 2);
        // Back again: a new series (a new segment, fresh chains).
        assert_eq!(
            r.offer(&packet("XX.A..HHZ", 3700 * s, 100, 100.0), 0),
            Offer::Accepted
        );
        let w = r.release(true, 3600 * s, &[]);
        let a = w.iter().find(|w| w.sensor == "XX.A..HHZ").unwrap();
        assert!(matches!(a.chunks[0], Chunk::Segment { .. }));
    }

    #[test]
    fn one_wild_timestamp_retires_nobody() {
        let mut r = Reorder::new(5.0, 15, 100_000);
        let s = 1_000_000_000i64;
        for k in 0..10 {
            for n in 0..4 {
                r.offer(&packet(&format!("XX.S{n}..HHZ"), k * s, 100, 100.0), 0);
            }
        }
        // A day ahead: that sensor's own watermark, nobody else's clock.
        r.offer(&packet("XX.S0..HHZ", 86_400 * s, 100, 100.0), 0);
        let work = r.release(false, 3600 * s, &[]);
        assert!(work.iter().all(|w| !w.last), "nobody retired");
        assert_eq!(r.sensors(), 4);
    }

    #[test]
    fn sensors_are_judged_by_their_own_partition() {
        let mut r = Reorder::new(5.0, 15, 100_000);
        let s = 1_000_000_000i64;
        // Partition 1 is read two hours behind partition 0 (a backlog).
        for n in 0..3 {
            r.offer(&packet(&format!("XX.A{n}..HHZ"), 0, 100, 100.0), 1);
            r.offer(&packet(&format!("XX.B{n}..HHZ"), 7200 * s, 100, 100.0), 0);
        }
        let work = r.release(false, 3600 * s, &[1]);
        assert!(work.iter().all(|w| !w.last));
        assert_eq!(r.sensors(), 6);
        // Read to its end with nothing new for two hours of the others'
        // data: its sensors are silent.
        let work = r.release(false, 3600 * s, &[]);
        let retired: Vec<&str> = work
            .iter()
            .filter(|w| w.last)
            .map(|w| w.sensor.as_str())
            .collect();
        assert_eq!(retired, ["XX.A0..HHZ", "XX.A1..HHZ", "XX.A2..HHZ"]);
    }

    #[test]
    fn a_backlog_read_behind_its_peers_is_not_silent() {
        let mut r = Reorder::new(5.0, 15, 100_000);
        let s = 1_000_000_000i64;
        // Three live sensors a day ahead; a logger's 20 h of readings
        // arriving now, one by one, far behind them in data time.
        for n in 0..3 {
            r.offer(&packet(&format!("XX.S{n}..HHZ"), 86_400 * s, 100, 100.0), 0);
        }
        r.release(false, 3600 * s, &[]);
        for k in 0..80 {
            let mut p = packet("EMB.PH01..PH", k * 900 * s, 1, 0.0);
            Arc::make_mut(&mut p).kind = SensorKind::Ph;
            r.offer(&p, 0);
            let work = r.release(false, 3600 * s, &[]);
            assert!(work.iter().all(|w| !w.last), "retired at reading {k}");
        }
        // Then it stops: an hour of its peers' data later it is retired.
        for k in 0..3700 {
            for n in 0..3 {
                r.offer(
                    &packet(&format!("XX.S{n}..HHZ"), (86_401 + k) * s, 100, 100.0),
                    0,
                );
            }
            if r.release(false, 3600 * s, &[]).iter().any(|w| w.last) {
                assert!(k >= 3599, "retired after {k} s");
                return;
            }
        }
        panic!("never retired");
    }
}
