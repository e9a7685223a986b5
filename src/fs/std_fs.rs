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

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        fs::hard_link(original, link)
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

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        lock::try_lock(path)
    }

    fn map_shared_page(&self, path: &Path) -> io::Result<Option<super::SharedPage>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = crate::tail::PAGE_LEN as u64;
        if file.metadata()?.len() < len {
            file.set_len(len)?;
        }
        super::SharedPage::map(&file).map(Some)
    }
}

impl StdFs {
    /// Who holds the directory lock at `path`, if anyone: this process (`pid: None`) or another
    /// one. Takes no lock and writes nothing; safe while this process holds the lock (it never
    /// opens a lock file this process holds, which would drop the lock when closed).
    pub(crate) fn lock_holder(path: &Path) -> io::Result<Option<super::LockHolder>> {
        lock::holder_of(path)
    }
}

#[cfg(not(unix))]
fn unsupported(_len: usize, _pos: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "topiclog supports Unix-like systems only",
    )
}

/// Directory locks: a POSIX record lock (`fcntl(F_SETLK)`) on the whole lock file, plus a
/// registry of the lock files this process holds.
///
/// Why not `flock(2)` (what `File::try_lock` takes): a flock belongs to the open file
/// description, which every `fork` duplicates, so while any thread of the process spawns a child
/// (until the child's `exec` closes its copy, or for ever in a child that never calls `exec`) the
/// child holds the lock too, and a partition closed and reopened at that moment is refused as
/// already open. A record lock belongs to the process and is not inherited by children (the same
/// lock Kafka takes through `FileChannel.tryLock`, RocksDB and SQLite through `fcntl`).
///
/// Its one trap: closing *any* descriptor of the file drops the process's lock. So the lock file
/// is opened only here, and never while this process holds it: the registry, consulted before
/// opening, answers "held" for a file this process holds, and the descriptor is closed under the
/// registry's lock when the guard drops. (Copying a live store's directory with the lock file
/// *from inside the writing process* would drop its lock; copy from another process.)
#[cfg(unix)]
mod lock {
    use std::collections::BTreeSet;
    use std::fs::{self, OpenOptions};
    use std::io;
    use std::os::fd::AsRawFd;
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use parking_lot::Mutex;

    use super::super::{FileLock, LockHolder};

    /// The lock files this process holds, by (device, inode).
    static HELD: Mutex<BTreeSet<(u64, u64)>> = Mutex::new(BTreeSet::new());

    /// A refusal naming the holder: `pid` as the kernel reports it (`None`: this process), and
    /// when it took the lock, from what it recorded in `file` if that is the same process.
    fn held_elsewhere(pid: Option<i32>, file: Option<&fs::File>) -> io::Error {
        let pid = pid.and_then(|p| u32::try_from(p).ok());
        let since_ms = file.and_then(|f| {
            let mut buf = [0u8; 64];
            let n = std::os::unix::fs::FileExt::read_at(f, &mut buf, 0).ok()?;
            let (recorded, since) = LockHolder::parse_record(&buf[..n])?;
            (Some(recorded) == pid).then_some(since)
        });
        io::Error::new(io::ErrorKind::WouldBlock, LockHolder { pid, since_ms })
    }

    fn whole_file(kind: libc::c_short) -> libc::flock {
        // SAFETY: `flock` is a plain C struct of integers, for which all-zero bytes are valid.
        let mut l: libc::flock = unsafe { std::mem::zeroed() };
        l.l_type = kind;
        l.l_whence = libc::SEEK_SET as libc::c_short;
        l.l_start = 0;
        l.l_len = 0; // to the end of the file, however long it grows
        l
    }

    /// The pid of a process holding a conflicting lock on `file`, if the kernel says.
    fn holder(file: &fs::File) -> Option<i32> {
        let mut l = whole_file(libc::F_WRLCK as libc::c_short);
        // SAFETY: the descriptor is open for the call's duration and `l` is a valid `flock`.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut l) };
        (r == 0 && l.l_type != libc::F_UNLCK as libc::c_short).then_some(l.l_pid)
    }

