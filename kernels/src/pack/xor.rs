//! XOR-of-previous float coding (Gorilla, Pelkonen et al. 2015) for series
//! that are neither integers nor short decimals. The first value is stored
//! in 64 bits; each later one as its bits XOR the previous value's:
//! `0` when equal; `10` + the meaningful bits when they fit inside the
//! previous window of leading/trailing zeros; otherwise `11`, 6 bits of
//! leading zeros, 6 bits of (meaningful length − 1) and the meaningful
//! bits. Works on raw bit patterns, so NaN payloads, −0.0 and subnormals
//! come back as they went in.

use super::bits::{BitReader, BitWriter};
use super::PackError;

pub fn encode(values: &[f64], w: &mut BitWriter<'_>) {
    let Some(first) = values.first() else {
        return;
    };
    let mut prev = first.to_bits();
    w.put(prev, 64);
    // Window of the last explicit block: (leading zeros, meaningful bits).
    let mut window: Option<(u32, u32)> = None;
    for v in &values[1..] {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.put(0, 1);
            continue;
        }
        let lead = x.leading_zeros().min(63);
        let trail = x.trailing_zeros();
        match window {
            Some((wl, wm)) if lead >= wl && trail >= 64 - wl - wm => {
                w.put(0b10, 2);
                w.put(x >> (64 - wl - wm), wm);
            }
            _ => {
                let meaningful = 64 - lead - trail;
                w.put(0b11, 2);
                w.put(lead as u64, 6);
                w.put((meaningful - 1) as u64, 6);
                w.put(x >> trail, meaningful);
                window = Some((lead, meaningful));
            }
        }
    }
}

pub fn decode(n: usize, r: &mut BitReader<'_>, out: &mut Vec<f64>) -> Result<(), PackError> {
    if n == 0 {
        return Ok(());
    }
    let mut prev = r.get(64)?;
    out.push(f64::from_bits(prev));
    let mut window: Option<(u32, u32)> = None;
    for _ in 1..n {
        if r.get(1)? == 0 {
            out.push(f64::from_bits(prev));
            continue;
        }
        let (lead, meaningful) = if r.get(1)? == 0 {
            window.ok_or(PackError::Header("XOR block reuses a window before any"))?
        } else {
            let lead = r.get(6)? as u32;
            let meaningful = r.get(6)? as u32 + 1;
            if lead + meaningful > 64 {
                return Err(PackError::Header("XOR block wider than 64 bits"));
            }
            window = Some((lead, meaningful));
            (lead, meaningful)
        };
        let x = r.get(meaningful)? << (64 - lead - meaningful);
        prev ^= x;
        out.push(f64::from_bits(prev));
    }
    Ok(())
}
