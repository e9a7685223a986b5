//! Idempotent producers: per producer id, the epoch and the last few batches' sequence numbers
//! and offsets, so a replayed batch is recognised and answered with its original offsets.
//!
//! The table lives under the append lock. It is rebuilt at open from a snapshot file plus the batch
//! headers after it (`producer_id >= 0`), or from the batch headers alone when the snapshot is
//! missing, damaged or stale (as Kafka does), and the snapshot is rewritten at a clean close and,
//! in the background, after a roll (taken at a point that was then made durable, so it never
//! names a batch a crash could take back).
//!
//! A producer that has not written for `producer_id_expiration` (Kafka's
//! `producer.id.expiration.ms`) is forgotten: a batch from it afterwards is taken as new.
//!
//! The snapshot's bytes are [`crate::format::meta::ProducerSnapshot`]'s.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::format::meta::{
    CachedBatch, Decode, Encode, ProducerSnapshot, SnapshotProducer, MAX_PRODUCER_BATCHES,
};
use crate::format::BatchHeader;
use crate::fs::{read_small_file, write_atomic, FileSystem};

use super::AppendInfo;

/// Batches remembered per producer (Kafka keeps five).
pub const PRODUCER_BATCHES_KEPT: usize = MAX_PRODUCER_BATCHES;
/// Name of the snapshot file in a partition directory.
pub(crate) const FILE_NAME: &str = "producer-snapshot";
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

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    /// When the producer last wrote (the log's clock; for batches read back from the log, the
    /// newest of their maximum timestamp and their segment's last modification).
    last_seen_ms: i64,
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

    /// Forget producers that have not written for `expiration` as of `now_ms`.
    pub fn remove_expired(&mut self, now_ms: i64, expiration: std::time::Duration) {
        let window = i64::try_from(expiration.as_millis()).unwrap_or(i64::MAX);
        let horizon = now_ms.saturating_sub(window);
        self.producers.retain(|_, e| e.last_seen_ms >= horizon);
    }

    /// Decide what to do with a batch of `count` records from `p` (under the append lock). A
    /// producer idle longer than `expiration` is unknown again: its batch is new.
    pub fn check(
        &mut self,
        p: ProducerBatch,
        count: u32,
        path: &Path,
        now_ms: i64,
        expiration: std::time::Duration,
    ) -> Result<Check> {
        let window = i64::try_from(expiration.as_millis()).unwrap_or(i64::MAX);
        if self
            .producers
            .get(&p.producer_id)
            .is_some_and(|e| e.last_seen_ms < now_ms.saturating_sub(window))
        {
            self.producers.remove(&p.producer_id);
        }
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

    /// Remember an appended batch, written at `seen_ms`.
    pub fn record(&mut self, p: ProducerBatch, count: u32, info: &AppendInfo, seen_ms: i64) {
        let e = self
            .producers
            .entry(p.producer_id)
            .or_insert_with(|| Entry {
                epoch: p.epoch,
                last_seen_ms: seen_ms,
                batches: VecDeque::new(),
            });
        e.last_seen_ms = e.last_seen_ms.max(seen_ms);
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

    /// Account a batch read back from the log (rebuilding the table); `seen_ms` is when it was
    /// written, as far as the log can tell.
    /// The base offset of every producer's last batch: what compaction keeps (at least as an
    /// empty batch) so that the producer's state can be rebuilt from the log, as Kafka's cleaner
    /// keeps it (`LogCleaner`: the last batch of a producer is retained even when empty).
    pub fn last_batch_bases(&self) -> std::collections::HashSet<u64> {
        self.producers
            .values()
            .filter_map(|e| e.batches.back().map(|b| b.base_offset))
            .collect()
    }

    pub fn replay(&mut self, h: &BatchHeader, seen_ms: i64) {
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
            seen_ms.max(h.max_timestamp),
        );
    }

    /// The snapshot of this table as of `offset`, producers by id.
    fn snapshot(&self, offset: u64) -> ProducerSnapshot {
        let mut producers: Vec<SnapshotProducer> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| SnapshotProducer {
                producer_id,
                epoch: e.epoch,
                last_seen_ms: e.last_seen_ms,
                batches: e.batches.iter().copied().collect(),
            })
            .collect();
        producers.sort_by_key(|p| p.producer_id);
        ProducerSnapshot { offset, producers }
    }

    /// The table a snapshot holds, and its offset. A producer id written twice (only damage
    /// could) keeps its last entry.
    fn from_snapshot(snapshot: ProducerSnapshot) -> (u64, ProducerTable) {
        let producers = snapshot
            .producers
            .into_iter()
            .map(|p| {
                let entry = Entry {
                    epoch: p.epoch,
                    last_seen_ms: p.last_seen_ms,
                    batches: p.batches.into(),
                };
                (p.producer_id, entry)
            })
            .collect();
        (snapshot.offset, ProducerTable { producers })
    }

    /// Read the snapshot in `dir`: `Ok(None)` if there is none.
    pub fn read(fs: &dyn FileSystem, dir: &Path) -> Result<Option<(u64, ProducerTable)>> {
        let path = dir.join(FILE_NAME);
        if !fs.exists(&path).at(&path)? {
            return Ok(None);
        }
        let bytes = read_small_file(fs, &path, MAX_SNAPSHOT_BYTES)?;
        ProducerSnapshot::decode(&bytes)
            .map(|s| Some(ProducerTable::from_snapshot(s)))
            .map_err(|e| e.corrupt(&path, "producer snapshot"))
    }

    /// Replace the snapshot in `dir` with this table as of `offset`.
    pub fn write(&self, fs: &dyn FileSystem, dir: &Path, offset: u64) -> Result<()> {
        let path = dir.join(FILE_NAME);
        write_atomic(fs, &path, &self.snapshot(offset).encode_to_vec()).at(&path)
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

    const NOW: i64 = 1_000;
    const DAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

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
        assert!(matches!(t.check(pb(0), 3, p, NOW, DAY), Ok(Check::Fresh)));
        t.record(pb(0), 3, &info(10, 12), NOW);
        match t.check(pb(0), 3, p, NOW, DAY) {
            Ok(Check::Duplicate(i)) => assert_eq!((i.base_offset, i.last_offset), (10, 12)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.check(pb(4), 1, p, NOW, DAY),
            Err(Error::OutOfOrderSequence {
                expected: 3,
                got: 4,
                ..
            })
        ));
        assert!(matches!(t.check(pb(3), 2, p, NOW, DAY), Ok(Check::Fresh)));
        for i in 0..10 {
            t.record(pb(3 + i), 1, &info(20 + i as u64, 20 + i as u64), NOW);
        }
        // Only the last five batches are remembered.
        assert!(matches!(
            t.check(pb(0), 3, p, NOW, DAY),
            Err(Error::OutOfOrderSequence { .. })
        ));
        assert!(matches!(
            t.check(pb(12), 1, p, NOW, DAY),
            Ok(Check::Duplicate(_))
        ));
        // A new epoch restarts at 0 and fences the old one.
        let e1 = ProducerBatch { epoch: 1, ..pb(0) };
        assert!(matches!(
            t.check(ProducerBatch { epoch: 1, ..pb(5) }, 1, p, NOW, DAY),
            Err(Error::OutOfOrderSequence { .. })
        ));
        assert!(matches!(t.check(e1, 1, p, NOW, DAY), Ok(Check::Fresh)));
        t.record(e1, 1, &info(40, 40), NOW);
        assert!(matches!(
            t.check(pb(13), 1, p, NOW, DAY),
            Err(Error::ProducerFenced { current: 1, .. })
        ));
    }

    #[test]
    fn idle_producers_expire() {
        let p = Path::new("x");
        let hour = std::time::Duration::from_secs(3600);
        let mut t = ProducerTable::default();
        t.record(pb(0), 1, &info(0, 0), NOW);
        let other = ProducerBatch {
            producer_id: 3,
            ..pb(0)
        };
        t.record(other, 1, &info(1, 1), NOW + 3_600_000);
        // Within the window the replay is a duplicate.
        assert!(matches!(
            t.check(pb(0), 1, p, NOW + 3_600_000, hour),
            Ok(Check::Duplicate(_))
        ));
        // Idle past it, the producer is unknown: its batch (any sequence) is new.
        assert!(matches!(
            t.check(pb(7), 1, p, NOW + 3_600_001, hour),
            Ok(Check::Fresh)
        ));
        assert_eq!(t.max_producer_id(), Some(3));
        t.remove_expired(NOW + 2 * 3_600_000 + 1, hour);
        assert!(t.is_empty());
    }

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(last_seq(i32::MAX, 1), i32::MAX);
        assert_eq!(last_seq(i32::MAX, 2), 0);
        assert_eq!(next_seq(i32::MAX), 0);
    }

    #[test]
    fn snapshot_round_trip_by_id() {
        let mut t = ProducerTable::default();
        t.record(pb(0), 3, &info(10, 12), NOW);
        t.record(
            ProducerBatch {
                producer_id: 3,
                ..pb(0)
            },
            1,
            &info(13, 13),
            NOW,
        );
        let snapshot = t.snapshot(14);
        assert_eq!(
            snapshot
                .producers
                .iter()
                .map(|p| p.producer_id)
                .collect::<Vec<_>>(),
            vec![3, 9],
            "by id"
        );
        let back = ProducerSnapshot::decode(&snapshot.encode_to_vec()).unwrap();
        assert_eq!(ProducerTable::from_snapshot(back), (14, t.clone()));
        // A repeated id (damage with a valid CRC) keeps its last entry.
        let mut twice = snapshot.clone();
        twice.producers.push(SnapshotProducer {
            producer_id: 3,
            epoch: 7,
            last_seen_ms: 0,
            batches: Vec::new(),
        });
        assert_eq!(ProducerTable::from_snapshot(twice).1.producers[&3].epoch, 7);
        let mut cut = t.clone();
        cut.truncate(13);
        assert_eq!(cut.producers.len(), 1);
    }
}
