//! A partition directory written by Kafka (segments only, no topiclog metadata) is adopted on
//! its first open: every batch is verified, indexes are rebuilt, Kafka's compaction gaps and
//! leader epochs are accepted in the part Kafka wrote, and from its end on the log is topiclog's,
//! where a batch that does not continue the one before it is damage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use topiclog::fs::{FileSystem, SimFs};
use topiclog::internals::format::{crc32c, PARTITION_LEADER_EPOCH_OFFSET};
use topiclog::segment::{RecordBatch, Segment};
use topiclog::{Env, Error, LogConfig, ManualClock, Partition, Record};

const DIR: &str = "/kafka/t-0";
const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        preallocate: false,
        ..LogConfig::default()
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
