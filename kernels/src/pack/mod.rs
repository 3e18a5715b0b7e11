//! Lossless packing of sample series for storage (`raw_packets.data`).
//!
//! Every `f64` comes back bit for bit: −0.0, NaN payloads, subnormals and
//! huge values included. The coding is chosen per packet:
//!
//! | id | [`Coding`] | when | how |
//! |----|------------|------|-----|
//! | 1 | `Int` | every sample an integer within ±2^53, none −0.0 (seismic counts, most logger outputs) | first or second differences (whichever has the smaller sum of magnitudes), zig-zag, adaptive Rice ([`rice`]) |
//! | 2 | `Decimal` | every sample `m / 10^d` exactly for one `d` in 1..=9 (pH 7.12, heads to the mm) | the integers `m` as `Int` |
//! | 3 | `Xor` | anything else | XOR of the previous value's bits ([`xor`], Gorilla) |
//! | 0 | `Raw` | when the others would be larger | little-endian `f64`s |
//!
//! Blob layout: LEB128 sample count; for `Int`/`Decimal` one byte
//! `order | d << 2` and the zig-zag varints of the first value (and, for
//! second differences, the first difference); the bit stream; and a CRC-32
//! (little-endian, seeded with the coding id, so a wrong coding column is
//! caught too) of everything before it. Decoding checks the CRC before
//! anything else: a flipped bit or a truncated blob is a [`PackError`],
//! never a panic and never wrong samples.
//!
//! Cost: one pass per coding tried to classify (which also converts), one
//! to code; no allocation beyond the output, the integers and one residual
//! buffer.

mod bits;
mod rice;
mod xor;

use bits::{get_varint, put_varint, unzigzag, zigzag, BitReader, BitWriter};
use thiserror::Error;

/// Which coding a blob uses; stored beside it (`raw_packets.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Raw = 0,
    Int = 1,
    Decimal = 2,
    Xor = 3,
}

impl Coding {
    pub fn id(self) -> i32 {
        self as i32
    }

    pub fn from_id(id: i32) -> Result<Coding, PackError> {
        Ok(match id {
            0 => Coding::Raw,
            1 => Coding::Int,
            2 => Coding::Decimal,
            3 => Coding::Xor,
            other => return Err(PackError::UnknownCoding(other)),
        })
    }
}

/// Why a blob could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PackError {
    #[error("unknown sample coding {0}")]
    UnknownCoding(i32),
    #[error(
        "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the blob is damaged"
    )]
    Checksum { stored: u32, computed: u32 },
    #[error("blob truncated")]
    Truncated,
    #[error("malformed blob: {0}")]
    Header(&'static str),
}

const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

/// The samples as integers, if every one is an integer within ±2^53 and
/// none is −0.0 (it would come back +0.0).
fn as_ints(samples: &[f64]) -> Option<Vec<i64>> {
    samples
        .iter()
        .map(|&x| {
            (x.abs() <= MAX_EXACT && x.trunc() == x && !(x == 0.0 && x.is_sign_negative()))
                .then_some(x as i64)
        })
        .collect()
}

/// The smallest `d` in 1..=9 with every sample exactly `m / 10^d` for an
/// integer `m`, and those `m`.
fn as_decimals(samples: &[f64]) -> Option<(u32, Vec<i64>)> {
    (1..=9u32).find_map(|d| {
        let scale = 10f64.powi(d as i32);
        let ints = samples
            .iter()
            .map(|&x| {
                let m = (x * scale).round();
                // Through i64, as decoding goes: −0.0 would come back +0.0.
                (m.abs() <= MAX_EXACT && ((m as i64) as f64 / scale).to_bits() == x.to_bits())
                    .then_some(m as i64)
            })
            .collect::<Option<Vec<i64>>>()?;
        Some((d, ints))
    })
}

/// Packs `samples`, choosing the coding (see the module docs).
pub fn encode(samples: &[f64]) -> (Coding, Vec<u8>) {
    let mut best = if let Some(ints) = as_ints(samples) {
        (Coding::Int, encode_ints(&ints, 0))
    } else if let Some((d, ints)) = as_decimals(samples) {
        (Coding::Decimal, encode_ints(&ints, d))
    } else {
        let mut out = Vec::with_capacity(samples.len() * 4 + 8);
        put_varint(&mut out, samples.len() as u64);
        let mut w = BitWriter::new(&mut out);
        xor::encode(samples, &mut w);
        w.finish();
        (Coding::Xor, out)
    };
    if best.1.len() > samples.len() * 8 + 10 {
        let mut out = Vec::with_capacity(samples.len() * 8 + 14);
        put_varint(&mut out, samples.len() as u64);
        for x in samples {
            out.extend_from_slice(&x.to_le_bytes());
        }
        best = (Coding::Raw, out);
    }
    let crc = checksum(best.0, &best.1);
    best.1.extend_from_slice(&crc.to_le_bytes());
    best
}

