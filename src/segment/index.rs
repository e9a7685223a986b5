//! The index files, one piece of code for both kinds: an [`Index`] holds fixed-size entries either
//! in memory (the active segment's index, appended to its file lazily) or in a read-only map of the
//! file (a sealed segment's index). What differs between the kinds (the `format` codec of an entry,
//! lookups, append rules, sanity checks) is in `offset_index` and `time_index`.
//!
//! SIGBUS discipline: a file that may be mapped is never shrunk. When entries are removed from an
//! index, the next flush replaces the whole file by write-then-rename, so an old map (held by a
//! reader of an older segment handle) keeps its inode.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

#[cfg(doc)]
use super::{OffsetIndex, OffsetPosition, TimeIndex, TimestampOffset};
use crate::error::{Error, IoContext, Result};
use crate::fs::{replace_file, File, FileSystem, OpenMode};

/// The entry of an [`Index`]: [`OffsetPosition`] for an [`OffsetIndex`], [`TimestampOffset`] for a
/// [`TimeIndex`].
///
/// Sealed: the on-disk format fixes the index kinds, so no other type implements it.
pub trait IndexEntry: sealed::Entry {}

pub(super) mod sealed {
    /// What an [`Index`](super::Index) needs to know about its entries.
    pub trait Entry: Copy {
        /// The entry as stored (a `format` codec): its offset relative to the segment's base.
        type Stored: Copy;
        /// Bytes of one stored entry.
        const LEN: usize;
        /// Entries kept past the maximum when loading (the time index's final entry).
        const LOAD_SLACK: usize;
        /// The entry stored in `bytes`, `None` unless they are one entry long.
        fn decode(bytes: &[u8]) -> Option<Self::Stored>;
        /// Append the bytes of `stored` to `out`.
        fn encode(stored: Self::Stored, out: &mut Vec<u8>);
        /// The entry with its absolute offset; `None` if that overflows `u64` (damage: only a base
        /// offset near `u64::MAX` allows it).
        fn from_stored(stored: Self::Stored, base_offset: u64) -> Option<Self>;
    }
}

#[derive(Debug)]
enum Entries {
    /// Owned entries; `persisted` bytes of them are in the file as they are here.
    Memory {
        buf: Vec<u8>,
        persisted: usize,
        replace: bool,
        synced: bool,
    },
    /// A read-only map of the (sealed) file.
    Mapped(Bytes),
}

impl Entries {
    /// Entries in memory that the next flush writes as a new file.
    fn unwritten(buf: Vec<u8>) -> Entries {
        Entries::Memory {
            buf,
            persisted: 0,
            replace: true,
            synced: false,
        }
    }
}

/// A segment's sparse index: entries of kind `E` sorted by key, with offsets stored relative to the
/// segment's base offset. Used as an [`OffsetIndex`] (offset → position in the `.log`) or a
/// [`TimeIndex`] (timestamp → offset), whose pages have examples.
///
/// The active segment's index lives in memory and is appended to its file on flush; a sealed
/// segment's index is read through a read-only map.
#[derive(Debug)]
pub struct Index<E: IndexEntry> {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    base_offset: u64,
    max_entries: usize,
    entries: Entries,
    /// How many times entries the file holds were dropped (it is then replaced): a sync made
    /// outside the lock counts only if none were since (see [`mark_synced`](Self::mark_synced)).
    replacements: u64,
    kind: PhantomData<E>,
}

impl<E: IndexEntry> Index<E> {
    /// A new empty index for the segment at `base_offset`, holding at most `max_index_bytes` of
    /// entries. Nothing is written until [`flush`](Self::flush).
    pub fn create(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        base_offset: u64,
        max_index_bytes: usize,
    ) -> Self {
        let max_entries = Self::entries_in(max_index_bytes);
        Self::with_entries(
            fs,
            path,
            base_offset,
            max_entries,
            Entries::unwritten(Vec::new()),
        )
    }

    /// Load an index file into memory for appending (a missing file loads as empty). A trailing
    /// partial entry is dropped, and so are entries past the maximum (a time index keeps one more:
    /// its final entry); run [`sanity_check`](Self::sanity_check) before trusting the rest.
    ///
    /// # Errors
    /// [`Error::Io`] if the file exists but cannot be read.
    pub fn load(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        base_offset: u64,
        max_index_bytes: usize,
    ) -> Result<Self> {
        let max_entries = Self::entries_in(max_index_bytes);
        let mut buf = Vec::new();
        if let Some(file) = open_if_exists(&*fs, path)? {
            let len = file.len().at(path)?;
            let cap = ((max_entries + E::LOAD_SLACK) * E::LEN) as u64;
            buf.resize(len.min(cap) as usize / E::LEN * E::LEN, 0);
            file.read_exact_at(&mut buf, 0).at(path)?;
        }
        // Growing the file in place is safe; only a shrink needs the replace path.
        let entries = Entries::Memory {
            persisted: buf.len(),
            buf,
            replace: false,
            synced: true,
        };
        Ok(Self::with_entries(
            fs,
            path,
            base_offset,
            max_entries,
            entries,
        ))
    }

