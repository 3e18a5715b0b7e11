//! HDF5 checkpoints of the stream job (layout in `schemas/hdf5.md`).
//!
//! A checkpoint holds everything needed to resume exactly: the Kafka
//! offsets to read next, every sensor's chain state (filter sections,
//! STA/LTA accumulators, trigger and QC state), the reorder buffers with
//! packets not yet processed, the network-event state and how far the
//! JSON-lines output had got. The sensor states are in parts, one per
//! rank, each written by its rank ([`super::part`]); this manifest, which
//! rank 0 writes once every part is durable, holds the rest and lists the
//! parts with their checksums. It is written atomically (temporary file,
//! fsync, rename, fsync of the directory); the previous `keep` manifests
//! stay beside it as `<path>.1`, `<path>.2`, ... with their parts, and are
//! used, with a warning, when the newest or one of its parts fails its
//! checksum.

use super::events::StreamEvents;
use super::part::{self, fnv1a64, Part, FORMAT_VERSION};
use super::reorder::Reorder;
use super::work::SensorState;
use crate::h5io::{set_attr, set_str_attr};
use anyhow::{bail, Context, Result};
use hdf5::H5Type;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Sensor states by sensor, as a part holds them.
pub type States = Vec<(String, SensorState)>;

/// The resumable state of a stream job, but for the sensor states (in
/// [`Checkpoint::parts`]). Format 4: states in parts; 3 and older are
/// refused with a message naming both versions.
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
    /// Counts the checkpoints of a job's lineage (continued on resume);
    /// names the parts.
    pub generation: u64,
    /// One per rank of the job that wrote it.
    pub parts: Vec<Part>,
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

/// The `k`-th newest manifest: `path` itself, then `<path>.k`.
fn manifest(path: &Path, k: usize) -> PathBuf {
    if k == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{k}"));
    PathBuf::from(s)
}

