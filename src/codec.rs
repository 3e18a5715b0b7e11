//! SensorPacket wire formats (docs/reference.md, "Packets") and the
//! checks a consumer makes before a packet enters the pipeline (bad ones
//! go to the DLQ with a reason).
//!
//! * **Avro**: one binary *single datum* per Kafka message, exactly as
//!   `schemas/sensor_packet.avsc` defines it (no container file, no
//!   schema-registry header). Hand-written: the decoder allocates nothing
//!   but the packet's own strings and sample vector, and never more than the
//!   input can hold (a hostile block count cannot make it reserve memory).
//!   It accepts everything the Avro spec allows for this schema: arrays in
//!   any number of blocks, negative block counts followed by the block's
//!   byte size. The encoder writes what Apache Avro and fastavro write (one
//!   block, positive count), byte for byte.
//! * **JSON**: an object with the same field names, written with serde
//!   (`serde_json`: shortest round-trip floats; NaN and ±∞ become `null`).
//!   Read by a strict hand-written parser so that doubles are correctly
//!   rounded (serde_json without `float_roundtrip` is not) and errors name
//!   the field and byte. `null` — and the `NaN`, `Infinity`, `-Infinity`
//!   tokens Python's `json` module writes — in a double field reads as a
//!   non-finite value instead of a decode error: NaN in `samples` is a
//!   reading recorded as missing, and [`validate`] reports the real problem
//!   of ±∞ or a NaN rate (`non_finite`, `sample_rate`). `seq` may be
//!   absent or `null`. Unknown and duplicate fields are errors.
//!
//! [`validate`] checks a decoded packet against [`Limits`]; every error has
//! a short stable [`code`](Reject::code) for the DLQ's reason header.

use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::config::PacketFormat;
use crate::config::StreamConfig;
use crate::model::{valid_sensor_id, SensorKind, SensorPacket};

/// The Avro schema the binary format follows.
pub const AVRO_SCHEMA: &str = include_str!("../schemas/sensor_packet.avsc");

/// Encodes a packet as one Kafka message value.
pub fn encode(format: PacketFormat, p: &SensorPacket) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(format, p, &mut out);
    out
}

/// Appends the encoding of `p` to `out` (reuse one buffer for many packets).
pub fn encode_into(format: PacketFormat, p: &SensorPacket, out: &mut Vec<u8>) {
    match format {
        PacketFormat::Avro => encode_avro(p, out),
        PacketFormat::Json => encode_json(p, out),
    }
}

/// Decodes one Kafka message value.
pub fn decode(format: PacketFormat, bytes: &[u8]) -> Result<SensorPacket, DecodeError> {
    match format {
        PacketFormat::Avro => decode_avro(bytes),
        PacketFormat::Json => decode_json(bytes),
    }
}

/// Decodes and validates: what a consumer does with each message. The
/// error's [`Reject::code`] goes into the DLQ reason header.
pub fn decode_valid(
    format: PacketFormat,
    bytes: &[u8],
    limits: &Limits,
) -> Result<SensorPacket, Reject> {
    let mut p = decode(format, bytes)?;
    // A NaN is a reading recorded as missing; its payload means nothing
    // and must not pass for the grid's "no reading" mark.
    for v in &mut p.samples {
        *v = crate::model::canonical_nan(*v);
    }
    validate(&p, limits)?;
    Ok(p)
}

// ---------------------------------------------------------------- errors

