//! QARTOD climatology test (`ioos_qc.qartod.climatology_test`).

use serde::{Deserialize, Serialize};

use super::{check_span, run_stream, Flag, Pointwise};
use crate::error::{invalid, Result};

/// Calendar attribute a member's `tspan` is expressed in (the pandas
/// `Timestamp` attribute named by ioos_qc's `period`), all in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClimatologyPeriod {
    /// Calendar year.
    Year,
    /// Quarter 1..=4.
    Quarter,
    /// Month 1..=12.
    Month,
    /// ISO 8601 week 1..=53 (`week` / `weekofyear`).
    #[serde(alias = "weekofyear")]
    Week,
    /// Day of year 1..=366.
    Dayofyear,
    /// Day of week, Monday = 0 .. Sunday = 6.
    Dayofweek,
    /// Day of month 1..=31.
    Day,
    /// Hour of day 0..=23.
    Hour,
}

/// Meteorological season, shorthand for month members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Season {
    /// December, January, February (two members: months 12, then 1..=2).
    #[serde(alias = "djf", alias = "winter")]
    DJF,
    /// March..=May.
    #[serde(alias = "mam", alias = "spring")]
    MAM,
    /// June..=August.
    #[serde(alias = "jja", alias = "summer")]
    JJA,
    /// September..=November.
    #[serde(alias = "son", alias = "autumn")]
    SON,
}

/// One row of the climatology table (ioos_qc `ClimatologyConfig.add`).
///
/// Give exactly one of: `period` + `tspan` (e.g. `period = "month",
/// tspan = [6, 8]`, inclusive), `season` (`"DJF"`, `"MAM"`, `"JJA"`,
/// `"SON"`), or `tspan_ns` (an absolute inclusive UTC range in epoch ns,
/// ioos_qc's member without a period). Depth (`zspan`) is not supported.
///
/// TOML example:
///
/// ```toml
/// members = [
///   { season = "DJF", vspan = [2.0, 8.0], fspan = [0.0, 12.0] },
///   { period = "month", tspan = [6, 8], vspan = [10.0, 18.0] },
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClimatologyMember {
    /// Calendar attribute of `tspan`.
    #[serde(default)]
    pub period: Option<ClimatologyPeriod>,
    /// `[min, max]` of the `period` attribute, inclusive.
    #[serde(default)]
    pub tspan: Option<[f64; 2]>,
    /// Season shorthand instead of `period` + `tspan`.
    #[serde(default)]
    pub season: Option<Season>,
    /// Absolute `[start, end]` in UTC epoch nanoseconds, inclusive.
    #[serde(default)]
    pub tspan_ns: Option<[i64; 2]>,
    /// Values outside this `[min, max]` are SUSPECT.
    pub vspan: [f64; 2],
    /// Values outside this optional `[min, max]` FAIL.
    #[serde(default)]
    pub fspan: Option<[f64; 2]>,
}

