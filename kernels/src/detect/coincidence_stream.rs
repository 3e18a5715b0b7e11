//! Network coincidence trigger on a stream of single-station triggers
//! ([`coincidence_trigger`] made incremental, with bounded state).
//!
//! [`coincidence_trigger`]: super::coincidence_trigger

use super::coincidence::{check_params, check_sensor, ts, CoincidenceParams};
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::VecDeque;

/// A network trigger from [`CoincidenceStream`]: the content of a
/// [`CoincidenceEvent`](super::CoincidenceEvent), with SEED ids instead of
/// sensor indices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamEvent {
    /// On time of the first trigger (ns since epoch).
    pub time_ns: i64,
    /// Latest off time of the coinciding triggers (ns since epoch).
    pub off_ns: i64,
    /// `off - on` in seconds, computed on float timestamps as ObsPy does.
    pub duration_s: f64,
    /// SEED ids in the order ObsPy lists `trace_ids`.
    pub ids: Vec<String>,
    /// Station codes in the same order (ObsPy `stations`).
    pub stations: Vec<String>,
    pub coincidence_sum: f64,
    /// Single-station CF peaks in the same order (ObsPy `cft_peaks`).
    pub peaks: Vec<f64>,
}

/// One single-station trigger waiting for its event to become final.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PendingTrigger {
    id: String,
    station: String,
    weight: f64,
    on_ns: i64,
    off_ns: i64,
    peak: f64,
}

/// `coincidence_trigger`'s sort key: float (on, off), id, peak.
fn key_cmp(a: &PendingTrigger, b: &PendingTrigger) -> Ordering {
    ts(a.on_ns)
        .total_cmp(&ts(b.on_ns))
        .then(ts(a.off_ns).total_cmp(&ts(b.off_ns)))
        .then_with(|| a.id.cmp(&b.id))
        .then(a.peak.total_cmp(&b.peak))
}

/// The candidate event opened by the front pending trigger.
struct Candidate {
    /// Indices into `pending`, front first, in collection order.
    members: Vec<usize>,
    /// Latest off, float seconds and ns.
    off: f64,
    off_ns: i64,
    sum: f64,
}

/// Incremental [`coincidence_trigger`]: push single-station triggers as they
/// come, call [`advance`] with a *safe time*, get the network events that can
/// no longer change; [`flush`] at the end of the stream. The concatenated
/// output equals `coincidence_trigger` over all pushed triggers (with each
/// trigger's `weight` as its sensor's weight), bit for bit, as long as the
/// safe-time contract below holds.
///
/// Algorithm (ObsPy 1.5): triggers are ordered by float `(on, off)`, then id,
/// then peak (ties in that whole key keep push order, as the batch's stable
/// sort keeps input order). Each trigger `f`, in that order, opens an event
/// and collects the following triggers of *other* ids while
/// `ts(t.on) <= off + trigger_off_extension_s`, where `off` starts at
/// `ts(f.off)` and extends to the latest collected off; the event is kept if
///
/// ```text
/// sum(weights) >= threshold_sum   and   off > last_off_time
/// ```
///
/// (`last_off_time` starts at timestamp 0.0 and becomes the `off` of each
/// kept event).
///
/// Units: times are given and returned in integer ns since the Unix epoch;
/// every comparison uses ObsPy's float timestamps `ts(ns) = ns as f64 / 1e9`
/// (seconds), the extension is in seconds.
///
/// **Safe-time contract**: `advance(safe_ns)` promises that every trigger
/// pushed afterwards has `on_ns >= safe_ns`. The front pending trigger is
/// then final once `ts(front.on) < ts(safe_ns)` and its candidate's
/// `off + trigger_off_extension_s < ts(safe_ns)`: any later trigger sorts
/// after it and stops the scan, so neither its event nor its place in the
/// order can change. Final triggers are processed from the front (event
/// emitted if kept, trigger dropped) until the first one that is not final.
/// Until a trigger is final nothing after it is emitted (warm-up: the first
/// events come out once the safe time has passed them by the extension).
///
/// **Bounded state**: processed triggers are dropped; pending are the first
/// non-final trigger and everything sorting after it. An event holds at most one trigger per id and each member starts
/// within `ext` of the running off, so a front trigger with `k` ids around
/// it, trigger length `<= L` and `ext >= 0` is final once the safe time is
/// more than `W = L + (k - 1) (L + ext) + ext` past its on. The pending set
/// is the triggers with on times within `W` behind the safe time plus those
/// pushed ahead of it: about sensors × trigger rate × (`W` + push lead),
/// independent of how long the stream has run.
///
/// A trigger pushed with `on_ns` below a safe time already given (contract
/// broken, e.g. a sensor back after being forgotten) does not panic: it is
/// inserted in sort order among the pending triggers and processed at the
/// next `advance` / `flush` like any other (first, if it sorts before them).
/// Triggers already finalised are not revisited, so from then on the output
/// may differ from the batch over the same triggers.
///
/// The state is `Clone + Serialize + Deserialize` for checkpointing.
///
/// ```
/// use fakopp_kernels::detect::{CoincidenceParams, CoincidenceStream};
/// let p = CoincidenceParams { threshold_sum: 2.0, trigger_off_extension_s: 0.0 };
/// let mut co = CoincidenceStream::new(p).unwrap();
/// let s = 1_000_000_000i64;
/// co.push("XX.A..HHZ", 1.0, 10 * s, 12 * s, 5.0).unwrap();
/// co.push("XX.B..HHZ", 1.0, 11 * s, 13 * s, 4.0).unwrap();
/// assert!(co.advance(12 * s).is_empty()); // 13 s + 0 s not yet < 12 s
/// let ev = co.advance(20 * s);
/// assert_eq!(ev.len(), 1);
/// assert_eq!(ev[0].ids, ["XX.A..HHZ", "XX.B..HHZ"]);
/// assert_eq!(co.pending(), 0);
/// ```
///
/// [`coincidence_trigger`]: super::coincidence_trigger
/// [`advance`]: CoincidenceStream::advance
/// [`flush`]: CoincidenceStream::flush
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoincidenceStream {
    params: CoincidenceParams,
    /// Sorted by `key_cmp`; everything already processed sorts before.
    pending: VecDeque<PendingTrigger>,
    /// ObsPy `last_off_time` (float seconds).
    last_off_time: f64,
}

