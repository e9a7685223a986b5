//! [`SimFs`]: an in-memory, deterministic, crashable [`FileSystem`] for tests.
//!
//! Files and directories track what was written separately from what was made durable, so a
//! simulated crash can lose exactly what a real power loss may lose; see [`SimFs`] for the model.

use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::{File, FileLock, FileSystem, OpenMode};

mod fault;
mod file;
mod map;
mod state;
#[cfg(test)]
mod tests;

pub use fault::{CrashMode, Fault, FaultOp};
use file::{SimFile, SimLock};
use map::{MapKind, Mirror};
use state::*;

/// Id of the root directory.
const ROOT: u64 = 0;
/// The largest file the simulation holds, to turn absurd offsets into errors instead of aborts.
const MAX_FILE_LEN: u64 = 1 << 32;
const STALE_MSG: &str = "stale handle after simulated crash";
const POWER_CUT_MSG: &str = "simulated power cut";

/// An in-memory file system that can crash and fail on demand.
///
/// `SimFs` is a cheap handle: clones share the same files.
///
/// # Model
///
/// Every file is an *inode* with two byte vectors: `data`, what a reader sees now, and `durable`,
/// what survives a crash. [`File::sync_data`] and [`File::sync_all`] copy `data` to `durable`
/// (length included); writes and [`File::set_len`] change `data` only.
///
/// Every directory has two name tables: `entries`, what [`FileSystem::read_dir`] and path lookups
/// see now, and `durable_entries`, what survives a crash. Creates, renames and removes change
/// `entries` only; [`FileSystem::sync_dir`] copies `entries` to `durable_entries`. The root
/// directory always exists. Paths are keyed by their normal components, so `/a/b` and `a/b` name
/// the same file; `.` is ignored and `..` drops the previous component.
///
/// [`SimFs::crash`] simulates a power loss: walking down from the root, every directory's entries
/// become its durable entries (so a directory whose own entry was never made durable vanishes with
/// its subtree), unreachable inodes are dropped, and every file's `data` becomes its `durable`
/// bytes — in [`CrashMode::Torn`] plus a random prefix of the unsynced bytes. Every handle opened
/// before the crash becomes stale and fails every operation.
///
/// Failures are injected deterministically with [`SimFs::inject`] (fail the n-th matching mutating
/// operation) and [`SimFs::power_cut_after`] (fail every mutating operation after the next n), and
/// [`SimFs::mutating_ops`] counts the mutating operations that succeeded, so a test can run a
/// scenario once to count its operations and replay it with a power cut before each of them.
///
/// The torn-write choices come from a small PRNG seeded by [`SimFs::new`], so a run is reproducible
/// from its seed. Files live in memory: `set_len` allocates (there are no sparse files), and a
/// file may not grow beyond 4 GiB (`FileTooLarge`).
///
/// # Maps
///
/// By default [`File::map_readonly`] returns a copy of the bytes and [`File::map_growing`] returns
/// `None`, so the code under test reads through `pread`-style copies. [`SimFs::with_mapped_reads`]
/// makes both return real shared maps instead, so the same code takes the read path it takes on
/// [`StdFs`](super::StdFs), where both map the file. A map that follows later writes cannot be made
/// of immutable `Bytes` copies, and no sound in-memory view exists without `unsafe`; given that,
/// the simulator uses the kernel's: a mapped file is mirrored into a private, already unlinked
/// file (on tmpfs where possible), kept equal to the simulated file by every write and `set_len`, and mapped with `memmap2`
/// exactly as `StdFs` maps real files. So the maps follow writes, may extend past the end of the
/// file, and reading a page wholly past the end raises SIGBUS, as on a real file system.
///
/// Misuse is caught where it happens: while a map (any `Bytes` slice of it) is alive, shrinking
/// the file below a `map_readonly` map's length, or below the bytes written to a file with a
/// `map_growing` map, panics with the file's name (trimming a never-written, preallocated tail is
/// allowed). A crash drops every file's mirror (the process that held the maps is gone): older
/// maps keep what they showed, new ones show the recovered content.
#[derive(Clone, Debug)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl Default for SimFs {
    /// A `SimFs` seeded with 0.
    fn default() -> Self {
        SimFs::new(0)
    }
}

