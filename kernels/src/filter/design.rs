//! IIR filter design: Butterworth exactly as
//! `scipy.signal.iirfilter(N, Wn, btype, ftype='butter', output='sos')`
//! with ObsPy's (`obspy.signal.filter`) corner normalisation and Nyquist
//! rules, and ObsPy's `lowpass_cheby_2` anti-alias design.

use super::checks::{check_positive_finite, check_sampling_rate};
use super::sos::Sos;
use super::zpk::{bilinear, buttap, cheb2ap, lp2bp, lp2bs, lp2hp, lp2lp, Zpk};
use super::zpk2sos::zpk2sos;
use crate::error::{invalid, Result};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Filter band with corner frequencies in Hz (as in ObsPy's `Trace.filter`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Band {
    Lowpass { freq: f64 },
    Highpass { freq: f64 },
    Bandpass { freqmin: f64, freqmax: f64 },
    Bandstop { freqmin: f64, freqmax: f64 },
}

/// Normalised band (corners as a fraction of Nyquist, SciPy's `Wn`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormalizedBand {
    Lowpass(f64),
    Highpass(f64),
    Bandpass(f64, f64),
    Bandstop(f64, f64),
}

/// A non-fatal adjustment ObsPy makes (and warns about) when designing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FilterWarning {
    /// `bandpass` with `freqmax >= Nyquist` (within 1e-6 of Nyquist in
    /// normalised units) becomes a `highpass` at `freqmin`.
    BandpassBecameHighpass { freqmax: f64, nyquist: f64 },
}

impl std::fmt::Display for FilterWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterWarning::BandpassBecameHighpass { freqmax, nyquist } => write!(
                f,
                "Selected high corner frequency ({}) of bandpass is at or above \
                 Nyquist ({}). Applying a high-pass instead.",
                py_float(*freqmax),
                py_float(*nyquist)
            ),
        }
    }
}

/// Python's `str(float)` for the values ObsPy puts in its messages.
fn py_float(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// A designed filter: the sections, the band actually designed (after
/// ObsPy's Nyquist rules) and the warning, if ObsPy would have emitted one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Design {
    pub sos: Sos,
    pub band: Band,
    pub warning: Option<FilterWarning>,
}

fn check_wn(name: &'static str, w: f64) -> Result<()> {
    if !w.is_finite() || w <= 0.0 || w >= 1.0 {
        return Err(invalid(
            name,
            format!("normalised corner {w} must be in (0, 1), i.e. strictly between 0 and Nyquist"),
        ));
    }
    Ok(())
}

fn transform(proto: Zpk, band: NormalizedBand) -> Result<Vec<[f64; 6]>> {
    // iirfilter: fs = 2, warped = 2*fs*tan(pi*Wn/fs)
    let fs = 2.0;
    let warp = |w: f64| 2.0 * fs * (PI * w / fs).tan();
    let analog = match band {
        NormalizedBand::Lowpass(w) => {
            check_wn("freq", w)?;
            lp2lp(proto, warp(w))
        }
        NormalizedBand::Highpass(w) => {
            check_wn("freq", w)?;
            lp2hp(proto, warp(w))
        }
        NormalizedBand::Bandpass(lo, hi) | NormalizedBand::Bandstop(lo, hi) => {
            check_wn("freqmin", lo)?;
            check_wn("freqmax", hi)?;
            if lo >= hi {
                return Err(invalid(
                    "freqmin",
                    format!("Wn[0]={lo} must be less than Wn[1]={hi}"),
                ));
            }
            let (w0, w1) = (warp(lo), warp(hi));
            let bw = w1 - w0;
            let wo = (w0 * w1).sqrt();
            if matches!(band, NormalizedBand::Bandpass(..)) {
                lp2bp(proto, wo, bw)
            } else {
                lp2bs(proto, wo, bw)
            }
        }
    };
    let d = bilinear(analog, fs);
    zpk2sos(&d.z, &d.p, d.k)
}

/// Butterworth second-order sections for a normalised band, identical to
/// `scipy.signal.iirfilter(order, Wn, btype=..., ftype='butter', output='sos')`
/// (`buttap` → `lp2*_zpk` on pre-warped corners → `bilinear_zpk(fs=2)` →
/// `zpk2sos(pairing='nearest')`). `Wn` must lie in (0, 1).
pub fn iirfilter_butter(order: usize, band: NormalizedBand) -> Result<Sos> {
    if order == 0 {
        return Err(invalid("corners", "filter order must be >= 1"));
    }
    Sos::new(transform(buttap(order), band)?)
}

