//! Storage shared by the offset and time indexes: fixed-size little-endian entries kept either in
//! memory (the active segment's index, appended to its file lazily) or in a read-only map of the
//! file (a sealed segment's index).
//!
//! SIGBUS discipline: a file that may be mapped is never shrunk. When entries are removed from an
//! index, the next flush replaces the whole file by write-then-rename, so an old map (held by a
//! reader of an older segment handle) keeps its inode.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{IoContext, Result};
use crate::fs::{replace_file, FileSystem, OpenMode};

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

#[derive(Debug)]
pub(crate) struct IndexFile {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    entry_len: usize,
    max_entries: usize,
    entries: Entries,
}

impl IndexFile {
    /// An index whose entries are held in memory, loaded from `path` if it exists (a file whose
    /// length is not a whole number of entries is cut to the last whole entry). At most
    /// `max_bytes / entry_len + slack` entries are kept (`slack` 1 for a time index, whose final
    /// entry may go past the maximum).
    pub fn load(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        entry_len: usize,
        max_bytes: usize,
        slack: usize,
    ) -> Result<IndexFile> {
        let max_entries = (max_bytes / entry_len).max(1);
        let mut buf = Vec::new();
        if let Some(file) = open_if_exists(&*fs, path)? {
            let len = file.len().at(path)?;
            let keep = (len.min(((max_entries + slack) * entry_len) as u64) as usize / entry_len)
                * entry_len;
            buf.resize(keep, 0);
            file.read_exact_at(&mut buf, 0).at(path)?;
        }
        let persisted = buf.len();
        Ok(IndexFile {
            fs,
            path: path.to_owned(),
            entry_len,
            max_entries,
            // Growing the file in place is safe; only a shrink needs the replace path.
            entries: Entries::Memory {
                buf,
                persisted,
                replace: false,
                synced: true,
            },
        })
    }

    /// An empty in-memory index that will write `path`.
    pub fn empty(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        entry_len: usize,
        max_bytes: usize,
    ) -> IndexFile {
        IndexFile {
            fs,
            path: path.to_owned(),
            entry_len,
            max_entries: (max_bytes / entry_len).max(1),
            entries: Entries::Memory {
                buf: Vec::new(),
                persisted: 0,
                replace: true,
                synced: false,
            },
        }
    }

    /// Map a sealed index file read-only (a missing file maps as empty).
    pub fn map(
        fs: Arc<dyn FileSystem>,
        path: &Path,
        entry_len: usize,
        max_bytes: usize,
    ) -> Result<IndexFile> {
        let max_entries = (max_bytes / entry_len).max(1);
        let bytes = if let Some(file) = open_if_exists(&*fs, path)? {
            let len = file.len().at(path)?;
            let whole = (len / entry_len as u64) * entry_len as u64;
            file.map_readonly(whole).at(path)?
        } else {
            Bytes::new()
        };
        Ok(IndexFile {
            fs,
            path: path.to_owned(),
            entry_len,
            max_entries: max_entries.max(bytes.len() / entry_len),
            entries: Entries::Mapped(bytes),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.entries {
            Entries::Memory { buf, .. } => buf,
            Entries::Mapped(b) => b,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes().len() / self.entry_len
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub fn set_max_entries(&mut self, max: usize) {
        self.max_entries = max.max(1);
    }

    pub fn is_full(&self) -> bool {
        self.len() >= self.max_entries
    }

    /// The raw bytes of entry `i`.
    pub fn entry(&self, i: usize) -> Option<&[u8]> {
        let b = self.bytes();
        b.get(i * self.entry_len..(i + 1) * self.entry_len)
    }

    fn make_owned(&mut self) -> &mut Vec<u8> {
        if let Entries::Mapped(b) = &self.entries {
            self.entries = Entries::Memory {
                buf: b.to_vec(),
                persisted: 0,
                replace: true,
                synced: false,
            };
        }
        match &mut self.entries {
            Entries::Memory { buf, .. } => buf,
            Entries::Mapped(_) => unreachable!("converted to memory above"),
        }
    }

    pub fn push(&mut self, entry: &[u8]) {
        debug_assert_eq!(entry.len(), self.entry_len);
        self.make_owned().extend_from_slice(entry);
    }

    /// Keep only the first `n` entries.
    pub fn truncate_entries(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        let keep = n * self.entry_len;
        self.make_owned().truncate(keep);
        if let Entries::Memory {
            persisted, replace, ..
        } = &mut self.entries
        {
            if *persisted > keep {
                *persisted = keep;
                *replace = true;
            }
        }
    }

    /// Write unpersisted entries to the file, optionally syncing it.
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

    /// Remove the file.
    pub fn delete(&self) -> Result<()> {
        crate::fs::remove_if_exists(&*self.fs, &self.path)
    }
}

/// Open `path` read-only, `None` if it does not exist (a missing index is rebuilt, not an error).
fn open_if_exists(fs: &dyn FileSystem, path: &Path) -> Result<Option<Arc<dyn crate::fs::File>>> {
    match fs.open(path, OpenMode::Read) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::Error::io(path, e)),
    }
}
