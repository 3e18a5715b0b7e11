//! The stream job's sinks (`[sinks] kinds`): Cassandra (raw packets and
//! results), JSON lines (appended and fsynced every micro-batch), HDF5
//! Kafka (network events on the detections topic). No sink holds the
//! run's results: HDF5, a file written whole, is refused in stream configs.

use crate::config::{Config, SinkKind};
use crate::model::SensorPacket;
use crate::output::Results;
use crate::sink::cassandra::{CassandraSink, RawRow};
use crate::source::kafka::Producer;
use crate::startup::Attempt;
use anyhow::{Context, Result};
use rdkafka::producer::BaseRecord;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a write may still retry after SIGTERM/SIGINT.
const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(20);

/// Whether connecting (session, schema, statements) may pass later: the
/// cluster was not reachable or not ready; refusals (a bad keyspace
/// definition, authentication, TLS verification, settings) are final.
fn connect_retryable(e: &anyhow::Error) -> bool {
    use scylla::errors::{ExecutionError, NewSessionError};
    for cause in e.chain() {
        if let Some(n) = cause.downcast_ref::<NewSessionError>() {
            return matches!(
                n,
                NewSessionError::MetadataError(_) | NewSessionError::FailedToResolveAnyHostname(_)
            ) && !format!("{n}").contains("certificate");
        }
        if let Some(x) = cause.downcast_ref::<ExecutionError>() {
            return crate::sink::cassandra::permanent(x).is_none();
        }
    }
    false
}

pub struct StreamSinks {
    rt: Option<tokio::runtime::Runtime>,
    cassandra: Option<CassandraSink>,
    /// The previous micro-batch's Cassandra write, still running while the
    /// next micro-batch is consumed and processed (at most one in flight).
    pending: Option<tokio::task::JoinHandle<Result<Duration>>>,
    /// How long the last finished Cassandra write took.
    last_write: Option<Duration>,
    /// Keeps the cancellation channel open for the sink.
    _cancel: Option<tokio::sync::watch::Sender<bool>>,
    jsonl: Option<Box<dyn Write>>,
    jsonl_file: Option<std::fs::File>,
    kafka: bool,
}

impl StreamSinks {
    /// Opens the sinks; `jsonl_len` (from a checkpoint) truncates the
    /// JSON-lines output to what belongs to the resumed state, so a replay
    /// after a crash does not repeat lines.
    pub fn open(
        cfg: &Config,
        stop: Arc<AtomicBool>,
        jsonl_len: Option<u64>,
        deadline: crate::startup::Deadline,
    ) -> Result<StreamSinks> {
        let kinds = &cfg.sinks.kinds;
        let (mut rt, mut cassandra, mut cancel) = (None, None, None);
        if kinds.contains(&SinkKind::Cassandra) {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("starting the tokio runtime for Cassandra")?;
            let what = format!("Cassandra at {}", cfg.cassandra.nodes.join(", "));
            let sink = crate::startup::retry(&what, deadline, || {
                match runtime.block_on(CassandraSink::connect(&cfg.cassandra)) {
                    Ok(s) => Attempt::Done(s),
                    Err(e) if connect_retryable(&e) => Attempt::Retry(e),
                    Err(e) => Attempt::Fail(e),
                }
            })?;
            let (tx, rx) = tokio::sync::watch::channel(false);
            // SIGTERM during an endless retry (Cassandra down): after a
            // grace period that lets a healthy final write finish, give up
            // the write, and so the commit, instead of hanging past Slurm's
            // kill deadline.
            let watch_stop = Arc::clone(&stop);
            let cancel_tx = tx.clone();
            runtime.spawn(async move {
                while !watch_stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(SHUTDOWN_WRITE_GRACE).await;
                let _ = cancel_tx.send(true);
            });
            cassandra = Some(sink.with_cancel(rx));
            cancel = Some(tx);
            rt = Some(runtime);
        }
        let (mut jsonl, mut jsonl_file): (Option<Box<dyn Write>>, _) = (None, None);
        if kinds.contains(&SinkKind::Jsonl) {
            match &cfg.sinks.jsonl_path {
                Some(p) => {
                    crate::fsutil::ensure_parent(p)?;
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .with_context(|| format!("opening {}", p.display()))?;
                    if let Some(len) = jsonl_len {
                        f.set_len(len).with_context(|| {
                            format!("truncating {} to the checkpoint", p.display())
                        })?;
                    }
                    jsonl_file = Some(f.try_clone()?);
                    jsonl = Some(Box::new(std::io::BufWriter::new(f)));
                }
                None => jsonl = Some(Box::new(std::io::stdout())),
            }
        }
        Ok(StreamSinks {
            rt,
            cassandra,
            pending: None,
            last_write: None,
            _cancel: cancel,
            jsonl,
            jsonl_file,
            kafka: kinds.contains(&SinkKind::Kafka),
        })
    }

