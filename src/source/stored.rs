//! Rebuilding a sensor's recording from its packets stored in Cassandra,
//! one day partition at a time: packets in time order, duplicates dropped,
//! late packets in their place, overlaps trimmed (the earlier data kept),
//! by the rules of [`crate::assemble`]; gaps up to `max_gap_interp_samples`
//! become missing readings as in every other source (0 for `export`: gaps
//! stay gaps). The last segment of each day stays open, so a segment
//! running across midnight comes out whole. With [`Rebuilder::bounded`]
//! (export) only its samples from the next midnight on are held (later
//! partitions' packets start there or after); the head goes out as a run
//! of its own, contiguous with the rest, so readers such as ObsPy join
//! them again. Unbounded (batch, which needs whole
//! series as from files) the regular pieces are kept and assembled once,
//! at the end.

use crate::assemble::{assemble, same_rate, AssembleReport, PieceBuf};
use crate::model::{Segment, SensorPacket};

const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// A finished run of one sensor's data at one rate; `sample_rate_hz == 0`
/// for irregular readings (times in `segment.times_ns`).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub sample_rate_hz: f64,
    pub segment: Segment,
}

/// A regular rate's open segment and the day's pieces at that rate.
struct Rate {
    hz: f64,
    open: Option<Segment>,
    today: PieceBuf,
}

/// Rebuilds one sensor's series over `[from_ns, to_ns)`.
pub struct Rebuilder {
    from_ns: i64,
    to_ns: i64,
    max_gap: u64,
    bounded: bool,
    rates: Vec<Rate>,
    /// Irregular readings of the day, and the time of the last one given out.
    irregular: Vec<(i64, f64)>,
    last_irregular_ns: Option<i64>,
    pub report: AssembleReport,
}

/// Time of sample `i` of a run starting at `start_ns` (as `Segment::time_of`).
fn time_of(start_ns: i64, i: usize, hz: f64) -> i64 {
    start_ns + (i as f64 * 1e9 / hz).round() as i64
}

/// The time just after a packet's last sample (its start + 1 ns for an
/// irregular reading).
pub fn packet_end_ns(p: &SensorPacket) -> i64 {
    if p.sample_rate_hz > 0.0 {
        time_of(p.start_time_ns, p.samples.len(), p.sample_rate_hz)
    } else {
        p.start_time_ns + 1
    }
}

/// The first index in `0..=n` whose time is at or after `t`.
fn first_at_or_after(start_ns: i64, n: usize, hz: f64, t: i64) -> usize {
    if t <= start_ns {
        return 0;
    }
    let guess = (((t - start_ns) as f64) * hz / 1e9)
        .ceil()
        .clamp(0.0, n as f64) as usize;
    let mut i = guess;
    while i < n && time_of(start_ns, i, hz) < t {
        i += 1;
    }
    while i > 0 && time_of(start_ns, i - 1, hz) >= t {
        i -= 1;
    }
    i
}

impl Rebuilder {
    pub fn new(from_ns: i64, to_ns: i64, max_gap_interp_samples: u64) -> Rebuilder {
        Rebuilder {
            from_ns,
            to_ns,
            max_gap: max_gap_interp_samples,
            bounded: false,
            rates: Vec::new(),
            irregular: Vec::new(),
            last_irregular_ns: None,
            report: AssembleReport::default(),
        }
    }

    /// Holds only what later partitions can still change between days.
    pub fn bounded(mut self) -> Rebuilder {
        self.bounded = true;
        self
    }

    /// Adds one stored packet (any order within a day).
    pub fn push(&mut self, p: &SensorPacket) {
        let hz = p.sample_rate_hz;
        if !(hz.is_finite() && hz > 0.0) {
            if (self.from_ns..self.to_ns).contains(&p.start_time_ns) {
                self.irregular
                    .extend(p.samples.iter().map(|&v| (p.start_time_ns, v)));
            }
            return;
        }
        let n = p.samples.len();
        let a = first_at_or_after(p.start_time_ns, n, hz, self.from_ns);
        let b = first_at_or_after(p.start_time_ns, n, hz, self.to_ns);
        if a >= b {
            return;
        }
        let start = time_of(p.start_time_ns, a, hz);
        let rate = match self.rates.iter_mut().position(|r| same_rate(r.hz, hz)) {
            Some(i) => &mut self.rates[i],
            None => {
                self.rates.push(Rate {
                    hz,
                    open: None,
                    today: PieceBuf::default(),
                });
                self.rates.last_mut().expect("just pushed")
            }
        };
        rate.today.push(start, &p.samples[a..b]);
    }

