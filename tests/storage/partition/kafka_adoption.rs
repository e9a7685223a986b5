//! A partition directory written by Kafka (segments only, no topiclog metadata) is adopted on
//! its first open: every batch is verified, indexes are rebuilt, Kafka's compaction gaps and
//! leader epochs are accepted in the part Kafka wrote, and from its end on the log is topiclog's,
//! where a batch that does not continue the one before it is damage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use topiclog::fs::CrashMode;
use topiclog::fs::{FileSystem, SimFs};
use topiclog::internals::format::{crc32c, PARTITION_LEADER_EPOCH_OFFSET};
use topiclog::segment::{RecordBatch, Segment};
use topiclog::{CleanupPolicy, Env, Error, LogConfig, ManualClock, Partition, Record};

const DIR: &str = "/kafka/t-0";
const T0: i64 = 1_700_000_000_000;

/// The fixture is a compacted Kafka log (its gaps are what Kafka's cleaner leaves), so the
/// partition is a compacted one: on a topic that does not compact, no gap is legal.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        preallocate: false,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    }
}

fn delete_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Delete,
        ..config()
    }
}

fn env(fs: &SimFs) -> Env {
    Env {
        fs: Arc::new(fs.clone()),
        clock: Arc::new(ManualClock::new(T0)),
    }
}

/// A batch of `n` records at `base` in leader epoch `epoch`, as a Kafka broker stores it.
fn batch(base: u64, n: u64, epoch: i32) -> Vec<u8> {
    let records: Vec<Record> = (base..base + n)
        .map(|o| {
            Record::new(format!("v{o}"))
                .with_key(format!("k{o}"))
                .with_timestamp(T0 + o as i64)
        })
        .collect();
    let mut bytes = RecordBatch::build(&records, base, T0)
        .unwrap()
        .as_bytes()
        .to_vec();
    bytes[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
    // The epoch is outside the CRC (Kafka assigns it after the producer checksummed the batch).
    assert_eq!(crc32c(&bytes[21..]).to_be_bytes(), bytes[17..21]);
    bytes
}

/// Kafka-written segments: [0, 3) and, after batches Kafka's cleaner dropped, [10, 12) in segment
/// 0; segment 20 holds [20, 23) and [30, 31) in epoch 3. No topiclog file at all.
fn kafka_dir(fs: &SimFs) -> Vec<(u64, String)> {
    let afs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let dir = Path::new(DIR);
    afs.create_dir_all(dir).unwrap();
    let config = config();
    // (segment base, [(batch base, records, leader epoch)])
    type Batches = &'static [(u64, u64, i32)];
    let layout: [(u64, Batches); 2] = [
        (0, &[(0, 3, 0), (10, 2, 1)]),
        (20, &[(20, 3, 1), (30, 1, 3)]),
    ];
    let mut expected = Vec::new();
    for (seg_base, batches) in layout {
        // A standalone segment places batches where it is told (offsets only increase).
        let seg = Segment::create(afs.clone(), dir, seg_base, &config).unwrap();
        for &(base, n, epoch) in batches {
            seg.append(&batch(base, n, epoch), T0).unwrap();
            expected.extend((base..base + n).map(|o| (o, format!("v{o}"))));
        }
        seg.seal().unwrap();
    }
    // Kafka's own files, which topiclog ignores.
    fs.write_file(
        &dir.join("leader-epoch-checkpoint"),
        b"0\n3\n0 0\n1 10\n3 30\n",
    );
    fs.write_file(
        &dir.join("partition.metadata"),
        b"version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n",
    );
    for kind in ["index", "timeindex"] {
        // Indexes are derived: a missing one is rebuilt.
        let _ = afs.remove_file(&dir.join(format!("00000000000000000020.{kind}")));
    }
    expected
}

fn read_all(log: &Partition) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut at = log.start_offset();
    while at < log.end_offset() {
        let b = log.read(at, 1 << 20).unwrap();
        assert!(b.next_offset() > at, "progress at {at}");
        for r in b.records() {
            let v = String::from_utf8(r.value().unwrap().to_vec()).unwrap();
            out.push((r.offset(), v));
        }
        at = b.next_offset();
    }
    out
}

fn adopted_marker() -> PathBuf {
    Path::new(DIR).join("kafka-adopted")
}

