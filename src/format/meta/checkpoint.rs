//! The partition checkpoint (`checkpoint`) and the clean-shutdown marker (`.clean_shutdown`).
//! What the fields mean, and when the files are written, is the partition's
//! (`partition/checkpoint.rs`).

use super::{Decode, DecodeError, Encode, Envelope, Reader, Writer, VERSION_OFFSET};

/// `u64::MAX` in a "producer state from" field: no idempotent producer ever wrote.
const NO_PRODUCERS: u64 = u64::MAX;

fn producers_from(raw: u64) -> Option<u64> {
    (raw != NO_PRODUCERS).then_some(raw)
}

/// The partition checkpoint: where the log starts, what is known durable, and where idempotent
/// producers' state begins.
///
/// Body, version 3 (the envelope's, with a length field) and version 2 (legacy): log start offset
/// `u64` | recovery point `u64` | producer state from `u64` (`u64::MAX`: none). Version 1 (legacy)
/// ends after the recovery point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Records below this offset are logically deleted.
    pub log_start_offset: u64,
    /// Every batch below this offset is known to be durable.
    pub recovery_point: u64,
    /// Idempotent producers have written from this offset on: their state is rebuilt from the
    /// log from here when the producer snapshot is missing or stale. `None`: none ever did.
    /// (`Some(u64::MAX)` is written as, and read back as, `None`.)
    pub producers_from: Option<u64>,
}

impl Checkpoint {
    /// Magic `TLCP`; versions 1 and 2 predate the length field.
    pub const ENVELOPE: Envelope = Envelope {
        magic: *b"TLCP",
        version: 3,
        legacy: &[1, 2],
    };
}

impl Encode for Checkpoint {
    fn encode_into(&self, w: &mut Writer) {
        Self::ENVELOPE.seal(w, |w| {
            w.u64(self.log_start_offset);
            w.u64(self.recovery_point);
            w.u64(self.producers_from.unwrap_or(NO_PRODUCERS));
        });
    }
}

impl Decode for Checkpoint {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (version, mut body) = Self::ENVELOPE.open(r)?;
        let checkpoint = Checkpoint {
            log_start_offset: body.u64()?,
            recovery_point: body.u64()?,
            producers_from: match version {
                1 => None,
                _ => producers_from(body.u64()?),
            },
        };
        body.finish()?;
        Ok(checkpoint)
    }
}

/// What a clean close saw: the next open trusts the files only if they still match it.
///
/// Body, version 2 (with a length field) and version 1 (legacy): log start offset `u64` | end
/// offset `u64` | producer state from `u64` (`u64::MAX`: none) | active segment base offset
/// `u64` | active segment size `u64`. The log start offset and the active segment's base are
/// never past the end offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanShutdown {
    /// The log start offset.
    pub log_start_offset: u64,
    /// The log end offset; also the recovery point (everything was synced).
    pub end_offset: u64,
    /// As [`Checkpoint::producers_from`].
    pub producers_from: Option<u64>,
    /// Base offset of the active segment.
    pub active_base: u64,
    /// Bytes of batches in the active segment (its file was trimmed to exactly this).
    pub active_size: u64,
}

impl CleanShutdown {
    /// Magic `TLCS`; version 1 predates the length field.
    pub const ENVELOPE: Envelope = Envelope {
        magic: *b"TLCS",
        version: 2,
        legacy: &[1],
    };
}

impl Encode for CleanShutdown {
    fn encode_into(&self, w: &mut Writer) {
        Self::ENVELOPE.seal(w, |w| {
            w.u64(self.log_start_offset);
            w.u64(self.end_offset);
            w.u64(self.producers_from.unwrap_or(NO_PRODUCERS));
            w.u64(self.active_base);
            w.u64(self.active_size);
        });
    }
}