/// Why a message is not a SensorPacket. Byte offsets count from 0 in the
/// message value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The input ends before `field` is complete.
    #[error("truncated: the message ends at byte {len} inside field `{field}` (which starts at byte {at})")]
    Truncated {
        field: &'static str,
        at: usize,
        len: usize,
    },
    /// A varint longer than 10 bytes or beyond 64 bits.
    #[error("malformed varint in field `{field}` at byte {at}: more than 64 bits")]
    BadVarint { field: &'static str, at: usize },
    #[error(
        "invalid enum index {index} in field `kind` at byte {at}: SensorKind has symbols 0..=5"
    )]
    InvalidEnumIndex { index: i64, at: usize },
    #[error("invalid union index {index} in field `seq` at byte {at}: 0 = null, 1 = long")]
    InvalidUnionIndex { index: i64, at: usize },
    #[error("negative length {len} in field `{field}` at byte {at}")]
    NegativeLength {
        field: &'static str,
        len: i64,
        at: usize,
    },
    /// `at` is the first byte that is not valid UTF-8.
    #[error("invalid UTF-8 in field `{field}` at byte {at}")]
    InvalidUtf8 { field: &'static str, at: usize },
    /// A negative-count array block whose byte size is not 8 × count.
    #[error("array block at byte {at} in field `samples` has {count} doubles but a byte size of {size} (expected {})", .count.saturating_mul(8))]
    BlockSize { at: usize, count: u64, size: i64 },
    #[error("{count} trailing bytes after the packet, from byte {at}")]
    TrailingBytes { at: usize, count: usize },
    #[error("invalid JSON at byte {at}: {what}")]
    JsonSyntax { at: usize, what: String },
    /// `field` is e.g. `unit` or `samples[3]`.
    #[error(
        "wrong JSON type for field `{field}` at byte {at}: expected {expected}, found {found}"
    )]
    JsonType {
        field: String,
        at: usize,
        expected: &'static str,
        found: &'static str,
    },
    #[error("invalid value for field `{field}` at byte {at}: {what}")]
    JsonValue {
        field: &'static str,
        at: usize,
        what: String,
    },
    #[error("missing field `{field}`")]
    MissingField { field: &'static str },
    #[error("unknown field `{field}` at byte {at}")]
    UnknownField { field: String, at: usize },
    #[error("duplicate field `{field}` at byte {at}")]
    DuplicateField { field: &'static str, at: usize },
}

impl DecodeError {
    /// Reason code for the DLQ header.
    pub fn code(&self) -> &'static str {
        "decode"
    }
}

/// Why a decoded packet is not acceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Invalid {
    /// The message from [`valid_sensor_id`].
    #[error("{0}")]
    SensorId(String),
    #[error(
        "sample {index} is {value}; samples must be finite (or NaN: a reading recorded as missing)"
    )]
    NonFinite { index: usize, value: f64 },
    #[error("sample_rate_hz {rate} with {samples} samples: must be finite and > 0 (0 only for a single reading)")]
    SampleRate { rate: f64, samples: usize },
    /// `which` is `start` (first sample) or `end` (last sample).
    #[error("{which} time {} ({time_ns} ns) is outside the plausible range {} .. {}", fmt_ns(*.time_ns), fmt_ns(*.min_ns), fmt_ns(*.max_ns))]
    Time {
        which: &'static str,
        time_ns: i64,
        min_ns: i64,
        max_ns: i64,
    },
    #[error("{samples} samples: a packet holds 1 to {max}")]
    Size { samples: usize, max: usize },
    #[error("unit is {chars} characters long: at most {max}")]
    Unit { chars: usize, max: usize },
}

fn fmt_ns(t: i64) -> String {
    crate::model::format_time_us(t)
}

impl Invalid {
    /// Short stable reason code for the DLQ header.
    pub fn code(&self) -> &'static str {
        match self {
            Invalid::SensorId(_) => "sensor_id",
            Invalid::NonFinite { .. } => "non_finite",
            Invalid::SampleRate { .. } => "sample_rate",
            Invalid::Time { .. } => "time",
            Invalid::Size { .. } => "size",
            Invalid::Unit { .. } => "unit",
        }
    }
}

/// A message rejected by [`decode_valid`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Reject {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

impl Reject {
    /// One of `decode`, `sensor_id`, `non_finite`, `sample_rate`, `time`,
    /// `size`, `unit`.
    pub fn code(&self) -> &'static str {
        match self {
            Reject::Decode(e) => e.code(),
            Reject::Invalid(e) => e.code(),
        }
    }
}

/// Every reason code [`Reject::code`] can return.
pub const REASON_CODES: [&str; 7] = [
    "decode",
    "sensor_id",
    "non_finite",
    "sample_rate",
    "time",
    "size",
    "unit",
];

// ------------------------------------------------------------ validation

