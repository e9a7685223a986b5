//! The cleaner checkpoint (`cleaner-checkpoint`): where compaction stands. What the fields mean,
//! and how passes update them, is the partition's (`partition/cleaner_checkpoint.rs`).

use super::{CountWidth, Decode, DecodeError, Encode, Envelope, Reader, Writer};

/// Most tombstone horizons a cleaner checkpoint holds.
pub const MAX_HORIZONS: usize = 64;
/// Bytes of one horizon: end offset `u64`, horizon `i64`, tombstones `u64`.
const HORIZON_LEN: usize = 8 + 8 + 8;

/// Tombstones with offsets in `[previous entry's end, end)` were first seen by a cleaner pass that
/// finished before `horizon_ms - delete_retention`; they may be dropped once `horizon_ms` passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizon {
    /// End (exclusive) of the offsets this horizon covers.
    pub end: u64,
    /// When the tombstones in the range may go (ms).
    pub horizon_ms: i64,
    /// Tombstones the pass that set this horizon kept in the range (0 = nothing to wait for).
    pub tombstones: u64,
}

/// Compaction's progress.
///
/// Body, version 2 (with a length field) and version 1 (legacy): first dirty offset `u64` |
/// unused `u64` (once a "hole-exempt end"; written 0, never read) | swap flag `u8` (0 or 1) |
/// swap base offset `u64` | swap end `u64` | horizon count `u32` (at most [`MAX_HORIZONS`]) |
/// the horizons, each end `u64`, horizon `i64`, tombstones `u64`, by strictly increasing end.
/// Without a swap (flag 0) the swap fields are written 0 and not read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanerCheckpoint {
    /// Records below this offset have been through a cleaner pass's key map.
    pub first_dirty: u64,
    /// A swap in progress: the cleaned segment's base offset and the end of the range it replaces.
    pub swap: Option<(u64, u64)>,
    /// Tombstone horizons, by increasing `end`; at most [`MAX_HORIZONS`] are written.
    pub horizons: Vec<Horizon>,
}

impl CleanerCheckpoint {
    /// Magic `TLCC`; version 1 predates the length field.
    pub const ENVELOPE: Envelope = Envelope {
        magic: *b"TLCC",
        version: 2,
        legacy: &[1],
    };
}

impl Encode for CleanerCheckpoint {
    fn encode_into(&self, w: &mut Writer) {
        Self::ENVELOPE.seal(w, |w| {
            w.u64(self.first_dirty);
            w.u64(0);
            let (flag, base, end) = self.swap.map_or((0, 0, 0), |(b, e)| (1, b, e));
            w.u8(flag);
            w.u64(base);
            w.u64(end);
            w.count_u32(self.horizons.len());
            for h in &self.horizons {
                w.u64(h.end);
                w.i64(h.horizon_ms);
                w.u64(h.tombstones);
            }
        });
    }
}

impl Decode for CleanerCheckpoint {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (_, mut body) = Self::ENVELOPE.open(r)?;
        let first_dirty = body.u64()?;
        body.u64()?;
        let flag_at = body.position();
        let flag = body.u8()?;
        let (base, end) = (body.u64()?, body.u64()?);
        let swap = match flag {
            0 => None,
            1 => Some((base, end)),
            _ => return Err(DecodeError::new(flag_at, "swap flag is neither 0 nor 1")),
        };
        let count = body.count(CountWidth::U32, HORIZON_LEN, MAX_HORIZONS)?;
        let mut horizons: Vec<Horizon> = Vec::with_capacity(count);
        for _ in 0..count {
            let at = body.position();
            let h = Horizon {
                end: body.u64()?,
                horizon_ms: body.i64()?,
                tombstones: body.u64()?,
            };
            if horizons.last().is_some_and(|last| last.end >= h.end) {
                return Err(DecodeError::new(at, "horizons are out of order"));
            }
            horizons.push(h);
        }
        body.finish()?;
        Ok(CleanerCheckpoint {
            first_dirty,
            swap,
            horizons,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        reason = "tests index fixtures they built themselves"
    )]

    use super::super::tests::check_record;
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

    /// A version-1 body: `hole` in the unused slot, `count` as the horizon count.
    fn v1(flag: u8, hole: u64, count: u32, horizons: &[(u64, i64, u64)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&hole.to_le_bytes());
        b.push(flag);
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&2u64.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        for (end, horizon, tombstones) in horizons {
            b.extend_from_slice(&end.to_le_bytes());
            b.extend_from_slice(&horizon.to_le_bytes());
            b.extend_from_slice(&tombstones.to_le_bytes());
        }
        CleanerCheckpoint::ENVELOPE.seal_raw(1, &b)
    }

    #[test]
    fn round_trip_and_damage() {
        check_record(&sample());
        check_record(&CleanerCheckpoint::default());
        check_record(&CleanerCheckpoint {
            swap: None,
            horizons: (1..=MAX_HORIZONS as u64)
                .map(|end| Horizon {
                    end,
                    horizon_ms: -1,
                    tombstones: u64::MAX,
                })
                .collect(),
            ..sample()
        });
    }

    #[test]
    fn layout_is_the_documented_one() {
        let b = sample().encode_to_vec();
        // docs/FORMAT.md: 50 + 24 × n bytes; the swap flag at 25, the count at 42.
        assert_eq!(b.len(), 50 + 24 * 2);
        assert_eq!(&b[..5], b"TLCC\x02");
        assert_eq!(b[25], 1);
        assert_eq!(b[42..46], 2u32.to_le_bytes());
        assert_eq!(b[46..54], 100u64.to_le_bytes());
    }

    #[test]
    fn version_1_is_read() {
        let b = v1(1, u64::MAX, 1, &[(9, 5, 1)]);
        // docs/FORMAT.md: version 1 is 46 + 24 × n bytes.
        assert_eq!(b.len(), 46 + 24);
        assert_eq!(
            CleanerCheckpoint::decode(&b),
            Ok(CleanerCheckpoint {
                first_dirty: 7,
                swap: Some((1, 2)),
                horizons: vec![Horizon {
                    end: 9,
                    horizon_ms: 5,
                    tombstones: 1
                }],
            })
        );
        // Without a swap its fields are not read.
        assert_eq!(
            CleanerCheckpoint::decode(&v1(0, 0, 0, &[])).unwrap().swap,
            None
        );
    }

    #[test]
    fn absurd_fields_are_rejected() {
        let reason = |b: Vec<u8>| CleanerCheckpoint::decode(&b).unwrap_err().reason;
        assert_eq!(reason(v1(2, 0, 0, &[])), "swap flag is neither 0 nor 1");
        assert_eq!(
            reason(v1(0, 0, u32::MAX, &[])),
            "count exceeds the format's maximum"
        );
        assert_eq!(
            reason(v1(0, 0, 1, &[])),
            "count exceeds what the bytes left can hold"
        );
        assert_eq!(
            reason(v1(0, 0, 0, &[(1, 0, 0)])),
            "bytes left over after the last field"
        );
        let too_many: Vec<_> = (1..=65).map(|e| (e, 0, 0)).collect();
        assert_eq!(
            reason(v1(0, 0, 65, &too_many)),
            "count exceeds the format's maximum"
        );
        assert_eq!(
            reason(v1(0, 0, 2, &[(10, 0, 1), (10, 0, 1)])),
            "horizons are out of order"
        );
    }
}
