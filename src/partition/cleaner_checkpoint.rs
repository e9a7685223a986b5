//! The cleaner checkpoint: where compaction stands, replaced atomically. How passes move it is
//! here; its bytes are [`crate::format::meta`]'s.

use std::path::Path;

use crate::error::{IoContext, Result};
use crate::format::meta::{Decode, Encode, ENVELOPE_LEN};
use crate::fs::{read_small_file, write_atomic, FileSystem};

pub(crate) use crate::format::meta::{CleanerCheckpoint, Horizon, MAX_HORIZONS};

/// Name of the cleaner checkpoint file in a partition directory.
pub(crate) const FILE_NAME: &str = "cleaner-checkpoint";

/// Largest cleaner checkpoint read: the fixed fields and [`MAX_HORIZONS`] horizons of 24 bytes,
/// in the envelope.
const MAX_FILE_LEN: u64 = (ENVELOPE_LEN + 8 + 8 + 1 + 8 + 8 + 4 + MAX_HORIZONS * 24) as u64;

impl CleanerCheckpoint {
    /// Read the cleaner checkpoint in `dir`: `Ok(None)` if there is none.
    pub(crate) fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<CleanerCheckpoint>> {
        let path = dir.join(FILE_NAME);
        if !fs.exists(&path).at(&path)? {
            return Ok(None);
        }
        let bytes = read_small_file(fs, &path, MAX_FILE_LEN)?;
        CleanerCheckpoint::decode(&bytes)
            .map(Some)
            .map_err(|e| e.corrupt(&path, "cleaner checkpoint"))
    }

    /// Replace the cleaner checkpoint in `dir`, durably.
    pub(crate) fn write(&self, fs: &dyn FileSystem, dir: &Path) -> Result<()> {
        let path = dir.join(FILE_NAME);
        write_atomic(fs, &path, &self.encode_to_vec()).at(&path)
    }

    /// The horizon of the tombstones at `offset`: `None` if no finished pass has seen it.
    pub(crate) fn horizon_of(&self, offset: u64) -> Option<i64> {
        let i = self.horizons.partition_point(|h| h.end <= offset);
        self.horizons.get(i).map(|h| h.horizon_ms)
    }

    /// Whether some kept tombstones have reached their horizon (a pass would drop them).
    pub(crate) fn tombstones_due(&self, now_ms: i64) -> bool {
        self.horizons
            .iter()
            .any(|h| h.tombstones > 0 && h.horizon_ms <= now_ms)
    }

    /// Record a finished pass at `now_ms` that mapped `[.., end)` and kept `tombstones` new
    /// tombstones, which may go at `horizon_ms`. Horizons that had passed at `now_ms` were applied
    /// by this pass (it rewrote the whole log below `end`), so they collapse into one entry.
    pub(crate) fn finish_pass(&mut self, now_ms: i64, end: u64, horizon_ms: i64, tombstones: u64) {
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
    pub(crate) fn truncate(&mut self, offset: u64) -> bool {
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
        assert_eq!(CleanerCheckpoint::decode(&c.encode_to_vec()), Ok(c));
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
