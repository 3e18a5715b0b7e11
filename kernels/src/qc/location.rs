//! QARTOD location tests (`ioos_qc.qartod.location_test` and
//! `location_bounds_test`) for a sensor at a fixed position.
//!
//! ioos_qc takes one longitude and latitude per observation; a FåKopp
//! sensor sits at its station's coordinates (the stations file), so every
//! observation of a sensor gets the same flag. The distance between
//! consecutive positions of a fixed station is 0, so `location_test`'s
//! `range_max` (SUSPECT when exceeded) can never flag, whichever
//! `range_method`; it is accepted for compatibility with ioos_qc configs.

use serde::{Deserialize, Serialize};

use super::{Flag, Pointwise};
use crate::error::{invalid, Result};

/// `location_test`'s distance algorithm (ioos_qc names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RangeMethod {
    #[default]
    Haversine,
    Wgs84,
}

/// Parameters of the location test.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    /// Largest distance between consecutive positions, in metres (SUSPECT
    /// beyond); see the module docs.
    #[serde(default)]
    pub range_max: Option<f64>,
    #[serde(default)]
    pub range_method: RangeMethod,
}

impl LocationConfig {
    /// `range_max`, if given, must be finite and >= 0.
    pub fn validate(&self) -> Result<()> {
        match self.range_max {
            Some(r) if !(r.is_finite() && r >= 0.0) => Err(invalid(
                "range_max",
                format!("{r} must be a finite distance >= 0 (metres)"),
            )),
            _ => Ok(()),
        }
    }

    /// The flag of a position: MISSING (9) if both coordinates are NaN,
    /// FAIL (4) if only one is, or if `|lat| > 90` or `|lon| > 180`, GOOD
    /// (1) otherwise.
    pub fn flag(&self, lon: f64, lat: f64) -> Flag {
        let (a, b) = (lon.is_nan(), lat.is_nan());
        if a && b {
            return Flag::Missing;
        }
        if a != b || lat.abs() > 90.0 || lon.abs() > 180.0 {
            return Flag::Fail;
        }
        Flag::Good
    }
}

/// Where `location_bounds_test` looks: a polygon of `(lon, lat)` vertices,
/// or ioos_qc's legacy bounding box `[min_lon, min_lat, max_lon, max_lat]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Shape {
    Bbox([f64; 4]),
    Polygon(Vec<[f64; 2]>),
}

/// Which side of the shape fails (ioos_qc's `flag_area`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagArea {
    #[default]
    Outside,
    Inside,
}

/// Parameters of the location bounds test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationBoundsConfig {
    pub shape: Shape,
    #[serde(default)]
    pub flag_area: FlagArea,
}

impl LocationBoundsConfig {
    /// A polygon needs at least 3 vertices (ioos_qc raises otherwise);
    /// coordinates must be finite.
    pub fn validate(&self) -> Result<()> {
        match &self.shape {
            Shape::Bbox(b) => {
                if b.iter().any(|v| !v.is_finite()) {
                    return Err(invalid(
                        "shape",
                        format!("box {b:?} must be finite [min_lon, min_lat, max_lon, max_lat]"),
                    ));
                }
            }
            Shape::Polygon(p) => {
                if p.len() < 3 {
                    return Err(invalid(
                        "shape",
                        format!("a polygon needs at least 3 points, got {}", p.len()),
                    ));
                }
                if p.iter().flatten().any(|v| !v.is_finite()) {
                    return Err(invalid("shape", "polygon vertices must be finite"));
                }
            }
        }
        Ok(())
    }

    /// MISSING (9) if a coordinate is NaN, FAIL (4) if the point is on the
    /// flagged side, GOOD (1) otherwise. A point on the border is outside
    /// (shapely's `contains_xy`).
    pub fn flag(&self, lon: f64, lat: f64) -> Flag {
        if lon.is_nan() || lat.is_nan() {
            return Flag::Missing;
        }
        let inside = match &self.shape {
            // ioos_qc builds the rectangle from the corners as given, so
            // a box written max-first is the same box.
            Shape::Bbox([x0, y0, x1, y1]) => {
                x0.min(*x1) < lon && lon < x0.max(*x1) && y0.min(*y1) < lat && lat < y0.max(*y1)
            }
            Shape::Polygon(p) => strictly_inside(p, lon, lat),
        };
        let bad = match self.flag_area {
            FlagArea::Outside => !inside,
            FlagArea::Inside => inside,
        };
        if bad {
            Flag::Fail
        } else {
            Flag::Good
        }
    }
}

