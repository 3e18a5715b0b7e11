//! The data model shared by sources, the pipeline and sinks.

use serde::{Deserialize, Serialize};

/// What a sensor measures (`schemas/sensor_packet.avsc`, enum SensorKind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    Seismic,
    GroundwaterLevel,
    Ph,
    Conductivity,
    Temperature,
    Other,
}

impl SensorKind {
    /// Avro enum symbols in schema order.
    pub const ALL: [SensorKind; 6] = [
        SensorKind::Seismic,
        SensorKind::GroundwaterLevel,
        SensorKind::Ph,
        SensorKind::Conductivity,
        SensorKind::Temperature,
        SensorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SensorKind::Seismic => "seismic",
            SensorKind::GroundwaterLevel => "groundwater_level",
            SensorKind::Ph => "ph",
            SensorKind::Conductivity => "conductivity",
            SensorKind::Temperature => "temperature",
            SensorKind::Other => "other",
        }
    }
}

/// A run of evenly spaced readings from one sensor (docs/reference.md, "Packets").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorPacket {
    pub sensor_id: String,
    pub kind: SensorKind,
    pub start_time_ns: i64,
    pub sample_rate_hz: f64,
    pub samples: Vec<f64>,
    pub unit: String,
    #[serde(default)]
    pub seq: Option<i64>,
}

/// Checks the `NET.STA.LOC.CHA` form: four dot-separated parts, network,
/// station and channel non-empty, location may be empty; ASCII letters,
/// digits, `-` and `_` only.
pub fn valid_sensor_id(id: &str) -> Result<(), String> {
    let parts: Vec<&str> = id.split('.').collect();
    if parts.len() != 4 {
        return Err(format!(
            "sensor_id `{id}` must have the form NET.STA.LOC.CHA"
        ));
    }
    for (i, (p, name)) in parts
        .iter()
        .zip(["network", "station", "location", "channel"])
        .enumerate()
    {
        if p.is_empty() && i != 2 {
            return Err(format!("sensor_id `{id}`: {name} code is empty"));
        }
        if p.len() > 16
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("sensor_id `{id}`: {name} code `{p}` has characters outside [A-Za-z0-9_-] or is too long"));
        }
    }
    Ok(())
}

const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// UTC day number (days since 1970-01-01) of a time in ns: partitions rows by day.
pub fn day_of(time_ns: i64) -> i32 {
    time_ns.div_euclid(NS_PER_DAY) as i32
}

