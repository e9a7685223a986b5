//! The file-system seam: every byte topiclog reads or writes goes through [`FileSystem`].
//!
//! Two implementations ship with the crate:
//! - [`StdFs`], the real one (std + memmap2), used by default;
//! - [`SimFs`], an in-memory file system that tracks what has been synced versus merely written and
//!   can "crash", losing unsynced bytes and unsynced directory entries, or fail chosen operations.
//!   Its maps are copies unless [`SimFs::with_mapped_reads`] makes them real shared maps, so the
//!   code under test reads through maps as it does on [`StdFs`].
//!   Tests run the same scenarios over both.
//!
//! # Contract
//! The contract is POSIX's, restated for what topiclog relies on:
//! - a write is durable only after [`File::sync_data`] (or [`File::sync_all`]) on that file returns;
//! - a create, rename or remove is durable only after [`FileSystem::sync_dir`] on the parent directory
//!   returns;
//! - after a failed sync the state of the unsynced data is unknown; callers must not retry the sync
//!   and treat the data as safe.

mod fd_limit;
mod sim;
mod std_fs;

pub use sim::{CrashMode, Fault, FaultOp, SimFs};

pub use crate::tail::SharedPage;
pub use std_fs::StdFs;

pub(crate) use fd_limit::FdReservation;
pub use fd_limit::{descriptor_limits, raise_descriptor_limit, set_raise_descriptor_limit};

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

/// How [`FileSystem::open`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file read-only.
    Read,
    /// Open an existing file for reading and writing.
    ReadWrite,
    /// Open for reading and writing, creating the file if it does not exist.
    Create,
    /// Create a new file for reading and writing; fail with `AlreadyExists` if it exists.
    CreateNew,
}

/// Who holds a directory lock that was refused: what a refused [`FileSystem::try_lock`] carries
/// (inside its `io::Error`), and what [`Error::AlreadyOpen`](crate::Error::AlreadyOpen) names so
/// that an operator knows which process has the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    /// The holding process's id, as the kernel reports it; `None` when the holder is another
    /// handle in this very process.
    pub pid: Option<u32>,
    /// When the holder took the lock, in milliseconds since the Unix epoch, as it recorded in the
    /// lock file; `None` if that is unknown (a holder that recorded nothing, or another process
    /// than the recorded one).
    pub since_ms: Option<i64>,
}

impl LockHolder {
    /// The holder a refused lock's error carries, if it carries one.
    pub fn of(e: &io::Error) -> Option<LockHolder> {
        e.get_ref()?.downcast_ref::<LockHolder>().cloned()
    }

    /// What a lock holder records in its lock file: `pid <pid> since <ms>`.
    pub(crate) fn record(pid: u32, since_ms: i64) -> String {
        format!("pid {pid} since {since_ms}\n")
    }

    /// The `(pid, since_ms)` of a lock file's [`record`](Self::record), if it is one.
    pub(crate) fn parse_record(text: &[u8]) -> Option<(u32, i64)> {
        let text = std::str::from_utf8(text).ok()?;
        let mut words = text.split_ascii_whitespace();
        let (Some("pid"), Some(pid), Some("since"), Some(since)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return None;
        };
        Some((pid.parse().ok()?, since.parse().ok()?))
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            None => f.write_str("another handle in this process")?,
            Some(pid) => write!(f, "process {pid}")?,
        }
        if let Some(ms) = self.since_ms {
            write!(f, " (since {})", crate::clock::format_utc(ms))?;
        }
        Ok(())
    }
}

impl std::error::Error for LockHolder {}

