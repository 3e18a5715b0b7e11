//! SensorPacket wire formats: seeded round trips (Avro and JSON), byte-exact
//! agreement with fastavro in both directions, every decode error class and
//! every validation reason.

mod common;
use common::*;

use fakopp::codec::{
    self, avro_len, decode, decode_avro, decode_json, decode_valid, encode, encode_avro,
    encode_json, validate, DecodeError, Invalid, Limits, PacketFormat, REASON_CODES,
};
use fakopp::model::{SensorKind, SensorPacket};
use serde_json::{json, Value};

/// SplitMix64: seeded cases, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    /// Longs with every varint length: small, large, extremes, negative.
    fn long(&mut self) -> i64 {
        match self.below(6) {
            0 => self.below(200) as i64 - 100,
            1 => [0, -1, 1, i64::MIN, i64::MAX, 63, -64, 64, -65][self.below(9) as usize],
            2 => (self.next() >> self.below(64)) as i64,
            3 => -((self.next() >> self.below(64)) as i64),
            4 => 1_714_564_800_000_000_000 + self.below(1 << 40) as i64,
            _ => self.next() as i64,
        }
    }
    /// Doubles from random bits plus special values; `finite` for JSON.
    fn double(&mut self, finite: bool) -> f64 {
        let v = match self.below(8) {
            0 => [
                0.0,
                -0.0,
                f64::MIN_POSITIVE,
                5e-324,
                -5e-324,
                f64::MAX,
                f64::MIN,
                f64::EPSILON,
                1.0,
                100.0,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ][self.below(13) as usize],
            1 => (self.below(2_000_001) as f64 - 1e6) / 1000.0,
            2 => (self.next() as i64 as f64) * 1e-12,
            _ => f64::from_bits(self.next()),
        };
        if finite && !v.is_finite() {
            0.125
        } else {
            v
        }
    }
    fn string(&mut self) -> String {
        const PIECES: [&str; 10] = [
            "GB",
            ".",
            "CWF",
            "HHZ",
            "é",
            "m/s²",
            "µS/cm",
            "水位",
            "🌊",
            "\"\\/\n\t\u{1}",
        ];
        (0..self.below(8))
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }
    fn packet(&mut self, finite: bool) -> SensorPacket {
        let n = match self.below(10) {
            0 => 0,
            1 => 1,
            2 => 1000 + self.below(5000) as usize,
            _ => self.below(200) as usize,
        };
        SensorPacket {
            sensor_id: self.string(),
            kind: SensorKind::ALL[self.below(6) as usize],
            start_time_ns: self.long(),
            sample_rate_hz: self.double(finite),
            samples: (0..n).map(|_| self.double(finite)).collect(),
            unit: self.string(),
            seq: (!self.chance(3)).then(|| self.long()),
        }
    }
}

/// Equality with doubles compared by bits (NaN == NaN, 0.0 != -0.0).
fn same(a: &SensorPacket, b: &SensorPacket) -> bool {
    a.sensor_id == b.sensor_id
        && a.kind == b.kind
        && a.start_time_ns == b.start_time_ns
        && a.sample_rate_hz.to_bits() == b.sample_rate_hz.to_bits()
        && a.samples.len() == b.samples.len()
        && a.samples
            .iter()
            .zip(&b.samples)
            .all(|(x, y)| x.to_bits() == y.to_bits())
        && a.unit == b.unit
        && a.seq == b.seq
}

fn sample() -> SensorPacket {
    SensorPacket {
        sensor_id: "GB.CWF..HHZ".into(),
        kind: SensorKind::Seismic,
        start_time_ns: 1_714_564_800_000_000_000,
        sample_rate_hz: 100.0,
        samples: vec![1.5, -2.25, 0.0],
        unit: "m/s".into(),
        seq: Some(7),
    }
}

// ------------------------------------------------------------ round trips

