use crate::config::CassandraConfig;
use anyhow::{Context, Result};
use scylla::client::session::Session;

const SCHEMA: &str = include_str!("../../../schemas/cassandra.cql");

/// The DDL statements of `schemas/cassandra.cql` for this keyspace, in order.
/// The keyspace and replication were validated by the config loader.
pub fn schema_statements(cfg: &CassandraConfig) -> Vec<String> {
    let body: String = SCHEMA
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    body.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.replace("{keyspace}", &cfg.keyspace)
                .replace("{replication}", &cfg.replication)
        })
        .collect()
}

/// Creates the keyspace and tables if they do not exist (idempotent), and
/// waits for schema agreement so that statements can be prepared at once.
pub async fn apply_schema(session: &Session, cfg: &CassandraConfig) -> Result<()> {
    for stmt in schema_statements(cfg) {
        let first_line = stmt.lines().next().unwrap_or_default().to_string();
        // DDL carries no values, so there is nothing to bind.
        session
            .query_unpaged(stmt, &[])
            .await
            .with_context(|| format!("schema statement failed: {first_line}"))?;
    }
    session
        .await_schema_agreement()
        .await
        .context("waiting for schema agreement")?;
    tracing::info!(keyspace = %cfg.keyspace, "schema applied");
    Ok(())
}
