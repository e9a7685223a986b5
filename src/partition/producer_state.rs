//! Idempotent producers: per producer id, the epoch and the last few batches' sequence numbers
//! and offsets, so a replayed batch is recognised and answered with its original offsets.
//!
//! The table lives under the append lock. It is rebuilt at open from a snapshot file plus the batch
//! headers after it (`producer_id >= 0`), and the snapshot is rewritten at a clean close and, in
//! the background, after a roll (taken at a point that was then made durable, so it never names a
//! batch a crash could take back).
//!
//! Snapshot layout (little-endian): magic `TLPS` (4) | version u8 (1) | offset u64 (8) |
//! producer count u32 (4) | per producer: id i64, epoch i16, batch count u8, per batch: first
//! sequence i32, last sequence i32, base offset u64, last offset u64, append time i64 |
//! CRC-32 of everything before it (4).

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::format::{get_i64, get_u32, get_u64, BatchHeader};
use crate::fs::{read_small_file, write_atomic, FileSystem};

use super::AppendInfo;

/// Batches remembered per producer (Kafka keeps five).
pub const PRODUCER_BATCHES_KEPT: usize = 5;
/// Name of the snapshot file in a partition directory.
pub(crate) const FILE_NAME: &str = "producer-snapshot";
const MAGIC: &[u8; 4] = b"TLPS";
const VERSION: u8 = 1;
const BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;
/// Largest snapshot read (a guard against a damaged length).
const MAX_SNAPSHOT_BYTES: u64 = 256 << 20;

/// Who wrote a batch, for idempotence: Kafka's producer id, epoch and base sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    /// The producer id (non-negative).
    pub producer_id: i64,
    /// The producer's epoch: a higher epoch fences lower ones.
    pub epoch: i16,
    /// Sequence number of the batch's first record; the next batch continues after its last.
    pub base_sequence: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CachedBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: u64,
    last_offset: u64,
    append_time: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    batches: VecDeque<CachedBatch>,
}

/// What an idempotent append should do.
#[derive(Debug)]
pub(crate) enum Check {
    /// A new batch in sequence: append it.
    Fresh,
    /// Already appended: here is where.
    Duplicate(AppendInfo),
}

/// The producer table of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProducerTable {
    producers: HashMap<i64, Entry>,
}

fn last_seq(first: i32, count: u32) -> i32 {
    // Sequences wrap from i32::MAX to 0, as in Kafka.
    ((i64::from(first) + i64::from(count) - 1) % (i64::from(i32::MAX) + 1)) as i32
}

