//! The cleaner checkpoint: where compaction stands, replaced atomically.
//!
//! Layout (little-endian): magic `TLCC` (4) | version u8 (1) | first dirty offset u64 (8) |
//! unused u64 (8; once a "hole-exempt end", written 0 and ignored) | swap flag u8 (1) | swap base u64 (8) | swap end u64 (8) |
//! horizon count u32 (4) | per horizon: end offset u64, horizon ms i64, tombstones u64 (24 each) |
//! CRC-32 of everything before it (4).

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::format::{get_i64, get_u32, get_u64};
use crate::fs::{read_small_file, write_atomic, FileSystem};

const MAGIC: &[u8; 4] = b"TLCC";
const VERSION: u8 = 1;
const FIXED_LEN: usize = 4 + 1 + 8 + 8 + 1 + 8 + 8 + 4;
const HORIZON_LEN: usize = 24;
/// Most tombstone horizons kept; older ones are merged (keeping the later horizon, which only
/// keeps tombstones longer).
pub(crate) const MAX_HORIZONS: usize = 64;

/// Name of the cleaner checkpoint file in a partition directory.
pub(crate) const FILE_NAME: &str = "cleaner-checkpoint";

/// Tombstones with offsets in `[previous entry's end, end)` were first seen by a cleaner pass that
/// finished before `horizon_ms - delete_retention`; they may be dropped once `horizon_ms` passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Horizon {
    pub end: u64,
    pub horizon_ms: i64,
    /// Tombstones the pass that set this horizon kept in the range (0 = nothing to wait for).
    pub tombstones: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    /// Records below this offset have been through a cleaner pass's key map.
    pub first_dirty: u64,
    /// A swap in progress: the cleaned segment's base offset and the end of the range it replaces.
    pub swap: Option<(u64, u64)>,
    /// Tombstone horizons, by increasing `end`.
    pub horizons: Vec<Horizon>,
}

