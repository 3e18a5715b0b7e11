//! `CoincidenceStream` fed under the safe-time contract gives exactly the
//! batch `coincidence_trigger`; its state stays bounded on a long steady
//! stream; checkpoints round-trip mid-stream; bad input gives typed errors.

use fakopp_kernels::detect::*;
use fakopp_kernels::KernelError;
use proptest::prelude::*;

const S: i64 = 1_000_000_000;
/// 2023-11-14: realistic epoch so float timestamps round (ulp ~238 ns).
const T0: i64 = 1_700_000_000 * S;

struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

fn network(n: usize, rng: &mut Rng) -> Vec<Sensor> {
    const W: [f64; 7] = [1.0, 1.0, 1.0, 0.5, 2.0, 0.3, 1.7];
    (0..n)
        .map(|i| Sensor {
            id: format!("XX.S{i}..HHZ"),
            weight: W[rng.below(W.len() as u64) as usize],
        })
        .collect()
}

/// `count` triggers in clusters (events) separated by seconds to hours:
/// overlaps, equal on times, ns jitter below the float resolution, zero
/// lengths, same-sensor repeats and exact duplicates.
fn triggers(n: usize, count: usize, rng: &mut Rng) -> Vec<StationTrigger> {
    let mut out: Vec<StationTrigger> = Vec::with_capacity(count + 16);
    let mut c = T0 + rng.below(1000 * S as u64) as i64;
    while out.len() < count {
        c += match rng.below(20) {
            0 => rng.below(6 * 3600 * S as u64) as i64,
            1..=3 => rng.below(S as u64) as i64,
            _ => rng.below(120 * S as u64) as i64,
        };
        let members = 1 + rng.below(n as u64 + 1) as usize;
        for _ in 0..members {
            let sensor = rng.below(n as u64) as usize;
            let on = match (rng.below(8), out.last()) {
                (0 | 1, _) => c,
                (2, _) => c + rng.below(400) as i64,
                (3, Some(prev)) => prev.off_ns, // touching the previous one
                _ => c + rng.below(4 * S as u64) as i64,
            };
            let len = match rng.below(10) {
                0 => 0,
                1 => rng.below(1000) as i64,
                _ => rng.below(6 * S as u64) as i64,
            };
            let peak = if rng.below(4) == 0 {
                5.0
            } else {
                1.0 + 20.0 * rng.unit()
            };
            let t = StationTrigger {
                sensor,
                on_ns: on,
                off_ns: on + len,
                peak,
            };
            out.push(t);
            match rng.below(30) {
                0 => out.push(t), // exact duplicate
                1 => {
                    // same id and peak, ns apart: often the same float key
                    let j = rng.below(100) as i64;
                    out.push(StationTrigger {
                        on_ns: on + j,
                        off_ns: on + len + j,
                        ..t
                    });
                }
                _ => {}
            }
        }
    }
    out
}

fn to_stream(sensors: &[Sensor], e: &CoincidenceEvent) -> StreamEvent {
    StreamEvent {
        time_ns: e.time_ns,
        off_ns: e.off_ns,
        duration_s: e.duration_s,
        ids: e.sensors.iter().map(|&i| sensors[i].id.clone()).collect(),
        stations: e.stations.clone(),
        coincidence_sum: e.coincidence_sum,
        peaks: e.peaks.clone(),
    }
}

type Bits = (i64, i64, u64, Vec<String>, Vec<String>, u64, Vec<u64>);

/// Bit-exact view of an event list.
fn bits(ev: &[StreamEvent]) -> Vec<Bits> {
    ev.iter()
        .map(|e| {
            (
                e.time_ns,
                e.off_ns,
                e.duration_s.to_bits(),
                e.ids.clone(),
                e.stations.clone(),
                e.coincidence_sum.to_bits(),
                e.peaks.iter().map(|p| p.to_bits()).collect(),
            )
        })
        .collect()
}

fn batch(sensors: &[Sensor], trig: &[StationTrigger], p: &CoincidenceParams) -> Vec<StreamEvent> {
    coincidence_trigger(sensors, trig, p)
        .unwrap()
        .iter()
        .map(|e| to_stream(sensors, e))
        .collect()
}

fn push(co: &mut CoincidenceStream, sensors: &[Sensor], t: &StationTrigger) {
    let s = &sensors[t.sensor];
    co.push(&s.id, s.weight, t.on_ns, t.off_ns, t.peak).unwrap();
}

