//! The partition checkpoint: log start offset and recovery point, replaced atomically.
//!
//! Layout (little-endian, 25 bytes): magic `TLCP` (4) | version u8 (1) | log start offset u64 (8) |
//! recovery point u64 (8) | CRC-32 of the preceding 21 bytes (4).

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::format::{get_u32, get_u64};
use crate::fs::{read_small_file, write_atomic, FileSystem};

const MAGIC: &[u8; 4] = b"TLCP";
const VERSION: u8 = 1;
const START_OFFSET: usize = MAGIC.len() + 1;
const RECOVERY_OFFSET: usize = START_OFFSET + 8;
const CRC_OFFSET: usize = RECOVERY_OFFSET + 8;
const LEN: usize = CRC_OFFSET + 4;

/// Name of the checkpoint file in a partition directory.
pub(crate) const FILE_NAME: &str = "checkpoint";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Records below this offset are logically deleted.
    pub log_start_offset: u64,
    /// Every batch below this offset is known to be durable.
    pub recovery_point: u64,
}

impl Checkpoint {
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[START_OFFSET..START_OFFSET + 8].copy_from_slice(&self.log_start_offset.to_le_bytes());
        b[RECOVERY_OFFSET..RECOVERY_OFFSET + 8].copy_from_slice(&self.recovery_point.to_le_bytes());
        let crc = crc32fast::hash(&b[..CRC_OFFSET]);
        b[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8], path: &Path) -> Result<Checkpoint> {
        let bad = |reason: &str| Error::corrupt(path, 0, reason);
        if b.len() != LEN {
            return Err(bad("checkpoint has the wrong length"));
        }
        if &b[..4] != MAGIC || b[4] != VERSION {
            return Err(bad("not a topiclog checkpoint (bad magic or version)"));
        }
        if crc32fast::hash(&b[..CRC_OFFSET]) != get_u32(b, CRC_OFFSET) {
            return Err(bad("checkpoint CRC mismatch"));
        }
        Ok(Checkpoint {
            log_start_offset: get_u64(b, START_OFFSET),
            recovery_point: get_u64(b, RECOVERY_OFFSET),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let c = Checkpoint {
            log_start_offset: 7,
            recovery_point: 1 << 40,
        };
        let b = c.encode();
        assert_eq!(Checkpoint::decode(&b, Path::new("x")).unwrap(), c);
        for i in 0..b.len() {
            let mut d = b;
            d[i] ^= 0x10;
            assert!(Checkpoint::decode(&d, Path::new("x")).is_err());
        }
        assert!(Checkpoint::decode(&b[..10], Path::new("x")).is_err());
    }
}