impl CleanerCheckpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(FIXED_LEN + self.horizons.len() * HORIZON_LEN + 4);
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.extend_from_slice(&self.first_dirty.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        let (flag, base, end) = self.swap.map_or((0u8, 0, 0), |(b, e)| (1, b, e));
        b.push(flag);
        b.extend_from_slice(&base.to_le_bytes());
        b.extend_from_slice(&end.to_le_bytes());
        b.extend_from_slice(&(self.horizons.len() as u32).to_le_bytes());
        for h in &self.horizons {
            b.extend_from_slice(&h.end.to_le_bytes());
            b.extend_from_slice(&h.horizon_ms.to_le_bytes());
            b.extend_from_slice(&h.tombstones.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8], path: &Path) -> Result<CleanerCheckpoint> {
        let bad = |reason: &str| Error::corrupt(path, 0, reason);
        if b.len() < FIXED_LEN + 4 {
            return Err(bad("cleaner checkpoint is truncated"));
        }
        if &b[..4] != MAGIC || b[4] != VERSION {
            return Err(bad(
                "not a topiclog cleaner checkpoint (bad magic or version)",
            ));
        }
        let body = b.len() - 4;
        if crc32fast::hash(&b[..body]) != get_u32(b, body) {
            return Err(bad("cleaner checkpoint CRC mismatch"));
        }
        let count = get_u32(b, FIXED_LEN - 4) as usize;
        if count > MAX_HORIZONS || FIXED_LEN + count * HORIZON_LEN != body {
            return Err(bad(
                "cleaner checkpoint horizon count does not match its length",
            ));
        }
        let swap = match b[21] {
            0 => None,
            1 => Some((get_u64(b, 22), get_u64(b, 30))),
            _ => return Err(bad("cleaner checkpoint swap flag is invalid")),
        };
        let horizons = (0..count)
            .map(|i| {
                let at = FIXED_LEN + i * HORIZON_LEN;
                Horizon {
                    end: get_u64(b, at),
                    horizon_ms: get_i64(b, at + 8),
                    tombstones: get_u64(b, at + 16),
                }
            })
            .collect::<Vec<_>>();
        if horizons.windows(2).any(|w| w[0].end >= w[1].end) {
            return Err(bad("cleaner checkpoint horizons are out of order"));
        }
        Ok(CleanerCheckpoint {
            first_dirty: get_u64(b, 5),
            swap,
            horizons,
        })
    }

    /// Read the cleaner checkpoint in `dir`: `Ok(None)` if there is none.
    pub fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<CleanerCheckpoint>> {
        let path = dir.join(FILE_NAME);
        if !fs.exists(&path).at(&path)? {
            return Ok(None);
        }
        let max = (FIXED_LEN + MAX_HORIZONS * HORIZON_LEN + 4) as u64;
        let bytes = read_small_file(fs, &path, max)?;
        CleanerCheckpoint::decode(&bytes, &path).map(Some)
    }

    pub fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let path = dir.join(FILE_NAME);
        write_atomic(fs, &path, &self.encode()).at(&path)
    }

    /// The horizon of the tombstones at `offset`: `None` if no finished pass has seen it.
    pub fn horizon_of(&self, offset: u64) -> Option<i64> {
        let i = self.horizons.partition_point(|h| h.end <= offset);
        self.horizons.get(i).map(|h| h.horizon_ms)
    }

    /// Whether some kept tombstones have reached their horizon (a pass would drop them).
    pub fn tombstones_due(&self, now_ms: i64) -> bool {
        self.horizons
            .iter()
            .any(|h| h.tombstones > 0 && h.horizon_ms <= now_ms)
    }

    /// Record a finished pass at `now_ms` that mapped `[.., end)` and kept `tombstones` new
    /// tombstones, which may go at `horizon_ms`. Horizons that had passed at `now_ms` were applied
    /// by this pass (it rewrote the whole log below `end`), so they collapse into one entry.
    pub fn finish_pass(&mut self, now_ms: i64, end: u64, horizon_ms: i64, tombstones: u64) {
        let mut merged: Vec<Horizon> = Vec::with_capacity(self.horizons.len() + 1);
        for h in self.horizons.drain(..) {
            let h = if h.horizon_ms <= now_ms {
                Horizon {
                    horizon_ms: i64::MIN,
                    tombstones: 0,
                    ..h
                }
            } else {
                h
            };
            match merged.last_mut() {
                Some(last) if last.horizon_ms == i64::MIN && h.horizon_ms == i64::MIN => {
                    last.end = h.end;
                }
                _ => merged.push(h),
            }
        }
        if merged.last().is_none_or(|l| end > l.end) {
            merged.push(Horizon {
                end,
                horizon_ms,
                tombstones,
            });
        }
        while merged.len() > MAX_HORIZONS {
            // Merge the two oldest ranges; the later horizon keeps their tombstones longer, never
            // shorter.
            let second = merged.remove(1);
            let first = &mut merged[0];
            first.end = second.end;
            first.horizon_ms = first.horizon_ms.max(second.horizon_ms);
            first.tombstones = first.tombstones.saturating_add(second.tombstones);
        }
        self.horizons = merged;
        self.first_dirty = self.first_dirty.max(end);
    }

    /// Forget everything at or after `offset` (the log was truncated there).
    pub fn truncate(&mut self, offset: u64) -> bool {
        let before = self.clone();
        self.first_dirty = self.first_dirty.min(offset);
        if let Some(i) = self.horizons.iter().position(|h| h.end > offset) {
            self.horizons[i].end = offset;
            self.horizons.truncate(i + 1);
            if offset == 0 || (i > 0 && self.horizons[i - 1].end >= offset) {
                self.horizons.truncate(i);
            }
        }
        *self != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CleanerCheckpoint {
        CleanerCheckpoint {
            first_dirty: 500,
            swap: Some((100, 400)),
            horizons: vec![
                Horizon {
                    end: 100,
                    horizon_ms: i64::MIN,
                    tombstones: 0,
                },
                Horizon {
                    end: 500,
                    horizon_ms: 9_000,
                    tombstones: 3,
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_damage() {
        let c = sample();
        let b = c.encode();
        assert_eq!(CleanerCheckpoint::decode(&b, Path::new("x")).unwrap(), c);
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x04;
            assert!(
                CleanerCheckpoint::decode(&d, Path::new("x")).is_err(),
                "{i}"
            );
        }
        for n in 0..b.len() {
            assert!(CleanerCheckpoint::decode(&b[..n], Path::new("x")).is_err());
        }
        let empty = CleanerCheckpoint::default();
        assert_eq!(
            CleanerCheckpoint::decode(&empty.encode(), Path::new("x")).unwrap(),
            empty
        );
    }

    #[test]
    fn horizons_apply_by_range() {
        let c = sample();
        assert_eq!(c.horizon_of(0), Some(i64::MIN));
        assert_eq!(c.horizon_of(99), Some(i64::MIN));
        assert_eq!(c.horizon_of(100), Some(9_000));
        assert_eq!(c.horizon_of(499), Some(9_000));
        assert_eq!(c.horizon_of(500), None);
        assert!(!c.tombstones_due(8_999));
        assert!(c.tombstones_due(9_000));
    }

    #[test]
    fn finish_pass_collapses_passed_horizons_and_caps_the_list() {
        let mut c = sample();
        c.finish_pass(9_000, 800, 20_000, 1);
        assert_eq!(
            c.horizons,
            vec![
                Horizon {
                    end: 500,
                    horizon_ms: i64::MIN,
                    tombstones: 0
                },
                Horizon {
                    end: 800,
                    horizon_ms: 20_000,
                    tombstones: 1
                },
            ]
        );
        assert_eq!(c.first_dirty, 800);
        for i in 0..200u64 {
            c.finish_pass(10_000, 1_000 + i, 30_000 + i as i64, 1);
        }
        assert!(c.horizons.len() <= MAX_HORIZONS);
        assert!(c.horizons.windows(2).all(|w| w[0].end < w[1].end));
        // Every offset keeps a horizon at least as late as the one it was given.
        for i in 0..200u64 {
            let h = c.horizon_of(999 + i).unwrap();
            assert!(h >= 30_000 + i as i64 || i == 0, "{i}: {h}");
        }
        let b = c.encode();
        assert_eq!(CleanerCheckpoint::decode(&b, Path::new("x")).unwrap(), c);
    }

    #[test]
    fn truncate_forgets_the_tail() {
        let mut c = sample();
        assert!(c.truncate(300));
        assert_eq!(c.first_dirty, 300);
        assert_eq!(c.horizons.last().unwrap().end, 300);
        assert!(c.truncate(100));
        assert_eq!(c.horizons.len(), 1);
        assert!(c.truncate(0));
        assert!(c.horizons.is_empty());
        assert!(!c.truncate(0));
    }
}