struct Run {
    /// Triggers in push order (the batch gets them in this order, so ties
    /// in the whole sort key keep the same order in both).
    pushed: Vec<StationTrigger>,
    events: Vec<StreamEvent>,
    /// Events emitted by `advance` (the rest came from `flush`).
    from_advance: usize,
    /// Events emitted in each step, for the checkpoint comparison.
    steps: usize,
}

/// Feeds `trig` under the safe-time contract: a random non-decreasing
/// sequence of safe times (ns steps, seconds, hours, or exactly a coming
/// trigger's on time ± 1 ns); before each `advance(safe)` all not yet
/// pushed triggers with `on < safe + lead` (a random lead >= 0 per sensor)
/// are pushed in random order, so later pushes all have `on >= safe`. At
/// `checkpoint` (a step index) the state goes through serde_json.
fn deliver(
    sensors: &[Sensor],
    trig: &[StationTrigger],
    p: &CoincidenceParams,
    rng: &mut Rng,
    checkpoint: Option<usize>,
    far_end: bool,
) -> Run {
    let mut co = CoincidenceStream::new(*p).unwrap();
    let mut left: Vec<usize> = (0..trig.len()).collect(); // not pushed yet
    left.sort_by_key(|&i| trig[i].on_ns);
    let mut safe = trig[left[0]].on_ns - rng.below(10 * S as u64) as i64;
    let (mut pushed, mut events, mut steps) = (Vec::new(), Vec::new(), 0);
    while !left.is_empty() {
        safe += match rng.below(10) {
            0 => 0,
            1 | 2 => rng.below(1000) as i64,
            3..=5 => rng.below(30 * S as u64) as i64,
            6 => rng.below(2 * 3600 * S as u64) as i64,
            _ => {
                let k = (rng.below(5) as usize).min(left.len() - 1);
                let target = trig[left[k]].on_ns + rng.below(3) as i64 - 1;
                (target - safe).max(0)
            }
        };
        // Each sensor may be ahead of the safe time (the slowest sensor's)
        // by its own lead: it pushes its triggers with `on < safe + lead`.
        let lead: Vec<i64> = (0..sensors.len())
            .map(|_| match rng.below(4) {
                0 | 1 => 0,
                2 => rng.below(1000) as i64,
                _ => rng.below(10 * S as u64) as i64,
            })
            .collect();
        let (mut now, rest): (Vec<usize>, Vec<usize>) = left
            .iter()
            .partition(|&&i| trig[i].on_ns < safe + lead[trig[i].sensor]);
        left = rest;
        rng.shuffle(&mut now);
        for &i in &now {
            push(&mut co, sensors, &trig[i]);
            pushed.push(trig[i]);
        }
        events.extend(co.advance(safe));
        if checkpoint == Some(steps) {
            let json = serde_json::to_string(&co).unwrap();
            let back: CoincidenceStream = serde_json::from_str(&json).unwrap();
            assert_eq!(back, co);
            co = back;
        }
        steps += 1;
    }
    if far_end {
        let last = trig.iter().map(|t| t.off_ns).max().unwrap();
        let ext_ns = (p.trigger_off_extension_s.max(0.0) * 1e9) as i64;
        events.extend(co.advance(last + ext_ns + S));
        assert_eq!(co.pending(), 0, "far safe time finalises everything");
    }
    let from_advance = events.len();
    events.extend(co.flush());
    assert_eq!(co.pending(), 0);
    Run {
        pushed,
        events,
        from_advance,
        steps,
    }
}

fn params(n: usize, k_raw: usize, frac: f64, ext: f64) -> CoincidenceParams {
    CoincidenceParams {
        threshold_sum: (1 + k_raw % n) as f64 + frac,
        trigger_off_extension_s: ext,
    }
}

/// Mostly 0..3 s; also negative (allowed: only finiteness is required).
fn ext_s() -> impl Strategy<Value = f64> {
    prop_oneof![3 => Just(0.0), 6 => 0.0f64..3.0, 1 => -2.0f64..0.0]
}

