//! The producer id counter file, `<store>/__producer_ids` (layout: [`ProducerIdCounter`]).
//!
//! The store owns the file as it owns every file in its directory: its name, its bytes, and the
//! move from an earlier version's name at open. Which id a producer gets is decided a layer up,
//! by the broker (`crate::broker`), which reads and advances the counter through these methods.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::meta::{Decode, Encode, ProducerIdCounter};
use crate::fs::{read_small_file, write_atomic, FileSystem};

use super::Store;

/// Name of the file holding the next producer id (in the store's reserved `__` namespace, so no
/// topic can take it).
pub(super) const FILE: &str = "__producer_ids";

/// Where earlier versions kept the counter, a name a topic may now take. Open moves a valid
/// counter from there to [`FILE`]; a damaged one is left for [`Store::producer_id_counter`] to
/// report.
pub(super) const LEGACY_FILE: &str = "producer-ids";

/// Read a producer id counter file: the next id.
fn read_counter(fs: &dyn FileSystem, path: &Path) -> Result<i64> {
    let b = read_small_file(fs, path, 64)?;
    ProducerIdCounter::decode(&b)
        .map(|c| c.next)
        .map_err(|e| e.corrupt(path, "producer id counter"))
}

/// Replace the counter file at `path` with `next`, durably.
fn write_counter(fs: &dyn FileSystem, path: &Path, next: i64) -> Result<()> {
    let b = ProducerIdCounter { next }.encode_to_vec();
    write_atomic(fs, path, &b).at(path)
}

/// Move an earlier version's counter (`producer-ids`, a file) to `__producer_ids`, keeping the
/// larger of the two so ids never go backwards. A crash in between leaves both, and the next
/// open does it again. A damaged legacy counter is left where it is: the next producer id
/// allocation reports it, as it did before.
pub(super) fn migrate_legacy(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let legacy = dir.join(LEGACY_FILE);
    let from_legacy = match read_counter(fs, &legacy) {
        Ok(next) => next,
        Err(Error::Corrupt { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let path = dir.join(FILE);
    let current = if fs.exists(&path).at(&path)? {
        read_counter(fs, &path)?
    } else {
        0
    };
    write_counter(fs, &path, from_legacy.max(current))?;
    fs.remove_file(&legacy).at(&legacy)?;
    fs.sync_dir(dir).at(dir)
}

impl Store {
    /// The path of the producer id counter file.
    pub(crate) fn producer_id_counter_path(&self) -> PathBuf {
        self.inner.dir.join(FILE)
    }

    /// The next producer id the counter holds (0 without a counter file). A legacy counter that
    /// open could not migrate (a damaged one) still counts, or is reported.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming a damaged counter file; I/O errors.
    pub(crate) fn producer_id_counter(&self) -> Result<i64> {
        let fs = &*self.inner.env.fs;
        let path = self.producer_id_counter_path();
        let mut next = if fs.exists(&path).at(&path)? {
            read_counter(fs, &path)?
        } else {
            0
        };
        let legacy = self.inner.dir.join(LEGACY_FILE);
        if fs.exists(&legacy).at(&legacy)? && !fs.is_dir(&legacy).at(&legacy)? {
            next = next.max(read_counter(fs, &legacy)?);
        }
        Ok(next)
    }

    /// Replace the counter with `next`, durably.
    ///
    /// # Errors
    /// I/O errors.
    pub(crate) fn set_producer_id_counter(&self, next: i64) -> Result<()> {
        write_counter(&*self.inner.env.fs, &self.producer_id_counter_path(), next)
    }

    /// The largest producer id any partition of the store still remembers.
    pub(crate) fn max_producer_id_in_use(&self) -> Option<i64> {
        self.inner
            .topics
            .read()
            .values()
            .flat_map(|t| t.partitions())
            .filter_map(|p| p.max_producer_id())
            .max()
    }
}