#[test]
fn a_kafka_written_directory_is_adopted_with_its_gaps_and_epochs() {
    let fs = SimFs::new(1);
    let expected = kafka_dir(&fs);
    let log = Partition::open_with_env(DIR, config(), env(&fs)).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (0, 31));
    assert!(!log.recovery_report().clean_shutdown);
    assert_eq!(log.recovery_report().segments_scanned, 2);
    assert_eq!(read_all(&log), expected);
    assert!(fs.exists(&adopted_marker()).unwrap());
    // topiclog goes on from Kafka's end.
    assert_eq!(log.append(Record::new("v31").with_key("k31")).unwrap(), 31);
    log.close().unwrap();

    let mut more = expected.clone();
    more.push((31, "v31".into()));
    for crash in [false, true] {
        let log = Partition::open_with_env(DIR, config(), env(&fs)).unwrap();
        assert_eq!(log.recovery_report().clean_shutdown, !crash);
        assert_eq!(read_all(&log), more, "crash {crash}");
        if crash {
            log.close().unwrap();
        } else {
            log.abandon();
        }
    }
    // Kafka's files are left as they were.
    assert_eq!(
        fs.read_file(&Path::new(DIR).join("leader-epoch-checkpoint"))
            .unwrap(),
        b"0\n3\n0 0\n1 10\n3 30\n"
    );
}

/// Past the adopted end the log is topiclog's: a batch there that skips offsets (a damaged base
/// offset, which Kafka's CRC does not cover) is `Corrupt`, while the gaps Kafka left below it
/// still read.
#[test]
fn past_the_adopted_end_a_base_offset_that_skips_is_damage() {
    let fs = SimFs::new(2);
    kafka_dir(&fs);
    let log = Partition::open_with_env(DIR, config(), env(&fs)).unwrap();
    for i in 31..34u64 {
        log.append(Record::new(format!("v{i}")).with_key(format!("k{i}")))
            .unwrap();
    }
    log.flush().unwrap();
    log.abandon();
    // The batch at 32 claims 40: its base offset's last byte moves by 8.
    let active = Path::new(DIR).join("00000000000000000020.log");
    let mut bytes = fs.read_file(&active).unwrap();
    let mut pos = 0;
    let mut at_32 = None;
    while pos < bytes.len() {
        let len = 12 + u32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        if u64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap()) == 32 {
            at_32 = Some(pos);
        }
        pos += len;
    }
    let at = at_32.expect("a batch at offset 32");
    bytes[at + 7] = 40;
    fs.write_file(&active, &bytes);
    match Partition::open_with_env(DIR, config(), env(&fs)) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, active),
        Ok(log) => panic!("opened, end {}", log.end_offset()),
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn a_damaged_adoption_marker_is_a_clear_error() {
    let fs = SimFs::new(3);
    kafka_dir(&fs);
    Partition::open_with_env(DIR, config(), env(&fs))
        .unwrap()
        .close()
        .unwrap();
    let mut bytes = fs.read_file(&adopted_marker()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs.write_file(&adopted_marker(), &bytes);
    match Partition::open_with_env(DIR, config(), env(&fs)) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, adopted_marker()),
        Ok(_) => panic!("opened"),
        Err(e) => panic!("{e:?}"),
    }
}

fn assert_corrupt_at(result: topiclog::Result<Partition>, path: &Path, what: &str) {
    match result {
        Err(Error::Corrupt { path: p, .. }) => assert_eq!(p, path, "{what}"),
        Ok(log) => panic!(
            "{what}: opened, start {} end {}",
            log.start_offset(),
            log.end_offset()
        ),
        Err(e) => panic!("{what}: {e:?}"),
    }
}

/// Every file of the partition directory with its bytes.
fn dir_image(fs: &SimFs) -> Vec<(String, Vec<u8>)> {
    let mut names = fs.read_dir(Path::new(DIR)).unwrap();
    names.sort();
    names
        .into_iter()
        .filter(|n| n != ".lock")
        .map(|n| {
            let bytes = fs.read_file(&Path::new(DIR).join(&n)).unwrap_or_default();
            (n, bytes)
        })
        .collect()
}

