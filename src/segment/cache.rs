//! The bounded cache of open segment files and maps (issue 13).
//!
//! Every segment's `.log` is reached through a [`LazyFile`]: a handle that opens the file when a
//! read needs it, maps a sealed segment on first read, and can give both back. Sealed segments
//! that hold an open file, a map of their `.log` or mapped indexes are *resident*; the process
//! keeps at most [`max_open_segments`] of them resident, releasing the least recently used one
//! when another becomes resident. A partition of 10,000 segments therefore opens without opening
//! any sealed file, and a scan over all of them holds the files and maps of at most that many
//! (three maps and at most one descriptor each).
//!
//! The cache is shared by the whole process rather than owned by each store: open descriptors
//! (`RLIMIT_NOFILE`) and maps (`vm.max_map_count`) are limits of the process, so only a bound per
//! process protects them whatever number of stores and standalone partitions it opens.
//!
//! What is never released:
//! - anything of the active segment (it is written through its file and growing map);
//! - the file of a segment with writes not yet synced, or whose sync failed (a new descriptor
//!   might not report the failure: the partition is poisoned, and the handle stays);
//! - in-memory indexes (those of a segment sealed in this process), which hold no descriptor or
//!   map;
//! - the files and maps of a segment whose files were deleted (by retention, compaction or
//!   truncation): those live as long as a reader holds the segment, and go with it.
//!
//! Release never waits: an entry in use (a lock held) is skipped and tried again later. A reader
//! keeps what it took: a read holds its own reference to the map (`Bytes`) or file
//! (`Arc<dyn File>`), which survives release and unlink alike. A released segment reopens its
//! `.log` by path, and refuses (a clean [`Error::Io`](crate::Error::Io), `NotFound`) when its
//! files were deleted meanwhile, or when the file there is shorter than the segment (a truncated
//! copy renamed over it): never another file's bytes.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use super::Indexes;
use crate::fs::{File, FileSystem, OpenMode};

/// How many sealed segments the process keeps resident (open file, map of the `.log`, mapped
/// indexes) unless [`set_max_open_segments`] says otherwise: 64, so at most 64 descriptors and
/// 192 maps for sealed segments, well inside a 1,024-descriptor limit and `vm.max_map_count`.
pub const DEFAULT_MAX_OPEN_SEGMENTS: usize = 64;

static CAPACITY: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_OPEN_SEGMENTS);
static CLOCK: AtomicU64 = AtomicU64::new(1);
static RESIDENT: std::sync::Mutex<Vec<Weak<LazyFile>>> = std::sync::Mutex::new(Vec::new());

/// Keep at most `n` sealed segments resident in this process (open `.log`, map of it, mapped
/// indexes), releasing the least recently used beyond that; at least 1. The default is
/// [`DEFAULT_MAX_OPEN_SEGMENTS`]. Takes effect at the next segment that becomes resident.
///
/// Each resident segment holds at most one descriptor and three maps, and its pages of the page
/// cache stay counted in the process's RSS as far as they were read; active segments (one per
/// partition) are not counted, they hold their file and map until the partition closes.
pub fn set_max_open_segments(n: usize) {
    CAPACITY.store(n.max(1), Ordering::Relaxed);
}

/// The bound [`set_max_open_segments`] set.
pub fn max_open_segments() -> usize {
    CAPACITY.load(Ordering::Relaxed)
}

/// How many sealed segments are resident now (for tests and tools).
#[doc(hidden)]
pub fn resident_segments() -> usize {
    lock_resident().len()
}

fn lock_resident() -> std::sync::MutexGuard<'static, Vec<Weak<LazyFile>>> {
    // The list holds only weak references: a panic while it was locked leaves it usable.
    RESIDENT.lock().unwrap_or_else(|e| e.into_inner())
}

