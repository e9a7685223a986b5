//! Write coalescing (`LogConfig::write_buffer_bytes`), the cost of `Partition::flush`, the
//! preallocation that grows in steps, and `BatchBuilder` appends.

use std::path::Path;
use std::sync::Arc;

use topiclog::fs::{CrashMode, Fault, FaultOp, FileSystem, OpenMode, SimFs};
use topiclog::segment::SegmentFileKind;
use topiclog::{
    CleanupPolicy, Durability, Env, Error, LogConfig, ManualClock, Partition, Record, TimestampType,
};

const DIR: &str = "/p";
const T0: i64 = 1_700_000_000_000;

fn env(fs: &Arc<SimFs>) -> Env {
    Env {
        fs: fs.clone(),
        clock: Arc::new(ManualClock::new(T0)),
    }
}

fn config(buffer: u32) -> LogConfig {
    LogConfig {
        durability: Durability::None,
        write_buffer_bytes: buffer,
        ..LogConfig::default()
    }
}

fn open(fs: &Arc<SimFs>, config: LogConfig) -> Partition {
    Partition::open_with_env(DIR, config, env(fs)).unwrap()
}

fn first_log() -> std::path::PathBuf {
    topiclog::segment::segment_file_name(Path::new(DIR), 0, SegmentFileKind::Log)
}

fn value(i: u64) -> Vec<u8> {
    format!("record-{i}-{}", "x".repeat((i % 37) as usize)).into_bytes()
}

fn values(log: &Partition) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = log.start_offset();
    while at < log.end_offset() {
        let b = log.read(at, 64 << 10).unwrap();
        for r in b.records() {
            out.push((r.offset(), r.value().unwrap().to_vec()));
        }
        at = b.next_offset();
    }
    out
}

#[test]
fn flush_is_one_fdatasync_when_nothing_else_changed() {
    for buffer in [0, 1 << 20] {
        let fs = Arc::new(SimFs::new(1));
        let log = open(&fs, config(buffer));
        log.append(Record::new("first")).unwrap();
        // The first flush also makes the new segment's directory entry durable.
        log.flush().unwrap();
        let checkpoint = fs.read_file(&Path::new(DIR).join("checkpoint"));
        for round in 0..5u64 {
            for i in 0..10 {
                log.append(Record::new(value(round * 10 + i))).unwrap();
            }
            let before = fs.mutating_ops();
            log.flush().unwrap();
            // Buffered: the one write of the buffer, then the sync.
            let expected = if buffer == 0 { 1 } else { 2 };
            assert_eq!(
                fs.mutating_ops() - before,
                expected,
                "buffer {buffer}: flush did more than sync the segment"
            );
            assert_eq!(log.durable_offset(), log.end_offset());
        }
        assert_eq!(
            fs.read_file(&Path::new(DIR).join("checkpoint")),
            checkpoint,
            "flush rewrote the checkpoint"
        );
        // flush_checkpoint records the recovery point too.
        log.flush_checkpoint().unwrap();
        assert_ne!(fs.read_file(&Path::new(DIR).join("checkpoint")), checkpoint);
    }
}

#[test]
fn buffered_appends_are_written_once_and_readable_at_once() {
    let fs = Arc::new(SimFs::new(2));
    // Without preallocation, so that the only writes are the buffer's.
    let log = open(
        &fs,
        LogConfig {
            preallocate: false,
            ..config(1 << 20)
        },
    );
    let before = fs.mutating_ops();
    for i in 0..200u64 {
        assert_eq!(log.append(Record::new(value(i))).unwrap(), i);
    }
    assert_eq!(fs.mutating_ops(), before, "nothing written while buffered");
    assert_eq!(
        fs.read_file(&first_log())
            .map(|b| b.iter().any(|&x| x != 0)),
        Some(false)
    );
    // Readers see buffered records at once, without writing anything.
    let got = log.read(150, 1).unwrap();
    assert_eq!(
        got.records().next().unwrap().value().unwrap()[..],
        value(150)[..]
    );
    assert_eq!(log.read(199, 1 << 20).unwrap().records().count(), 1);
    assert_eq!(log.offset_for_time(T0).unwrap().map(|t| t.offset), Some(0));
    assert_eq!(fs.mutating_ops(), before, "a read wrote");
    // A sync writes the buffer with one write for 200 appends.
    log.flush().unwrap();
    assert_eq!(fs.mutating_ops(), before + 2, "one write and one sync");
    // Reads below what is written come from the file; appends after it buffer again.
    log.append(Record::new(value(200))).unwrap();
    log.read(3, 1).unwrap();
    assert_eq!(fs.mutating_ops(), before + 2);
    let all = values(&log);
    assert_eq!(all.len(), 201);
    for (i, (o, v)) in all.iter().enumerate() {
        assert_eq!((*o, &v[..]), (i as u64, &value(i as u64)[..]));
    }
    assert_eq!(log.offset_for_time(T0).unwrap().map(|t| t.offset), Some(0));
}