#[test]
fn avro_round_trips_many_seeded_packets() {
    let mut rng = Rng(20240501);
    let mut buf = Vec::new();
    for case in 0..3000 {
        let p = rng.packet(false);
        buf.clear();
        encode_avro(&p, &mut buf);
        assert_eq!(buf.len(), avro_len(&p), "case {case}: avro_len");
        assert_eq!(buf, encode(PacketFormat::Avro, &p), "case {case}");
        let back =
            decode(PacketFormat::Avro, &buf).unwrap_or_else(|e| panic!("case {case}: {e}\n{p:?}"));
        assert!(same(&p, &back), "case {case}:\n{p:?}\n{back:?}");
    }
}

#[test]
fn json_round_trips_many_seeded_packets() {
    let mut rng = Rng(1970);
    let mut buf = Vec::new();
    for case in 0..3000 {
        let p = rng.packet(true);
        buf.clear();
        encode_json(&p, &mut buf);
        assert_eq!(buf, encode(PacketFormat::Json, &p), "case {case}");
        let text = std::str::from_utf8(&buf).unwrap();
        let back =
            decode(PacketFormat::Json, &buf).unwrap_or_else(|e| panic!("case {case}: {e}\n{text}"));
        assert!(same(&p, &back), "case {case}:\n{text}\n{back:?}");
        // The serde form of the model: the schema's field names, in order.
        let mut at = 0;
        for f in [
            "{\"sensor_id\":",
            ",\"kind\":",
            ",\"start_time_ns\":",
            ",\"sample_rate_hz\":",
            ",\"samples\":[",
            ",\"unit\":",
            ",\"seq\":",
        ] {
            at += text[at..]
                .find(f)
                .unwrap_or_else(|| panic!("{f} in {text}"));
        }
    }
}

#[test]
fn json_reads_what_other_producers_write() {
    // Field order, whitespace, escapes, integers for doubles, absent seq.
    let text = br#"
      { "unit" : "\u00b5S\/cm \ud83c\udf0a" , "seq" : null,
        "samples":[ 1 , -0.0, 2.5e-3, 1E2 ,0],
        "sample_rate_hz": 4, "kind":"conductivity",
        "start_time_ns": -9223372036854775808, "sensor_id":"EMB.X1..COND" }
    "#;
    let p = decode_json(text).unwrap();
    assert_eq!(p.unit, "µS/cm 🌊");
    assert_eq!(p.kind, SensorKind::Conductivity);
    assert_eq!(p.start_time_ns, i64::MIN);
    assert_eq!(p.sample_rate_hz, 4.0);
    assert_eq!(p.samples, vec![1.0, -0.0, 0.0025, 100.0, 0.0]);
    assert!(p.samples[1].is_sign_negative());
    assert_eq!(p.seq, None);
    let no_seq = decode_json(
        br#"{"sensor_id":"A.B..C","kind":"ph","start_time_ns":0,"sample_rate_hz":0,"samples":[7],"unit":""}"#,
    )
    .unwrap();
    assert_eq!(no_seq.seq, None);
    // Doubles are correctly rounded (serde_json's default parser is not
    // for every input): these need all 17 digits.
    for v in [
        0.1f64 + 0.2,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        9007199254740993.0,
        0.30000000000000004,
        123456.78901234567,
    ] {
        let s = format!(
            r#"{{"sensor_id":"A.B..C","kind":"ph","start_time_ns":0,"sample_rate_hz":{v:?},"samples":[{v:?}],"unit":""}}"#
        );
        let p = decode_json(s.as_bytes()).unwrap();
        assert_eq!(p.samples[0].to_bits(), v.to_bits(), "{s}");
        assert_eq!(p.sample_rate_hz.to_bits(), v.to_bits(), "{s}");
    }
}