/// Once `kafka-adopted` exists the partition is topiclog's: a checkpoint lost after a crash is
/// damage, as in any partition (before: the open adopted the directory again, the log start
/// went back from 3 to the first segment's 0, and records `delete_records` removed came back).
/// After a clean close the checkpoint is repaired from the clean-shutdown marker. Either way
/// `kafka-adopted` is never rewritten.
#[test]
fn a_lost_checkpoint_of_an_adopted_partition_is_damage_not_a_new_adoption() {
    for clean in [false, true] {
        let fs = SimFs::new(4);
        kafka_dir(&fs);
        let log = Partition::open_with_env(DIR, config(), env(&fs)).unwrap();
        assert_eq!(log.delete_records(3).unwrap(), 3);
        log.flush_checkpoint().unwrap();
        if clean {
            log.close().unwrap();
        } else {
            log.abandon();
            fs.crash(CrashMode::LoseUnsynced);
        }
        let marker = fs.read_file(&adopted_marker()).unwrap();
        fs.remove_file(&Path::new(DIR).join("checkpoint")).unwrap();
        let before = dir_image(&fs);
        let what = format!("clean close {clean}");
        if clean {
            let log = Partition::open_with_env(DIR, config(), env(&fs)).unwrap();
            assert!(log.recovery_report().checkpoint_damaged, "{what}");
            assert_eq!((log.start_offset(), log.end_offset()), (3, 31), "{what}");
            assert_eq!(
                read_all(&log)[0].0,
                10,
                "{what}: the deleted records stay deleted"
            );
            log.close().unwrap();
        } else {
            let checkpoint = Path::new(DIR).join("checkpoint");
            assert_corrupt_at(
                Partition::open_with_env(DIR, config(), env(&fs)),
                &checkpoint,
                &what,
            );
            assert_eq!(dir_image(&fs), before, "{what}: nothing on disk changed");
        }
        assert_eq!(
            fs.read_file(&adopted_marker()).unwrap(),
            marker,
            "{what}: the adoption marker is never rewritten"
        );
    }
}

/// [`kafka_dir`], made durable (as a broker's files are long after it wrote them).
fn durable_kafka_dir(fs: &SimFs) -> Vec<(u64, String)> {
    let expected = kafka_dir(fs);
    for dir in ["/", "/kafka", DIR] {
        fs.sync_dir(Path::new(dir)).unwrap();
    }
    let files = dir_image(fs);
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(dir_image(fs), files, "the fixture is durable");
    expected
}

/// An adoption cut by a power loss after any of its operations is finished by the next open,
/// with every record Kafka wrote, the same log start, and the same adopted end.
#[test]
fn an_adoption_cut_at_every_operation_completes_on_the_next_open() {
    let fs = SimFs::new(5);
    let expected = durable_kafka_dir(&fs);
    let before = fs.mutating_ops();
    Partition::open_with_env(DIR, config(), env(&fs))
        .unwrap()
        .close()
        .unwrap();
    let ops = fs.mutating_ops() - before;
    let adopted = fs.read_file(&adopted_marker()).unwrap();
    for n in 0..ops {
        for mode in [CrashMode::LoseUnsynced, CrashMode::Torn] {
            let what = format!("cut after {n} of {ops} operations, {mode:?}");
            let fs = SimFs::new(6 + n);
            durable_kafka_dir(&fs);
            fs.power_cut_after(n);
            if let Ok(log) = Partition::open_with_env(DIR, config(), env(&fs)) {
                log.abandon();
            }
            fs.crash(mode);
            let log = Partition::open_with_env(DIR, config(), env(&fs))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!((log.start_offset(), log.end_offset()), (0, 31), "{what}");
            assert_eq!(read_all(&log), expected, "{what}");
            assert_eq!(log.append(Record::new("v").with_key("k")).unwrap(), 31);
            log.close().unwrap();
            assert_eq!(fs.read_file(&adopted_marker()).unwrap(), adopted, "{what}");
        }
    }
}

/// Kafka-written segments [0, 5), [5, 10), [10, 15) with no gap, as a topic that does not compact
/// leaves them.
fn contiguous_kafka_dir(fs: &SimFs) {
    let afs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let dir = Path::new(DIR);
    afs.create_dir_all(dir).unwrap();
    for seg_base in [0u64, 5, 10] {
        let seg = Segment::create(afs.clone(), dir, seg_base, &config()).unwrap();
        seg.append(&batch(seg_base, 5, 1), T0).unwrap();
        seg.seal().unwrap();
    }
}

