//! The built-in network simulator: the embedded default's data, with the
//! truth it was built from so detections can be checked against it.
//!
//! * Seismic: `seismic_stations` vertical 100 Hz stations `XX.STAnn..HHZ`
//!   scattered over a 100 km × 100 km area. Background noise is
//!   AR(1)-coloured Gaussian noise plus a 0.2 Hz microseism; each event
//!   (origin time and epicentre drawn from the seed) adds at every station
//!   a P wavelet (5 Hz, 2 s decay) arriving at `origin + distance / 6 km/s`,
//!   its amplitude falling with distance.
//! * Groundwater `EMB.GWnn..GWL` (m) and pH `EMB.PHnn..PH`, every 15 min
//!   over `env_days`: slow drift, a daily cycle and noise, with injected
//!   spikes, a stuck-sensor flat line and an out-of-range reading.

use crate::config::SyntheticConfig;
use crate::model::{parse_time_ns, Segment, SensorKind, Series};
use anyhow::{anyhow, Result};
use std::f64::consts::PI;

const P_VELOCITY_KM_S: f64 = 6.0;
const ENV_INTERVAL_S: f64 = 900.0;

/// One simulated earthquake.
#[derive(Debug, Clone)]
pub struct TrueEvent {
    pub origin_ns: i64,
    pub x_km: f64,
    pub y_km: f64,
    /// Earliest P arrival over the network.
    pub first_arrival_ns: i64,
}

/// An injected environmental anomaly.
#[derive(Debug, Clone)]
pub struct TrueAnomaly {
    pub sensor: String,
    pub what: &'static str,
    pub time_ns: i64,
}

pub struct Synthetic {
    pub series: Vec<Series>,
    pub events: Vec<TrueEvent>,
    pub anomalies: Vec<TrueAnomaly>,
}

/// SplitMix64: tiny, seedable, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.uniform()
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    }
}

