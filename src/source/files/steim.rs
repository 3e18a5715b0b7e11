//! Steim-1 and Steim-2 decoding (SEED manual v2.4, appendix B), straight
//! to `f64`, for the MiniSEED reader's hot path.
//!
//! A payload is a run of 64-byte frames of sixteen 32-bit words. Word 0
//! of each frame holds sixteen 2-bit nibbles, one per word, that say how
//! the word splits into first differences; in frame 0, words 1 and 2 are
//! the forward (X0, the first sample) and reverse (Xn, the last sample)
//! integration constants. Samples are the running sum of the differences
//! from X0, the first difference of the record being skipped (it refers
//! to the previous record).
//!
//! | nibble | Steim-1     | Steim-2 (by the word's top two bits, `dnib`)              |
//! |--------|-------------|-----------------------------------------------------------|
//! | 00     | no data     | no data                                                   |
//! | 01     | 4 × 8 bit   | 4 × 8 bit                                                 |
//! | 10     | 2 × 16 bit  | 01: 1 × 30, 10: 2 × 15, 11: 3 × 10 bit (00: invalid)      |
//! | 11     | 1 × 32 bit  | 00: 5 × 6, 01: 6 × 5, 10: 7 × 4 bit (11: invalid)         |
//!
//! The results equal libmseed's `msr_decode_steim1/2` bit for bit,
//! including its byte-order rules (8- and 16-bit differences are taken in
//! the record's memory order, wider fields from the word in the payload's
//! byte order) and its checks: an invalid nibble/`dnib` pair is an error; a
//! last sample that differs from Xn is a warning, the samples are kept.
//! What libmseed decodes in two passes (differences of a frame into a
//! buffer, then the sums into `int32`, then our copy to `f64`) is one
//! table-driven pass here: every word is split by a lookup into up to seven
//! differences without a branch per field.

/// Steim compression level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    One,
    Two,
}

/// How one word splits into differences: `count` fields of `width` bits;
/// field k is `(word << lsh[k]) as i32 >> rsh` (moved to the top, then
/// sign-extended back down), so all eight lanes are computed alike.
#[derive(Clone, Copy)]
struct Split {
    count: u8,
    /// A reserved nibble/dnib pair (Steim-2 10/00 and 11/11).
    invalid: bool,
    rsh: u32,
    lsh: [u32; 8],
}

/// `count` fields of `width` bits, the k-th at bit offset `shifts(k)`.
const fn split_at(count: u8, width: u32, little_first: bool) -> Split {
    let mut lsh = [0u32; 8];
    let mut k = 0;
    while k < count as usize {
        // Most significant field first, or (memory order of a little-endian
        // word) least significant first.
        let shift = if little_first {
            k as u32 * width
        } else {
            (count as u32 - 1 - k as u32) * width
        };
        lsh[k] = 32 - width - shift;
        k += 1;
    }
    Split {
        count,
        invalid: false,
        rsh: 32 - width,
        lsh,
    }
}

const fn split(count: u8, width: u32) -> Split {
    split_at(count, width, false)
}

const NONE: Split = split(0, 8);
const BAD: Split = Split {
    count: 0,
    invalid: true,
    rsh: 0,
    lsh: [0; 8],
};

/// Splits indexed by `nibble << 2 | dnib` (dnib = the word's top two bits).
/// 8- and 16-bit fields are in memory order, which for a little-endian
/// word is least significant first.
const fn table_for(level: Level, big_endian: bool) -> [Split; 16] {
    let mut t = [NONE; 16];
    let mut d = 0;
    while d < 4 {
        t[4 + d] = split_at(4, 8, !big_endian);
        match level {
            Level::One => {
                t[8 + d] = split_at(2, 16, !big_endian);
                t[12 + d] = split(1, 32);
            }
            Level::Two => {
                t[8 + d] = match d {
                    0 => BAD,
                    1 => split(1, 30),
                    2 => split(2, 15),
                    _ => split(3, 10),
                };
                t[12 + d] = match d {
                    0 => split(5, 6),
                    1 => split(6, 5),
                    2 => split(7, 4),
                    _ => BAD,
                };
            }
        }
        d += 1;
    }
    t
}

static TABLES: [[Split; 16]; 4] = [
    table_for(Level::One, true),
    table_for(Level::One, false),
    table_for(Level::Two, true),
    table_for(Level::Two, false),
];

/// What [`decode`] found besides the samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Samples appended (fewer than asked if the frames ran out).
    pub samples: usize,
    /// libmseed's integrity warning: the last sample differs from Xn.
    pub warning: Option<String>,
}

