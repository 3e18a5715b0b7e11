//! Seismic waveform filters following ObsPy 1.5 (`obspy.signal.filter`,
//! `Trace.detrend/taper/decimate`) and SciPy's filter design, plus
//! SeisComP's `RMHP` and `ITAPER`.
//!
//! * Design: [`butterworth`] (ObsPy corner rules) / [`iirfilter_butter`]
//!   (SciPy `iirfilter(..., output='sos')`), [`lowpass_cheby2`].
//! * Application: [`sosfilt`], streaming [`SosFilter`], [`sosfilt_zerophase`].
//! * Batch-only conditioning: [`demean`], [`detrend_simple`],
//!   [`detrend_linear`], [`taper_hann`].
//! * Streaming SeisComP operators: [`Rmhp`], [`InitialTaper`]; [`Decimator`].
//!
//! Typical use from seconds/Hz:
//! ```
//! use fakopp_kernels::filter::{butterworth, Band, SosFilter};
//! let d = butterworth(Band::Bandpass { freqmin: 1.0, freqmax: 10.0 }, 4, 100.0).unwrap();
//! let mut f = SosFilter::new(d.sos);
//! let mut chunk = vec![0.0, 1.0, 0.5];
//! f.process_in_place(&mut chunk).unwrap();
//! ```

pub(crate) mod checks;
mod complex;
mod decimate;
mod design;
mod detrend;
pub(crate) mod npsum;
mod rmhp;
mod sos;
mod taper;
mod zpk;
mod zpk2sos;

pub use decimate::{decimate, Decimator};
pub use design::{
    butterworth, iirfilter_butter, lowpass_cheby2, Band, Design, FilterWarning, NormalizedBand,
};
pub use detrend::{demean, detrend_linear, detrend_simple};
pub use rmhp::{rmhp, Rmhp};
pub use sos::{sosfilt, sosfilt_zerophase, Sos, SosFilter};
pub use taper::{hann_window, taper_hann, InitialTaper, TaperTooLong};
