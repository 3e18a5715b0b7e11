//! A whole input file as bytes: memory-mapped when it is a regular file,
//! read otherwise (pipes, `/dev/stdin`).
//!
//! Mapping saves copying the file from the page cache into a fresh buffer
//! (and faulting that buffer in), about a tenth of a batch run over a
//! large MiniSEED archive. The map is populated up front (`MAP_POPULATE`)
//! and read once, in order.
//!
//! The mapping is private, populated read-only and then made writable:
//! libmseed zeroes a miniSEED 3 record's CRC field in place while it checks
//! the CRC (and restores it), and a private mapping copies just that page
//! (the file is never written). Populating it writable instead would copy
//! every page up front.
//!
//! A file truncated by another process while it is mapped would fault
//! (SIGBUS) rather than read short; archives are not written while they
//! are reprocessed, and `fakopp batch --help` says so.

use std::fs::File;
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::Context;

/// The bytes of a file.
pub enum FileBytes {
    Mapped { ptr: *mut libc::c_void, len: usize },
    Read(Vec<u8>),
}

// SAFETY: the mapping is private and owned by this value; it is only
// written transiently by libmseed while it holds the only reference.
unsafe impl Send for FileBytes {}
// SAFETY: shared references only read the mapping (see `Send` above for
// the one writer, which holds the only reference while it writes).
unsafe impl Sync for FileBytes {}

impl FileBytes {
    /// Maps (or reads) the file at `path`.
    pub fn open(path: &Path) -> anyhow::Result<FileBytes> {
        let what = || format!("cannot read input file {}", path.display());
        let file = File::open(path).with_context(what)?;
        let meta = file.metadata().with_context(what)?;
        let len = usize::try_from(meta.len()).with_context(what)?;
        if !meta.is_file() || len == 0 {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut buf).with_context(what)?;
            return Ok(FileBytes::Read(buf));
        }
        // SAFETY: a fresh private read-only mapping of an open file; the
        // kernel checks the arguments and we check the result.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            // Filesystems that cannot map: read the file instead.
            return std::fs::read(path).map(FileBytes::Read).with_context(what);
        }
        // Writable only now: populating a writable private mapping would
        // copy every page up front (breaking copy-on-write); this way only
        // the pages libmseed writes to are copied.
        // SAFETY: `ptr` is a mapping of `len` bytes that we own.
        if unsafe { libc::mprotect(ptr, len, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
            // SAFETY: unmapping the mapping made above.
            unsafe { libc::munmap(ptr, len) };
            return std::fs::read(path).map(FileBytes::Read).with_context(what);
        }
        // SAFETY: `ptr` is a mapping of `len` bytes; the advice is a hint.
        unsafe { libc::madvise(ptr, len, libc::MADV_SEQUENTIAL) };
        Ok(FileBytes::Mapped { ptr, len })
    }
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: the mapping lives as long as `self`; libmseed's CRC check
            // writes a field and restores it before returning.
            FileBytes::Mapped { ptr, len } => unsafe {
                std::slice::from_raw_parts(*ptr as *const u8, *len)
            },
            FileBytes::Read(v) => v,
        }
    }
}

impl Drop for FileBytes {
    fn drop(&mut self) {
        if let FileBytes::Mapped { ptr, len } = *self {
            // SAFETY: unmapping the mapping this value owns, once.
            unsafe { libc::munmap(ptr, len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_and_read_files_give_the_same_bytes() {
        let dir = std::env::temp_dir().join(format!("fakopp-mapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.bin");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let m = FileBytes::open(&path).unwrap();
        assert!(matches!(m, FileBytes::Mapped { .. }));
        assert_eq!(&m[..], &data[..]);
        let empty = dir.join("empty.bin");
        std::fs::write(&empty, b"").unwrap();
        assert!(FileBytes::open(&empty).unwrap().is_empty());
        let err = FileBytes::open(&dir.join("missing.bin")).err().unwrap();
        assert!(format!("{err:#}").contains("missing.bin"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
