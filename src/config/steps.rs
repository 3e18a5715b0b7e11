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
    Stats(fakopp_kernels::stats::StatsConfig),
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
        )
    }

    /// Non-causal operations need the whole trace and so run in batch only.
    pub fn batch_only(&self) -> bool {
        match self {
            Step::Bandpass { zerophase, .. }
            | Step::Bandstop { zerophase, .. }
            | Step::Lowpass { zerophase, .. }
            | Step::Highpass { zerophase, .. } => *zerophase,
            Step::Demean {} | Step::Detrend { .. } | Step::Taper { .. } | Step::ZDetect { .. } => {
                true
            }
            _ => false,
        }
    }
}
