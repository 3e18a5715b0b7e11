//! Second-order-section filtering as `scipy.signal.sosfilt` (direct form II
//! transposed, one state pair per section), one-shot, streaming and
//! zero-phase (ObsPy's `zerophase=True`).

use super::checks::check_finite;
use crate::error::{invalid, Result};
use serde::{Deserialize, Serialize};

/// Cascaded second-order sections `[b0, b1, b2, a0, a1, a2]` (`a0 == 1`),
/// SciPy's `sos` layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sos {
    sections: Vec<[f64; 6]>,
}

impl Sos {
    /// Wraps sections; every coefficient must be finite and every `a0 == 1`.
    pub fn new(sections: Vec<[f64; 6]>) -> Result<Self> {
        if sections.is_empty() {
            return Err(invalid("sos", "at least one section is required"));
        }
        for s in &sections {
            if s.iter().any(|c| !c.is_finite()) {
                return Err(invalid("sos", "non-finite coefficient"));
            }
            if s[3] != 1.0 {
                return Err(invalid("sos", format!("a0 = {} must be 1", s[3])));
            }
        }
        Ok(Sos { sections })
    }
    pub fn sections(&self) -> &[[f64; 6]] {
        &self.sections
    }
    pub fn len(&self) -> usize {
        self.sections.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }
}

/// Streaming `sosfilt`: keeps SciPy's `zi` (shape `(n_sections, 2)`) between
/// chunks, so feeding a trace in chunks of any size gives exactly (bit for
/// bit) the one-shot output. Starts from rest (`zi = 0`), as ObsPy does.
///
/// Per sample `x` and section `s = [b0, b1, b2, 1, a1, a2]`:
/// `y = b0*x + z0; z0 = b1*x - a1*y + z1; z1 = b2*x - a2*y`, then `x = y`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SosFilter {
    sos: Sos,
    zi: Vec<[f64; 2]>,
    samples_seen: u64,
}

impl SosFilter {
    pub fn new(sos: Sos) -> Self {
        let zi = vec![[0.0; 2]; sos.len()];
        SosFilter {
            sos,
            zi,
            samples_seen: 0,
        }
    }
    pub fn sos(&self) -> &Sos {
        &self.sos
    }
    /// Filter state per section (`zi`).
    pub fn state(&self) -> &[[f64; 2]] {
        &self.zi
    }
    /// Back to rest (zero state), e.g. after a gap.
    pub fn reset(&mut self) {
        self.zi.iter_mut().for_each(|z| *z = [0.0; 2]);
        self.samples_seen = 0;
    }
    /// Filters `data` in place. Non-finite samples are rejected before any
    /// state change.
    pub fn process_in_place(&mut self, data: &mut [f64]) -> Result<()> {
        check_finite(data, self.samples_seen as usize)?;
        let secs = &self.sos.sections;
        let zi = &mut self.zi;
        for v in data.iter_mut() {
            let mut x = *v;
            for (s, z) in secs.iter().zip(zi.iter_mut()) {
                let y = s[0] * x + z[0];
                z[0] = s[1] * x - s[4] * y + z[1];
                z[1] = s[2] * x - s[5] * y;
                x = y;
            }
            *v = x;
        }
        self.samples_seen += data.len() as u64;
        Ok(())
    }
    /// Filters a chunk, appending the output to `out`.
    pub fn process(&mut self, input: &[f64], out: &mut Vec<f64>) -> Result<()> {
        check_finite(input, self.samples_seen as usize)?;
        let start = out.len();
        out.extend_from_slice(input);
        self.process_in_place(&mut out[start..])
    }
}

/// One-shot `scipy.signal.sosfilt(sos, data)` from rest.
pub fn sosfilt(sos: &Sos, data: &[f64]) -> Result<Vec<f64>> {
    let mut out = data.to_vec();
    SosFilter::new(sos.clone()).process_in_place(&mut out)?;
    Ok(out)
}

/// Zero-phase filtering as ObsPy's `zerophase=True`: `sosfilt` forwards,
/// reverse, `sosfilt` again, reverse. No padding, so edges keep transients
/// (ObsPy semantics). Doubles the effective order. Batch only.
pub fn sosfilt_zerophase(sos: &Sos, data: &[f64]) -> Result<Vec<f64>> {
    let mut out = sosfilt(sos, data)?;
    out.reverse();
    SosFilter::new(sos.clone()).process_in_place(&mut out)?;
    out.reverse();
    Ok(out)
}
