//! Reading a `Segment`: before its first offset, after its last, when empty, from the middle of a
//! batch, across an offset gap, within a byte limit; and finding offsets by timestamp when record
//! timestamps are out of order. Every check runs on the active segment, on the same segment once
//! sealed (read through a map), and on the sealed files reopened from disk, on both file systems.
//! The scenarios follow Kafka's `LogSegmentTest`.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::{both_fs, brute_force_offset_for_time, RecordView, TestRng};
use topiclog::fs::FileSystem;
use topiclog::segment::{RecordBatch, Segment, TimestampOffset};
use topiclog::{Durability, Env, LogConfig, Partition, Record};

const BASE: u64 = 40;

/// Encode `records` as one batch starting at `base`, as the partition would write it.
fn encode(records: &[Record], base: u64) -> Vec<u8> {
    let now = topiclog::Clock::now_ms(&topiclog::SystemClock);
    RecordBatch::build(records, base, now)
        .unwrap()
        .as_bytes()
        .to_vec()
}

/// A segment's config: an index entry every `index_interval_bytes`, its `.log` preallocated to
/// `preallocate_bytes` (0: not preallocated).
fn config(index_interval_bytes: u32, preallocate_bytes: u64) -> LogConfig {
    LogConfig {
        index_interval_bytes,
        max_index_bytes: 4096,
        preallocate: preallocate_bytes > 0,
        segment_bytes: preallocate_bytes.max(1024),
        max_batch_bytes: 1 << 20,
        ..LogConfig::default()
    }
}

/// Records `tag-0`, `tag-1`, ... with the given timestamps.
fn records_at(tag: &str, timestamps: &[i64]) -> Vec<Record> {
    timestamps
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            Record::new(format!("{tag}-{i}"))
                .with_key(format!("k{i}"))
                .with_timestamp(t)
        })
        .collect()
}

/// A segment at `BASE` in `dir` holding `batches` (each placed at its given base offset), and the
/// batches as they must read back.
fn build(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    cfg: &LogConfig,
    batches: &[(u64, Vec<Record>)],
) -> (Segment, Vec<RecordBatch>) {
    fs.create_dir_all(dir).unwrap();
    let seg = Segment::create(fs.clone(), dir, BASE, cfg).unwrap();
    let mut expected = Vec::new();
    for (base, records) in batches {
        let bytes = encode(records, *base);
        seg.append(&bytes, 0).unwrap();
        expected.push(RecordBatch::decode(Bytes::from(bytes)).unwrap());
    }
    (seg, expected)
}

/// Run `check` on the active segment, on it once sealed, and on its files reopened as a sealed
/// segment.
fn each_state(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    cfg: &LogConfig,
    seg: Segment,
    check: impl Fn(&Segment, &str),
) {
    check(&seg, "active");
    let next = seg.next_offset();
    seg.seal().unwrap();
    check(&seg, "sealed");
    let reopened = Segment::open_sealed(fs.clone(), dir, BASE, next, cfg).unwrap();
    check(&reopened, "reopened");
}

fn base_offsets(batches: &[RecordBatch]) -> Vec<u64> {
    batches.iter().map(RecordBatch::base_offset).collect()
}

fn record_offsets(batches: &[RecordBatch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| b.records().map(|r| r.offset()))
        .collect()
}

#[test]
fn read_on_empty_segment_returns_nothing() {
    both_fs(|fs, dir| {
        let cfg = config(64, 0);
        let (seg, _) = build(&fs, dir, &cfg, &[]);
        assert_eq!(seg.size(), 0);
        assert_eq!(seg.next_offset(), BASE);
        assert_eq!(seg.max_timestamp().unwrap(), None);
        each_state(&fs, dir, &cfg, seg, |seg, state| {
            for offset in [0, BASE - 1, BASE, BASE + 1, u64::MAX] {
                assert!(seg.read(offset, 1 << 20).unwrap().is_empty(), "{state}");
            }
            for t in [i64::MIN, 0, i64::MAX] {
                assert_eq!(seg.find_offset_by_timestamp(t, BASE).unwrap(), None);
            }
        });
    });
}

#[test]
fn read_before_first_offset_returns_first_batch() {
    both_fs(|fs, dir| {
        // The first batch starts after the segment's base offset (as after compaction).
        let cfg = config(64, 0);
        let (seg, expected) = build(&fs, dir, &cfg, &[(50, records_at("a", &[1, 2, 3]))]);
        each_state(&fs, dir, &cfg, seg, |seg, state| {
            for offset in [0, BASE, BASE + 1, 49, 50] {
                let got = seg.read(offset, 1 << 20).unwrap();
                assert_eq!(got, expected, "{state}: read({offset})");
                assert_eq!(record_offsets(&got), vec![50, 51, 52]);
            }
        });
    });
}

