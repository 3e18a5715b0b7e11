//! QARTOD syntax test on the raw text of each reading:
//! `ioos_qc.qartod.syntax_test`.
//!
//! ioos_qc counts the characters of each raw record and compares the count
//! with `nchar`:
//!
//! * `lentype = "char"`: the count is the number of characters (Unicode
//!   code points, Python's `len`);
//! * `lentype = "byte"`: the record is hex text, two characters a byte: an
//!   odd number of characters FAILs, otherwise the count is half of it;
//! * a non-empty `delimiter`: the count is the number of items the record
//!   splits into (`len(record.split(delimiter))`: one more than the
//!   non-overlapping occurrences of the delimiter). With `lentype = "byte"`
//!   an odd number of characters still FAILs first, as in ioos_qc.
//!
//! GOOD (1) when the count equals `nchar`, FAIL (4) otherwise. A NaN reading
//! still has its text (an empty cell is an empty record), so this test never
//! flags MISSING. No warm-up, no latency.
//!
//! The text of a reading is what the source read: FåKopp keeps it for CSV
//! cells ([`RawTexts`], by observation time). A reading that came without
//! text (a binary MiniSEED sample, a packet, the raw store) has nothing to
//! count: UNKNOWN (2), "not evaluated".
//!
//! Verified against ioos_qc 3.0 on adversarial records (unicode, hex,
//! multi-character delimiters, random text) by `tests/oracle_qc.rs`, and on
//! the cells of real logger files through `fakopp batch` by the workspace's
//! `tests/qc_parity.rs`.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

use super::{Flag, Pointwise};
use crate::error::{invalid, Result};

/// How a record's length is counted (ioos_qc's `lentype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LenType {
    /// Characters.
    #[default]
    Char,
    /// Bytes of hex text: two characters each.
    Byte,
}

impl LenType {
    /// ioos_qc's reading of the name: surrounding spaces (Python's
    /// `strip`, which also takes the separators U+001C..U+001F) and case
    /// ignored.
    pub fn parse(name: &str) -> Option<LenType> {
        let name =
            name.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c));
        match name.to_lowercase().as_str() {
            "char" => Some(LenType::Char),
            "byte" => Some(LenType::Byte),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for LenType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        LenType::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "lentype must be \"char\" or \"byte\", got `{name}`"
            ))
        })
    }
}

/// Parameters of the syntax test (ioos_qc's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntaxConfig {
    /// The expected count: characters, bytes or items (see the module).
    pub nchar: f64,
    #[serde(default)]
    pub lentype: LenType,
    /// Count items separated by this string instead (an empty string
    /// counts characters, as ioos_qc's falsy check does).
    #[serde(default)]
    pub delimiter: Option<String>,
}

impl SyntaxConfig {
    /// `nchar` must be a finite number.
    pub fn validate(&self) -> Result<()> {
        if !self.nchar.is_finite() {
            return Err(invalid(
                "nchar",
                format!("{} is not a finite number", self.nchar),
            ));
        }
        Ok(())
    }

    /// The flag of one raw record.
    pub fn flag(&self, raw: &str) -> Flag {
        // numpy's `str` arrays, which ioos_qc makes of its input, drop
        // trailing NULs.
        let raw = raw.trim_end_matches('\0');
        let chars = raw.chars().count();
        let mut count = chars as f64;
        if self.lentype == LenType::Byte {
            if !chars.is_multiple_of(2) {
                return Flag::Fail;
            }
            count /= 2.0;
        }
        if let Some(d) = self.delimiter.as_deref().filter(|d| !d.is_empty()) {
            count = (raw.matches(d).count() + 1) as f64;
        }
        if count == self.nchar {
            Flag::Good
        } else {
            Flag::Fail
        }
    }
}

/// Syntax test over raw records (ioos_qc's one-shot form).
pub fn syntax(records: &[&str], cfg: &SyntaxConfig) -> Result<Vec<Flag>> {
    cfg.validate()?;
    Ok(records.iter().map(|r| cfg.flag(r)).collect())
}

/// The raw text of each observation of one sensor, by time: at most one
/// text per time, times increasing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RawTexts {
    times_ns: Vec<i64>,
    /// End of each text in `text`.
    ends: Vec<usize>,
    text: String,
}

