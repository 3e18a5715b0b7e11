//! Helpers shared by the integration tests. The services are real: started
//! by `scripts/services start` (which `make test` does); a test that cannot
//! reach them fails with a message saying so.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn fakopp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fakopp"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A name no other test run uses (topics, keyspaces).
pub fn unique(prefix: &str) -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), t % 1_000_000_000_000)
}

pub fn kafka_brokers() -> String {
    std::env::var("FAKOPP_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn cassandra_node() -> String {
    std::env::var("FAKOPP_TEST_CASSANDRA").unwrap_or_else(|_| "127.0.0.1:9042".into())
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `text` to a fresh config file in `dir`.
pub fn write_config(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