#[test]
fn read_after_last_offset_returns_nothing() {
    both_fs(|fs, dir| {
        let cfg = config(64, 1 << 14);
        let (seg, expected) = build(
            &fs,
            dir,
            &cfg,
            &[
                (BASE, records_at("a", &[1, 2, 3])),
                (BASE + 3, records_at("b", &[4, 5])),
            ],
        );
        assert_eq!(seg.next_offset(), BASE + 5);
        each_state(&fs, dir, &cfg, seg, |seg, state| {
            assert_eq!(
                seg.read(BASE + 4, 1 << 20).unwrap(),
                expected[1..],
                "{state}"
            );
            for offset in [BASE + 5, BASE + 6, 1_000, u64::MAX] {
                assert!(
                    seg.read(offset, 1 << 20).unwrap().is_empty(),
                    "{state}: read({offset})"
                );
            }
        });
    });
}

#[test]
fn read_from_gap_returns_next_batch() {
    both_fs(|fs, dir| {
        let cfg = config(64, 0);
        let (seg, expected) = build(
            &fs,
            dir,
            &cfg,
            &[
                (BASE, records_at("a", &[1, 2])),
                (60, records_at("b", &[3, 4])),
            ],
        );
        each_state(&fs, dir, &cfg, seg, |seg, state| {
            for offset in [BASE + 2, 45, 59, 60] {
                let got = seg.read(offset, 1 << 20).unwrap();
                assert_eq!(got, expected[1..], "{state}: read({offset})");
            }
            assert_eq!(seg.read(BASE + 1, 1 << 20).unwrap(), expected, "{state}");
            assert!(seg.read(62, 1 << 20).unwrap().is_empty(), "{state}");
        });
    });
}

#[test]
fn read_mid_batch_returns_containing_batch() {
    both_fs(|fs, dir| {
        let cfg = config(1, 0);
        let (seg, expected) = build(
            &fs,
            &dir.join("segment"),
            &cfg,
            &[
                (BASE, records_at("a", &[1; 5])),
                (BASE + 5, records_at("b", &[2; 5])),
                (BASE + 10, records_at("c", &[3; 5])),
            ],
        );
        each_state(&fs, &dir.join("segment"), &cfg, seg, |seg, state| {
            for offset in BASE..BASE + 15 {
                let i = ((offset - BASE) / 5) as usize;
                let got = seg.read(offset, 1 << 20).unwrap();
                assert_eq!(got, expected[i..], "{state}: read({offset})");
                let one = seg.read(offset, 1).unwrap();
                assert_eq!(one, expected[i..=i], "{state}: read({offset}, 1)");
            }
        });

        // At the partition level the whole batch comes back, and records() skips the offsets
        // below the one asked for.
        let log = Partition::open_with_env(
            dir.join("partition"),
            LogConfig {
                segment_bytes: 4096,
                ..LogConfig::default()
            },
            Env::with_fs(fs.clone()),
        )
        .unwrap();
        log.append_batch(&records_at("a", &[1; 5])).unwrap();
        log.append_batch(&records_at("b", &[2; 5])).unwrap();
        for offset in 0..10u64 {
            let read = log.read(offset, 1 << 20).unwrap();
            let first = read.batches()[0].base_offset();
            assert_eq!(first, offset / 5 * 5, "read({offset})");
            let offsets: Vec<u64> = read.records().map(|r| r.offset()).collect();
            assert_eq!(offsets, (offset..10).collect::<Vec<_>>(), "read({offset})");
            assert_eq!(read.next_offset(), 10);
        }
        let read = log.read(7, 1).unwrap();
        assert_eq!(base_offsets(read.batches()), vec![5]);
        let values: Vec<Bytes> = read.records().map(|r| r.value().unwrap().clone()).collect();
        assert_eq!(
            values,
            vec![Bytes::from("b-2"), Bytes::from("b-3"), Bytes::from("b-4")]
        );
    });
}

#[test]
fn read_honors_max_bytes_but_returns_at_least_one_batch() {
    both_fs(|fs, dir| {
        let mut rng = TestRng::new(17);
        let mut batches = Vec::new();
        let mut next = BASE;
        for b in 0..14u64 {
            let count = 1 + rng.below(3) as usize;
            // One batch far larger than any limit below, in the middle.
            let value_len = if b == 6 {
                6000
            } else {
                20 + rng.below(280) as usize
            };
            let records: Vec<Record> = (0..count)
                .map(|_| Record::new(rng.bytes(value_len)).with_timestamp(b as i64))
                .collect();
            batches.push((next, records));
            next += count as u64;
        }
        for (n, cfg) in [config(1, 0), config(512, 1 << 15)].into_iter().enumerate() {
            let seg_dir = dir.join(format!("s{n}"));
            let (seg, expected) = build(&fs, &seg_dir, &cfg, &batches);
            let lens: Vec<usize> = expected.iter().map(|b| b.as_bytes().len()).collect();
            each_state(&fs, &seg_dir, &cfg, seg, |seg, state| {
                for offset in BASE..next {
                    let first = expected
                        .iter()
                        .position(|b| b.last_offset() >= offset)
                        .unwrap();
                    for max in [1, 100, 300, 700, 2_000, 5_000, 7_000, 1 << 20] {
                        let got = seg.read(offset, max).unwrap();
                        let what = format!("{state}: read({offset}, {max})");
                        assert!(!got.is_empty(), "{what}: at least one batch");
                        let end = first + got.len();
                        assert_eq!(got, expected[first..end], "{what}");
                        let total: usize = lens[first..end].iter().sum();
                        if got.len() > 1 {
                            assert!(total <= max, "{what}: {total} bytes");
                        }
                        if let Some(next_len) = lens.get(end) {
                            assert!(
                                total + next_len > max,
                                "{what}: stopped with room for the next batch"
                            );
                        }
                    }
                }
            });
        }
    });
}

