//! MSB-first bit streams over bytes: the writer appends to a `Vec<u8>`,
//! the reader refuses to read past its slice (a truncated blob is an
//! error, never a panic or made-up bits).

use super::PackError;

pub struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    /// Bits held in `acc` (0..64), aligned to its low end.
    held: u32,
}

impl<'a> BitWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            held: 0,
        }
    }

    /// Appends the low `n` bits of `v` (n ≤ 64), most significant first.
    #[inline]
    pub fn put(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        let room = 64 - self.held;
        if n <= room {
            self.acc = if n == 64 { v } else { (self.acc << n) | v };
            self.held += n;
            if self.held == 64 {
                self.out.extend_from_slice(&self.acc.to_be_bytes());
                self.acc = 0;
                self.held = 0;
            }
        } else {
            // Fill the accumulator with the high part, flush, keep the rest.
            let rest = n - room;
            let full = (self.acc << room) | (v >> rest);
            self.out.extend_from_slice(&full.to_be_bytes());
            self.acc = v & ((1u64 << rest) - 1);
            self.held = rest;
        }
    }

    /// `n` one bits then a zero (n ≤ 63).
    #[inline]
    pub fn put_unary(&mut self, n: u32) {
        debug_assert!(n < 64);
        self.put(((1u64 << n) - 1) << 1, n + 1);
    }

    /// `n` one bits, no terminating zero (n ≤ 64).
    #[inline]
    pub fn put_unary_ones(&mut self, n: u32) {
        self.put(u64::MAX, n);
    }

    /// Flushes the last partial byte, padded with zeros.
    pub fn finish(self) {
        let mut held = self.held;
        let acc = self.acc;
        while held >= 8 {
            held -= 8;
            self.out.push((acc >> held) as u8);
        }
        if held > 0 {
            self.out.push((acc << (8 - held)) as u8);
        }
    }
}

pub struct BitReader<'a> {
    data: &'a [u8],
    /// Next bit to read, counted from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// The next `n` bits (n ≤ 64) as the low bits of a `u64`.
    #[inline]
    pub fn get(&mut self, n: u32) -> Result<u64, PackError> {
        if n == 0 {
            return Ok(0);
        }
        let end = self.pos + n as usize;
        if end > self.data.len() * 8 {
            return Err(PackError::Truncated);
        }
        let mut v = 0u64;
        let mut left = n;
        while left > 0 {
            let byte = self.data[self.pos / 8];
            let off = (self.pos % 8) as u32;
            let take = (8 - off).min(left);
            let bits = (byte >> (8 - off - take)) & ((1u16 << take) - 1) as u8;
            v = if take == 64 {
                bits as u64
            } else {
                (v << take) | bits as u64
            };
            self.pos += take as usize;
            left -= take;
        }
        Ok(v)
    }

    /// Counts one bits up to the first zero, reading at most `max` ones
    /// (then no zero follows).
    #[inline]
    pub fn get_unary(&mut self, max: u32) -> Result<u32, PackError> {
        let mut n = 0;
        while n < max {
            if self.get(1)? == 0 {
                return Ok(n);
            }
            n += 1;
        }
        Ok(n)
    }
}

/// LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 varint at `*at`, advancing it.
pub fn get_varint(data: &[u8], at: &mut usize) -> Result<u64, PackError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*at).ok_or(PackError::Truncated)?;
        *at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            if shift == 63 && b > 1 {
                break;
            }
            return Ok(v);
        }
    }
    Err(PackError::Header("varint longer than 64 bits"))
}

#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}
