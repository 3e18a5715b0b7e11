//! IOOS QARTOD quality control, bit-for-bit as `ioos_qc` 3.0 (`ioos_qc.qartod`).
//!
//! Every test returns one [`Flag`] per input sample: 1 GOOD, 2 UNKNOWN
//! (not evaluable), 3 SUSPECT, 4 FAIL, 9 MISSING. A *missing* reading is
//! any non-finite value (NaN or ±inf): `ioos_qc` masks both with
//! `np.ma.masked_invalid` and most tests flag it MISSING. Reproduced
//! exceptions (see each test): gross_range FAILs ±inf (only NaN is
//! MISSING), flat_line flags everything GOOD in a series of fewer than 3
//! samples, and climatology turns missing readings GOOD for any member with
//! a period other than `week`.
//!
//! Verified flag for flag against ioos_qc 3.0.0 (numpy 2.2.6, pandas 3.1.1)
//! by `tests/oracle_qc.rs`; the pandas version matters for
//! `attenuated_signal` (rolling std) and `climatology` (missing readings).
//!
//! Each test comes in two forms that emit identical flags:
//!
//! * a one-shot function over `(times_ns, values)` (times are UTC epoch
//!   nanoseconds, non-decreasing; `values.len() == times_ns.len() > 0`);
//! * a streaming state implementing [`QcStream`], fed chunks of any size
//!   (including empty ones). Flags come out in sample order; a test that
//!   looks ahead (spike, and the first sample of time_gap / flat_line) emits
//!   a sample's flag only once the samples it depends on have arrived, and
//!   [`QcStream::finish`] flushes the rest. [`QcStream::pending`] says how
//!   many pushed samples still wait for their flag. All states are
//!   `Clone + Serialize + Deserialize` so they can be checkpointed.
//!
//! Aggregation across tests follows `ioos_qc.qartod.qartod_compare`:
//! see [`qartod_compare`] and [`Flag::aggregate`].

use serde::{Deserialize, Serialize};

use crate::error::{invalid, KernelError, Result};

mod attenuated_signal;
mod climatology;
mod dates;
mod flat_line;
mod gross_range;
mod location;
mod percentile_range;
mod rate_of_change;
mod spike;
mod syntax;
mod time_gap;

pub use attenuated_signal::{
    attenuated_signal, attenuated_signal_with_interval, AttenuatedSignalConfig,
    AttenuatedSignalState, CheckType,
};
pub use climatology::{
    climatology, ClimatologyConfig, ClimatologyMember, ClimatologyPeriod, ClimatologyState, Season,
};
pub use dates::{
    data_reception, impossible_date, DataReceptionConfig, DataReceptionState, ImpossibleDateConfig,
    ImpossibleDateState,
};
pub use flat_line::{flat_line, flat_line_with_interval, FlatLineConfig, FlatLineState};
pub use gross_range::{gross_range, GrossRangeConfig, GrossRangeState};
pub use location::{
    location, location_bounds, FixedPositionState, FlagArea, LocationBoundsConfig, LocationConfig,
    RangeMethod, Shape,
};
pub use percentile_range::{
    percentile_linear, percentile_range, PercentileRangeConfig, PercentileRangeState,
};
pub use rate_of_change::{rate_of_change, RateOfChangeConfig, RateOfChangeState};
pub use spike::{spike, SpikeConfig, SpikeMethod, SpikeState};
pub use syntax::{syntax, LenType, RawTexts, SyntaxConfig, SyntaxState};
pub use time_gap::{time_gap, TimeGapConfig, TimeGapState};

/// Serde helper: an `f64` stored as its IEEE-754 bits (`u64`), so that
/// NaN and ±inf in checkpointed states survive any format, JSON included.
pub(crate) mod fbits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}

/// Serde helper: `Vec<f64>` as IEEE-754 bits, for the same reason.
pub(crate) mod fbits_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| x.to_bits()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<u64>::deserialize(d)?
            .into_iter()
            .map(f64::from_bits)
            .collect())
    }
}

/// A QARTOD flag (`ioos_qc.qartod.QartodFlags`). Serialises as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
#[repr(u8)]
pub enum Flag {
    /// 1: passed the test.
    Good = 1,
    /// 2: the test could not be evaluated (edges, missing neighbours).
    Unknown = 2,
    /// 3: suspect.
    Suspect = 3,
    /// 4: failed.
    Fail = 4,
    /// 9: the reading is missing (NaN or ±inf).
    Missing = 9,
}

impl Flag {
    /// The flag's QARTOD number.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Precedence used by `qartod_compare`: MISSING < UNKNOWN < GOOD <
    /// SUSPECT < FAIL.
    fn rank(self) -> u8 {
        match self {
            Flag::Missing => 0,
            Flag::Unknown => 1,
            Flag::Good => 2,
            Flag::Suspect => 3,
            Flag::Fail => 4,
        }
    }

