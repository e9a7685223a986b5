//! The partition checkpoint (log start offset, recovery point, where producer state begins) and
//! the clean-shutdown marker (what a clean close left), both checksummed.
//!
//! Checkpoint layout (little-endian, version 2, 33 bytes): magic `TLCP` (4) | version u8 (1) |
//! log start offset u64 (8) | recovery point u64 (8) | producer state from u64 (8; `u64::MAX` =
//! no idempotent producer ever wrote here) | CRC-32 of the preceding bytes (4). Version 1 (25
//! bytes) lacks the producer field. Replaced atomically.
//!
//! Clean-shutdown marker layout (little-endian, version 1, 49 bytes): magic `TLCS` (4) | version u8
//! (1) | log start offset u64 (8) | end offset u64 (8) | producer state from u64 (8) | active
//! segment base offset u64 (8) | active segment size u64 (8) | CRC-32 of the preceding bytes (4).
//! Written (and synced) last by a clean close, deleted first by the next open.
//!
//! The marker repeats what the checkpoint holds, so after a clean close either file alone tells
//! the log start offset: one damaged or lost file never brings back records `delete_records`
//! removed.

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::format::{get_u32, get_u64};
use crate::fs::{read_small_file, write_atomic, FileSystem, OpenMode};

const MAGIC: &[u8; 4] = b"TLCP";
const VERSION: u8 = 2;
const VERSION_1: u8 = 1;
const START_OFFSET: usize = MAGIC.len() + 1;
const RECOVERY_OFFSET: usize = START_OFFSET + 8;
const PRODUCERS_OFFSET: usize = RECOVERY_OFFSET + 8;
const CRC_OFFSET: usize = PRODUCERS_OFFSET + 8;
const LEN: usize = CRC_OFFSET + 4;
/// Version 1 ended after the recovery point.
const V1_CRC_OFFSET: usize = RECOVERY_OFFSET + 8;
const V1_LEN: usize = V1_CRC_OFFSET + 4;

/// Name of the checkpoint file in a partition directory.
pub(crate) const FILE_NAME: &str = "checkpoint";

/// `u64::MAX` in the producer field: no idempotent producer state.
const NO_PRODUCERS: u64 = u64::MAX;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Records below this offset are logically deleted.
    pub log_start_offset: u64,
    /// Every batch below this offset is known to be durable.
    pub recovery_point: u64,
    /// Idempotent producers have written from this offset on: their state is rebuilt from the
    /// log from here when the producer snapshot is missing or stale. `None`: none ever did.
    pub producers_from: Option<u64>,
}

impl Checkpoint {
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[START_OFFSET..START_OFFSET + 8].copy_from_slice(&self.log_start_offset.to_le_bytes());
        b[RECOVERY_OFFSET..RECOVERY_OFFSET + 8].copy_from_slice(&self.recovery_point.to_le_bytes());
        let producers = self.producers_from.unwrap_or(NO_PRODUCERS);
        b[PRODUCERS_OFFSET..PRODUCERS_OFFSET + 8].copy_from_slice(&producers.to_le_bytes());
        let crc = crc32fast::hash(&b[..CRC_OFFSET]);
        b[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8], path: &Path) -> Result<Checkpoint> {
        let bad = |reason: &str| Error::corrupt(path, 0, reason);
        if b.len() < 5 || &b[..4] != MAGIC {
            return Err(bad("not a topiclog checkpoint (bad magic)"));
        }
        let (crc_at, producers_from) = match (b[4], b.len()) {
            (VERSION, LEN) => {
                let p = get_u64(b, PRODUCERS_OFFSET);
                (CRC_OFFSET, (p != NO_PRODUCERS).then_some(p))
            }
            (VERSION_1, V1_LEN) => (V1_CRC_OFFSET, None),
            (VERSION | VERSION_1, _) => return Err(bad("checkpoint has the wrong length")),
            _ => return Err(bad("checkpoint has an unknown version")),
        };
        if crc32fast::hash(&b[..crc_at]) != get_u32(b, crc_at) {
            return Err(bad("checkpoint CRC mismatch"));
        }
        Ok(Checkpoint {
            log_start_offset: get_u64(b, START_OFFSET),
            recovery_point: get_u64(b, RECOVERY_OFFSET),
            producers_from,
        })
    }

    /// Read the checkpoint in `dir`: `Ok(None)` if there is none.
    pub fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Checkpoint>> {
        let path = dir.join(FILE_NAME);
        if !fs.exists(&path).at(&path)? {
            return Ok(None);
        }
        let bytes = read_small_file(fs, &path, 4096)?;
        Checkpoint::decode(&bytes, &path).map(Some)
    }

    pub fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let path = dir.join(FILE_NAME);
        write_atomic(fs, &path, &self.encode()).at(&path)
    }
}

/// Name of the clean-shutdown marker.
pub(crate) const CLEAN_SHUTDOWN: &str = ".clean_shutdown";

const CLEAN_MAGIC: &[u8; 4] = b"TLCS";
const CLEAN_VERSION: u8 = 1;
const CLEAN_START: usize = CLEAN_MAGIC.len() + 1;
const CLEAN_END: usize = CLEAN_START + 8;
const CLEAN_PRODUCERS: usize = CLEAN_END + 8;
const CLEAN_ACTIVE_BASE: usize = CLEAN_PRODUCERS + 8;
const CLEAN_ACTIVE_SIZE: usize = CLEAN_ACTIVE_BASE + 8;
const CLEAN_CRC: usize = CLEAN_ACTIVE_SIZE + 8;
const CLEAN_LEN: usize = CLEAN_CRC + 4;

