//! Sources: where sensor data comes from (DESIGN §1).

pub mod cassandra;
pub mod files;
pub mod kafka;
pub mod stored;
pub mod synthetic;
