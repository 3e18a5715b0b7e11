//! Bytes per sample of the lossless sample codec (`fakopp_kernels::pack`)
//! on files of samples, stored as `raw_packets` would store them: one blob
//! per packet.
//!
//! ```text
//! cargo build --release -p fakopp-kernels --example pack_size
//! target/release/examples/pack_size [--packet N] [--reps R] [--explore] FILE...
//! ```
//!
//! Each FILE is one series of little-endian `f64` samples. A NaN marks a
//! missing reading: it ends the current packet and is not stored. Packets
//! are otherwise cut every N samples (`--packet`, default 100: 1 s of a
//! 100 Hz seismic stream, or a run of up to 100 logger readings). Every
//! packet is encoded with `pack::encode` and decoded again with
//! `pack::decode`, which must give back the same bits (else the program
//! fails).
//!
//! Prints one JSON line per file: `samples`, `packets`, `codec_bytes` (the
//! blobs, CRC included), `list_double_bytes` (the same packets as a CQL
//! `list<double>`: a 4-byte count and, per element, a 4-byte length and
//! 8 bytes, so 4 + 12 n per packet), `raw_f64_bytes` (8 n), the count of
//! each `Coding` chosen, and `encode_ns_per_sample` /
//! `decode_ns_per_sample`: the fastest of R passes (`--reps`, default 5)
//! over all the file's packets, one thread, on whatever else the machine
//! is doing at the time: a rough figure, not a benchmark.
//!
//! `--explore` adds `explore`: where the bytes of the `Int`/`Decimal`
//! packets go (headers, CRC, Rice block parameters, residual bits, padding)
//! and what a few layout changes would give, from a bit-cost model of the
//! codec's Rice coding (checked against the real blob sizes: `model_exact`).
//! It measures ideas only; the codec is not changed.

use std::hint::black_box;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use fakopp_kernels::pack::{decode, encode, Coding};
use serde_json::{json, Value};

const USAGE: &str = "usage: pack_size [--packet N] [--reps R] [--explore] FILE...";

struct Args {
    packet: usize,
    reps: usize,
    explore: bool,
    files: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        packet: 100,
        reps: 5,
        explore: false,
        files: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{name}: not a positive integer: {v}")),
            }
        };
        match a.as_str() {
            "--packet" => args.packet = number("--packet")?,
            "--reps" => args.reps = number("--reps")?,
            "--explore" => args.explore = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => args.files.push(a),
        }
    }
    if args.files.is_empty() {
        return Err(USAGE.to_string());
    }
    Ok(args)
}

