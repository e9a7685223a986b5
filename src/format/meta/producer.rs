//! Idempotent producers' files: a partition's producer snapshot (`producer-snapshot`) and the
//! store's producer id counter (`__producer_ids`). What they mean, and when they are written, is
//! the partition's (`partition/producer_state.rs`), the store's (`store/producer_ids.rs`, the
//! counter file) and the broker's (`broker/producer_ids.rs`, who gets which id).

use super::{crc32, CountWidth, Decode, DecodeError, Encode, Envelope, Reader, Writer};

/// Most batches a snapshot remembers per producer (Kafka keeps five).
pub const MAX_PRODUCER_BATCHES: usize = 5;
/// Bytes of one cached batch: first and last sequence `i32`, base and last offset `u64`, append
/// time `i64`.
const BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;
/// Bytes of a producer before its batches: id `i64`, epoch `i16`, last seen `i64` (not in
/// version 1), batch count `u8`.
const PRODUCER_LEN: usize = 8 + 2 + 8 + 1;
const PRODUCER_LEN_V1: usize = PRODUCER_LEN - 8;

/// One batch a producer wrote, as remembered for answering its replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedBatch {
    /// Sequence number of the first record.
    pub first_seq: i32,
    /// Sequence number of the last record.
    pub last_seq: i32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
    /// The batch's append time (its maximum timestamp).
    pub append_time: i64,
}

/// One producer in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotProducer {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// When it last wrote (ms). Version 1 did not store it: the newest append time of its
    /// batches stands in (`i64::MIN` without batches).
    pub last_seen_ms: i64,
    /// Its last batches, oldest first; at most [`MAX_PRODUCER_BATCHES`] are written.
    pub batches: Vec<CachedBatch>,
}

/// The idempotent producers' state of a partition, as of an offset.
///
/// Body, version 3 (with a length field) and version 2 (legacy): offset `u64` (the state covers
/// batches below it) | producer count `u32` | per producer: id `i64`, epoch `i16`, last seen `i64`
/// (ms), batch count `u8` (at most [`MAX_PRODUCER_BATCHES`]), then per batch first sequence
/// `i32`, last sequence `i32`, base offset `u64`, last offset `u64`, append time `i64`. Version 1
/// (legacy) has no "last seen".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerSnapshot {
    /// The state covers batches below this offset.
    pub offset: u64,
    /// The producers, in the order written (the partition writes them by id; a repeated id is
    /// decoded as written).
    pub producers: Vec<SnapshotProducer>,
}

impl ProducerSnapshot {
    /// Magic `TLPS`; versions 1 and 2 predate the length field.
    pub const ENVELOPE: Envelope = Envelope {
        magic: *b"TLPS",
        version: 3,
        legacy: &[1, 2],
    };
}

impl Encode for ProducerSnapshot {
    fn encode_into(&self, w: &mut Writer) {
        Self::ENVELOPE.seal(w, |w| {
            w.u64(self.offset);
            w.count_u32(self.producers.len());
            for p in &self.producers {
                w.i64(p.producer_id);
                w.i16(p.epoch);
                w.i64(p.last_seen_ms);
                let kept = p.batches.len().min(MAX_PRODUCER_BATCHES);
                let skipped = p.batches.len() - kept;
                // `kept` ≤ 5 fits a byte; only the newest batches matter for replays.
                w.u8(kept as u8);
                for b in p.batches.iter().skip(skipped) {
                    w.i32(b.first_seq);
                    w.i32(b.last_seq);
                    w.u64(b.base_offset);
                    w.u64(b.last_offset);
                    w.i64(b.append_time);
                }
            }
        });
    }
}

