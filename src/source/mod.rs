//! Sources: where sensor data comes from (docs/architecture.md, "Data flow").

pub mod cassandra;
pub mod files;
pub mod kafka;
pub mod stored;
pub mod synthetic;