fn read_f64s(path: &str) -> Result<Vec<f64>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if bytes.len() % 8 != 0 {
        return Err(format!(
            "{path}: {} bytes is not a whole number of f64s",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// Runs of at most `n` consecutive non-NaN samples; a NaN ends a run.
fn packets(samples: &[f64], n: usize) -> Vec<&[f64]> {
    let mut out = Vec::new();
    for run in samples.split(|x| x.is_nan()) {
        out.extend(run.chunks(n));
    }
    out
}

fn fastest_ns(reps: usize, mut pass: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            pass();
            t.elapsed().as_nanos() as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn measure(path: &str, args: &Args) -> Result<Value, String> {
    let samples = read_f64s(path)?;
    let packets = packets(&samples, args.packet);
    let stored: usize = packets.iter().map(|p| p.len()).sum();
    let mut blobs = Vec::with_capacity(packets.len());
    let mut counts = [0usize; 4];
    for (i, p) in packets.iter().enumerate() {
        let (coding, blob) = encode(p);
        let back = decode(coding.id(), &blob)
            .map_err(|e| format!("{path}: packet {i} ({coding:?}) does not decode: {e}"))?;
        if back.len() != p.len()
            || back
                .iter()
                .zip(p.iter())
                .any(|(a, b)| a.to_bits() != b.to_bits())
        {
            return Err(format!(
                "{path}: packet {i} ({coding:?}) decodes to other samples"
            ));
        }
        counts[coding.id() as usize] += 1;
        blobs.push((coding, blob));
    }
    let codec_bytes: usize = blobs.iter().map(|(_, b)| b.len()).sum();
    let list_double_bytes: usize = packets.iter().map(|p| 4 + 12 * p.len()).sum();
    let per = |b: usize| {
        if stored == 0 {
            0.0
        } else {
            b as f64 / stored as f64
        }
    };

    let enc = fastest_ns(args.reps, || {
        for p in &packets {
            black_box(encode(black_box(p)));
        }
    });
    let dec = fastest_ns(args.reps, || {
        for (c, b) in &blobs {
            black_box(decode(c.id(), black_box(b)).ok());
        }
    });
    let name = Path::new(path)
        .file_name()
        .map_or(path.to_string(), |n| n.to_string_lossy().into_owned());
    let mut out = json!({
        "name": name,
        "path": path,
        "packet": args.packet,
        "values_in_file": samples.len(),
        "missing": samples.len() - stored,
        "samples": stored,
        "packets": packets.len(),
        "codec_bytes": codec_bytes,
        "list_double_bytes": list_double_bytes,
        "raw_f64_bytes": 8 * stored,
        "codec_bytes_per_sample": per(codec_bytes),
        "list_double_bytes_per_sample": per(list_double_bytes),
        "codings": {
            "raw": counts[Coding::Raw.id() as usize],
            "int": counts[Coding::Int.id() as usize],
            "decimal": counts[Coding::Decimal.id() as usize],
            "xor": counts[Coding::Xor.id() as usize],
        },
        "encode_ns_per_sample": per(1) * enc,
        "decode_ns_per_sample": per(1) * dec,
        "timing": format!(
            "rough: fastest of {} single-thread passes over the file's packets, machine shared",
            args.reps
        ),
    });
    if args.explore {
        out["explore"] = explore(&packets, &blobs, path)?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Bit-cost model of the Int/Decimal layout (kernels/src/pack/mod.rs and
// rice.rs), to see where the bytes go and to price layout changes.

const ESCAPE: u64 = 24;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Bits of `u` with Rice parameter `k` (escape as in rice.rs).
fn cost(u: u64, k: u32) -> u64 {
    let q = u >> k;
    if q >= ESCAPE {
        ESCAPE + 7 + (64 - u.leading_zeros()) as u64
    } else {
        q + 1 + k as u64
    }
}

/// rice.rs's choice of `k`: log2 of the mean, ±1, cheapest.
fn block_k(block: &[u64]) -> (u32, u64) {
    let mean = block.iter().map(|&u| u as u128).sum::<u128>() / block.len() as u128;
    let guess = (128 - mean.leading_zeros()).saturating_sub(1).min(62);
    let total = |k: u32| block.iter().map(|&u| cost(u, k)).sum::<u64>();
    (guess.saturating_sub(1)..=(guess + 1).min(62))
        .map(|k| (k, total(k)))
        .min_by_key(|&(k, t)| (t, k))
        .unwrap_or((0, 0))
}

/// Rice bits of `res` in blocks of `block`, `kbits` bits for each block's
/// `k`; `delta_k`: the first k in 6 bits, later ones as a 2-bit code
/// (same / +1 / −1 / escape + 6 bits).
fn rice_bits(res: &[u64], block: usize, kbits: u64, delta_k: bool) -> u64 {
    let mut prev: Option<u32> = None;
    let mut bits = 0;
    for b in res.chunks(block) {
        let (k, t) = block_k(b);
        bits += t + match (delta_k, prev) {
            (true, Some(p)) if p == k || p + 1 == k || k + 1 == p => 2,
            (true, Some(_)) => 2 + 6,
            _ => kbits,
        };
        prev = Some(k);
    }
    bits
}

/// The integers an Int/Decimal packet codes, and its decimal places.
fn ints_of(samples: &[f64], blob: &[u8]) -> Option<(u32, Vec<i64>)> {
    let mut at = 0;
    get_varint(blob, &mut at)?;
    let d = (*blob.get(at)? >> 2) as u32;
    let scale = 10f64.powi(d as i32);
    Some((
        d,
        samples
            .iter()
            .map(|&x| (x * scale).round() as i64)
            .collect(),
    ))
}

fn residuals(v: &[i64], order: u8) -> Vec<u64> {
    let diff = |i: usize| v[i].wrapping_sub(v[i - 1]);
    match order {
        0 => v[1..]
            .iter()
            .map(|&x| zigzag(x.wrapping_sub(v[0])))
            .collect(),
        1 => (1..v.len()).map(|i| zigzag(diff(i))).collect(),
        _ => (2..v.len())
            .map(|i| zigzag(diff(i).wrapping_sub(diff(i - 1))))
            .collect(),
    }
}

#[derive(Default)]
struct Tally {
    packets: usize,
    samples: usize,
    actual_bytes: usize,
    model_bytes: usize,
    count_bytes: usize,
    flag_bytes: usize,
    first_value_bytes: usize,
    crc_bytes: usize,
    k_bits: u64,
    residual_bits: u64,
    padding_bits: u64,
    order2: usize,
    /// Total bytes under each alternative layout.
    alt: [usize; ALTS.len()],
}

/// (key, what changes) of each alternative layout priced by `explore`.
const ALTS: [(&str, &str); 8] = [
    ("no_crc", "no CRC-32 (4 bytes less per blob)"),
    ("block32", "Rice blocks of 32 instead of 16"),
    ("block64", "Rice blocks of 64"),
    ("k_per_packet", "one Rice k per packet"),
    ("delta_k", "blocks of 16, each later k as a 2-bit same/+1/-1 code (else 2+6 bits)"),
    ("exact_order", "difference order 1 or 2 by exact bits instead of the smaller L1"),
    ("gcd", "integers divided by the gcd of their differences when that pays (the gcd as 1 varint more, a spare flag bit)"),
    ("all", "no_crc + delta_k + exact_order + gcd"),
];

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn explore(packets: &[&[f64]], blobs: &[(Coding, Vec<u8>)], path: &str) -> Result<Value, String> {
    let mut t = Tally::default();
    for (p, (coding, blob)) in packets.iter().zip(blobs) {
        if !matches!(coding, Coding::Int | Coding::Decimal) {
            continue;
        }
        let (_d, v) = ints_of(p, blob).ok_or(format!("{path}: unparsable blob header"))?;
        let n = v.len();
        let order = blob[varint_len(n as u64)] & 3;
        let mut head = varint_len(n as u64) + 1 + varint_len(zigzag(v[0]));
        if order == 2 {
            head += varint_len(zigzag(v[1].wrapping_sub(v[0])));
        }
        let res = residuals(&v, order);
        let body_bits = rice_bits(&res, 16, 6, false);
        let body = body_bits.div_ceil(8) as usize;
        let model = head + body + 4;
        t.packets += 1;
        t.samples += n;
        t.actual_bytes += blob.len();
        t.model_bytes += model;
        t.count_bytes += varint_len(n as u64);
        t.flag_bytes += 1;
        t.first_value_bytes += head - varint_len(n as u64) - 1;
        t.crc_bytes += 4;
        let kb = 6 * res.len().div_ceil(16) as u64;
        t.k_bits += kb;
        t.residual_bits += body_bits - kb;
        t.padding_bits += 8 * body as u64 - body_bits;
        t.order2 += usize::from(order == 2);

        // Header (count, flags, first value(s)) + body + CRC of a variant.
        let bytes = |head: usize, bits: u64, crc: usize| head + bits.div_ceil(8) as usize + crc;
        let head_of = |v: &[i64], order: u8, extra: usize| {
            let mut h = varint_len(v.len() as u64) + 1 + varint_len(zigzag(v[0])) + extra;
            if order == 2 && v.len() >= 2 {
                h += varint_len(zigzag(v[1].wrapping_sub(v[0])));
            }
            h
        };
        t.alt[0] += model - 4;
        t.alt[1] += bytes(head, rice_bits(&res, 32, 6, false), 4);
        t.alt[2] += bytes(head, rice_bits(&res, 64, 6, false), 4);
        t.alt[3] += bytes(head, rice_bits(&res, res.len().max(1), 6, false), 4);
        t.alt[4] += bytes(head, rice_bits(&res, 16, 6, true), 4);
        let best_order = |v: &[i64], delta: bool| {
            [1u8, 2]
                .iter()
                .filter(|&&o| o == 1 || v.len() > 2)
                .map(|&o| (o, rice_bits(&residuals(v, o), 16, 6, delta)))
                .min_by_key(|&(o, b)| (bytes(head_of(v, o, 0), b, 0), o))
                .expect("order 1 always")
        };
        let (o, b) = best_order(&v, false);
        t.alt[5] += bytes(head_of(&v, o, 0), b, 4);
        // Divide by the gcd of the differences (e.g. heads in steps of
        // 0.005 m written with 3 decimals); the first value stays whole.
        let g = v
            .windows(2)
            .fold(0u64, |g, w| gcd(g, w[1].wrapping_sub(w[0]).unsigned_abs()));
        // The flag would take a spare bit of the flags byte; the encoder
        // uses the gcd only where it pays.
        let vg: Option<Vec<i64>> =
            (g > 1).then(|| v.iter().map(|&x| (x - v[0]) / g as i64 + v[0]).collect());
        let with_gcd = |order: Option<u8>, crc: usize, delta: bool| {
            let plain = match order {
                Some(o) => bytes(
                    head_of(&v, o, 0),
                    rice_bits(&residuals(&v, o), 16, 6, delta),
                    crc,
                ),
                None => {
                    let (o, b) = best_order(&v, delta);
                    bytes(head_of(&v, o, 0), b, crc)
                }
            };
            let scaled = vg.as_ref().map_or(usize::MAX, |vg| match order {
                Some(o) => bytes(
                    head_of(vg, o, varint_len(g)),
                    rice_bits(&residuals(vg, o), 16, 6, delta),
                    crc,
                ),
                None => {
                    let (o, b) = best_order(vg, delta);
                    bytes(head_of(vg, o, varint_len(g)), b, crc)
                }
            });
            plain.min(scaled)
        };
        t.alt[6] += with_gcd(Some(order), 4, false);
        t.alt[7] += with_gcd(None, 0, true);
    }
    let per = |b: f64| {
        if t.samples == 0 {
            0.0
        } else {
            b / t.samples as f64
        }
    };
    let alts: Vec<Value> = ALTS
        .iter()
        .zip(t.alt)
        .map(|(&(key, what), bytes)| {
            json!({"key": key, "what": what, "bytes": bytes, "bytes_per_sample": per(bytes as f64)})
        })
        .collect();
    Ok(json!({
        "int_decimal_packets": t.packets,
        "int_decimal_samples": t.samples,
        "order2_packets": t.order2,
        "actual_bytes": t.actual_bytes,
        "model_bytes": t.model_bytes,
        "model_exact": t.actual_bytes == t.model_bytes,
        "bytes_per_sample": {
            "count_varint": per(t.count_bytes as f64),
            "flags": per(t.flag_bytes as f64),
            "first_values": per(t.first_value_bytes as f64),
            "crc": per(t.crc_bytes as f64),
            "rice_k": per(t.k_bits as f64 / 8.0),
            "residuals": per(t.residual_bits as f64 / 8.0),
            "padding": per(t.padding_bits as f64 / 8.0),
        },
        "alternatives": alts,
    }))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    for f in &args.files {
        match measure(f, &args) {
            Ok(v) => println!("{v}"),
            Err(e) => {
                eprintln!("pack_size: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
