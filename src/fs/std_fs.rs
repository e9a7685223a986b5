//! The real file system: `std::fs` plus `memmap2` for read-only maps.
#![allow(unsafe_code)]

use std::fs::{self, OpenOptions};
use std::io;
#[cfg(unix)]
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::{File, FileLock, FileSystem, OpenMode};

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

impl StdFs {
    /// A handle to the real file system.
    pub fn new() -> Self {
        StdFs
    }
}

#[derive(Debug)]
struct StdFile {
    file: fs::File,
}

impl FileSystem for StdFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let mut opts = OpenOptions::new();
        match mode {
            OpenMode::Read => opts.read(true),
            OpenMode::ReadWrite => opts.read(true).write(true),
            OpenMode::Create => opts.read(true).write(true).create(true),
            OpenMode::CreateNew => opts.read(true).write(true).create_new(true),
        };
        Ok(Arc::new(StdFile {
            file: opts.open(path)?,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            // Names that are not UTF-8 were not written by topiclog; skip them.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        fs::File::open(path)?.sync_all()
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(stat(path)?.is_some())
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        Ok(stat(path)?.is_some_and(|m| m.is_dir()))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // flock(2): conflicts between open file descriptions, so a second open in the same process
        // fails too; the kernel drops it when the holder dies, so a crash leaves no stale lock.
        match file.try_lock() {
            Ok(()) => Ok(Box::new(StdLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "lock is held by another handle",
            )),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(not(unix))]
fn unsupported(_len: usize, _pos: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "topiclog supports Unix-like systems only",
    )
}

/// Holds the locked file open; closing it releases the lock.
#[derive(Debug)]
struct StdLock {
    _file: fs::File,
}

impl FileLock for StdLock {}

impl File for StdFile {
    // Elsewhere the crate does not build (see the `compile_error!` in lib.rs); these arms only
    // keep that error the one a non-Unix build reports.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        #[cfg(unix)]
        return self.file.read_at(buf, pos);
        #[cfg(not(unix))]
        return Err(unsupported(buf.len(), pos));
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        #[cfg(unix)]
        return self.file.write_all_at(buf, pos);
        #[cfg(not(unix))]
        return Err(unsupported(buf.len(), pos));
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn modified_ms(&self) -> io::Result<Option<i64>> {
        let modified = self.file.metadata()?.modified()?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as i64))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn map_readonly(&self, len: u64) -> io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "map larger than memory"))?;
        // SAFETY: the map is read-only, and the caller (see `File::map_readonly`) guarantees the file
        // is not shrunk below `len` while the map is alive: topiclog maps only sealed segment and
        // index files, which are replaced by rename (the old inode stays valid) rather than
        // truncated. Concurrent modification by other processes is outside topiclog's contract, as
        // it is for every storage engine that owns its directory.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&self.file)? };
        Ok(Bytes::from_owner(map))
    }

    fn map_growing(&self, len: u64) -> io::Result<Option<Bytes>> {
        if len == 0 {
            return Ok(None);
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "map larger than memory"))?;
        // SAFETY: a read-only shared mapping; it may extend past the end of the file, which Linux
        // allows. The caller (see `File::map_growing`) reads only below the file's current length,
        // so no page past the end of the file is ever touched, and it never shrinks the file under
        // bytes being read: the active segment is truncated by copy-and-rename (the mapped inode
        // keeps its length) and only its never-read preallocated tail is trimmed in place.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&self.file)? };
        Ok(Some(Bytes::from_owner(map)))
    }
}

/// `stat(2)` of `path`: `None` if nothing is there; any other failure (EIO, EACCES, ...) is an
/// error, never "absent".
fn stat(path: &Path) -> io::Result<Option<fs::Metadata>> {
    super::found(fs::metadata(path))
}