#[test]
fn a_full_buffer_is_written_by_the_append_that_fills_it() {
    let fs = Arc::new(SimFs::new(3));
    let log = open(&fs, config(4096));
    let before = fs.mutating_ops();
    let mut writes = 0;
    for i in 0..1000u64 {
        log.append(Record::new(value(i))).unwrap();
        writes = fs.mutating_ops() - before;
    }
    // ~60 KB of batches in 4 KiB writes (and the preallocation steps).
    assert!((10..40).contains(&writes), "{writes} writes");
    assert_eq!(values(&log).len(), 1000);
}

/// A crash (power loss or `kill -9`) loses what was only buffered, never what was synced, and
/// the log reopens to a prefix of what was appended.
#[test]
fn a_crash_keeps_every_synced_append_and_a_prefix_of_the_rest() {
    for seed in 0..20u64 {
        let fs = Arc::new(SimFs::new(seed));
        let buffer = [512, 4096, 1 << 20][(seed % 3) as usize];
        let log = open(
            &fs,
            LogConfig {
                segment_bytes: 16 << 10,
                ..config(buffer)
            },
        );
        let mut durable = 0;
        for i in 0..400u64 {
            let r = Record::new(value(i));
            if (i + seed) % 97 == 0 {
                log.append_batch_with(&[r], Durability::Always).unwrap();
                durable = i + 1;
            } else {
                log.append(r).unwrap();
            }
            if (i * 7 + seed) % 53 == 0 {
                // A reader makes some buffered appends reach the file (not the disk).
                log.read(i, 1).unwrap();
            }
        }
        std::mem::forget(log);
        fs.crash(if seed % 2 == 0 {
            CrashMode::LoseUnsynced
        } else {
            CrashMode::Torn
        });
        let log = open(&fs, config(buffer));
        let got = values(&log);
        assert!(
            got.len() as u64 >= durable,
            "seed {seed}: {} records after the crash, {durable} were synced",
            got.len()
        );
        for (i, (o, v)) in got.iter().enumerate() {
            assert_eq!(
                (*o, &v[..]),
                (i as u64, &value(i as u64)[..]),
                "seed {seed}"
            );
        }
    }
}

#[test]
fn a_failed_write_out_poisons_the_partition_and_reopening_keeps_every_synced_record() {
    for trigger in ["flush", "read", "append"] {
        let fs = Arc::new(SimFs::new(4));
        let log = open(&fs, config(8192));
        for i in 0..10u64 {
            log.append_batch_with(&[Record::new(value(i))], Durability::Always)
                .unwrap();
        }
        for i in 10..20u64 {
            log.append(Record::new(value(i))).unwrap();
        }
        fs.inject(Fault {
            path_contains: Some(first_log().to_string_lossy().into_owned()),
            ..Fault::new(FaultOp::Write, 0)
        });
        if trigger == "read" {
            // Reads never write: buffered records stay readable while writes fail.
            let got = log.read(15, 1).unwrap();
            assert_eq!(
                got.records().next().unwrap().value().unwrap()[..],
                value(15)[..]
            );
        }
        let err = match trigger {
            "flush" | "read" => log.flush().unwrap_err(),
            // Enough to fill the buffer: the append that does is refused.
            _ => (20..1000u64)
                .find_map(|i| log.append(Record::new(value(i))).err())
                .unwrap(),
        };
        assert!(matches!(err, Error::Io { .. }), "{trigger}: {err:?}");
        // Whatever wrote the buffer out, nothing more is taken.
        match log.append(Record::new("after")) {
            Err(Error::Io { .. } | Error::Poisoned { .. }) => {}
            other => panic!("{trigger}: append after a failed write-out: {other:?}"),
        }
        assert!(
            log.flush().is_err(),
            "{trigger}: flush after a failed write-out"
        );
        fs.clear_faults();
        std::mem::forget(log);
        fs.crash(CrashMode::LoseUnsynced);
        let log = open(&fs, config(8192));
        let got = values(&log);
        assert!(
            got.len() >= 10,
            "{trigger}: synced records lost: {}",
            got.len()
        );
        for (i, (o, v)) in got.iter().enumerate() {
            assert_eq!((*o, &v[..]), (i as u64, &value(i as u64)[..]), "{trigger}");
        }
    }
}