/// A directory tree that topiclog stores its files in.
///
/// Paths are absolute or relative to the process's working directory, exactly as with `std::fs`.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Create `path` and all missing parents. Durable only after `sync_dir` of each parent.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Open a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>>;
    /// Remove a file. Durable after `sync_dir` of its directory.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Remove a directory and everything below it. Durable after `sync_dir` of its parent.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Atomically rename `from` to `to`, replacing `to` if it exists. Durable after `sync_dir` of
    /// both parents.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// The names (not paths) of the entries of a directory, files and directories alike, sorted.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Make the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Whether a file or directory exists at `path`. `Ok(false)` only when nothing is there; a
    /// failed lookup (EIO, EACCES) is an error, so a caller never mistakes it for absence.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// The length of the file at `path`, without keeping it open (a `stat`). The default opens
    /// the file and asks it.
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.open(path, OpenMode::Read)?.len()
    }
    /// Whether `path` is a directory (`Ok(false)` when nothing is there or it is a file); a failed
    /// lookup is an error.
    fn is_dir(&self, path: &Path) -> io::Result<bool>;
    /// Take an exclusive lock on the file at `path` (created if missing), held until the returned
    /// guard is dropped or the process dies. Fails with `ErrorKind::WouldBlock` while anyone else —
    /// another handle in this process or another process — holds it. Child processes do not
    /// inherit it ([`StdFs`] takes a POSIX record lock, see its source for why not `flock`).
    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>>;
    /// Make `link` a new name of the file `original` (a hard link: both names are the same file,
    /// so a write through either shows through both). Fails with `AlreadyExists` if `link`
    /// exists, and with `CrossesDevices` when the two are on different file systems (or
    /// `Unsupported`/`PermissionDenied` where the file system has no hard links): callers that
    /// only want the bytes copy the file then. Durable after `sync_dir` of `link`'s directory.
    ///
    /// The default reports `Unsupported`, so a file system written before this method existed
    /// keeps working (callers copy instead).
    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        let _ = original;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this file system has no hard links: {}", link.display()),
        ))
    }
    /// Map the first 4 KiB of the file at `path` (created if missing, grown to 4 KiB if shorter,
    /// never shrunk) shared and writable: a partition's writer keeps its tail page there, which
    /// read-only processes ([`ReadOnlyStore`](crate::ReadOnlyStore)) follow. `Ok(None)` where the
    /// file system has no memory shared between processes (the default, and [`SimFs`]): then no
    /// other process can follow the partition live. Only [`StdFs`] makes a [`SharedPage`]; a
    /// wrapper around it forwards this call to it.
    fn map_shared_page(&self, path: &Path) -> io::Result<Option<SharedPage>> {
        let _ = path;
        Ok(None)
    }
}

/// A held lock from [`FileSystem::try_lock`]; dropping it releases the lock.
pub trait FileLock: Send + Sync + fmt::Debug {}

/// An open file.
pub trait File: Send + Sync + fmt::Debug {
    /// Read up to `buf.len()` bytes at `pos`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Write all of `buf` at `pos`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// The file's current length.
    fn len(&self) -> io::Result<u64>;
    /// Last modification time in ms since the Unix epoch, where the file system keeps one.
    fn modified_ms(&self) -> io::Result<Option<i64>> {
        Ok(None)
    }
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Set the file's length: truncate, or extend with zeros (sparse where the OS can).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The first range `[start, end)` at or after `pos` that may hold data: everything between
    /// `pos` and `start` is a hole (reads as zeros). `None`: only holes from `pos` to the end of
    /// the file. The default knows of no holes: `pos` to the file's length. Lets a scan for
    /// non-zero bytes skip the unwritten (preallocated) part of a file without reading it.
    fn data_at_or_after(&self, pos: u64) -> io::Result<Option<(u64, u64)>> {
        let len = self.len()?;
        Ok((pos < len).then_some((pos, len)))
    }
    /// Make the file's data (and the size when it changed) durable: `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// Make the file's data and metadata durable: `fsync`.
    fn sync_all(&self) -> io::Result<()>;
    /// Map the first `len` bytes read-only.
    ///
    /// The caller promises that the file is never shrunk below `len` while any part of the returned
    /// `Bytes` is alive (a shrink under a mapping raises SIGBUS on access). topiclog maps only sealed
    /// segment files and replaces, never shrinks, a file that may be mapped.
    fn map_readonly(&self, len: u64) -> io::Result<Bytes>;

