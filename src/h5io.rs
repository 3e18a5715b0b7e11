//! HDF5 files, written atomically (see `fsutil`), and attribute helpers.

use anyhow::{Context, Result};
use std::path::Path;

/// Turns off HDF5's own file locking (`HDF5_USE_FILE_LOCKING=FALSE`) unless
/// the user set it. Our files have one writer and are replaced by atomic
/// rename, so the locks protect nothing; they fail on parallel filesystems
/// without flock support (Lustre, some NFS), and within one process a
/// lock can outlive a closed file briefly and refuse a re-open (EAGAIN).
pub fn disable_file_locking() {
    if std::env::var_os("HDF5_USE_FILE_LOCKING").is_none() {
        std::env::set_var("HDF5_USE_FILE_LOCKING", "FALSE");
    }
}

/// Creates `path` by running `fill` on a fresh HDF5 file, then moves it
/// into place atomically. On error the temporary file is removed and any
/// existing `path` is left untouched.
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&hdf5::File) -> Result<()>,
{
    write_atomic_then(path, fill, || Ok(()))
}

/// [`write_atomic`], running `before_replace` once the new file is
/// complete and just before it replaces `path` (to rotate older copies).
pub fn write_atomic_then<F, B>(path: &Path, fill: F, before_replace: B) -> Result<()>
where
    F: FnOnce(&hdf5::File) -> Result<()>,
    B: FnOnce() -> Result<()>,
{
    disable_file_locking();
    crate::fsutil::ensure_parent(path)?;
    let tmp = crate::fsutil::temp_path(path);
    let result = (|| {
        let file =
            hdf5::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        fill(&file)?;
        file.flush().context("HDF5 flush")?;
        file.close().context("HDF5 close")?;
        before_replace()?;
        crate::fsutil::commit(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes a scalar attribute on a group or dataset.
pub fn set_attr<T: hdf5::H5Type>(loc: &hdf5::Location, name: &str, value: T) -> Result<()> {
    loc.new_attr::<T>()
        .create(name)
        .and_then(|a| a.write_scalar(&value))
        .with_context(|| format!("writing attribute {name}"))
}

/// Writes a string attribute on a group or dataset.
pub fn set_str_attr(loc: &hdf5::Location, name: &str, value: &str) -> Result<()> {
    let v: hdf5::types::VarLenUnicode = value
        .parse()
        .map_err(|e| anyhow::anyhow!("attribute {name}: {e:?}"))?;
    loc.new_attr::<hdf5::types::VarLenUnicode>()
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .with_context(|| format!("writing attribute {name}"))
}

/// Reads a string attribute written by [`set_str_attr`].
pub fn str_attr(loc: &hdf5::Location, name: &str) -> Result<String> {
    let v: hdf5::types::VarLenUnicode = loc
        .attr(name)
        .and_then(|a| a.read_scalar())
        .with_context(|| format!("reading attribute {name}"))?;
    Ok(v.as_str().to_owned())
}
