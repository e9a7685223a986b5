//! [`SimFs`]: an in-memory, deterministic, crashable [`FileSystem`] for tests.
//!
//! Files and directories track what was written separately from what was made durable, so a
//! simulated crash can lose exactly what a real power loss may lose; see [`SimFs`] for the model.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};

use super::sim_map::{MapKind, Mirror};
use super::{File, FileLock, FileSystem, OpenMode};

/// Id of the root directory.
const ROOT: u64 = 0;
/// The largest file the simulation holds, to turn absurd offsets into errors instead of aborts.
const MAX_FILE_LEN: u64 = 1 << 32;
const STALE_MSG: &str = "stale handle after simulated crash";
const POWER_CUT_MSG: &str = "simulated power cut";

/// How [`SimFs::crash`] treats bytes written but not synced.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every file reverts to exactly its synced content.
    LoseUnsynced,
    /// Every file keeps a random prefix of its unsynced content: for a uniform `k` in
    /// `0..=max(len, durable len)`, bytes before `k` come from the current content and bytes from
    /// `k` on from the synced content. Models a write that reached the disk only in part.
    Torn,
}

/// The kinds of mutating operation a [`Fault`] can target.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    /// [`File::write_all_at`].
    Write,
    /// [`File::sync_data`] and [`File::sync_all`].
    Sync,
    /// [`FileSystem::sync_dir`].
    SyncDir,
    /// Creating a file ([`FileSystem::open`] with `Create`/`CreateNew` when the file is new) or
    /// directories ([`FileSystem::create_dir_all`] when it creates any).
    Create,
    /// [`FileSystem::rename`].
    Rename,
    /// [`FileSystem::remove_file`] and [`FileSystem::remove_dir_all`].
    Remove,
    /// [`File::set_len`].
    SetLen,
    /// Every mutating operation.
    Any,
    /// Looking a path up ([`FileSystem::exists`], [`FileSystem::is_dir`]), as `stat(2)` does: to
    /// test that a failed lookup is reported, never taken for "absent". Not a mutating operation:
    /// [`FaultOp::Any`] does not match it, a power cut does not stop it and
    /// [`SimFs::mutating_ops`] does not count it.
    Stat,
}

/// A failure to inject with [`SimFs::inject`].
///
/// The fault counts the mutating operations that match `op` and `path_contains` (including ones
/// failed by other faults, excluding ones rejected earlier for ordinary reasons such as
/// `NotFound`); the `nth` of them (0-based) fails with `kind`, and, if `sticky`, so does every
/// later one. A failed operation changes nothing: a failed write writes no byte and a failed sync
/// makes nothing durable.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The operations this fault targets.
    pub op: FaultOp,
    /// If set, only operations on a path containing this string match (for [`FileSystem::rename`],
    /// either path; for file handles, the path the handle was opened with).
    pub path_contains: Option<String>,
    /// Which matching operation fails, counting from 0.
    pub nth: u64,
    /// The error kind to fail with, e.g. `Other` for EIO or `StorageFull` for ENOSPC.
    pub kind: io::ErrorKind,
    /// Whether every matching operation after the `nth` fails too.
    pub sticky: bool,
}

impl Fault {
    /// A non-sticky fault failing the `nth` (0-based) operation of kind `op`, on any path, with
    /// `ErrorKind::Other`.
    pub fn new(op: FaultOp, nth: u64) -> Self {
        Fault {
            op,
            path_contains: None,
            nth,
            kind: io::ErrorKind::Other,
            sticky: false,
        }
    }
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir(u64),
}

#[derive(Default)]
struct Dir {
    entries: BTreeMap<String, Entry>,
    durable_entries: BTreeMap<String, Entry>,
}

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// End of the bytes written to the file (by writes, or a crash's or `write_file`'s whole
    /// content) and not cut since: what a reader of a growing map may be reading.
    written_end: u64,
    /// With mapped reads, while the file has live maps: the real file they map.
    mirror: Option<Mirror>,
}

impl Inode {
    /// The mirror, if the file has live maps now (one that has none is dropped).
    fn live_mirror(&mut self) -> Option<&mut Mirror> {
        if self.mirror.as_mut().is_some_and(|m| !m.is_mapped()) {
            self.mirror = None;
        }
        self.mirror.as_mut()
    }
}

struct ArmedFault {
    fault: Fault,
    seen: u64,
}

struct State {
    rng: u64,
    /// Bumped by every crash; handles from an older generation are stale.
    generation: u64,
    next_id: u64,
    inodes: BTreeMap<u64, Inode>,
    dirs: BTreeMap<u64, Dir>,
    faults: Vec<ArmedFault>,
    /// Mutating operations fail once `ops` reaches this.
    power_cut_at: Option<u64>,
    /// Successful mutating operations so far.
    ops: u64,
    /// Paths locked by `try_lock`; a crash (the process dying) releases them all.
    locks: std::collections::BTreeSet<Vec<String>>,
    /// [`SimFs::with_mapped_reads`]: maps are real shared maps of a mirror file.
    mapped_reads: bool,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("generation", &self.generation)
            .field("files", &self.inodes.len())
            .field("dirs", &self.dirs.len())
            .field("faults", &self.faults.len())
            .field("power_cut_at", &self.power_cut_at)
            .field("ops", &self.ops)
            .field("mapped_reads", &self.mapped_reads)
            .finish_non_exhaustive()
    }
}

fn err(kind: io::ErrorKind, what: &str, path: &Path) -> io::Error {
    io::Error::new(kind, format!("{what}: {}", path.display()))
}

fn internal() -> io::Error {
    io::Error::other("SimFs internal inconsistency")
}