/// A temporary file (`fsutil::temp_path`) of a checkpoint write that was
/// killed: once a manifest is committed no write of this job is in
/// progress (every part is committed before it), and one job owns a path.
fn is_stale_temp(path: &Path, name: &str) -> bool {
    let Some((stem, pid)) = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp"))
        .and_then(|n| n.rsplit_once('.'))
    else {
        return false;
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    path.file_name().and_then(|n| n.to_str()) == Some(stem)
        || part::generation_of(path, &crate::fsutil::parent_dir(path).join(stem)).is_some()
}

impl Checkpoint {
    /// Writes the manifest (atomically), keeping `keep` older ones, then
    /// removes the parts no kept manifest can list; returns the bytes of
    /// the manifest and its parts.
    pub fn write(&self, path: &Path, keep: usize, nth: u64) -> Result<u64> {
        // Every rank writes its own part: one on a disk rank 0 cannot see
        // would only show at the restart that needs it.
        let dir = crate::fsutil::parent_dir(path);
        for p in &self.parts {
            let seen = std::fs::metadata(dir.join(&p.file)).map(|m| m.len()).ok();
            if seen != Some(p.bytes) {
                bail!(
                    "rank {}'s checkpoint part {} is not visible to rank 0 ({}); checkpoint.path \
                     must be on a file system every rank sees",
                    p.rank,
                    dir.join(&p.file).display(),
                    match seen {
                        Some(n) => format!("{n} bytes, not {}", p.bytes),
                        None => "missing".into(),
                    }
                );
            }
        }
        let blob = postcard::to_stdvec(self).context("serialising the checkpoint")?;
        let fill = |f: &hdf5::File| -> Result<()> {
            set_attr(f, "format_version", FORMAT_VERSION)?;
            set_attr(f, "config_hash", self.config_hash)?;
            set_attr(f, "ranks", self.ranks as u64)?;
            set_attr(f, "generation", self.generation)?;
            set_attr(f, "micro_batches", self.micro_batches)?;
            set_attr(f, "created_ns", self.created_ns)?;
            set_attr(f, "checksum", fnv1a64(&blob))?;
            set_attr(f, "state_bytes", blob.len() as u64)?;
            set_attr(f, "previous_write_ms", self.write_ms)?;
            set_str_attr(f, "creator", concat!("fakopp ", env!("CARGO_PKG_VERSION")))?;
            set_str_attr(f, "topic", &self.topic)?;
            let rows: Vec<OffsetRow> = self
                .offsets
                .iter()
                .map(|(&partition, &offset)| OffsetRow { partition, offset })
                .collect();
            f.new_dataset_builder()
                .with_data(&rows)
                .create("kafka_offsets")?;
            let files: Vec<hdf5::types::VarLenUnicode> = self
                .parts
                .iter()
                .map(|p| p.file.parse().expect("part names are plain ASCII"))
                .collect();
            f.new_dataset_builder().with_data(&files).create("parts")?;
            if crate::fault::hit("checkpoint_write", nth) {
                f.flush()?;
                // SAFETY: raising a signal on ourselves has no memory effects.
                unsafe { libc::raise(libc::SIGKILL) };
            }
            f.new_dataset_builder().with_data(&blob).create("state")?;
            Ok(())
        };
        // Older manifests move down one, newest last, once the new one is
        // complete.
        let rotate = || -> Result<()> {
            for k in (0..keep).rev() {
                let from = manifest(path, k);
                if from.exists() {
                    std::fs::rename(&from, manifest(path, k + 1))?;
                }
            }
            Ok(())
        };
        crate::h5io::write_atomic_then(path, fill, rotate)?;
        let bytes = std::fs::metadata(path)
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len();
        Self::remove_stale_parts(path, keep);
        Ok(bytes + self.parts.iter().map(|p| p.bytes).sum::<u64>())
    }

    /// Removes the part files no kept manifest (`path`, `path.1`, …,
    /// `path.keep`) lists: those of older generations, of a job with more
    /// ranks, of a manifest that was never committed; and the temporary
    /// files of writes that were killed. A manifest that
    /// cannot be read keeps nothing (it cannot be resumed). A failure only
    /// leaves a file behind.
    fn remove_stale_parts(path: &Path, keep: usize) {
        let mut listed = std::collections::BTreeSet::new();
        for k in 0..=keep {
            let m = manifest(path, k);
            let files = hdf5::File::open(&m)
                .and_then(|f| f.dataset("parts"))
                .and_then(|d| d.read_raw::<hdf5::types::VarLenUnicode>());
            if let Ok(files) = files {
                listed.extend(files.into_iter().map(|f| f.as_str().to_owned()));
            }
        }
        let Ok(entries) = std::fs::read_dir(crate::fsutil::parent_dir(path)) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let unlisted = part::generation_of(path, &p).is_some() && !listed.contains(&name);
            if unlisted || is_stale_temp(path, &name) {
                if let Err(err) = std::fs::remove_file(&p) {
                    tracing::warn!("cannot remove old checkpoint file {}: {err}", p.display());
                }
            }
        }
    }

    /// The newest generation any part file of `path` has: a new lineage
    /// (a fresh start, a fallback) numbers its checkpoints above it, so it
    /// never overwrites a part some kept manifest may list.
    pub fn newest_generation(path: &Path) -> u64 {
        std::fs::read_dir(crate::fsutil::parent_dir(path))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| part::generation_of(path, &e.path()))
            .max()
            .unwrap_or(0)
    }

    /// After a fallback to `path.k`: the newer manifests that failed are
    /// moved aside (`path.damaged.1`, …) and the one used becomes `path`,
    /// so the next checkpoint's rotation keeps it rather than pushing it
    /// out behind the damaged ones.
    pub fn promote(path: &Path, used: &Path, keep: usize) -> Result<()> {
        if used == path {
            return Ok(());
        }
        for k in 0..=keep {
            let m = manifest(path, k);
            if m == used {
                break;
            }
            if m.exists() {
                let mut aside = path.as_os_str().to_owned();
                aside.push(format!(".damaged.{}", k + 1));
                std::fs::rename(&m, PathBuf::from(aside))
                    .with_context(|| format!("moving aside {}", m.display()))?;
            }
        }
        std::fs::rename(used, path)
            .with_context(|| format!("rename {} to {}", used.display(), path.display()))?;
        crate::fsutil::sync_parent_dir(path)
    }

    /// Reads one manifest and its parts, verifying every checksum: the
    /// checkpoint and the sensor states of all its ranks. Errors name the
    /// file.
    pub fn read(path: &Path) -> Result<(Checkpoint, States)> {
        let c =
            Self::read_manifest(path).with_context(|| format!("checkpoint {}", path.display()))?;
        let dir = crate::fsutil::parent_dir(path);
        let mut sensors = Vec::new();
        for p in &c.parts {
            sensors.extend(part::read::<States>(&dir, p)?);
        }
        Ok((c, sensors))
    }

    fn read_manifest(path: &Path) -> Result<Checkpoint> {
        let f = hdf5::File::open(path).context("cannot open it")?;
        let version: i64 = f
            .attr("format_version")
            .and_then(|a| a.read_scalar())
            .context("no format_version: not a fakopp checkpoint")?;
        if version != FORMAT_VERSION {
            bail!("checkpoint format {version}, this fakopp reads {FORMAT_VERSION}");
        }
        let stored: u64 = f.attr("checksum")?.read_scalar()?;
        part::read_state(&f, stored)
    }

    /// The newest readable checkpoint among `path`, `path.1`, ...; a
    /// damaged one (manifest or part) is skipped with a warning. `None` if there is no file;
    /// an error if there are files but none is usable (starting afresh
    /// then would silently lose state: that takes `--reset-state`).
    pub fn latest(path: &Path, keep: usize) -> Result<Option<(Checkpoint, States, PathBuf)>> {
        let mut damaged = Vec::new();
        for k in 0..=keep {
            let p = manifest(path, k);
            if !p.exists() {
                continue;
            }
            match Checkpoint::read(&p) {
                Ok((c, sensors)) => return Ok(Some((c, sensors, p))),
                Err(e) => {
                    tracing::warn!("skipping checkpoint: {e:#}");
                    damaged.push(format!("{e:#}"));
                }
            }
        }
        if !damaged.is_empty() {
            bail!(
                "no usable checkpoint ({}); to start over from the consumer group's \
                 committed offsets with fresh state, run with --reset-state",
                damaged.join("; ")
            );
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Mode};

    fn state(rate: f64) -> SensorState {
        SensorState {
            sample_rate_hz: rate,
            chains: Vec::new(),
            next_ns: 7,
            seg_start_ns: 0,
            seg_samples: 3,
            gaps: 0,
        }
    }

    /// Generation `g` of a two-rank job: its parts, then its manifest.
    fn checkpoint(m: &Path, g: u64, keep: usize) {
        let cfg = Config::parse(
            "[source]\nkind = \"kafka\"\n[sinks]\nkinds = [\"jsonl\"]\n",
            Path::new("t.toml"),
            Mode::Stream,
        )
        .unwrap();
        let parts = (0..2)
            .map(|r| {
                let name = format!("S{g}.{r}");
                let states = vec![(name.clone(), state(g as f64))];
                part::write(m, g, r, &[name.as_str()], &states).unwrap()
            })
            .collect();
        Checkpoint {
            config_hash: 1,
            ranks: 2,
            topic: "t".into(),
            offsets: BTreeMap::from([(0, g as i64)]),
            generation: g,
            parts,
            reorder: Reorder::new(1.0, 0, 10),
            events: StreamEvents::new(&cfg).unwrap(),
            jsonl_len: None,
            micro_batches: g,
            created_ns: 0,
            write_ms: 0.0,
        }
        .write(m, keep, g)
        .unwrap();
    }

    fn part_files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".g"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_ranks_part_comes_back_and_a_damaged_part_falls_back_a_generation() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("ckpt.h5");
        for g in 1..=3 {
            checkpoint(&m, g, 1);
        }
        // Manifests 3 and 2 are kept, so are their parts; 1's are gone.
        assert_eq!(
            part_files(dir.path()),
            [
                "ckpt.h5.g2.r0",
                "ckpt.h5.g2.r1",
                "ckpt.h5.g3.r0",
                "ckpt.h5.g3.r1"
            ]
        );
        let (c, sensors, p) = Checkpoint::latest(&m, 1).unwrap().unwrap();
        assert_eq!(
            (c.generation, c.offsets[&0], p.as_path()),
            (3, 3, m.as_path())
        );
        let names: Vec<&str> = sensors.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["S3.0", "S3.1"]);
        assert_eq!(sensors[1].1.seg_samples, 3);

        // Rank 1's part replaced by other content: generation 2 is used.
        let other = vec![("S3.1".to_string(), state(99.0))];
        part::write(&m, 3, 1, &["S3.1"], &other).unwrap();
        let (c, sensors, p) = Checkpoint::latest(&m, 1).unwrap().unwrap();
        assert_eq!((c.generation, &p), (2, &dir.path().join("ckpt.h5.1")));
        assert_eq!(sensors.len(), 2);
        assert!(sensors.iter().all(|(_, s)| s.sample_rate_hz == 2.0));

        // Resuming from it puts it first, the damaged one aside, and the
        // next checkpoint numbers above every part on disk (4, not 3):
        // the one resumed stays usable behind it.
        Checkpoint::promote(&m, &p, 1).unwrap();
        assert!(dir.path().join("ckpt.h5.damaged.1").exists());
        assert_eq!(Checkpoint::newest_generation(&m), 3);
        checkpoint(&m, 4, 1);
        assert_eq!(
            part_files(dir.path()),
            [
                "ckpt.h5.g2.r0",
                "ckpt.h5.g2.r1",
                "ckpt.h5.g4.r0",
                "ckpt.h5.g4.r1"
            ]
        );
        std::fs::remove_file(part::path(&m, 4, 0)).unwrap();
        let (c, _, _) = Checkpoint::latest(&m, 1).unwrap().unwrap();
        assert_eq!(c.generation, 2);

        // With both generations' parts gone there is nothing to resume.
        std::fs::remove_file(part::path(&m, 2, 0)).unwrap();
        let e = Checkpoint::latest(&m, 1).unwrap_err();
        assert!(format!("{e:#}").contains("no usable checkpoint"), "{e:#}");
    }

    #[test]
    fn a_part_rank_0_cannot_see_stops_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("ckpt.h5");
        checkpoint(&m, 1, 1);
        let (mut c, _, _) = Checkpoint::latest(&m, 1).unwrap().unwrap();
        c.generation = 2;
        c.parts[1].file = "ckpt.h5.g2.r1".into();
        let e = c.write(&m, 1, 2).unwrap_err();
        assert!(
            format!("{e:#}").contains("rank 1's checkpoint part")
                && format!("{e:#}").contains("every rank sees"),
            "{e:#}"
        );
        // Nothing was committed: generation 1 is still the newest.
        assert_eq!(Checkpoint::latest(&m, 1).unwrap().unwrap().0.generation, 1);
    }

    #[test]
    fn an_older_format_is_named_not_called_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("ckpt.h5");
        crate::h5io::write_atomic(&m, |f| {
            f.new_attr::<i64>()
                .create("format_version")?
                .write_scalar(&3i64)?;
            Ok(())
        })
        .unwrap();
        let e = format!("{:#}", Checkpoint::latest(&m, 2).unwrap_err());
        assert!(
            e.contains("no usable checkpoint")
                && e.contains(&format!(
                    "checkpoint {}: checkpoint format 3, this fakopp reads 4",
                    m.display()
                ))
                && e.contains("--reset-state"),
            "{e}"
        );
    }

    #[test]
    fn temporary_files_of_killed_writes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("ckpt.h5");
        let names = [
            ".ckpt.h5.g1.r1.4242.tmp",
            ".ckpt.h5.4242.tmp",
            ".other.h5.4242.tmp",
            ".ckpt.h5.g1.rx.4242.tmp",
            ".ckpt.h5.1.4242.tmp",
        ];
        for n in names {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        checkpoint(&m, 1, 1);
        let left: Vec<bool> = names.iter().map(|n| dir.path().join(n).exists()).collect();
        assert_eq!(left, [false, false, true, true, true]);
    }
}