impl SimFs {
    /// An empty file system (just the root directory) whose torn-write choices are drawn from a
    /// PRNG seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SimFs {
            state: Arc::new(Mutex::new(State::new(seed))),
        }
    }

    /// Serve [`File::map_readonly`] and [`File::map_growing`] through real shared maps, so code
    /// under test reads through maps as it does on [`StdFs`](super::StdFs); see "Maps" under
    /// [`SimFs`]. For tests: it needs a writable `/dev/shm` or temp directory, and it makes a
    /// contract-breaking shrink of a mapped file panic.
    ///
    /// # Examples
    /// ```
    /// use std::path::Path;
    /// use topiclog::fs::{FileSystem, OpenMode, SimFs};
    ///
    /// let fs = SimFs::new(1).with_mapped_reads();
    /// let f = fs.open(Path::new("/active.log"), OpenMode::Create)?;
    /// let map = f.map_growing(4096)?.expect("mapped reads are on");
    /// f.write_all_at(b"written after the map was made", 0)?;
    /// assert_eq!(&map[..7], b"written");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_mapped_reads(self) -> SimFs {
        self.lock().mapped_reads = true;
        self
    }

    /// Model a failed sync as Linux may handle it: the file's data not yet synced is dropped
    /// (its pages are marked clean and evicted), so reads and every later sync see what the disk
    /// held before (zeros past its durable length, which is unchanged). Without this a failed
    /// sync leaves the data dirty, for a later sync to make durable, so code that retried an
    /// fsync and trusted it would go unnoticed; with it, such code loses acknowledged data.
    ///
    /// # Examples
    /// ```
    /// use std::path::Path;
    /// use topiclog::fs::{Fault, FaultOp, FileSystem, OpenMode, SimFs};
    ///
    /// let fs = SimFs::new(1).with_lossy_failed_syncs();
    /// let f = fs.open(Path::new("/a"), OpenMode::Create)?;
    /// f.write_all_at(b"kept", 0)?;
    /// f.sync_data()?;
    /// f.write_all_at(b"lost", 4)?;
    /// fs.inject(Fault::new(FaultOp::Sync, 0));
    /// assert!(f.sync_data().is_err());
    /// f.sync_data()?; // a retry "succeeds"
    /// assert_eq!(fs.read_file(Path::new("/a")).unwrap(), b"kept\0\0\0\0");
    /// assert_eq!(fs.faults_fired(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_lossy_failed_syncs(self) -> SimFs {
        self.lock().lossy_failed_syncs = true;
        self
    }

    /// How many operations an injected [`Fault`] has failed since this file system was created
    /// (a power cut's refusals are not counted): whether an armed fault actually fired.
    pub fn faults_fired(&self) -> u64 {
        self.lock().faults_fired
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Simulate a power loss and reboot; see [`CrashMode`] and [`SimFs`].
    ///
    /// Afterwards every file's current content equals its durable content, every directory's
    /// entries equal its durable entries, every handle opened before the crash is stale (its
    /// operations fail with `ErrorKind::Other`), and injected faults and any power cut are
    /// cleared. [`SimFs::mutating_ops`] is not reset.
    pub fn crash(&self, mode: CrashMode) {
        self.lock().crash(mode);
    }

    /// Arm a fault. Several faults may be armed; each counts matching operations on its own.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(ArmedFault { fault, seen: 0 });
    }

    /// Disarm every injected fault and any pending power cut.
    pub fn clear_faults(&self) {
        let mut st = self.lock();
        st.faults.clear();
        st.power_cut_at = None;
    }

    /// Let `n` more mutating operations succeed, then fail every later one with
    /// `ErrorKind::Other` ("simulated power cut"), until [`SimFs::crash`] or
    /// [`SimFs::clear_faults`]. Reads keep working. `n == 0` cuts the power at once.
    pub fn power_cut_after(&self, n: u64) {
        let mut st = self.lock();
        st.power_cut_at = Some(st.ops.saturating_add(n));
    }

    /// How many mutating operations have succeeded since this file system was created (crashes
    /// do not reset it): writes, `set_len`, syncs, `sync_dir`, creates of new files, non-empty
    /// `create_dir_all`s, renames and removes.
    pub fn mutating_ops(&self) -> u64 {
        self.lock().ops
    }

    /// The current content of the file at `path`, or `None` if there is no file there.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        let comps = components(path).ok()?;
        match st.lookup(&comps, path).ok()? {
            Entry::File(ino) => st.inode(ino).ok().map(|i| i.data.clone()),
            Entry::Dir(_) => None,
        }
    }

    /// Whether the file at `path` has a live map (any `Bytes` slice of one is still held): always
    /// `false` without [`SimFs::with_mapped_reads`], whose maps are real. For tests that check
    /// which read path the code under test took.
    pub fn is_mapped(&self, path: &Path) -> bool {
        let mut st = self.lock();
        let Ok(comps) = components(path) else {
            return false;
        };
        match st.lookup(&comps, path) {
            Ok(Entry::File(ino)) => st
                .inodes
                .get_mut(&ino)
                .is_some_and(|i| i.live_mirror().is_some()),
            _ => false,
        }
    }

    /// The length of the durable content of the file at `path`, or `None` if there is no file
    /// there.
    pub fn durable_len(&self, path: &Path) -> Option<u64> {
        let st = self.lock();
        let comps = components(path).ok()?;
        match st.lookup(&comps, path).ok()? {
            Entry::File(ino) => st.inode(ino).ok().map(|i| i.durable.len() as u64),
            Entry::Dir(_) => None,
        }
    }

    /// Create or overwrite the file at `path` with `data`, durably: the content and the entries
    /// of the file and of every missing parent directory (which are created) survive a crash.
    ///
    /// For tests that plant files, e.g. damaged ones. It bypasses faults and the power cut and is
    /// not counted by [`SimFs::mutating_ops`]. An existing file keeps its identity (open handles
    /// see the new content); a directory at `path`, or a file where a parent directory belongs, is
    /// replaced. Does nothing if `path` names the root or is not UTF-8.
    pub fn write_file(&self, path: &Path, data: &[u8]) {
        let Ok(comps) = components(path) else {
            return;
        };
        let Some((name, parents)) = comps.split_last() else {
            return;
        };
        let mut st = self.lock();
        let mut dir = ROOT;
        for part in parents {
            let existing = st.dirs.get(&dir).and_then(|d| d.entries.get(part)).copied();
            let next = match existing {
                Some(Entry::Dir(id)) if st.dirs.contains_key(&id) => id,
                _ => {
                    let id = st.alloc_id();
                    st.dirs.insert(id, Dir::default());
                    id
                }
            };
            let Some(d) = st.dirs.get_mut(&dir) else {
                return;
            };
            d.entries.insert(part.clone(), Entry::Dir(next));
            d.durable_entries.insert(part.clone(), Entry::Dir(next));
            dir = next;
        }
        let existing = st.dirs.get(&dir).and_then(|d| d.entries.get(name)).copied();
        let ino = match existing {
            Some(Entry::File(ino)) if st.inodes.contains_key(&ino) => ino,
            _ => {
                let ino = st.alloc_id();
                st.inodes.insert(ino, Inode::default());
                ino
            }
        };
        if let Some(inode) = st.inodes.get_mut(&ino) {
            inode.data = data.to_vec();
            inode.durable = data.to_vec();
            inode.written_end = data.len() as u64;
            // Planting is not checked against maps (a test may damage a mapped file on purpose),
            // but maps see it, as they would see another process's write on a real system.
            if let Some(mirror) = inode.live_mirror() {
                mirror.set_len(data.len() as u64, path);
                mirror.write_at(data, 0, path);
            }
        }
        if let Some(d) = st.dirs.get_mut(&dir) {
            d.entries.insert(name.clone(), Entry::File(ino));
            d.durable_entries.insert(name.clone(), Entry::File(ino));
        }
    }
}