/// Decodes up to `count` samples from `payload` (whole 64-byte frames; a
/// partial frame at the end is ignored, as libmseed does) and appends them
/// to `out`. `big_endian` is the payload's byte order. On error nothing is
/// appended.
pub fn decode(
    payload: &[u8],
    level: Level,
    big_endian: bool,
    count: usize,
    out: &mut Vec<f64>,
) -> Result<Decoded, String> {
    let table = &TABLES[(level == Level::Two) as usize * 2 + !big_endian as usize];
    let r = if big_endian {
        decode_frames::<true>(payload, table, count, out)
    } else {
        decode_frames::<false>(payload, table, count, out)
    };
    let (done, last, xn) = r.map_err(|(frame, word, nib, dnib)| {
        format!(
            "Steim-2 frame {frame} word {word}: impossible dnib={dnib:02b} for nibble={nib:02b}"
        )
    })?;
    let warning = (done == count && count > 0 && last != xn).then(|| {
        format!(
            "data integrity check for Steim-{} failed, last sample={last}, Xn={xn}",
            if level == Level::One { 1 } else { 2 }
        )
    });
    Ok(Decoded {
        samples: done,
        warning,
    })
}

#[inline(always)]
fn word<const BIG: bool>(frame: &[u8; 64], w: usize) -> u32 {
    let b = [
        frame[4 * w],
        frame[4 * w + 1],
        frame[4 * w + 2],
        frame[4 * w + 3],
    ];
    if BIG {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// Samples appended, the last sample and Xn.
type Frames = (usize, i32, i32);
/// Where a reserved nibble/dnib pair is: frame, word, nibble, dnib.
type Reserved = (usize, usize, u32, u32);

/// The frames' samples appended to `out`, or where a reserved pair is
/// (nothing appended then).
fn decode_frames<const BIG: bool>(
    payload: &[u8],
    table: &[Split; 16],
    count: usize,
    out: &mut Vec<f64>,
) -> Result<Frames, Reserved> {
    let frames = payload.as_chunks::<64>().0;
    let Some(first) = frames.first().filter(|_| count > 0) else {
        return Ok((0, 0, 0));
    };
    let x0 = word::<BIG>(first, 1) as i32;
    let xn = word::<BIG>(first, 2) as i32;
    let start = out.len();
    // A corrupt header may declare far more samples than the frames hold
    // (at most 7 per 4 bytes): reserve what can be there.
    out.reserve(count.min(payload.len() * 2));
    out.push(f64::from(x0));
    let mut last = x0;
    let mut done = 1usize;
    // One frame: 15 words of at most 7 differences, plus room for the
    // 8-lane store of the last word.
    let mut diff = [0i32; 15 * 7 + 8];
    for (fi, frame) in frames.iter().enumerate() {
        // Frame 0 is always decoded (and checked), as libmseed does, even
        // when X0 is the only sample.
        if fi > 0 && done >= count {
            break;
        }
        let nibbles = word::<BIG>(frame, 0);
        let mut n = 0usize;
        let mut invalid = false;
        for w in if fi == 0 { 3 } else { 1 }..16 {
            let v = word::<BIG>(frame, w);
            let s = &table[(((nibbles >> (30 - 2 * w)) & 3) << 2 | (v >> 30)) as usize];
            invalid |= s.invalid;
            let dst: &mut [i32; 8] = (&mut diff[n..n + 8]).try_into().expect("room for 8");
            for (d, &lsh) in dst.iter_mut().zip(&s.lsh) {
                *d = ((v << lsh) as i32) >> s.rsh;
            }
            n += usize::from(s.count);
        }
        if invalid {
            out.truncate(start);
            let w = (if fi == 0 { 3 } else { 1 }..16)
                .find(|&w| {
                    let v = word::<BIG>(frame, w);
                    table[(((nibbles >> (30 - 2 * w)) & 3) << 2 | (v >> 30)) as usize].invalid
                })
                .expect("an invalid word");
            return Err((
                fi,
                w,
                (nibbles >> (30 - 2 * w)) & 3,
                word::<BIG>(frame, w) >> 30,
            ));
        }
        // The record's first difference refers to the previous record.
        let skip = usize::from(fi == 0).min(n);
        let take = (n - skip).min(count - done);
        // Sums written straight into the output's spare room.
        out.reserve(take);
        let room = &mut out.spare_capacity_mut()[..take];
        for (s, &d) in room.iter_mut().zip(&diff[skip..skip + take]) {
            last = last.wrapping_add(d);
            s.write(f64::from(last));
        }
        // SAFETY: the `take` slots after the length were just written.
        unsafe { out.set_len(out.len() + take) };
        done += take;
    }
    Ok((done, last, xn))
}