const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// What [`validate`] accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Most samples in one packet (`stream.max_samples_per_packet`).
    pub max_samples: usize,
    /// Earliest plausible sample time (default 1970-01-01).
    pub min_time_ns: i64,
    /// How far past the current time a sample may lie (default 1 day).
    pub max_future_ns: i64,
    /// Fixed "now" instead of the clock (tests, replays of old data).
    pub now_ns: Option<i64>,
    /// Longest unit, in characters.
    pub max_unit_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_samples: StreamConfig::default().max_samples_per_packet,
            min_time_ns: 0,
            max_future_ns: NS_PER_DAY,
            now_ns: None,
            max_unit_chars: 32,
        }
    }
}

impl Limits {
    pub fn from_config(stream: &StreamConfig) -> Self {
        Limits {
            max_samples: stream.max_samples_per_packet,
            ..Limits::default()
        }
    }

    /// Latest plausible sample time.
    pub fn max_time_ns(&self) -> i64 {
        let now = self.now_ns.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
                .unwrap_or(0)
        });
        now.saturating_add(self.max_future_ns)
    }
}

/// Checks a packet, in this order: sensor id, sample count, sample rate,
/// start and end time, no infinite sample (NaN is a missing reading), unit length; the first failure is
/// returned.
pub fn validate(p: &SensorPacket, limits: &Limits) -> Result<(), Invalid> {
    valid_sensor_id(&p.sensor_id).map_err(Invalid::SensorId)?;
    let n = p.samples.len();
    if n == 0 || n > limits.max_samples {
        return Err(Invalid::Size {
            samples: n,
            max: limits.max_samples,
        });
    }
    let rate = p.sample_rate_hz;
    let rate_ok = (rate.is_finite() && rate > 0.0) || (rate == 0.0 && n == 1);
    if !rate_ok {
        return Err(Invalid::SampleRate { rate, samples: n });
    }
    let (min_ns, max_ns) = (limits.min_time_ns, limits.max_time_ns());
    let time_err = |which, time_ns| Invalid::Time {
        which,
        time_ns,
        min_ns,
        max_ns,
    };
    if p.start_time_ns < min_ns || p.start_time_ns > max_ns {
        return Err(time_err("start", p.start_time_ns));
    }
    if n > 1 {
        let end = p.start_time_ns as f64 + (n - 1) as f64 * 1e9 / rate;
        if end > max_ns as f64 {
            return Err(time_err("end", end.min(i64::MAX as f64) as i64));
        }
    }
    if let Some(index) = p.samples.iter().position(|v| v.is_infinite()) {
        return Err(Invalid::NonFinite {
            index,
            value: p.samples[index],
        });
    }
    let chars = p.unit.chars().count();
    if chars > limits.max_unit_chars {
        return Err(Invalid::Unit {
            chars,
            max: limits.max_unit_chars,
        });
    }
    Ok(())
}

// ------------------------------------------------------------------ Avro

fn kind_index(k: SensorKind) -> i64 {
    SensorKind::ALL.iter().position(|&x| x == k).unwrap_or(0) as i64
}

fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

/// Exact size of the Avro encoding of `p`.
pub fn avro_len(p: &SensorPacket) -> usize {
    fn long_len(v: i64) -> usize {
        let z = ((v << 1) ^ (v >> 63)) as u64;
        (64 - z.leading_zeros() as usize).max(1).div_ceil(7)
    }
    let n = p.samples.len();
    long_len(p.sensor_id.len() as i64)
        + p.sensor_id.len()
        + long_len(kind_index(p.kind))
        + long_len(p.start_time_ns)
        + 8
        + if n > 0 { long_len(n as i64) + 8 * n } else { 0 }
        + 1
        + long_len(p.unit.len() as i64)
        + p.unit.len()
        + 1
        + p.seq.map_or(0, long_len)
}