impl SimFs {
    /// What `path` names, `None` if nothing (a missing component, or a file where a directory
    /// was expected, as `stat(2)` reports ENOENT/ENOTDIR); injected `Stat` faults fail it.
    fn stat(&self, path: &Path) -> io::Result<Option<Entry>> {
        let mut st = self.lock();
        st.gate(FaultOp::Stat, &[path])?;
        let Ok(comps) = components(path) else {
            return Ok(None);
        };
        super::found(st.lookup(&comps, path))
    }
}

impl FileSystem for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let comps = components(path)?;
        let mut st = self.lock();
        // Find the deepest existing directory on the path.
        let mut dir = ROOT;
        let mut existing = 0;
        for name in &comps {
            match st.dir(dir)?.entries.get(name) {
                Some(Entry::Dir(id)) => {
                    dir = *id;
                    existing += 1;
                }
                Some(Entry::File(_)) => {
                    let kind = if existing + 1 == comps.len() {
                        io::ErrorKind::AlreadyExists
                    } else {
                        io::ErrorKind::NotADirectory
                    };
                    return Err(err(kind, "a file is in the way", path));
                }
                None => break,
            }
        }
        if existing == comps.len() {
            return Ok(());
        }
        st.gate(FaultOp::Create, &[path])?;
        for name in &comps[existing..] {
            let id = st.alloc_id();
            st.dirs.insert(id, Dir::default());
            st.dir_mut(dir)?
                .entries
                .insert(name.clone(), Entry::Dir(id));
            dir = id;
        }
        st.done();
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        // The lock file itself is created like any file (and counts as an operation).
        drop(self.open(path, OpenMode::Create)?);
        let comps = components(path)?;
        let mut st = self.lock();
        if !st.locks.insert(comps.clone()) {
            return Err(err(io::ErrorKind::WouldBlock, "lock is held", path));
        }
        Ok(Box::new(SimLock {
            state: Arc::clone(&self.state),
            comps,
            generation: st.generation,
        }))
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let comps = components(path)?;
        let mut st = self.lock();
        if comps.is_empty() {
            return Err(err(io::ErrorKind::IsADirectory, "is a directory", path));
        }
        let (dir, name) = st.parent(&comps, path)?;
        let ino = match st.dir(dir)?.entries.get(name).copied() {
            Some(Entry::Dir(_)) => {
                return Err(err(io::ErrorKind::IsADirectory, "is a directory", path));
            }
            Some(Entry::File(_)) if mode == OpenMode::CreateNew => {
                return Err(err(io::ErrorKind::AlreadyExists, "file exists", path));
            }
            Some(Entry::File(ino)) => ino,
            None => match mode {
                OpenMode::Read | OpenMode::ReadWrite => {
                    return Err(err(io::ErrorKind::NotFound, "no such file", path));
                }
                OpenMode::Create | OpenMode::CreateNew => {
                    st.gate(FaultOp::Create, &[path])?;
                    let ino = st.alloc_id();
                    st.inodes.insert(ino, Inode::default());
                    st.dir_mut(dir)?
                        .entries
                        .insert(name.to_owned(), Entry::File(ino));
                    st.done();
                    ino
                }
            },
        };
        Ok(Arc::new(SimFile {
            state: Arc::clone(&self.state),
            ino,
            generation: st.generation,
            writable: mode != OpenMode::Read,
            path: path.to_path_buf(),
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let comps = components(path)?;
        let mut st = self.lock();
        if comps.is_empty() {
            return Err(err(io::ErrorKind::IsADirectory, "is a directory", path));
        }
        let (dir, name) = st.parent(&comps, path)?;
        match st.dir(dir)?.entries.get(name) {
            None => return Err(err(io::ErrorKind::NotFound, "no such file", path)),
            Some(Entry::Dir(_)) => {
                return Err(err(io::ErrorKind::IsADirectory, "is a directory", path))
            }
            Some(Entry::File(_)) => {}
        }
        st.gate(FaultOp::Remove, &[path])?;
        st.dir_mut(dir)?.entries.remove(name);
        st.done();
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let comps = components(path)?;
        let mut st = self.lock();
        if comps.is_empty() {
            return Err(err(
                io::ErrorKind::PermissionDenied,
                "cannot remove the root directory",
                path,
            ));
        }
        let (dir, name) = st.parent(&comps, path)?;
        match st.dir(dir)?.entries.get(name) {
            None => return Err(err(io::ErrorKind::NotFound, "no such directory", path)),
            Some(Entry::File(_)) => {
                return Err(err(io::ErrorKind::NotADirectory, "not a directory", path))
            }
            Some(Entry::Dir(_)) => {}
        }
        st.gate(FaultOp::Remove, &[path])?;
        // Objects below stay allocated until the next crash, which may resurrect them.
        st.dir_mut(dir)?.entries.remove(name);
        st.done();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let from_comps = components(from)?;
        let to_comps = components(to)?;
        let mut st = self.lock();
        if from_comps.is_empty() || to_comps.is_empty() {
            return Err(err(
                io::ErrorKind::InvalidInput,
                "cannot rename the root directory",
                if from_comps.is_empty() { from } else { to },
            ));
        }
        let (from_dir, from_name) = st.parent(&from_comps, from)?;
        let src = *st
            .dir(from_dir)?
            .entries
            .get(from_name)
            .ok_or_else(|| err(io::ErrorKind::NotFound, "no such file or directory", from))?;
        if matches!(src, Entry::Dir(_))
            && to_comps.len() > from_comps.len()
            && to_comps.starts_with(&from_comps)
        {
            return Err(err(
                io::ErrorKind::InvalidInput,
                "cannot move a directory into itself",
                to,
            ));
        }
        let (to_dir, to_name) = st.parent(&to_comps, to)?;
        let dst = st.dir(to_dir)?.entries.get(to_name).copied();
        match (src, dst) {
            (_, Some(d)) if d == src => {
                // Both names are the same file: POSIX says do nothing.
                st.gate(FaultOp::Rename, &[from, to])?;
                st.done();
                return Ok(());
            }
            (Entry::File(_), Some(Entry::Dir(_))) => {
                return Err(err(io::ErrorKind::IsADirectory, "is a directory", to));
            }
            (Entry::Dir(_), Some(Entry::File(_))) => {
                return Err(err(io::ErrorKind::NotADirectory, "not a directory", to));
            }
            (Entry::Dir(_), Some(Entry::Dir(target))) if !st.dir(target)?.entries.is_empty() => {
                return Err(err(
                    io::ErrorKind::DirectoryNotEmpty,
                    "directory not empty",
                    to,
                ));
            }
            _ => {}
        }
        st.gate(FaultOp::Rename, &[from, to])?;
        st.dir_mut(from_dir)?.entries.remove(from_name);
        st.dir_mut(to_dir)?.entries.insert(to_name.to_owned(), src);
        st.done();
        Ok(())
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        let from_comps = components(original)?;
        let to_comps = components(link)?;
        let mut st = self.lock();
        let Entry::File(ino) = st.lookup(&from_comps, original)? else {
            // Like link(2): directories have no second name.
            return Err(err(
                io::ErrorKind::PermissionDenied,
                "cannot hard-link a directory",
                original,
            ));
        };
        let (dir, name) = st.parent(&to_comps, link)?;
        if st.dir(dir)?.entries.contains_key(name) {
            return Err(err(io::ErrorKind::AlreadyExists, "file exists", link));
        }
        st.gate(FaultOp::Create, &[original, link])?;
        // A second name of the same inode: writes through either show through both, and the
        // inode survives a crash while either name is durable.
        st.dir_mut(dir)?
            .entries
            .insert(name.to_owned(), Entry::File(ino));
        st.done();
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let comps = components(path)?;
        let st = self.lock();
        match st.lookup(&comps, path)? {
            // BTreeMap keys are already sorted.
            Entry::Dir(id) => Ok(st.dir(id)?.entries.keys().cloned().collect()),
            Entry::File(_) => Err(err(io::ErrorKind::NotADirectory, "not a directory", path)),
        }
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let comps = components(path)?;
        let mut st = self.lock();
        let Entry::Dir(id) = st.lookup(&comps, path)? else {
            return Err(err(io::ErrorKind::NotADirectory, "not a directory", path));
        };
        st.gate(FaultOp::SyncDir, &[path])?;
        let dir = st.dir_mut(id)?;
        dir.durable_entries = dir.entries.clone();
        st.done();
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.stat(path)?.is_some())
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        Ok(matches!(self.stat(path)?, Some(Entry::Dir(_))))
    }
}