/// Point in polygon (even-odd ray casting, the polygon closed implicitly),
/// with points on an edge or vertex counted as outside.
fn strictly_inside(poly: &[[f64; 2]], x: f64, y: f64) -> bool {
    let n = poly.len();
    let mut inside = false;
    for i in 0..n {
        let [xi, yi] = poly[i];
        let [xj, yj] = poly[(i + n - 1) % n];
        let cross = (xj - xi) * (y - yi) - (yj - yi) * (x - xi);
        let within = x >= xi.min(xj) && x <= xi.max(xj) && y >= yi.min(yj) && y <= yi.max(yj);
        if cross == 0.0 && within {
            return false;
        }
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
    }
    inside
}

/// A location test of a sensor at one position: every observation gets
/// the position's flag (no latency, no state but the time check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedPositionState {
    flag: Flag,
    last_t: Option<i64>,
}

impl FixedPositionState {
    /// `location_test` at `(lon, lat)` (NaN when the position is unknown).
    pub fn location(cfg: &LocationConfig, lon: f64, lat: f64) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            flag: cfg.flag(lon, lat),
            last_t: None,
        })
    }

    /// `location_bounds_test` at `(lon, lat)`.
    pub fn bounds(cfg: &LocationBoundsConfig, lon: f64, lat: f64) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            flag: cfg.flag(lon, lat),
            last_t: None,
        })
    }
}

impl Pointwise for FixedPositionState {
    fn last_t(&self) -> Option<i64> {
        self.last_t
    }

    fn set_last_t(&mut self, t: Option<i64>) {
        self.last_t = t;
    }

    fn flagger(&self) -> impl Fn(i64, f64) -> Flag + '_ {
        |_, _| self.flag
    }
}

/// `location_test` for observations at the given positions (one per
/// observation). `range_max` needs distances between positions, which
/// only a fixed position (distance 0) spares: with moving positions it is
/// refused rather than ignored.
pub fn location(lon: &[f64], lat: &[f64], cfg: &LocationConfig) -> Result<Vec<Flag>> {
    cfg.validate()?;
    let moving = |v: &[f64]| v.windows(2).any(|w| w[0].to_bits() != w[1].to_bits());
    if cfg.range_max.is_some() && (moving(lon) || moving(lat)) {
        return Err(invalid(
            "range_max",
            "distances between moving positions are not computed: give range_max only for a fixed station",
        ));
    }
    per_position(lon, lat, |x, y| cfg.flag(x, y))
}

/// `location_bounds_test` for observations at the given positions.
pub fn location_bounds(lon: &[f64], lat: &[f64], cfg: &LocationBoundsConfig) -> Result<Vec<Flag>> {
    cfg.validate()?;
    per_position(lon, lat, |x, y| cfg.flag(x, y))
}

fn per_position(lon: &[f64], lat: &[f64], f: impl Fn(f64, f64) -> Flag) -> Result<Vec<Flag>> {
    if lon.len() != lat.len() {
        return Err(invalid(
            "lat",
            format!("{} latitudes for {} longitudes", lat.len(), lon.len()),
        ));
    }
    Ok(lon.iter().zip(lat).map(|(&x, &y)| f(x, y)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Flag::*;

    #[test]
    fn ioos_qc_docstring_example() {
        let shape = LocationBoundsConfig {
            shape: Shape::Polygon(vec![
                [-78.696116, 24.562267],
                [-77.844899, 23.543749],
                [-77.506013, 24.707798],
            ]),
            flag_area: FlagArea::Outside,
        };
        let lat = [25.169938, 24.316908, 24.316908];
        let lon = [-78.680106, -78.151764, -77.167128];
        assert_eq!(
            location_bounds(&lon, &lat, &shape).unwrap(),
            vec![Fail, Good, Fail]
        );
        let inside = LocationBoundsConfig {
            flag_area: FlagArea::Inside,
            ..shape
        };
        assert_eq!(
            location_bounds(&lon, &lat, &inside).unwrap(),
            vec![Good, Fail, Good]
        );
    }

    #[test]
    fn border_is_outside_and_bad_coordinates() {
        let b = LocationBoundsConfig {
            shape: Shape::Bbox([0.0, 0.0, 1.0, 1.0]),
            flag_area: FlagArea::Outside,
        };
        assert_eq!(b.flag(0.5, 0.5), Good);
        assert_eq!(b.flag(0.0, 0.5), Fail);
        assert_eq!(b.flag(f64::NAN, 0.5), Missing);
        let tri = LocationBoundsConfig {
            shape: Shape::Polygon(vec![[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]]),
            flag_area: FlagArea::Outside,
        };
        assert_eq!(tri.flag(1.0, 1.0), Fail, "on the hypotenuse");
        assert_eq!(tri.flag(0.5, 0.5), Good);
        let c = LocationConfig::default();
        assert_eq!(
            location(
                &[0.0, f64::NAN, f64::NAN, 181.0, 10.0],
                &[0.0, f64::NAN, 1.0, 0.0, -90.5],
                &c
            )
            .unwrap(),
            vec![Good, Missing, Fail, Fail, Fail]
        );
    }
}