/// Appends the Avro binary encoding of `p` to `out`.
pub fn encode_avro(p: &SensorPacket, out: &mut Vec<u8>) {
    out.reserve(avro_len(p));
    put_str(out, &p.sensor_id);
    put_long(out, kind_index(p.kind));
    put_long(out, p.start_time_ns);
    out.extend_from_slice(&p.sample_rate_hz.to_le_bytes());
    if !p.samples.is_empty() {
        put_long(out, p.samples.len() as i64);
        for v in &p.samples {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.push(0);
    put_str(out, &p.unit);
    match p.seq {
        None => out.push(0),
        Some(s) => {
            out.push(2); // union branch 1, zig-zag
            put_long(out, s);
        }
    }
}

struct AvroReader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> AvroReader<'a> {
    fn truncated(&self, field: &'static str, at: usize) -> DecodeError {
        DecodeError::Truncated {
            field,
            at,
            len: self.b.len(),
        }
    }

    fn long(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        let at = self.pos;
        let mut z: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.b.get(self.pos) else {
                return Err(self.truncated(field, at));
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(DecodeError::BadVarint { field, at });
            }
            z |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(DecodeError::BadVarint { field, at })
    }

    fn bytes(&mut self, n: usize, field: &'static str, at: usize) -> Result<&'a [u8], DecodeError> {
        if self.b.len() - self.pos < n {
            return Err(self.truncated(field, at));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn double(&mut self, field: &'static str) -> Result<f64, DecodeError> {
        let at = self.pos;
        let b = self.bytes(8, field, at)?;
        Ok(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let at = self.pos;
        let len = self.long(field)?;
        if len < 0 {
            return Err(DecodeError::NegativeLength { field, len, at });
        }
        let start = self.pos;
        let len = usize::try_from(len).map_err(|_| self.truncated(field, at))?;
        let raw = self.bytes(len, field, at)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(DecodeError::InvalidUtf8 {
                field,
                at: start + e.valid_up_to(),
            }),
        }
    }

    fn samples(&mut self) -> Result<Vec<f64>, DecodeError> {
        const F: &str = "samples";
        let field_at = self.pos;
        let mut out = Vec::new();
        loop {
            let at = self.pos;
            let count = self.long(F)?;
            if count == 0 {
                return Ok(out);
            }
            let n = count.unsigned_abs();
            if count < 0 {
                let size = self.long(F)?;
                if u64::try_from(size).ok() != n.checked_mul(8) {
                    return Err(DecodeError::BlockSize { at, count: n, size });
                }
            }
            let remaining = (self.b.len() - self.pos) as u64;
            if n > remaining / 8 {
                return Err(self.truncated(F, field_at));
            }
            let n = n as usize;
            let raw = &self.b[self.pos..self.pos + 8 * n];
            self.pos += 8 * n;
            out.reserve_exact(n);
            out.extend(
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
        }
    }
}

/// Decodes one Avro single datum; the whole input must be used.
pub fn decode_avro(bytes: &[u8]) -> Result<SensorPacket, DecodeError> {
    let mut r = AvroReader { b: bytes, pos: 0 };
    let sensor_id = r.string("sensor_id")?;
    let at = r.pos;
    let index = r.long("kind")?;
    let kind = usize::try_from(index)
        .ok()
        .and_then(|i| SensorKind::ALL.get(i).copied())
        .ok_or(DecodeError::InvalidEnumIndex { index, at })?;
    let start_time_ns = r.long("start_time_ns")?;
    let sample_rate_hz = r.double("sample_rate_hz")?;
    let samples = r.samples()?;
    let unit = r.string("unit")?;
    let at = r.pos;
    let seq = match r.long("seq")? {
        0 => None,
        1 => Some(r.long("seq")?),
        index => return Err(DecodeError::InvalidUnionIndex { index, at }),
    };
    if r.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            at: r.pos,
            count: bytes.len() - r.pos,
        });
    }
    Ok(SensorPacket {
        sensor_id,
        kind,
        start_time_ns,
        sample_rate_hz,
        samples,
        unit,
        seq,
    })
}

// ------------------------------------------------------------------ JSON

/// Appends the JSON encoding of `p` (one line, no newline) to `out`.
pub fn encode_json(p: &SensorPacket, out: &mut Vec<u8>) {
    serde_json::to_writer(out, p).expect("a SensorPacket always serializes to JSON");
}

const FIELDS: [&str; 7] = [
    "sensor_id",
    "kind",
    "start_time_ns",
    "sample_rate_hz",
    "samples",
    "unit",
    "seq",
];

struct JsonReader<'a> {
    b: &'a [u8],
    pos: usize,
}

fn found_name(c: Option<u8>) -> &'static str {
    match c {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9' | b'N' | b'I') => "number",
        Some(_) => "invalid token",
        None => "end of input",
    }
}