fn frac() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(0.0), Just(0.5), Just(-0.2)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn stream_equals_batch(
        n in 2usize..=8, count in 200usize..700, k_raw in 0usize..8, frac in frac(),
        ext in ext_s(), seed in any::<u64>(), far_end in any::<bool>(),
    ) {
        let mut rng = Rng::new(seed);
        let sensors = network(n, &mut rng);
        let trig = triggers(n, count, &mut rng);
        let p = params(n, k_raw, frac, ext);
        let run = deliver(&sensors, &trig, &p, &mut rng, None, far_end);
        prop_assert_eq!(run.pushed.len(), trig.len());
        let want = batch(&sensors, &run.pushed, &p);
        prop_assert_eq!(bits(&run.events), bits(&want));
        prop_assert_eq!(run.events, want);
    }

    #[test]
    fn flush_without_advance_equals_batch(
        n in 2usize..=8, count in 200usize..700, k_raw in 0usize..8, frac in frac(),
        ext in ext_s(), seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let sensors = network(n, &mut rng);
        let mut trig = triggers(n, count, &mut rng);
        rng.shuffle(&mut trig);
        let p = params(n, k_raw, frac, ext);
        let mut co = CoincidenceStream::new(p).unwrap();
        for t in &trig {
            push(&mut co, &sensors, t);
        }
        prop_assert_eq!(co.pending(), trig.len());
        let got = co.flush();
        prop_assert_eq!(co.pending(), 0);
        prop_assert_eq!(bits(&got), bits(&batch(&sensors, &trig, &p)));
    }

    #[test]
    fn checkpoint_mid_stream_changes_nothing(
        n in 2usize..=8, count in 200usize..700, k_raw in 0usize..8, frac in frac(),
        ext in ext_s(), seed in any::<u64>(), at in 0.0f64..1.0,
    ) {
        let mut rng = Rng::new(seed);
        let sensors = network(n, &mut rng);
        let trig = triggers(n, count, &mut rng);
        let p = params(n, k_raw, frac, ext);
        let plain = deliver(&sensors, &trig, &p, &mut Rng::new(seed ^ 1), None, false);
        let step = (plain.steps as f64 * at) as usize;
        let ck = deliver(&sensors, &trig, &p, &mut Rng::new(seed ^ 1), Some(step), false);
        prop_assert_eq!(bits(&ck.events), bits(&plain.events));
        prop_assert_eq!(bits(&ck.events), bits(&batch(&sensors, &ck.pushed, &p)));
    }
}

/// The generator is not trivial: events come out, mostly from `advance`.
#[test]
fn advance_emits_before_flush() {
    let (mut total, mut from_advance) = (0, 0);
    for seed in 0..20 {
        let mut rng = Rng::new(seed);
        let sensors = network(5, &mut rng);
        let trig = triggers(5, 400, &mut rng);
        let p = params(5, 1, 0.0, 1.0);
        let run = deliver(&sensors, &trig, &p, &mut rng, None, false);
        assert_eq!(bits(&run.events), bits(&batch(&sensors, &run.pushed, &p)));
        total += run.events.len();
        from_advance += run.from_advance;
    }
    assert!(total > 200, "{total} events");
    assert!(from_advance * 10 > total * 9, "{from_advance} of {total}");
}

/// A steady stream of `hours`: 6 sensors, one noise trigger every 10–30 s
/// each (0.5–8 s long), a network event every 120 s (all sensors within
/// 1 s, 2–8 s long); micro-batches of 10 s. Returns (max pending after a
/// push, max serialized bytes, events, triggers).
fn steady(hours: i64, check_batch: bool) -> (usize, usize, usize, usize) {
    const N: usize = 6;
    let sensors: Vec<Sensor> = (0..N)
        .map(|i| Sensor {
            id: format!("XX.S{i}..HHZ"),
            weight: 1.0,
        })
        .collect();
    let p = CoincidenceParams {
        threshold_sum: 3.0,
        trigger_off_extension_s: 1.0,
    };
    // One generator per sensor and one for the events, so a shorter run
    // is a prefix of a longer one.
    let end = T0 + hours * 3600 * S;
    let mut trig = Vec::new();
    for sensor in 0..N {
        let mut rng = Rng::new(100 + sensor as u64);
        let mut t = T0 + rng.below(30 * S as u64) as i64;
        while t < end {
            let len = S / 2 + rng.below(15 * S as u64 / 2) as i64;
            let peak = 3.0 + rng.unit();
            trig.push(StationTrigger {
                sensor,
                on_ns: t,
                off_ns: t + len,
                peak,
            });
            t += 10 * S + rng.below(20 * S as u64) as i64;
        }
    }
    let mut rng = Rng::new(7);
    let mut e = T0 + 60 * S;
    while e < end {
        for sensor in 0..N {
            let on = e + rng.below(S as u64) as i64;
            let len = 2 * S + rng.below(6 * S as u64) as i64;
            trig.push(StationTrigger {
                sensor,
                on_ns: on,
                off_ns: on + len,
                peak: 10.0 + rng.unit(),
            });
        }
        e += 120 * S;
    }
    trig.sort_by_key(|t| t.on_ns);
    let mut co = CoincidenceStream::new(p).unwrap();
    let (mut next, mut safe, mut step) = (0, T0, 0);
    let (mut max_pending, mut max_bytes, mut events) = (0, 0, Vec::new());
    while next < trig.len() {
        safe += 10 * S;
        while next < trig.len() && trig[next].on_ns < safe {
            push(&mut co, &sensors, &trig[next]);
            next += 1;
        }
        max_pending = max_pending.max(co.pending());
        if step % 10 == 0 {
            max_bytes = max_bytes.max(serde_json::to_string(&co).unwrap().len());
        }
        step += 1;
        events.extend(co.advance(safe));
    }
    events.extend(co.flush());
    if check_batch {
        assert_eq!(bits(&events), bits(&batch(&sensors, &trig, &p)));
    }
    (max_pending, max_bytes, events.len(), trig.len())
}

