//! Sinks: where results and raw data go (docs/architecture.md, "Data flow").

pub mod cassandra;
pub mod hdf5;
pub mod jsonl;