impl<'a> JsonReader<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.pos).copied()
    }

    fn syntax(&self, at: usize, what: impl Into<String>) -> DecodeError {
        DecodeError::JsonSyntax {
            at,
            what: what.into(),
        }
    }

    fn expect(&mut self, c: u8, what: &str) -> Result<(), DecodeError> {
        match self.peek() {
            Some(x) if x == c => {
                self.pos += 1;
                Ok(())
            }
            Some(x) => Err(self.syntax(
                self.pos,
                format!("expected {what}, found `{}`", x.escape_ascii()),
            )),
            None => Err(self.syntax(self.pos, format!("expected {what}, found end of input"))),
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.b[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn type_err(&mut self, field: impl Into<String>, expected: &'static str) -> DecodeError {
        let c = self.peek();
        DecodeError::JsonType {
            field: field.into(),
            at: self.pos,
            expected,
            found: found_name(c),
        }
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let at = self.pos;
        let h = self
            .b
            .get(self.pos..self.pos + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.syntax(at, "\\u must be followed by 4 hex digits"))?;
        self.pos += 4;
        Ok(h)
    }

    /// A string at the current position (after whitespace); `field` names
    /// the value for UTF-8 errors.
    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        self.expect(b'"', "`\"`")?;
        let mut out = String::new();
        loop {
            let run = self.pos;
            while let Some(&c) = self.b.get(self.pos) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            let raw = &self.b[run..self.pos];
            match std::str::from_utf8(raw) {
                Ok(s) => out.push_str(s),
                Err(e) => {
                    return Err(DecodeError::InvalidUtf8 {
                        field,
                        at: run + e.valid_up_to(),
                    })
                }
            }
            match self.b.get(self.pos) {
                None => return Err(self.syntax(self.pos, "unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let at = self.pos;
                    self.pos += 1;
                    let Some(&e) = self.b.get(self.pos) else {
                        return Err(self.syntax(at, "unterminated string"));
                    };
                    self.pos += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if !self.eat(b"\\u") {
                                    return Err(self.syntax(at, "lone leading surrogate"));
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.syntax(at, "invalid surrogate pair"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(cp)
                                .ok_or_else(|| self.syntax(at, "lone trailing surrogate"))?
                        }
                        _ => return Err(self.syntax(at, "invalid escape")),
                    };
                    out.push(ch);
                }
                Some(_) => {
                    return Err(self.syntax(self.pos, "control character in string"));
                }
            }
        }
    }

    /// The span of a JSON number literal at the current position, if any.
    fn number_span(&mut self) -> Option<(usize, usize, bool)> {
        self.ws();
        let start = self.pos;
        let b = self.b;
        let mut i = start;
        let digits = |i: &mut usize| {
            let s = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > s
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return None,
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            i += 1;
            integer = false;
            if !digits(&mut i) {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            integer = false;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
        }
        self.pos = i;
        Some((start, i, integer))
    }

    /// A double: a number, `null` (NaN), or `NaN` / `Infinity` / `-Infinity`.
    fn double(&mut self, field: impl FnOnce() -> String) -> Result<f64, DecodeError> {
        self.ws();
        for (lit, v) in [
            (&b"null"[..], f64::NAN),
            (b"NaN", f64::NAN),
            (b"Infinity", f64::INFINITY),
            (b"-Infinity", f64::NEG_INFINITY),
        ] {
            if self.eat(lit) {
                return Ok(v);
            }
        }
        let at = self.pos;
        match self.number_span() {
            Some((s, e, _)) => Ok(std::str::from_utf8(&self.b[s..e])
                .expect("ASCII")
                .parse()
                .expect("a JSON number parses as f64")),
            None if matches!(self.b.get(at), Some(b'-' | b'0'..=b'9')) => {
                Err(self.syntax(at, "malformed number"))
            }
            None => Err(self.type_err(field(), "a number")),
        }
    }

    fn long(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.ws();
        let at = self.pos;
        match self.number_span() {
            Some((s, e, true)) => std::str::from_utf8(&self.b[s..e])
                .expect("ASCII")
                .parse()
                .map_err(|_| DecodeError::JsonValue {
                    field,
                    at,
                    what: "integer out of the 64-bit range".into(),
                }),
            Some((s, e, false)) => Err(DecodeError::JsonValue {
                field,
                at,
                what: format!(
                    "`{}` is not an integer",
                    std::str::from_utf8(&self.b[s..e]).expect("ASCII")
                ),
            }),
            None if matches!(self.b.get(at), Some(b'-' | b'0'..=b'9')) => {
                Err(self.syntax(at, "malformed number"))
            }
            None => Err(self.type_err(field, "an integer")),
        }
    }

    fn str_field(&mut self, field: &'static str) -> Result<String, DecodeError> {
        if self.peek() != Some(b'"') {
            return Err(self.type_err(field, "a string"));
        }
        self.string(field)
    }

    fn samples(&mut self) -> Result<Vec<f64>, DecodeError> {
        if self.peek() != Some(b'[') {
            return Err(self.type_err("samples", "an array of numbers"));
        }
        self.pos += 1;
        // Exact capacity for well-formed input: commas before the `]`.
        let n = self.b[self.pos..]
            .iter()
            .take_while(|&&c| c != b']')
            .filter(|&&c| c == b',')
            .count();
        let mut out = Vec::with_capacity(n + 1);
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(out);
        }
        loop {
            let i = out.len();
            out.push(self.double(|| format!("samples[{i}]"))?);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(out);
                }
                _ => return Err(self.syntax(self.pos, "expected `,` or `]` in samples")),
            }
        }
    }
}