fn encode_ints(v: &[i64], d: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 2 + 16);
    put_varint(&mut out, v.len() as u64);
    let diff = |i: usize| v[i].wrapping_sub(v[i - 1]);
    // Sums of magnitudes of the residuals each order would code (first
    // differences from the second on, second differences), in one pass.
    let (l1_first, l1_second) = (2..v.len()).fold((0u128, 0u128), |(a, b), i| {
        let (d1, d0) = (diff(i), diff(i - 1));
        (
            a + d1.unsigned_abs() as u128,
            b + d1.wrapping_sub(d0).unsigned_abs() as u128,
        )
    });
    let order: u8 = if v.len() > 2 && l1_second < l1_first {
        2
    } else {
        1
    };
    out.push(order | (d as u8) << 2);
    if let Some(&x0) = v.first() {
        put_varint(&mut out, zigzag(x0));
    }
    let residuals: Vec<u64> = if order == 2 {
        put_varint(&mut out, zigzag(diff(1)));
        (2..v.len())
            .map(|i| zigzag(diff(i).wrapping_sub(diff(i - 1))))
            .collect()
    } else {
        (1..v.len()).map(|i| zigzag(diff(i))).collect()
    };
    let mut w = BitWriter::new(&mut out);
    rice::encode(&residuals, &mut w);
    w.finish();
    out
}

fn checksum(coding: Coding, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(coding.id() as u32);
    h.update(body);
    h.finalize()
}

/// Unpacks a blob of `coding` (the id stored beside it).
pub fn decode(coding: i32, blob: &[u8]) -> Result<Vec<f64>, PackError> {
    let coding = Coding::from_id(coding)?;
    if blob.len() < 5 {
        return Err(PackError::Truncated);
    }
    let (body, tail) = blob.split_at(blob.len() - 4);
    let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    let computed = checksum(coding, body);
    if stored != computed {
        return Err(PackError::Checksum { stored, computed });
    }
    let mut at = 0;
    let n = get_varint(body, &mut at)?;
    // Every coding spends at least one bit per sample after its header.
    if n > 8 * body.len() as u64 + 2 {
        return Err(PackError::Header("more samples than the blob can hold"));
    }
    let n = n as usize;
    let mut out = Vec::with_capacity(n);
    match coding {
        Coding::Raw => {
            let raw = &body[at..];
            if raw.len() != n * 8 {
                return Err(PackError::Header("raw payload is not 8 bytes per sample"));
            }
            out.extend(
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
        }
        Coding::Xor => {
            let mut r = BitReader::new(&body[at..]);
            xor::decode(n, &mut r, &mut out)?;
        }
        Coding::Int | Coding::Decimal => {
            let flags = *body.get(at).ok_or(PackError::Truncated)?;
            at += 1;
            let (order, d) = (flags & 3, (flags >> 2) as u32);
            let scale = match (coding, d) {
                (Coding::Int, 0) => None,
                (Coding::Decimal, 1..=9) => Some(10f64.powi(d as i32)),
                _ => return Err(PackError::Header("decimal places out of range")),
            };
            if !(order == 1 || order == 2) {
                return Err(PackError::Header("difference order not 1 or 2"));
            }
            let ints = decode_ints(n, order, body, at)?;
            for m in ints {
                let m = m as f64;
                if m.abs() > MAX_EXACT {
                    return Err(PackError::Header("integer beyond ±2^53"));
                }
                out.push(scale.map_or(m, |s| m / s));
            }
        }
    }
    Ok(out)
}

fn decode_ints(n: usize, order: u8, body: &[u8], mut at: usize) -> Result<Vec<i64>, PackError> {
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return Ok(out);
    }
    let x0 = unzigzag(get_varint(body, &mut at)?);
    out.push(x0);
    let mut d = if order == 2 && n >= 2 {
        Some(unzigzag(get_varint(body, &mut at)?))
    } else {
        None
    };
    let explicit = n - 1 - usize::from(d.is_some());
    let mut residuals = Vec::with_capacity(explicit);
    let mut r = BitReader::new(&body[at..]);
    rice::decode(explicit, &mut r, &mut residuals)?;
    let mut x = x0;
    if let Some(d1) = d {
        x = x.wrapping_add(d1);
        out.push(x);
    }
    for u in residuals {
        let step = match d.as_mut() {
            Some(diff) => {
                *diff = diff.wrapping_add(unzigzag(u));
                *diff
            }
            None => unzigzag(u),
        };
        x = x.wrapping_add(step);
        out.push(x);
    }
    Ok(out)
}