/// A segment's `.log`, opened on demand and given back when the cache says so. Implements
/// [`File`], so the segment's write path uses it as it would the file itself.
#[derive(Debug)]
pub(crate) struct LazyFile {
    me: Weak<LazyFile>,
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    file: Mutex<Option<Arc<dyn File>>>,
    map: Mutex<Option<Bytes>>,
    /// The segment's indexes (shared with it): released only when both are read-only maps.
    pub(super) indexes: Arc<RwLock<Option<Indexes>>>,
    pub(super) sealed: Arc<AtomicBool>,
    pub(super) deleted: Arc<AtomicBool>,
    /// Written (or cut) since the last successful sync, or a sync failed: keep the descriptor.
    dirty: AtomicBool,
    /// Kept for readers until the segment drops (its files are about to be deleted).
    pinned: AtomicBool,
    /// The sealed segment's size, once known: a file reopened by path must be at least this long.
    sealed_len: AtomicU64,
    /// In the resident list.
    listed: AtomicBool,
    last_used: AtomicU64,
}

impl LazyFile {
    /// A handle on `path`, with `file` already open (a created or active segment) or not (a
    /// sealed segment: opened read-only by the first read).
    pub(super) fn new(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        file: Option<Arc<dyn File>>,
        sealed: bool,
    ) -> Arc<LazyFile> {
        Arc::new_cyclic(|me| LazyFile {
            me: me.clone(),
            fs,
            path: path.to_owned(),
            file: Mutex::new(file),
            map: Mutex::new(None),
            indexes: Arc::new(RwLock::new(None)),
            sealed: Arc::new(AtomicBool::new(sealed)),
            deleted: Arc::new(AtomicBool::new(false)),
            dirty: AtomicBool::new(false),
            pinned: AtomicBool::new(false),
            sealed_len: AtomicU64::new(0),
            listed: AtomicBool::new(false),
            last_used: AtomicU64::new(0),
        })
    }

    /// A file reopened by path must be at least `len` bytes long (the sealed segment's size).
    pub(super) fn expect_len(&self, len: u64) {
        self.sealed_len.fetch_max(len, Ordering::AcqRel);
    }

    /// Whether the segment's file is open now (for tests).
    #[cfg(test)]
    pub(super) fn is_open(&self) -> bool {
        self.file.lock().is_some()
    }

    /// Whether the segment's `.log` is mapped now.
    #[cfg(test)]
    pub(super) fn map_held(&self) -> bool {
        self.map.lock().is_some()
    }

    /// The map, if one is held.
    pub(super) fn current_map(&self) -> Option<Bytes> {
        self.map.lock().clone()
    }

    /// Hold `m` as the map (the active segment's growing map); `Err(m)` if one is held.
    pub(super) fn set_map(&self, m: Bytes) -> Result<(), Bytes> {
        let mut slot = self.map.lock();
        if slot.is_some() {
            return Err(m);
        }
        *slot = Some(m);
        Ok(())
    }

    /// The active segment's growing map, made longer if it does not cover `size` bytes: remapped
    /// to the next power of two (at least 1 MiB) up to `limit`, the old map staying valid for the
    /// readers holding it. `None` if the segment has no growing map or it cannot cover `size`
    /// (the caller then reads through the file).
    pub(super) fn grown_map(&self, size: u64, limit: u64) -> io::Result<Option<Bytes>> {
        let mut slot = self.map.lock();
        let Some(m) = slot.as_ref() else {
            return Ok(None);
        };
        if m.len() as u64 >= size {
            return Ok(Some(m.clone()));
        }
        let len = growing_map_len(size, limit);
        if len < size {
            return Ok(None);
        }
        let file = self.handle()?;
        match file.map_growing(len)? {
            Some(m) => {
                *slot = Some(m.clone());
                Ok(Some(m))
            }
            None => Ok(None),
        }
    }

