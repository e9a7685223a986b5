//! Index entry layouts, Kafka's (`OffsetIndex`, `TimeIndex`; big-endian): the `.index` maps
//! offsets to byte positions in the `.log`, the `.timeindex` timestamps to offsets; both store
//! offsets relative to the segment's base offset, as Kafka's `int32` (never negative here).
//!
//! An index file is a run of whole entries: the segment cuts it into entry-sized arrays and these
//! codecs turn one array into fields and back. Each names every byte in a pattern over the array, so
//! a layout that no longer matches its length does not compile, and nothing here can run past the
//! bytes it is given.

/// Offset index entry: `int32` offset relative to the segment base, `int32` byte position in the
/// `.log`.
pub const OFFSET_INDEX_ENTRY_LEN: usize = 8;
/// Time index entry: `int64` timestamp, `int32` offset relative to the segment base.
pub const TIME_INDEX_ENTRY_LEN: usize = 12;

/// One `.index` entry as stored (`OFFSET_INDEX_ENTRY_LEN` bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetIndexEntry {
    /// Offset minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment's `.log`.
    pub position: u32,
}

impl OffsetIndexEntry {
    /// The entry stored in `bytes`.
    pub fn decode(bytes: [u8; OFFSET_INDEX_ENTRY_LEN]) -> Self {
        let [r0, r1, r2, r3, position @ ..] = bytes;
        OffsetIndexEntry {
            relative_offset: u32::from_be_bytes([r0, r1, r2, r3]),
            position: u32::from_be_bytes(position),
        }
    }

    /// The bytes that store the entry.
    pub fn encode(self) -> [u8; OFFSET_INDEX_ENTRY_LEN] {
        let [r0, r1, r2, r3] = self.relative_offset.to_be_bytes();
        let [p0, p1, p2, p3] = self.position.to_be_bytes();
        [r0, r1, r2, r3, p0, p1, p2, p3]
    }
}

/// One `.timeindex` entry as stored (`TIME_INDEX_ENTRY_LEN` bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeIndexEntry {
    /// Timestamp in ms since the Unix epoch.
    pub timestamp: i64,
    /// Offset minus the segment's base offset.
    pub relative_offset: u32,
}

impl TimeIndexEntry {
    /// The entry stored in `bytes`.
    pub fn decode(bytes: [u8; TIME_INDEX_ENTRY_LEN]) -> Self {
        let [timestamp @ .., r0, r1, r2, r3] = bytes;
        TimeIndexEntry {
            timestamp: i64::from_be_bytes(timestamp),
            relative_offset: u32::from_be_bytes([r0, r1, r2, r3]),
        }
    }

    /// The bytes that store the entry.
    pub fn encode(self) -> [u8; TIME_INDEX_ENTRY_LEN] {
        let [t0, t1, t2, t3, t4, t5, t6, t7] = self.timestamp.to_be_bytes();
        let [r0, r1, r2, r3] = self.relative_offset.to_be_bytes();
        [t0, t1, t2, t3, t4, t5, t6, t7, r0, r1, r2, r3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_entry_layout() {
        let bytes = [0, 0, 0, 1, 0, 0, 0x20, 0x10];
        let entry = OffsetIndexEntry::decode(bytes);
        assert_eq!(
            entry,
            OffsetIndexEntry {
                relative_offset: 1,
                position: 0x2010
            }
        );
        assert_eq!(entry.encode(), bytes);
    }

    #[test]
    fn time_index_entry_layout() {
        let bytes = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x70, 0, 0, 0x07,
        ];
        let entry = TimeIndexEntry::decode(bytes);
        assert_eq!(
            entry,
            TimeIndexEntry {
                timestamp: -1,
                relative_offset: 0x7000_0007
            }
        );
        assert_eq!(entry.encode(), bytes);
    }
}
