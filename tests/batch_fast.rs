//! The batch fast path (SIMD multi-channel detection chains,
//! `src/chain/multichannel.rs`) gives exactly the JSON lines of the scalar
//! per-sensor path (`FAKOPP_SCALAR_ONLY=1`), on generated data with several
//! rate / length groups, unequal lengths, gaps, missing readings and a
//! chain the fast path must leave to the scalar one.

mod common;

use common::{fakopp, json_lines, stderr, write_config};
use std::fmt::Write as _;
use std::path::Path;

/// Deterministic pseudo-random numbers (xorshift), no dependencies.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

/// A sensor of the generated network.
struct Gen {
    id: String,
    rate: f64,
    /// Start offset in seconds from the common origin.
    offset_s: f64,
    samples: usize,
    /// Sample index ranges removed (gaps) or set to NaN (missing readings).
    gaps: Vec<(usize, usize)>,
    nans: Vec<(usize, usize)>,
}

/// Long CSV (`time,sensor,value`): noise with bursts that trigger.
fn write_csv(path: &Path, sensors: &[Gen]) {
    let origin_ns: i64 = 1_714_521_600_000_000_000; // 2024-05-01T00:00:00Z
    let mut text = String::from("time,sensor,value\n");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (k, s) in sensors.iter().enumerate() {
        let dt_ns = (1e9 / s.rate).round() as i64;
        let t0 = origin_ns + (s.offset_s * 1e9).round() as i64;
        for i in 0..s.samples {
            if s.gaps.iter().any(|&(a, b)| i >= a && i < b) {
                continue;
            }
            let t = i as f64 / s.rate;
            // A burst every ~40 s, shifted per sensor, 5 Hz, 3 s long.
            let phase = (t + 3.0 * k as f64) % 40.0;
            let burst = if (20.0..23.0).contains(&phase) {
                30.0 * (2.0 * std::f64::consts::PI * 5.0 * t).sin()
            } else {
                0.0
            };
            let v = if s.nans.iter().any(|&(a, b)| i >= a && i < b) {
                String::new()
            } else {
                format!("{:.6}", rng.next() * 4.0 + burst)
            };
            let secs = t0 + i as i64 * dt_ns;
            let (sec, ns) = (
                secs.div_euclid(1_000_000_000),
                secs.rem_euclid(1_000_000_000),
            );
            writeln!(text, "{},{},{v}", rfc3339(sec, ns), s.id).unwrap();
        }
    }
    std::fs::write(path, text).unwrap();
}