impl Decode for ProducerSnapshot {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (version, mut body) = Self::ENVELOPE.open(r)?;
        let has_last_seen = version >= 2;
        let producer_len = if has_last_seen {
            PRODUCER_LEN
        } else {
            PRODUCER_LEN_V1
        };
        let offset = body.u64()?;
        let count = body.count(CountWidth::U32, producer_len, usize::MAX)?;
        let mut producers = Vec::with_capacity(count);
        for _ in 0..count {
            let producer_id = body.i64()?;
            let epoch = body.i16()?;
            let last_seen = if has_last_seen {
                Some(body.i64()?)
            } else {
                None
            };
            let n = body.count(CountWidth::U8, BATCH_LEN, MAX_PRODUCER_BATCHES)?;
            let mut batches = Vec::with_capacity(n);
            for _ in 0..n {
                batches.push(CachedBatch {
                    first_seq: body.i32()?,
                    last_seq: body.i32()?,
                    base_offset: body.u64()?,
                    last_offset: body.u64()?,
                    append_time: body.i64()?,
                });
            }
            let newest = batches.iter().map(|b| b.append_time).max();
            producers.push(SnapshotProducer {
                producer_id,
                epoch,
                last_seen_ms: last_seen.or(newest).unwrap_or(i64::MIN),
                batches,
            });
        }
        body.finish()?;
        Ok(ProducerSnapshot { offset, producers })
    }
}

/// The store's producer id counter: the next id to hand out.
///
/// Body, version 1: next id `i64`, at least 0 and below `i64::MAX`. Before the envelope the file
/// was exactly 12 bytes, the next id `i64` and the CRC-32 of those 8 bytes; that layout (which no
/// enveloped file can have: they are at least 13 bytes) is still read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdCounter {
    /// The next producer id.
    pub next: i64,
}

impl ProducerIdCounter {
    /// Magic `TLPI`. (The 12-byte layout before it had no magic and no version.)
    pub const ENVELOPE: Envelope = Envelope {
        magic: *b"TLPI",
        version: 1,
        legacy: &[],
    };
    /// Length of the counter file before the envelope.
    pub const UNVERSIONED_LEN: usize = 8 + 4;

    /// The counter's bytes in the layout before the envelope (for tests: what earlier versions
    /// left in a store).
    #[doc(hidden)]
    pub fn encode_unversioned(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.i64(self.next);
        w.u32(crc32(&self.next.to_le_bytes()));
        w.into_vec()
    }
}

impl Encode for ProducerIdCounter {
    fn encode_into(&self, w: &mut Writer) {
        Self::ENVELOPE.seal(w, |w| w.i64(self.next));
    }
}

impl Decode for ProducerIdCounter {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let next = if r.remaining() == Self::UNVERSIONED_LEN {
            let next = r.array::<8>()?;
            let crc_at = r.position();
            if crc32(&next) != r.u32()? {
                return Err(DecodeError::new(crc_at, "CRC mismatch"));
            }
            i64::from_le_bytes(next)
        } else {
            let (_, mut body) = Self::ENVELOPE.open(r)?;
            let next = body.i64()?;
            body.finish()?;
            next
        };
        if next < 0 || next == i64::MAX {
            return Err(DecodeError::new(at, "the next id is out of range"));
        }
        Ok(ProducerIdCounter { next })
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

    fn batch(base: u64) -> CachedBatch {
        CachedBatch {
            first_seq: 0,
            last_seq: 2,
            base_offset: base,
            last_offset: base + 2,
            append_time: 7,
        }
    }

