//! HDF5 files written atomically: a temporary file beside the target,
//! fsync, rename, fsync of the directory. A crash leaves either the old
//! file or the new one, never half of one.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Creates `path` by running `fill` on a fresh HDF5 file, then moves it
/// into place atomically. On error the temporary file is removed and any
/// existing `path` is left untouched.
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&hdf5::File) -> Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let tmp = temp_path(path);
    let result = (|| {
        let file = hdf5::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        fill(&file)?;
        file.flush().context("HDF5 flush")?;
        file.close().context("HDF5 close")?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("fsync {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).with_context(|| format!("fsync {}", dir.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes a string attribute on a group or dataset.
pub fn set_str_attr(loc: &hdf5::Location, name: &str, value: &str) -> Result<()> {
    let v: hdf5::types::VarLenUnicode = value.parse().map_err(|e| anyhow::anyhow!("attribute {name}: {e:?}"))?;
    loc.new_attr::<hdf5::types::VarLenUnicode>()
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .with_context(|| format!("writing attribute {name}"))
}

/// Reads a string attribute written by [`set_str_attr`].
pub fn str_attr(loc: &hdf5::Location, name: &str) -> Result<String> {
    let v: hdf5::types::VarLenUnicode =
        loc.attr(name).and_then(|a| a.read_scalar()).with_context(|| format!("reading attribute {name}"))?;
    Ok(v.as_str().to_owned())
}
