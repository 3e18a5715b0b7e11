//! The stream job's sinks (`[sinks] kinds`): Cassandra (raw packets and
//! results), JSON lines (appended and fsynced every micro-batch), HDF5
//! (the whole run's results, written at the end: replays and tests), and
//! Kafka (network events on the detections topic).

use crate::config::{Config, SinkKind};
use crate::model::SensorPacket;
use crate::output::Results;
use crate::sink::cassandra::{CassandraSink, RawRow};
use anyhow::{Context, Result};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How long a write may still retry after SIGTERM/SIGINT.
const SHUTDOWN_WRITE_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

pub struct StreamSinks {
    rt: Option<tokio::runtime::Runtime>,
    cassandra: Option<CassandraSink>,
    /// Keeps the cancellation channel open for the sink.
    _cancel: Option<tokio::sync::watch::Sender<bool>>,
    jsonl: Option<Box<dyn Write>>,
    jsonl_file: Option<std::fs::File>,
    hdf5: Option<Results>,
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
    ) -> Result<StreamSinks> {
        let kinds = &cfg.sinks.kinds;
        let (mut rt, mut cassandra, mut cancel) = (None, None, None);
        if kinds.contains(&SinkKind::Cassandra) {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("starting the tokio runtime for Cassandra")?;
            let sink = runtime.block_on(CassandraSink::connect(&cfg.cassandra))?;
            let (tx, rx) = tokio::sync::watch::channel(false);
            // SIGTERM during an endless retry (Cassandra down): after a
            // grace period that lets a healthy final write finish, give up
            // the write, and so the commit, instead of hanging past Slurm's
            // kill deadline.
            let watch_stop = Arc::clone(&stop);
            let cancel_tx = tx.clone();
            runtime.spawn(async move {
                while !watch_stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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
            _cancel: cancel,
            jsonl,
            jsonl_file,
            hdf5: kinds.contains(&SinkKind::Hdf5).then(Results::default),
            kafka: kinds.contains(&SinkKind::Kafka),
        })
    }

    /// Writes one micro-batch. Returns only when everything is durable;
    /// during a Cassandra outage it retries (consumption is paused
    /// meanwhile) until the outage ends or the job is told to stop.
    pub fn write(
        &mut self,
        raw: &[(SensorPacket, bool)],
        results: &Results,
        producer: &ThreadedProducer<DefaultProducerContext>,
        cfg: &Config,
    ) -> Result<()> {
        if let (Some(rt), Some(sink)) = (&self.rt, &self.cassandra) {
            let rows: Vec<RawRow<'_>> = raw
                .iter()
                .map(|(p, late)| RawRow {
                    packet: p,
                    late: *late,
                })
                .collect();
            rt.block_on(async {
                let (a, b) = tokio::join!(sink.write_raw(&rows), sink.write_results(results));
                a.and(b)
            })?;
        }
        if let Some(w) = self.jsonl.as_mut() {
            crate::sink::jsonl::write(results, w)?;
            w.flush()?;
            if let Some(f) = &self.jsonl_file {
                f.sync_data().context("fsync of the JSON-lines output")?;
            }
        }
        if let Some(all) = self.hdf5.as_mut() {
            let mut r = results.clone();
            r.qc_tests.clear();
            all.extend(r);
            for t in &results.qc_tests {
                if !all.qc_tests.contains(t) {
                    all.qc_tests.push(t.clone());
                }
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
                producer
                    .send(rec)
                    .map_err(|(e, _)| e)
                    .context("publishing a detection")?;
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

    /// End of the run: the HDF5 results file, if configured.
    pub fn close(&mut self, cfg: &Config) -> Result<()> {
        if let Some(mut all) = self.hdf5.take() {
            all.sort();
            crate::sink::hdf5::write_file(&all, &cfg.sinks.hdf5_path, cfg.chains_hash())?;
        }
        Ok(())
    }
}