#[test]
fn json_non_finite_values_reach_validation() {
    // serde_json writes NaN and ±∞ as null; Python's json writes tokens.
    let mut p = sample();
    p.samples = vec![1.0, f64::NAN, f64::INFINITY];
    let text = String::from_utf8(encode(PacketFormat::Json, &p)).unwrap();
    assert!(text.contains("[1.0,null,null]"), "{text}");
    let back = decode_json(text.as_bytes()).unwrap();
    assert!(back.samples[1].is_nan() && back.samples[2].is_nan());
    // null reads as NaN, a reading recorded as missing: accepted. ±∞
    // written by serde_json is null too, so it cannot be told apart.
    let ok = decode_valid(PacketFormat::Json, text.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(ok.samples[1].to_bits(), f64::NAN.to_bits());

    let py = br#"{"sensor_id":"A.B..C","kind":"ph","start_time_ns":0,"sample_rate_hz":NaN,"samples":[Infinity,-Infinity,NaN],"unit":""}"#;
    let back = decode_json(py).unwrap();
    assert!(back.sample_rate_hz.is_nan());
    assert_eq!(back.samples[0], f64::INFINITY);
    assert_eq!(back.samples[1], f64::NEG_INFINITY);
    assert!(back.samples[2].is_nan());
    let e = decode_valid(PacketFormat::Json, py, &Limits::default()).unwrap_err();
    assert_eq!(e.code(), "sample_rate");
}

// ---------------------------------------------------------------- fastavro

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn bits(v: f64) -> String {
    format!("{:016x}", v.to_bits())
}

fn to_oracle(p: &SensorPacket) -> Value {
    json!({
        "sensor_id": p.sensor_id,
        "kind": p.kind.as_str(),
        "start_time_ns": p.start_time_ns,
        "sample_rate_hz": bits(p.sample_rate_hz),
        "samples": p.samples.iter().map(|v| bits(*v)).collect::<Vec<_>>(),
        "unit": p.unit,
        "seq": p.seq,
    })
}

fn from_oracle(v: &Value) -> SensorPacket {
    let d = |h: &Value| f64::from_bits(u64::from_str_radix(h.as_str().unwrap(), 16).unwrap());
    SensorPacket {
        sensor_id: v["sensor_id"].as_str().unwrap().into(),
        kind: serde_json::from_value(v["kind"].clone()).unwrap(),
        start_time_ns: v["start_time_ns"].as_i64().unwrap(),
        sample_rate_hz: d(&v["sample_rate_hz"]),
        samples: v["samples"].as_array().unwrap().iter().map(d).collect(),
        unit: v["unit"].as_str().unwrap().into(),
        seq: v["seq"].as_i64(),
    }
}

/// Runs tests/oracle/avro_oracle.py (fastavro) on packets to encode and
/// datums to decode.
fn fastavro(encode: &[SensorPacket], decode: &[Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.json"), dir.path().join("out.json"));
    let job = json!({
        "encode": encode.iter().map(to_oracle).collect::<Vec<_>>(),
        "decode": decode.iter().map(|d| hex(d)).collect::<Vec<_>>(),
    });
    std::fs::write(&inp, job.to_string()).unwrap();
    let schema = repo().join("schemas/sensor_packet.avsc");
    run_oracle(
        "avro_oracle.py",
        &[schema.as_os_str(), inp.as_os_str(), out.as_os_str()],
    );
    let res: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let enc = res["encoded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect();
    (enc, res["decoded"].as_array().unwrap().clone())
}

/// Varint + zig-zag, for hand-made datums.
fn long(v: i64) -> Vec<u8> {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = Vec::new();
    while z >= 0x80 {
        out.push(z as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
    out
}

/// The sample packet with `samples` in the given blocks: `(count, items)`;
/// a negative count is followed by the block's byte size.
fn blocked(blocks: &[(i64, &[f64])], size_override: Option<i64>) -> Vec<u8> {
    let p = sample();
    let mut b = Vec::new();
    b.extend(long(p.sensor_id.len() as i64));
    b.extend(p.sensor_id.as_bytes());
    b.extend(long(0));
    b.extend(long(p.start_time_ns));
    b.extend(p.sample_rate_hz.to_le_bytes());
    for (count, items) in blocks {
        b.extend(long(*count));
        if *count < 0 {
            b.extend(long(size_override.unwrap_or(8 * items.len() as i64)));
        }
        for v in *items {
            b.extend(v.to_le_bytes());
        }
    }
    b.extend(long(0));
    b.extend(long(p.unit.len() as i64));
    b.extend(p.unit.as_bytes());
    b.extend(long(1));
    b.extend(long(p.seq.unwrap()));
    b
}

#[test]
fn avro_is_byte_exact_with_fastavro_both_ways() {
    let mut rng = Rng(42);
    let mut packets: Vec<SensorPacket> = (0..300).map(|_| rng.packet(false)).collect();
    // fastavro carries only the canonical NaN through Python floats.
    for p in &mut packets {
        for v in std::iter::once(&mut p.sample_rate_hz).chain(&mut p.samples) {
            if v.is_nan() {
                *v = f64::NAN;
            }
        }
    }
    let ours: Vec<Vec<u8>> = packets
        .iter()
        .map(|p| encode(PacketFormat::Avro, p))
        .collect();
    // Multi-block and negative-count arrays, as other writers may send.
    let blocks: Vec<Vec<u8>> = vec![
        blocked(&[(2, &[1.0, 2.0]), (1, &[3.0])], None),
        blocked(&[(-2, &[1.0, 2.0]), (-1, &[3.0]), (1, &[4.0])], None),
        blocked(&[(-3, &[0.5, f64::INFINITY, -0.0])], None),
    ];
    let mut to_decode = ours.clone();
    to_decode.extend(blocks.iter().cloned());
    let (theirs, decoded) = fastavro(&packets, &to_decode);

    assert_eq!(theirs.len(), packets.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(
            hex(a),
            hex(b),
            "packet {i}: our bytes vs fastavro's\n{:?}",
            packets[i]
        );
        // And we read fastavro's bytes back.
        assert!(same(&decode_avro(b).unwrap(), &packets[i]), "packet {i}");
    }
    for (i, (datum, theirs)) in to_decode.iter().zip(&decoded).enumerate() {
        assert!(
            theirs.get("error").is_none(),
            "fastavro could not read datum {i}: {theirs}"
        );
        let mine = decode_avro(datum).unwrap();
        assert!(
            same(&mine, &from_oracle(theirs)),
            "datum {i}: ours {mine:?}\nfastavro {theirs}"
        );
        if i < packets.len() {
            assert!(same(&mine, &packets[i]));
        }
    }
    let last = decode_avro(&blocks[1]).unwrap();
    assert_eq!(last.samples, vec![1.0, 2.0, 3.0, 4.0]);
}

// ------------------------------------------------------------ decode errors

fn avro_err(b: &[u8]) -> DecodeError {
    decode_avro(b).expect_err("must not decode")
}

#[test]
fn avro_truncation_anywhere_is_reported_with_position() {
    let full = encode(PacketFormat::Avro, &sample());
    for cut in 0..full.len() {
        match avro_err(&full[..cut]) {
            DecodeError::Truncated { len, at, field } => {
                assert_eq!(len, cut);
                assert!(at <= cut, "{field} at {at} > {cut}");
            }
            other => panic!("prefix of {cut} bytes: {other}"),
        }
    }
    // Cut inside the samples: the message names the field and the bytes.
    let e = avro_err(&full[..40]);
    assert_eq!(
        e,
        DecodeError::Truncated {
            field: "samples",
            at: 30,
            len: 40
        }
    );
    assert_eq!(
        e.to_string(),
        "truncated: the message ends at byte 40 inside field `samples` (which starts at byte 30)"
    );
    assert_eq!(e.code(), "decode");
    // A hostile count is reported, not allocated.
    let mut b = full[..30].to_vec();
    b.extend(long(1 << 60));
    b.extend([0; 16]);
    assert!(matches!(
        avro_err(&b),
        DecodeError::Truncated {
            field: "samples",
            ..
        }
    ));
}

#[test]
fn avro_decode_error_classes() {
    let p = sample();
    let full = encode(PacketFormat::Avro, &p);
    // Layout: [0] id len, [1..12] id, [12] kind, [13..22] time (9 bytes),
    // [22..30] rate, ...
    assert_eq!(full[0], 22);
    assert_eq!(full[12], 0);

    // Malformed varint: 11 continuation bytes for start_time_ns.
    let mut b = full[..13].to_vec();
    b.extend([0xff; 11]);
    assert_eq!(
        avro_err(&b),
        DecodeError::BadVarint {
            field: "start_time_ns",
            at: 13
        }
    );
    // The 10th byte may only carry the 64th bit.
    let mut b = full[..13].to_vec();
    b.extend([0xff; 9]);
    b.push(0x02);
    assert!(matches!(avro_err(&b), DecodeError::BadVarint { .. }));

    // Enum index out of range, both signs.
    for idx in [6, -1, 1 << 40] {
        let mut b = full.clone();
        b.splice(12..13, long(idx));
        assert_eq!(
            avro_err(&b),
            DecodeError::InvalidEnumIndex { index: idx, at: 12 }
        );
    }
    let e = {
        let mut b = full.clone();
        b[12] = long(6)[0];
        avro_err(&b)
    };
    assert!(e.to_string().contains("invalid enum index 6"), "{e}");

    // Union index for seq.
    let seq_at = full.len() - 2;
    assert_eq!(full[seq_at], 2);
    let mut b = full.clone();
    b[seq_at] = long(2)[0];
    assert_eq!(
        avro_err(&b),
        DecodeError::InvalidUnionIndex {
            index: 2,
            at: seq_at
        }
    );
    b[seq_at] = long(-1)[0];
    assert!(matches!(
        avro_err(&b),
        DecodeError::InvalidUnionIndex { index: -1, .. }
    ));

    // Negative string length.
    let mut b = full.clone();
    b[0] = long(-3)[0];
    assert_eq!(
        avro_err(&b),
        DecodeError::NegativeLength {
            field: "sensor_id",
            len: -3,
            at: 0
        }
    );

    // Invalid UTF-8: the offending byte's offset.
    let mut b = full.clone();
    b[5] = 0xff;
    let e = avro_err(&b);
    assert_eq!(
        e,
        DecodeError::InvalidUtf8 {
            field: "sensor_id",
            at: 5
        }
    );
    assert_eq!(
        e.to_string(),
        "invalid UTF-8 in field `sensor_id` at byte 5"
    );
    let unit_at = full.len() - 3 - 3; // "m/s" before the seq union
    let mut b = full.clone();
    b[unit_at + 1] = 0xc3; // a lead byte without its continuation
    assert_eq!(
        avro_err(&b),
        DecodeError::InvalidUtf8 {
            field: "unit",
            at: unit_at + 1
        }
    );

    // Negative block count with a byte size that does not fit.
    let b = blocked(&[(-2, &[1.0, 2.0])], Some(15));
    let e = avro_err(&b);
    assert_eq!(
        e,
        DecodeError::BlockSize {
            at: 22 + 8,
            count: 2,
            size: 15
        }
    );
    assert!(e.to_string().contains("(expected 16)"), "{e}");

    // Trailing bytes.
    let mut b = full.clone();
    b.extend([0, 1, 2]);
    assert_eq!(
        avro_err(&b),
        DecodeError::TrailingBytes {
            at: full.len(),
            count: 3
        }
    );
}

fn json_err(s: &str) -> DecodeError {
    decode_json(s.as_bytes()).expect_err(s)
}

const GOOD: &str = r#"{"sensor_id":"GB.CWF..HHZ","kind":"seismic","start_time_ns":5,"sample_rate_hz":100.0,"samples":[1.0,2.0,3.0],"unit":"m/s","seq":7}"#;

#[test]
fn json_decode_error_classes() {
    assert!(decode_json(GOOD.as_bytes()).is_ok());
    let with = |from: &str, to: &str| GOOD.replacen(from, to, 1);

    // Syntax.
    assert!(matches!(
        json_err(&GOOD[..GOOD.len() - 1]),
        DecodeError::JsonSyntax { .. }
    ));
    assert!(matches!(
        json_err(""),
        DecodeError::JsonSyntax { at: 0, .. }
    ));
    assert!(matches!(
        json_err("[1,2]"),
        DecodeError::JsonSyntax { at: 0, .. }
    ));
    assert!(matches!(
        json_err(&with("[1.0,2.0", "[1.0 2.0")),
        DecodeError::JsonSyntax { .. }
    ));
    assert!(matches!(
        json_err(&with("100.0", "1.e5")),
        DecodeError::JsonSyntax { .. }
    ));
    assert!(matches!(
        json_err(&with("m/s", "m\\qs")),
        DecodeError::JsonSyntax { .. }
    ));

    // Wrong types, with the field (and element) named.
    let e = json_err(&with("\"m/s\"", "3"));
    assert_eq!(
        e,
        DecodeError::JsonType {
            field: "unit".into(),
            at: GOOD.find("\"m/s\"").unwrap(),
            expected: "a string",
            found: "number"
        }
    );
    assert_eq!(
        e.to_string(),
        format!(
            "wrong JSON type for field `unit` at byte {}: expected a string, found number",
            GOOD.find("\"m/s\"").unwrap()
        )
    );
    let e = json_err(&with("[1.0,2.0,3.0]", "[1.0,2.0,\"3\"]"));
    assert!(
        matches!(&e, DecodeError::JsonType { field, found: "string", .. } if field == "samples[2]"),
        "{e}"
    );
    let e = json_err(&with("[1.0,2.0,3.0]", "{}"));
    assert!(
        matches!(&e, DecodeError::JsonType { field, found: "object", .. } if field == "samples"),
        "{e}"
    );
    let e = json_err(&with("\"start_time_ns\":5", "\"start_time_ns\":\"5\""));
    assert!(
        matches!(&e, DecodeError::JsonType { field, expected: "an integer", .. } if field == "start_time_ns"),
        "{e}"
    );
    let e = json_err(&with("\"seq\":7", "\"seq\":true"));
    assert!(
        matches!(&e, DecodeError::JsonType { field, found: "boolean", .. } if field == "seq"),
        "{e}"
    );
    let e = json_err(&with("\"GB.CWF..HHZ\"", "null"));
    assert!(
        matches!(&e, DecodeError::JsonType { field, found: "null", .. } if field == "sensor_id"),
        "{e}"
    );

    // Invalid values.
    let e = json_err(&with("\"seismic\"", "\"volcanic\""));
    assert!(
        matches!(&e, DecodeError::JsonValue { field: "kind", .. }),
        "{e}"
    );
    assert!(e.to_string().contains("unknown kind `volcanic`"), "{e}");
    let e = json_err(&with("\"start_time_ns\":5", "\"start_time_ns\":5.5"));
    assert!(e.to_string().contains("`5.5` is not an integer"), "{e}");
    let e = json_err(&with("\"seq\":7", "\"seq\":9223372036854775808"));
    assert!(
        matches!(&e, DecodeError::JsonValue { field: "seq", .. }),
        "{e}"
    );

    // Missing, unknown, duplicate fields.
    assert_eq!(
        json_err(&with(",\"unit\":\"m/s\"", "")),
        DecodeError::MissingField { field: "unit" }
    );
    let e = json_err(&with("\"seq\":7", "\"seq\":7,\"station\":\"x\""));
    assert!(
        matches!(&e, DecodeError::UnknownField { field, .. } if field == "station"),
        "{e}"
    );
    let e = json_err(&with("\"seq\":7", "\"seq\":7,\"kind\":\"ph\""));
    assert!(
        matches!(e, DecodeError::DuplicateField { field: "kind", .. }),
        "{e}"
    );

    // Invalid UTF-8 inside a string.
    let mut b = GOOD.as_bytes().to_vec();
    let at = GOOD.find("CWF").unwrap();
    b[at] = 0xfe;
    assert_eq!(
        decode_json(&b).unwrap_err(),
        DecodeError::InvalidUtf8 {
            field: "sensor_id",
            at
        }
    );

    // Trailing bytes (whitespace is fine).
    assert!(decode_json(format!(" {GOOD}\n").as_bytes()).is_ok());
    assert_eq!(
        json_err(&format!("{GOOD} x")),
        DecodeError::TrailingBytes {
            at: GOOD.len() + 1,
            count: 1
        }
    );
    for e in [json_err("{"), json_err(&with("7}", "7,}"))] {
        assert_eq!(e.code(), "decode");
    }
}

// ------------------------------------------------------------- validation

const DAY: i64 = 86_400_000_000_000;
const NOW: i64 = 1_750_000_000_000_000_000;

fn limits() -> Limits {
    Limits {
        max_samples: 1000,
        now_ns: Some(NOW),
        ..Limits::default()
    }
}

fn invalid(p: &SensorPacket) -> Invalid {
    validate(p, &limits()).expect_err("must be invalid")
}

#[test]
fn validation_reasons() {
    let ok = sample();
    validate(&ok, &limits()).unwrap();
    validate(&ok, &Limits::default()).unwrap();

    let mut p = ok.clone();
    p.sensor_id = "GB.CWF.HHZ".into();
    let e = invalid(&p);
    assert_eq!(e.code(), "sensor_id");
    assert!(e.to_string().contains("NET.STA.LOC.CHA"), "{e}");

    p = ok.clone();
    p.samples = vec![1.0, 2.0, f64::NAN, f64::INFINITY];
    let e = invalid(&p);
    assert!(matches!(e, Invalid::NonFinite { index: 3, .. }), "{e}");
    assert_eq!(e.code(), "non_finite");
    assert_eq!(
        e.to_string(),
        "sample 3 is inf; samples must be finite (or NaN: a reading recorded as missing)"
    );
    p.samples = vec![1.0, f64::NAN];
    assert_eq!(validate(&p, &Limits::default()), Ok(()));
    // A consumer reads any NaN payload in an Avro packet as the canonical
    // NaN, never as the grid's "no reading" mark (`decode` alone keeps bits).
    p.samples = vec![
        fakopp::model::NOT_RECORDED,
        f64::from_bits(0xFFF8_0000_0000_0042),
    ];
    let back = decode_valid(
        PacketFormat::Avro,
        &encode(PacketFormat::Avro, &p),
        &Limits::default(),
    )
    .unwrap();
    assert!(back
        .samples
        .iter()
        .all(|v| v.to_bits() == f64::NAN.to_bits()));
    p.samples = vec![f64::NEG_INFINITY];
    assert!(matches!(invalid(&p), Invalid::NonFinite { index: 0, .. }));

    for (rate, n, good) in [
        (0.0, 1, true),
        (0.0, 2, false),
        (-1.0, 3, false),
        (f64::NAN, 3, false),
        (f64::INFINITY, 3, false),
        (f64::NAN, 1, false),
        (1e-3, 2, true),
    ] {
        p = ok.clone();
        p.sample_rate_hz = rate;
        p.samples = vec![1.0; n];
        match validate(&p, &limits()) {
            Ok(()) => assert!(good, "rate {rate} with {n} samples accepted"),
            Err(e) => {
                assert!(!good, "rate {rate} with {n}: {e}");
                assert_eq!(e.code(), "sample_rate");
                assert!(matches!(e, Invalid::SampleRate { samples, .. } if samples == n));
            }
        }
    }

    for (t, good) in [
        (0, true),
        (-1, false),
        (NOW + DAY, true),
        (NOW + DAY + 1, false),
        (i64::MIN, false),
        (i64::MAX, false),
    ] {
        p = ok.clone();
        p.samples = vec![1.0];
        p.start_time_ns = t;
        match validate(&p, &limits()) {
            Ok(()) => assert!(good, "time {t} accepted"),
            Err(e) => {
                assert!(!good, "time {t}: {e}");
                assert_eq!(e.code(), "time");
            }
        }
    }
    // The last sample counts too: 100 samples at 1 Hz ending past the limit.
    p = ok.clone();
    p.sample_rate_hz = 1.0;
    p.samples = vec![0.0; 100];
    p.start_time_ns = NOW + DAY - 50_000_000_000;
    let e = invalid(&p);
    assert!(matches!(e, Invalid::Time { which: "end", .. }), "{e}");
    assert!(e.to_string().starts_with("end time 2025-06-16T"), "{e}");
    // Configurable: an earliest time and a smaller future margin.
    let strict = Limits {
        min_time_ns: 1_000,
        max_future_ns: 0,
        ..limits()
    };
    p = ok.clone();
    p.samples = vec![1.0];
    p.start_time_ns = 999;
    assert_eq!(validate(&p, &strict).unwrap_err().code(), "time");
    p.start_time_ns = NOW + 1;
    assert_eq!(validate(&p, &strict).unwrap_err().code(), "time");
    // Without a fixed now, the clock: year 2200 is in the future.
    p.start_time_ns = 7_258_118_400_000_000_000;
    assert_eq!(validate(&p, &Limits::default()).unwrap_err().code(), "time");

    for (n, good) in [(0, false), (1, true), (1000, true), (1001, false)] {
        p = ok.clone();
        p.samples = vec![0.5; n];
        match validate(&p, &limits()) {
            Ok(()) => assert!(good, "{n} samples accepted"),
            Err(e) => {
                assert!(!good, "{n} samples: {e}");
                assert_eq!(
                    e,
                    Invalid::Size {
                        samples: n,
                        max: 1000
                    }
                );
                assert_eq!(e.code(), "size");
            }
        }
    }
    let from_cfg = Limits::from_config(&fakopp::config::StreamConfig {
        max_samples_per_packet: 2,
        ..Default::default()
    });
    p = ok.clone();
    assert_eq!(validate(&p, &from_cfg).unwrap_err().code(), "size");

    p = ok.clone();
    p.unit = "é".repeat(32); // 64 bytes, 32 characters
    validate(&p, &limits()).unwrap();
    p.unit.push('x');
    let e = invalid(&p);
    assert_eq!(e, Invalid::Unit { chars: 33, max: 32 });
    assert_eq!(e.code(), "unit");
}

#[test]
fn reject_codes_cover_decode_and_validation() {
    let lim = limits();
    let mut seen = std::collections::BTreeSet::new();
    let mut check = |bytes: Vec<u8>, fmt: PacketFormat, code: &str| {
        let e = decode_valid(fmt, &bytes, &lim).unwrap_err();
        assert_eq!(e.code(), code, "{e}");
        seen.insert(e.code());
    };
    let enc = |p: &SensorPacket| encode(PacketFormat::Avro, p);
    check(vec![0xff], PacketFormat::Avro, "decode");
    check(b"{}".to_vec(), PacketFormat::Json, "decode");
    let ok = sample();
    let mut p = ok.clone();
    p.sensor_id = "bad".into();
    check(enc(&p), PacketFormat::Avro, "sensor_id");
    p = ok.clone();
    p.samples[1] = f64::INFINITY;
    check(enc(&p), PacketFormat::Avro, "non_finite");
    p = ok.clone();
    p.sample_rate_hz = 0.0;
    check(enc(&p), PacketFormat::Avro, "sample_rate");
    p = ok.clone();
    p.start_time_ns = -5;
    check(enc(&p), PacketFormat::Avro, "time");
    p = ok.clone();
    p.samples.clear();
    check(encode(PacketFormat::Json, &p), PacketFormat::Json, "size");
    p = ok.clone();
    p.unit = "x".repeat(40);
    check(enc(&p), PacketFormat::Avro, "unit");
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), {
        let mut all = REASON_CODES.to_vec();
        all.sort();
        all
    });
    // A good packet passes in both formats.
    for fmt in [PacketFormat::Avro, PacketFormat::Json] {
        let back = decode_valid(fmt, &encode(fmt, &ok), &lim).unwrap();
        assert_eq!(back, ok);
    }
    assert!(codec::AVRO_SCHEMA.contains("\"name\": \"SensorPacket\""));
}
