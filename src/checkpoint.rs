//! HDF5 checkpoints of the stream job (layout in `schemas/hdf5.md`).
//!
//! A checkpoint holds everything needed to resume exactly: the Kafka
//! offsets to read next, every sensor's chain state (filter sections,
//! STA/LTA accumulators, trigger and QC state), the reorder buffers with
//! packets not yet processed, the network-event state, the sensor→rank
//! assignment and how far the JSON-lines output had got. It is written
//! atomically (temporary file, fsync, rename, fsync of the directory); the
//! previous `keep` checkpoints stay beside it as `<path>.1`, `<path>.2`, ...
//! and are used, with a warning, when the newest fails its checksum.

use crate::h5io::{set_str_attr, str_attr};
use crate::stream::work::SensorState;
use crate::stream::{Reorder, StreamEvents};
use anyhow::{bail, Context, Result};
use hdf5::H5Type;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// 3: bounded stream state (incremental coincidence, sized reorder tails,
/// retired sensors, partition clocks); older checkpoints are refused with
/// a message naming both versions.
pub const FORMAT_VERSION: i64 = 3;

/// The resumable state of a stream job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Hash of the chains and coincidence sections it was made with.
    pub config_hash: u64,
    /// Ranks of the job that wrote it (informational: states are per
    /// sensor and are redistributed over any number of ranks).
    pub ranks: usize,
    pub topic: String,
    /// Next offset to read, per partition.
    pub offsets: BTreeMap<i32, i64>,
    pub sensors: Vec<(String, SensorState)>,
    pub reorder: Reorder,
    pub events: StreamEvents,
    /// Bytes of the JSON-lines output that belong to this state.
    pub jsonl_len: Option<u64>,
    pub micro_batches: u64,
    pub created_ns: i64,
    /// How long writing the previous checkpoint took (ms), for operators.
    pub write_ms: f64,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct OffsetRow {
    partition: i32,
    offset: i64,
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// `<path>.k` (k ≥ 1) for older checkpoints.
fn older(path: &Path, k: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{k}"));
    PathBuf::from(s)
}

impl Checkpoint {
    /// Writes the checkpoint (atomically), keeping `keep` older ones;
    /// returns the file's size in bytes.
    pub fn write(&self, path: &Path, keep: usize, nth: u64) -> Result<u64> {
        let blob = postcard::to_stdvec(self).context("serialising the checkpoint")?;
        let checksum = fnv1a64(&blob);
        crate::fsutil::ensure_parent(path)?;
        let tmp = crate::fsutil::temp_path(path);
        let result = (|| -> Result<()> {
            let f = hdf5::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            f.new_attr::<i64>()
                .create("format_version")?
                .write_scalar(&FORMAT_VERSION)?;
            f.new_attr::<u64>()
                .create("config_hash")?
                .write_scalar(&self.config_hash)?;
            f.new_attr::<u64>()
                .create("ranks")?
                .write_scalar(&(self.ranks as u64))?;
            f.new_attr::<u64>()
                .create("micro_batches")?
                .write_scalar(&self.micro_batches)?;
            f.new_attr::<i64>()
                .create("created_ns")?
                .write_scalar(&self.created_ns)?;
            f.new_attr::<u64>()
                .create("checksum")?
                .write_scalar(&checksum)?;
            f.new_attr::<u64>()
                .create("state_bytes")?
                .write_scalar(&(blob.len() as u64))?;
            f.new_attr::<f64>()
                .create("previous_write_ms")?
                .write_scalar(&self.write_ms)?;
            set_str_attr(&f, "creator", concat!("fakopp ", env!("CARGO_PKG_VERSION")))?;
            set_str_attr(&f, "topic", &self.topic)?;
            let rows: Vec<OffsetRow> = self
                .offsets
                .iter()
                .map(|(&partition, &offset)| OffsetRow { partition, offset })
                .collect();
            f.new_dataset_builder()
                .with_data(&rows)
                .create("kafka_offsets")?;
            let names: Vec<hdf5::types::VarLenUnicode> = self
                .sensors
                .iter()
                .map(|(s, _)| s.parse().expect("sensor ids are plain ASCII"))
                .collect();
            f.new_dataset_builder()
                .with_data(&names)
                .create("sensors")?;
            if crate::fault::hit("checkpoint_write", nth) {
                f.flush()?;
                // SAFETY: raising a signal on ourselves has no memory effects.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            f.new_dataset_builder().with_data(&blob).create("state")?;
            f.flush()?;
            f.close()?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // Rotate older checkpoints, newest last into place.
        for k in (1..keep).rev() {
            let from = older(path, k);
            if from.exists() {
                std::fs::rename(&from, older(path, k + 1))?;
            }
        }
        if keep > 0 && path.exists() {
            std::fs::rename(path, older(path, 1))?;
        }
        let bytes = std::fs::metadata(&tmp)
            .with_context(|| format!("cannot stat {}", tmp.display()))?
            .len();
        crate::fsutil::commit(&tmp, path)?;
        Ok(bytes)
    }

    /// Reads one checkpoint file, verifying its checksum.
    pub fn read(path: &Path) -> Result<Checkpoint> {
        let f = hdf5::File::open(path)
            .with_context(|| format!("cannot open checkpoint {}", path.display()))?;
        let version: i64 = f.attr("format_version")?.read_scalar()?;
        if version != FORMAT_VERSION {
            bail!(
                "{}: checkpoint format {version}, this fakopp reads {FORMAT_VERSION}",
                path.display()
            );
        }
        let stored: u64 = f.attr("checksum")?.read_scalar()?;
        let blob: Vec<u8> = f
            .dataset("state")
            .context("no /state dataset")?
            .read_raw()?;
        if fnv1a64(&blob) != stored {
            bail!(
                "{}: checksum mismatch (the file is damaged)",
                path.display()
            );
        }
        let _ = str_attr(&f, "topic");
        postcard::from_bytes(&blob)
            .with_context(|| format!("{}: undecodable state", path.display()))
    }

    /// The newest readable checkpoint among `path`, `path.1`, ...; a
    /// damaged one is skipped with a warning. `None` if there is no file;
    /// an error if there are files but none is usable (starting afresh
    /// then would silently lose state: that takes `--reset-state`).
    pub fn latest(path: &Path, keep: usize) -> Result<Option<(Checkpoint, PathBuf)>> {
        let mut damaged = Vec::new();
        for k in 0..=keep {
            let p = if k == 0 {
                path.to_path_buf()
            } else {
                older(path, k)
            };
            if !p.exists() {
                continue;
            }
            match Checkpoint::read(&p) {
                Ok(c) => return Ok(Some((c, p))),
                Err(e) => {
                    tracing::warn!("skipping checkpoint: {e:#}");
                    damaged.push(p.display().to_string());
                }
            }
        }
        if !damaged.is_empty() {
            bail!(
                "no usable checkpoint ({} damaged); to start over from the consumer group's \
                 committed offsets with fresh state, run with --reset-state",
                damaged.join(", ")
            );
        }
        Ok(None)
    }
}