/// The climatology table: members are applied in order, a later matching
/// member overriding an earlier one (as ioos_qc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClimatologyConfig {
    /// Rows of the table.
    pub members: Vec<ClimatologyMember>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum When {
    Period(ClimatologyPeriod, f64, f64),
    Absolute(i64, i64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Resolved {
    when: When,
    vspan: [f64; 2],
    fspan: Option<[f64; 2]>,
}

impl ClimatologyConfig {
    /// Checks every member (one time selector, `min <= max` spans) and
    /// expands seasons into month members.
    fn resolve(&self) -> Result<Vec<Resolved>> {
        if self.members.is_empty() {
            return Err(invalid("members", "the climatology table is empty"));
        }
        let mut out = Vec::with_capacity(self.members.len() + 1);
        for m in &self.members {
            check_span("vspan", m.vspan)?;
            if let Some(f) = m.fspan {
                check_span("fspan", f)?;
            }
            let push = |out: &mut Vec<Resolved>, when| {
                out.push(Resolved {
                    when,
                    vspan: m.vspan,
                    fspan: m.fspan,
                })
            };
            match (m.period, m.tspan, m.season, m.tspan_ns) {
                (Some(p), Some(t), None, None) => {
                    check_span("tspan", t)?;
                    push(&mut out, When::Period(p, t[0], t[1]));
                }
                (None, None, Some(s), None) => {
                    let month = ClimatologyPeriod::Month;
                    match s {
                        Season::DJF => {
                            push(&mut out, When::Period(month, 12.0, 12.0));
                            push(&mut out, When::Period(month, 1.0, 2.0));
                        }
                        Season::MAM => push(&mut out, When::Period(month, 3.0, 5.0)),
                        Season::JJA => push(&mut out, When::Period(month, 6.0, 8.0)),
                        Season::SON => push(&mut out, When::Period(month, 9.0, 11.0)),
                    }
                }
                (None, None, None, Some(t)) => {
                    if t[0] > t[1] {
                        return Err(invalid("tspan_ns", format!("span {t:?} has start > end")));
                    }
                    push(&mut out, When::Absolute(t[0], t[1]));
                }
                _ => {
                    return Err(invalid(
                        "members",
                        "each member needs exactly one of: period + tspan, season, tspan_ns",
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// Calendar fields of a UTC epoch-ns timestamp.
#[derive(Debug, Clone, Copy)]
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    doy: i64,
    dow: i64,
    hour: i64,
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Civil {
    fn from_ns(t: i64) -> Civil {
        let day_ns = 86_400_000_000_000i64;
        let days = t.div_euclid(day_ns);
        let sod = t.rem_euclid(day_ns);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy_mar + 2) / 153;
        let day = doy_mar - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let doy = days - days_from_civil(year, 1, 1) + 1;
        Civil {
            year,
            month,
            day,
            doy,
            dow: (days + 3).rem_euclid(7),
            hour: sod / 3_600_000_000_000,
        }
    }

    fn iso_week(&self) -> i64 {
        fn p(y: i64) -> i64 {
            (y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400)).rem_euclid(7)
        }
        fn weeks(y: i64) -> i64 {
            if p(y) == 4 || p(y - 1) == 3 {
                53
            } else {
                52
            }
        }
        let w = (self.doy - (self.dow + 1) + 10).div_euclid(7);
        if w < 1 {
            weeks(self.year - 1)
        } else if w > weeks(self.year) {
            1
        } else {
            w
        }
    }

    fn get(&self, p: ClimatologyPeriod) -> f64 {
        (match p {
            ClimatologyPeriod::Year => self.year,
            ClimatologyPeriod::Quarter => (self.month - 1) / 3 + 1,
            ClimatologyPeriod::Month => self.month,
            ClimatologyPeriod::Week => self.iso_week(),
            ClimatologyPeriod::Dayofyear => self.doy,
            ClimatologyPeriod::Dayofweek => self.dow,
            ClimatologyPeriod::Day => self.day,
            ClimatologyPeriod::Hour => self.hour,
        }) as f64
    }
}

#[inline]
fn spans(x: f64, m: &Resolved) -> Flag {
    if m.fspan.is_some_and(|f| x < f[0] || x > f[1]) {
        Flag::Fail
    } else if x < m.vspan[0] || x > m.vspan[1] {
        Flag::Suspect
    } else {
        Flag::Good
    }
}

fn flag(members: &[Resolved], t: i64, x: f64) -> Flag {
    let civil = Civil::from_ns(t);
    let mut f = if x.is_finite() {
        Flag::Unknown
    } else {
        Flag::Missing
    };
    for m in members {
        let (in_time, series_like) = match m.when {
            When::Period(p, lo, hi) => {
                let v = civil.get(p);
                (v >= lo && v <= hi, p != ClimatologyPeriod::Week)
            }
            When::Absolute(lo, hi) => (t >= lo && t <= hi, false),
        };
        if x.is_finite() {
            if in_time {
                f = spans(x, m);
            }
        } else if series_like {
            // ioos_qc quirk: for a period other than week, pandas turns the
            // masked comparisons True, so a missing reading becomes GOOD,
            // whatever its time.
            f = Flag::Good;
        } else if !x.is_nan() && in_time {
            // ±inf is masked but still compared by value; NaN is skipped.
            f = spans(x, m);
        }
    }
    f
}

/// Climatology test over a whole series.
///
/// Each sample starts UNKNOWN (no member covers it) or MISSING (NaN/±inf).
/// Members are applied in order; a member whose time selector covers the
/// sample's time sets FAIL if the value is outside `fspan`, else SUSPECT if
/// outside `vspan`, else GOOD (bounds inclusive), overriding earlier
/// members. Period attributes are computed in UTC; period `tspan` and
/// `tspan_ns` are inclusive at both ends.
///
/// Missing readings reproduce ioos_qc 3.0 (with pandas 3) exactly, quirks
/// included: any member with a period other than `week` (seasons included)
/// turns a missing reading GOOD regardless of its time; `week` and absolute
/// members leave NaN alone but compare ±inf by value when in time.
pub fn climatology(times_ns: &[i64], values: &[f64], cfg: &ClimatologyConfig) -> Result<Vec<Flag>> {
    run_stream(ClimatologyState::new(cfg)?, times_ns, values)
}

/// Streaming climatology test: stateless per sample, no latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClimatologyState {
    members: Vec<Resolved>,
    last_t: Option<i64>,
}

impl ClimatologyState {
    /// Validates `cfg` (expanding seasons) and builds a fresh state.
    pub fn new(cfg: &ClimatologyConfig) -> Result<Self> {
        Ok(Self {
            members: cfg.resolve()?,
            last_t: None,
        })
    }
}

impl Pointwise for ClimatologyState {
    fn last_t(&self) -> Option<i64> {
        self.last_t
    }

    fn set_last_t(&mut self, t: Option<i64>) {
        self.last_t = t;
    }

    fn flagger(&self) -> impl Fn(i64, f64) -> Flag + '_ {
        |t, x| flag(&self.members, t, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_fields() {
        // 2024-02-29T13:00:00Z: leap day, Thursday, ISO week 9, doy 60.
        let t = 1_709_211_600_000_000_000;
        let c = Civil::from_ns(t);
        assert_eq!(
            (c.year, c.month, c.day, c.doy, c.dow, c.hour),
            (2024, 2, 29, 60, 3, 13)
        );
        assert_eq!(c.iso_week(), 9);
        // 2021-01-01 is in ISO week 53 of 2020; 2019-12-30 in week 1 of 2020.
        assert_eq!(Civil::from_ns(1_609_459_200_000_000_000).iso_week(), 53);
        assert_eq!(Civil::from_ns(1_577_664_000_000_000_000).iso_week(), 1);
        // before the epoch: 1969-12-31T23:00Z
        let c = Civil::from_ns(-3_600_000_000_000);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.dow),
            (1969, 12, 31, 23, 2)
        );
    }

    #[test]
    fn config_checks() {
        let m = |period, tspan, season, tspan_ns| ClimatologyMember {
            period,
            tspan,
            season,
            tspan_ns,
            vspan: [0.0, 1.0],
            fspan: None,
        };
        let ok = ClimatologyConfig {
            members: vec![m(None, None, Some(Season::DJF), None)],
        };
        assert_eq!(ok.resolve().unwrap().len(), 2);
        let bad = ClimatologyConfig {
            members: vec![m(Some(ClimatologyPeriod::Month), None, None, None)],
        };
        assert!(ClimatologyState::new(&bad).is_err());
        let bad = ClimatologyConfig {
            members: vec![m(
                Some(ClimatologyPeriod::Month),
                Some([5.0, 1.0]),
                None,
                None,
            )],
        };
        assert!(ClimatologyState::new(&bad).is_err());
        assert!(ClimatologyState::new(&ClimatologyConfig { members: vec![] }).is_err());
    }
}
