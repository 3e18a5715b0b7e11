//! Rank 0's sinks (`[sinks] kinds`): the network events to Cassandra,
//! every result to JSON lines (appended and fsynced every micro-batch),
//! the events to Kafka (the detections topic). Raw packets and per-sensor
//! results go to Cassandra from the rank that owns the sensor
//! ([`super::store`]). No sink holds the run's results: HDF5, a file
//! written whole, is refused in stream configs.

use super::store::{RankStore, Written};
use crate::config::{Config, SinkKind};
use crate::output::Results;
use crate::source::kafka::Producer;
use anyhow::{Context, Result};
use rdkafka::producer::BaseRecord;
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub struct StreamSinks {
    /// The network events' writer; it applied the schema.
    cassandra: Option<RankStore>,
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
        let cassandra = if kinds.contains(&SinkKind::Cassandra) {
            let mut c = RankStore::connect(&cfg.cassandra, true, stop, deadline)?;
            // The stations file beside the results (an upsert: a restart
            // rewrites the same rows).
            if !cfg.station_table.is_empty() {
                c.write(
                    Vec::new(),
                    Results {
                        stations: cfg.station_table.iter().cloned().collect(),
                        ..Default::default()
                    },
                )?;
            }
            Some(c)
        } else {
            None
        };
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
            cassandra,
            jsonl,
            jsonl_file,
            kafka: kinds.contains(&SinkKind::Kafka),
        })
    }

    /// Waits until the Cassandra write in flight, if any, is durable
    /// (see [`RankStore::settle`]); returns how long it waited.
    pub fn settle(&mut self) -> Result<std::time::Duration> {
        let Some(c) = self.cassandra.as_mut() else {
            return Ok(std::time::Duration::ZERO);
        };
        let before = c.waited();
        c.settle()?;
        Ok(c.waited().saturating_sub(before))
    }

    /// Milliseconds the last finished Cassandra write took.
    pub fn last_write_ms(&self) -> Option<f64> {
        self.cassandra.as_ref().and_then(RankStore::last_write_ms)
    }

    /// The network events made durable (rank 0's share beside its
    /// sensors').
    pub fn written(&self) -> Written {
        self.cassandra
            .as_ref()
            .map(RankStore::totals)
            .unwrap_or_default()
    }

    /// Whether raw packets are stored (by the ranks that own them).
    pub fn stores_raw(&self) -> bool {
        self.cassandra.is_some()
    }

    /// A writer for rank 0's own sensors, over the same session.
    pub fn rank_store(&self) -> Option<RankStore> {
        self.cassandra.as_ref().map(RankStore::sibling)
    }

    /// Writes one micro-batch: JSON lines and detections at once; the
    /// events to Cassandra in the background, after the previous batch's
    /// (checkpoints call [`StreamSinks::settle`] first). Returns how long
    /// it waited for that previous write.
    pub fn write(
        &mut self,
        results: Results,
        producer: &Producer,
        cfg: &Config,
    ) -> Result<std::time::Duration> {
        self.write_now(&results, producer, cfg)?;
        let Some(c) = self.cassandra.as_mut() else {
            return Ok(std::time::Duration::ZERO);
        };
        let before = c.waited();
        c.write(
            Vec::new(),
            Results {
                events: results.events,
                ..Default::default()
            },
        )?;
        Ok(c.waited().saturating_sub(before))
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
        self.settle().map(drop)
    }
}