fn next_seq(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

impl ProducerTable {
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The largest producer id in the table.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().copied().max()
    }

    /// Decide what to do with a batch of `count` records from `p` (under the append lock).
    pub fn check(&self, p: ProducerBatch, count: u32, path: &Path) -> Result<Check> {
        let Some(e) = self.producers.get(&p.producer_id) else {
            return Ok(Check::Fresh);
        };
        if p.epoch < e.epoch {
            return Err(Error::ProducerFenced {
                path: path.to_owned(),
                producer_id: p.producer_id,
                epoch: p.epoch,
                current: e.epoch,
            });
        }
        if p.epoch > e.epoch {
            if p.base_sequence != 0 {
                return Err(Error::OutOfOrderSequence {
                    path: path.to_owned(),
                    producer_id: p.producer_id,
                    expected: 0,
                    got: p.base_sequence,
                });
            }
            return Ok(Check::Fresh);
        }
        let last = last_seq(p.base_sequence, count);
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == p.base_sequence && b.last_seq == last)
        {
            return Ok(Check::Duplicate(AppendInfo {
                base_offset: b.base_offset,
                last_offset: b.last_offset,
                append_time: b.append_time,
                duplicate: true,
            }));
        }
        let expected = e.batches.back().map_or(0, |b| next_seq(b.last_seq));
        if p.base_sequence != expected {
            return Err(Error::OutOfOrderSequence {
                path: path.to_owned(),
                producer_id: p.producer_id,
                expected,
                got: p.base_sequence,
            });
        }
        Ok(Check::Fresh)
    }

    /// Remember an appended batch.
    pub fn record(&mut self, p: ProducerBatch, count: u32, info: &AppendInfo) {
        let e = self
            .producers
            .entry(p.producer_id)
            .or_insert_with(|| Entry {
                epoch: p.epoch,
                batches: VecDeque::new(),
            });
        if p.epoch != e.epoch {
            e.epoch = p.epoch;
            e.batches.clear();
        }
        e.batches.push_back(CachedBatch {
            first_seq: p.base_sequence,
            last_seq: last_seq(p.base_sequence, count),
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            append_time: info.append_time,
        });
        while e.batches.len() > PRODUCER_BATCHES_KEPT {
            e.batches.pop_front();
        }
    }

    /// Account a batch read back from the log (rebuilding the table).
    pub fn replay(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let p = ProducerBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
        };
        if self
            .producers
            .get(&p.producer_id)
            .is_some_and(|e| e.epoch > p.epoch)
        {
            return;
        }
        // The sequence range covers the batch's offset range (compaction may have removed
        // records, never the range).
        let count = h.last_offset_delta.saturating_add(1);
        self.record(
            p,
            count,
            &AppendInfo {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                append_time: h.max_timestamp,
                duplicate: false,
            },
        );
    }

    pub fn encode(&self, offset: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.extend_from_slice(&offset.to_le_bytes());
        b.extend_from_slice(&(self.producers.len() as u32).to_le_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let e = &self.producers[id];
            b.extend_from_slice(&id.to_le_bytes());
            b.extend_from_slice(&e.epoch.to_le_bytes());
            b.push(e.batches.len() as u8);
            for c in &e.batches {
                b.extend_from_slice(&c.first_seq.to_le_bytes());
                b.extend_from_slice(&c.last_seq.to_le_bytes());
                b.extend_from_slice(&c.base_offset.to_le_bytes());
                b.extend_from_slice(&c.last_offset.to_le_bytes());
                b.extend_from_slice(&c.append_time.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decode a snapshot: `(offset, table)`.
    pub fn decode(b: &[u8], path: &Path) -> Result<(u64, ProducerTable)> {
        let bad = |reason: &str| Error::corrupt(path, 0, reason);
        if b.len() < 4 + 1 + 8 + 4 + 4 {
            return Err(bad("producer snapshot is truncated"));
        }
        if &b[..4] != MAGIC || b[4] != VERSION {
            return Err(bad("not a topiclog producer snapshot"));
        }
        let body = b.len() - 4;
        if crc32fast::hash(&b[..body]) != get_u32(b, body) {
            return Err(bad("producer snapshot CRC mismatch"));
        }
        let offset = get_u64(b, 5);
        let count = get_u32(b, 13) as usize;
        let mut pos = 17;
        let mut table = ProducerTable::default();
        for _ in 0..count {
            if pos + 11 > body {
                return Err(bad("producer snapshot entry is truncated"));
            }
            let id = get_i64(b, pos);
            let epoch = i16::from_le_bytes([b[pos + 8], b[pos + 9]]);
            let n = b[pos + 10] as usize;
            pos += 11;
            if n > PRODUCER_BATCHES_KEPT || pos + n * BATCH_LEN > body {
                return Err(bad("producer snapshot batch list is damaged"));
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(CachedBatch {
                    first_seq: get_u32(b, pos) as i32,
                    last_seq: get_u32(b, pos + 4) as i32,
                    base_offset: get_u64(b, pos + 8),
                    last_offset: get_u64(b, pos + 16),
                    append_time: get_i64(b, pos + 24),
                });
                pos += BATCH_LEN;
            }
            table.producers.insert(id, Entry { epoch, batches });
        }
        if pos != body {
            return Err(bad("producer snapshot has bytes left over"));
        }
        Ok((offset, table))
    }

    /// Read the snapshot in `dir`: `Ok(None)` if there is none.
    pub fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<(u64, ProducerTable)>> {
        let path = dir.join(FILE_NAME);
        if !fs.exists(&path).at(&path)? {
            return Ok(None);
        }
        let bytes = read_small_file(fs, &path, MAX_SNAPSHOT_BYTES)?;
        ProducerTable::decode(&bytes, &path).map(Some)
    }

    /// Replace the snapshot in `dir` with this table as of `offset`.
    pub fn write(&self, fs: &dyn FileSystem, dir: &Path, offset: u64) -> Result<()> {
        let path = dir.join(FILE_NAME);
        write_atomic(fs, &path, &self.encode(offset)).at(&path)
    }

    /// Whether every remembered batch is well-formed and lies below `offset` (a snapshot taken
    /// at `offset` can only hold such batches).
    pub fn lies_below(&self, offset: u64) -> bool {
        self.producers.values().all(|e| {
            e.batches
                .iter()
                .all(|b| b.base_offset <= b.last_offset && b.last_offset < offset)
        })
    }

    /// Forget batches at or after `offset` (truncation).
    pub fn truncate(&mut self, offset: u64) {
        for e in self.producers.values_mut() {
            e.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(base: u64, last: u64) -> AppendInfo {
        AppendInfo {
            base_offset: base,
            last_offset: last,
            append_time: 7,
            duplicate: false,
        }
    }

    fn pb(seq: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 9,
            epoch: 0,
            base_sequence: seq,
        }
    }

    #[test]
    fn duplicates_order_and_fencing() {
        let p = Path::new("x");
        let mut t = ProducerTable::default();
        assert!(matches!(t.check(pb(0), 3, p), Ok(Check::Fresh)));
        t.record(pb(0), 3, &info(10, 12));
        match t.check(pb(0), 3, p) {
            Ok(Check::Duplicate(i)) => assert_eq!((i.base_offset, i.last_offset), (10, 12)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.check(pb(4), 1, p),
            Err(Error::OutOfOrderSequence {
                expected: 3,
                got: 4,
                ..
            })
        ));
        assert!(matches!(t.check(pb(3), 2, p), Ok(Check::Fresh)));
        for i in 0..10 {
            t.record(pb(3 + i), 1, &info(20 + i as u64, 20 + i as u64));
        }
        // Only the last five batches are remembered.
        assert!(matches!(
            t.check(pb(0), 3, p),
            Err(Error::OutOfOrderSequence { .. })
        ));
        assert!(matches!(t.check(pb(12), 1, p), Ok(Check::Duplicate(_))));
        // A new epoch restarts at 0 and fences the old one.
        let e1 = ProducerBatch { epoch: 1, ..pb(0) };
        assert!(matches!(
            t.check(ProducerBatch { epoch: 1, ..pb(5) }, 1, p),
            Err(Error::OutOfOrderSequence { .. })
        ));
        assert!(matches!(t.check(e1, 1, p), Ok(Check::Fresh)));
        t.record(e1, 1, &info(40, 40));
        assert!(matches!(
            t.check(pb(13), 1, p),
            Err(Error::ProducerFenced { current: 1, .. })
        ));
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(last_seq(i32::MAX, 1), i32::MAX);
        assert_eq!(last_seq(i32::MAX, 2), 0);
        assert_eq!(next_seq(i32::MAX), 0);
    }

    #[test]
    fn snapshot_round_trip_and_damage() {
        let mut t = ProducerTable::default();
        t.record(pb(0), 3, &info(10, 12));
        t.record(
            ProducerBatch {
                producer_id: 3,
                ..pb(0)
            },
            1,
            &info(13, 13),
        );
        let b = t.encode(14);
        assert_eq!(
            ProducerTable::decode(&b, Path::new("x")).unwrap(),
            (14, t.clone())
        );
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 1;
            assert!(ProducerTable::decode(&d, Path::new("x")).is_err(), "{i}");
        }
        for n in 0..b.len() {
            assert!(ProducerTable::decode(&b[..n], Path::new("x")).is_err());
        }
        let mut cut = t.clone();
        cut.truncate(13);
        assert_eq!(cut.producers.len(), 1);
    }
}
