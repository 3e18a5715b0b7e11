//! Processing-chain steps as written in the config (docs/reference.md, "Configuration"). Names and
//! parameters follow ObsPy / ioos_qc; times are in seconds.

use fakopp_kernels::qc;
use serde::{Deserialize, Serialize};

fn four() -> u32 {
    4
}
fn default_taper() -> f64 {
    0.05
}

/// One step of a `[[chains]]` entry: `{ op = "...", ... }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    Bandpass {
        freqmin: f64,
        freqmax: f64,
        #[serde(default = "four")]
        corners: u32,
        #[serde(default)]
        zerophase: bool,
    },
    Bandstop {
        freqmin: f64,
        freqmax: f64,
        #[serde(default = "four")]
        corners: u32,
        #[serde(default)]
        zerophase: bool,
    },
    Lowpass {
        freq: f64,
        #[serde(default = "four")]
        corners: u32,
        #[serde(default)]
        zerophase: bool,
    },
    Highpass {
        freq: f64,
        #[serde(default = "four")]
        corners: u32,
        #[serde(default)]
        zerophase: bool,
    },
    Demean {},
    Detrend {
        #[serde(rename = "type", default)]
        kind: DetrendKind,
    },
    Taper {
        #[serde(default = "default_taper")]
        max_percentage: f64,
        #[serde(default)]
        max_length: Option<f64>,
    },
    /// SeisComP running-mean high-pass over `window` seconds.
    Rmhp {
        window: f64,
    },
    /// SeisComP initial taper over the first `length` seconds.
    Itaper {
        length: f64,
    },
    ClassicStaLta {
        sta: f64,
        lta: f64,
    },
    RecursiveStaLta {
        sta: f64,
        lta: f64,
    },
    DelayedStaLta {
        sta: f64,
        lta: f64,
    },
    CarlStaTrig {
        sta: f64,
        lta: f64,
        ratio: f64,
        quiet: f64,
    },
    ZDetect {
        sta: f64,
    },
    StaltaAbs {
        sta: f64,
        lta: f64,
    },
    Trigger {
        on: f64,
        off: f64,
        #[serde(default)]
        max_len: Option<f64>,
        #[serde(default)]
        max_len_delete: bool,
    },
    AicPick {
        before: f64,
        after: f64,
    },
    // Environmental QC: the kernels' own parameter structs, so the names
    // and checks are those of ioos_qc as implemented in fakopp-kernels.
    GrossRange(qc::GrossRangeConfig),
    Spike(qc::SpikeConfig),
    RateOfChange(qc::RateOfChangeConfig),
    FlatLine(qc::FlatLineConfig),
    AttenuatedSignal(qc::AttenuatedSignalConfig),
    Climatology(qc::ClimatologyConfig),
    TimeGap(qc::TimeGapConfig),
    ImpossibleDate(ImpossibleDateStep),
    DataReception(DataReceptionStep),
    PercentileRange(qc::PercentileRangeConfig),
    /// On each reading's raw text (CSV cells; batch only).
    Syntax(qc::SyntaxConfig),
    /// At the sensor's station coordinates (the stations file).
    Location(qc::LocationConfig),
    LocationBounds(qc::LocationBoundsConfig),
    Stats(fakopp_kernels::stats::StatsConfig),
}

/// `impossible_date`: ioos_qc's `fail_span` as two date-times (RFC 3339,
/// naive times UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpossibleDateStep {
    #[serde(default)]
    pub fail_span: Option<[String; 2]>,
}

