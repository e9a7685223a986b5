//! The partition checkpoint (log start offset, recovery point, where producer state begins) and
//! the clean-shutdown marker (what a clean close left): when they are written and what the next
//! open makes of them. Their bytes are [`crate::format::meta`]'s.
//!
//! The checkpoint is replaced atomically. The marker is written (and synced) last by a clean
//! close and deleted first by the next open. It repeats what the checkpoint holds, so after a
//! clean close either file alone tells the log start offset: one damaged or lost file never brings
//! back records `delete_records` removed.

use std::path::Path;

use crate::error::{IoContext, Result};
use crate::format::meta::{Decode, Encode};
use crate::fs::{read_small_file, write_atomic, FileSystem, OpenMode};

pub(crate) use crate::format::meta::{AdoptedLog, Checkpoint, CleanShutdown, TrustedEnd};

/// Name of the checkpoint file in a partition directory.
pub(crate) const FILE_NAME: &str = "checkpoint";

/// Name of the clean-shutdown marker.
pub(crate) const CLEAN_SHUTDOWN: &str = ".clean_shutdown";

/// Largest checkpoint or marker read (both are a few dozen bytes).
const MAX_FILE_LEN: u64 = 4096;

impl Checkpoint {
    /// Read the checkpoint in `dir`: `Ok(None)` if there is none.
    pub(crate) fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Checkpoint>> {
        let path = dir.join(FILE_NAME);
        if !fs.exists(&path).at(&path)? {
            return Ok(None);
        }
        let bytes = read_small_file(fs, &path, MAX_FILE_LEN)?;
        Checkpoint::decode(&bytes)
            .map(Some)
            .map_err(|e| e.corrupt(&path, "checkpoint"))
    }

    /// Replace the checkpoint in `dir`, durably.
    pub(crate) fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let path = dir.join(FILE_NAME);
        write_atomic(fs, &path, &self.encode_to_vec()).at(&path)
    }
}

/// Name of the file that marks a log written by Kafka and adopted ([`AdoptedLog`]).
pub(crate) const ADOPTED: &str = "kafka-adopted";

impl AdoptedLog {
    /// Read the marker in `dir`: `Ok(None)` if there is none.
    pub(crate) fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<AdoptedLog>> {
        let path = dir.join(ADOPTED);
        if !fs.exists(&path).at(&path)? {
            return Ok(None);
        }
        // 16 bytes per adopted segment.
        let bytes = read_small_file(fs, &path, 64 << 20)?;
        AdoptedLog::decode(&bytes)
            .map(Some)
            .map_err(|e| e.corrupt(&path, "Kafka adoption marker"))
    }

    /// Write the marker in `dir`, durably.
    pub(crate) fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let path = dir.join(ADOPTED);
        write_atomic(fs, &path, &self.encode_to_vec()).at(&path)
    }
}

impl CleanShutdown {
    /// The checkpoint a clean close wrote just before this marker.
    pub(crate) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            log_start_offset: self.log_start_offset,
            recovery_point: self.end_offset,
            producers_from: self.producers_from,
        }
    }

    /// Read the marker in `dir`: `Ok(None)` if there is none; `Err(Corrupt)` if it does not
    /// verify (the caller then opens as after a crash).
    pub(crate) fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<CleanShutdown>> {
        let path = dir.join(CLEAN_SHUTDOWN);
        if !fs.exists(&path).at(&path)? {
            return Ok(None);
        }
        let bytes = read_small_file(fs, &path, MAX_FILE_LEN)?;
        CleanShutdown::decode(&bytes)
            .map(Some)
            .map_err(|e| e.corrupt(&path, "clean-shutdown marker"))
    }

    /// Write the marker durably (file synced, directory synced).
    pub(crate) fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let path = dir.join(CLEAN_SHUTDOWN);
        let f = fs.open(&path, OpenMode::Create).at(&path)?;
        f.set_len(0).at(&path)?;
        f.write_all_at(&self.encode_to_vec(), 0).at(&path)?;
        f.sync_all().at(&path)?;
        fs.sync_dir(dir).at(dir)
    }
}

/// Name of the trusted-end marker ([`TrustedEnd`]): present only while a poisoned partition has
/// records past what it can vouch for that no recovery has cut yet.
pub(crate) const TRUSTED_END: &str = ".trusted_end";

impl TrustedEnd {
    /// Read the marker in `dir`: `Ok(None)` if there is none.
    pub(crate) fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<TrustedEnd>> {
        let path = dir.join(TRUSTED_END);
        if !fs.exists(&path).at(&path)? {
            return Ok(None);
        }
        let bytes = read_small_file(fs, &path, MAX_FILE_LEN)?;
        TrustedEnd::decode(&bytes)
            .map(Some)
            .map_err(|e| e.corrupt(&path, "trusted-end marker"))
    }

    /// Write the marker in `dir`, durably (atomic replace).
    pub(crate) fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let path = dir.join(TRUSTED_END);
        write_atomic(fs, &path, &self.encode_to_vec()).at(&path)
    }

    /// Remove the marker in `dir`, durably (once what lay past it is cut).
    pub(crate) fn remove(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let path = dir.join(TRUSTED_END);
        if !fs.exists(&path).at(&path)? {
            return Ok(());
        }
        crate::fs::remove_if_exists(fs, &path)?;
        fs.sync_dir(dir).at(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::SimFs;

    #[test]
    fn files_round_trip_and_damage_names_the_file() {
        let fs = SimFs::new(1);
        let dir = Path::new("/p");
        fs.create_dir_all(dir).unwrap();
        assert_eq!(Checkpoint::read(&fs, dir).unwrap(), None);
        assert_eq!(CleanShutdown::read(&fs, dir).unwrap(), None);
        let c = Checkpoint {
            log_start_offset: 7,
            recovery_point: 9,
            producers_from: None,
        };
        c.write(&fs, dir).unwrap();
        assert_eq!(Checkpoint::read(&fs, dir).unwrap(), Some(c));
        let m = CleanShutdown {
            log_start_offset: 3,
            end_offset: 40,
            producers_from: Some(4),
            active_base: 30,
            active_size: 777,
        };
        m.write(&fs, dir).unwrap();
        assert_eq!(CleanShutdown::read(&fs, dir).unwrap(), Some(m));
        assert_eq!(m.checkpoint().recovery_point, 40);
        fs.write_file(&dir.join(FILE_NAME), b"TLCP\x03 not a checkpoint");
        let e = Checkpoint::read(&fs, dir).unwrap_err().to_string();
        assert!(
            e.contains("/p/checkpoint") && e.contains("checkpoint: body length does not match"),
            "{e}"
        );
    }
}