/// What a clean close saw: the next open trusts the files only if they still match it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CleanShutdown {
    pub log_start_offset: u64,
    /// The log end offset; also the recovery point (everything was synced).
    pub end_offset: u64,
    pub producers_from: Option<u64>,
    pub active_base: u64,
    /// Bytes of batches in the active segment (its file was trimmed to exactly this).
    pub active_size: u64,
}

impl CleanShutdown {
    /// The checkpoint a clean close wrote just before this marker.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            log_start_offset: self.log_start_offset,
            recovery_point: self.end_offset,
            producers_from: self.producers_from,
        }
    }

    pub fn encode(&self) -> [u8; CLEAN_LEN] {
        let mut b = [0u8; CLEAN_LEN];
        b[..4].copy_from_slice(CLEAN_MAGIC);
        b[4] = CLEAN_VERSION;
        let producers = self.producers_from.unwrap_or(NO_PRODUCERS);
        for (at, v) in [
            (CLEAN_START, self.log_start_offset),
            (CLEAN_END, self.end_offset),
            (CLEAN_PRODUCERS, producers),
            (CLEAN_ACTIVE_BASE, self.active_base),
            (CLEAN_ACTIVE_SIZE, self.active_size),
        ] {
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        let crc = crc32fast::hash(&b[..CLEAN_CRC]);
        b[CLEAN_CRC..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8], path: &Path) -> Result<CleanShutdown> {
        let bad = |reason: &str| Error::corrupt(path, 0, reason);
        if b.len() != CLEAN_LEN || &b[..4] != CLEAN_MAGIC || b[4] != CLEAN_VERSION {
            return Err(bad("not a topiclog clean-shutdown marker"));
        }
        if crc32fast::hash(&b[..CLEAN_CRC]) != get_u32(b, CLEAN_CRC) {
            return Err(bad("clean-shutdown marker CRC mismatch"));
        }
        let producers = get_u64(b, CLEAN_PRODUCERS);
        let m = CleanShutdown {
            log_start_offset: get_u64(b, CLEAN_START),
            end_offset: get_u64(b, CLEAN_END),
            producers_from: (producers != NO_PRODUCERS).then_some(producers),
            active_base: get_u64(b, CLEAN_ACTIVE_BASE),
            active_size: get_u64(b, CLEAN_ACTIVE_SIZE),
        };
        if m.log_start_offset > m.end_offset || m.active_base > m.end_offset {
            return Err(bad("clean-shutdown marker offsets are out of order"));
        }
        Ok(m)
    }

    /// Read the marker in `dir`: `Ok(None)` if there is none; `Err(Corrupt)` if it does not
    /// verify (the caller then opens as after a crash).
    pub fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<CleanShutdown>> {
        let path = dir.join(CLEAN_SHUTDOWN);
        if !fs.exists(&path).at(&path)? {
            return Ok(None);
        }
        let bytes = read_small_file(fs, &path, 4096)?;
        CleanShutdown::decode(&bytes, &path).map(Some)
    }

    /// Write the marker durably (file synced, directory synced).
    pub fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let path = dir.join(CLEAN_SHUTDOWN);
        let f = fs.open(&path, OpenMode::Create).at(&path)?;
        f.set_len(0).at(&path)?;
        f.write_all_at(&self.encode(), 0).at(&path)?;
        f.sync_all().at(&path)?;
        fs.sync_dir(dir).at(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        for producers_from in [None, Some(12)] {
            let c = Checkpoint {
                log_start_offset: 7,
                recovery_point: 1 << 40,
                producers_from,
            };
            let b = c.encode();
            assert_eq!(Checkpoint::decode(&b, Path::new("x")).unwrap(), c);
            for i in 0..b.len() {
                let mut d = b;
                d[i] ^= 0x10;
                assert!(Checkpoint::decode(&d, Path::new("x")).is_err());
            }
            for n in 0..b.len() {
                assert!(Checkpoint::decode(&b[..n], Path::new("x")).is_err());
            }
        }
    }

    #[test]
    fn version_1_is_read() {
        let mut b = Vec::from(*MAGIC);
        b.push(1);
        b.extend_from_slice(&5u64.to_le_bytes());
        b.extend_from_slice(&9u64.to_le_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            Checkpoint::decode(&b, Path::new("x")).unwrap(),
            Checkpoint {
                log_start_offset: 5,
                recovery_point: 9,
                producers_from: None
            }
        );
    }

    #[test]
    fn clean_marker_round_trip_and_damage() {
        let m = CleanShutdown {
            log_start_offset: 3,
            end_offset: 40,
            producers_from: Some(4),
            active_base: 30,
            active_size: 777,
        };
        let b = m.encode();
        assert_eq!(CleanShutdown::decode(&b, Path::new("x")).unwrap(), m);
        for i in 0..b.len() {
            let mut d = b;
            d[i] ^= 0x01;
            assert!(CleanShutdown::decode(&d, Path::new("x")).is_err(), "{i}");
        }
        assert!(CleanShutdown::decode(&[], Path::new("x")).is_err());
        assert_eq!(m.checkpoint().recovery_point, 40);
    }
}
