//! Apache Cassandra sink (scylla driver, CQL protocol v4): connection and
//! schema, and the [`CassandraSink`] writer. Data is written with prepared
//! statements only.

mod schema;
mod writer;

pub use schema::{apply_schema, schema_statements};
pub use writer::{
    qc_flag_keys, CassandraSink, QcRow, RawRow, SinkStats, Table, WriteCancelled, BACKOFF_CAP,
    BACKOFF_START,
};

use crate::config::CassandraConfig;
use anyhow::{Context, Result};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use std::time::Duration;

/// Opens a session to the configured nodes. The password is read from the
/// environment variable named by `password_env` and never logged.
pub async fn connect(cfg: &CassandraConfig) -> Result<Session> {
    let mut b = SessionBuilder::new()
        .known_nodes(&cfg.nodes)
        .connection_timeout(Duration::from_secs(10));
    if let Some(user) = &cfg.username {
        let password = match &cfg.password_env {
            Some(var) => std::env::var(var).with_context(|| {
                format!("cassandra.password_env names `{var}`, which is not set")
            })?,
            None => String::new(),
        };
        b = b.user(user, password);
    }
    let session = b
        .build()
        .await
        .with_context(|| format!("cannot connect to Cassandra at {}", cfg.nodes.join(", ")))?;
    tracing::info!(nodes = %cfg.nodes.join(","), "connected to Cassandra");
    Ok(session)
}
