//! One rank's part of a checkpoint (docs/architecture.md, "Checkpoint
//! layout"):
//! the states of the sensors it owns, written by that rank, in parallel
//! with the others, to a file of its own beside the manifest rank 0
//! writes last. Part files are named `<manifest>.g<generation>.r<rank>`;
//! the manifest lists each part with its checksum, so a part that is
//! missing, damaged or from another generation is found at restart.

use crate::h5io::{set_attr, set_str_attr, write_atomic};
use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Also the manifest's format (they change together).
pub const FORMAT_VERSION: i64 = 4;

/// A part as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// File name, in the manifest's directory.
    pub file: String,
    pub rank: u32,
    pub sensors: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// FNV-1a of the state blob.
    pub checksum: u64,
}

pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Where rank `rank` writes its part of generation `generation` of the
/// checkpoint at `manifest`.
pub fn path(manifest: &Path, generation: u64, rank: usize) -> PathBuf {
    let mut s = manifest.as_os_str().to_owned();
    s.push(format!(".g{generation}.r{rank}"));
    PathBuf::from(s)
}

/// The generation of a part file of `manifest`, from its name: only a
/// name [`path`] gives (no sign, no leading zero), so another job's file
/// that merely looks alike is never taken for a part.
pub fn generation_of(manifest: &Path, file: &Path) -> Option<u64> {
    let base = manifest.file_name()?.to_str()?;
    let rest = file.file_name()?.to_str()?.strip_prefix(base)?;
    let (g, r) = rest.strip_prefix(".g")?.split_once(".r")?;
    let (g, r): (u64, usize) = (g.parse().ok()?, r.parse().ok()?);
    (path(manifest, g, r).file_name() == file.file_name()).then_some(g)
}

/// Writes `states` (serialised with postcard; `names` are the sensors,
/// listed for people reading the file) atomically as rank `rank`'s part of
/// generation `generation` of the checkpoint at `manifest`.
pub fn write<T: Serialize + ?Sized>(
    manifest: &Path,
    generation: u64,
    rank: usize,
    names: &[&str],
    states: &T,
) -> Result<Part> {
    let path = path(manifest, generation, rank);
    let blob = postcard::to_stdvec(states).context("serialising the sensor states")?;
    let checksum = fnv1a64(&blob);
    write_atomic(&path, |f| {
        set_attr(f, "format_version", FORMAT_VERSION)?;
        set_attr(f, "rank", rank as u64)?;
        set_attr(f, "generation", generation)?;
        set_attr(f, "checksum", checksum)?;
        set_str_attr(f, "creator", concat!("fakopp ", env!("CARGO_PKG_VERSION")))?;
        let names: Vec<hdf5::types::VarLenUnicode> = names
            .iter()
            .map(|s| s.parse().expect("sensor ids are plain ASCII"))
            .collect();
        f.new_dataset_builder()
            .with_data(&names)
            .create("sensors")?;
        f.new_dataset_builder().with_data(&blob).create("state")?;
        Ok(())
    })
    .with_context(|| format!("writing checkpoint part {}", path.display()))?;
    let bytes = std::fs::metadata(&path)
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    Ok(Part {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        rank: rank as u32,
        sensors: names.len() as u64,
        bytes,
        checksum,
    })
}

/// A checkpoint file's `/state`, checked against `checksum` and decoded
/// (manifests and parts alike).
pub fn read_state<T: DeserializeOwned>(f: &hdf5::File, checksum: u64) -> Result<T> {
    let blob: Vec<u8> = f
        .dataset("state")
        .and_then(|d| d.read_raw())
        .context("no readable /state")?;
    if fnv1a64(&blob) != checksum {
        bail!("checksum mismatch (the file is damaged, or is not the one listed)");
    }
    postcard::from_bytes(&blob).context("undecodable state")
}

/// Reads the part `part` of the manifest in `dir`: it must exist and hold
/// exactly the state the manifest recorded.
pub fn read<T: DeserializeOwned>(dir: &Path, part: &Part) -> Result<T> {
    let path = dir.join(&part.file);
    if !path.exists() {
        bail!("checkpoint part {} is missing", path.display());
    }
    hdf5::File::open(&path)
        .context("cannot open it")
        .and_then(|f| read_state(&f, part.checksum))
        .with_context(|| format!("checkpoint part {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_carry_their_generation() {
        let m = Path::new("/s/ckpt.h5");
        let p = path(m, 12, 3);
        assert_eq!(p, Path::new("/s/ckpt.h5.g12.r3"));
        assert_eq!(generation_of(m, &p), Some(12));
        for other in [
            "/s/ckpt.h5.1",
            "/s/ckpt.h5",
            "/s/x.h5.g1.r0",
            "/s/ckpt.h5.g1.rx",
        ] {
            assert_eq!(generation_of(m, Path::new(other)), None, "{other}");
        }
    }

    #[test]
    fn a_part_reads_back_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("ckpt.h5");
        let states = vec![("A".to_string(), vec![1.5f64, -0.0]), ("B".into(), vec![])];
        let part = write(&m, 1, 0, &["A", "B"], &states).unwrap();
        assert_eq!((part.sensors, part.rank), (2, 0));
        let back: Vec<(String, Vec<f64>)> = read(dir.path(), &part).unwrap();
        assert_eq!(back, states);
        // Another generation's part under this name is not this part.
        let other = Part {
            checksum: part.checksum ^ 1,
            ..part.clone()
        };
        let e = read::<Vec<(String, Vec<f64>)>>(dir.path(), &other).unwrap_err();
        assert!(format!("{e:#}").contains("checksum mismatch"), "{e:#}");
        std::fs::remove_file(dir.path().join(&part.file)).unwrap();
        let e = read::<Vec<(String, Vec<f64>)>>(dir.path(), &part).unwrap_err();
        assert!(format!("{e:#}").contains("is missing"), "{e:#}");
    }
}