/// `YYYY-MM-DDTHH:MM:SS` of whole seconds since the epoch (UTC).
fn format_seconds(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Formats ns since the epoch as RFC 3339 UTC with microseconds,
/// e.g. `2024-05-01T12:00:03.250000Z`.
pub fn format_time_us(time_ns: i64) -> String {
    let micros = time_ns.rem_euclid(1_000_000_000) / 1_000;
    format!(
        "{}.{micros:06}Z",
        format_seconds(time_ns.div_euclid(1_000_000_000))
    )
}

/// Formats ns since the epoch as RFC 3339 UTC with as many fractional
/// digits as the time needs (0, 3, 6 or 9), so it reads back exactly:
/// `2024-05-01T12:00:03.250Z`.
pub fn format_time_exact(time_ns: i64) -> String {
    let ns = time_ns.rem_euclid(1_000_000_000);
    let frac = if ns == 0 {
        String::new()
    } else if ns % 1_000_000 == 0 {
        format!(".{:03}", ns / 1_000_000)
    } else if ns % 1_000 == 0 {
        format!(".{:06}", ns / 1_000)
    } else {
        format!(".{ns:09}")
    };
    format!(
        "{}{frac}Z",
        format_seconds(time_ns.div_euclid(1_000_000_000))
    )
}

/// Formats a UTC day number as `YYYY-MM-DD`.
pub fn format_day(day: i32) -> String {
    let (y, m, d) = civil_from_days(i64::from(day));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Proleptic Gregorian date of a day number (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Day number of a proleptic Gregorian date (inverse of `civil_from_days`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Series cross MPI as postcard (synthetic networks are scattered):
    /// the raw texts come back with them.
    #[test]
    fn a_series_with_raw_texts_survives_postcard() {
        let s = Series {
            sensor_id: "X.A..P".into(),
            kind: SensorKind::Other,
            unit: "pH".into(),
            sample_rate_hz: 0.0,
            segments: vec![Segment {
                start_ns: 5,
                samples: vec![7.1, f64::NAN],
                times_ns: vec![5, 9],
            }],
            raw_texts: Some(std::sync::Arc::new(
                fakopp_kernels::qc::RawTexts::first_per_time([(5, "7.1"), (9, "")]),
            )),
        };
        let bytes = postcard::to_stdvec(&s).unwrap();
        let back: Series = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.raw_texts, s.raw_texts);
        assert_eq!(back.raw_texts.as_ref().unwrap().get(9), Some(""));
        let none = Series {
            raw_texts: None,
            ..s
        };
        let back: Series = postcard::from_bytes(&postcard::to_stdvec(&none).unwrap()).unwrap();
        assert!(back.raw_texts.is_none());
    }

    #[test]
    fn formats_times_with_microseconds() {
        assert_eq!(format_time_us(0), "1970-01-01T00:00:00.000000Z");
        // 2024-05-01T12:00:03.25Z
        let t =
            (days_from_civil(2024, 5, 1) * 86_400 + 12 * 3600 + 3) * 1_000_000_000 + 250_000_000;
        assert_eq!(format_time_us(t), "2024-05-01T12:00:03.250000Z");
        assert_eq!(format_time_us(-1_000), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn day_numbers_round_trip() {
        for d in [-800_000, -1, 0, 1, 19_844, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn sensor_ids() {
        assert!(valid_sensor_id("GB.CWF..HHZ").is_ok());
        assert!(valid_sensor_id("EMB.X1.00.PH").is_ok());
        assert!(valid_sensor_id("GB.CWF.HHZ")
            .unwrap_err()
            .contains("NET.STA.LOC.CHA"));
        assert!(valid_sensor_id(".CWF..HHZ")
            .unwrap_err()
            .contains("network"));
        assert!(valid_sensor_id("GB.C W..HHZ")
            .unwrap_err()
            .contains("station"));
    }
}

/// The value of a grid slot at which no reading was made: a timestamp
/// missing between two pieces of a regular series (docs/architecture.md,
/// "Observations and the sample grid"). It is a NaN, so every kernel that
/// skips or flags NaN treats it as missing, but a NaN with its own payload
/// (as R's `NA_real_` is), so QC can tell it from a reading that was
/// recorded as NaN (an empty CSV cell, a NaN in a packet) and leave it out:
/// ioos_qc flags observations as recorded, and a reading never made is not
/// one. Sources turn every NaN they read into [`f64::NAN`], so input data
/// can never carry this payload.
pub const NOT_RECORDED: f64 = f64::from_bits(0x7FF8_0000_0000_07A2);

/// False for [`NOT_RECORDED`] slots, true for every reading (NaN included).
#[inline]
pub fn is_recorded(v: f64) -> bool {
    v.to_bits() != NOT_RECORDED.to_bits()
}

/// Makes every NaN the canonical [`f64::NAN`], so no input value can be
/// mistaken for [`NOT_RECORDED`].
#[inline]
pub fn canonical_nan(v: f64) -> f64 {
    if v.is_nan() {
        f64::NAN
    } else {
        v
    }
}

/// A contiguous run of samples from one sensor: evenly spaced at the
/// series' rate, or, for irregular series (`sample_rate_hz == 0`), with one
/// time per sample in `times_ns`. Readings recorded as missing are NaN;
/// slots of the grid at which no reading was made are [`NOT_RECORDED`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start_ns: i64,
    #[serde(with = "f64s_as_bytes")]
    pub samples: Vec<f64>,
    /// Sample times for irregular series; empty for regular ones.
    #[serde(default)]
    pub times_ns: Vec<i64>,
}

/// Samples as one little-endian byte string in binary formats (the MPI
/// messages): one copy each way instead of a call per sample, which made
/// shipping an archive's series between ranks slower than processing them.
/// Human-readable formats keep a list of numbers.
pub(crate) mod f64s_as_bytes {
    use serde::de::{Deserialize, Deserializer, Error};
    use serde::ser::Serializer;

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return s.collect_seq(v);
        }
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        if d.is_human_readable() {
            return Vec::<f64>::deserialize(d);
        }
        let bytes: &[u8] = <&[u8]>::deserialize(d)?;
        let (chunks, rest) = bytes.as_chunks::<8>();
        if !rest.is_empty() {
            return Err(D::Error::custom(format!(
                "{} sample bytes: not a whole number of f64",
                bytes.len()
            )));
        }
        Ok(chunks.iter().map(|c| f64::from_le_bytes(*c)).collect())
    }
}

impl Segment {
    /// Time of sample `i` (regular series use the rate).
    pub fn time_of(&self, i: usize, sample_rate_hz: f64) -> i64 {
        if self.times_ns.is_empty() {
            self.start_ns + (i as f64 * 1e9 / sample_rate_hz).round() as i64
        } else {
            self.times_ns[i]
        }
    }
}

/// Everything known of one sensor in a batch run, as contiguous segments
/// in time order (no overlaps; gaps between segments are larger than the
/// interpolation limit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub sensor_id: String,
    pub kind: SensorKind,
    pub unit: String,
    /// Samples per second; 0 for irregular series (times in each segment).
    pub sample_rate_hz: f64,
    pub segments: Vec<Segment>,
    /// The raw text of each observation, when the source read text (CSV)
    /// and a chain's `syntax` test asked for it.
    #[serde(default)]
    pub raw_texts: Option<std::sync::Arc<fakopp_kernels::qc::RawTexts>>,
}

impl Series {
    pub fn sample_count(&self) -> usize {
        self.segments.iter().map(|s| s.samples.len()).sum()
    }
}

/// Guesses a sensor's kind from its SEED channel code or name, for inputs
/// that do not say (MiniSEED, CSV).
pub fn kind_from_channel(sensor_id: &str) -> SensorKind {
    let cha = sensor_id
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let b = cha.as_bytes();
    if b.len() == 3 && b"EHSBMLV".contains(&b[0]) && b"HLGNM".contains(&b[1]) {
        return SensorKind::Seismic;
    }
    if cha.starts_with("PH") {
        SensorKind::Ph
    } else if cha.starts_with("GW") || cha.contains("HEAD") || cha.contains("LEVEL") {
        SensorKind::GroundwaterLevel
    } else if cha.starts_with("COND") || cha.starts_with("SPC") || cha.starts_with("EC") {
        SensorKind::Conductivity
    } else if cha.starts_with("TEMP") || cha.starts_with("WT") {
        SensorKind::Temperature
    } else {
        SensorKind::Other
    }
}

/// Parses an RFC 3339 / ISO 8601 date-time into ns since the epoch (UTC).
///
/// Accepted: `YYYY-MM-DD`, then optionally `T`, `t` or a space and
/// `HH:MM[:SS[.fraction]]` (fraction up to 9 digits; more are truncated),
/// then optionally `Z`/`z` or an offset `±HH:MM`, `±HHMM` or `±HH`.
/// Times without an offset (naive) are UTC. A leap second (`:60`) counts
/// as the first second of the next minute.
pub fn parse_time_ns(text: &str) -> Result<i64, String> {
    let s = text.trim();
    let err = |why: &str| {
        format!("invalid time `{text}`: {why} (expected RFC 3339, e.g. 2024-05-01T12:00:03.25Z)")
    };
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let (y, m, d) = match (num(0, 4), b.get(4), num(5, 2), b.get(7), num(8, 2)) {
        (Some(y), Some(b'-'), Some(m), Some(b'-'), Some(d)) => (y, m, d),
        _ => return Err(err("date must be YYYY-MM-DD")),
    };
    if !(1..=12).contains(&m) {
        return Err(err("month out of range"));
    }
    let month_len = [
        31,
        28 + i64::from(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d < 1 || d > month_len[(m - 1) as usize] {
        return Err(err("day out of range"));
    }
    let mut secs = days_from_civil(y, m as u32, d as u32) * 86_400;
    let mut nanos = 0i64;
    let mut i = 10;
    if i < b.len() && matches!(b[i], b'T' | b't' | b' ') {
        i += 1;
        let (hh, mm) = match (num(i, 2), b.get(i + 2), num(i + 3, 2)) {
            (Some(h), Some(b':'), Some(mi)) => (h, mi),
            _ => return Err(err("time of day must be HH:MM[:SS[.fraction]]")),
        };
        i += 5;
        let mut ss = 0;
        if b.get(i) == Some(&b':') {
            ss = num(i + 1, 2).ok_or_else(|| err("seconds must be two digits"))?;
            i += 3;
            if matches!(b.get(i), Some(b'.') | Some(b',')) {
                i += 1;
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    if i - start < 9 {
                        nanos = nanos * 10 + i64::from(b[i] - b'0');
                    }
                    i += 1;
                }
                if i == start {
                    return Err(err("empty fraction of a second"));
                }
                for _ in (i - start)..9 {
                    nanos *= 10;
                }
            }
        }
        if hh > 23 || mm > 59 || ss > 60 {
            return Err(err("hour, minute or second out of range"));
        }
        secs += hh * 3600 + mm * 60 + ss;
        match b.get(i) {
            None => {}
            Some(b'Z' | b'z') => i += 1,
            Some(&sign @ (b'+' | b'-')) => {
                let oh = num(i + 1, 2).ok_or_else(|| err("offset must be ±HH:MM"))?;
                i += 3;
                let om = if b.get(i) == Some(&b':') {
                    i += 3;
                    num(i - 2, 2).ok_or_else(|| err("offset must be ±HH:MM"))?
                } else if let Some(om) = num(i, 2) {
                    i += 2;
                    om
                } else {
                    0
                };
                if oh > 23 || om > 59 {
                    return Err(err("offset out of range"));
                }
                let off = oh * 3600 + om * 60;
                secs -= if sign == b'+' { off } else { -off };
            }
            Some(_) => return Err(err("unexpected text after the time")),
        }
    }
    if i != b.len() {
        return Err(err("unexpected text after the date"));
    }
    secs.checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(nanos))
        .ok_or_else(|| err("out of the representable range (years 1678-2261)"))
}

#[cfg(test)]
mod time_parse_tests {
    use super::*;

    #[test]
    fn parses_rfc3339_variants() {
        let base = days_from_civil(2024, 5, 1) * 86_400 * 1_000_000_000;
        let h12 = base + 12 * 3_600_000_000_000;
        assert_eq!(parse_time_ns("2024-05-01"), Ok(base));
        assert_eq!(parse_time_ns("2024-05-01T12:00:00Z"), Ok(h12));
        assert_eq!(parse_time_ns("2024-05-01 12:00"), Ok(h12));
        assert_eq!(
            parse_time_ns("2024-05-01t12:00:00.25"),
            Ok(h12 + 250_000_000)
        );
        assert_eq!(
            parse_time_ns("2024-05-01T12:00:00.123456789123Z"),
            Ok(h12 + 123_456_789)
        );
        assert_eq!(parse_time_ns("2024-05-01T14:00:00+02:00"), Ok(h12));
        assert_eq!(parse_time_ns("2024-05-01T10:30:00-0130"), Ok(h12));
        assert_eq!(parse_time_ns("2024-05-01T13:00:00+01"), Ok(h12));
        assert_eq!(parse_time_ns(" 2024-05-01T12:00:00Z "), Ok(h12));
        assert_eq!(parse_time_ns("1969-12-31T23:59:59.999999999Z"), Ok(-1));
        for bad in [
            "",
            "2024-5-01",
            "2024-02-30",
            "2024-05-01T25:00",
            "2024-05-01T12:00:00X",
            "2024-05-01T12",
            "yesterday",
            "2024-05-01T12:00:00.Z",
        ] {
            assert!(parse_time_ns(bad).is_err(), "{bad} should fail");
        }
        assert!(parse_time_ns("2024-13-01")
            .unwrap_err()
            .contains("2024-13-01"));
    }
}

#[cfg(test)]
mod segment_serde_tests {
    use super::*;

    #[test]
    fn samples_travel_as_bytes_in_postcard_and_as_numbers_in_json() {
        let seg = Segment {
            start_ns: -5,
            samples: vec![1.5, f64::NAN, -0.0, f64::MAX, 3.0],
            times_ns: vec![],
        };
        let bytes = postcard::to_stdvec(&seg).unwrap();
        assert!(bytes.len() < 5 * 8 + 8, "{} bytes", bytes.len());
        let back: Segment = postcard::from_bytes(&bytes).unwrap();
        let bits = |s: &Segment| s.samples.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&seg));
        let json = serde_json::to_string(&Segment {
            samples: vec![1.5, 2.0],
            ..seg.clone()
        })
        .unwrap();
        assert!(json.contains("[1.5,2.0]"), "{json}");
        // A byte string that is no whole number of f64 is an error.
        let bad = postcard::to_stdvec(&(-5i64, &[0u8; 9][..], Vec::<i64>::new())).unwrap();
        let err = postcard::from_bytes::<Segment>(&bad).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}