#[test]
fn pending_state_does_not_grow_with_run_time() {
    // Bound from the docs: a front trigger is final once the safe time is
    // more than W = L + (k-1)(L+ext) + ext past its on (L = 8 s, k = 6,
    // ext = 1 s), so pending triggers have on times within W + one 10 s
    // micro-batch; per sensor at most span/10 s + 1 noise and
    // span/120 s + 1 event triggers.
    let span = 8 + 5 * (8 + 1) + 1 + 10;
    let bound = 6 * (span / 10 + 1 + span / 120 + 1);
    // Serialized size: an empty state plus < 200 bytes per trigger.
    let mut one = CoincidenceStream::new(CoincidenceParams {
        threshold_sum: 3.0,
        trigger_off_extension_s: 1.0,
    })
    .unwrap();
    let empty = serde_json::to_string(&one).unwrap().len();
    one.push(
        "XX.S5..HHZ",
        1.0,
        T0 + 123_456_789,
        T0 + 8 * S + 987_654_321,
        3.0 + 1.0 / 3.0,
    )
    .unwrap();
    let per = serde_json::to_string(&one).unwrap().len() - empty;
    assert!(per < 200, "{per} bytes per trigger");
    let byte_bound = empty + bound * 200;

    let mut seen = Vec::new();
    for hours in [1, 10, 100] {
        let (max_pending, max_bytes, events, n) = steady(hours, hours == 10);
        assert!(events as i64 >= hours * 25, "{hours} h: {events} events");
        assert!(
            max_pending <= bound,
            "{hours} h ({n} triggers): {max_pending} > {bound}"
        );
        assert!(
            max_bytes <= byte_bound,
            "{hours} h: {max_bytes} > {byte_bound} bytes"
        );
        seen.push((max_pending, max_bytes));
    }
    // The 1 h stream is a prefix of the 100 h one: 100 x the run time adds
    // at most one trigger per sensor to the worst case seen.
    let (p1, b1) = seen[0];
    let (p100, b100) = seen[2];
    assert!(p100 <= p1 + 6, "pending {p1} after 1 h, {p100} after 100 h");
    assert!(
        b100 <= b1 + 6 * 200,
        "bytes {b1} after 1 h, {b100} after 100 h"
    );
}

/// Finality compares float timestamps: a trigger 1 ns before the safe time
/// but with the same float timestamp is not final, since a later trigger at
/// the safe time can sort before it (here by its earlier off).
#[test]
fn float_tie_at_the_safe_time_is_not_final() {
    let p = CoincidenceParams {
        threshold_sum: 1.0,
        trigger_off_extension_s: -1.0,
    };
    let safe = T0 + 1000 * S;
    assert_eq!((safe - 1) as f64, safe as f64);
    let mut co = CoincidenceStream::new(p).unwrap();
    co.push("XX.A..HHZ", 1.0, safe - 1, safe + S / 2, 4.0)
        .unwrap();
    assert!(co.advance(safe).is_empty());
    co.push("XX.B..HHZ", 1.0, safe, safe + S / 10, 5.0).unwrap();
    let got = co.flush();
    let sensors = [
        Sensor {
            id: "XX.A..HHZ".into(),
            weight: 1.0,
        },
        Sensor {
            id: "XX.B..HHZ".into(),
            weight: 1.0,
        },
    ];
    let trig = [
        StationTrigger {
            sensor: 0,
            on_ns: safe - 1,
            off_ns: safe + S / 2,
            peak: 4.0,
        },
        StationTrigger {
            sensor: 1,
            on_ns: safe,
            off_ns: safe + S / 10,
            peak: 5.0,
        },
    ];
    let want = batch(&sensors, &trig, &p);
    assert_eq!(want.len(), 2);
    assert_eq!(want[0].ids, ["XX.B..HHZ"]);
    assert_eq!(bits(&got), bits(&want));
}

