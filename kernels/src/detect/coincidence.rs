//! Network coincidence trigger (ObsPy `coincidence_trigger`).

use crate::error::{invalid, Result};
use crate::filter::checks::check_sampling_rate;
use serde::{Deserialize, Serialize};

/// A sensor taking part in the coincidence sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    /// SEED id `NET.STA.LOC.CHA`; the station is the second field.
    pub id: String,
    /// Weight added to the coincidence sum (ObsPy `trace_ids` dict value; 1
    /// for a list).
    pub weight: f64,
}

/// One single-station trigger in absolute time (integer nanoseconds since
/// the Unix epoch, UTC), as produced by [`trigger_to_absolute`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StationTrigger {
    /// Index into the `sensors` slice.
    pub sensor: usize,
    pub on_ns: i64,
    pub off_ns: i64,
    /// Peak of the characteristic function in the trigger.
    pub peak: f64,
}

/// Coincidence parameters. `max_trigger_length` and `delete_long_trigger`
/// act on the single-station triggers: pass
/// `TriggerParams { max_len: Some(TriggerParams::max_len_from_seconds(len, sr)?),
/// max_len_delete, .. }` to the trigger (as ObsPy does internally).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CoincidenceParams {
    pub threshold_sum: f64,
    /// Seconds added to a trigger's off time when looking for overlaps.
    pub trigger_off_extension_s: f64,
}

/// A network trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoincidenceEvent {
    /// On time of the first trigger (ns since epoch).
    pub time_ns: i64,
    /// Latest off time of the coinciding triggers (ns since epoch).
    pub off_ns: i64,
    /// `off - on` in seconds, computed on float timestamps as ObsPy does.
    pub duration_s: f64,
    /// Sensors (indices) in the order ObsPy lists `trace_ids`.
    pub sensors: Vec<usize>,
    /// Station codes in the same order (ObsPy `stations`).
    pub stations: Vec<String>,
    pub coincidence_sum: f64,
    /// Single-station CF peaks in the same order (ObsPy `cft_peaks`).
    pub peaks: Vec<f64>,
}

/// Absolute time of sample `index` of a trace starting at `start_ns`, as
/// ObsPy's `starttime + float(index) / sampling_rate` (rounded half-even to
/// the nanosecond).
pub fn sample_time_ns(start_ns: i64, index: u64, sampling_rate: f64) -> Result<i64> {
    check_sampling_rate(sampling_rate)?;
    let secs = index as f64 / sampling_rate;
    Ok(start_ns + (secs * 1e9).round_ties_even() as i64)
}

/// Converts a sample-index trigger of `sensor` to absolute time.
pub fn trigger_to_absolute(
    sensor: usize,
    t: &super::onset::Trigger,
    start_ns: i64,
    sampling_rate: f64,
) -> Result<StationTrigger> {
    Ok(StationTrigger {
        sensor,
        on_ns: sample_time_ns(start_ns, t.on, sampling_rate)?,
        off_ns: sample_time_ns(start_ns, t.off, sampling_rate)?,
        peak: t.peak,
    })
}

/// ObsPy's float timestamp (seconds) of `ns`; all comparisons use it.
pub(super) fn ts(ns: i64) -> f64 {
    ns as f64 / 1e9
}

pub(super) fn check_params(p: &CoincidenceParams) -> Result<()> {
    if p.threshold_sum.is_nan() {
        return Err(invalid("threshold_sum", "is NaN"));
    }
    if !p.trigger_off_extension_s.is_finite() {
        return Err(invalid("trigger_off_extension", "must be finite"));
    }
    Ok(())
}

/// Checks a sensor's weight and returns its station code (second field of
/// `NET.STA.LOC.CHA`).
pub(super) fn check_sensor(id: &str, weight: f64) -> Result<&str> {
    if !weight.is_finite() {
        return Err(invalid("weight", format!("weight of {id} must be finite")));
    }
    id.split('.')
        .nth(1)
        .ok_or_else(|| invalid("id", format!("`{id}` is not NET.STA.LOC.CHA")))
}

/// ObsPy 1.5 `coincidence_trigger(None, thr_on, thr_off, stream,
/// thr_coincidence_sum, trace_ids=weights, max_trigger_length,
/// delete_long_trigger, trigger_off_extension)` on precomputed single-station
/// triggers (no event templates / similarity):
///
/// triggers are sorted by (on, off, id, peak); each one, in turn, opens an
/// event and collects the following triggers of *other* ids whose on time is
/// `<= off + trigger_off_extension` (the event's off time extends to the
/// latest collected off); the event is kept if its weight sum is
/// `>= threshold_sum` and its off time is later than the last kept event's
/// (ObsPy starts that at timestamp 0.0). Time comparisons use float
/// timestamps (seconds) exactly as ObsPy; times are returned in ns.
///
/// For a stream, [`CoincidenceStream`](super::CoincidenceStream) gives the
/// same events incrementally with bounded state.
pub fn coincidence_trigger(
    sensors: &[Sensor],
    triggers: &[StationTrigger],
    p: &CoincidenceParams,
) -> Result<Vec<CoincidenceEvent>> {
    check_params(p)?;
    let mut stations = Vec::with_capacity(sensors.len());
    for s in sensors {
        stations.push(check_sensor(&s.id, s.weight)?.to_string());
    }
    for t in triggers {
        if t.sensor >= sensors.len() {
            return Err(invalid(
                "sensor",
                format!("index {} out of range", t.sensor),
            ));
        }
    }
    let mut trig: Vec<StationTrigger> = triggers.to_vec();
    trig.sort_by(|a, b| {
        ts(a.on_ns)
            .total_cmp(&ts(b.on_ns))
            .then(ts(a.off_ns).total_cmp(&ts(b.off_ns)))
            .then_with(|| sensors[a.sensor].id.cmp(&sensors[b.sensor].id))
            .then(a.peak.total_cmp(&b.peak))
    });
    let mut events = Vec::new();
    let mut last_off_time = 0.0f64;
    for (n, first) in trig.iter().enumerate() {
        let on = ts(first.on_ns);
        let mut off = ts(first.off_ns);
        let mut off_ns = first.off_ns;
        let mut ids: Vec<&str> = vec![&sensors[first.sensor].id];
        let mut ev_sensors = vec![first.sensor];
        let mut ev_stations = vec![stations[first.sensor].clone()];
        let mut peaks = vec![first.peak];
        let mut sum = sensors[first.sensor].weight;
        for t in &trig[n + 1..] {
            let id = sensors[t.sensor].id.as_str();
            if ids.contains(&id) {
                continue;
            }
            if ts(t.on_ns) > off + p.trigger_off_extension_s {
                break;
            }
            ids.push(id);
            ev_sensors.push(t.sensor);
            ev_stations.push(stations[t.sensor].clone());
            peaks.push(t.peak);
            sum += sensors[t.sensor].weight;
            let t_off = ts(t.off_ns);
            if t_off > off {
                off = t_off;
                off_ns = t.off_ns;
            }
        }
        if sum < p.threshold_sum {
            continue;
        }
        if off <= last_off_time {
            continue;
        }
        events.push(CoincidenceEvent {
            time_ns: first.on_ns,
            off_ns,
            duration_s: off - on,
            sensors: ev_sensors,
            stations: ev_stations,
            coincidence_sum: sum,
            peaks,
        });
        last_off_time = off;
    }
    Ok(events)
}