/// On a topic whose cleanup policy does not compact, Kafka leaves no gap in the offsets: a
/// sealed segment deleted after the adoption is damage, not a hole read past (before: reads went
/// 4, 10 without an error, because every gap below the adopted end passed for Kafka's).
#[test]
fn on_a_topic_that_does_not_compact_a_missing_adopted_segment_is_damage() {
    for clean in [true, false] {
        let fs = SimFs::new(7);
        contiguous_kafka_dir(&fs);
        let log = Partition::open_with_env(DIR, delete_config(), env(&fs)).unwrap();
        assert_eq!((log.start_offset(), log.end_offset()), (0, 15));
        if clean {
            log.close().unwrap();
        } else {
            log.abandon();
        }
        for kind in ["log", "index", "timeindex"] {
            let _ = fs.remove_file(&Path::new(DIR).join(format!("00000000000000000005.{kind}")));
        }
        let what = format!("clean close {clean}");
        // The open, or a read of the offsets that are gone.
        let log = match Partition::open_with_env(DIR, delete_config(), env(&fs)) {
            Err(Error::Corrupt { .. }) => continue,
            Ok(log) => log,
            Err(e) => panic!("{what}: {e:?}"),
        };
        let mut at = log.start_offset();
        let mut seen = Vec::new();
        loop {
            assert!(
                at < log.end_offset(),
                "{what}: read {seen:?} without an error"
            );
            match log.read(at, 1 << 20) {
                Ok(b) => {
                    seen.extend(b.records().map(|r| r.offset()));
                    at = b.next_offset();
                }
                Err(Error::Corrupt { .. }) => break,
                Err(e) => panic!("{what}: {e:?}"),
            }
        }
        assert_eq!(
            seen,
            (0..5).collect::<Vec<u64>>(),
            "{what}: no offset skipped"
        );
    }
}

/// A gap in a Kafka-written log of a topic that does not compact is not Kafka's: the adoption
/// refuses it, naming the segment, and leaves Kafka's data as it was (adopted as a compacted
/// topic, it opens).
#[test]
fn a_topic_that_does_not_compact_adopts_no_gap() {
    let fs = SimFs::new(8);
    let expected = kafka_dir(&fs);
    let logs = |fs: &SimFs| -> Vec<(String, Vec<u8>)> {
        dir_image(fs)
            .into_iter()
            .filter(|(n, _)| n.ends_with(".log"))
            .collect()
    };
    let before = logs(&fs);
    match Partition::open_with_env(DIR, delete_config(), env(&fs)) {
        Err(Error::Corrupt { path, .. }) => {
            assert_eq!(path, Path::new(DIR).join("00000000000000000000.log"))
        }
        Ok(log) => panic!("opened, end {}", log.end_offset()),
        Err(e) => panic!("{e:?}"),
    }
    assert_eq!(logs(&fs), before);
    let log = Partition::open_with_env(DIR, config(), env(&fs)).unwrap();
    assert_eq!(read_all(&log), expected);
}

/// In a compacted log Kafka leaves gaps, so a gap alone says nothing; but Kafka's compaction (and
/// topiclog's) keeps where each segment ends. A sealed segment Kafka wrote, cut at a batch
/// boundary or emptied after the adoption, is damage, whether the open is clean or rescans, and
/// before or after topiclog compacted it (before: reads went 0-2, 20-30, the records at 10 and 11
/// silently gone).
#[test]
fn in_a_compacted_adopted_log_a_segment_cut_short_is_damage() {
    let seg0 = Path::new(DIR).join("00000000000000000000.log");
    for (cut, clean) in [(false, true), (false, false), (true, true), (true, false)] {
        let what = format!("emptied {cut}, clean close {clean}");
        let fs = SimFs::new(9);
        kafka_dir(&fs);
        let log = Partition::open_with_env(DIR, config(), env(&fs)).unwrap();
        if clean {
            log.close().unwrap();
        } else {
            log.abandon();
        }
        let bytes = fs.read_file(&seg0).unwrap();
        // Its first batch ([0, 3)) only, or nothing.
        let first = 12 + u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        fs.write_file(&seg0, if cut { &[] } else { &bytes[..first] });
        let log = match Partition::open_with_env(DIR, config(), env(&fs)) {
            Err(Error::Corrupt { .. }) => continue,
            Ok(log) => log,
            Err(e) => panic!("{what}: {e:?}"),
        };
        let mut at = log.start_offset();
        let mut seen = Vec::new();
        loop {
            assert!(
                at < log.end_offset(),
                "{what}: read {seen:?} without an error"
            );
            match log.read(at, 1 << 20) {
                Ok(b) => {
                    seen.extend(b.records().map(|r| r.offset()));
                    at = b.next_offset();
                }
                Err(Error::Corrupt { .. }) => break,
                Err(e) => panic!("{what}: {e:?}"),
            }
        }
        assert!(
            !seen.iter().any(|&o| o >= 20),
            "{what}: read past the lost records: {seen:?}"
        );
    }
}
