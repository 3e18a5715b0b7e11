//! Station metadata: where each sensor is and what it measures, from the
//! file the config's `stations` key names (docs/reference.md, "Stations
//! file"). The location QC tests read the coordinates; batch writes the
//! table beside its results.
//!
//! Two forms, told apart by the file name: `*.toml` holds `[[station]]`
//! tables, anything else is CSV with a header row. Both have the fields
//! `sensor_id`, `latitude`, `longitude` (decimal degrees, WGS84) and the
//! optional `elevation` (m), `unit`, `kind`. An empty coordinate is
//! unknown (NaN: the location tests flag it 9, as ioos_qc does). Every
//! error names the file and the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{valid_sensor_id, SensorKind};

/// One sensor's station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Station {
    pub sensor_id: String,
    pub latitude: f64,
    pub longitude: f64,
    /// Metres; NaN when not given.
    pub elevation: f64,
    pub unit: String,
    pub kind: Option<SensorKind>,
}

/// Every station of the stations file, by sensor id (empty without one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stations {
    by_sensor: BTreeMap<String, (usize, Station)>,
}

/// A stations-file problem: the file, the line (1-based; 0 for the whole
/// file) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}: {reason}", file.display(), if *line > 0 { format!(" line {line}") } else { String::new() })]
pub struct StationsError {
    pub file: PathBuf,
    pub line: usize,
    pub reason: String,
}

impl Stations {
    pub fn get(&self, sensor_id: &str) -> Option<&Station> {
        self.by_sensor.get(sensor_id).map(|(_, s)| s)
    }

    pub fn is_empty(&self) -> bool {
        self.by_sensor.is_empty()
    }

    /// Stations in sensor-id order.
    pub fn iter(&self) -> impl Iterator<Item = &Station> {
        self.by_sensor.values().map(|(_, s)| s)
    }

    /// The line each station was read from.
    pub fn lines(&self) -> impl Iterator<Item = (usize, &Station)> {
        self.by_sensor.values().map(|(l, s)| (*l, s))
    }

    /// Reads and checks a stations file.
    pub fn read(path: &Path) -> Result<Stations, StationsError> {
        let err = |line: usize, reason: String| StationsError {
            file: path.to_owned(),
            line,
            reason,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(0, format!("cannot read the stations file: {e}")))?;
        let rows = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
        {
            toml_rows(&text).map_err(|(l, r)| err(l, r))?
        } else {
            csv_rows(&text).map_err(|(l, r)| err(l, r))?
        };
        let mut by_sensor: BTreeMap<String, (usize, Station)> = BTreeMap::new();
        for (line, row) in rows {
            let st = row.check().map_err(|r| err(line, r))?;
            if let Some((first, _)) = by_sensor.get(&st.sensor_id) {
                return Err(err(
                    line,
                    format!(
                        "sensor {} is listed again (first on line {first})",
                        st.sensor_id
                    ),
                ));
            }
            by_sensor.insert(st.sensor_id.clone(), (line, st));
        }
        Ok(Stations { by_sensor })
    }
}

/// A station as written, before its checks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    sensor_id: String,
    #[serde(default, deserialize_with = "number")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    longitude: Option<f64>,
    #[serde(default, deserialize_with = "number")]
    elevation: Option<f64>,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    kind: Option<String>,
}

/// A number, or an empty string for "not known".
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        F(f64),
        I(i64),
        S(String),
    }
    Ok(match N::deserialize(d)? {
        N::F(v) => Some(v),
        N::I(v) => Some(v as f64),
        N::S(s) if s.trim().is_empty() => None,
        N::S(s) => Some(
            s.trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a number")))?,
        ),
    })
}

impl Row {
    fn check(self) -> Result<Station, String> {
        valid_sensor_id(&self.sensor_id).map_err(|e| format!("sensor_id: {e}"))?;
        let coord = |name: &str, v: Option<f64>, max: f64| -> Result<f64, String> {
            match v {
                None => Ok(f64::NAN),
                Some(x) if x.is_finite() && x.abs() <= max => Ok(x),
                Some(x) => Err(format!("{name} {x} is outside -{max} ..= {max} degrees")),
            }
        };
        let latitude = coord("latitude", self.latitude, 90.0)?;
        let longitude = coord("longitude", self.longitude, 180.0)?;
        let elevation = match self.elevation {
            Some(e) if !e.is_finite() => return Err(format!("elevation {e} is not finite")),
            e => e.unwrap_or(f64::NAN),
        };
        let kind = match self.kind.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(k) => Some(
                SensorKind::ALL
                    .into_iter()
                    .find(|s| s.as_str() == k)
                    .ok_or_else(|| {
                        format!(
                            "kind `{k}` is not one of {}",
                            SensorKind::ALL.map(SensorKind::as_str).join(", ")
                        )
                    })?,
            ),
        };
        Ok(Station {
            sensor_id: self.sensor_id,
            latitude,
            longitude,
            elevation,
            unit: self.unit,
            kind,
        })
    }
}