    /// Map a sealed index file read-only. A missing file maps as an empty index; a trailing partial
    /// entry is left out.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened or mapped.
    pub fn map(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        base_offset: u64,
        max_index_bytes: usize,
    ) -> Result<Self> {
        let bytes = if let Some(file) = open_if_exists(&*fs, path)? {
            let len = file.len().at(path)?;
            file.map_readonly(len / E::LEN as u64 * E::LEN as u64)
                .at(path)?
        } else {
            Bytes::new()
        };
        let max_entries = Self::entries_in(max_index_bytes).max(bytes.len() / E::LEN);
        Ok(Self::with_entries(
            fs,
            path,
            base_offset,
            max_entries,
            Entries::Mapped(bytes),
        ))
    }

    /// Whether the entries are a read-only map of the file (a sealed segment's index), which
    /// can be dropped and mapped again.
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self.entries, Entries::Mapped(_))
    }

    /// The base offset of the segment this index belongs to.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.bytes().len() / E::LEN
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The maximum number of entries.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Whether the index holds its maximum number of entries (the segment must roll).
    pub fn is_full(&self) -> bool {
        self.len() >= self.max_entries
    }

    /// Entry `i`, if it exists.
    pub fn entry(&self, i: usize) -> Option<E> {
        E::from_stored(self.stored(i)?, self.base_offset)
    }

    /// Write the entries not yet in the file, without syncing, and say how many bytes of the file
    /// a sync must make durable (and a token for [`mark_synced`](Self::mark_synced)): `None` when
    /// they already are, or when the file had to be replaced (that path syncs at once, since a
    /// rename must be durable too).
    ///
    /// # Errors
    /// [`Error::Io`] on a failed write.
    pub(crate) fn write_for_sync(&mut self) -> Result<Option<(usize, u64)>> {
        match &self.entries {
            Entries::Memory { replace: true, .. } => {
                self.flush(true)?;
                Ok(None)
            }
            Entries::Memory {
                buf,
                persisted,
                synced,
                ..
            } => {
                if *persisted == buf.len() && *synced {
                    return Ok(None);
                }
                self.flush(false)?;
                Ok(Some((self.bytes().len(), self.replacements)))
            }
            Entries::Mapped(_) => Ok(None),
        }
    }

    /// After the file was synced (outside any lock) when it held `len` bytes of entries, as
    /// [`write_for_sync`](Self::write_for_sync) said: record that, unless entries were dropped
    /// meanwhile (the file is then replaced, maybe not durably yet).
    pub(crate) fn mark_synced(&mut self, (len, replacements): (usize, u64)) {
        if replacements != self.replacements {
            return;
        }
        if let Entries::Memory {
            persisted,
            replace: false,
            synced,
            ..
        } = &mut self.entries
        {
            if *persisted == len {
                *synced = true;
            }
        }
    }

    /// Make the next [`flush`](Self::flush) replace the file with the entries held now (the file
    /// may hold entries that are not among them).
    pub(crate) fn mark_for_replace(&mut self) {
        if let Entries::Memory {
            persisted, replace, ..
        } = &mut self.entries
        {
            *persisted = 0;
            *replace = true;
            self.replacements += 1;
        }
    }

    /// Remove every entry.
    pub fn clear(&mut self) {
        self.truncate_entries(0);
    }

    /// Write entries not yet in the file; with `sync`, make the file durable.
    ///
    /// # Errors
    /// [`Error::Io`] on a failed write or sync.
    pub fn flush(&mut self, sync: bool) -> Result<()> {
        let Entries::Memory {
            buf,
            persisted,
            replace,
            synced,
        } = &mut self.entries
        else {
            return Ok(());
        };
        if *replace {
            // Write-then-rename: never shrink a file an older segment handle may have mapped.
            // Synced only when asked (an index is derived data: a roll writes it without waiting
            // for the disk, and syncs it before a recovery point passes the segment).
            replace_file(&*self.fs, &self.path, buf, sync).at(&self.path)?;
            *replace = false;
            *synced = sync;
        } else if *persisted < buf.len() || (sync && !*synced) {
            let file = self.fs.open(&self.path, OpenMode::Create).at(&self.path)?;
            if *persisted < buf.len() {
                file.write_all_at(&buf[*persisted..], *persisted as u64)
                    .at(&self.path)?;
                *synced = false;
            }
            if sync {
                file.sync_data().at(&self.path)?;
                *synced = true;
            }
        }
        *persisted = buf.len();
        Ok(())
    }

    /// Delete the index file.
    ///
    /// # Errors
    /// [`Error::Io`] if removal fails for a reason other than the file being absent.
    pub fn delete(&self) -> Result<()> {
        crate::fs::remove_if_exists(&*self.fs, &self.path)
    }

    // ---- For the entry kinds' own methods ----------------------------------------------------------

    /// The last entry, if any (`None` also if it overflows the offset range).
    pub(super) fn last(&self) -> Option<E> {
        self.len().checked_sub(1).and_then(|i| self.entry(i))
    }

    /// The last entry whose stored form satisfies `at_or_below`, which must hold for a prefix of the
    /// entries (they are sorted by the key it tests). `None` if no entry does.
    pub(super) fn floor(&self, at_or_below: impl Fn(E::Stored) -> bool) -> Option<E> {
        self.partition_point(at_or_below)
            .checked_sub(1)
            .and_then(|i| self.entry(i))
    }

    /// How many leading entries satisfy `pred`, by binary search. `pred` sees stored entries, with
    /// relative offsets, so an entry whose absolute offset overflows still sorts where it lies.
    pub(super) fn partition_point(&self, pred: impl Fn(E::Stored) -> bool) -> usize {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.stored(mid).is_none_or(&pred) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// `offset` relative to the base offset, as an entry stores it.
    ///
    /// # Errors
    /// [`Error::IndexAppend`] if it is below the base offset or too far above it for a `u32`.
    pub(super) fn relative_offset(&self, offset: u64) -> Result<u32> {
        offset
            .checked_sub(self.base_offset)
            .and_then(|r| u32::try_from(r).ok())
            .ok_or_else(|| {
                self.reject(format!(
                    "offset {offset} not within u32 of base {}",
                    self.base_offset
                ))
            })
    }

    /// The error for an entry the index does not take.
    pub(super) fn reject(&self, reason: String) -> Error {
        Error::IndexAppend {
            path: self.path.clone(),
            reason,
        }
    }

    /// Append an entry, already checked against the kind's rules.
    pub(super) fn push(&mut self, stored: E::Stored) {
        E::encode(stored, self.make_owned());
    }

    /// Run `rule(previous, entry)` over the entries in order.
    ///
    /// # Errors
    /// [`Error::Corrupt`] at the first entry that breaks `rule`, or whose absolute offset overflows
    /// `u64` (reported as `overflow`).
    pub(super) fn check_entries(
        &self,
        overflow: &str,
        rule: impl Fn(Option<E>, E) -> std::result::Result<(), &'static str>,
    ) -> Result<()> {
        let mut prev = None;
        for i in 0..self.len() {
            let at = (i * E::LEN) as u64;
            let e = self
                .entry(i)
                .ok_or_else(|| Error::corrupt(&self.path, at, overflow))?;
            rule(prev, e).map_err(|reason| Error::corrupt(&self.path, at, reason))?;
            prev = Some(e);
        }
        Ok(())
    }

    /// Let the maximum be `max_entries` (at least one).
    pub(super) fn set_max_entries(&mut self, max_entries: usize) {
        self.max_entries = max_entries.max(1);
    }

    /// Keep only the first `n` entries.
    pub(super) fn truncate_entries(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        let keep = n * E::LEN;
        self.make_owned().truncate(keep);
        if let Entries::Memory {
            persisted, replace, ..
        } = &mut self.entries
        {
            if *persisted > keep {
                *persisted = keep;
                *replace = true;
                self.replacements += 1;
            }
        }
    }

    // ---- Storage ---------------------------------------------------------------------------------

    fn with_entries(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        base_offset: u64,
        max_entries: usize,
        entries: Entries,
    ) -> Self {
        Index {
            fs,
            path: path.to_owned(),
            base_offset,
            max_entries,
            entries,
            replacements: 0,
            kind: PhantomData,
        }
    }

    /// How many entries fit in `max_index_bytes` (at least one).
    fn entries_in(max_index_bytes: usize) -> usize {
        (max_index_bytes / E::LEN).max(1)
    }

    fn bytes(&self) -> &[u8] {
        match &self.entries {
            Entries::Memory { buf, .. } => buf,
            Entries::Mapped(b) => b,
        }
    }

    /// Entry `i` as stored.
    fn stored(&self, i: usize) -> Option<E::Stored> {
        let start = i.checked_mul(E::LEN)?;
        E::decode(self.bytes().get(start..start.checked_add(E::LEN)?)?)
    }

    fn make_owned(&mut self) -> &mut Vec<u8> {
        if let Entries::Mapped(b) = &self.entries {
            self.entries = Entries::unwritten(b.to_vec());
        }
        match &mut self.entries {
            Entries::Memory { buf, .. } => buf,
            Entries::Mapped(_) => unreachable!("converted to memory above"),
        }
    }
}

/// Open `path` read-only, `None` if it does not exist (a missing index is rebuilt, not an error).
fn open_if_exists(fs: &dyn FileSystem, path: &Path) -> Result<Option<Arc<dyn File>>> {
    match fs.open(path, OpenMode::Read) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}