/// RFC 3339 UTC time of `sec` seconds (+ `ns`) since the epoch.
fn rfc3339(sec: i64, ns: i64) -> String {
    let days = sec.div_euclid(86_400);
    let rem = sec.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ns:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

const CONFIG: &str = r#"
[source]
kind = "files"
[stream]
max_gap_interp_samples = 5
[[chains]]
name = "p-bp"
select = ["XX.*"]
steps = [
  { op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 5.0 },
  { op = "trigger", on = 3.0, off = 1.5 },
]
[[chains]]
name = "p-hp"
select = ["XX.A*", "YY.*"]
steps = [
  { op = "highpass", freq = 2.0, corners = 2 },
  { op = "recursive_sta_lta", sta = 0.3, lta = 4.0 },
  { op = "trigger", on = 2.5, off = 1.2, max_len = 2.0 },
]
[[chains]]
name = "p-lp"
select = ["YY.*"]
steps = [
  { op = "lowpass", freq = 8.0, corners = 3 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 6.0 },
  { op = "trigger", on = 2.5, off = 1.0 },
]
# Not eligible (an extra step): always the scalar path.
[[chains]]
name = "p-demean"
select = ["XX.A*"]
steps = [
  { op = "demean" },
  { op = "bandpass", freqmin = 1.0, freqmax = 10.0, corners = 4 },
  { op = "recursive_sta_lta", sta = 0.5, lta = 5.0 },
  { op = "trigger", on = 3.0, off = 1.5 },
]
[[coincidence]]
chain = "p-bp"
threshold_sum = 2
max_trigger_length_s = 2.5
trigger_off_extension_s = 1.0
"#;

fn network() -> Vec<Gen> {
    let mut v = Vec::new();
    // 100 Hz, 20 sensors of equal length and start (fills lane groups of 8
    // and a partial one), plus some longer/shorter and shifted ones.
    for i in 0..20 {
        v.push(Gen {
            id: format!("XX.A{i:02}..HHZ"),
            rate: 100.0,
            offset_s: 0.0,
            samples: 24_000,
            gaps: Vec::new(),
            nans: Vec::new(),
        });
    }
    for i in 0..5 {
        v.push(Gen {
            id: format!("XX.B{i:02}..HHZ"),
            rate: 100.0,
            offset_s: 1.37 * i as f64,
            samples: 20_000 + 1_111 * i,
            gaps: Vec::new(),
            nans: Vec::new(),
        });
    }
    // Gaps longer than max_gap (new segments) and short ones (interpolated
    // by the reader), on several sensors.
    for i in 0..4 {
        v.push(Gen {
            id: format!("XX.G{i:02}..HHZ"),
            rate: 100.0,
            offset_s: 0.0,
            samples: 24_000,
            gaps: vec![(7_000 + 500 * i, 7_300 + 500 * i), (15_000, 15_040)],
            nans: Vec::new(),
        });
    }
    // Missing readings (NaN): the scalar path.
    v.push(Gen {
        id: "XX.N00..HHZ".into(),
        rate: 100.0,
        offset_s: 0.0,
        samples: 24_000,
        gaps: Vec::new(),
        nans: vec![(9_000, 9_003), (12_000, 12_400)],
    });
    // Another rate: 50 Hz.
    for i in 0..9 {
        v.push(Gen {
            id: format!("YY.C{i:02}..BHZ"),
            rate: 50.0,
            offset_s: 0.5 * (i % 3) as f64,
            samples: 12_000 - 1_000 * (i % 2),
            gaps: if i == 4 {
                vec![(3_000, 3_500)]
            } else {
                Vec::new()
            },
            nans: Vec::new(),
        });
    }
    v
}

fn run(cfg: &Path, input: &Path, out: &Path, scalar: bool) -> Vec<u8> {
    let mut c = fakopp();
    c.env_remove("FAKOPP_SCALAR_ONLY")
        .env("FAKOPP_LOG", "debug");
    if scalar {
        c.env("FAKOPP_SCALAR_ONLY", "1");
    }
    let o = c
        .args(["batch", "--config"])
        .arg(cfg)
        .arg("--output")
        .arg(out)
        .args(["--format", "jsonl"])
        .arg(input)
        .output()
        .unwrap();
    assert!(o.status.success(), "scalar={scalar}: {}", stderr(&o));
    // p-bp: 29 XX sensors less the NaN one; p-hp: 20 + 9; p-lp: 9.
    let planned = stderr(&o).contains("batch fast path: 67 (chain, sensor) pairs");
    assert_eq!(planned, !scalar, "scalar={scalar}: {}", stderr(&o));
    std::fs::read(out).unwrap()
}

#[test]
fn fast_path_json_lines_equal_the_scalar_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "fast.toml", CONFIG);
    let input = dir.path().join("net.csv");
    write_csv(&input, &network());
    let fast = run(&cfg, &input, &dir.path().join("fast.jsonl"), false);
    let scalar = run(&cfg, &input, &dir.path().join("scalar.jsonl"), true);

    let lines = json_lines(&fast);
    let triggers = |chain: &str| {
        lines
            .iter()
            .filter(|l| l["type"] == "trigger" && l["chain"] == chain)
            .count()
    };
    for chain in ["p-bp", "p-hp", "p-lp", "p-demean"] {
        assert!(
            triggers(chain) >= 10,
            "{chain}: {} triggers",
            triggers(chain)
        );
    }
    assert!(lines.iter().any(|l| l["type"] == "event"));
    // Triggers in later segments of gapped sensors and on the NaN sensor.
    assert!(lines.iter().any(|l| l["type"] == "trigger"
        && l["sensor"] == "XX.G00..HHZ"
        && l["on_time"].as_str().unwrap() > "2024-05-01T00:01:15"));
    assert!(lines
        .iter()
        .any(|l| l["type"] == "trigger" && l["sensor"] == "XX.N00..HHZ"));
    assert_eq!(
        String::from_utf8_lossy(&fast),
        String::from_utf8_lossy(&scalar),
        "fast path and scalar path JSON lines differ"
    );
}