impl CoincidenceStream {
    /// Checks `params` as [`coincidence_trigger`](super::coincidence_trigger)
    /// does (`threshold_sum` not NaN, extension finite).
    pub fn new(params: CoincidenceParams) -> Result<Self> {
        check_params(&params)?;
        Ok(CoincidenceStream {
            params,
            pending: VecDeque::new(),
            last_off_time: 0.0,
        })
    }

    pub fn params(&self) -> &CoincidenceParams {
        &self.params
    }

    /// Number of triggers held (not yet final).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Onset (ns) of the earliest trigger held: the earliest time an event
    /// still to be reported can have. Triggers that chain into one another
    /// keep the front's event open, so this can trail the safe time.
    pub fn oldest_on_ns(&self) -> Option<i64> {
        self.pending.front().map(|t| t.on_ns)
    }

    /// Adds one single-station trigger of sensor `id` (`NET.STA.LOC.CHA`)
    /// with coincidence `weight` (finite), on/off in ns since epoch and CF
    /// `peak`. Inserted in sort order (binary search; after equal keys).
    /// Nothing is emitted until [`advance`](Self::advance) or
    /// [`flush`](Self::flush).
    pub fn push(
        &mut self,
        id: &str,
        weight: f64,
        on_ns: i64,
        off_ns: i64,
        peak: f64,
    ) -> Result<()> {
        let station = check_sensor(id, weight)?.to_string();
        let t = PendingTrigger {
            id: id.to_string(),
            station,
            weight,
            on_ns,
            off_ns,
            peak,
        };
        let at = self
            .pending
            .partition_point(|p| key_cmp(p, &t) != Ordering::Greater);
        self.pending.insert(at, t);
        Ok(())
    }

    /// Emits, in order, the events of every front trigger made final by the
    /// promise that later pushes have `on_ns >= safe_ns` (see the type docs).
    pub fn advance(&mut self, safe_ns: i64) -> Vec<StreamEvent> {
        let safe = ts(safe_ns);
        let mut out = Vec::new();
        while let Some(front) = self.pending.front() {
            if ts(front.on_ns) >= safe {
                break;
            }
            let c = self.candidate();
            if c.off + self.params.trigger_off_extension_s >= safe {
                break;
            }
            self.finalise_front(c, &mut out);
        }
        out
    }

    /// End of stream: processes every pending trigger.
    pub fn flush(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        while !self.pending.is_empty() {
            let c = self.candidate();
            self.finalise_front(c, &mut out);
        }
        out
    }

    /// The event the front trigger opens over the pending triggers after it,
    /// exactly as the batch loop builds it. `pending` must not be empty.
    fn candidate(&self) -> Candidate {
        let first = &self.pending[0];
        let mut c = Candidate {
            members: vec![0],
            off: ts(first.off_ns),
            off_ns: first.off_ns,
            sum: first.weight,
        };
        for (i, t) in self.pending.iter().enumerate().skip(1) {
            if c.members.iter().any(|&m| self.pending[m].id == t.id) {
                continue;
            }
            if ts(t.on_ns) > c.off + self.params.trigger_off_extension_s {
                break;
            }
            c.members.push(i);
            c.sum += t.weight;
            let t_off = ts(t.off_ns);
            if t_off > c.off {
                c.off = t_off;
                c.off_ns = t.off_ns;
            }
        }
        c
    }

    /// Emits the front's event if kept, then drops the front trigger.
    fn finalise_front(&mut self, c: Candidate, out: &mut Vec<StreamEvent>) {
        if c.sum >= self.params.threshold_sum && c.off > self.last_off_time {
            let first = &self.pending[0];
            let members = c.members.iter().map(|&m| &self.pending[m]);
            out.push(StreamEvent {
                time_ns: first.on_ns,
                off_ns: c.off_ns,
                duration_s: c.off - ts(first.on_ns),
                ids: members.clone().map(|t| t.id.clone()).collect(),
                stations: members.clone().map(|t| t.station.clone()).collect(),
                coincidence_sum: c.sum,
                peaks: members.map(|t| t.peak).collect(),
            });
            self.last_off_time = c.off;
        }
        self.pending.pop_front();
    }
}
