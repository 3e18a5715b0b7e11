use thiserror::Error;

/// Why a kernel refused its input or parameters. Kernels never panic on
/// bad data; they return one of these, naming the offending parameter.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum KernelError {
    /// A parameter is outside its valid domain (e.g. `sta >= lta`,
    /// a corner frequency outside (0, Nyquist)).
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// The sampling rate must be finite and > 0 for this kernel.
    #[error("invalid sampling rate {0} Hz: must be finite and > 0")]
    InvalidSamplingRate(f64),
    /// A sample is NaN or infinite where the kernel cannot carry it.
    #[error("non-finite sample {value} at index {index}")]
    NonFinite { index: usize, value: f64 },
    /// The trace is too short for the requested operation.
    #[error("trace of {len} samples is too short: {reason}")]
    TooShort { len: usize, reason: String },
}

pub type Result<T> = std::result::Result<T, KernelError>;

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> KernelError {
    KernelError::InvalidParameter {
        name,
        reason: reason.into(),
    }
}