impl ImpossibleDateStep {
    /// The kernel's parameters; the error names the key and the bad time.
    pub fn kernel(&self) -> Result<qc::ImpossibleDateConfig, String> {
        let fail_span_ns = match &self.fail_span {
            None => None,
            Some([a, b]) => Some([time("fail_span[0]", a)?, time("fail_span[1]", b)?]),
        };
        let c = qc::ImpossibleDateConfig { fail_span_ns };
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

fn six_hours() -> f64 {
    qc::DataReceptionConfig::default().fail_span_s
}

/// `data_reception`: the oldest acceptable age in seconds (ioos_qc's
/// `fail_span` is in hours), measured from `from_time` or the wall clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataReceptionStep {
    #[serde(default = "six_hours")]
    pub fail_span_s: f64,
    #[serde(default)]
    pub from_time: Option<String>,
}

impl DataReceptionStep {
    /// The kernel's parameters; the error names the key and the bad value.
    pub fn kernel(&self) -> Result<qc::DataReceptionConfig, String> {
        let from_time_ns = match &self.from_time {
            None => None,
            Some(t) => Some(time("from_time", t)?),
        };
        let c = qc::DataReceptionConfig {
            fail_span_s: self.fail_span_s,
            from_time_ns,
        };
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

fn time(key: &str, text: &str) -> Result<i64, String> {
    crate::model::parse_time_ns(text).map_err(|e| format!("{key} `{text}`: {e}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetrendKind {
    Simple,
    #[default]
    Linear,
}

impl Step {
    /// The `op` name as written in the config.
    pub fn op(&self) -> &'static str {
        match self {
            Step::Bandpass { .. } => "bandpass",
            Step::Bandstop { .. } => "bandstop",
            Step::Lowpass { .. } => "lowpass",
            Step::Highpass { .. } => "highpass",
            Step::Demean {} => "demean",
            Step::Detrend { .. } => "detrend",
            Step::Taper { .. } => "taper",
            Step::Rmhp { .. } => "rmhp",
            Step::Itaper { .. } => "itaper",
            Step::ClassicStaLta { .. } => "classic_sta_lta",
            Step::RecursiveStaLta { .. } => "recursive_sta_lta",
            Step::DelayedStaLta { .. } => "delayed_sta_lta",
            Step::CarlStaTrig { .. } => "carl_sta_trig",
            Step::ZDetect { .. } => "z_detect",
            Step::StaltaAbs { .. } => "stalta_abs",
            Step::Trigger { .. } => "trigger",
            Step::AicPick { .. } => "aic_pick",
            Step::GrossRange(_) => "gross_range",
            Step::Spike(_) => "spike",
            Step::RateOfChange(_) => "rate_of_change",
            Step::FlatLine(_) => "flat_line",
            Step::AttenuatedSignal(_) => "attenuated_signal",
            Step::Climatology(_) => "climatology",
            Step::TimeGap(_) => "time_gap",
            Step::ImpossibleDate(_) => "impossible_date",
            Step::DataReception(_) => "data_reception",
            Step::PercentileRange(_) => "percentile_range",
            Step::Syntax(_) => "syntax",
            Step::Location(_) => "location",
            Step::LocationBounds(_) => "location_bounds",
            Step::Stats(_) => "stats",
        }
    }

    /// A QARTOD test (one flag per reading).
    pub fn is_qc(&self) -> bool {
        matches!(
            self,
            Step::GrossRange(_)
                | Step::Spike(_)
                | Step::RateOfChange(_)
                | Step::FlatLine(_)
                | Step::AttenuatedSignal(_)
                | Step::Climatology(_)
                | Step::TimeGap(_)
                | Step::ImpossibleDate(_)
                | Step::DataReception(_)
                | Step::PercentileRange(_)
                | Step::Syntax(_)
                | Step::Location(_)
                | Step::LocationBounds(_)
        )
    }

    /// Why the step runs in batch only, if it does: non-causal operations
    /// need the whole trace; `syntax` needs the readings' raw text, which
    /// packets do not carry (a packet is checked whole as it is decoded, and
    /// a malformed one goes to the dead-letter topic: docs/reference.md).
    pub fn batch_only(&self) -> Option<&'static str> {
        match self {
            Step::Bandpass { zerophase, .. }
            | Step::Bandstop { zerophase, .. }
            | Step::Lowpass { zerophase, .. }
            | Step::Highpass { zerophase, .. } => {
                zerophase.then_some("zerophase filtering is non-causal")
            }
            Step::Demean {}
            | Step::Detrend { .. }
            | Step::Taper { .. }
            | Step::ZDetect { .. }
            | Step::PercentileRange(_) => Some("it needs the whole series"),
            Step::Syntax(_) => Some(
                "it reads each reading's raw text (CSV cells), which packets do not carry; \
                 the stream checks each packet whole and sends a malformed one to the \
                 dead-letter topic",
            ),
            _ => None,
        }
    }
}
