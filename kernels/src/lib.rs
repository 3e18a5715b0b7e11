//! FåKopp kernels: pure numerics for environmental sensor networks.
//!
//! No I/O, no MPI. Every kernel has a one-shot form over a whole trace and
//! a streaming form (a state struct fed chunks of any size) that give the
//! same output.

pub mod detect;
pub mod error;
pub mod filter;
pub mod multichannel;
pub mod pack;
pub mod qc;
pub mod stats;

pub use error::{KernelError, Result};