    /// A read-only map of the first `size` bytes of the sealed `.log`, held until released; the
    /// one held if it covers `size`.
    pub(super) fn map_sealed(&self, size: u64) -> io::Result<Bytes> {
        self.sealed_len.fetch_max(size, Ordering::AcqRel);
        let m = {
            let mut slot = self.map.lock();
            match slot.as_ref() {
                Some(m) if m.len() as u64 >= size => m.clone(),
                _ => {
                    let file = self.handle()?;
                    let len = file.len()?;
                    if len < size {
                        // Never map past the end of a file (SIGBUS): a shorter file here is not
                        // this segment's (a truncated copy renamed over it) or was cut outside.
                        return Err(self.gone(format!(
                            "is {len} bytes, shorter than the {size} bytes of its segment"
                        )));
                    }
                    let m = file.map_readonly(size)?;
                    *slot = Some(m.clone());
                    m
                }
            }
        };
        // The map outlives the descriptor: give that back now where nothing needs it.
        if !self.dirty.load(Ordering::Acquire) && self.sealed.load(Ordering::Acquire) {
            // (Pinned too: a deleted segment then holds one map and no descriptor.)
            if let Some(mut f) = self.file.try_lock() {
                *f = None;
            }
        }
        self.touch();
        Ok(m)
    }

    /// Before the segment's files are deleted: hold a map of its `.log` (or, where the file
    /// system cannot map, its descriptor) for as long as the segment lives, so readers holding it
    /// keep reading it.
    ///
    /// # Errors
    /// Where neither can be had (the caller then deletes nothing).
    pub(super) fn keep_for_readers(&self, size: u64) -> io::Result<()> {
        {
            // Under the map lock, which a release holds throughout (see `release`).
            let _map = self.map.lock();
            self.pinned.store(true, Ordering::SeqCst);
        }
        if self.sealed.load(Ordering::Acquire) && self.map_sealed(size).is_ok() {
            return Ok(());
        }
        self.handle().map(|_| ())
    }

    /// Mark the segment used now, and make it resident if it is sealed.
    pub(super) fn touch(&self) {
        if !self.sealed.load(Ordering::Acquire) {
            // The active segment is never released: nothing to account.
            return;
        }
        self.last_used
            .store(CLOCK.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        if self.listed.load(Ordering::Acquire) || self.listed.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut list = lock_resident();
        list.push(self.me.clone());
        evict(&mut list, max_open_segments());
    }

    /// The open file, opening the `.log` read-only if it was released (or never opened).
    fn handle(&self) -> io::Result<Arc<dyn File>> {
        let opened = {
            let mut slot = self.file.lock();
            if let Some(f) = slot.as_ref() {
                let f = f.clone();
                drop(slot);
                self.touch();
                return Ok(f);
            }
            let f = self.fs.open(&self.path, OpenMode::Read)?;
            // Deletion sets the flag before it removes a file (and a replacement is renamed in
            // only after): unset now means the file just opened is this segment's, unless a
            // truncation renamed a shorter copy over it.
            if self.deleted.load(Ordering::SeqCst) {
                return Err(self.gone("was deleted".into()));
            }
            let len = f.len()?;
            let want = self.sealed_len.load(Ordering::Acquire);
            if len < want {
                return Err(self.gone(format!(
                    "is {len} bytes, shorter than the {want} bytes of its segment"
                )));
            }
            *slot = Some(f.clone());
            f
        };
        self.touch();
        Ok(opened)
    }

    /// The file to sync; `None` when there is nothing to sync: the files were deleted and the
    /// descriptor given back, which the cache does only once every write was synced.
    fn to_sync(&self) -> io::Result<Option<Arc<dyn File>>> {
        if self.deleted.load(Ordering::SeqCst) {
            let slot = self.file.lock();
            if slot.is_none() && !self.dirty.load(Ordering::Acquire) {
                return Ok(None);
            }
        }
        self.handle().map(Some)
    }

    fn gone(&self, what: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "segment file {} {what} after this reader took the segment (retention, \
                 compaction or truncation): read again from the partition",
                self.path.display()
            ),
        )
    }

    /// Give back the file, the map and mapped indexes if the segment is sealed, clean and not in
    /// use; `false` if something had to stay.
    pub(super) fn release(&self) -> bool {
        if !self.sealed.load(Ordering::Acquire) {
            // Active: not ours to release.
            return true;
        }
        // Held to the end: `keep_for_readers` sets `pinned` under it, so a keep either sees this
        // release done (and maps again) or is seen here.
        let Some(mut map) = self.map.try_lock() else {
            return false;
        };
        if self.deleted.load(Ordering::SeqCst) || self.pinned.load(Ordering::SeqCst) {
            // Deleted (or about to be): its resources stay with the segment (readers holding it
            // keep reading), and it leaves the list.
            return true;
        }
        let mut all = true;
        match self.indexes.try_write() {
            Some(mut idx) => {
                if idx.as_ref().is_some_and(|i| i.is_mapped()) {
                    *idx = None;
                }
            }
            None => all = false,
        }
        *map = None;
        if !self.dirty.load(Ordering::Acquire) {
            match self.file.try_lock() {
                Some(mut f) => {
                    // A file reopened by path later must be at least as long as this one (a
                    // segment sealed in this run may never have been mapped, which records it).
                    if let Some(len) = f.as_ref().and_then(|f| f.len().ok()) {
                        self.sealed_len.fetch_max(len, Ordering::AcqRel);
                    }
                    *f = None;
                }
                None => all = false,
            }
        }
        all
    }
}

