//! Sources: where sensor data comes from (DESIGN §1).

pub mod files;
pub mod kafka;
pub mod synthetic;