fn csv_rows(text: &str) -> Result<Vec<(usize, Row)>, (usize, String)> {
    let mut r = ::csv::ReaderBuilder::new()
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = r
        .headers()
        .map_err(|e| (1, format!("header: {e}")))?
        .clone();
    for required in ["sensor_id", "latitude", "longitude"] {
        if !header.iter().any(|h| h == required) {
            return Err((1, format!("the header has no `{required}` column")));
        }
    }
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            (line, e.to_string())
        })?;
        let line = rec.position().map_or(0, |p| p.line() as usize);
        let row: Row = rec
            .deserialize(Some(&header))
            .map_err(|e| (line, e.to_string()))?;
        out.push((line, row));
    }
    Ok(out)
}

fn toml_rows(text: &str) -> Result<Vec<(usize, Row)>, (usize, String)> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        station: Vec<toml::Spanned<Row>>,
    }
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let f: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(s.start));
        (line, e.message().to_string())
    })?;
    Ok(f.station
        .into_iter()
        .map(|s| (line_of(s.span().start), s.into_inner()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn csv_and_toml_read_the_same() {
        let (_d, csv) = write(
            "st.csv",
            "sensor_id,latitude,longitude,elevation,unit,kind\n\
             EMB.BH1..PH,52.62,-1.09,71.5,pH,ph\n\
             EMB.BH2..GWL,,-1.2,,m,\n",
        );
        let (_e, toml) = write(
            "st.toml",
            "[[station]]\nsensor_id = \"EMB.BH1..PH\"\nlatitude = 52.62\nlongitude = -1.09\n\
             elevation = 71.5\nunit = \"pH\"\nkind = \"ph\"\n\
             [[station]]\nsensor_id = \"EMB.BH2..GWL\"\nlongitude = -1.2\nunit = \"m\"\n",
        );
        let a = Stations::read(&csv).unwrap();
        let b = Stations::read(&toml).unwrap();
        let ph = a.get("EMB.BH1..PH").unwrap();
        assert_eq!(
            (ph.latitude, ph.longitude, ph.kind),
            (52.62, -1.09, Some(SensorKind::Ph))
        );
        assert!(a.get("EMB.BH2..GWL").unwrap().latitude.is_nan());
        for (x, y) in a.iter().zip(b.iter()) {
            assert_eq!(x.sensor_id, y.sensor_id);
            assert_eq!(x.longitude, y.longitude);
            assert_eq!(x.unit, y.unit);
        }
        assert_eq!(b.lines().map(|(l, _)| l).collect::<Vec<_>>(), vec![1, 8]);
    }

    #[test]
    fn errors_name_the_line() {
        let (_d, p) = write(
            "st.csv",
            "sensor_id,latitude,longitude\nEMB.BH1..PH,52,-1\nEMB.BH1..PH,53,-1\n",
        );
        let e = Stations::read(&p).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.to_string().contains("first on line 2"), "{e}");
        let (_d, p) = write("st.csv", "sensor_id,latitude,longitude\nbad id,52,-1\n");
        assert_eq!(Stations::read(&p).unwrap_err().line, 2);
        let (_d, p) = write("st.csv", "sensor_id,latitude,longitude\nA.B..C,95,-1\n");
        let e = Stations::read(&p).unwrap_err();
        assert!(e.to_string().contains("line 2: latitude 95"), "{e}");
        let (_d, p) = write("st.csv", "sensor_id,latitude\nA.B..C,5\n");
        assert!(Stations::read(&p)
            .unwrap_err()
            .reason
            .contains("`longitude`"));
        let (_d, p) = write(
            "st.toml",
            "[[station]]\nsensor_id = \"A.B..C\"\nlatitude = 1\nlongitude = 2\nheight = 3\n",
        );
        let e = Stations::read(&p).unwrap_err();
        assert!(e.line >= 1 && e.reason.contains("height"), "{e}");
    }
}
