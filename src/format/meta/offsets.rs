//! The records of the internal `__consumer_offsets` topic: one per committed partition, its key
//! naming the group and partition, its value the commit (a null value deletes it). They live in
//! record batches, whose CRC covers them, so they carry no envelope of their own. What they mean
//! is the broker's (`broker/offsets.rs`).

use super::{Decode, DecodeError, Encode, Reader, Writer};

/// The one version of both layouts.
const VERSION: u8 = 1;
/// Longest group id or topic name a key can hold (its length is a `u16`).
pub const MAX_OFFSETS_KEY_STRING_LEN: usize = u16::MAX as usize;

fn version(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    let at = r.position();
    match r.u8()? {
        VERSION => Ok(()),
        _ => Err(DecodeError::new(at, "unknown version")),
    }
}

/// Which group's commit for which partition a record holds.
///
/// Layout: version `u8` (1) | group length `u16` | group (UTF-8) | topic length `u16` | topic
/// (UTF-8) | partition `u32`. The group and the topic must be at most
/// [`MAX_OFFSETS_KEY_STRING_LEN`] bytes (the committer checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitKey {
    /// The consumer group.
    pub group: String,
    /// The committed partition's topic.
    pub topic: String,
    /// The committed partition.
    pub partition: u32,
}

fn put_str(w: &mut Writer, s: &str) {
    debug_assert!(
        s.len() <= MAX_OFFSETS_KEY_STRING_LEN,
        "checked by the committer"
    );
    w.u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
    w.bytes(s.as_bytes());
}

fn get_str(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let n = usize::from(r.u16()?);
    r.str(n).map(str::to_owned)
}

impl Encode for OffsetCommitKey {
    fn encode_into(&self, w: &mut Writer) {
        w.u8(VERSION);
        put_str(w, &self.group);
        put_str(w, &self.topic);
        w.u32(self.partition);
    }
}

impl Decode for OffsetCommitKey {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        version(r)?;
        Ok(OffsetCommitKey {
            group: get_str(r)?,
            topic: get_str(r)?,
            partition: r.u32()?,
        })
    }
}

/// A commit.
///
/// Layout: version `u8` (1) | offset `u64` (the next offset to consume) | commit time `i64` (ms)
/// | metadata length `u32` | metadata (UTF-8; the committer keeps it to 4096 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The next offset to consume.
    pub offset: u64,
    /// When it was committed (ms).
    pub commit_timestamp: i64,
    /// The committer's metadata.
    pub metadata: String,
}

impl Encode for OffsetCommitValue {
    fn encode_into(&self, w: &mut Writer) {
        w.u8(VERSION);
        w.u64(self.offset);
        w.i64(self.commit_timestamp);
        w.count_u32(self.metadata.len());
        w.bytes(self.metadata.as_bytes());
    }
}

impl Decode for OffsetCommitValue {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        version(r)?;
        let offset = r.u64()?;
        let commit_timestamp = r.i64()?;
        let n = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        Ok(OffsetCommitValue {
            offset,
            commit_timestamp,
            metadata: r.str(n)?.to_owned(),
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

    fn key() -> OffsetCommitKey {
        OffsetCommitKey {
            group: "g1".into(),
            topic: "orders".into(),
            partition: 7,
        }
    }

    fn value() -> OffsetCommitValue {
        OffsetCommitValue {
            offset: 42,
            commit_timestamp: 1_700_000_000_000,
            metadata: "hi".into(),
        }
    }

    #[test]
    fn round_trip_and_damage() {
        check_record(&key());
        check_record(&value());
        check_record(&OffsetCommitKey {
            group: String::new(),
            topic: "é".into(),
            partition: u32::MAX,
        });
        check_record(&OffsetCommitValue {
            metadata: String::new(),
            ..value()
        });
    }

    #[test]
    fn layout_is_the_documented_one() {
        let k = key().encode_to_vec();
        assert_eq!(k, b"\x01\x02\x00g1\x06\x00orders\x07\x00\x00\x00");
        let v = value().encode_to_vec();
        assert_eq!(v.len(), 1 + 8 + 8 + 4 + 2);
        assert_eq!(v[0], 1);
        assert_eq!(v[17..21], 2u32.to_le_bytes());
        assert_eq!(&v[21..], b"hi");
    }

    #[test]
    fn damage_is_rejected_without_allocating() {
        let mut bad = key().encode_to_vec();
        bad[0] = 9;
        assert_eq!(
            OffsetCommitKey::decode(&bad).unwrap_err().reason,
            "unknown version"
        );
        // A huge length never allocates or panics.
        let huge = [1, 0xff, 0xff];
        assert_eq!(
            OffsetCommitKey::decode(&huge).unwrap_err().reason,
            "truncated"
        );
        let mut v = value().encode_to_vec();
        v[17..21].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            OffsetCommitValue::decode(&v).unwrap_err().reason,
            "truncated"
        );
        let mut not_utf8 = key().encode_to_vec();
        not_utf8[3] = 0xff;
        assert_eq!(
            OffsetCommitKey::decode(&not_utf8).unwrap_err().reason,
            "text is not UTF-8"
        );
    }
}
