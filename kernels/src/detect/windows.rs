//! STA/LTA window lengths.

use crate::error::{invalid, Result};
use crate::filter::checks::seconds_to_samples;
use serde::{Deserialize, Serialize};

/// STA and LTA window lengths in samples, `1 <= nsta < nlta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaLtaWindows {
    pub nsta: usize,
    pub nlta: usize,
}

impl StaLtaWindows {
    /// From samples; requires `1 <= nsta < nlta`.
    pub fn from_samples(nsta: usize, nlta: usize) -> Result<Self> {
        if nsta == 0 {
            return Err(invalid("sta", "STA window must be at least 1 sample"));
        }
        if nsta >= nlta {
            return Err(invalid(
                "sta",
                format!(
                    "STA window ({nsta} samples) must be shorter than LTA window ({nlta} samples)"
                ),
            ));
        }
        Ok(StaLtaWindows { nsta, nlta })
    }
    /// From seconds as ObsPy's `Trace.trigger`: `n = int(seconds * sr)`.
    pub fn from_seconds(sta_s: f64, lta_s: f64, sampling_rate: f64) -> Result<Self> {
        let nsta = seconds_to_samples("sta", sta_s, sampling_rate, 1)?;
        let nlta = seconds_to_samples("lta", lta_s, sampling_rate, 1)?;
        Self::from_samples(nsta, nlta)
    }
}