impl Decode for CleanShutdown {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (_, mut body) = Self::ENVELOPE.open(r)?;
        let at = body.position();
        let marker = CleanShutdown {
            log_start_offset: body.u64()?,
            end_offset: body.u64()?,
            producers_from: producers_from(body.u64()?),
            active_base: body.u64()?,
            active_size: body.u64()?,
        };
        body.finish()?;
        if marker.log_start_offset > marker.end_offset || marker.active_base > marker.end_offset {
            return Err(DecodeError::new(at, "offsets are out of order"));
        }
        Ok(marker)
    }
}

/// A partition whose log was written by Kafka and adopted by topiclog (`kafka-adopted`): below
/// `gaps_below`, batches carry any partition leader epoch and (in a compacted log only) may
/// follow a gap in the offsets (Kafka's compaction drops whole batches); from it on, the log is
/// topiclog's.
///
/// Body, version 2: gaps below `u64` | log start `u64` | flags `u8` (bit 0: the log is compacted,
/// so gaps are Kafka's; bit 1: the adoption is still under way; other bits 0) | count `u32` |
/// count × (segment base `u64`, segment end `u64`), bases increasing. Version 1 (read, no longer
/// written): gaps below `u64` only, read as a compacted log whose adoption finished, with no
/// segment ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdoptedLog {
    /// The log end offset when the log was adopted (`u64::MAX` while an adoption is under way
    /// and has not found it yet).
    pub gaps_below: u64,
    /// The log start offset the adoption gives the log (Kafka's, when imported).
    pub log_start: u64,
    /// The topic compacted when it was adopted: gaps below `gaps_below` are Kafka's
    /// compaction's. Kafka leaves none in a log that is not compacted.
    pub compacted: bool,
    /// The adoption is under way: no checkpoint of the adopted log was written yet, so an open
    /// that finds none adopts the log again (from `log_start`). Once the adoption finished, the
    /// partition is topiclog's and a missing checkpoint is damage.
    pub adopting: bool,
    /// In a compacted log: each sealed segment Kafka wrote, by base offset, with the offset after
    /// its last batch when it was adopted. A gap after a segment is Kafka's only if the segment
    /// still reaches that end (topiclog's compaction keeps segment ends, filling what it drops
    /// with an empty batch): a segment cut short, emptied or deleted is told from compaction.
    pub segment_ends: Vec<(u64, u64)>,
}

impl AdoptedLog {
    /// Magic `TLKA`.
    pub const ENVELOPE: Envelope = Envelope {
        magic: *b"TLKA",
        version: 2,
        legacy: &[],
    };

    /// Version 1, still read.
    pub const ENVELOPE_V1: Envelope = Envelope {
        magic: *b"TLKA",
        version: 1,
        legacy: &[],
    };

    const COMPACTED: u8 = 1;
    const ADOPTING: u8 = 2;
}

impl Encode for AdoptedLog {
    fn encode_into(&self, w: &mut Writer) {
        Self::ENVELOPE.seal(w, |w| {
            w.u64(self.gaps_below);
            w.u64(self.log_start);
            let mut flags = 0;
            if self.compacted {
                flags |= Self::COMPACTED;
            }
            if self.adopting {
                flags |= Self::ADOPTING;
            }
            w.u8(flags);
            w.u32(u32::try_from(self.segment_ends.len()).unwrap_or(u32::MAX));
            for &(base, end) in &self.segment_ends {
                w.u64(base);
                w.u64(end);
            }
        });
    }
}