    fn sample() -> ProducerSnapshot {
        ProducerSnapshot {
            offset: 14,
            producers: vec![
                SnapshotProducer {
                    producer_id: 3,
                    epoch: 0,
                    last_seen_ms: 1_000,
                    batches: vec![batch(13)],
                },
                SnapshotProducer {
                    producer_id: 9,
                    epoch: i16::MAX,
                    last_seen_ms: i64::MIN,
                    batches: (0..5).map(|i| batch(i * 3)).collect(),
                },
                SnapshotProducer {
                    producer_id: 10,
                    epoch: -1,
                    last_seen_ms: 5,
                    batches: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn snapshot_round_trip_and_damage() {
        check_record(&sample());
        check_record(&ProducerSnapshot::default());
    }

    #[test]
    fn snapshot_layout_is_the_documented_one() {
        let s = ProducerSnapshot {
            offset: 14,
            producers: vec![sample().producers[0].clone()],
        };
        let b = s.encode_to_vec();
        // docs/FORMAT.md: offset at 9, count at 17, the first producer at 21, its batch count
        // at 39 and its batch at 40; the CRC last.
        assert_eq!(&b[..5], b"TLPS\x03");
        assert_eq!(b[9..17], 14u64.to_le_bytes());
        assert_eq!(b[17..21], 1u32.to_le_bytes());
        assert_eq!(b[21..29], 3i64.to_le_bytes());
        assert_eq!(b[39], 1);
        assert_eq!(b.len(), 40 + BATCH_LEN + 4);
    }

    #[test]
    fn only_the_newest_batches_are_written() {
        let mut s = sample();
        s.producers[1].batches = (0..8).map(|i| batch(i * 3)).collect();
        let back = ProducerSnapshot::decode(&s.encode_to_vec()).unwrap();
        assert_eq!(back.producers[1].batches, s.producers[1].batches[3..]);
    }

    /// A version-1 snapshot body (no "last seen").
    fn v1_body(producers: &[(i64, i16, u8, &[CachedBatch])], count: u32) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(100);
        w.u32(count);
        for (id, epoch, n, batches) in producers {
            w.i64(*id);
            w.i16(*epoch);
            w.u8(*n);
            for b in *batches {
                w.i32(b.first_seq);
                w.i32(b.last_seq);
                w.u64(b.base_offset);
                w.u64(b.last_offset);
                w.i64(b.append_time);
            }
        }
        w.into_vec()
    }

    #[test]
    fn versions_1_and_2_are_read() {
        let batches = [
            batch(0),
            CachedBatch {
                append_time: 99,
                ..batch(3)
            },
        ];
        let body = v1_body(&[(4, 1, 2, &batches), (5, 0, 0, &[])], 2);
        let s = ProducerSnapshot::decode(&ProducerSnapshot::ENVELOPE.seal_raw(1, &body)).unwrap();
        assert_eq!(s.offset, 100);
        assert_eq!(s.producers[0].last_seen_ms, 99, "the newest append time");
        assert_eq!(s.producers[0].batches, batches);
        assert_eq!(s.producers[1].last_seen_ms, i64::MIN);

        let v3 = sample().encode_to_vec();
        let body = &v3[9..v3.len() - 4];
        let v2 = ProducerSnapshot::ENVELOPE.seal_raw(2, body);
        assert_eq!(v2.len(), v3.len() - 4);
        assert_eq!(ProducerSnapshot::decode(&v2), Ok(sample()));
    }

    #[test]
    fn absurd_counts_are_rejected() {
        let v1 = |body: Vec<u8>| ProducerSnapshot::ENVELOPE.seal_raw(1, &body);
        let one = [batch(0)];
        for (what, body) in [
            ("producer count u32::MAX", v1_body(&[], u32::MAX)),
            (
                "producer count past the bytes",
                v1_body(&[(1, 0, 1, &one)], 2),
            ),
            ("batch count 255", v1_body(&[(1, 0, 255, &one)], 1)),
            ("six batches", v1_body(&[(1, 0, 6, &[batch(0); 6])], 1)),
            ("bytes left over", v1_body(&[(1, 0, 1, &one)], 0)),
        ] {
            assert!(ProducerSnapshot::decode(&v1(body)).is_err(), "{what}");
        }
    }

    #[test]
    fn counter_round_trip_damage_and_range() {
        for next in [0, 1, 1 << 40, i64::MAX - 1] {
            check_record(&ProducerIdCounter { next });
        }
        let b = ProducerIdCounter { next: 5 }.encode_to_vec();
        // docs/FORMAT.md: 21 bytes.
        assert_eq!(b.len(), 21);
        assert_eq!(&b[..9], b"TLPI\x01\x08\0\0\0");
        for next in [-1, i64::MIN, i64::MAX] {
            let c = ProducerIdCounter { next };
            assert!(ProducerIdCounter::decode(&c.encode_to_vec()).is_err());
            assert!(ProducerIdCounter::decode(&c.encode_unversioned()).is_err());
        }
    }

    #[test]
    fn the_unversioned_counter_is_read() {
        let c = ProducerIdCounter { next: 42 };
        let b = c.encode_unversioned();
        assert_eq!(b.len(), ProducerIdCounter::UNVERSIONED_LEN);
        assert_eq!(ProducerIdCounter::decode(&b), Ok(c));
        for bit in 0..b.len() * 8 {
            let mut d = b.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(ProducerIdCounter::decode(&d).is_err(), "bit {bit}");
        }
        for n in 0..b.len() {
            assert!(ProducerIdCounter::decode(&b[..n]).is_err());
        }
    }
}