/// Release the least recently used entries until at most `cap` are resident. Entries in use are
/// skipped (their turn comes again at the next eviction).
fn evict(list: &mut Vec<Weak<LazyFile>>, cap: usize) {
    list.retain(|w| w.strong_count() > 0);
    let mut tries = list.len();
    while list.len() > cap && tries > 0 {
        tries -= 1;
        let Some((at, _)) = list
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                w.upgrade()
                    .map(|e| (i, e.last_used.load(Ordering::Relaxed)))
            })
            .min_by_key(|&(_, t)| t)
        else {
            list.clear();
            return;
        };
        let Some(entry) = list[at].upgrade() else {
            list.swap_remove(at);
            continue;
        };
        if entry.release() {
            entry.listed.store(false, Ordering::Release);
            list.swap_remove(at);
        } else {
            entry
                .last_used
                .store(CLOCK.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

impl File for LazyFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.handle()?.read_at(buf, pos)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.dirty.store(true, Ordering::Release);
        self.handle()?.write_all_at(buf, pos)
    }

    fn len(&self) -> io::Result<u64> {
        self.handle()?.len()
    }

    fn modified_ms(&self) -> io::Result<Option<i64>> {
        self.handle()?.modified_ms()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.dirty.store(true, Ordering::Release);
        self.handle()?.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        let Some(file) = self.to_sync()? else {
            return Ok(());
        };
        file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        let Some(file) = self.to_sync()? else {
            return Ok(());
        };
        // Cleared before the sync: a write racing with it sets it again.
        let was_dirty = self.dirty.swap(false, Ordering::AcqRel);
        match file.sync_all() {
            Ok(()) => Ok(()),
            Err(e) => {
                // Keep this descriptor for good: a new one might not see the failure.
                let _ = was_dirty;
                self.dirty.store(true, Ordering::Release);
                Err(e)
            }
        }
    }

    fn map_readonly(&self, len: u64) -> io::Result<Bytes> {
        self.handle()?.map_readonly(len)
    }

    fn map_growing(&self, len: u64) -> io::Result<Option<Bytes>> {
        self.handle()?.map_growing(len)
    }
}

/// The segment's map slot, as the write path sees it (`get`/`set`, like the `OnceLock` it
/// replaces), kept in the [`LazyFile`] so the cache can release it once the segment is sealed.
#[derive(Debug)]
pub(super) struct MapCell(pub(super) Arc<LazyFile>);

/// The length to map an active segment whose data (plus one batch) needs `need` bytes: the next
/// power of two, at least 1 MiB, at most `limit` (`segment_bytes + max_batch_bytes`). Mapping in
/// doubling steps bounds the address space to about twice the data, not a whole segment per
/// partition (1,000 near-empty partitions: about 1 GiB instead of 1 TiB).
pub(super) fn growing_map_len(need: u64, limit: u64) -> u64 {
    need.max(1 << 20)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
        .min(limit)
}