#[test]
fn late_push_breaking_the_contract_does_not_panic() {
    let p = CoincidenceParams {
        threshold_sum: 1.0,
        trigger_off_extension_s: 0.5,
    };
    // Nothing emitted yet: the late trigger is processed at the next advance.
    let mut co = CoincidenceStream::new(p).unwrap();
    assert!(co.advance(T0 + 100 * S).is_empty());
    co.push("XX.A..HHZ", 1.0, T0 + 10 * S, T0 + 12 * S, 4.0)
        .unwrap();
    let ev = co.advance(T0 + 100 * S);
    assert_eq!(co.pending(), 0);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].time_ns, ev[0].off_ns), (T0 + 10 * S, T0 + 12 * S));
    assert_eq!(ev[0].stations, ["A"]);

    // After later events: inserted first, processed, suppressed by the
    // `off > last_off_time` rule as the docs say; others unaffected.
    let mut co = CoincidenceStream::new(p).unwrap();
    co.push("XX.A..HHZ", 1.0, T0 + 50 * S, T0 + 52 * S, 4.0)
        .unwrap();
    assert_eq!(co.advance(T0 + 60 * S).len(), 1);
    co.push("XX.B..HHZ", 1.0, T0 + 70 * S, T0 + 71 * S, 4.0)
        .unwrap();
    co.push("XX.C..HHZ", 1.0, T0 + 20 * S, T0 + 21 * S, 4.0)
        .unwrap(); // late
    co.push("XX.A..HHZ", 1.0, T0 + 20 * S, T0 + 21 * S, 4.0)
        .unwrap(); // late, same on
    assert_eq!(co.pending(), 3);
    assert!(co.advance(T0 + 65 * S).is_empty());
    assert_eq!(co.pending(), 1);
    let ev = co.flush();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].ids, ["XX.B..HHZ"]);
    assert_eq!(co.pending(), 0);
}

#[test]
fn bad_input_is_rejected() {
    let bad = |r: Result<CoincidenceStream, KernelError>, want: &str| match r {
        Err(KernelError::InvalidParameter { name, .. }) => assert_eq!(name, want),
        other => panic!("{other:?}"),
    };
    let p = |t: f64, e: f64| CoincidenceParams {
        threshold_sum: t,
        trigger_off_extension_s: e,
    };
    bad(CoincidenceStream::new(p(f64::NAN, 0.0)), "threshold_sum");
    bad(
        CoincidenceStream::new(p(2.0, f64::INFINITY)),
        "trigger_off_extension",
    );
    bad(
        CoincidenceStream::new(p(2.0, f64::NAN)),
        "trigger_off_extension",
    );

    let mut co = CoincidenceStream::new(p(2.0, 0.0)).unwrap();
    let name = |r: Result<(), KernelError>| match r {
        Err(KernelError::InvalidParameter { name, .. }) => name,
        other => panic!("{other:?}"),
    };
    assert_eq!(name(co.push("XXSTA", 1.0, T0, T0 + S, 1.0)), "id");
    assert_eq!(
        name(co.push("XX.A..HHZ", f64::NAN, T0, T0 + S, 1.0)),
        "weight"
    );
    assert_eq!(
        name(co.push("XX.A..HHZ", f64::INFINITY, T0, T0 + S, 1.0)),
        "weight"
    );
    assert_eq!(co.pending(), 0);
    // Same messages as the batch.
    let sensors = [Sensor {
        id: "XXSTA".into(),
        weight: 1.0,
    }];
    assert_eq!(
        coincidence_trigger(&sensors, &[], &p(2.0, 0.0)).unwrap_err(),
        co.push("XXSTA", 1.0, T0, T0 + S, 1.0).unwrap_err()
    );
}