/// The normal components of `path`, with `.` dropped and `..` applied.
fn components(path: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => match name.to_str() {
                Some(name) => out.push(name.to_owned()),
                None => {
                    return Err(err(
                        io::ErrorKind::InvalidInput,
                        "SimFs supports only UTF-8 paths",
                        path,
                    ))
                }
            },
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// Checks a new file length against the simulation's limit.
fn checked_len(len: u64, path: &Path) -> io::Result<usize> {
    if len > MAX_FILE_LEN {
        return Err(err(
            io::ErrorKind::FileTooLarge,
            "SimFs files are limited to 4 GiB",
            path,
        ));
    }
    usize::try_from(len).map_err(|_| err(io::ErrorKind::FileTooLarge, "file too large", path))
}

/// Resizes `v` to `len`, zero-filling, without aborting on allocation failure.
fn resize(v: &mut Vec<u8>, len: usize, path: &Path) -> io::Result<()> {
    if len > v.len() {
        v.try_reserve(len - v.len())
            .map_err(|_| err(io::ErrorKind::OutOfMemory, "cannot grow file", path))?;
    }
    v.resize(len, 0);
    Ok(())
}

impl State {
    fn new(seed: u64) -> Self {
        let mut dirs = BTreeMap::new();
        dirs.insert(ROOT, Dir::default());
        State {
            rng: seed,
            generation: 0,
            next_id: ROOT + 1,
            inodes: BTreeMap::new(),
            dirs,
            faults: Vec::new(),
            power_cut_at: None,
            ops: 0,
            locks: std::collections::BTreeSet::new(),
            mapped_reads: false,
        }
    }

    /// splitmix64.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    fn uniform_inclusive(&mut self, max: u64) -> u64 {
        let span = u128::from(max) + 1;
        ((u128::from(self.next_u64()) * span) >> 64) as u64
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    fn dir(&self, id: u64) -> io::Result<&Dir> {
        self.dirs.get(&id).ok_or_else(internal)
    }

    fn dir_mut(&mut self, id: u64) -> io::Result<&mut Dir> {
        self.dirs.get_mut(&id).ok_or_else(internal)
    }

    fn inode(&self, id: u64) -> io::Result<&Inode> {
        self.inodes.get(&id).ok_or_else(internal)
    }

    fn inode_mut(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&id).ok_or_else(internal)
    }

    /// The current entry at `comps` (the root for no components).
    fn lookup(&self, comps: &[String], path: &Path) -> io::Result<Entry> {
        let mut cur = Entry::Dir(ROOT);
        for name in comps {
            let Entry::Dir(id) = cur else {
                return Err(err(io::ErrorKind::NotADirectory, "not a directory", path));
            };
            cur =
                *self.dir(id)?.entries.get(name).ok_or_else(|| {
                    err(io::ErrorKind::NotFound, "no such file or directory", path)
                })?;
        }
        Ok(cur)
    }

    /// The directory holding the last component of `comps` (which must not be empty), and that
    /// component.
    fn parent<'a>(&self, comps: &'a [String], path: &Path) -> io::Result<(u64, &'a str)> {
        let Some((name, dir)) = comps.split_last() else {
            return Err(err(
                io::ErrorKind::InvalidInput,
                "operation not supported on the root directory",
                path,
            ));
        };
        match self.lookup(dir, path)? {
            Entry::Dir(id) => Ok((id, name.as_str())),
            Entry::File(_) => Err(err(io::ErrorKind::NotADirectory, "not a directory", path)),
        }
    }

    /// Admits a mutating operation or fails it with the power cut or an injected fault.
    fn gate(&mut self, op: FaultOp, paths: &[&Path]) -> io::Result<()> {
        if op != FaultOp::Stat && self.power_cut_at.is_some_and(|cut| self.ops >= cut) {
            return Err(io::Error::other(POWER_CUT_MSG));
        }
        let mut failure = None;
        for armed in &mut self.faults {
            let f = &armed.fault;
            let matches = f.op == op || (f.op == FaultOp::Any && op != FaultOp::Stat);
            if !matches {
                continue;
            }
            if let Some(needle) = &f.path_contains {
                if !paths
                    .iter()
                    .any(|p| p.to_string_lossy().contains(needle.as_str()))
                {
                    continue;
                }
            }
            let index = armed.seen;
            armed.seen = armed.seen.saturating_add(1);
            if failure.is_none() && (index == f.nth || (f.sticky && index > f.nth)) {
                let shown = paths.first().map(|p| p.display().to_string());
                failure = Some(io::Error::new(
                    f.kind,
                    format!("injected fault on {op:?} of {}", shown.unwrap_or_default()),
                ));
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Records a successful mutating operation.
    fn done(&mut self) {
        self.ops = self.ops.saturating_add(1);
    }

    fn crash(&mut self, mode: CrashMode) {
        self.generation = self.generation.wrapping_add(1);
        self.locks.clear();
        self.faults.clear();
        self.power_cut_at = None;

        // Walk the durable tree from the root; a directory reachable twice (possible when a
        // directory rename was made durable in only one of its parents) keeps its first name.
        let mut live_dirs = BTreeSet::from([ROOT]);
        let mut live_inodes = BTreeSet::new();
        let mut queue = VecDeque::from([ROOT]);
        while let Some(id) = queue.pop_front() {
            let Some(dir) = self.dirs.get(&id) else {
                continue;
            };
            let mut kept = BTreeMap::new();
            for (name, entry) in &dir.durable_entries {
                match *entry {
                    Entry::File(ino) => {
                        if self.inodes.contains_key(&ino) {
                            live_inodes.insert(ino);
                            kept.insert(name.clone(), *entry);
                        }
                    }
                    Entry::Dir(child) => {
                        if self.dirs.contains_key(&child) && live_dirs.insert(child) {
                            queue.push_back(child);
                            kept.insert(name.clone(), *entry);
                        }
                    }
                }
            }
            if let Some(dir) = self.dirs.get_mut(&id) {
                dir.entries = kept.clone();
                dir.durable_entries = kept;
            }
        }
        self.dirs.retain(|id, _| live_dirs.contains(id));
        self.inodes.retain(|id, _| live_inodes.contains(id));

        let ids: Vec<u64> = self.inodes.keys().copied().collect();
        for id in ids {
            let k = match (mode, self.inodes.get(&id)) {
                (CrashMode::Torn, Some(inode)) if inode.data != inode.durable => {
                    let max = inode.data.len().max(inode.durable.len()) as u64;
                    Some(self.uniform_inclusive(max))
                }
                _ => None,
            };
            let Some(inode) = self.inodes.get_mut(&id) else {
                continue;
            };
            if let Some(k) = k {
                // Bytes before `k` from the new content, bytes from `k` on (when the old content
                // reaches that far) from the old, each at its own position.
                let k = usize::try_from(k).unwrap_or(usize::MAX);
                let from_new = k.min(inode.data.len());
                let mut torn = inode.data[..from_new].to_vec();
                if k < inode.durable.len() {
                    torn.extend_from_slice(&inode.durable[from_new..]);
                }
                inode.durable = torn;
            }
            inode.data = inode.durable.clone();
            inode.written_end = inode.data.len() as u64;
            // The process that held the maps is gone; the next one maps the file anew.
            inode.mirror = None;
        }
    }

    /// A real shared map of the first `len` bytes of inode `ino` (see [`SimFs::with_mapped_reads`]).
    fn map(&mut self, ino: u64, len: u64, kind: MapKind) -> io::Result<Bytes> {
        if self.inode_mut(ino)?.live_mirror().is_none() {
            // Before opening another temp file, close those of files no longer mapped.
            for inode in self.inodes.values_mut() {
                inode.live_mirror();
            }
            let inode = self.inode_mut(ino)?;
            inode.mirror = Some(Mirror::create(&inode.data)?);
        }
        match self.inode_mut(ino)?.mirror.as_mut() {
            Some(mirror) => mirror.map(len, kind),
            None => Err(internal()),
        }
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

/// A lock held in a [`SimFs`]; released on drop unless a crash already released it.
struct SimLock {
    state: Arc<Mutex<State>>,
    comps: Vec<String>,
    generation: u64,
}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock")
            .field("path", &self.comps)
            .finish()
    }
}

impl FileLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = self.state.lock();
        if st.generation == self.generation {
            st.locks.remove(&self.comps);
        }
    }
}

