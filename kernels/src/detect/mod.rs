//! Seismic event detection following ObsPy 1.5 `obspy.signal.trigger`:
//! characteristic functions (STA/LTA family, carlSTAtrig, Z-detector,
//! SeisComP's |x| STA/LTA), trigger on/off, network coincidence and AIC
//! picking. Network coincidence also runs incrementally on a trigger stream
//! ([`CoincidenceStream`]) with state bounded by the network, not the run.
//!
//! Window lengths given in seconds become samples as ObsPy's `Trace.trigger`
//! does, `int(seconds * sampling_rate)` ([`StaLtaWindows::from_seconds`]).
//! Every causal characteristic function has a streaming state implementing
//! [`StreamingCf`]; feeding any chunking gives the one-shot output bit for
//! bit. States are `Clone + Serialize + Deserialize` for checkpointing.
//!
//! ```
//! use fakopp_kernels::detect::{RecursiveStaLta, StreamingCf, TriggerParams, TriggerState};
//! let mut cf = RecursiveStaLta::from_seconds(0.5, 10.0, 100.0).unwrap();
//! let mut trig = TriggerState::new(TriggerParams::new(3.5, 1.0)).unwrap();
//! let (mut cfbuf, mut triggers) = (Vec::new(), Vec::new());
//! for chunk in vec![0.1; 5000].chunks(512) {
//!     cfbuf.clear();
//!     cf.process(chunk, &mut cfbuf).unwrap();
//!     trig.process(&cfbuf, &mut triggers);
//! }
//! trig.finish(&mut triggers);
//! ```

mod aic;
mod baer;
mod carl;
mod classic;
mod coincidence;
mod coincidence_stream;
mod delayed;
mod onset;
mod recursive;
mod ring;
mod stalta_abs;
mod windows;
mod zdetect;

pub use aic::{aic_pick, aic_simple, AicPick, AicPicker};
pub use baer::{pk_baer, pk_baer_cf, BaerParams, BaerPick};
pub use carl::{carl_sta_trig, CarlStaTrig};
pub use classic::{classic_sta_lta, ClassicStaLta};
pub use coincidence::{
    coincidence_trigger, sample_time_ns, trigger_to_absolute, CoincidenceEvent, CoincidenceParams,
    Sensor, StationTrigger,
};
pub use coincidence_stream::{CoincidenceStream, StreamEvent};
pub use delayed::{delayed_sta_lta, delayed_sta_lta_causal, DelayedStaLta};
pub use onset::{trigger_onset, trigger_onset_with_peaks, Trigger, TriggerParams, TriggerState};
pub use recursive::{recursive_sta_lta, RecursiveStaLta};
pub use stalta_abs::{stalta_abs, StaLtaAbs};
pub use windows::StaLtaWindows;
pub use zdetect::z_detect;

use crate::error::Result;

/// A causal characteristic function fed in chunks.
pub trait StreamingCf {
    /// Consumes `input`, appending one CF value per sample to `out`.
    /// Non-finite input is rejected before the state changes.
    fn process(&mut self, input: &[f64], out: &mut Vec<f64>) -> Result<()>;
    /// Back to the initial (warm-up) state, e.g. after a data gap.
    fn reset(&mut self);
}
