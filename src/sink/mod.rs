//! Sinks: where results and raw data go (DESIGN §1).

pub mod cassandra;
pub mod hdf5;
pub mod jsonl;