    /// Aggregate flag of one sample over several tests, as
    /// `ioos_qc.qartod.qartod_compare` does: the result starts as MISSING
    /// and takes the highest-precedence flag present, with precedence
    /// MISSING < UNKNOWN < GOOD < SUSPECT < FAIL. So one GOOD beats any
    /// number of MISSING / UNKNOWN, and one FAIL beats everything. No flags
    /// at all gives MISSING.
    pub fn aggregate<I: IntoIterator<Item = Flag>>(flags: I) -> Flag {
        flags.into_iter().fold(
            Flag::Missing,
            |acc, f| if f.rank() > acc.rank() { f } else { acc },
        )
    }
}

impl From<Flag> for u8 {
    fn from(f: Flag) -> u8 {
        f as u8
    }
}

impl TryFrom<u8> for Flag {
    type Error = KernelError;
    fn try_from(v: u8) -> Result<Flag> {
        Ok(match v {
            1 => Flag::Good,
            2 => Flag::Unknown,
            3 => Flag::Suspect,
            4 => Flag::Fail,
            9 => Flag::Missing,
            _ => {
                return Err(invalid(
                    "flag",
                    format!("{v} is not a QARTOD flag (1,2,3,4,9)"),
                ))
            }
        })
    }
}

/// `ioos_qc.qartod.qartod_compare`: per-sample aggregate of several flag
/// vectors of equal length (see [`Flag::aggregate`] for the rule).
///
/// Errors if the vectors differ in length. An empty list of vectors gives
/// an empty result.
pub fn qartod_compare(vectors: &[&[Flag]]) -> Result<Vec<Flag>> {
    let Some(first) = vectors.first() else {
        return Ok(Vec::new());
    };
    let n = first.len();
    if let Some(v) = vectors.iter().find(|v| v.len() != n) {
        return Err(invalid(
            "vectors",
            format!("flag vectors differ in length ({} vs {n})", v.len()),
        ));
    }
    let mut out = vec![Flag::Missing; n];
    for v in vectors {
        for (o, &f) in out.iter_mut().zip(v.iter()) {
            if f.rank() > o.rank() {
                *o = f;
            }
        }
    }
    Ok(out)
}

/// A streaming QC test: chunks in, flags out, identical to the one-shot form.
pub trait QcStream {
    /// Feed the next chunk (`times_ns.len() == values.len()`, may be 0).
    /// Times must be non-decreasing, also across chunks. Flags of samples
    /// that became decidable are appended to `out` in sample order. On
    /// error nothing is appended and the state is unchanged.
    fn push(&mut self, times_ns: &[i64], values: &[f64], out: &mut Vec<Flag>) -> Result<()>;
    /// End of the series: append the flags still pending, then reset the
    /// state so that it can start a new series.
    fn finish(&mut self, out: &mut Vec<Flag>);
    /// Number of pushed samples whose flag has not been emitted yet.
    fn pending(&self) -> usize;
}

/// A test that flags each reading on its own, from its time and value (no
/// latency, nothing pending): its [`QcStream`] comes with it.
pub trait Pointwise {
    /// Time of the last reading pushed (times must not go back).
    fn last_t(&self) -> Option<i64>;
    fn set_last_t(&mut self, t: Option<i64>);
    /// The flag of each reading of the next chunk (called once per chunk:
    /// what a chunk needs once, such as the wall clock, is read here).
    fn flagger(&self) -> impl Fn(i64, f64) -> Flag + '_;
}