/// Butterworth design following `obspy.signal.filter.{lowpass, highpass,
/// bandpass, bandstop}`: corners are divided by Nyquist (`0.5 * sampling_rate`)
/// and designed with [`iirfilter_butter`].
///
/// Nyquist rules (ObsPy 1.5):
/// * `bandpass` with `freqmax / nyquist - 1 > -1e-6` becomes a `highpass` at
///   `freqmin`, reported in [`Design::warning`];
/// * `bandpass`/`bandstop` with `freqmin > nyquist` is an error;
/// * every remaining corner must be in (0, Nyquist) (ObsPy's "set to
///   Nyquist" warnings for `lowpass`/`bandstop` end in SciPy rejecting the
///   design, so they are errors here too), and `freqmin < freqmax`.
pub fn butterworth(band: Band, corners: usize, sampling_rate: f64) -> Result<Design> {
    check_sampling_rate(sampling_rate)?;
    let fe = 0.5 * sampling_rate;
    let mut warning = None;
    let mut band = band;
    match band {
        Band::Lowpass { freq } | Band::Highpass { freq } => check_positive_finite("freq", freq)?,
        Band::Bandpass { freqmin, freqmax } | Band::Bandstop { freqmin, freqmax } => {
            check_positive_finite("freqmin", freqmin)?;
            check_positive_finite("freqmax", freqmax)?;
        }
    }
    if let Band::Bandpass { freqmin, freqmax } = band {
        if freqmax / fe - 1.0 > -1e-6 {
            warning = Some(FilterWarning::BandpassBecameHighpass {
                freqmax,
                nyquist: fe,
            });
            band = Band::Highpass { freq: freqmin };
        }
    }
    let nb = match band {
        Band::Lowpass { freq } => NormalizedBand::Lowpass(freq / fe),
        Band::Highpass { freq } => {
            if freq / fe > 1.0 {
                return Err(invalid(
                    "freq",
                    format!("corner {freq} Hz is above Nyquist ({fe} Hz)"),
                ));
            }
            NormalizedBand::Highpass(freq / fe)
        }
        Band::Bandpass { freqmin, freqmax } | Band::Bandstop { freqmin, freqmax } => {
            if freqmin / fe > 1.0 {
                return Err(invalid(
                    "freqmin",
                    format!("low corner {freqmin} Hz is above Nyquist ({fe} Hz)"),
                ));
            }
            if matches!(band, Band::Bandpass { .. }) {
                NormalizedBand::Bandpass(freqmin / fe, freqmax / fe)
            } else {
                NormalizedBand::Bandstop(freqmin / fe, freqmax / fe)
            }
        }
    };
    let sos = iirfilter_butter(corners, nb)?;
    Ok(Design { sos, band, warning })
}

/// `scipy.signal.cheb2ord(wp, ws, gpass, gstop)` for a digital lowpass
/// (`wp < ws`, both normalised to Nyquist). Returns `(order, wn)`.
pub(crate) fn cheb2ord_lowpass(wp: f64, ws: f64, gpass: f64, gstop: f64) -> (usize, f64) {
    let passb = (PI * wp / 2.0).tan();
    let stopb = (PI * ws / 2.0).tan();
    let nat = (stopb / passb).abs();
    let gs = 10f64.powf(0.1 * gstop.abs());
    let gp = 10f64.powf(0.1 * gpass.abs());
    let v_pass_stop = ((gs - 1.0) / (gp - 1.0)).sqrt().acosh();
    let ord = (v_pass_stop / nat.acosh()).ceil() as usize;
    let new_freq = 1.0 / (1.0 / ord as f64 * v_pass_stop).cosh();
    let nat = passb / new_freq;
    (ord, nat.atan() * 2.0 / PI)
}

/// ObsPy's `lowpass_cheby_2(data, freq, df, maxorder)` design (used by
/// `Trace.decimate`): a Chebyshev type II lowpass with 96 dB stop-band
/// attenuation from `freq` on and 1 dB pass-band ripple, whose pass band is
/// shrunk by 1 % steps until the order is `<= maxorder`.
/// Returns the sections and the pass-band frequency in Hz.
pub fn lowpass_cheby2(freq: f64, sampling_rate: f64, maxorder: usize) -> Result<(Sos, f64)> {
    check_sampling_rate(sampling_rate)?;
    check_positive_finite("freq", freq)?;
    let nyquist = sampling_rate * 0.5;
    let (rp, rs) = (1.0, 96.0);
    let ws = freq / nyquist;
    if ws >= 1.0 {
        return Err(invalid(
            "freq",
            format!("corner {freq} Hz must be below Nyquist ({nyquist} Hz)"),
        ));
    }
    let mut wp = ws;
    let (mut order, mut wn);
    loop {
        wp *= 0.99;
        (order, wn) = cheb2ord_lowpass(wp, ws, rp, rs);
        if order <= maxorder {
            break;
        }
        if wp < 1e-300 {
            return Err(invalid(
                "maxorder",
                "no Chebyshev II design reaches this order",
            ));
        }
    }
    check_wn("freq", wn)?;
    let fs = 2.0;
    let warped = 2.0 * fs * (PI * wn / fs).tan();
    let d = bilinear(lp2lp(cheb2ap(order, rs), warped), fs);
    Ok((Sos::new(zpk2sos(&d.z, &d.p, d.k)?)?, wp * nyquist))
}