impl MapCell {
    /// The map held, if any.
    pub(super) fn get(&self) -> Option<Bytes> {
        self.0.current_map()
    }

    /// Hold `m` unless a map is held already (then `Err(m)`).
    pub(super) fn set(&self, m: Bytes) -> Result<(), Bytes> {
        self.0.set_map(m)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{Deadline, Durability, Error, LogConfig, Partition, Record};

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 1024,
            segment_ms: Deadline::Never,
            durability: Durability::None,
            preallocate: false,
            ..LogConfig::default()
        }
    }

    fn value(i: u64) -> Vec<u8> {
        format!("{i:04}").repeat(200).into_bytes()
    }

    /// A closed partition of one record per segment, reopened clean.
    fn reopened(dir: &Path) -> Partition {
        let p = Partition::open_with(dir, config()).unwrap();
        for i in 0..4 {
            p.append(Record::new(value(i))).unwrap();
        }
        p.close().unwrap();
        drop(p);
        let p = Partition::open_with(dir, config()).unwrap();
        assert!(p.recovery_report().clean_shutdown);
        p
    }

    /// Replace `path` by a file of `len` bytes of `0xAB`, by rename (as a truncated copy is).
    fn replace(path: &Path, len: usize) {
        let tmp = path.with_extension("replacing");
        std::fs::write(&tmp, vec![0xABu8; len]).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    fn first_value(batches: &[crate::segment::RecordBatch]) -> Vec<u8> {
        let r = batches[0].records().next().unwrap();
        r.value().unwrap().to_vec()
    }

    #[test]
    fn sealed_segments_open_lazily_and_release_their_file_and_maps() {
        let tmp = tempfile::tempdir().unwrap();
        let p = reopened(tmp.path());
        let views = p.segments();
        let seg = views[0].segment();
        assert!(seg.is_sealed());
        assert!(!seg.is_resident(), "a clean open opens no sealed segment");
        assert_eq!(first_value(&views[0].read(0, 1 << 20).unwrap()), value(0));
        assert!(seg.is_resident());
        assert!(seg.lazy.release());
        assert!(!seg.is_resident());
        assert!(
            seg.indexes.read().is_none(),
            "mapped indexes are released too"
        );
        // And reopened by the next read.
        assert_eq!(first_value(&views[0].read(0, 1 << 20).unwrap()), value(0));
        p.close().unwrap();
    }

    #[test]
    fn a_released_segment_never_reads_a_shorter_file_put_in_its_place() {
        let tmp = tempfile::tempdir().unwrap();
        let p = reopened(tmp.path());
        let views = p.segments();
        let seg = views[1].segment().clone();
        assert_eq!(first_value(&views[1].read(1, 1 << 20).unwrap()), value(1));
        assert!(seg.lazy.release());
        // What a truncation's copy does to a sealed segment someone still holds.
        replace(seg.log_path(), 100);
        match views[1].read(1, 1 << 20) {
            Err(Error::Io { .. }) => {}
            other => panic!("expected a clean I/O error, got {other:?}"),
        }
        drop(views);
        p.abandon();
    }

    #[test]
    fn a_deleted_segment_keeps_reading_its_own_bytes_after_a_replacement() {
        let tmp = tempfile::tempdir().unwrap();
        let p = reopened(tmp.path());
        let views = p.segments();
        let seg = views[0].segment().clone();
        // Released before the deletion: the deletion maps it again for whoever holds it.
        assert_eq!(first_value(&views[0].read(0, 1 << 20).unwrap()), value(0));
        assert!(seg.lazy.release());
        seg.delete().unwrap();
        assert!(seg.lazy.release(), "a deleted segment leaves the cache");
        // A replacement as long as the original, as a compaction's output may be.
        replace(seg.log_path(), seg.size() as usize);
        let again = views[0].read(0, 1 << 20).unwrap();
        assert_eq!(first_value(&again), value(0));
        drop(views);
        p.abandon();
    }
}