impl<S: Pointwise> QcStream for S {
    fn push(&mut self, times_ns: &[i64], values: &[f64], out: &mut Vec<Flag>) -> Result<()> {
        check_chunk(times_ns, values, self.last_t())?;
        {
            let f = self.flagger();
            out.extend(times_ns.iter().zip(values).map(|(&t, &x)| f(t, x)));
        }
        if let Some(&t) = times_ns.last() {
            self.set_last_t(Some(t));
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<Flag>) {
        self.set_last_t(None);
    }

    fn pending(&self) -> usize {
        0
    }
}

/// Runs a stream over one whole series (the one-shot forms use this, so the
/// two forms share one implementation of the numerics).
pub(crate) fn run_stream<S: QcStream>(
    mut state: S,
    times_ns: &[i64],
    values: &[f64],
) -> Result<Vec<Flag>> {
    if times_ns.is_empty() && values.is_empty() {
        return Err(KernelError::TooShort {
            len: 0,
            reason: "QC needs at least one sample".into(),
        });
    }
    let mut out = Vec::with_capacity(values.len());
    state.push(times_ns, values, &mut out)?;
    state.finish(&mut out);
    Ok(out)
}

/// Checks a chunk: equal lengths and non-decreasing times (also relative to
/// the last time of the previous chunk).
pub(crate) fn check_chunk(times_ns: &[i64], values: &[f64], last: Option<i64>) -> Result<()> {
    if times_ns.len() != values.len() {
        return Err(invalid(
            "values",
            format!("{} values for {} times", values.len(), times_ns.len()),
        ));
    }
    let mut prev = last;
    for (i, &t) in times_ns.iter().enumerate() {
        if let Some(p) = prev {
            if t < p {
                return Err(invalid(
                    "times_ns",
                    format!("times must be non-decreasing: sample {i} at {t} ns follows {p} ns"),
                ));
            }
        }
        prev = Some(t);
    }
    Ok(())
}

/// Validates a `[min, max]` span: finite and `min <= max`.
pub(crate) fn check_span(name: &'static str, span: [f64; 2]) -> Result<()> {
    if !span[0].is_finite() || !span[1].is_finite() {
        return Err(invalid(name, format!("span {span:?} must be finite")));
    }
    if span[0] > span[1] {
        return Err(invalid(name, format!("span {span:?} has min > max")));
    }
    Ok(())
}

/// Validates a threshold: finite and >= 0.
pub(crate) fn check_threshold(name: &'static str, v: f64) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(invalid(name, format!("{v} must be finite and >= 0")));
    }
    Ok(())
}

/// Median step between consecutive timestamps in ns, as numpy computes
/// `np.median(np.diff(times))` on `datetime64[ns]`: for an even count the
/// two middle steps are averaged with truncating integer division. `None`
/// for fewer than two samples. Useful to derive the nominal interval that
/// [`FlatLineState::new`] and [`AttenuatedSignalState::new`] take.
pub fn median_interval_ns(times_ns: &[i64]) -> Option<i64> {
    if times_ns.len() < 2 {
        return None;
    }
    let mut d: Vec<i64> = times_ns.windows(2).map(|w| w[1] - w[0]).collect();
    let n = d.len();
    d.sort_unstable();
    Some(if n % 2 == 1 {
        d[n / 2]
    } else {
        ((d[n / 2 - 1] as i128 + d[n / 2] as i128) / 2) as i64
    })
}

/// `np.median(np.diff(times)).astype("timedelta64[s]")` as whole seconds:
/// numpy's timedelta median of an even count is the truncated integer mean
/// of the two middle values; the cast to seconds floors.
pub(crate) fn median_interval_s(times_ns: &[i64]) -> Option<i64> {
    median_interval_ns(times_ns).map(|m| m.div_euclid(1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_rule() {
        use Flag::*;
        assert_eq!(Flag::aggregate([Missing, Good]), Good);
        assert_eq!(Flag::aggregate([Missing, Unknown]), Unknown);
        assert_eq!(Flag::aggregate([Unknown, Good]), Good);
        assert_eq!(Flag::aggregate([Good, Suspect, Unknown]), Suspect);
        assert_eq!(Flag::aggregate([Fail, Suspect, Missing]), Fail);
        assert_eq!(Flag::aggregate([]), Missing);
        let a = [Good, Missing, Fail];
        let b = [Suspect, Unknown, Good];
        assert_eq!(
            qartod_compare(&[&a, &b]).unwrap(),
            vec![Suspect, Unknown, Fail]
        );
        assert!(qartod_compare(&[&a, &b[..2]]).is_err());
    }

    #[test]
    fn flag_serde_is_numeric() {
        assert_eq!(serde_json::to_string(&Flag::Missing).unwrap(), "9");
        assert_eq!(serde_json::from_str::<Flag>("3").unwrap(), Flag::Suspect);
        assert!(serde_json::from_str::<Flag>("5").is_err());
    }

    #[test]
    fn median_interval() {
        let s = 1_000_000_000;
        assert_eq!(
            median_interval_s(&[0, s, 2 * s + s / 2, 5 * s + s / 2, 6 * s + s / 2]),
            Some(1)
        );
        assert_eq!(median_interval_s(&[0, 2 * s - 1, 4 * s - 1]), Some(1));
        assert_eq!(median_interval_s(&[0]), None);
    }

    #[test]
    fn chunk_checks() {
        assert!(check_chunk(&[1, 2], &[1.0], None).is_err());
        assert!(check_chunk(&[2, 1], &[1.0, 2.0], None).is_err());
        assert!(check_chunk(&[2, 3], &[1.0, 2.0], Some(3)).is_err());
        assert!(check_chunk(&[3, 3], &[1.0, 2.0], Some(3)).is_ok());
    }
}