    /// Map `len` bytes read-only as a *shared* mapping that follows later writes to the file, for
    /// reading a file that is still being appended to. `len` may exceed the current file length.
    ///
    /// The caller promises to read only bytes below the file's current length (accessing a page
    /// wholly past the end of the file raises SIGBUS), and never to shrink the file below bytes
    /// that are still being read. topiclog maps the active segment this way and reads it only below
    /// its published size, which never exceeds the file length; it truncates a mapped segment by
    /// copying and renaming, never in place. `Ok(None)` where unsupported (the default).
    fn map_growing(&self, len: u64) -> io::Result<Option<Bytes>> {
        let _ = len;
        Ok(None)
    }

    /// Read exactly `buf.len()` bytes at `pos`, or fail with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, pos) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ended before the expected bytes",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// `Some` of what a lookup found; `None` for ENOENT, or ENOTDIR (a file where a directory was
/// expected): nothing is there. Any other failure stays an error, never "absent".
pub(crate) fn found<T>(lookup: io::Result<T>) -> io::Result<Option<T>> {
    match lookup {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Remove the file at `path`; one already gone is fine (an interrupted operation may have
/// removed it, or never made it).
pub(crate) fn remove_if_exists(fs: &dyn FileSystem, path: &Path) -> crate::error::Result<()> {
    match fs.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(crate::Error::io(path, e)),
    }
}

/// Atomically replace `path` with `contents`: write `path.tmp`, sync it, rename it over `path`, sync
/// the directory. A crash at any point leaves either the old or the new contents.
pub(crate) fn write_atomic(fs: &dyn FileSystem, path: &Path, contents: &[u8]) -> io::Result<()> {
    replace_file(fs, path, contents, true)
}

/// Replace `path` with `contents` by writing `path.tmp` and renaming it over `path` (so a map of the
/// old file keeps its inode), syncing the file and then the directory if `durable`. Without
/// `durable` nothing is synced: for derived data (indexes) that the caller syncs later or that
/// recovery rebuilds when a crash loses it.
pub(crate) fn replace_file(
    fs: &dyn FileSystem,
    path: &Path,
    contents: &[u8],
    durable: bool,
) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let file = fs.open(&tmp, OpenMode::Create)?;
        file.set_len(0)?;
        file.write_all_at(contents, 0)?;
        if durable {
            file.sync_all()?;
        }
    }
    fs.rename(&tmp, path)?;
    if durable {
        if let Some(dir) = path.parent() {
            fs.sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Create `dir` and any missing ancestors, and make every new directory entry durable by syncing
/// the parent of each directory created.
pub(crate) fn create_dir_all_durable(fs: &dyn FileSystem, dir: &Path) -> io::Result<()> {
    if fs.is_dir(dir)? {
        return Ok(());
    }
    // The highest missing ancestor: everything below it is new.
    let mut missing = vec![dir];
    let mut cur = dir;
    while let Some(parent) = cur.parent().filter(|p| !p.as_os_str().is_empty()) {
        if fs.is_dir(parent)? {
            break;
        }
        missing.push(parent);
        cur = parent;
    }
    fs.create_dir_all(dir)?;
    for created in missing.iter().rev() {
        match created.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => fs.sync_dir(parent)?,
            None => fs.sync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

/// Read a whole small metadata file: one longer than `max_len` is damage ([`Error::Corrupt`]), not
/// an I/O failure.
pub(crate) fn read_small_file(
    fs: &dyn FileSystem,
    path: &Path,
    max_len: u64,
) -> crate::error::Result<Vec<u8>> {
    match read_all(fs, path, max_len) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(crate::Error::Corrupt {
            path: path.to_owned(),
            position: 0,
            reason: format!("{e}: not a file topiclog wrote"),
        }),
        Err(e) => Err(crate::Error::io(path, e)),
    }
}

/// Read a whole (small) file.
pub(crate) fn read_all(fs: &dyn FileSystem, path: &Path, max_len: u64) -> io::Result<Vec<u8>> {
    let file = fs.open(path, OpenMode::Read)?;
    let len = file.len()?;
    if len > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file is {len} bytes, more than the {max_len} expected"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}
