//! FåKopp: an MPI-native batch-and-stream processor for environmental
//! sensor networks. Sources → chains (the `fakopp-kernels` crate) → sinks,
//! around one core; see DESIGN.md for the contract.

pub mod assemble;
pub mod chain;
pub mod cli;
pub mod config;
pub mod dist;
pub mod h5io;
pub mod inspect;
pub mod logging;
pub mod model;
pub mod output;
pub mod selftest;
pub mod source;
pub mod sink;
