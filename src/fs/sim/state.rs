//! The simulation's state: the directory tree and inodes, each with what was written and what
//! was made durable, and the armed faults.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::io;
use std::path::{Component, Path};

use bytes::Bytes;

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Entry {
    File(u64),
    Dir(u64),
}

#[derive(Default)]
pub(super) struct Dir {
    pub(super) entries: BTreeMap<String, Entry>,
    pub(super) durable_entries: BTreeMap<String, Entry>,
}

#[derive(Default)]
pub(super) struct Inode {
    pub(super) data: Vec<u8>,
    pub(super) durable: Vec<u8>,
    /// End of the bytes written to the file (by writes of anything but zeros only, or a crash's
    /// or `write_file`'s whole content) and not cut since: what a reader of a growing map may be
    /// reading.
    pub(super) written_end: u64,
    /// With mapped reads, while the file has live maps: the real file they map.
    pub(super) mirror: Option<Mirror>,
}

impl Inode {
    /// The mirror, if the file has live maps now (one that has none is dropped).
    pub(super) fn live_mirror(&mut self) -> Option<&mut Mirror> {
        if self.mirror.as_mut().is_some_and(|m| !m.is_mapped()) {
            self.mirror = None;
        }
        self.mirror.as_mut()
    }
}

pub(super) struct ArmedFault {
    pub(super) fault: Fault,
    pub(super) seen: u64,
}

pub(super) struct State {
    pub(super) rng: u64,
    /// Bumped by every crash; handles from an older generation are stale.
    pub(super) generation: u64,
    pub(super) next_id: u64,
    pub(super) inodes: BTreeMap<u64, Inode>,
    pub(super) dirs: BTreeMap<u64, Dir>,
    pub(super) faults: Vec<ArmedFault>,
    /// Mutating operations fail once `ops` reaches this.
    pub(super) power_cut_at: Option<u64>,
    /// Successful mutating operations so far.
    pub(super) ops: u64,
    /// Paths locked by `try_lock`; a crash (the process dying) releases them all.
    pub(super) locks: std::collections::BTreeSet<Vec<String>>,
    /// [`SimFs::with_mapped_reads`]: maps are real shared maps of a mirror file.
    pub(super) mapped_reads: bool,
    /// [`SimFs::with_lossy_failed_syncs`]: a failed sync drops the file's unsynced bytes.
    pub(super) lossy_failed_syncs: bool,
    /// Operations an injected fault failed (a power cut's refusals not counted).
    pub(super) faults_fired: u64,
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
            .field("lossy_failed_syncs", &self.lossy_failed_syncs)
            .field("faults_fired", &self.faults_fired)
            .finish_non_exhaustive()
    }
}

pub(super) fn err(kind: io::ErrorKind, what: &str, path: &Path) -> io::Error {
    io::Error::new(kind, format!("{what}: {}", path.display()))
}

pub(super) fn internal() -> io::Error {
    io::Error::other("SimFs internal inconsistency")
}

/// The normal components of `path`, with `.` dropped and `..` applied.
pub(super) fn components(path: &Path) -> io::Result<Vec<String>> {
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
pub(super) fn checked_len(len: u64, path: &Path) -> io::Result<usize> {
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
pub(super) fn resize(v: &mut Vec<u8>, len: usize, path: &Path) -> io::Result<()> {
    if len > v.len() {
        v.try_reserve(len - v.len())
            .map_err(|_| err(io::ErrorKind::OutOfMemory, "cannot grow file", path))?;
    }
    v.resize(len, 0);
    Ok(())
}

impl State {
    pub(super) fn new(seed: u64) -> Self {
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
            lossy_failed_syncs: false,
            faults_fired: 0,
        }
    }

    /// splitmix64.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    pub(super) fn uniform_inclusive(&mut self, max: u64) -> u64 {
        let span = u128::from(max) + 1;
        ((u128::from(self.next_u64()) * span) >> 64) as u64
    }

    pub(super) fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    pub(super) fn dir(&self, id: u64) -> io::Result<&Dir> {
        self.dirs.get(&id).ok_or_else(internal)
    }

    pub(super) fn dir_mut(&mut self, id: u64) -> io::Result<&mut Dir> {
        self.dirs.get_mut(&id).ok_or_else(internal)
    }

    pub(super) fn inode(&self, id: u64) -> io::Result<&Inode> {
        self.inodes.get(&id).ok_or_else(internal)
    }

    pub(super) fn inode_mut(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&id).ok_or_else(internal)
    }

    /// The current entry at `comps` (the root for no components).
    pub(super) fn lookup(&self, comps: &[String], path: &Path) -> io::Result<Entry> {
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
    pub(super) fn parent<'a>(
        &self,
        comps: &'a [String],
        path: &Path,
    ) -> io::Result<(u64, &'a str)> {
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
    pub(super) fn gate(&mut self, op: FaultOp, paths: &[&Path]) -> io::Result<()> {
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
            Some(e) => {
                self.faults_fired = self.faults_fired.saturating_add(1);
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Records a successful mutating operation.
    pub(super) fn done(&mut self) {
        self.ops = self.ops.saturating_add(1);
    }

    pub(super) fn crash(&mut self, mode: CrashMode) {
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
    pub(super) fn map(&mut self, ino: u64, len: u64, kind: MapKind) -> io::Result<Bytes> {
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