    /// Ends the partition of UTC `day`: every segment that can no longer
    /// grow goes to `out`, in time order per rate (bounded: also every
    /// sample before the next midnight).
    pub fn end_day(&mut self, out: &mut Vec<Run>, day: i32) {
        self.flush(out, Some(day));
    }

    /// Ends the export: everything left goes to `out`.
    pub fn finish(mut self, out: &mut Vec<Run>) -> AssembleReport {
        self.flush(out, None);
        self.report
    }

    fn flush(&mut self, out: &mut Vec<Run>, day: Option<i32>) {
        let all = day.is_none();
        for rate in &mut self.rates {
            // Unbounded (batch), a whole series is wanted: assembling once at
            // the end saves copying the growing segment every day.
            if !all && (rate.today.pieces() == 0 || !self.bounded) {
                continue;
            }
            let today = std::mem::take(&mut rate.today);
            let mut parts = Vec::with_capacity(2);
            let open = rate.open.take();
            if let Some(open) = &open {
                let mut buf = PieceBuf::default();
                buf.push(open.start_ns, &open.samples);
                parts.push(buf);
            }
            parts.push(today);
            let (mut segs, mut rep) = assemble(parts, rate.hz, self.max_gap);
            if let Some(open) = open {
                // The open segment's data were counted when they came in.
                rep.pieces -= 1;
                rep.samples_in -= open.samples.len() as u64;
            }
            self.report.add(&rep);
            if !all {
                rate.open = segs.pop();
                if let (true, Some(day), Some(open)) = (self.bounded, day, rate.open.as_mut()) {
                    // Packets of later partitions start at the next midnight or
                    // after, so nothing before it can still change.
                    let midnight = (i64::from(day) + 1) * NS_PER_DAY;
                    let n = open.samples.len();
                    let cut = first_at_or_after(open.start_ns, n, rate.hz, midnight);
                    if cut > 0 {
                        let tail = open.samples.split_off(cut);
                        let head = std::mem::replace(&mut open.samples, tail);
                        let head_start = open.start_ns;
                        open.start_ns = time_of(head_start, cut, rate.hz);
                        segs.push(Segment {
                            start_ns: head_start,
                            samples: head,
                            times_ns: Vec::new(),
                        });
                    }
                    if open.samples.is_empty() {
                        rate.open = None;
                    }
                }
            }
            out.extend(segs.into_iter().map(|segment| Run {
                sample_rate_hz: rate.hz,
                segment,
            }));
        }
        if !self.irregular.is_empty() {
            let mut day = std::mem::take(&mut self.irregular);
            day.sort_by_key(|r| r.0);
            let mut seg = Segment {
                start_ns: 0,
                samples: Vec::new(),
                times_ns: Vec::new(),
            };
            for (t, v) in day {
                if self.last_irregular_ns.is_some_and(|last| t <= last) {
                    self.report.duplicates_dropped += 1;
                    continue;
                }
                self.last_irregular_ns = Some(t);
                seg.times_ns.push(t);
                seg.samples.push(v);
            }
            if let Some(&t0) = seg.times_ns.first() {
                seg.start_ns = t0;
                out.push(Run {
                    sample_rate_hz: 0.0,
                    segment: seg,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SensorKind;

    fn packet(start_ns: i64, samples: Vec<f64>, hz: f64) -> SensorPacket {
        SensorPacket {
            sensor_id: "XX.A..HHZ".into(),
            kind: SensorKind::Seismic,
            start_time_ns: start_ns,
            sample_rate_hz: hz,
            samples,
            unit: "counts".into(),
            seq: None,
        }
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn days_join_across_midnight_and_gaps_stay_gaps() {
        let mut r = Rebuilder::new(i64::MIN, i64::MAX, 0);
        let mut out = Vec::new();
        r.push(&packet(0, vec![1.0, 2.0], 1.0));
        r.push(&packet(2 * S, vec![3.0], 1.0));
        r.end_day(&mut out, -1);
        assert!(out.is_empty(), "the open segment waits for the next day");
        r.push(&packet(3 * S, vec![4.0], 1.0));
        r.push(&packet(10 * S, vec![9.0], 1.0)); // a gap
        r.push(&packet(3 * S, vec![4.0], 1.0)); // a duplicate
        r.end_day(&mut out, 0);
        let rep = r.finish(&mut out);
        let got: Vec<(i64, Vec<f64>)> = out
            .iter()
            .map(|r| (r.segment.start_ns, r.segment.samples.clone()))
            .collect();
        assert_eq!(got, [(0, vec![1.0, 2.0, 3.0, 4.0]), (10 * S, vec![9.0])]);
        assert_eq!(rep.duplicates_dropped, 1);
        assert_eq!(rep.pieces, 5);
    }

    #[test]
    fn bounded_holds_at_most_a_day_and_loses_nothing() {
        let hz = 1.0 / 3600.0; // a day is 24 samples
        let h = 3600 * S;
        let mut r = Rebuilder::new(i64::MIN, i64::MAX, 0).bounded();
        let mut out = Vec::new();
        for day in 0..5i64 {
            for k in 0..24 {
                let t = (day * 24 + k) * h;
                r.push(&packet(t, vec![(day * 24 + k) as f64], hz));
            }
            r.end_day(&mut out, day as i32);
            let held: usize = r
                .rates
                .iter()
                .filter_map(|x| x.open.as_ref())
                .map(|o| o.samples.len())
                .sum();
            assert!(held <= 24, "day {day}: {held} samples held");
        }
        r.finish(&mut out);
        let mut next = 0i64;
        for run in &out {
            assert_eq!(run.segment.start_ns, next * h, "runs are contiguous");
            for (i, v) in run.segment.samples.iter().enumerate() {
                assert_eq!(*v, (next + i as i64) as f64);
            }
            next += run.segment.samples.len() as i64;
        }
        assert_eq!(next, 120);
    }

    #[test]
    fn packets_longer_than_a_day_cut_twice_come_out_once() {
        // Hourly readings in packets of 100 (4 days) and again of 70; one
        // row per start time, the later write kept, read day by day.
        let h = 3600 * S;
        let hz = 1.0 / 3600.0;
        let n = 1000usize;
        let mut rows = std::collections::BTreeMap::new();
        for cut in [100usize, 70] {
            for a in (0..n).step_by(cut) {
                let b = (a + cut).min(n);
                let x: Vec<f64> = (a..b).map(|i| i as f64).collect();
                rows.insert(a as i64 * h, packet(a as i64 * h, x, hz));
            }
        }
        let mut r = Rebuilder::new(i64::MIN, i64::MAX, 0).bounded();
        let mut out = Vec::new();
        let day_of = |t: i64| t.div_euclid(NS_PER_DAY) as i32;
        let mut current = None;
        for (t, p) in &rows {
            let d = day_of(*t);
            if current.is_some_and(|c| c != d) {
                r.end_day(&mut out, current.unwrap());
            }
            current = Some(d);
            r.push(p);
        }
        r.end_day(&mut out, current.unwrap());
        r.finish(&mut out);
        let mut seen: Vec<i64> = out
            .iter()
            .flat_map(|run| (0..run.segment.samples.len()).map(|i| run.segment.time_of(i, hz)))
            .collect();
        let values: Vec<f64> = out.iter().flat_map(|r| r.segment.samples.clone()).collect();
        assert_eq!(values, (0..n).map(|i| i as f64).collect::<Vec<_>>());
        seen.dedup();
        assert_eq!(seen.len(), n, "every reading once, in order");
    }

    #[test]
    fn trims_to_the_range_on_the_sample_grid() {
        let mut r = Rebuilder::new(2 * S + 1, 5 * S, 0);
        let mut out = Vec::new();
        r.push(&packet(0, (0..10).map(f64::from).collect(), 1.0));
        r.finish(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].segment.start_ns, 3 * S);
        assert_eq!(out[0].segment.samples, [3.0, 4.0]);
    }

    #[test]
    fn irregular_readings_keep_their_times_once() {
        let mut r = Rebuilder::new(0, 100 * S, 0);
        let mut out = Vec::new();
        r.push(&packet(7 * S, vec![1.5], 0.0));
        r.push(&packet(3 * S, vec![0.5], 0.0));
        r.push(&packet(3 * S, vec![0.5], 0.0));
        r.push(&packet(200 * S, vec![9.0], 0.0)); // out of range
        r.finish(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].sample_rate_hz, 0.0);
        assert_eq!(out[0].segment.times_ns, [3 * S, 7 * S]);
        assert_eq!(out[0].segment.samples, [0.5, 1.5]);
    }

    #[test]
    fn rates_are_kept_apart() {
        let mut r = Rebuilder::new(i64::MIN, i64::MAX, 0);
        let mut out = Vec::new();
        r.push(&packet(0, vec![1.0; 4], 1.0));
        r.push(&packet(0, vec![2.0; 4], 2.0));
        r.finish(&mut out);
        let mut rates: Vec<f64> = out.iter().map(|r| r.sample_rate_hz).collect();
        rates.sort_by(f64::total_cmp);
        assert_eq!(rates, [1.0, 2.0]);
    }
}