/// Decodes one JSON object (surrounding whitespace allowed).
pub fn decode_json(bytes: &[u8]) -> Result<SensorPacket, DecodeError> {
    let mut r = JsonReader { b: bytes, pos: 0 };
    r.expect(b'{', "`{` (a JSON object)")?;
    let mut sensor_id = None;
    let mut kind = None;
    let mut start_time_ns = None;
    let mut sample_rate_hz = None;
    let mut samples = None;
    let mut unit = None;
    let mut seq: Option<Option<i64>> = None;
    if r.peek() == Some(b'}') {
        r.pos += 1;
    } else {
        loop {
            let next = r.peek();
            let at = r.pos;
            if next != Some(b'"') {
                return Err(r.syntax(r.pos, "expected a field name"));
            }
            let name = r.string("field name")?;
            let Some(&field) = FIELDS.iter().find(|f| **f == name) else {
                return Err(DecodeError::UnknownField { field: name, at });
            };
            r.expect(b':', "`:`")?;
            let dup = match field {
                "sensor_id" => sensor_id.replace(r.str_field(field)?).is_some(),
                "kind" => {
                    let vat = r.pos;
                    let s = r.str_field(field)?;
                    let k = SensorKind::ALL
                        .into_iter()
                        .find(|k| k.as_str() == s)
                        .ok_or_else(|| DecodeError::JsonValue {
                            field,
                            at: vat,
                            what: format!(
                                "unknown kind `{s}` (one of {})",
                                SensorKind::ALL.map(SensorKind::as_str).join(", ")
                            ),
                        })?;
                    kind.replace(k).is_some()
                }
                "start_time_ns" => start_time_ns.replace(r.long(field)?).is_some(),
                "sample_rate_hz" => sample_rate_hz
                    .replace(r.double(|| field.to_string())?)
                    .is_some(),
                "samples" => samples.replace(r.samples()?).is_some(),
                "unit" => unit.replace(r.str_field(field)?).is_some(),
                _ => {
                    let v = if r.peek() == Some(b'n') && r.eat(b"null") {
                        None
                    } else {
                        Some(r.long(field)?)
                    };
                    seq.replace(v).is_some()
                }
            };
            if dup {
                return Err(DecodeError::DuplicateField { field, at });
            }
            match r.peek() {
                Some(b',') => r.pos += 1,
                Some(b'}') => {
                    r.pos += 1;
                    break;
                }
                _ => return Err(r.syntax(r.pos, "expected `,` or `}` after a field")),
            }
        }
    }
    r.ws();
    if r.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            at: r.pos,
            count: bytes.len() - r.pos,
        });
    }
    let missing = |field| DecodeError::MissingField { field };
    Ok(SensorPacket {
        sensor_id: sensor_id.ok_or(missing("sensor_id"))?,
        kind: kind.ok_or(missing("kind"))?,
        start_time_ns: start_time_ns.ok_or(missing("start_time_ns"))?,
        sample_rate_hz: sample_rate_hz.ok_or(missing("sample_rate_hz"))?,
        samples: samples.ok_or(missing("samples"))?,
        unit: unit.ok_or(missing("unit"))?,
        seq: seq.flatten(),
    })
}