/// The first record at or after `start` with a timestamp `>= ts`, by brute force.
fn brute_force(records: &[RecordView], ts: i64, start: u64) -> Option<TimestampOffset> {
    let from = records.partition_point(|r| r.offset < start);
    brute_force_offset_for_time(&records[from..], ts)
}

fn check_find_by_timestamp(fs: &Arc<dyn FileSystem>, dir: &Path, batches: &[(u64, Vec<Record>)]) {
    let all_ts: Vec<i64> = batches
        .iter()
        .flat_map(|(_, rs)| rs.iter().map(|r| r.timestamp().unwrap()))
        .collect();
    let lo = *all_ts.iter().min().unwrap() - 2;
    let hi = *all_ts.iter().max().unwrap() + 2;
    for (n, cfg) in [config(1, 0), config(100, 1 << 14), config(1 << 20, 0)]
        .into_iter()
        .enumerate()
    {
        let seg_dir = dir.join(format!("s{n}"));
        let (seg, expected) = build(fs, &seg_dir, &cfg, batches);
        let records: Vec<RecordView> = expected
            .iter()
            .flat_map(|b| b.records())
            .map(|r| RecordView::of(&r))
            .collect();
        let next = seg.next_offset();
        each_state(fs, &seg_dir, &cfg, seg, |seg, state| {
            assert_eq!(
                seg.max_timestamp().unwrap(),
                Some(hi - 2),
                "{state}: max timestamp"
            );
            for start in [BASE, BASE + 1, BASE + 3, (BASE + next) / 2, next - 1, next] {
                for t in lo..=hi {
                    assert_eq!(
                        seg.find_offset_by_timestamp(t, start).unwrap(),
                        brute_force(&records, t, start),
                        "{state}, interval {}: find({t}, from {start})",
                        cfg.index_interval_bytes
                    );
                }
            }
        });
    }
}

#[test]
fn find_offset_by_timestamp_with_out_of_order_timestamps() {
    both_fs(|fs, dir| {
        let pattern: [&[i64]; 12] = [
            &[5, 1, 9],
            &[3],
            &[2, 4],
            &[12, 7],
            &[7],
            &[6, 15, 11],
            &[14],
            &[8, 8],
            &[20, 1],
            &[19],
            &[0],
            &[20, 20, 3],
        ];
        let mut batches = Vec::new();
        let mut next = BASE;
        for (i, ts) in pattern.iter().enumerate() {
            batches.push((next, records_at(&format!("b{i}"), ts)));
            next += ts.len() as u64;
        }
        check_find_by_timestamp(&fs, dir, &batches);
    });
}

#[test]
fn find_offset_by_timestamp_with_random_timestamps() {
    both_fs(|fs, dir| {
        let mut rng = TestRng::new(0x7135);
        let mut batches = Vec::new();
        let mut next = BASE;
        for b in 0..40i64 {
            let ts: Vec<i64> = (0..1 + rng.below(4))
                .map(|_| 1000 + 5 * b + rng.below(40) as i64 - 20)
                .collect();
            batches.push((next, records_at(&format!("b{b}"), &ts)));
            next += ts.len() as u64;
        }
        check_find_by_timestamp(&fs, dir, &batches);
    });
}

#[test]
fn offset_for_time_across_segments_matches_brute_force() {
    both_fs(|fs, dir| {
        let config = LogConfig {
            segment_bytes: 2048,
            index_interval_bytes: 256,
            durability: Durability::None,
            ..LogConfig::default()
        };
        let env = Env::with_fs(fs.clone());
        let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
        let records = common::append_random_batches(&log, 60, 5);
        assert!(log.segment_count() > 3);
        let lo = records.iter().map(|r| r.timestamp).min().unwrap() - 2;
        let hi = records.iter().map(|r| r.timestamp).max().unwrap() + 2;
        let check = |log: &Partition, when: &str| {
            for t in lo..=hi {
                assert_eq!(
                    log.offset_for_time(t).unwrap(),
                    brute_force_offset_for_time(&records, t),
                    "{when}: offset_for_time({t})"
                );
            }
        };
        check(&log, "open");
        log.close().unwrap();
        drop(log);
        let log = Partition::open_with_env(dir, config, env).unwrap();
        assert_eq!(common::record_views(&log, 0), records);
        check(&log, "reopened");
    });
}