pub fn generate(cfg: &SyntheticConfig) -> Result<Synthetic> {
    let start_ns = parse_time_ns(&cfg.start).map_err(|e| anyhow!("synthetic.start: {e}"))?;
    let mut rng = Rng(cfg.seed);
    let rate = cfg.sample_rate_hz;
    let n = (cfg.duration_s * rate).round() as usize;

    let stations: Vec<(f64, f64)> = (0..cfg.seismic_stations)
        .map(|_| (rng.range(0.0, 100.0), rng.range(0.0, 100.0)))
        .collect();
    let mut events = Vec::new();
    for k in 0..cfg.events {
        // Spread over the window, after the STA/LTA warm-up, well apart.
        let frac = (k as f64 + 0.5 + rng.range(-0.2, 0.2)) / cfg.events as f64;
        let origin_s = 20.0 + frac * (cfg.duration_s - 40.0);
        let (x, y) = (rng.range(10.0, 90.0), rng.range(10.0, 90.0));
        let origin_ns = start_ns + (origin_s * 1e9) as i64;
        let first = stations
            .iter()
            .map(|&(sx, sy)| origin_s + (sx - x).hypot(sy - y) / P_VELOCITY_KM_S)
            .fold(f64::INFINITY, f64::min);
        events.push(TrueEvent {
            origin_ns,
            x_km: x,
            y_km: y,
            first_arrival_ns: start_ns + (first * 1e9) as i64,
        });
    }
    let magnitudes: Vec<f64> = events.iter().map(|_| rng.range(0.8, 1.5)).collect();

    let mut series = Vec::new();
    for (i, &(sx, sy)) in stations.iter().enumerate() {
        let mut x = vec![0.0; n];
        let (mut ar, phase) = (0.0, rng.range(0.0, 2.0 * PI));
        for (j, v) in x.iter_mut().enumerate() {
            ar = 0.8 * ar + rng.normal();
            *v = ar + 3.0 * (2.0 * PI * 0.2 * j as f64 / rate + phase).sin();
        }
        for (ev, mag) in events.iter().zip(&magnitudes) {
            let dist = (sx - ev.x_km).hypot(sy - ev.y_km);
            let arrival_s = (ev.origin_ns - start_ns) as f64 / 1e9 + dist / P_VELOCITY_KM_S;
            let amp = mag * 60.0 / (1.0 + dist / 25.0);
            let j0 = (arrival_s * rate).ceil() as usize;
            for (j, v) in x
                .iter_mut()
                .enumerate()
                .skip(j0)
                .take((12.0 * rate) as usize)
            {
                let t = j as f64 / rate - arrival_s;
                let rise = 1.0 - (-t / 0.05).exp();
                *v += amp * rise * (-t / 2.0).exp() * (2.0 * PI * 5.0 * t).sin();
            }
        }
        series.push(Series {
            sensor_id: format!("XX.STA{:02}..HHZ", i + 1),
            kind: SensorKind::Seismic,
            unit: "counts".into(),
            sample_rate_hz: rate,
            segments: vec![Segment {
                start_ns,
                samples: x,
                times_ns: vec![],
            }],
            raw_texts: None,
        });
    }

    let mut anomalies = Vec::new();
    let env_n = (cfg.env_days * 86_400.0 / ENV_INTERVAL_S).round() as usize;
    let end_ns = start_ns + (cfg.duration_s * 1e9) as i64;
    let env_start = end_ns - (env_n as f64 * ENV_INTERVAL_S * 1e9) as i64;
    let env_time = |j: usize| env_start + (j as f64 * ENV_INTERVAL_S * 1e9) as i64;
    let mut env = |prefix: &str,
                   cha: &str,
                   kind,
                   unit: &str,
                   count: usize,
                   base: f64,
                   daily: f64,
                   noise: f64,
                   spike: f64,
                   bad: f64,
                   rng: &mut Rng| {
        for i in 0..count {
            let sensor = format!("EMB.{prefix}{:02}..{cha}", i + 1);
            let drift = rng.range(-0.5, 0.5) * daily;
            let mut v: Vec<f64> = (0..env_n)
                .map(|j| {
                    let days = j as f64 * ENV_INTERVAL_S / 86_400.0;
                    base + drift * days / 10.0
                        + daily * (2.0 * PI * days).sin()
                        + noise * rng.normal()
                })
                .collect();
            if env_n > 100 {
                for _ in 0..3 {
                    let j = (rng.range(0.05, 0.95) * env_n as f64) as usize;
                    v[j] += spike * if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
                    anomalies.push(TrueAnomaly {
                        sensor: sensor.clone(),
                        what: "spike",
                        time_ns: env_time(j),
                    });
                }
                // A stuck logger: 8 hours of one value.
                let j = (rng.range(0.1, 0.8) * env_n as f64) as usize;
                let stuck = v[j];
                v[j..(j + 32).min(env_n)].fill(stuck);
                anomalies.push(TrueAnomaly {
                    sensor: sensor.clone(),
                    what: "flat line",
                    time_ns: env_time(j),
                });
                let j = (rng.range(0.05, 0.95) * env_n as f64) as usize;
                v[j] = bad;
                anomalies.push(TrueAnomaly {
                    sensor: sensor.clone(),
                    what: "out of range",
                    time_ns: env_time(j),
                });
                // A missing reading.
                let j = (rng.range(0.05, 0.95) * env_n as f64) as usize;
                v[j] = f64::NAN;
                anomalies.push(TrueAnomaly {
                    sensor: sensor.clone(),
                    what: "missing",
                    time_ns: env_time(j),
                });
            }
            series.push(Series {
                sensor_id: sensor,
                kind,
                unit: unit.into(),
                sample_rate_hz: 1.0 / ENV_INTERVAL_S,
                segments: vec![Segment {
                    start_ns: env_start,
                    samples: v,
                    times_ns: vec![],
                }],
                raw_texts: None,
            });
        }
    };
    env(
        "GW",
        "GWL",
        SensorKind::GroundwaterLevel,
        "m",
        cfg.groundwater_sensors,
        -4.0,
        0.02,
        0.002,
        0.3,
        99.0,
        &mut rng,
    );
    env(
        "PH",
        "PH",
        SensorKind::Ph,
        "pH",
        cfg.ph_sensors,
        7.6,
        0.1,
        0.01,
        1.2,
        15.0,
        &mut rng,
    );
    series.sort_by(|a, b| a.sensor_id.cmp(&b.sensor_id));
    Ok(Synthetic {
        series,
        events,
        anomalies,
    })
}