    pub(super) fn holder_of(path: &Path) -> io::Result<Option<LockHolder>> {
        let held = HELD.lock();
        let m = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if held.contains(&(m.dev(), m.ino())) {
            return Ok(Some(LockHolder {
                pid: None,
                since_ms: None,
            }));
        }
        // Under the registry's lock, so no thread of this process takes the lock while this
        // descriptor is open (closing it would drop that lock).
        let file = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let pid = holder(&file);
        let found = pid.map(|pid| {
            let e = held_elsewhere(Some(pid), Some(&file));
            LockHolder::of(&e).unwrap_or(LockHolder {
                pid: u32::try_from(pid).ok(),
                since_ms: None,
            })
        });
        drop(file);
        drop(held);
        Ok(found)
    }

    pub(super) fn try_lock(path: &Path) -> io::Result<Box<dyn FileLock>> {
        let mut held = HELD.lock();
        // Before opening: a second descriptor of a file this process holds must never be closed.
        match fs::metadata(path) {
            Ok(m) if held.contains(&(m.dev(), m.ino())) => return Err(held_elsewhere(None, None)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let m = file.metadata()?;
        let id = (m.dev(), m.ino());
        if held.contains(&id) {
            // A held lock file was renamed onto `path` since the check above (topiclog never
            // renames lock files). Closing this descriptor would drop the lock: keep it open.
            std::mem::forget(file);
            return Err(held_elsewhere(None, None));
        }
        let l = whole_file(libc::F_WRLCK as libc::c_short);
        // SAFETY: the descriptor is open for the call's duration and `l` is a valid `flock`.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &l) } == -1 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EACCES | libc::EAGAIN) => {
                    Err(held_elsewhere(holder(&file), Some(&file)))
                }
                _ => Err(e),
            };
        }
        // Who holds it, for the refusal another process gets (`pid <pid> since <ms>`); nothing
        // else reads the file, so a failure to record is no reason to refuse the lock.
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let record = LockHolder::record(std::process::id(), since);
        let _ = file
            .set_len(0)
            .and_then(|()| std::os::unix::fs::FileExt::write_all_at(&file, record.as_bytes(), 0));
        held.insert(id);
        Ok(Box::new(StdLock {
            file: Some(file),
            id,
        }))
    }

    /// Holds the locked file open; dropping it closes the file, which releases the lock.
    #[derive(Debug)]
    struct StdLock {
        file: Option<fs::File>,
        id: (u64, u64),
    }

    impl Drop for StdLock {
        fn drop(&mut self) {
            let mut held = HELD.lock();
            // Closed under the registry's lock: a thread that finds the file free opens it only
            // after this close, so the close cannot drop that thread's new lock.
            drop(self.file.take());
            held.remove(&self.id);
        }
    }

    impl FileLock for StdLock {}

    #[cfg(test)]
    mod tests {
        use std::ffi::CString;
        #[cfg(unix)]
        use std::os::unix::ffi::OsStrExt;

        use super::*;

        /// Wait for child `pid`, returning its exit code (`None` if a signal ended it).
        fn reap(pid: libc::pid_t) -> Option<i32> {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer; `pid` is our child.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            assert_eq!(r, pid, "waitpid");
            libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
        }

        #[test]
        fn a_forked_child_does_not_keep_the_lock_after_the_parent_releases_it() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("LOCK");
            let lock = try_lock(&path).unwrap();
            // SAFETY: the child calls only async-signal-safe functions (sleep, _exit).
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // A child that never execs: with flock(2) it would hold the lock as long as it
                // lives.
                unsafe {
                    libc::sleep(30);
                    libc::_exit(0)
                }
            }
            assert!(pid > 0, "fork failed");
            drop(lock);
            let again = try_lock(&path);
            // SAFETY: `pid` is our child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            assert_eq!(reap(pid), None, "the child was killed");
            assert!(again.is_ok(), "the released lock is free: {again:?}");
        }

        #[test]
        fn a_refused_second_lock_in_the_process_keeps_the_first_one_held() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("LOCK");
            let lock = try_lock(&path).unwrap();
            let refused = try_lock(&path).unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
            assert!(refused.to_string().contains("this process"), "{refused}");
            // Another process still sees the lock: the refusal closed no descriptor of the file.
            let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
            let mut query = whole_file(libc::F_WRLCK as libc::c_short);
            // SAFETY: the child calls only async-signal-safe functions (open, fcntl, _exit) on
            // memory prepared before the fork.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                unsafe {
                    let fd = libc::open(c_path.as_ptr(), libc::O_RDWR);
                    let held = fd >= 0
                        && libc::fcntl(fd, libc::F_GETLK, &mut query) == 0
                        && query.l_type == libc::F_WRLCK as libc::c_short;
                    libc::_exit(if held { 0 } else { 1 })
                }
            }
            assert!(pid > 0, "fork failed");
            assert_eq!(reap(pid), Some(0), "another process sees the lock held");
            drop(lock);
            assert!(try_lock(&path).is_ok(), "free once dropped");
        }

        #[test]
        fn another_process_holding_the_lock_is_named_by_pid() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("LOCK");
            let c_path = CString::new(path.as_os_str().as_bytes()).unwrap();
            let l = whole_file(libc::F_WRLCK as libc::c_short);
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            let [ready, go] = fds;
            // SAFETY: the child calls only async-signal-safe functions (open, fcntl, write,
            // sleep, _exit) on memory prepared before the fork.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                unsafe {
                    let fd = libc::open(c_path.as_ptr(), libc::O_RDWR | libc::O_CREAT, 0o644);
                    let ok = fd >= 0 && libc::fcntl(fd, libc::F_SETLK, &l) == 0;
                    libc::write(go, [u8::from(ok)].as_ptr().cast(), 1);
                    libc::sleep(30);
                    libc::_exit(0)
                }
            }
            assert!(pid > 0, "fork failed");
            let mut byte = [0u8];
            // SAFETY: `byte` has room for one byte.
            let n = unsafe { libc::read(ready, byte.as_mut_ptr().cast(), 1) };
            let refused = try_lock(&path);
            // SAFETY: `pid` is our child; the descriptors are ours.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::close(ready);
                libc::close(go);
            }
            reap(pid);
            assert_eq!((n, byte[0]), (1, 1), "the child took the lock");
            let e = refused.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            assert!(e.to_string().contains(&pid.to_string()), "{e}");
            assert!(try_lock(&path).is_ok(), "free once the holder died");
        }
    }
}

