//! FåKopp: an MPI-native batch-and-stream processor for environmental
//! sensor networks. Sources → chains (the `fakopp-kernels` crate) → sinks,
//! around one core; docs/reference.md is the contract, docs/architecture.md
//! the design.

pub mod assemble;
pub mod batch;
pub mod chain;
pub mod cli;
pub mod codec;
pub mod config;
pub mod dist;
pub mod export;
pub mod fault;
pub mod fsutil;
pub mod h5io;
pub mod inspect;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod output;
pub mod produce;
pub mod progress;
pub mod selftest;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod startup;
pub mod stations;
pub mod stream;