#[test]
fn preallocation_grows_in_steps_and_close_trims_it() {
    let fs = Arc::new(SimFs::new(5));
    let log = open(
        &fs,
        LogConfig {
            preallocate: true,
            ..config(0)
        },
    );
    let len = || {
        fs.open(&first_log(), OpenMode::Read)
            .unwrap()
            .len()
            .unwrap()
    };
    assert_eq!(
        len(),
        256 << 10,
        "a new segment takes 256 KiB, not segment_bytes"
    );
    let chunk = vec![7u8; 100 << 10];
    for _ in 0..3 {
        log.append(Record::new(chunk.clone())).unwrap();
    }
    assert_eq!(len(), 512 << 10, "doubled once the data passed it");
    for _ in 0..3 {
        log.append(Record::new(chunk.clone())).unwrap();
    }
    assert_eq!(len(), 1 << 20);
    log.close().unwrap();
    let data: u64 = 6 * (chunk.len() as u64 + 61 + 8);
    assert!(
        len() < data + 64 && len() > data - 64,
        "trimmed to the data: {}",
        len()
    );
    // Reopened, the active segment is preallocated one step past its data again.
    let log = open(
        &fs,
        LogConfig {
            preallocate: true,
            ..config(0)
        },
    );
    assert!(len() >= 1 << 20);
    assert_eq!(values(&log).len(), 6);
}

#[test]
fn batch_builder_appends_follow_the_topic_rules() {
    let fs = Arc::new(SimFs::new(6));
    let compacted = open(
        &fs,
        LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..config(0)
        },
    );
    let mut b = compacted.batch_builder();
    b.push(b"no key");
    assert!(matches!(
        compacted.append_builder(&mut b),
        Err(Error::MissingKey { .. })
    ));
    assert_eq!(b.len(), 1, "a refused batch keeps its records");
    b.clear();
    assert!(matches!(
        compacted.append_builder(&mut b),
        Err(Error::EmptyBatch)
    ));
    b.push_parts(Some(b"k"), Some(b"v"), Some(-5), &[]);
    assert!(matches!(
        compacted.append_builder(&mut b),
        Err(Error::InvalidTimestamp { timestamp: -5 })
    ));
    b.clear();
    b.push_parts(Some(b"k"), Some(b"v"), Some(T0 - 10), &[("h", Some(b"x"))]);
    b.push_keyed(Some(b"k2"), None);
    let info = compacted.append_builder(&mut b).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 1));
    let read = compacted.read(0, 1 << 20).unwrap();
    let got: Vec<_> = read.records().collect();
    assert_eq!(got[0].timestamp(), T0 - 10);
    assert_eq!(got[0].headers().next().unwrap().key, "h");
    assert_eq!(got[1].timestamp(), T0, "the partition's clock");
    assert_eq!(got[1].value(), None);
    drop(compacted);

    let fs = Arc::new(SimFs::new(7));
    let log_time = open(
        &fs,
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            max_batch_bytes: 1000,
            ..config(0)
        },
    );
    let mut b = log_time.batch_builder();
    b.push_parts(None, Some(b"old"), Some(5), &[]);
    log_time.append_builder(&mut b).unwrap();
    let r = log_time.read(0, 1).unwrap();
    assert_eq!(r.records().next().unwrap().timestamp(), T0);
    for _ in 0..20 {
        b.push(&[1u8; 100]);
    }
    assert!(matches!(
        log_time.append_builder(&mut b),
        Err(Error::RecordTooLarge { .. })
    ));
}

#[cfg(feature = "lz4")]
#[test]
fn batch_builder_appends_are_compressed_when_the_topic_says_so() {
    let fs = Arc::new(SimFs::new(8));
    let log = open(
        &fs,
        LogConfig {
            compression: topiclog::CompressionType::Codec(topiclog::Compression::Lz4),
            ..config(0)
        },
    );
    let mut b = log.batch_builder();
    for i in 0..100u64 {
        b.push(&value(i));
    }
    let uncompressed = b.encoded_len();
    log.append_builder(&mut b).unwrap();
    let read = log.read(0, 1 << 20).unwrap();
    let batch = &read.batches()[0];
    assert_eq!(batch.header().compression_bits(), 3);
    assert!(batch.as_bytes().len() < uncompressed / 2);
    let got: Vec<Vec<u8>> = read
        .records()
        .map(|r| r.value().unwrap().to_vec())
        .collect();
    assert_eq!(got, (0..100).map(value).collect::<Vec<_>>());
}