impl RawTexts {
    /// From `(time, text)` in the order read: sorted by time (stable), the
    /// first text of each time kept, which is the reading assembly keeps
    /// of readings at one time.
    pub fn first_per_time<'a>(records: impl IntoIterator<Item = (i64, &'a str)>) -> RawTexts {
        let mut records: Vec<(i64, &str)> = records.into_iter().collect();
        // A file's rows usually come in time order already.
        if !records.is_sorted_by_key(|r| r.0) {
            records.sort_by_key(|r| r.0);
        }
        let mut out = RawTexts::default();
        for (t, s) in records {
            if out.times_ns.last() == Some(&t) {
                continue;
            }
            out.times_ns.push(t);
            out.text.push_str(s);
            out.ends.push(out.text.len());
        }
        out
    }

    /// The text of the observation at `t_ns`, if one was read.
    pub fn get(&self, t_ns: i64) -> Option<&str> {
        self.near(t_ns, 1)
    }

    /// The text read nearest to `t_ns`, if it lies less than `within_ns`
    /// away. A regular series puts its observations on a grid whose times
    /// are computed from the rate, within a microsecond (and rounding) of
    /// the times the file gave; half the interval finds each reading's own
    /// text and never a neighbour's.
    pub fn near(&self, t_ns: i64, within_ns: i64) -> Option<&str> {
        let i = self.times_ns.partition_point(|&x| x < t_ns);
        let dist = |j: usize| self.times_ns[j].abs_diff(t_ns);
        let j = [i.checked_sub(1), (i < self.times_ns.len()).then_some(i)]
            .into_iter()
            .flatten()
            .min_by_key(|&j| dist(j))?;
        if dist(j) >= within_ns.max(1).unsigned_abs() {
            return None;
        }
        let start = if j == 0 { 0 } else { self.ends[j - 1] };
        Some(&self.text[start..self.ends[j]])
    }

    pub fn len(&self) -> usize {
        self.times_ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times_ns.is_empty()
    }
}

/// Streaming syntax test: each observation's text looked up by its time.
/// The texts are the sensor's input, not state: a checkpoint does not hold
/// them (the test is batch-only, see `config`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyntaxState {
    cfg: SyntaxConfig,
    #[serde(skip)]
    texts: Option<Arc<RawTexts>>,
    /// How far a reading's time may lie from its text's (see [`RawTexts::near`]).
    within_ns: i64,
    last_t: Option<i64>,
}

impl SyntaxState {
    /// Validates `cfg`; readings `interval_ns` apart (nominal; `None`:
    /// times match exactly) are looked up in `texts` (none: every reading
    /// is UNKNOWN).
    pub fn new(
        cfg: &SyntaxConfig,
        texts: Option<Arc<RawTexts>>,
        interval_ns: Option<i64>,
    ) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg: cfg.clone(),
            texts,
            within_ns: interval_ns.map_or(1, |i| (i / 2).max(1)),
            last_t: None,
        })
    }
}

impl Pointwise for SyntaxState {
    fn last_t(&self) -> Option<i64> {
        self.last_t
    }

    fn set_last_t(&mut self, t: Option<i64>) {
        self.last_t = t;
    }