impl Decode for AdoptedLog {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // The version byte follows the magic.
        if r.peek_at(VERSION_OFFSET) == Some(Self::ENVELOPE_V1.version) {
            let (_, mut body) = Self::ENVELOPE_V1.open(r)?;
            let gaps_below = body.u64()?;
            body.finish()?;
            return Ok(AdoptedLog {
                gaps_below,
                log_start: 0,
                compacted: true,
                adopting: false,
                segment_ends: Vec::new(),
            });
        }
        let (_, mut body) = Self::ENVELOPE.open(r)?;
        let gaps_below = body.u64()?;
        let log_start = body.u64()?;
        let at = body.position();
        let flags = body.u8()?;
        if flags & !(Self::COMPACTED | Self::ADOPTING) != 0 {
            return Err(DecodeError::new(at, "unknown flags"));
        }
        if log_start > gaps_below {
            return Err(DecodeError::new(
                at,
                "the log start lies past the adopted end",
            ));
        }
        let count_at = body.position();
        let count = body.u32()? as usize;
        if count > body.remaining() / 16 {
            return Err(DecodeError::new(
                count_at,
                "more segments than the file holds",
            ));
        }
        let mut segment_ends = Vec::with_capacity(count);
        let mut previous_end = 0;
        for _ in 0..count {
            let at = body.position();
            let (base, end) = (body.u64()?, body.u64()?);
            if base < previous_end || end < base || end > gaps_below {
                return Err(DecodeError::new(at, "segment ends out of order"));
            }
            previous_end = end;
            segment_ends.push((base, end));
        }
        body.finish()?;
        Ok(AdoptedLog {
            gaps_below,
            log_start,
            compacted: flags & Self::COMPACTED != 0,
            adopting: flags & Self::ADOPTING != 0,
            segment_ends,
        })
    }
}

/// What a poisoned partition could still vouch for (`.trusted_end`): written when an I/O failure
/// (a failed write or fsync) latches the partition, removed once an in-place recovery or the next
/// open has cut what lies at or beyond `end_offset` (the disk may or may not hold those records:
/// their fsync failed, or their append reported an error, so they must not come back).
///
/// Body, version 1: trusted end offset `u64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrustedEnd {
    /// Offsets below this were acknowledged (and, if an fsync failed, made durable by the last
    /// one that succeeded); the rest is cut.
    pub end_offset: u64,
}

impl TrustedEnd {
    /// Magic `TLTE`.
    pub const ENVELOPE: Envelope = Envelope {
        magic: *b"TLTE",
        version: 1,
        legacy: &[],
    };
}

impl Encode for TrustedEnd {
    fn encode_into(&self, w: &mut Writer) {
        Self::ENVELOPE.seal(w, |w| w.u64(self.end_offset));
    }
}