/// A synced, preallocated active segment has real zeros written ahead of its data (allocated
/// blocks, not a hole), so that the next syncs write only data; a clean close trims them.
#[test]
fn a_sync_writes_zeros_ahead_of_the_data_and_close_trims_them() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let log = Partition::open_with(
        dir.path(),
        LogConfig {
            durability: Durability::Always,
            ..LogConfig::default()
        },
    )
    .unwrap();
    let path = topiclog::segment::segment_file_name(dir.path(), 0, SegmentFileKind::Log);
    let allocated = || std::fs::metadata(&path).unwrap().blocks() * 512;
    log.append(Record::new("one")).unwrap();
    // As many zeros ahead as there is data, at least 64 KiB: a near-empty partition stays small.
    assert!(
        (64 << 10..512 << 10).contains(&allocated()),
        "{} bytes allocated after a durable append",
        allocated()
    );
    for i in 0..100u64 {
        log.append(Record::new(value(i))).unwrap();
    }
    assert_eq!(values(&log).len(), 101);
    log.close().unwrap();
    assert!(
        std::fs::metadata(&path).unwrap().len() < 16 << 10,
        "trimmed to the data"
    );
    let log = Partition::open(dir.path()).unwrap();
    assert_eq!(values(&log).len(), 101);
}

/// A batch of 64 KiB or more skips the buffer: what the buffer holds is written first, then the
/// batch, in order.
#[test]
fn a_large_batch_is_written_at_once_after_what_the_buffer_holds() {
    let fs = Arc::new(SimFs::new(9));
    let log = open(
        &fs,
        LogConfig {
            preallocate: false,
            ..config(1 << 20)
        },
    );
    log.append(Record::new(value(0))).unwrap();
    let before = fs.mutating_ops();
    log.append(Record::new(vec![9u8; 100 << 10])).unwrap();
    assert_eq!(
        fs.mutating_ops() - before,
        2,
        "the buffer, then the large batch"
    );
    log.append(Record::new(value(2))).unwrap();
    assert_eq!(fs.mutating_ops() - before, 2, "small ones buffer again");
    let got = values(&log);
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].1.len(), 100 << 10);
    assert_eq!((got[2].0, &got[2].1[..]), (2, &value(2)[..]));
}

/// The active segment is mapped as far as its data needs, in doubling steps from 1 MiB, not a
/// whole `segment_bytes` (1 GiB by default) per partition; readers racing the appends across the
/// steps read every record intact.
#[test]
fn the_active_map_follows_the_data() {
    if !Path::new("/proc/self/maps").exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let log = Partition::open_with(
        &dir,
        LogConfig {
            durability: Durability::None,
            ..LogConfig::default()
        },
    )
    .unwrap();
    let file = log.segments()[0].log_path().to_owned();
    // Bytes of this process's maps of `file`, from /proc/self/maps.
    let mapped = || -> u64 {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter(|l| l.ends_with(file.to_str().unwrap()))
            .map(|l| {
                let range = l.split_whitespace().next().unwrap();
                let (a, b) = range.split_once('-').unwrap();
                u64::from_str_radix(b, 16).unwrap() - u64::from_str_radix(a, 16).unwrap()
            })
            .sum()
    };
    assert!(mapped() <= 4 << 20, "{} bytes mapped when empty", mapped());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || next < log.end_offset() {
                let b = log.read(next, 256 << 10).unwrap();
                for r in b.records() {
                    assert_eq!(r.offset(), next);
                    assert_eq!(r.value().unwrap().as_ref(), value(next).as_slice());
                    next += 1;
                }
            }
            next
        })
    };
    let mut at = 0u64;
    while log.segments()[0].size() < 12 << 20 {
        let batch: Vec<Record> = (at..at + 50).map(|o| Record::new(value(o))).collect();
        log.append_batch(&batch).unwrap();
        at += 50;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(reader.join().unwrap(), at);
    // Read once more through the newest map: at most the next power of two past the data (plus
    // one maximum batch), 16 MiB here, against 1 GiB before.
    assert_eq!(values(&log).len() as u64, at);
    let now = mapped();
    assert!(now <= 32 << 20, "{now} bytes mapped for 12 MiB of data");
    log.close().unwrap();
}