    /// Waits until the Cassandra write in flight, if any, is durable.
    /// During a Cassandra outage it retries until the outage ends or the
    /// job is told to stop (then the write is given up and this fails, so
    /// nothing after the last checkpoint is committed).
    pub fn settle(&mut self) -> Result<()> {
        if let (Some(handle), Some(rt)) = (self.pending.take(), &self.rt) {
            let took = rt
                .block_on(handle)
                .context("the Cassandra write task failed")??;
            self.last_write = Some(took);
        }
        Ok(())
    }

    /// Milliseconds the last finished Cassandra write took.
    pub fn last_write_ms(&self) -> Option<f64> {
        self.last_write.map(|d| d.as_secs_f64() * 1e3)
    }

    /// Writes one micro-batch: JSON lines and detections at once;
    /// the Cassandra rows in the background, after the previous batch's
    /// (see [`StreamSinks::settle`], which checkpoints call first). While
    /// Cassandra is down the job consumes at most one more micro-batch,
    /// then waits here.
    pub fn write(
        &mut self,
        raw: Vec<(SensorPacket, bool)>,
        results: Results,
        producer: &Producer,
        cfg: &Config,
    ) -> Result<()> {
        self.settle()?;
        self.write_now(&results, producer, cfg)?;
        if let (Some(rt), Some(sink)) = (&self.rt, &self.cassandra) {
            let sink = sink.clone();
            self.pending = Some(rt.spawn(async move {
                let t = Instant::now();
                let rows: Vec<RawRow<'_>> = raw
                    .iter()
                    .map(|(p, late)| RawRow {
                        packet: p,
                        late: *late,
                    })
                    .collect();
                // The first failure ends the write (the other half is dropped).
                tokio::try_join!(sink.write_raw(&rows), sink.write_results(&results))?;
                Ok(t.elapsed())
            }));
        }
        Ok(())
    }

    /// The sinks other than Cassandra.
    fn write_now(&mut self, results: &Results, producer: &Producer, cfg: &Config) -> Result<()> {
        if let Some(w) = self.jsonl.as_mut() {
            crate::sink::jsonl::write(results, w)?;
            w.flush()?;
            if let Some(f) = &self.jsonl_file {
                f.sync_data().context("fsync of the JSON-lines output")?;
            }
        }
        if self.kafka {
            for e in &results.events {
                let mut line = Vec::new();
                crate::sink::jsonl::write(
                    &Results {
                        events: vec![e.clone()],
                        ..Default::default()
                    },
                    &mut line,
                )?;
                let rec = BaseRecord::<str, [u8]>::to(&cfg.kafka.detections_topic)
                    .key(&e.chain)
                    .payload(line.trim_ascii_end());
                crate::source::kafka::send_waiting(producer, rec, "publishing a detection")?;
            }
        }
        Ok(())
    }

    /// Length of the JSON-lines output file (for the checkpoint).
    pub fn jsonl_len(&mut self) -> Result<Option<u64>> {
        if let Some(w) = self.jsonl.as_mut() {
            w.flush()?;
        }
        Ok(match &self.jsonl_file {
            Some(f) => Some(f.metadata()?.len()),
            None => None,
        })
    }

    /// End of the run: the last Cassandra write settled.
    pub fn close(&mut self) -> Result<()> {
        self.settle()
    }
}