impl Decode for TrustedEnd {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (_, mut body) = Self::ENVELOPE.open(r)?;
        let end_offset = body.u64()?;
        body.finish()?;
        Ok(TrustedEnd { end_offset })
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        reason = "tests index fixtures they built themselves"
    )]

    use super::super::tests::check_record;
    use super::super::{BODY_OFFSET, LEGACY_BODY_OFFSET};
    use super::*;

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn adoption_marker_round_trip_damage_and_version_1() {
        for (compacted, adopting) in [(false, false), (true, false), (false, true), (true, true)] {
            check_record(&AdoptedLog {
                gaps_below: 31,
                log_start: 3,
                compacted,
                adopting,
                segment_ends: vec![(0, 12), (20, 23)],
            });
        }
        // Version 1 held the end alone: a compacted log whose adoption finished.
        let v1 = AdoptedLog::ENVELOPE_V1.seal_raw(1, &31u64.to_le_bytes());
        assert_eq!(
            AdoptedLog::decode(&v1).unwrap(),
            AdoptedLog {
                gaps_below: 31,
                log_start: 0,
                compacted: true,
                adopting: false,
                segment_ends: Vec::new(),
            }
        );
        let mut body = 31u64.to_le_bytes().to_vec();
        body.extend(3u64.to_le_bytes());
        body.push(4);
        body.extend(0u32.to_le_bytes());
        let unknown_flag = AdoptedLog::ENVELOPE.seal_raw(2, &body);
        assert!(AdoptedLog::decode(&unknown_flag).is_err());
    }

    #[test]
    fn checkpoint_round_trip_and_damage() {
        for producers_from in [None, Some(0), Some(12), Some(u64::MAX - 1)] {
            check_record(&Checkpoint {
                log_start_offset: 7,
                recovery_point: 1 << 40,
                producers_from,
            });
        }
        check_record(&Checkpoint::default());
    }

    #[test]
    fn checkpoint_layout_is_the_documented_one() {
        let c = Checkpoint {
            log_start_offset: 11,
            recovery_point: 22,
            producers_from: Some(33),
        };
        let b = c.encode_to_vec();
        // docs/FORMAT.md: 37 bytes, fields at 9, 17, 25, the CRC at 33.
        assert_eq!(b.len(), 37);
        assert_eq!(&b[..5], b"TLCP\x03");
        assert_eq!(
            [u64_at(&b, BODY_OFFSET), u64_at(&b, 17), u64_at(&b, 25)],
            [11, 22, 33]
        );
    }

    #[test]
    fn checkpoint_versions_1_and_2_are_read() {
        let mut body = Vec::new();
        for v in [5u64, 9, 4] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        let v2 = Checkpoint::ENVELOPE.seal_raw(2, &body);
        // docs/FORMAT.md: version 2 is 33 bytes (CRC at 29), version 1 is 25 (CRC at 21).
        assert_eq!(v2.len(), 33);
        assert_eq!(u64_at(&v2, LEGACY_BODY_OFFSET), 5);
        assert_eq!(
            Checkpoint::decode(&v2),
            Ok(Checkpoint {
                log_start_offset: 5,
                recovery_point: 9,
                producers_from: Some(4),
            })
        );
        let v1 = Checkpoint::ENVELOPE.seal_raw(1, &body[..16]);
        assert_eq!(v1.len(), 25);
        assert_eq!(
            Checkpoint::decode(&v1),
            Ok(Checkpoint {
                log_start_offset: 5,
                recovery_point: 9,
                producers_from: None,
            })
        );
        // A version-2 body under version 1 (and the reverse) has the wrong length.
        assert!(Checkpoint::decode(&Checkpoint::ENVELOPE.seal_raw(1, &body)).is_err());
        assert!(Checkpoint::decode(&Checkpoint::ENVELOPE.seal_raw(2, &body[..16])).is_err());
    }

    #[test]
    fn trusted_end_round_trip_and_damage() {
        check_record(&TrustedEnd { end_offset: 42 });
        let b = TrustedEnd { end_offset: 42 }.encode_to_vec();
        assert_eq!(b.len(), 21);
        assert_eq!(&b[..5], b"TLTE\x01");
        assert_eq!(u64_at(&b, 9), 42);
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
        check_record(&m);
        check_record(&CleanShutdown {
            producers_from: None,
            ..m
        });
        let b = m.encode_to_vec();
        // docs/FORMAT.md: 53 bytes, the CRC at 49.
        assert_eq!(b.len(), 53);
        assert_eq!(&b[..5], b"TLCS\x02");
        assert_eq!(u64_at(&b, 41), 777);
    }

    #[test]
    fn clean_marker_version_1_is_read_and_order_is_checked() {
        let body = |start: u64, end: u64, active: u64| {
            let mut b = Vec::new();
            for v in [start, end, u64::MAX, active, 10] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            CleanShutdown::ENVELOPE.seal_raw(1, &b)
        };
        // docs/FORMAT.md: version 1 is 49 bytes.
        assert_eq!(body(1, 2, 2).len(), 49);
        assert_eq!(
            CleanShutdown::decode(&body(1, 2, 2)),
            Ok(CleanShutdown {
                log_start_offset: 1,
                end_offset: 2,
                producers_from: None,
                active_base: 2,
                active_size: 10,
            })
        );
        for bad in [body(3, 2, 0), body(0, 2, 3)] {
            let e = CleanShutdown::decode(&bad).unwrap_err();
            assert_eq!(e.reason, "offsets are out of order");
        }
    }
}