/// A handle to a [`SimFs`] file. It refers to the inode, not the name: it keeps working after the
/// file is renamed, replaced or removed, until the next crash.
struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    generation: u64,
    writable: bool,
    /// The path the file was opened with, for messages and fault matching.
    path: PathBuf,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .field("generation", &self.generation)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

impl SimFile {
    /// Locks the state, failing if the handle predates a crash.
    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        let st = self.state.lock();
        if st.generation != self.generation {
            return Err(io::Error::other(STALE_MSG));
        }
        Ok(st)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(err(
                io::ErrorKind::PermissionDenied,
                "file opened read-only",
                &self.path,
            ))
        }
    }

    fn sync(&self) -> io::Result<()> {
        let mut st = self.lock()?;
        st.inode(self.ino)?;
        st.gate(FaultOp::Sync, &[&self.path])?;
        let inode = st.inode_mut(self.ino)?;
        inode.durable.clone_from(&inode.data);
        st.done();
        Ok(())
    }
}

impl File for SimFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let st = self.lock()?;
        let data = &st.inode(self.ino)?.data;
        let Ok(pos) = usize::try_from(pos) else {
            return Ok(0);
        };
        let Some(available) = data.get(pos..) else {
            return Ok(0);
        };
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut st = self.lock()?;
        self.check_writable()?;
        let end = pos
            .checked_add(buf.len() as u64)
            .ok_or_else(|| err(io::ErrorKind::InvalidInput, "offset overflow", &self.path))?;
        let end = checked_len(end, &self.path)?;
        let start = end - buf.len();
        st.inode(self.ino)?;
        st.gate(FaultOp::Write, &[&self.path])?;
        let inode = st.inode_mut(self.ino)?;
        if inode.data.len() < end {
            resize(&mut inode.data, end, &self.path)?;
        }
        inode.data[start..end].copy_from_slice(buf);
        inode.written_end = inode.written_end.max(end as u64);
        if let Some(mirror) = inode.live_mirror() {
            mirror.write_at(buf, start as u64, &self.path);
        }
        st.done();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let st = self.lock()?;
        Ok(st.inode(self.ino)?.data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.lock()?;
        self.check_writable()?;
        let len = checked_len(len, &self.path)?;
        st.inode(self.ino)?;
        st.gate(FaultOp::SetLen, &[&self.path])?;
        let inode = st.inode_mut(self.ino)?;
        let new_len = len as u64;
        if new_len < inode.data.len() as u64 {
            let written_end = inode.written_end;
            if let Some(mirror) = inode.live_mirror() {
                mirror.check_shrink(new_len, written_end, &self.path);
            }
            inode.written_end = written_end.min(new_len);
        }
        resize(&mut inode.data, len, &self.path)?;
        if let Some(mirror) = inode.live_mirror() {
            mirror.set_len(new_len, &self.path);
        }
        st.done();
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn map_readonly(&self, len: u64) -> io::Result<Bytes> {
        let mut st = self.lock()?;
        let data = &st.inode(self.ino)?.data;
        let bytes = match usize::try_from(len).ok().and_then(|len| data.get(..len)) {
            Some(bytes) => bytes,
            None => {
                return Err(err(
                    io::ErrorKind::UnexpectedEof,
                    &format!("cannot map {len} bytes of a {}-byte file", data.len()),
                    &self.path,
                ))
            }
        };
        if !st.mapped_reads {
            return Ok(Bytes::copy_from_slice(bytes));
        }
        if len == 0 {
            // As `StdFs`: nothing to map.
            return Ok(Bytes::new());
        }
        st.map(self.ino, len, MapKind::ReadOnly { len })
    }

    fn map_growing(&self, len: u64) -> io::Result<Option<Bytes>> {
        let mut st = self.lock()?;
        st.inode(self.ino)?;
        if !st.mapped_reads || len == 0 {
            return Ok(None);
        }
        if len > MAX_FILE_LEN {
            return Err(err(
                io::ErrorKind::InvalidInput,
                "SimFs maps are limited to 4 GiB",
                &self.path,
            ));
        }
        st.map(self.ino, len, MapKind::Growing).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    /// A file system with a durable directory `/d`.
    fn with_dir(seed: u64) -> SimFs {
        let fs = SimFs::new(seed);
        fs.create_dir_all(p("/d")).unwrap();
        fs.sync_dir(p("/")).unwrap();
        fs
    }

    /// Creates `/d/f` durably (entry synced) with empty durable content.
    fn durable_file(fs: &SimFs) -> Arc<dyn File> {
        let f = fs.open(p("/d/f"), OpenMode::Create).unwrap();
        fs.sync_dir(p("/d")).unwrap();
        f
    }

    #[test]
    fn send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SimFs>();
        assert_send_sync::<SimFile>();
        assert_send_sync::<Arc<dyn File>>();
    }

    #[test]
    fn unsynced_write_lost_after_crash() {
        let fs = with_dir(1);
        let f = durable_file(&fs);
        f.write_all_at(b"hello", 0).unwrap();
        assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"hello");
        assert_eq!(fs.durable_len(p("/d/f")), Some(0));
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"");
    }

    #[test]
    fn synced_write_kept() {
        let fs = with_dir(1);
        let f = durable_file(&fs);
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b" world", 5).unwrap();
        assert_eq!(fs.durable_len(p("/d/f")), Some(5));
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"hello");
        let f = fs.open(p("/d/f"), OpenMode::Read).unwrap();
        assert_eq!(f.len().unwrap(), 5);
    }

    #[test]
    fn set_len_durable_only_after_sync() {
        let fs = with_dir(1);
        let f = durable_file(&fs);
        f.write_all_at(b"abcdef", 0).unwrap();
        f.sync_all().unwrap();
        f.set_len(2).unwrap();
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"abcdef");
        let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
        f.set_len(2).unwrap();
        f.set_len(4).unwrap();
        f.sync_data().unwrap();
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"ab\0\0");
    }

    #[test]
    fn write_past_end_zero_fills() {
        let fs = with_dir(1);
        let f = durable_file(&fs);
        f.write_all_at(b"xy", 3).unwrap();
        assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"\0\0\0xy");
        let mut buf = [9u8; 8];
        assert_eq!(f.read_at(&mut buf, 1).unwrap(), 4);
        assert_eq!(&buf[..4], b"\0\0xy");
        assert_eq!(f.read_at(&mut buf, 5).unwrap(), 0);
        assert_eq!(f.read_at(&mut buf, u64::MAX).unwrap(), 0);
        assert!(f.write_all_at(b"x", u64::MAX).is_err());
        assert!(f.write_all_at(b"x", MAX_FILE_LEN).is_err());
        assert!(f.set_len(u64::MAX).is_err());
        assert_eq!(&f.map_readonly(4).unwrap()[..], b"\0\0\0x");
        assert!(f.map_readonly(6).is_err());
    }

    #[test]
    fn unsynced_create_lost_unless_sync_dir() {
        let fs = with_dir(1);
        let a = fs.open(p("/d/a"), OpenMode::CreateNew).unwrap();
        a.write_all_at(b"aaa", 0).unwrap();
        a.sync_all().unwrap(); // data durable, but not the name
        fs.crash(CrashMode::LoseUnsynced);
        assert!(!fs.exists(p("/d/a")).unwrap());

        let b = fs.open(p("/d/b"), OpenMode::CreateNew).unwrap();
        b.write_all_at(b"bbb", 0).unwrap();
        b.sync_all().unwrap();
        fs.sync_dir(p("/d")).unwrap();
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/b")).unwrap(), b"bbb");
        assert_eq!(fs.read_dir(p("/d")).unwrap(), vec!["b".to_string()]);
    }

    #[test]
    fn rename_durability() {
        let fs = with_dir(1);
        fs.write_file(p("/d/old"), b"content");
        fs.rename(p("/d/old"), p("/d/new")).unwrap();
        assert!(!fs.exists(p("/d/old")).unwrap());
        assert_eq!(fs.read_file(p("/d/new")).unwrap(), b"content");
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/old")).unwrap(), b"content");
        assert!(!fs.exists(p("/d/new")).unwrap());

        fs.rename(p("/d/old"), p("/d/new")).unwrap();
        fs.sync_dir(p("/d")).unwrap();
        fs.crash(CrashMode::LoseUnsynced);
        assert!(!fs.exists(p("/d/old")).unwrap());
        assert_eq!(fs.read_file(p("/d/new")).unwrap(), b"content");
    }

    #[test]
    fn rename_replaces_and_old_handle_keeps_inode() {
        let fs = with_dir(1);
        fs.write_file(p("/d/target"), b"old");
        fs.write_file(p("/d/tmp"), b"new");
        let old = fs.open(p("/d/target"), OpenMode::Read).unwrap();
        fs.rename(p("/d/tmp"), p("/d/target")).unwrap();
        assert_eq!(fs.read_dir(p("/d")).unwrap(), vec!["target".to_string()]);
        assert_eq!(fs.read_file(p("/d/target")).unwrap(), b"new");
        let mut buf = [0u8; 3];
        old.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"old");
        // Not synced: the crash brings back both names with their old files.
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/target")).unwrap(), b"old");
        assert_eq!(fs.read_file(p("/d/tmp")).unwrap(), b"new");
    }

    #[test]
    fn rename_directory_moves_subtree() {
        let fs = SimFs::new(1);
        fs.write_file(p("/a/x/f"), b"f");
        fs.rename(p("/a/x"), p("/b")).unwrap();
        assert_eq!(fs.read_file(p("/b/f")).unwrap(), b"f");
        assert!(!fs.exists(p("/a/x")).unwrap());
        assert!(fs.is_dir(p("/b")).unwrap());
        assert_eq!(
            fs.rename(p("/b"), p("/b/inner")).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        fs.sync_dir(p("/")).unwrap();
        fs.sync_dir(p("/a")).unwrap();
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/b/f")).unwrap(), b"f");
        assert!(!fs.exists(p("/a/x")).unwrap());
    }

    #[test]
    fn directory_renamed_durably_in_one_parent_only_is_not_aliased() {
        let fs = SimFs::new(1);
        fs.write_file(p("/a/x/f"), b"f");
        fs.rename(p("/a/x"), p("/b")).unwrap();
        fs.sync_dir(p("/")).unwrap(); // durable in the new parent, not removed from the old one
        fs.crash(CrashMode::LoseUnsynced);
        // Exactly one of the two names survives; the crash does not loop or panic.
        assert!(fs.exists(p("/a/x")).unwrap() != fs.exists(p("/b")).unwrap());
    }

    #[test]
    fn torn_keeps_prefix_of_unsynced_data() {
        let old = vec![b'A'; 64];
        let new = vec![b'B'; 100];
        let mut seen = BTreeSet::new();
        for seed in 0..200 {
            let fs = with_dir(seed);
            fs.write_file(p("/d/f"), &old);
            let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
            f.write_all_at(&new, 0).unwrap();
            fs.crash(CrashMode::Torn);
            let got = fs.read_file(p("/d/f")).unwrap();
            let k = got.iter().take_while(|&&b| b == b'B').count();
            assert!(got[k..].iter().all(|&b| b == b'A'), "seed {seed}: {got:?}");
            // Positions are preserved: new bytes, then the rest of the old content.
            assert_eq!(got.len(), k.max(old.len()));
            assert_eq!(fs.durable_len(p("/d/f")), Some(got.len() as u64));
            seen.insert(k);
        }
        assert!(seen.len() > 20, "k should vary: {seen:?}");
    }

    #[test]
    fn torn_with_shorter_new_content_keeps_positions() {
        for seed in 0..100 {
            let fs = with_dir(seed);
            fs.write_file(p("/d/f"), b"0123456789");
            let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
            f.set_len(3).unwrap();
            f.write_all_at(b"ab", 0).unwrap();
            fs.crash(CrashMode::Torn);
            let got = fs.read_file(p("/d/f")).unwrap();
            let candidates: Vec<Vec<u8>> = vec![
                b"0123456789".to_vec(),
                b"a123456789".to_vec(),
                b"ab23456789".to_vec(),
                b"ab2".to_vec(),
            ];
            assert!(candidates.contains(&got), "seed {seed}: {got:?}");
        }
    }

    #[test]
    fn torn_is_deterministic_per_seed() {
        let run = |seed| {
            let fs = with_dir(seed);
            fs.write_file(p("/d/f"), b"");
            let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
            f.write_all_at(&[7u8; 1000], 0).unwrap();
            fs.crash(CrashMode::Torn);
            fs.read_file(p("/d/f")).unwrap()
        };
        assert_eq!(run(42), run(42));
    }

    #[test]
    fn stale_handles_after_crash() {
        let fs = with_dir(1);
        let f = durable_file(&fs);
        f.write_all_at(b"x", 0).unwrap();
        f.sync_data().unwrap();
        fs.crash(CrashMode::LoseUnsynced);
        let mut buf = [0u8; 1];
        let errs = [
            f.read_at(&mut buf, 0).unwrap_err(),
            f.write_all_at(b"y", 0).unwrap_err(),
            f.len().unwrap_err(),
            f.set_len(0).unwrap_err(),
            f.sync_data().unwrap_err(),
            f.sync_all().unwrap_err(),
            f.map_readonly(1).unwrap_err(),
        ];
        for e in errs {
            assert_eq!(e.kind(), io::ErrorKind::Other);
            assert_eq!(e.to_string(), STALE_MSG);
        }
        // A fresh handle works.
        let g = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
        assert_eq!(g.len().unwrap(), 1);
    }

    #[test]
    fn fault_nth_write_fails() {
        let fs = with_dir(1);
        let f = durable_file(&fs);
        fs.inject(Fault {
            op: FaultOp::Write,
            path_contains: Some("/d/f".into()),
            nth: 1,
            kind: io::ErrorKind::StorageFull,
            sticky: false,
        });
        f.write_all_at(b"a", 0).unwrap();
        let e = f.write_all_at(b"b", 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(
            fs.read_file(p("/d/f")).unwrap(),
            b"a",
            "failed write applies nothing"
        );
        f.write_all_at(b"c", 1).unwrap();
        assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"ac");
    }

    #[test]
    fn fault_path_filter_and_sticky() {
        let fs = with_dir(1);
        let f = durable_file(&fs);
        let other = fs.open(p("/d/other"), OpenMode::Create).unwrap();
        fs.inject(Fault {
            sticky: true,
            path_contains: Some("/f".into()),
            ..Fault::new(FaultOp::Sync, 1)
        });
        f.write_all_at(b"a", 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b"b", 1).unwrap();
        for _ in 0..3 {
            assert_eq!(f.sync_all().unwrap_err().kind(), io::ErrorKind::Other);
            other.sync_data().unwrap(); // other paths are unaffected
        }
        assert_eq!(
            fs.durable_len(p("/d/f")),
            Some(1),
            "failed sync is not durable"
        );
        fs.clear_faults();
        f.sync_data().unwrap();
        assert_eq!(fs.durable_len(p("/d/f")), Some(2));
    }

    #[test]
    fn fault_any_op_and_crash_clears() {
        let fs = SimFs::new(1);
        fs.inject(Fault::new(FaultOp::Any, 0));
        assert!(fs.create_dir_all(p("/x")).is_err());
        assert!(!fs.exists(p("/x")).unwrap());
        fs.create_dir_all(p("/x")).unwrap();
        fs.inject(Fault {
            sticky: true,
            ..Fault::new(FaultOp::Any, 0)
        });
        assert!(fs.sync_dir(p("/")).is_err());
        fs.crash(CrashMode::LoseUnsynced);
        fs.create_dir_all(p("/x")).unwrap();
        fs.sync_dir(p("/")).unwrap();
    }

    #[test]
    fn power_cut_after_n_ops() {
        let fs = with_dir(1);
        let f = durable_file(&fs);
        fs.power_cut_after(2);
        f.write_all_at(b"a", 0).unwrap();
        f.sync_data().unwrap();
        let e = f.write_all_at(b"b", 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Other);
        assert_eq!(e.to_string(), POWER_CUT_MSG);
        assert!(f.sync_data().is_err());
        assert!(f.set_len(0).is_err());
        assert!(fs.open(p("/d/g"), OpenMode::Create).is_err());
        assert!(fs.create_dir_all(p("/e")).is_err());
        assert!(fs.rename(p("/d/f"), p("/d/h")).is_err());
        assert!(fs.remove_file(p("/d/f")).is_err());
        assert!(fs.remove_dir_all(p("/d")).is_err());
        assert!(fs.sync_dir(p("/d")).is_err());
        // Reads and opening existing files still work.
        assert_eq!(fs.read_dir(p("/d")).unwrap(), vec!["f".to_string()]);
        let g = fs.open(p("/d/f"), OpenMode::Read).unwrap();
        let mut buf = [0u8; 1];
        g.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"a");
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"a");
        fs.open(p("/d/f"), OpenMode::ReadWrite)
            .unwrap()
            .write_all_at(b"z", 0)
            .unwrap();
    }

    #[test]
    fn mutating_ops_counting() {
        let fs = SimFs::new(1);
        assert_eq!(fs.mutating_ops(), 0);
        fs.create_dir_all(p("/a/b/c")).unwrap(); // 1 (one call, three dirs)
        fs.create_dir_all(p("/a/b")).unwrap(); // exists: not counted
        fs.sync_dir(p("/a")).unwrap(); // 2
        let f = fs.open(p("/a/f"), OpenMode::Create).unwrap(); // 3
        let _same = fs.open(p("/a/f"), OpenMode::Create).unwrap(); // exists: not counted
        let _ro = fs.open(p("/a/f"), OpenMode::Read).unwrap();
        f.write_all_at(b"x", 0).unwrap(); // 4
        f.set_len(10).unwrap(); // 5
        f.sync_data().unwrap(); // 6
        f.sync_all().unwrap(); // 7
        fs.rename(p("/a/f"), p("/a/g")).unwrap(); // 8
        assert!(fs.remove_file(p("/a/missing")).is_err()); // failed: not counted
        fs.remove_file(p("/a/g")).unwrap(); // 9
        fs.remove_dir_all(p("/a/b")).unwrap(); // 10
        let _ = fs.read_dir(p("/a")).unwrap();
        let _ = f.len().unwrap();
        fs.write_file(p("/planted"), b"p"); // helper: not counted
        assert_eq!(fs.mutating_ops(), 10);
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.mutating_ops(), 10);
    }

    #[test]
    fn nested_dir_without_parent_sync_disappears() {
        let fs = SimFs::new(1);
        fs.create_dir_all(p("/top")).unwrap();
        fs.sync_dir(p("/")).unwrap();
        fs.create_dir_all(p("/top/mid/leaf")).unwrap();
        // The leaf's entry is durable in mid, and the file's entry in leaf, but mid's entry in
        // top is not: the whole subtree disappears.
        fs.sync_dir(p("/top/mid")).unwrap();
        let f = fs.open(p("/top/mid/leaf/f"), OpenMode::Create).unwrap();
        f.sync_all().unwrap();
        fs.sync_dir(p("/top/mid/leaf")).unwrap();
        fs.crash(CrashMode::Torn);
        assert!(fs.is_dir(p("/top")).unwrap());
        assert!(!fs.exists(p("/top/mid")).unwrap());
        assert!(fs.read_dir(p("/top")).unwrap().is_empty());

        fs.create_dir_all(p("/top/mid")).unwrap();
        fs.sync_dir(p("/top")).unwrap();
        fs.crash(CrashMode::LoseUnsynced);
        assert!(fs.is_dir(p("/top/mid")).unwrap());
    }

    #[test]
    fn remove_durability() {
        let fs = with_dir(1);
        fs.write_file(p("/d/f"), b"f");
        fs.write_file(p("/d/sub/g"), b"g");
        fs.remove_file(p("/d/f")).unwrap();
        fs.remove_dir_all(p("/d/sub")).unwrap();
        assert!(fs.read_dir(p("/d")).unwrap().is_empty());
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"f");
        assert_eq!(fs.read_file(p("/d/sub/g")).unwrap(), b"g");
        fs.remove_file(p("/d/f")).unwrap();
        fs.remove_dir_all(p("/d/sub")).unwrap();
        fs.sync_dir(p("/d")).unwrap();
        fs.crash(CrashMode::LoseUnsynced);
        assert!(fs.read_dir(p("/d")).unwrap().is_empty());
    }

    #[test]
    fn posix_errors() {
        use io::ErrorKind as K;
        let fs = with_dir(1);
        fs.write_file(p("/d/f"), b"f");
        let kind = |r: io::Result<Arc<dyn File>>| r.map(|_| ()).unwrap_err().kind();
        assert_eq!(kind(fs.open(p("/d/missing"), OpenMode::Read)), K::NotFound);
        assert_eq!(
            kind(fs.open(p("/d/missing"), OpenMode::ReadWrite)),
            K::NotFound
        );
        assert_eq!(kind(fs.open(p("/nodir/f"), OpenMode::Create)), K::NotFound);
        assert_eq!(
            kind(fs.open(p("/d/f"), OpenMode::CreateNew)),
            K::AlreadyExists
        );
        assert_eq!(kind(fs.open(p("/d"), OpenMode::Read)), K::IsADirectory);
        assert_eq!(kind(fs.open(p("/"), OpenMode::Read)), K::IsADirectory);
        assert_eq!(
            kind(fs.open(p("/d/f/x"), OpenMode::Create)),
            K::NotADirectory
        );
        let ro = fs.open(p("/d/f"), OpenMode::Read).unwrap();
        assert_eq!(
            ro.write_all_at(b"x", 0).unwrap_err().kind(),
            K::PermissionDenied
        );
        assert_eq!(ro.set_len(0).unwrap_err().kind(), K::PermissionDenied);
        assert_eq!(fs.remove_file(p("/d")).unwrap_err().kind(), K::IsADirectory);
        assert_eq!(
            fs.remove_file(p("/d/nope")).unwrap_err().kind(),
            K::NotFound
        );
        assert_eq!(
            fs.remove_dir_all(p("/d/f")).unwrap_err().kind(),
            K::NotADirectory
        );
        assert_eq!(fs.remove_dir_all(p("/zz")).unwrap_err().kind(), K::NotFound);
        assert!(fs.remove_dir_all(p("/")).is_err());
        assert_eq!(fs.sync_dir(p("/zz")).unwrap_err().kind(), K::NotFound);
        assert_eq!(fs.read_dir(p("/zz")).unwrap_err().kind(), K::NotFound);
        assert_eq!(
            fs.rename(p("/d/zz"), p("/d/y")).unwrap_err().kind(),
            K::NotFound
        );
        assert_eq!(
            fs.rename(p("/d/f"), p("/q/y")).unwrap_err().kind(),
            K::NotFound
        );
        assert_eq!(
            fs.rename(p("/d/f"), p("/d")).unwrap_err().kind(),
            K::IsADirectory
        );
        assert_eq!(
            fs.create_dir_all(p("/d/f")).unwrap_err().kind(),
            K::AlreadyExists
        );
        fs.create_dir_all(p("/d/full/x")).unwrap();
        fs.create_dir_all(p("/d/empty")).unwrap();
        assert_eq!(
            fs.rename(p("/d/empty"), p("/d/full")).unwrap_err().kind(),
            K::DirectoryNotEmpty
        );
        assert_eq!(
            fs.rename(p("/d/full"), p("/d/f")).unwrap_err().kind(),
            K::NotADirectory
        );
        fs.rename(p("/d/full"), p("/d/empty")).unwrap();
        assert!(fs.is_dir(p("/d/empty/x")).unwrap());
        fs.rename(p("/d/f"), p("/d/f")).unwrap();
        assert!(fs.exists(p("/d/f")).unwrap());
        assert!(fs.exists(p("/")).unwrap());
        assert!(fs.is_dir(p("/")).unwrap());
        assert!(!fs.is_dir(p("/d/f")).unwrap());
    }

    #[test]
    fn relative_and_absolute_paths_agree() {
        let fs = SimFs::new(1);
        fs.create_dir_all(p("tmp/x")).unwrap();
        assert!(fs.is_dir(p("/tmp/x")).unwrap());
        assert!(fs.is_dir(p("/tmp/./x/../x")).unwrap());
        fs.write_file(p("/tmp/x/b"), b"1");
        fs.write_file(p("tmp/x/a"), b"2");
        assert_eq!(
            fs.read_dir(p("/tmp/x")).unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
        // `Path::parent` of a single relative component is "", which is the root.
        let f = fs.open(p("top"), OpenMode::Create).unwrap();
        f.sync_all().unwrap();
        fs.sync_dir(Path::new("top").parent().unwrap()).unwrap();
        fs.crash(CrashMode::LoseUnsynced);
        assert!(fs.exists(p("/top")).unwrap());
    }

    #[test]
    fn write_file_plants_durable_files() {
        let fs = SimFs::new(1);
        fs.write_file(p("/a/b/c"), b"damaged");
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(fs.read_file(p("/a/b/c")).unwrap(), b"damaged");
        assert_eq!(fs.durable_len(p("/a/b/c")), Some(7));
        assert_eq!(fs.read_file(p("/a/b")), None);
        assert_eq!(fs.durable_len(p("/nope")), None);
        fs.write_file(p("/"), b"ignored");
    }

    /// A `/d/f` on a file system with mapped reads.
    fn mapped_file() -> (SimFs, Arc<dyn File>) {
        let fs = SimFs::new(1).with_mapped_reads();
        fs.create_dir_all(p("/d")).unwrap();
        let f = fs.open(p("/d/f"), OpenMode::Create).unwrap();
        (fs, f)
    }

    fn mirrors(fs: &SimFs) -> usize {
        fs.lock()
            .inodes
            .values()
            .filter(|i| i.mirror.is_some())
            .count()
    }

    #[test]
    fn maps_are_copies_by_default() {
        let fs = with_dir(1);
        let f = durable_file(&fs);
        f.write_all_at(b"abc", 0).unwrap();
        assert!(f.map_growing(4096).unwrap().is_none());
        let map = f.map_readonly(3).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        assert_eq!(&map[..], b"abc");
        f.set_len(0).unwrap(); // a copy does not care
        assert_eq!(mirrors(&fs), 0);
    }

    #[test]
    fn a_new_map_shows_the_whole_content() {
        let (_fs, f) = mapped_file();
        f.set_len(5 * 4096 + 100).unwrap(); // preallocated: mostly zeros
        f.write_all_at(b"first", 0).unwrap();
        f.write_all_at(b"fourth", 3 * 4096 + 10).unwrap();
        f.write_all_at(b"last", 5 * 4096 + 96).unwrap();
        let mut want = vec![0u8; 5 * 4096 + 100];
        f.read_exact_at(&mut want, 0).unwrap();
        let map = f.map_readonly(want.len() as u64).unwrap();
        assert_eq!(&map[..], &want[..]);
    }

    #[test]
    fn growing_map_follows_writes_past_the_end() {
        let (_fs, f) = mapped_file();
        f.set_len(100).unwrap();
        let map = f.map_growing(3 * 4096).unwrap().expect("mapped reads");
        assert_eq!(map.len(), 3 * 4096);
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"tail", 5000).unwrap(); // extends the file past the first page
        assert_eq!(&map[..4], b"head");
        assert_eq!(&map[5000..5004], b"tail");
        assert!(map[4..5000].iter().all(|&b| b == 0));
        assert!(f.map_growing(0).unwrap().is_none());
    }

    #[test]
    fn read_only_map_is_shared() {
        let (fs, f) = mapped_file();
        f.write_all_at(b"sealed", 0).unwrap();
        let map = f.map_readonly(6).unwrap();
        assert_eq!(&map[..], b"sealed");
        assert!(f.map_readonly(7).is_err(), "past the end of the file");
        assert!(f.map_readonly(0).unwrap().is_empty());
        // Another handle, another map: the same pages.
        let g = fs.open(p("/d/f"), OpenMode::Read).unwrap();
        let again = g.map_readonly(6).unwrap();
        f.write_all_at(b"S", 0).unwrap();
        assert_eq!(&map[..], b"Sealed");
        assert_eq!(&again[..], b"Sealed");
        assert_eq!(mirrors(&fs), 1);
    }

    #[test]
    #[should_panic(expected = "under a live read-only map of its first 6 bytes")]
    fn shrinking_under_a_read_only_map_panics() {
        let (_fs, f) = mapped_file();
        f.write_all_at(b"sealed", 0).unwrap();
        let map = f.map_readonly(6).unwrap();
        let _slice = map.slice(0..1); // a slice keeps the map alive
        drop(map);
        f.set_len(6).unwrap(); // not a shrink
        f.set_len(5).unwrap();
    }

    #[test]
    #[should_panic(expected = "below the 300 bytes written to it, under a live map_growing map")]
    fn shrinking_written_bytes_under_a_growing_map_panics() {
        let (_fs, f) = mapped_file();
        let _map = f.map_growing(4096).unwrap();
        f.write_all_at(&[7; 300], 0).unwrap();
        f.set_len(200).unwrap();
    }

    #[test]
    fn trimming_a_never_written_tail_under_a_growing_map_is_allowed() {
        let (fs, f) = mapped_file();
        f.set_len(4096).unwrap(); // preallocated
        let map = f.map_growing(8192).unwrap().expect("mapped reads");
        f.write_all_at(&[7; 300], 0).unwrap();
        f.set_len(300).unwrap(); // sealing cuts the preallocated tail
        assert_eq!(&map[..300], &[7; 300][..]);
        // Gone, the map no longer protects anything, and its mirror goes with the next change.
        drop(map);
        f.set_len(0).unwrap();
        assert_eq!(mirrors(&fs), 0);
    }

    #[test]
    fn a_new_mirror_closes_those_no_longer_mapped() {
        let (fs, f) = mapped_file();
        f.write_all_at(b"a", 0).unwrap();
        drop(f.map_readonly(1).unwrap());
        assert_eq!(mirrors(&fs), 1, "nothing touched the file since");
        let g = fs.open(p("/d/g"), OpenMode::Create).unwrap();
        g.write_all_at(b"b", 0).unwrap();
        let _kept = g.map_readonly(1).unwrap();
        assert_eq!(mirrors(&fs), 1, "only the mapped file keeps its mirror");
    }

    #[test]
    fn crash_detaches_maps() {
        let (fs, f) = mapped_file();
        f.write_all_at(b"durable", 0).unwrap();
        f.sync_all().unwrap();
        fs.sync_dir(p("/d")).unwrap();
        fs.sync_dir(p("/")).unwrap();
        f.write_all_at(b"+lost", 7).unwrap();
        let old = f.map_growing(4096).unwrap().expect("mapped reads");
        fs.crash(CrashMode::LoseUnsynced);
        assert_eq!(mirrors(&fs), 0);
        assert_eq!(
            &old[..12],
            b"durable+lost",
            "a map of the dead process stays as it was"
        );
        let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
        let new = f.map_growing(4096).unwrap().expect("mapped reads");
        assert_eq!(&new[..7], b"durable");
    }

    /// `write_file` plants content that maps see (and does not check them).
    #[test]
    fn planted_content_shows_in_maps() {
        let (fs, f) = mapped_file();
        f.write_all_at(b"0123456789", 0).unwrap();
        let map = f.map_growing(4096).unwrap().expect("mapped reads");
        fs.write_file(p("/d/f"), b"XY");
        assert_eq!(&map[..2], b"XY");
        assert_eq!(f.len().unwrap(), 2);
    }

    /// Exercises the whole harness: `write_atomic` cut at every operation leaves old or new.
    #[test]
    fn write_atomic_survives_a_crash_at_every_point() {
        use super::super::write_atomic;
        let setup = |seed| {
            let fs = SimFs::new(seed);
            fs.write_file(p("/d/meta"), b"old contents");
            fs
        };
        let counting = setup(0);
        let before = counting.mutating_ops();
        write_atomic(&counting, p("/d/meta"), b"new").unwrap();
        let total = counting.mutating_ops() - before;
        assert_eq!(total, 6);
        for mode in [CrashMode::LoseUnsynced, CrashMode::Torn] {
            for cut in 0..=total {
                let fs = setup(cut);
                fs.power_cut_after(cut);
                let result = write_atomic(&fs, p("/d/meta"), b"new");
                assert_eq!(result.is_ok(), cut == total);
                fs.crash(mode);
                let got = fs.read_file(p("/d/meta")).unwrap();
                if cut == total {
                    assert_eq!(got, b"new");
                } else {
                    assert!(got == b"old contents" || got == b"new", "{cut}: {got:?}");
                }
            }
        }
    }
}
