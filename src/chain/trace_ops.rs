//! The trace-shaping part of a chain: filters, conditioning and
//! characteristic functions, each mapped to its kernel. Causal operators
//! keep state between chunks; non-causal ones (batch only, rejected in
//! stream configs) act on the chunk, which in batch is the whole segment.

use crate::config::{DetrendKind, Step};
use anyhow::{bail, Result};
use fakopp_kernels::detect::{
    CarlStaTrig, ClassicStaLta, DelayedStaLta, RecursiveStaLta, StaLtaAbs, StaLtaWindows,
    StreamingCf,
};
use fakopp_kernels::filter::{self, Band, Rmhp, Sos, SosFilter};
use serde::{Deserialize, Serialize};

/// One trace operator with its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TraceOp {
    Sos(SosFilter),
    ZeroPhase(Sos),
    Demean,
    Detrend(DetrendKind),
    Taper {
        max_percentage: f64,
        max_length: Option<f64>,
    },
    Rmhp(Rmhp),
    Itaper(filter::InitialTaper),
    Classic(ClassicStaLta),
    Recursive(RecursiveStaLta),
    Delayed(DelayedStaLta),
    Carl(CarlStaTrig),
    StaltaAbs(StaLtaAbs),
    ZDetect(usize),
}

impl TraceOp {
    /// Builds the operator of `step` for a series sampled at `rate` Hz;
    /// `None` for steps that are not trace operators.
    pub fn build(step: &Step, rate: f64) -> Result<Option<TraceOp>> {
        let filt = |band: Band, corners: u32, zerophase: bool| -> Result<TraceOp> {
            let d = filter::butterworth(band, corners as usize, rate)?;
            if let Some(w) = &d.warning {
                tracing::warn!("{w}");
            }
            Ok(if zerophase {
                TraceOp::ZeroPhase(d.sos)
            } else {
                TraceOp::Sos(SosFilter::new(d.sos))
            })
        };
        Ok(Some(match *step {
            Step::Bandpass {
                freqmin,
                freqmax,
                corners,
                zerophase,
            } => filt(Band::Bandpass { freqmin, freqmax }, corners, zerophase)?,
            Step::Bandstop {
                freqmin,
                freqmax,
                corners,
                zerophase,
            } => filt(Band::Bandstop { freqmin, freqmax }, corners, zerophase)?,
            Step::Lowpass {
                freq,
                corners,
                zerophase,
            } => filt(Band::Lowpass { freq }, corners, zerophase)?,
            Step::Highpass {
                freq,
                corners,
                zerophase,
            } => filt(Band::Highpass { freq }, corners, zerophase)?,
            Step::Demean {} => TraceOp::Demean,
            Step::Detrend { kind } => TraceOp::Detrend(kind),
            Step::Taper {
                max_percentage,
                max_length,
            } => TraceOp::Taper {
                max_percentage,
                max_length,
            },
            Step::Rmhp { window } => TraceOp::Rmhp(Rmhp::new(window, rate)?),
            Step::Itaper { length } => {
                TraceOp::Itaper(filter::InitialTaper::new(length, rate, 0.0)?)
            }
            Step::ClassicStaLta { sta, lta } => {
                TraceOp::Classic(ClassicStaLta::from_seconds(sta, lta, rate)?)
            }
            Step::RecursiveStaLta { sta, lta } => {
                TraceOp::Recursive(RecursiveStaLta::from_seconds(sta, lta, rate)?)
            }
            Step::DelayedStaLta { sta, lta } => {
                TraceOp::Delayed(DelayedStaLta::from_seconds(sta, lta, rate)?)
            }
            Step::CarlStaTrig {
                sta,
                lta,
                ratio,
                quiet,
            } => TraceOp::Carl(CarlStaTrig::new(
                StaLtaWindows::from_seconds(sta, lta, rate)?,
                ratio,
                quiet,
            )?),
            Step::StaltaAbs { sta, lta } => TraceOp::StaltaAbs(StaLtaAbs::new(sta, lta, rate)?),
            Step::ZDetect { sta } => {
                let n = (sta * rate) as usize;
                if n == 0 {
                    bail!("z_detect: sta = {sta} s is less than one sample at {rate} Hz");
                }
                TraceOp::ZDetect(n)
            }
            _ => return Ok(None),
        }))
    }

    /// True for operators that turn the trace into a characteristic function.
    pub fn is_detector(&self) -> bool {
        matches!(
            self,
            TraceOp::Classic(_)
                | TraceOp::Recursive(_)
                | TraceOp::Delayed(_)
                | TraceOp::Carl(_)
                | TraceOp::StaltaAbs(_)
                | TraceOp::ZDetect(_)
        )
    }

    /// Back to the warm-up state (new contiguous segment).
    pub fn reset(&mut self) {
        match self {
            TraceOp::Sos(f) => f.reset(),
            TraceOp::Rmhp(r) => r.reset(),
            TraceOp::Itaper(t) => t.reset(),
            TraceOp::Classic(c) => c.reset(),
            TraceOp::Recursive(c) => c.reset(),
            TraceOp::Delayed(c) => c.reset(),
            TraceOp::Carl(c) => c.reset(),
            TraceOp::StaltaAbs(c) => c.reset(),
            TraceOp::ZeroPhase(_)
            | TraceOp::Demean
            | TraceOp::Detrend(_)
            | TraceOp::Taper { .. }
            | TraceOp::ZDetect(_) => {}
        }
    }

    /// Applies the operator to `buf` in place; `scratch` is reused to avoid
    /// an allocation per chunk.
    pub fn apply(&mut self, buf: &mut Vec<f64>, scratch: &mut Vec<f64>, rate: f64) -> Result<()> {
        let mut cf = |c: &mut dyn StreamingCf, buf: &mut Vec<f64>| -> Result<()> {
            scratch.clear();
            c.process(buf, scratch)?;
            std::mem::swap(buf, scratch);
            Ok(())
        };
        match self {
            TraceOp::Sos(f) => f.process_in_place(buf)?,
            TraceOp::ZeroPhase(sos) => *buf = filter::sosfilt_zerophase(sos, buf)?,
            TraceOp::Demean => filter::demean(buf)?,
            TraceOp::Detrend(DetrendKind::Simple) => filter::detrend_simple(buf)?,
            TraceOp::Detrend(DetrendKind::Linear) => filter::detrend_linear(buf)?,
            TraceOp::Taper {
                max_percentage,
                max_length,
            } => {
                if let Some(w) = filter::taper_hann(buf, rate, Some(*max_percentage), *max_length)?
                {
                    tracing::debug!("taper: {w:?}");
                }
            }
            TraceOp::Rmhp(r) => r.process_in_place(buf)?,
            TraceOp::Itaper(t) => t.process_in_place(buf)?,
            TraceOp::Classic(c) => cf(c, buf)?,
            TraceOp::Recursive(c) => cf(c, buf)?,
            TraceOp::Delayed(c) => cf(c, buf)?,
            TraceOp::Carl(c) => cf(c, buf)?,
            TraceOp::StaltaAbs(c) => cf(c, buf)?,
            TraceOp::ZDetect(n) => *buf = fakopp_kernels::detect::z_detect(buf, *n)?,
        }
        Ok(())
    }
}