#[cfg(not(unix))]
mod lock {
    use std::io;
    use std::path::Path;

    use super::super::{FileLock, LockHolder};

    pub(super) fn try_lock(_path: &Path) -> io::Result<Box<dyn FileLock>> {
        Err(super::unsupported(0, 0))
    }

    pub(super) fn holder_of(_path: &Path) -> io::Result<Option<LockHolder>> {
        Err(super::unsupported(0, 0))
    }
}

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

    fn data_at_or_after(&self, pos: u64) -> io::Result<Option<(u64, u64)>> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::fd::AsRawFd;
            let fd = self.file.as_raw_fd();
            if let Ok(at) = libc::off_t::try_from(pos) {
                // SAFETY: `lseek` on a descriptor this file owns. It moves the file position,
                // which nothing here uses (reads and writes are positioned: `pread`, `pwrite`).
                let start = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
                if start < 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() == Some(libc::ENXIO) {
                        // Only a hole from `pos` to the end of the file (or `pos` past it).
                        return Ok(None);
                    }
                    // EINVAL: the file system does not say; read it all.
                } else {
                    // SAFETY: as above.
                    let end = unsafe { libc::lseek(fd, start, libc::SEEK_HOLE) };
                    let len = self.len()?;
                    let end = u64::try_from(end).map_or(len, |e| e.min(len));
                    return Ok(Some((start as u64, end)));
                }
            }
        }
        let len = self.len()?;
        Ok((pos < len).then_some((pos, len)))
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
