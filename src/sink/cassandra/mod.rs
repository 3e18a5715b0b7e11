//! Apache Cassandra sink (scylla driver, CQL protocol v4): connection and
//! schema, and the [`CassandraSink`] writer. Data is written with prepared
//! statements only.

mod retry;
mod schema;
mod writer;

pub use retry::permanent;
pub use schema::{apply_schema, layout, schema_statements, SchemaError};
pub use writer::{
    CassandraSink, PermanentWriteError, QcRow, RawDamage, RawDecodeError, RawRow, SinkStats,
    StoredRaw, Table, WriteCancelled, BACKOFF_CAP, BACKOFF_START,
};

use crate::config::{CassandraConfig, CassandraTls};
use anyhow::{Context, Result};
use scylla::client::session::{OpenSsl010Config, Session};
use scylla::client::session_builder::SessionBuilder;
use std::time::Duration;

/// An OpenSSL client context from `[cassandra.tls]`: peer verification on
/// (OpenSSL's connector defaults), trusting only the configured CA (not
/// the system store, which would let any public CA vouch for a node); the
/// driver checks each node's certificate against the node's IP address.
fn tls_context(tls: &CassandraTls) -> Result<OpenSsl010Config> {
    use openssl::ssl::{SslConnector, SslFiletype, SslMethod};
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::X509;
    let ca = std::fs::read(&tls.ca_file).with_context(|| {
        format!(
            "cassandra.tls.ca_file: cannot read {}",
            tls.ca_file.display()
        )
    })?;
    let certs = X509::stack_from_pem(&ca).with_context(|| {
        format!(
            "cassandra.tls.ca_file: {} is not PEM certificates",
            tls.ca_file.display()
        )
    })?;
    if certs.is_empty() {
        anyhow::bail!(
            "cassandra.tls.ca_file: no certificate in {}",
            tls.ca_file.display()
        );
    }
    let mut store = X509StoreBuilder::new()?;
    for c in certs {
        store.add_cert(c)?;
    }
    let mut b = SslConnector::builder(SslMethod::tls_client())?;
    b.set_cert_store(store.build());
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        b.set_certificate_chain_file(cert)
            .with_context(|| format!("cassandra.tls.cert_file: cannot use {}", cert.display()))?;
        b.set_private_key_file(key, SslFiletype::PEM)
            .with_context(|| format!("cassandra.tls.key_file: cannot use {}", key.display()))?;
        b.check_private_key()
            .context("cassandra.tls: key_file does not match cert_file")?;
    }
    Ok(OpenSsl010Config::new(b))
}

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
    if let Some(tls) = &cfg.tls {
        b = b.tls_context(Some(tls_context(tls)?));
    }
    let session = b.build().await.with_context(|| {
        let tls = if cfg.tls.is_some() { " over TLS" } else { "" };
        format!(
            "cannot connect to Cassandra at {}{tls}",
            cfg.nodes.join(", ")
        )
    })?;
    tracing::info!(nodes = %cfg.nodes.join(","), "connected to Cassandra");
    Ok(session)
}
