//! A rank's own Cassandra writes (docs/architecture.md, "Scale-out"):
//! each rank stores the raw packets and results of the sensors it owns
//! through its own session, so the database's write rate, not rank 0,
//! bounds the job. One micro-batch's write runs in the background while
//! the next is processed; [`RankStore::settle`] (every checkpoint calls it
//! on every rank before offsets are committed) waits until it is durable.

use crate::config::CassandraConfig;
use crate::model::SensorPacket;
use crate::output::Results;
use crate::sink::cassandra::{CassandraSink, RawRow};
use crate::startup::{Attempt, Deadline};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A raw packet to store (`true`: late, stored but not processed), shared
/// with the reorder buffer that holds it for processing.
pub type RawPacket = (Arc<SensorPacket>, bool);

/// How long a write may still retry after SIGTERM/SIGINT (counted from
/// the signal).
const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(20);

/// What a rank has made durable so far (the job's summary reports it per
/// rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub raw_packets: u64,
    /// Rows of every table, raw packets included.
    pub rows: u64,
}

/// What a failed connection (session, schema, statements) means: the
/// cluster was not reachable or not ready (retry); it refused the login
/// (final once that has lasted, see `startup`); other refusals (a bad
/// keyspace definition, authorisation, TLS verification, settings) are
/// final.
fn connect_failure<T>(e: anyhow::Error) -> Attempt<T> {
    use scylla::errors::{ExecutionError, MetadataError, NewSessionError};
    for cause in e.chain() {
        if let Some(n) = cause.downcast_ref::<NewSessionError>() {
            if matches!(
                n,
                NewSessionError::MetadataError(MetadataError::ConnectionPoolError(p))
                    if login_refused(p)
            ) {
                return Attempt::Refused(e);
            }
            let retry = matches!(
                n,
                NewSessionError::MetadataError(_) | NewSessionError::FailedToResolveAnyHostname(_)
            ) && !format!("{n}").contains("certificate");
            return if retry {
                Attempt::Retry(e)
            } else {
                Attempt::Fail(e)
            };
        }
        if let Some(x) = cause.downcast_ref::<ExecutionError>() {
            return if crate::sink::cassandra::permanent(x).is_none() {
                Attempt::Retry(e)
            } else {
                Attempt::Fail(e)
            };
        }
    }
    Attempt::Fail(e)
}

/// The node answered the login with "bad credentials": the driver keeps the
/// answer in the broken pool's last error, as it keeps an unreachable
/// node's. Not "Unable to perform authentication" (the node could not read
/// its roles: replicas down while a cluster boots), which may pass.
fn login_refused(p: &scylla::errors::ConnectionPoolError) -> bool {
    use scylla::errors::{
        ConnectionError, ConnectionPoolError, ConnectionSetupRequestErrorKind, DbError,
    };
    matches!(
        p,
        ConnectionPoolError::Broken {
            last_connection_error: ConnectionError::ConnectionSetupRequestError(r),
            ..
        } if matches!(
            r.get_error(),
            ConnectionSetupRequestErrorKind::DbError(DbError::AuthenticationError, msg)
                if !msg.contains("Unable to perform authentication")
        )
    )
}

pub struct RankStore {
    rt: Arc<tokio::runtime::Runtime>,
    sink: CassandraSink,
    /// The previous write, still running (at most one in flight).
    pending: Option<tokio::task::JoinHandle<Result<(Duration, Written)>>>,
    last_write: Option<Duration>,
    totals: Written,
    /// Time spent blocked in [`RankStore::settle`]: waiting for Cassandra
    /// is not the rank's work.
    waited: Duration,
}

impl RankStore {
    /// Connects with retries until `deadline`. `apply` applies the schema
    /// (rank 0, before any other rank connects); otherwise the keyspace
    /// must exist in this build's layout. After `stop` is raised, a write
    /// may retry for a grace period that lets a healthy final write
    /// finish, then gives up (so nothing after the last checkpoint is
    /// committed) instead of hanging past Slurm's kill deadline.
    pub fn connect(
        cfg: &CassandraConfig,
        apply: bool,
        stop: Arc<AtomicBool>,
        deadline: Deadline,
    ) -> Result<RankStore> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the tokio runtime for Cassandra")?;
        let what = format!("Cassandra at {}", cfg.nodes.join(", "));
        let sink = crate::startup::retry(&what, deadline, || {
            let attempt = if apply {
                rt.block_on(CassandraSink::connect(cfg))
            } else {
                rt.block_on(CassandraSink::open(cfg))
            };
            match attempt {
                Ok(s) => Attempt::Done(s),
                Err(e) => connect_failure(e),
            }
        })?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        // The task owns the sender: the signal lives as long as the runtime.
        rt.spawn(async move {
            let mut seen = None;
            let since = loop {
                if let Some(s) = crate::shutdown::since_signal(&stop, &mut seen) {
                    break s;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            tokio::time::sleep(SHUTDOWN_WRITE_GRACE.saturating_sub(since)).await;
            let _ = tx.send(true);
        });
        Ok(RankStore {
            rt: Arc::new(rt),
            sink: sink.with_cancel(rx),
            pending: None,
            last_write: None,
            totals: Written::default(),
            waited: Duration::ZERO,
        })
    }

    /// A second writer over the same session and runtime (rank 0's own
    /// sensors beside its network events).
    pub fn sibling(&self) -> RankStore {
        RankStore {
            rt: Arc::clone(&self.rt),
            sink: self.sink.clone(),
            pending: None,
            last_write: None,
            totals: Written::default(),
            waited: Duration::ZERO,
        }
    }

    /// Waits until the write in flight, if any, is durable. During an
    /// outage it retries until the outage ends or the job is told to stop
    /// (then the write is given up and this fails).
    pub fn settle(&mut self) -> Result<()> {
        if let Some(handle) = self.pending.take() {
            let blocked = Instant::now();
            let done = self.rt.block_on(handle);
            self.waited += blocked.elapsed();
            let (took, w) = done.context("the Cassandra write task failed")??;
            self.last_write = Some(took);
            self.totals.raw_packets += w.raw_packets;
            self.totals.rows += w.rows;
        }
        Ok(())
    }

    /// Settles the previous write, then starts writing these packets
    /// (`true`: late, stored but not processed) and results.
    pub fn write(&mut self, raw: Vec<RawPacket>, results: Results) -> Result<()> {
        self.settle()?;
        let w = Written {
            raw_packets: raw.len() as u64,
            rows: (raw.len()
                + results.triggers.len()
                + results.events.len()
                + results.qc.len()
                + results.stats.len()
                + results.stations.len()) as u64,
        };
        if w.rows == 0 {
            return Ok(());
        }
        let sink = self.sink.clone();
        self.pending = Some(self.rt.spawn(async move {
            let t = Instant::now();
            let rows: Vec<RawRow<'_>> = raw
                .iter()
                .map(|(p, late)| RawRow {
                    packet: p.as_ref(),
                    late: *late,
                })
                .collect();
            // The first failure ends the write (the other half is dropped).
            tokio::try_join!(sink.write_raw(&rows), sink.write_results(&results))?;
            Ok((t.elapsed(), w))
        }));
        Ok(())
    }

    /// Milliseconds the last finished write took.
    pub fn last_write_ms(&self) -> Option<f64> {
        self.last_write.map(|d| d.as_secs_f64() * 1e3)
    }

    /// Time blocked waiting for writes so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// What this writer has made durable.
    pub fn totals(&self) -> Written {
        self.totals
    }
}