    fn flagger(&self) -> impl Fn(i64, f64) -> Flag + '_ {
        move |t, _| {
            self.texts
                .as_deref()
                .and_then(|texts| texts.near(t, self.within_ns))
                .map_or(Flag::Unknown, |raw| self.cfg.flag(raw))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qc::QcStream;
    use Flag::*;

    fn cfg(nchar: f64, lentype: LenType, delimiter: Option<&str>) -> SyntaxConfig {
        SyntaxConfig {
            nchar,
            lentype,
            delimiter: delimiter.map(str::to_string),
        }
    }

    #[test]
    fn ioos_qc_docstring_examples() {
        // syntax_test(["data,string"], nchar=11) -> [1]
        assert_eq!(cfg(11.0, LenType::Char, None).flag("data,string"), Good);
        // syntax_test(["0AEE61"], nchar=3, lentype="byte") -> [1]
        assert_eq!(cfg(3.0, LenType::Byte, None).flag("0AEE61"), Good);
        // syntax_test(["data,string"], nchar=2, delimiter=",") -> [1]
        assert_eq!(cfg(2.0, LenType::Char, Some(",")).flag("data,string"), Good);
    }

    #[test]
    fn counts_as_python_does() {
        let c = cfg(3.0, LenType::Char, None);
        assert_eq!(c.flag("7.1"), Good);
        assert_eq!(c.flag("7.12"), Fail);
        assert_eq!(c.flag(""), Fail);
        // Characters, not UTF-8 bytes.
        assert_eq!(c.flag("é°C"), Good);
        // Odd hex text fails whatever nchar is, even with a delimiter.
        assert_eq!(cfg(1.0, LenType::Byte, Some(",")).flag("0A,"), Fail);
        assert_eq!(cfg(2.0, LenType::Byte, Some(",")).flag("0A,B"), Good);
        // Non-overlapping occurrences: "aaa".split("aa") == ["", "a"].
        assert_eq!(cfg(2.0, LenType::Char, Some("aa")).flag("aaa"), Good);
        // An empty delimiter counts characters.
        assert_eq!(cfg(3.0, LenType::Char, Some("")).flag("abc"), Good);
        // Trailing NULs are not counted (numpy's str arrays drop them).
        assert_eq!(c.flag("ab\0"), Fail);
        assert_eq!(c.flag("abc\0\0"), Good);
        // A fractional nchar never matches.
        assert_eq!(cfg(1.5, LenType::Byte, None).flag("0A0B0C"), Fail);
    }

    #[test]
    fn grid_times_find_their_own_reading() {
        let texts = RawTexts::first_per_time([
            (1_000, "a"),
            (601_000_000_001, "bb"),
            (1_200_000_000_000, "c"),
        ]);
        let ten_min = 600_000_000_000;
        assert_eq!(texts.near(0, ten_min / 2), Some("a"));
        assert_eq!(texts.near(ten_min, ten_min / 2), Some("bb"));
        assert_eq!(texts.near(2 * ten_min - 3, ten_min / 2), Some("c"));
        assert_eq!(texts.near(3 * ten_min, ten_min / 2), None);
        assert_eq!(
            texts.near(ten_min / 2 + 1_000, ten_min / 2),
            None,
            "half way is no one's"
        );
        assert_eq!(texts.near(-5, 1), None);
        assert_eq!(RawTexts::default().near(0, 10), None);
    }

    #[test]
    fn lentype_is_read_as_ioos_qc_reads_it() {
        assert_eq!(LenType::parse(" Byte "), Some(LenType::Byte));
        assert_eq!(LenType::parse("CHAR"), Some(LenType::Char));
        assert_eq!(LenType::parse("\u{1c}char\u{1f}"), Some(LenType::Char));
        assert_eq!(LenType::parse("bit"), None);
        assert!(syntax(&["a"], &cfg(f64::NAN, LenType::Char, None)).is_err());
    }

    #[test]
    fn texts_by_time_keep_the_first_and_readings_without_text_are_unknown() {
        let texts = RawTexts::first_per_time([(30, "7.30"), (10, "7.1"), (20, "x"), (10, "7.10")]);
        assert_eq!(texts.len(), 3);
        assert_eq!(texts.get(10), Some("7.1"));
        assert_eq!(texts.get(20), Some("x"));
        assert_eq!(texts.get(15), None);
        let mut s =
            SyntaxState::new(&cfg(3.0, LenType::Char, None), Some(Arc::new(texts)), None).unwrap();
        let mut out = Vec::new();
        s.push(&[10, 15], &[7.1, 0.0], &mut out).unwrap();
        s.push(&[20, 30], &[f64::NAN, 7.3], &mut out).unwrap();
        assert_eq!(out, [Good, Unknown, Fail, Fail]);
        let mut none = SyntaxState::new(&cfg(3.0, LenType::Char, None), None, None).unwrap();
        out.clear();
        none.push(&[1], &[1.0], &mut out).unwrap();
        assert_eq!(out, [Unknown]);
    }
}
