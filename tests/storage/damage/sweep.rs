//! The damage sweep of issue 9: damage a store one file at a time, reopen it in a child process,
//! read everything, and classify what the reader was told.
//!
//! # Fixture
//!
//! One store is built once per run, on the real file system (all appends `Durability::Always`):
//!
//! - `events`, cleanup policy `delete`, 2 partitions of 8 KiB preallocated segments: keyed
//!   batches with headers and out-of-order timestamps, batches of an idempotent [`Producer`], and
//!   idempotent batches of a second producer id appended directly (so a child can replay the last
//!   one). Partition 0 then has its records below an offset inside its third segment deleted
//!   (`delete_records`) and maintenance removes the segments wholly below it: the records left
//!   below the log start offset must never come back.
//! - `latest`, cleanup policy `compact`, 1 partition of 4 KiB segments: keys overwritten and
//!   tombstoned over three rounds with two compaction passes in between (the clock moves past
//!   `delete_retention` between them), so cleaned segments, a cleaner checkpoint and removed
//!   tombstones exist.
//! - `adopted`, cleanup policy `compact`: a Kafka partition directory (segments only, with
//!   Kafka's compaction gaps inside and between segments and leader epochs up to 3) imported with
//!   `Store::import_kafka_with`, so its partition holds `kafka-adopted`; maintenance then cleans
//!   its sealed segment.
//! - `__consumer_offsets`: group `readers` commits several times; group `deleted-readers`
//!   commits and is deleted with `Store::delete_group`; a week later (past the offsets topic's
//!   `segment_ms`) `readers` commits again, so the offsets topic has a sealed segment, which
//!   maintenance compacts, and an active one.
//!
//! Before any trial, each image must hold every file kind in [`REQUIRED_KINDS`] (so the sweep
//! cannot silently shrink). The imported topic's files are targeted only where they differ from
//! the other partitions' ([`targeted`]): its segments, checkpoint and `kafka-adopted`.
//! Compaction leftovers (`.cleaned`, `.swap`) are not in these images (only a crash during a
//! compaction leaves them): `tests/storage/damage/metadata/compaction_files.rs` covers them.
//!
//! The expected state is read back from the open store. Two images are kept: `crashed`, a copy
//! of the directory taken while the store was still open (everything in it acknowledged durable,
//! no clean-shutdown markers, preallocated active segments: the rescanning open path), and
//! `clean`, the directory after `Store::close`. Both must reopen to exactly the expected state
//! before the sweep starts.
//!
//! # Trials
//!
//! A trial copies one image, damages one file of it — a flipped bit, a zeroed or inverted run of
//! bytes (in a `.log`, often inside a batch header), truncation (to 0 bytes, to a batch / entry /
//! field / line boundary, or inside), deletion, appended random bytes or zeros, or (for a `.log`)
//! batches rewritten in an unknown format version with valid CRCs, or a batch header's base
//! offset, length, last offset delta or record count moved a little — and re-executes this test
//! binary in child mode ([`sweep_child`]) on the copy, under an address-space limit and a time
//! limit. The child opens the store with the fixture's options and reports, behind a marker:
//! every topic's configuration; every partition's offsets and records, read from its start offset
//! to its end following `Batches::next_offset`; the first record a read at each offset returns
//! (as a consumer that seeks gets it), where that read disagrees with the sequential one;
//! `offset_for_time` answers that disagree with the records read; the groups' commits; and every
//! error, with its variant. Then it probes writes: it replays the last idempotent batch of each
//! `events` partition, takes a new idempotent producer id, and appends one record to every
//! partition. It leaves without closing the store.
//!
//! Every (image, file kind, damage kind) pair gets one trial with a seeded position; more trials
//! (`TOPICLOG_SWEEP_TRIALS`) draw pairs and positions at random from the same seed. Trial `i`
//! depends only on the seed and `i`, so a single trial can be rerun.
//!
//! # Classification
//!
//! Each finding has a class; a trial takes the worst of its findings:
//!
//! | class | meaning |
//! |---|---|
//! | identical | the child saw exactly the expected state, and the write probes behaved |
//! | typed error | the open, a read, a lookup or a probe returned an `Err` (any `topiclog::Error` is typed); nothing else was wrong |
//! | prefix loss | data acknowledged as durable is silently gone from the end: a partition ends early (what is there is identical), a topic, group or commit is gone |
//! | hole | an expected record is missing although the reader went past it (a later one is present, or the read went on), the start offset moved up, the end offset moved up, or an append did not land at the end |
//! | resurrected | something deleted is back: the start offset moved down, a record below the start or removed by compaction is readable, a deleted group or an older commit is visible |
//! | wrong data | a record differs from the expected one at its offset, an offset appears that never existed, a commit has a value never committed, a replayed idempotent batch was appended again, a producer id was handed out twice, `offset_for_time` disagrees with the data, a topic's configuration changed |
//! | crash | a panic, a signal, a non-zero exit, the memory limit, the time limit, or a read loop that makes no progress |
//!
//! A read error excuses the losses after the offset where it happened, never additions. Every
//! class but "identical" and "typed error" fails the test; a prefix loss would be allowed only
//! for a torn tail of data never acknowledged as durable, and this fixture has none.
//!
//! # Environment
//!
//! - `TOPICLOG_SWEEP_SEED`: the seed (decimal or `0x` hex); printed at the start.
//! - `TOPICLOG_SWEEP_TRIALS`: how many trials (default: one per pair); e.g. 5000 for a long run.
//! - `TOPICLOG_SWEEP_TRIAL`: run only this trial (printed in each failure's reproduction line),
//!   with the child's full output.
//! - `TOPICLOG_SWEEP_JOBS`: children run at once (default 2).
//! - `TOPICLOG_SWEEP_REPORT_ONLY=1`: print everything but do not fail.
//! - `TOPICLOG_SWEEP_CHILD_SECONDS`, `TOPICLOG_SWEEP_CHILD_MEMORY_KIB`: a child's time limit
//!   (default 20 s) and address-space limit (default 2 GiB).
#![cfg(unix)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{RecordView, TestRng};
use topiclog::{
    Acks, Bytes, CleanupPolicy, Clock, ConsumerConfig, Durability, Env, KafkaImportOptions,
    LogConfig, LogOverrides, ManualClock, OffsetAndMetadata, Partition, ProducerBatch,
    ProducerConfig, Record, Retention, Store, StoreOptions, TopicConfig, TopicPartition,
};

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

/// Set (to the damaged store directory) only in the re-executed child.
const CHILD_ENV: &str = "TOPICLOG_SWEEP_CHILD_DIR";
/// Marks the child's report lines among whatever the test harness prints.
const MARK: &str = "@@topiclog-damage-sweep@@ ";
const DEFAULT_SEED: u64 = 0x5eed_0009_da3a_6e00;
/// Seed of the fixture's data (not of the sweep: the images are the same for every sweep seed).
const FIXTURE_SEED: u64 = 0xf1c5_7e2e;
/// A child that takes longer hangs (a normal one takes well under a second, even in debug).
const CHILD_SECONDS: u64 = 20;
/// Address space of a child: a few times what it needs (about 500 MiB in debug, most of it
/// thread stacks and allocator arenas), far below any absurd allocation.
const CHILD_MEMORY_KIB: u64 = 2 << 20;
/// A read loop that returns more records than this runs away.
const MAX_RECORDS_READ: usize = 100_000;
/// Bytes of a batch header, up to its first record (Kafka's RecordBatch v2, docs/FORMAT.md).
const BATCH_HEADER_LEN: u64 = 61;

const T0: i64 = 1_700_000_000_000;
const HOUR_MS: i64 = 3_600_000;
/// The fixture clock when it is done, and the child's clock.
const T_END: i64 = T0 + 2 * HOUR_MS;

/// The `delete`-policy topic.
const EVENTS: &str = "events";
const EVENTS_PARTITIONS: u32 = 2;
/// The `compact`-policy topic.
const LATEST: &str = "latest";
/// The compacted topic imported from a Kafka log directory: its partition holds `kafka-adopted`,
/// Kafka's compaction gaps (inside a segment and between segments) and leader epochs.
const ADOPTED: &str = "adopted";
/// The group whose commits must survive.
const LIVE_GROUP: &str = "readers";
/// The group that was deleted: its commits must never come back.
const GONE_GROUP: &str = "deleted-readers";
/// Producer ids the fixture uses: the `Producer`'s, and the one whose batches a child replays.
const PRODUCER_PID: i64 = 0;
const REPLAY_PID: i64 = 1;
/// Idempotent batches of `REPLAY_PID` per `events` partition; the child replays the last.
const REPLAY_BATCHES: u32 = 3;

struct Settings {
    seed: u64,
    trials: Option<usize>,
    only_trial: Option<usize>,
    jobs: usize,
    report_only: bool,
    child_memory_kib: u64,
    child_time_limit: Duration,
}

impl Settings {
    fn from_env() -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str| {
            var(name).map(|v| {
                let v = v.trim().replace('_', "");
                match v.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => v.parse(),
                }
                .unwrap_or_else(|e| panic!("{name}={v:?}: {e}"))
            })
        };
        Settings {
            seed: number("TOPICLOG_SWEEP_SEED").unwrap_or(DEFAULT_SEED),
            trials: number("TOPICLOG_SWEEP_TRIALS").map(|n| n as usize),
            only_trial: number("TOPICLOG_SWEEP_TRIAL").map(|n| n as usize),
            jobs: number("TOPICLOG_SWEEP_JOBS").map_or(2, |n| (n as usize).max(1)),
            report_only: var("TOPICLOG_SWEEP_REPORT_ONLY").is_some_and(|v| v != "0"),
            child_memory_kib: number("TOPICLOG_SWEEP_CHILD_MEMORY_KIB").unwrap_or(CHILD_MEMORY_KIB),
            child_time_limit: Duration::from_secs(
                number("TOPICLOG_SWEEP_CHILD_SECONDS").unwrap_or(CHILD_SECONDS),
            ),
        }
    }
}

/// The fixture's store options (and the child's: only the clock differs).
fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            segment_bytes: 8 << 10,
            index_interval_bytes: 512,
            max_index_bytes: 64 << 10,
            durability: Durability::Always,
            preallocate: false,
            retention: Retention::Forever,
            // The fixture's clock moves a week on (to roll the offsets topic): the idempotent
            // producers must not expire meanwhile (a child replays their last batches).
            producer_id_expiration: Duration::from_secs(30 * 24 * 3600),
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

/// The fixture's environment (and the child's: only the clock differs): the real file system.
fn env(clock: &ManualClock) -> Env {
    Env {
        clock: Arc::new(clock.clone()),
        ..Env::default()
    }
}

fn events_config() -> TopicConfig {
    TopicConfig {
        partitions: EVENTS_PARTITIONS,
        overrides: LogOverrides {
            cleanup_policy: Some(CleanupPolicy::Delete),
            segment_bytes: Some(8 << 10),
            preallocate: Some(true),
            ..LogOverrides::default()
        },
    }
}

fn latest_config() -> TopicConfig {
    TopicConfig {
        partitions: 1,
        overrides: LogOverrides {
            cleanup_policy: Some(CleanupPolicy::Compact),
            segment_bytes: Some(4 << 10),
            preallocate: Some(false),
            delete_retention: Some(Duration::from_millis(HOUR_MS as u64)),
            min_compaction_lag: Some(Duration::ZERO),
            min_cleanable_dirty_ratio: Some(0.0),
            ..LogOverrides::default()
        },
    }
}

/// A topic's config as `topic.conf` persists it, as text: its partition count and every
/// override.
fn persisted_config(topic: &topiclog::Topic) -> String {
    format!(
        "{:?}",
        TopicConfig {
            partitions: topic.partition_count(),
            overrides: topic.config().overrides(),
        }
    )
}

/// A partition, by topic name and number.
type Tp = (String, u32);

fn tp(topic: &str, partition: u32) -> Tp {
    (topic.to_owned(), partition)
}

/// A committed offset as the sweep compares it: offset and metadata.
type Commit = (u64, String);

/// splitmix64: a fixed, well-mixed function of its input.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------

/// What the undamaged store holds, and what it ever held.
#[derive(Debug, Default)]
struct Expected {
    /// User topics, sorted.
    topics: Vec<String>,
    /// Each user topic's configuration, as `TopicConfig`'s `Debug`.
    configs: BTreeMap<String, String>,
    /// Per partition: start offset, end offset, and every record from the start to the end.
    partitions: BTreeMap<Tp, ExpectedPartition>,
    /// Every record ever appended, by partition and offset (compacted-away and deleted ones
    /// included).
    history: BTreeMap<Tp, BTreeMap<u64, RecordView>>,
    /// Groups with commits, sorted.
    groups: Vec<String>,
    /// Each live group's committed offsets.
    commits: BTreeMap<String, BTreeMap<Tp, Commit>>,
    /// Every value ever committed, per group and partition (deleted groups included).
    commit_history: BTreeMap<(String, Tp), Vec<Commit>>,
    /// Groups deleted with `Store::delete_group`.
    deleted_groups: Vec<String>,
    /// Offsets `[base, last]` of the batch the child replays, per `events` partition.
    replayed: BTreeMap<Tp, (u64, u64)>,
    /// Producer ids handed out.
    producer_ids: BTreeSet<i64>,
}

#[derive(Debug, Default)]
struct ExpectedPartition {
    start: u64,
    end: u64,
    records: BTreeMap<u64, RecordView>,
}

/// The view of a record appended at `offset`.
fn view(offset: u64, r: &Record) -> RecordView {
    RecordView {
        offset,
        timestamp: r.timestamp().expect("fixture records carry timestamps"),
        key: r.key().map(|k| k.to_vec()),
        value: r.value().map(|v| v.to_vec()),
        headers: r
            .headers()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_vec())))
            .collect(),
    }
}

fn remember(expected: &mut Expected, at: Tp, base: u64, records: &[Record]) {
    let h = expected.history.entry(at).or_default();
    for (i, r) in records.iter().enumerate() {
        let offset = base + i as u64;
        assert!(
            h.insert(offset, view(offset, r)).is_none(),
            "offset {offset} twice"
        );
    }
}

/// A batch of 1-5 keyed `events` records, a header on some (a null-valued one on a few), with
/// timestamps wandering out of order around the batch's place in time.
fn events_batch(rng: &mut TestRng, partition: u32, batch: u64) -> Vec<Record> {
    let n = 1 + rng.below(5);
    (0..n)
        .map(|_| {
            let ts = T0 - HOUR_MS + 7_000 * batch as i64 + rng.below(20_001) as i64 - 10_000;
            let len = 10 + rng.below(190) as usize;
            let mut r = Record::new(rng.bytes(len))
                .with_key(format!("user-{partition}-{}", rng.below(50)))
                .with_timestamp(ts);
            match rng.below(6) {
                0 | 1 => r = r.with_header("trace", Bytes::from(rng.bytes(8))),
                2 => r = r.with_header("empty", None),
                _ => {}
            }
            r
        })
        .collect()
}

/// The `k`th idempotent batch of [`REPLAY_PID`] to `events` partition `partition` (the child
/// rebuilds the last one to replay it).
fn replay_batch(partition: u32, k: u32) -> (Vec<Record>, ProducerBatch) {
    let records = (0..2)
        .map(|j| {
            Record::new(format!("replayed value {partition}/{k}/{j}"))
                .with_key(format!("replay-{partition}-{k}-{j}"))
                .with_timestamp(T0 + 1_000 * i64::from(k) + j)
        })
        .collect();
    let batch = ProducerBatch {
        producer_id: REPLAY_PID,
        epoch: 0,
        base_sequence: 2 * k as i32,
    };
    (records, batch)
}

/// Records of one round of writes to `latest`: keys overwritten, some tombstoned.
fn latest_batches(rng: &mut TestRng, round: u32, records: u32, now: i64) -> Vec<Vec<Record>> {
    let mut out = Vec::new();
    let mut left = records;
    while left > 0 {
        let n = (1 + rng.below(4) as u32).min(left);
        left -= n;
        out.push(
            (0..n)
                .map(|_| {
                    let key = format!("item-{}", rng.below(24));
                    let ts = now - rng.below(60_000) as i64;
                    if rng.below(9) == 0 {
                        Record::tombstone(key).with_timestamp(ts)
                    } else {
                        let len = 40 + rng.below(80) as usize;
                        let mut v = format!("round {round}: ").into_bytes();
                        v.extend(rng.bytes(len));
                        Record::new(v).with_key(key).with_timestamp(ts)
                    }
                })
                .collect(),
        );
    }
    out
}

fn commit(
    consumer: &topiclog::Consumer,
    expected: &mut Expected,
    group: &str,
    at: Tp,
    offset: u64,
) {
    let metadata = format!("{group} at {offset}");
    consumer
        .commit(&[(
            TopicPartition::new(&at.0, at.1),
            OffsetAndMetadata {
                offset,
                metadata: metadata.clone(),
                commit_timestamp: 0,
            },
        )])
        .expect("commit");
    expected
        .commit_history
        .entry((group.to_owned(), at))
        .or_default()
        .push((offset, metadata));
}

/// Every record of `part` from its start offset to its end (the fixture is intact: errors panic).
fn read_back(part: &Partition) -> BTreeMap<u64, RecordView> {
    common::record_views(part, part.start_offset())
        .into_iter()
        .map(|r| (r.offset, r))
        .collect()
}

/// The two images, and what they must reopen to.
struct Fixture {
    clean: PathBuf,
    crashed: PathBuf,
    expected: Expected,
}

fn build_fixture(root: &Path) -> Fixture {
    let clock = ManualClock::new(T0);
    let clean = root.join("clean");
    let crashed = root.join("crashed");
    let mut x = Expected::default();
    let store =
        Store::open_with_env(&clean, options(), env(&clock)).expect("open the fixture store");
    let events = store.create_topic(EVENTS, events_config()).unwrap();
    let latest = store.create_topic(LATEST, latest_config()).unwrap();
    let mut rng = TestRng::new(FIXTURE_SEED);

    // `events`: plain keyed batches.
    for p in 0..EVENTS_PARTITIONS {
        let part = events.partition(p).unwrap();
        for b in 0..90 {
            let records = events_batch(&mut rng, p, b);
            let info = part.append_batch(&records).unwrap();
            remember(&mut x, tp(EVENTS, p), info.base_offset, &records);
        }
    }
    // An idempotent producer: each send waits, so each record is one batch whatever the timing.
    let producer_config = ProducerConfig {
        idempotent: true,
        acks: Acks::Durable,
        linger: Duration::ZERO,
        ..ProducerConfig::default()
    };
    let producer = store.producer(producer_config.clone()).unwrap();
    assert_eq!(producer.producer_id(), Some(PRODUCER_PID));
    for i in 0..12u32 {
        let p = i % EVENTS_PARTITIONS;
        let r = Record::new(format!("produced {i}"))
            .with_key(format!("producer-key-{i}"))
            .with_header("seq", Bytes::from(i.to_le_bytes().to_vec()))
            .with_timestamp(T0 + 500 * i64::from(i));
        let meta = producer
            .send_to(EVENTS, p, r.clone())
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(meta.partition, p);
        remember(&mut x, tp(EVENTS, p), meta.offset, &[r]);
    }
    producer.close().unwrap();
    // A second producer id, whose batches are appended directly so a child can replay the last.
    let replayer = store.producer(producer_config).unwrap();
    assert_eq!(replayer.producer_id(), Some(REPLAY_PID));
    replayer.close().unwrap();
    x.producer_ids = [PRODUCER_PID, REPLAY_PID].into();
    for p in 0..EVENTS_PARTITIONS {
        let part = events.partition(p).unwrap();
        for k in 0..REPLAY_BATCHES {
            let (records, batch) = replay_batch(p, k);
            let info = part
                .append_idempotent(&records, batch, Durability::Always)
                .unwrap();
            assert!(!info.duplicate);
            remember(&mut x, tp(EVENTS, p), info.base_offset, &records);
            x.replayed
                .insert(tp(EVENTS, p), (info.base_offset, info.last_offset));
        }
    }

    // `latest`: three rounds of overwrites and tombstones, compacted after the first two; the
    // clock passes `delete_retention` in between, so the second pass drops old tombstones.
    let part = latest.partition(0).unwrap();
    for (round, records) in [(1, 260), (2, 140), (3, 25)] {
        for records in latest_batches(&mut rng, round, records, clock.now_ms()) {
            let info = part.append_batch(&records).unwrap();
            remember(&mut x, tp(LATEST, 0), info.base_offset, &records);
        }
        if round < 3 {
            store.maintain().unwrap();
            clock.advance(Duration::from_millis(HOUR_MS as u64));
        }
    }
    assert!(
        part.segment_count() >= 4,
        "latest has {} segments",
        part.segment_count()
    );

    // `events` partition 0: delete the records below an offset inside the third segment;
    // maintenance removes the two segments wholly below it.
    let e0 = events.partition(0).unwrap();
    let bases: Vec<u64> = e0.segments().iter().map(|s| s.base_offset()).collect();
    assert!(bases.len() >= 5, "events-0 has segments at {bases:?}");
    let cut = bases[2] + (bases[3] - bases[2]) / 2;
    assert!(cut > bases[2]);
    assert_eq!(e0.delete_records(cut).unwrap(), cut);
    store.maintain().unwrap();
    assert_eq!(e0.segments()[0].base_offset(), bases[2]);

    // `adopted`: a compacted Kafka partition imported: Kafka's segments [0, 3) and (after
    // batches Kafka's cleaner dropped) [10, 12) in segment 0, then segment 20 with [20, 23) and
    // [30, 31), in leader epochs up to 3.
    let kafka_logs = root.join("kafka-logs");
    let kafka_dir = kafka_logs.join(format!("{ADOPTED}-0"));
    let kafka_batches = write_kafka_partition(&kafka_dir);
    let mut import = KafkaImportOptions {
        hard_links: false,
        ..KafkaImportOptions::default()
    };
    import.overrides.cleanup_policy = Some(CleanupPolicy::Compact);
    import.overrides.segment_bytes = Some(4 << 10);
    store
        .import_kafka_with(&kafka_logs, &[ADOPTED], &import)
        .expect("import the Kafka partition");
    let adopted = store.topic(ADOPTED).unwrap();
    for (base, records) in kafka_batches {
        remember(&mut x, tp(ADOPTED, 0), base, &records);
    }

    // Groups: one that keeps committing, one that is deleted in between.
    let group = |g: &str| ConsumerConfig {
        enable_auto_commit: false,
        ..ConsumerConfig::group(g)
    };
    let mut live = store.consumer(group(LIVE_GROUP)).unwrap();
    let e1_end = events.partition(1).unwrap().end_offset();
    let latest_end = part.end_offset();
    for (at, offset) in [
        (tp(EVENTS, 0), cut + 5),
        (tp(EVENTS, 1), 40),
        (tp(LATEST, 0), 100),
        (tp(EVENTS, 0), cut + 60),
        (tp(EVENTS, 1), e1_end - 3),
    ] {
        commit(&live, &mut x, LIVE_GROUP, at, offset);
    }
    let mut gone = store.consumer(group(GONE_GROUP)).unwrap();
    commit(&gone, &mut x, GONE_GROUP, tp(EVENTS, 1), 17);
    commit(&gone, &mut x, GONE_GROUP, tp(LATEST, 0), 33);
    gone.close().unwrap();
    assert_eq!(store.delete_group(GONE_GROUP).unwrap(), 2);
    x.deleted_groups = vec![GONE_GROUP.to_owned()];
    commit(&live, &mut x, LIVE_GROUP, tp(LATEST, 0), latest_end - 1);
    // A week later (the offsets topic rolls its 100 MiB segments after 7 days) the group goes
    // on committing: the offsets topic gets a sealed segment, which maintenance compacts (its
    // older commits are superseded), and an active one.
    clock.advance(Duration::from_secs(8 * 24 * 3600));
    for i in 0..6 {
        commit(&live, &mut x, LIVE_GROUP, tp(EVENTS, 1), e1_end - 3 + i % 2);
    }
    commit(&live, &mut x, LIVE_GROUP, tp(ADOPTED, 0), 11);
    store.maintain().unwrap();
    commit(&live, &mut x, LIVE_GROUP, tp(EVENTS, 1), e1_end - 2);
    live.close().unwrap();

    // The expected state, read back.
    x.topics = store.topics();
    assert_eq!(x.topics, [ADOPTED, EVENTS, LATEST]);
    for (name, topic) in [(EVENTS, &events), (LATEST, &latest), (ADOPTED, &adopted)] {
        x.configs.insert(name.to_owned(), persisted_config(topic));
        for p in 0..topic.partition_count() {
            let part = topic.partition(p).unwrap();
            x.partitions.insert(
                tp(name, p),
                ExpectedPartition {
                    start: part.start_offset(),
                    end: part.end_offset(),
                    records: read_back(&part),
                },
            );
        }
    }
    x.groups = store.groups().unwrap();
    assert_eq!(x.groups, [LIVE_GROUP]);
    for g in [LIVE_GROUP, GONE_GROUP] {
        let commits: BTreeMap<Tp, Commit> = store
            .group_lag(g)
            .unwrap()
            .into_iter()
            .filter_map(|l| {
                let c = l.committed?;
                Some((
                    tp(&l.partition.topic, l.partition.partition),
                    (c.offset, c.metadata),
                ))
            })
            .collect();
        if g == LIVE_GROUP {
            assert_eq!(commits.len(), 4, "{commits:?}");
            x.commits.insert(g.to_owned(), commits);
        } else {
            assert!(commits.is_empty(), "deleted group still has {commits:?}");
        }
    }
    check_fixture(&x);

    // The crashed image: everything is durable and below every partition's recovery point (the
    // offsets topic's too), so a copy of the open store is what a crash (of the process) now
    // would leave. Then the clean image: the same store closed cleanly.
    store.flush().unwrap();
    copy_tree(&clean, &crashed);
    store.close().unwrap();
    Fixture {
        clean,
        crashed,
        expected: x,
    }
}

/// Write a compacted Kafka partition into `dir` (segments only, as a broker leaves them) and
/// return its batches (base offset, records).
fn write_kafka_partition(dir: &Path) -> Vec<(u64, Vec<Record>)> {
    use topiclog::internals::format::PARTITION_LEADER_EPOCH_OFFSET;
    use topiclog::segment::{RecordBatch, Segment};
    let fs: Arc<dyn topiclog::fs::FileSystem> = Arc::new(topiclog::fs::StdFs::new());
    std::fs::create_dir_all(dir).unwrap();
    let config = LogConfig {
        preallocate: false,
        ..LogConfig::default()
    };
    // (segment base, [(batch base, records, leader epoch)])
    type Batches = &'static [(u64, u64, i32)];
    let layout: [(u64, Batches); 2] = [
        (0, &[(0, 3, 0), (10, 2, 1)]),
        (20, &[(20, 3, 1), (30, 1, 3)]),
    ];
    let mut out = Vec::new();
    for (seg_base, batches) in layout {
        let seg = Segment::create(fs.clone(), dir, seg_base, &config).unwrap();
        for &(base, n, epoch) in batches {
            let records: Vec<Record> = (base..base + n)
                .map(|o| {
                    Record::new(format!("kafka value {o}"))
                        .with_key(format!("kafka-key-{}", o % 4))
                        .with_timestamp(T0 + o as i64)
                })
                .collect();
            let mut bytes = RecordBatch::build(&records, base, T0)
                .unwrap()
                .as_bytes()
                .to_vec();
            bytes[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
                .copy_from_slice(&epoch.to_be_bytes());
            seg.append(&bytes, T0).unwrap();
            out.push((base, records));
        }
        seg.seal().unwrap();
    }
    out
}

/// The fixture holds what the sweep needs: the expected records are the written ones (those of
/// `events` from the start offset, a key's latest value in `latest`), deletions and compaction
/// left records to resurrect, and commits to lose.
fn check_fixture(x: &Expected) {
    for p in 0..EVENTS_PARTITIONS {
        let at = tp(EVENTS, p);
        let e = &x.partitions[&at];
        let written: BTreeMap<u64, RecordView> = x.history[&at]
            .range(e.start..)
            .map(|(o, r)| (*o, r.clone()))
            .collect();
        assert_eq!(e.records, written, "{at:?} reads back what was written");
        assert_eq!(e.end, x.history[&at].keys().last().unwrap() + 1);
    }
    let e0 = &x.partitions[&tp(EVENTS, 0)];
    assert!(
        e0.start > 0 && x.history[&tp(EVENTS, 0)].range(..e0.start).count() > 0,
        "events-0 has deleted records"
    );
    let at = tp(LATEST, 0);
    let (e, h) = (&x.partitions[&at], &x.history[&at]);
    for (o, r) in &e.records {
        assert_eq!(h.get(o), Some(r), "latest@{o} is a written record");
    }
    let mut last_by_key: BTreeMap<&[u8], &RecordView> = BTreeMap::new();
    for r in h.values() {
        last_by_key.insert(r.key.as_deref().unwrap(), r);
    }
    for r in last_by_key.values() {
        if r.value.is_some() {
            assert_eq!(
                e.records.get(&r.offset),
                Some(*r),
                "a key's last value survives"
            );
        }
    }
    let tombstones =
        |m: &BTreeMap<u64, RecordView>| m.values().filter(|r| r.value.is_none()).count();
    assert!(
        e.records.len() * 3 < h.len() && tombstones(&e.records) < tombstones(h),
        "compaction removed records ({} of {}) and tombstones",
        e.records.len(),
        h.len()
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The child: open, read everything, probe writes, report
// ---------------------------------------------------------------------------------------------

/// Child mode: report what the damaged store at [`CHILD_ENV`] holds. Does nothing unless the
/// parent set that variable, so an ordinary `cargo test` run just passes. Library errors are
/// reported, never unwrapped: a panic here is the library's (a "crash").
#[test]
fn sweep_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut out = Report::new();
    probe_store(Path::new(&dir), &mut out);
    out.memory();
    out.line("done");
}

/// The child's report lines, behind [`MARK`]. Writes that fail (the parent went away) are
/// ignored: the parent classifies what it got.
struct Report(std::io::BufWriter<std::io::Stdout>);

impl Report {
    fn new() -> Report {
        Report(std::io::BufWriter::new(std::io::stdout()))
    }

    fn line(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.0, "{MARK}{}", line.as_ref());
    }

    /// `error <where> <variant> <message>`; `at` is one token.
    fn error(&mut self, at: &str, e: &topiclog::Error) {
        let message = e.to_string().replace(['\n', '\r'], " ");
        self.line(format!("error {at} {} {message}", variant(e)));
        self.flush();
    }

    fn flush(&mut self) {
        let _ = self.0.flush();
    }

    /// Peak address space and resident memory, for the summary.
    fn memory(&mut self) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let line = format!("memory {} {}", kib("VmPeak:"), kib("VmHWM:"));
        self.line(line);
    }
}

/// The name of an error's variant (`Corrupt`, `Io`, ...).
fn variant(e: &topiclog::Error) -> String {
    format!("{e:?}")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "=".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s == "=" {
        return Some(Vec::new());
    }
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `-` for `None`.
fn opt_hex(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(|| "-".into(), hex)
}

fn parse_opt_hex(s: &str) -> Option<Option<Vec<u8>>> {
    if s == "-" {
        Some(None)
    } else {
        unhex(s).map(Some)
    }
}

/// `record <topic> <p> <offset> <timestamp> <key> <value> <headers>`; headers are
/// `key:value,...` in hex, `~` for none.
fn record_line(topic: &str, p: u32, r: &RecordView) -> String {
    let headers = if r.headers.is_empty() {
        "~".to_owned()
    } else {
        r.headers
            .iter()
            .map(|(k, v)| format!("{}:{}", hex(k.as_bytes()), opt_hex(v.as_deref())))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "record {topic} {p} {} {} {} {} {headers}",
        r.offset,
        r.timestamp,
        opt_hex(r.key.as_deref()),
        opt_hex(r.value.as_deref()),
    )
}

fn probe_store(dir: &Path, out: &mut Report) {
    let store = match Store::open_with_env(dir, options(), env(&ManualClock::new(T_END))) {
        Ok(s) => s,
        Err(e) => return out.error("open", &e),
    };
    let topics = store.topics();
    out.line(format!("topics {}", topics.join(",")));
    let mut partitions = Vec::new();
    for name in &topics {
        let topic = match store.topic(name) {
            Ok(t) => t,
            Err(e) => {
                out.error(&format!("topic:{name}"), &e);
                continue;
            }
        };
        out.line(format!(
            "config {name} {}",
            hex(persisted_config(&topic).as_bytes())
        ));
        for p in 0..topic.partition_count() {
            match topic.partition(p) {
                Ok(part) => {
                    read_partition(name, p, &part, out);
                    partitions.push((name.clone(), p, part));
                }
                Err(e) => out.error(&format!("partition:{name}:{p}"), &e),
            }
            out.flush();
        }
    }

    // Groups and their commits: the live group, the deleted one, and any other listed.
    let mut groups: BTreeSet<String> = [LIVE_GROUP, GONE_GROUP].map(String::from).into();
    match store.groups() {
        Ok(listed) => {
            let names: Vec<String> = listed.iter().map(|g| hex(g.as_bytes())).collect();
            out.line(format!("groups {}", names.join(",")));
            groups.extend(listed);
        }
        Err(e) => out.error("groups", &e),
    }
    for g in &groups {
        match store.group_lag(g) {
            Ok(lags) => {
                for l in lags {
                    if let Some(c) = l.committed {
                        out.line(format!(
                            "commit {} {} {} {} {}",
                            hex(g.as_bytes()),
                            l.partition.topic,
                            l.partition.partition,
                            c.offset,
                            hex(c.metadata.as_bytes())
                        ));
                    }
                }
            }
            Err(e) => out.error(&format!("group:{}", hex(g.as_bytes())), &e),
        }
    }
    out.flush();

    // Write probes. The replay of each `events` partition's last idempotent batch must be
    // recognised as a duplicate of the original.
    for (name, p, part) in &partitions {
        if name != EVENTS {
            continue;
        }
        let (records, batch) = replay_batch(*p, REPLAY_BATCHES - 1);
        match part.append_idempotent(&records, batch, Durability::Always) {
            Ok(info) => out.line(format!(
                "replay {name} {p} {} {}",
                info.duplicate, info.base_offset
            )),
            Err(e) => out.error(&format!("replay:{name}:{p}"), &e),
        }
    }
    // A new idempotent producer gets an id never handed out before.
    match store.producer(ProducerConfig {
        idempotent: true,
        ..ProducerConfig::default()
    }) {
        Ok(producer) => {
            out.line(format!(
                "producer-id {}",
                producer.producer_id().unwrap_or(-1)
            ));
            if let Err(e) = producer.close() {
                out.error("producer-close", &e);
            }
        }
        Err(e) => out.error("producer", &e),
    }
    // An append lands at the end offset and reads back.
    for (name, p, part) in &partitions {
        let end = part.end_offset();
        let probe = Record::new("sweep probe")
            .with_key("sweep-probe")
            .with_timestamp(T_END);
        match part.append(probe.clone()) {
            Ok(offset) => {
                let read_back = match part.read(offset, 1 << 16) {
                    Ok(b) => b
                        .records()
                        .next()
                        .is_some_and(|r| RecordView::of(&r) == view(offset, &probe)),
                    Err(e) => {
                        out.error(&format!("append-read:{name}:{p}"), &e);
                        false
                    }
                };
                out.line(format!("append {name} {p} {end} {offset} {read_back}"));
            }
            Err(e) => out.error(&format!("append:{name}:{p}"), &e),
        }
    }
    out.flush();
    // Leave as a crash would: nothing after this is observed, and a clean close (a dozen
    // fsyncs per partition) would double the time of a trial.
    std::mem::forget(partitions);
    std::mem::forget(store);
}

/// Report `part`'s offsets and every record from its start to its end, then the reads at single
/// offsets and the `offset_for_time` answers that disagree with the records read.
fn read_partition(name: &str, p: u32, part: &Partition, out: &mut Report) {
    let (start, end) = (part.start_offset(), part.end_offset());
    out.line(format!("partition {name} {p} {start} {end}"));
    // Sequentially, as a consumer does: from the start, following `next_offset`.
    let mut records = Vec::new();
    let mut next = start;
    let mut failed = false;
    while next < end {
        match part.read(next, 64 << 10) {
            Err(e) => {
                out.error(&format!("read:{name}:{p}:{next}"), &e);
                failed = true;
                break;
            }
            Ok(batches) => {
                for r in batches.records() {
                    let r = RecordView::of(&r);
                    out.line(record_line(name, p, &r));
                    records.push(r);
                }
                let after = batches.next_offset();
                if after <= next {
                    return out.line(format!("stuck {name} {p} {next} {after}"));
                }
                if records.len() > MAX_RECORDS_READ {
                    return out.line(format!("runaway {name} {p} {next}"));
                }
                next = after;
            }
        }
    }
    let reached = next;
    // At every offset, as a consumer that seeks there does: the first record at or after it.
    // Reported where the sequential read cannot vouch for the answer (past its error) or
    // disagrees with it.
    let mut point_errors = 0;
    for offset in start..end.min(start + MAX_RECORDS_READ as u64) {
        let truth = records.iter().find(|r| r.offset >= offset);
        match first_at_or_after(part, offset, end) {
            Ok(got) if offset < reached && got.as_ref() == truth => {}
            Ok(got) => out.line(format!(
                "point {name} {p} {offset} {}",
                got.map_or_else(
                    || "- -".to_owned(),
                    |r| format!("{} {:x}", r.offset, digest(&record_line(name, p, &r)))
                )
            )),
            Err(why) => {
                point_errors += 1;
                if point_errors <= 20 {
                    out.line(format!("point-error {name} {p} {offset} {why}"));
                }
            }
        }
    }
    if failed {
        return;
    }
    // offset_for_time must answer what the records just read say: the first record, in offset
    // order, with a timestamp at or after the one asked for.
    let mut times: BTreeSet<i64> = records.iter().step_by(7).map(|r| r.timestamp).collect();
    if let (Some(lo), Some(hi)) = (
        records.iter().map(|r| r.timestamp).min(),
        records.iter().map(|r| r.timestamp).max(),
    ) {
        times.extend([lo - 1, lo, hi, hi + 1]);
    }
    for ts in times {
        let truth = records
            .iter()
            .find(|r| r.timestamp >= ts)
            .map(|r| (r.timestamp, r.offset));
        match part.offset_for_time(ts) {
            Ok(found) => {
                let found = found.map(|f| (f.timestamp, f.offset));
                if found != truth {
                    out.line(format!("time-mismatch {name} {p} {ts} {found:?} {truth:?}"));
                }
            }
            Err(e) => return out.error(&format!("time:{name}:{p}:{ts}"), &e),
        }
    }
}

/// The first record at or after `offset`, read from there with the smallest `max_bytes`, going
/// on past batches compaction emptied; `Err` names the error variant (or the loop that made no
/// progress).
fn first_at_or_after(
    part: &Partition,
    offset: u64,
    end: u64,
) -> Result<Option<RecordView>, String> {
    let mut next = offset;
    while next < end {
        let batches = part.read(next, 1).map_err(|e| variant(&e))?;
        if let Some(r) = batches.records().next() {
            return Ok(Some(RecordView::of(&r)));
        }
        let after = batches.next_offset();
        if after <= next {
            return Err(format!("stuck-at-{next}"));
        }
        next = after;
    }
    Ok(None)
}

/// FNV-1a of a record's report line: point reads report records by offset and digest.
fn digest(line: &str) -> u64 {
    line.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------------------------
// What the child saw, parsed
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Observed {
    /// The child got to its end.
    done: bool,
    topics: Option<Vec<String>>,
    /// Each topic's configuration, as `TopicConfig`'s `Debug`.
    configs: BTreeMap<String, String>,
    partitions: BTreeMap<Tp, ObservedPartition>,
    groups: Option<Vec<String>>,
    commits: BTreeMap<String, BTreeMap<Tp, Commit>>,
    /// `(duplicate, base offset)` of each replay.
    replays: BTreeMap<Tp, (bool, u64)>,
    producer_id: Option<i64>,
    /// `(end before, landed at, read back)` of each append probe.
    appends: BTreeMap<Tp, (u64, u64, bool)>,
    /// `(where, variant and message)` of every error.
    errors: Vec<(String, String)>,
    /// Read loops that made no progress or ran away.
    stuck: Vec<String>,
    time_mismatches: Vec<String>,
    /// `(peak address space, peak resident)` in KiB.
    memory: Option<(u64, u64)>,
    /// Lines the parser did not understand (a harness bug).
    unparsed: Vec<String>,
}

#[derive(Debug, Default)]
struct ObservedPartition {
    start: u64,
    end: u64,
    records: Vec<RecordView>,
    /// The offset a read failed at.
    read_error_at: Option<u64>,
    /// Point reads the sequential read could not vouch for: requested offset, and the offset
    /// and digest of the first record returned.
    points: Vec<(u64, Option<(u64, u64)>)>,
    /// Point reads that failed: requested offset, and why.
    point_errors: Vec<(u64, String)>,
}

impl Observed {
    fn parse(lines: &[String]) -> Observed {
        let mut o = Observed::default();
        for line in lines {
            if o.parse_line(line).is_none() {
                o.unparsed.push(line.clone());
            }
        }
        o
    }

    fn parse_line(&mut self, line: &str) -> Option<()> {
        let mut t = line.split(' ');
        let num = |s: Option<&str>| s?.parse::<u64>().ok();
        match t.next()? {
            "done" => self.done = true,
            "topics" => {
                let list = t.next().unwrap_or("");
                self.topics = Some(
                    list.split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                );
            }
            "config" => {
                let topic = t.next()?.to_owned();
                let config = String::from_utf8(unhex(t.next()?)?).ok()?;
                self.configs.insert(topic, config);
            }
            "partition" => {
                let at = (t.next()?.to_owned(), num(t.next())? as u32);
                let part = self.partitions.entry(at).or_default();
                part.start = num(t.next())?;
                part.end = num(t.next())?;
            }
            "record" => {
                let at = (t.next()?.to_owned(), num(t.next())? as u32);
                let offset = num(t.next())?;
                let timestamp = t.next()?.parse().ok()?;
                let key = parse_opt_hex(t.next()?)?;
                let value = parse_opt_hex(t.next()?)?;
                let headers = match t.next()? {
                    "~" => Vec::new(),
                    hs => hs
                        .split(',')
                        .map(|h| {
                            let (k, v) = h.split_once(':')?;
                            Some((String::from_utf8(unhex(k)?).ok()?, parse_opt_hex(v)?))
                        })
                        .collect::<Option<_>>()?,
                };
                self.partitions.get_mut(&at)?.records.push(RecordView {
                    offset,
                    timestamp,
                    key,
                    value,
                    headers,
                });
            }
            "groups" => {
                let list = t.next().unwrap_or("");
                self.groups = Some(
                    list.split(',')
                        .filter(|s| !s.is_empty())
                        .map(|g| unhex(g).map(|b| String::from_utf8_lossy(&b).into_owned()))
                        .collect::<Option<_>>()?,
                );
            }
            "commit" => {
                let group = String::from_utf8(unhex(t.next()?)?).ok()?;
                let at = (t.next()?.to_owned(), num(t.next())? as u32);
                let offset = num(t.next())?;
                let metadata = String::from_utf8(unhex(t.next()?)?).ok()?;
                self.commits
                    .entry(group)
                    .or_default()
                    .insert(at, (offset, metadata));
            }
            "replay" => {
                let at = (t.next()?.to_owned(), num(t.next())? as u32);
                let duplicate = t.next()?.parse().ok()?;
                self.replays.insert(at, (duplicate, num(t.next())?));
            }
            "producer-id" => self.producer_id = Some(t.next()?.parse().ok()?),
            "append" => {
                let at = (t.next()?.to_owned(), num(t.next())? as u32);
                let end = num(t.next())?;
                let landed = num(t.next())?;
                let read_back = t.next()?.parse().ok()?;
                self.appends.insert(at, (end, landed, read_back));
            }
            "error" => {
                let at = t.next()?.to_owned();
                let rest: Vec<&str> = t.collect();
                if let Some(read) = at.strip_prefix("read:") {
                    let mut f = read.split(':');
                    let key = (f.next()?.to_owned(), num(f.next())? as u32);
                    self.partitions.get_mut(&key)?.read_error_at = Some(num(f.next())?);
                }
                self.errors.push((at, rest.join(" ")));
            }
            "point" => {
                let at = (t.next()?.to_owned(), num(t.next())? as u32);
                let offset = num(t.next())?;
                let got = match (t.next()?, t.next()?) {
                    ("-", "-") => None,
                    (o, d) => Some((o.parse().ok()?, u64::from_str_radix(d, 16).ok()?)),
                };
                self.partitions.get_mut(&at)?.points.push((offset, got));
            }
            "point-error" => {
                let at = (t.next()?.to_owned(), num(t.next())? as u32);
                let offset = num(t.next())?;
                let why = t.next()?.to_owned();
                self.partitions
                    .get_mut(&at)?
                    .point_errors
                    .push((offset, why));
            }
            "stuck" | "runaway" => self.stuck.push(line.to_owned()),
            "time-mismatch" => self.time_mismatches.push(line.to_owned()),
            "memory" => self.memory = Some((num(t.next())?, num(t.next())?)),
            _ => return None,
        }
        Some(())
    }
}

// ---------------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------------

/// The class of a finding, from harmless to worst (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Outcome {
    Identical,
    TypedError,
    PrefixLoss,
    Hole,
    Resurrected,
    WrongData,
    Crash,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Identical,
        Outcome::TypedError,
        Outcome::PrefixLoss,
        Outcome::Hole,
        Outcome::Resurrected,
        Outcome::WrongData,
        Outcome::Crash,
    ];

    /// One letter for the summary table.
    fn letter(self) -> char {
        match self {
            Outcome::Identical => '=',
            Outcome::TypedError => 'e',
            Outcome::PrefixLoss => 'P',
            Outcome::Hole => 'H',
            Outcome::Resurrected => 'R',
            Outcome::WrongData => 'W',
            Outcome::Crash => 'C',
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Identical => "identical",
            Outcome::TypedError => "typed error",
            Outcome::PrefixLoss => "prefix loss",
            Outcome::Hole => "hole",
            Outcome::Resurrected => "resurrected",
            Outcome::WrongData => "wrong data",
            Outcome::Crash => "crash",
        })
    }
}

/// Everything found wrong with one child run; the outcome is the worst finding.
#[derive(Debug, Default)]
struct Verdict {
    findings: Vec<(Outcome, String)>,
}

impl Verdict {
    fn add(&mut self, outcome: Outcome, what: impl Into<String>) {
        self.findings.push((outcome, what.into()));
    }

    fn outcome(&self) -> Outcome {
        self.findings
            .iter()
            .map(|(o, _)| *o)
            .max()
            .unwrap_or(Outcome::Identical)
    }

    /// The first finding of the worst class.
    fn headline(&self) -> String {
        let worst = self.outcome();
        self.findings
            .iter()
            .find(|(o, _)| *o == worst)
            .map_or_else(|| "identical".into(), |(_, w)| w.clone())
    }
}

fn name(at: &Tp) -> String {
    format!("{}-{}", at.0, at.1)
}

/// Compare what a child saw (and how it ended) with the expected state.
fn classify(run: &common::LimitedRun, seen: &Observed, x: &Expected) -> Verdict {
    let mut v = Verdict::default();
    // How the child ended.
    match run.status {
        None => v.add(
            Outcome::Crash,
            format!("killed after {:?} without an answer (hang)", run.elapsed),
        ),
        Some(s) if !s.success() => {
            let why = run
                .stderr
                .lines()
                .find(|l| l.contains("panicked") || l.contains("memory allocation"))
                .map(|l| l.trim().to_owned())
                .unwrap_or_else(|| format!("exit status {s}"));
            v.add(Outcome::Crash, why);
        }
        Some(_) if !seen.done => v.add(Outcome::Crash, "the child did not finish its report"),
        Some(_) => {
            // A panic on another thread (a producer's sender) does not fail the child's test.
            if let Some(l) = run.stderr.lines().find(|l| l.contains("panicked")) {
                v.add(Outcome::Crash, l.trim().to_owned());
            }
        }
    }
    for line in &seen.unparsed {
        v.add(
            Outcome::Crash,
            format!("harness: unparsed child line {line:?}"),
        );
    }
    for line in &seen.stuck {
        v.add(Outcome::Crash, format!("read loop: {line}"));
    }
    for (at, e) in &seen.errors {
        v.add(Outcome::TypedError, format!("{at}: {e}"));
    }
    // After an open error there is nothing to compare; after a crash the report is partial
    // (and the trial is already the worst it can be).
    if !seen.done || seen.errors.iter().any(|(at, _)| at == "open") {
        return v;
    }

    // Topics and partitions.
    let topics = seen.topics.clone().unwrap_or_default();
    for t in &topics {
        if !x.topics.contains(t) {
            v.add(Outcome::WrongData, format!("topic {t:?} never existed"));
        }
    }
    for t in &x.topics {
        if !topics.contains(t) {
            let records: usize = x
                .partitions
                .iter()
                .filter(|(at, _)| &at.0 == t)
                .map(|(_, e)| e.records.len())
                .sum();
            v.add(
                Outcome::PrefixLoss,
                format!("topic {t:?} is gone ({records} records)"),
            );
        }
    }
    for (t, config) in &seen.configs {
        if x.configs.get(t).is_some_and(|c| c != config) {
            v.add(
                Outcome::WrongData,
                format!(
                    "topic {t:?} config changed: {}",
                    config_difference(&x.configs[t], config)
                ),
            );
        }
    }
    for (at, part) in &seen.partitions {
        match x.partitions.get(at) {
            Some(e) => classify_partition(at, part, e, &x.history[at], &mut v),
            None => v.add(Outcome::WrongData, format!("{} never existed", name(at))),
        }
    }
    for (at, e) in &x.partitions {
        // A partition the child could not get (an error says why) is not silently gone.
        let unreachable = seen.errors.iter().any(|(w, _)| {
            *w == format!("topic:{}", at.0) || *w == format!("partition:{}:{}", at.0, at.1)
        });
        if topics.contains(&at.0) && !seen.partitions.contains_key(at) && !unreachable {
            v.add(
                Outcome::PrefixLoss,
                format!("{} is gone ({} records)", name(at), e.records.len()),
            );
        }
    }
    for m in &seen.time_mismatches {
        v.add(Outcome::WrongData, format!("offset_for_time: {m}"));
    }

    classify_groups(seen, x, &mut v);
    classify_probes(seen, x, &mut v);
    v
}

/// Records, start and end of one partition.
fn classify_partition(
    at: &Tp,
    seen: &ObservedPartition,
    x: &ExpectedPartition,
    history: &BTreeMap<u64, RecordView>,
    v: &mut Verdict,
) {
    let n = name(at);
    // Each record read: the expected one, or something that was deleted, or wrong.
    let mut previous: Option<u64> = None;
    let mut seen_offsets = BTreeSet::new();
    for r in &seen.records {
        if previous.is_some_and(|p| r.offset <= p) {
            v.add(
                Outcome::WrongData,
                format!("{n}: offset {} read after {previous:?}", r.offset),
            );
        }
        previous = Some(r.offset);
        seen_offsets.insert(r.offset);
        match (x.records.get(&r.offset), history.get(&r.offset)) {
            (Some(e), _) if e == r => {}
            (Some(e), _) => v.add(
                Outcome::WrongData,
                format!("{n}@{}: {}", r.offset, record_difference(e, r)),
            ),
            (None, Some(h)) if h == r && r.offset < x.start => v.add(
                Outcome::Resurrected,
                format!(
                    "{n}@{}: deleted record (below start {}) is back",
                    r.offset, x.start
                ),
            ),
            (None, Some(h)) if h == r => v.add(
                Outcome::Resurrected,
                format!(
                    "{n}@{}: record removed by compaction is back (key {:?}, {})",
                    r.offset,
                    String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()),
                    if r.value.is_some() {
                        "an older value"
                    } else {
                        "a tombstone"
                    }
                ),
            ),
            (None, Some(h)) => v.add(
                Outcome::WrongData,
                format!(
                    "{n}@{}: {} (of a removed record)",
                    r.offset,
                    record_difference(h, r)
                ),
            ),
            (None, None) => v.add(
                Outcome::WrongData,
                format!("{n}@{}: offset never written", r.offset),
            ),
        }
    }

    // The start offset.
    if seen.start < x.start {
        v.add(
            Outcome::Resurrected,
            format!("{n}: start offset moved down {} -> {}", x.start, seen.start),
        );
    } else if seen.start > x.start {
        let lost = x.records.range(..seen.start).count();
        v.add(
            Outcome::Hole,
            format!(
                "{n}: start offset moved up {} -> {} ({lost} records lost)",
                x.start, seen.start
            ),
        );
    }

    // Expected records not read: skipped (a hole) if the reader went past them, a silent
    // loss at the end if it did not and no error explains it.
    let reached = seen.read_error_at.unwrap_or(seen.end);
    let missing: Vec<u64> = x
        .records
        .range(seen.start..)
        .map(|(o, _)| *o)
        .filter(|o| !seen_offsets.contains(o))
        .collect();
    let skipped: Vec<u64> = missing.iter().copied().filter(|o| *o < reached).collect();
    if let Some(first) = skipped.first() {
        v.add(
            Outcome::Hole,
            format!(
                "{n}: {} expected records missing below offset {reached} the reader passed, first {first}",
                skipped.len()
            ),
        );
    }
    if seen.read_error_at.is_none() {
        let lost = missing.len() - skipped.len();
        if seen.end < x.end {
            v.add(
                Outcome::PrefixLoss,
                format!(
                    "{n}: end offset moved down {} -> {} ({lost} records lost)",
                    x.end, seen.end
                ),
            );
        } else if lost > 0 {
            v.add(
                Outcome::PrefixLoss,
                format!("{n}: {lost} records lost at the end"),
            );
        }
    }
    if seen.end > x.end {
        v.add(
            Outcome::Hole,
            format!("{n}: end offset moved up {} -> {}", x.end, seen.end),
        );
    }

    // Point reads: what a consumer that seeks gets.
    if let Some((offset, why)) = seen
        .point_errors
        .iter()
        .find(|(_, w)| w.starts_with("stuck"))
    {
        v.add(
            Outcome::Crash,
            format!("{n}: a read loop from {offset} makes no progress ({why})"),
        );
    }
    if let Some((offset, why)) = seen.point_errors.first() {
        v.add(
            Outcome::TypedError,
            format!(
                "{n}: {}{} point reads failed, first at {offset}: {why}",
                seen.point_errors.len(),
                if seen.point_errors.len() >= 20 {
                    "+"
                } else {
                    ""
                }
            ),
        );
    }
    let digest_of = |r: &RecordView| digest(&record_line(&at.0, at.1, r));
    let mut point_findings = BTreeMap::<Outcome, (usize, String)>::new();
    for (offset, got) in &seen.points {
        if *offset < x.start {
            continue; // below the expected start: reported above as resurrected
        }
        let expected = x.records.range(offset..).next().map(|(_, r)| r);
        let finding = match (got, expected) {
            (None, None) => None,
            (None, Some(e)) if e.offset < seen.end => Some((
                Outcome::Hole,
                format!("read at {offset} finds nothing, {} is there", e.offset),
            )),
            (None, Some(_)) => None, // beyond the end: a loss reported above
            (Some((o, d)), Some(e)) if *o == e.offset && *d == digest_of(e) => None,
            (Some((o, _)), Some(e)) if *o == e.offset => Some((
                Outcome::WrongData,
                format!("read at {offset} returns a different record at {o}"),
            )),
            (Some((o, _)), Some(e)) if *o > e.offset => Some((
                Outcome::Hole,
                format!("read at {offset} skips to {o}, past {}", e.offset),
            )),
            (Some((o, d)), _) => match history.get(o) {
                Some(h) if digest_of(h) == *d => Some((
                    Outcome::Resurrected,
                    format!("read at {offset} returns removed record {o}"),
                )),
                _ => Some((
                    Outcome::WrongData,
                    format!("read at {offset} returns {o}, never written there"),
                )),
            },
        };
        if let Some((outcome, what)) = finding {
            point_findings.entry(outcome).or_insert((0, what)).0 += 1;
        }
    }
    for (outcome, (count, first)) in point_findings {
        v.add(
            outcome,
            format!("{n}: {count} point reads wrong, first: {first}"),
        );
    }
}

/// The fields of two `TopicConfig` `Debug` strings that differ.
fn config_difference(expected: &str, got: &str) -> String {
    let fields = |s: &str| -> Vec<String> {
        s.trim_start_matches("TopicConfig {")
            .trim_end_matches('}')
            .split(", ")
            .map(|f| f.trim().to_owned())
            .collect()
    };
    let (e, g) = (fields(expected), fields(got));
    let changed: Vec<String> = g.iter().filter(|f| !e.contains(f)).cloned().collect();
    if changed.is_empty() {
        got.to_owned()
    } else {
        changed.join(", ")
    }
}

/// What differs between two records at the same offset.
fn record_difference(expected: &RecordView, got: &RecordView) -> String {
    let mut fields = Vec::new();
    if expected.timestamp != got.timestamp {
        fields.push(format!(
            "timestamp {} -> {}",
            expected.timestamp, got.timestamp
        ));
    }
    if expected.key != got.key {
        fields.push("key".to_owned());
    }
    if expected.value != got.value {
        fields.push("value".to_owned());
    }
    if expected.headers != got.headers {
        fields.push("headers".to_owned());
    }
    format!("differs in {}", fields.join(", "))
}

fn classify_groups(seen: &Observed, x: &Expected, v: &mut Verdict) {
    if let Some(groups) = &seen.groups {
        for g in groups {
            if x.deleted_groups.contains(g) {
                v.add(
                    Outcome::Resurrected,
                    format!("deleted group {g:?} is listed"),
                );
            } else if !x.groups.contains(g) {
                v.add(Outcome::WrongData, format!("group {g:?} never existed"));
            }
        }
        for g in &x.groups {
            if !groups.contains(g) {
                v.add(Outcome::PrefixLoss, format!("group {g:?} is gone"));
            }
        }
    }
    for (g, commits) in &seen.commits {
        for (at, c) in commits {
            let expected = x.commits.get(g).and_then(|m| m.get(at));
            let history = x.commit_history.get(&(g.clone(), at.clone()));
            if expected == Some(c) {
                continue;
            }
            let what = format!("group {g:?} {}: committed {c:?}", name(at));
            if history.is_some_and(|h| h.contains(c)) {
                let why = if x.deleted_groups.contains(g) {
                    "of the deleted group"
                } else {
                    "older than"
                };
                v.add(
                    Outcome::Resurrected,
                    format!("{what}, a commit {why} {expected:?}"),
                );
            } else {
                v.add(
                    Outcome::WrongData,
                    format!("{what}, never committed (expected {expected:?})"),
                );
            }
        }
    }
    // Lost commits, unless the group's commits could not be read (an error says so).
    for (g, commits) in &x.commits {
        let unreadable = seen
            .errors
            .iter()
            .any(|(w, _)| w == "groups" || *w == format!("group:{}", hex(g.as_bytes())));
        if unreadable {
            continue;
        }
        for (at, c) in commits {
            if !seen.commits.get(g).is_some_and(|m| m.contains_key(at)) {
                v.add(
                    Outcome::PrefixLoss,
                    format!("group {g:?} {}: commit {c:?} is gone", name(at)),
                );
            }
        }
    }
}

fn classify_probes(seen: &Observed, x: &Expected, v: &mut Verdict) {
    for (at, (duplicate, base)) in &seen.replays {
        let Some((orig_base, orig_last)) = x.replayed.get(at) else {
            continue;
        };
        // Only a store that still holds the original batch must recognise the replay.
        let holds_original = seen.partitions.get(at).is_some_and(|p| {
            (*orig_base..=*orig_last).all(|o| {
                p.records
                    .iter()
                    .any(|r| r.offset == o && x.partitions[at].records.get(&o) == Some(r))
            })
        });
        if !holds_original {
            continue;
        }
        if !duplicate {
            v.add(
                Outcome::WrongData,
                format!(
                    "{}: idempotence lost: the replayed batch at {orig_base} was appended again at {base}",
                    name(at)
                ),
            );
        } else if base != orig_base {
            v.add(
                Outcome::WrongData,
                format!(
                    "{}: replay recognised at {base}, the batch is at {orig_base}",
                    name(at)
                ),
            );
        }
    }
    if let Some(id) = seen.producer_id {
        if id < 0 || x.producer_ids.contains(&id) {
            v.add(
                Outcome::WrongData,
                format!(
                    "producer id {id} handed out again (used: {:?})",
                    x.producer_ids
                ),
            );
        }
    }
    for (at, (end, landed, read_back)) in &seen.appends {
        let n = name(at);
        let seen_end = seen.partitions.get(at).map(|p| p.end);
        // A replay appended to `events` (flagged above) moves the end legitimately.
        let replayed = seen
            .replays
            .get(at)
            .is_some_and(|(duplicate, _)| !duplicate);
        if Some(*end) != seen_end && !replayed {
            v.add(
                Outcome::WrongData,
                format!("{n}: end offset {end} at the append, {seen_end:?} when read"),
            );
        }
        if landed != end {
            v.add(
                Outcome::Hole,
                format!("{n}: append landed at {landed}, the end offset was {end}"),
            );
        }
        if !read_back {
            v.add(
                Outcome::WrongData,
                format!("{n}: the appended record does not read back at {landed}"),
            );
        }
    }
}

/// Whether a silent prefix loss is acceptable for this damage: only when the damaged file held
/// nothing but a torn tail never acknowledged as durable. Every file of this fixture holds
/// acknowledged data only, so never.
fn prefix_loss_allowed(_trial: &Trial) -> bool {
    false
}

fn is_failure(trial: &Trial, outcome: Outcome) -> bool {
    match outcome {
        Outcome::Identical | Outcome::TypedError => false,
        Outcome::PrefixLoss => !prefix_loss_allowed(trial),
        Outcome::Hole | Outcome::Resurrected | Outcome::WrongData | Outcome::Crash => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Images, file kinds, damage
// ---------------------------------------------------------------------------------------------

/// What a file is, for choosing boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Log,
    Index,
    TimeIndex,
    Checkpoint,
    CleanerCheckpoint,
    ProducerSnapshot,
    TopicConf,
    ProducerIds,
    Other,
}

/// One file of an image.
#[derive(Clone, Debug)]
struct FileInfo {
    /// Path inside the store directory.
    rel: PathBuf,
    /// `<owner> <what>`: "store LOCK", "events topic.conf", "events-0 .log sealed",
    /// "latest-0 checkpoint", ... (partitions differ: `events-0` has a log start offset inside
    /// its log, `events-1` does not).
    kind: String,
    len: u64,
    /// Byte positions of the batches of a `.log`.
    batches: Vec<u64>,
    /// Positions strictly inside the file where a record, entry or field begins.
    boundaries: Vec<u64>,
    /// Bytes up to the end of the last valid-looking batch of a `.log` (the file length
    /// otherwise); damage positions favour them.
    data_len: u64,
}

struct Image {
    name: &'static str,
    dir: PathBuf,
    files: Vec<FileInfo>,
}

impl Image {
    fn scan(name: &'static str, dir: &Path) -> Image {
        let mut rels = Vec::new();
        walk(dir, Path::new(""), &mut rels);
        rels.sort();
        // The active segment of a partition is its last.
        let mut last_base: BTreeMap<PathBuf, String> = BTreeMap::new();
        for rel in &rels {
            let file = rel.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(base) = file.strip_suffix(".log") {
                let parent = rel.parent().unwrap().to_owned();
                let e = last_base.entry(parent).or_default();
                if base > e.as_str() {
                    *e = base.to_owned();
                }
            }
        }
        let files = rels
            .into_iter()
            .map(|rel| {
                let bytes = std::fs::read(dir.join(&rel)).unwrap();
                describe(&rel, &bytes, &last_base)
            })
            .collect();
        Image {
            name,
            dir: dir.to_owned(),
            files,
        }
    }
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(root.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let child = rel.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            walk(root, &child, out);
        } else {
            out.push(child);
        }
    }
}

fn describe(rel: &Path, bytes: &[u8], last_base: &BTreeMap<PathBuf, String>) -> FileInfo {
    let file = rel.file_name().unwrap().to_string_lossy().into_owned();
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let owner = match parts.len() {
        1 => "store".to_owned(),
        2 => parts[0].clone(),
        _ => format!("{}-{}", parts[0], parts[1]),
    };
    let len = bytes.len() as u64;
    let segment = file
        .split_once('.')
        .filter(|(base, _)| base.len() == 20 && base.bytes().all(|b| b.is_ascii_digit()));
    let (role, what) = if let Some((base, ext)) = segment {
        let active = rel
            .parent()
            .and_then(|p| last_base.get(p))
            .is_some_and(|b| b == base);
        let state = if active { "active" } else { "sealed" };
        let role = match ext {
            "log" => Role::Log,
            "index" => Role::Index,
            "timeindex" => Role::TimeIndex,
            _ => Role::Other,
        };
        (role, format!(".{ext} {state}"))
    } else {
        let role = match file.as_str() {
            "checkpoint" => Role::Checkpoint,
            "cleaner-checkpoint" => Role::CleanerCheckpoint,
            "producer-snapshot" => Role::ProducerSnapshot,
            "topic.conf" => Role::TopicConf,
            _ if parts.len() == 1 && file.contains("producer") => Role::ProducerIds,
            _ => Role::Other,
        };
        (role, file.clone())
    };
    let mut data_len = len;
    let mut batches = Vec::new();
    let fields: Vec<u64> = match role {
        Role::Log => {
            let (starts, end) = batch_starts(bytes);
            data_len = end;
            batches = starts.clone();
            starts.into_iter().skip(1).chain([end]).collect()
        }
        Role::Index => (1..).map(|i| 8 * i).take_while(|b| *b < len).collect(),
        Role::TimeIndex => (1..).map(|i| 12 * i).take_while(|b| *b < len).collect(),
        // Magic, version, length (current versions), the fields, the CRC (docs/FORMAT.md).
        Role::Checkpoint => vec![4, 5, 9, 17, 25, 33],
        Role::CleanerCheckpoint => {
            vec![4, 5, 9, 17, 25, 26, 34, 42, 46, len.saturating_sub(4)]
        }
        Role::ProducerSnapshot => vec![4, 5, 9, 17, 21, len.saturating_sub(4)],
        Role::ProducerIds => vec![4, 5, 9, 17],
        Role::TopicConf => bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i as u64 + 1)
            .collect(),
        Role::Other => Vec::new(),
    };
    let boundaries: BTreeSet<u64> = fields.into_iter().filter(|b| *b > 0 && *b < len).collect();
    FileInfo {
        rel: rel.to_owned(),
        kind: format!("{owner} {what}"),
        len,
        boundaries: boundaries.into_iter().collect(),
        batches,
        data_len,
    }
}

/// Byte positions of the batches of a `.log` (by their length fields; the CRC is not checked)
/// and where they end.
fn batch_starts(bytes: &[u8]) -> (Vec<u64>, u64) {
    let mut starts = Vec::new();
    let mut pos = 0usize;
    while let Some(len) = bytes.get(pos + 8..pos + 12) {
        let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        let next = pos + 12 + len;
        if len < 49 || next > bytes.len() {
            break;
        }
        starts.push(pos as u64);
        pos = next;
    }
    (starts, pos as u64)
}

/// The kinds of damage, each a column of the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum DamageKind {
    FlipBit,
    ZeroRun,
    InvertRun,
    TruncateEmpty,
    TruncateBoundary,
    TruncateInside,
    Delete,
    AppendRandom,
    AppendZeros,
    /// Batches of a `.log` rewritten with an unknown format version and a valid CRC: a segment
    /// (or its tail) in a foreign format, which must be refused, never taken for garbage.
    ForeignVersion,
    /// A field of a batch header that readers skip by (base offset, length, last offset delta,
    /// record count) set to a nearby value or zero, the CRC left as it was.
    HeaderField,
}

impl DamageKind {
    const ALL: [DamageKind; 11] = [
        DamageKind::FlipBit,
        DamageKind::ZeroRun,
        DamageKind::InvertRun,
        DamageKind::TruncateEmpty,
        DamageKind::TruncateBoundary,
        DamageKind::TruncateInside,
        DamageKind::Delete,
        DamageKind::AppendRandom,
        DamageKind::AppendZeros,
        DamageKind::ForeignVersion,
        DamageKind::HeaderField,
    ];

    fn label(self) -> &'static str {
        match self {
            DamageKind::FlipBit => "flip-bit",
            DamageKind::ZeroRun => "zero-run",
            DamageKind::InvertRun => "invert-run",
            DamageKind::TruncateEmpty => "trunc-0",
            DamageKind::TruncateBoundary => "trunc-bound",
            DamageKind::TruncateInside => "trunc-in",
            DamageKind::Delete => "delete",
            DamageKind::AppendRandom => "app-random",
            DamageKind::AppendZeros => "app-zeros",
            DamageKind::ForeignVersion => "foreign-ver",
            DamageKind::HeaderField => "hdr-field",
        }
    }

    /// Whether this damage can be done to `f` at all.
    fn applies_to(self, f: &FileInfo) -> bool {
        match self {
            DamageKind::FlipBit
            | DamageKind::ZeroRun
            | DamageKind::InvertRun
            | DamageKind::TruncateEmpty => f.len > 0,
            DamageKind::TruncateBoundary => !f.boundaries.is_empty(),
            DamageKind::TruncateInside => f.len >= 2,
            DamageKind::Delete | DamageKind::AppendRandom | DamageKind::AppendZeros => true,
            DamageKind::ForeignVersion | DamageKind::HeaderField => !f.batches.is_empty(),
        }
    }

    /// A damage of this kind to `f`, at a position drawn from `rng`.
    fn draw(self, f: &FileInfo, rng: &mut TestRng) -> Damage {
        // Mostly inside a log's data (its preallocated tail is zeros nobody reads), and often in
        // a batch header, whose fields readers use to skip from batch to batch.
        let position = |rng: &mut TestRng| {
            if !f.batches.is_empty() && rng.below(3) == 0 {
                let batch = f.batches[rng.below(f.batches.len() as u64) as usize];
                return (batch + rng.below(BATCH_HEADER_LEN)).min(f.len - 1);
            }
            let span = if f.data_len > 0 && rng.below(8) != 0 {
                f.data_len
            } else {
                f.len
            };
            rng.below(span)
        };
        let run = |rng: &mut TestRng| {
            if rng.below(4) == 0 {
                1 + rng.below(256)
            } else {
                1 + rng.below(16)
            }
        };
        match self {
            DamageKind::FlipBit => Damage::FlipBit {
                pos: position(rng),
                bit: rng.below(8) as u8,
            },
            DamageKind::ZeroRun | DamageKind::InvertRun => {
                let pos = position(rng);
                let len = run(rng).min(f.len - pos);
                if self == DamageKind::ZeroRun {
                    Damage::Zero { pos, len }
                } else {
                    Damage::Invert { pos, len }
                }
            }
            DamageKind::TruncateEmpty => Damage::Truncate { len: 0 },
            DamageKind::TruncateBoundary => Damage::Truncate {
                len: f.boundaries[rng.below(f.boundaries.len() as u64) as usize],
            },
            DamageKind::TruncateInside => {
                let len = match rng.below(4) {
                    0 => 1,
                    1 => f.len - 1,
                    2 => f.len / 2,
                    _ => 1 + rng.below(f.len - 1),
                };
                Damage::Truncate { len }
            }
            DamageKind::Delete => Damage::Delete,
            DamageKind::AppendRandom => {
                let n = 1 + rng.below(300) as usize;
                Damage::Append {
                    bytes: rng.bytes(n),
                    zeros: false,
                }
            }
            DamageKind::AppendZeros => {
                let n = 1 + rng.below(4096) as usize;
                Damage::Append {
                    bytes: vec![0; n],
                    zeros: true,
                }
            }
            DamageKind::ForeignVersion => Damage::ForeignVersion {
                from: if rng.below(2) == 0 {
                    0
                } else {
                    f.batches[rng.below(f.batches.len() as u64) as usize]
                },
                // Any magic but Kafka's 2 (0 and 1 are Kafka's older formats).
                version: match rng.below(255) as u8 {
                    v @ (0 | 1) => v,
                    v => v + 1,
                },
            },
            DamageKind::HeaderField => {
                // (name, position in the header, width): docs/FORMAT.md.
                const FIELDS: [(&str, u64, u64); 4] = [
                    ("base offset", 0, 8),
                    ("length", 8, 4),
                    ("last offset delta", 23, 4),
                    ("record count", 57, 4),
                ];
                let batch = f.batches[rng.below(f.batches.len() as u64) as usize];
                let (field, at, width) = FIELDS[rng.below(4) as usize];
                let delta = match rng.below(3) {
                    0 => None, // zero
                    1 => Some(-1 - rng.below(16) as i64),
                    _ => Some(1 + rng.below(16) as i64),
                };
                Damage::HeaderField {
                    field,
                    pos: batch + at,
                    width,
                    delta,
                }
            }
        }
    }
}

/// One damage to one file.
#[derive(Clone, Debug)]
enum Damage {
    FlipBit {
        pos: u64,
        bit: u8,
    },
    Zero {
        pos: u64,
        len: u64,
    },
    Invert {
        pos: u64,
        len: u64,
    },
    Truncate {
        len: u64,
    },
    Delete,
    Append {
        bytes: Vec<u8>,
        zeros: bool,
    },
    /// Every batch from byte `from` on gets magic `version` (byte 16), with its CRC fixed.
    ForeignVersion {
        from: u64,
        version: u8,
    },
    /// The big-endian integer of `width` bytes at `pos` (a header `field`) moved by
    /// `delta`, or zeroed for `None`.
    HeaderField {
        field: &'static str,
        pos: u64,
        width: u64,
        delta: Option<i64>,
    },
}

impl Damage {
    fn apply(&self, path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        match self {
            Damage::FlipBit { pos, bit } => bytes[*pos as usize] ^= 1 << bit,
            Damage::Zero { pos, len } => {
                bytes[*pos as usize..(pos + len) as usize].fill(0);
            }
            Damage::Invert { pos, len } => {
                for b in &mut bytes[*pos as usize..(pos + len) as usize] {
                    *b ^= 0xff;
                }
            }
            Damage::Truncate { len } => bytes.truncate(*len as usize),
            Damage::Delete => return std::fs::remove_file(path).unwrap(),
            Damage::Append { bytes: more, .. } => bytes.extend_from_slice(more),
            Damage::ForeignVersion { from, version } => {
                let (starts, _) = batch_starts(&bytes);
                for at in starts.into_iter().filter(|at| at >= from) {
                    let at = at as usize;
                    let len = u32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap());
                    let batch = &mut bytes[at..at + 12 + len as usize];
                    batch[16] = *version;
                    // docs/FORMAT.md: CRC-32C of bytes [21, 12 + length), big-endian at 17.
                    let crc = topiclog::internals::format::crc32c(&batch[21..]);
                    batch[17..21].copy_from_slice(&crc.to_be_bytes());
                }
            }
            Damage::HeaderField {
                pos, width, delta, ..
            } => {
                let field = &mut bytes[*pos as usize..(pos + width) as usize];
                let n = field.len();
                let mut be = [0u8; 8];
                be[8 - n..].copy_from_slice(field);
                let value = match delta {
                    None => 0,
                    Some(d) => u64::from_be_bytes(be).wrapping_add_signed(*d),
                };
                field.copy_from_slice(&value.to_be_bytes()[8 - n..]);
            }
        }
        std::fs::write(path, bytes).unwrap();
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::FlipBit { pos, bit } => write!(f, "flip bit {bit} of byte {pos}"),
            Damage::Zero { pos, len } => write!(f, "zero {len} bytes at {pos}"),
            Damage::Invert { pos, len } => write!(f, "invert {len} bytes at {pos}"),
            Damage::Truncate { len } => write!(f, "truncate to {len} bytes"),
            Damage::Delete => write!(f, "delete"),
            Damage::Append { bytes, zeros } => write!(
                f,
                "append {} {} bytes",
                bytes.len(),
                if *zeros { "zero" } else { "random" }
            ),
            Damage::ForeignVersion { from, version } => {
                write!(f, "batches from byte {from} on in format version {version}")
            }
            Damage::HeaderField {
                field, pos, delta, ..
            } => match delta {
                None => write!(f, "zero the {field} at byte {pos}"),
                Some(d) => write!(f, "{field} at byte {pos} {d:+}"),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Planning and running trials
// ---------------------------------------------------------------------------------------------

/// A row and column of the summary: an image's file kind and a damage kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pair {
    image: usize,
    kind: String,
    damage: DamageKind,
}

/// File kinds each image must hold, so that the sweep cannot silently shrink: every kind of file
/// the store writes for a partition (sealed and active segments, indexes, every metadata file),
/// in a `delete` topic, a compacted one, the offsets topic (sealed, cleaned and active), and a
/// partition imported from Kafka (`kafka-adopted`).
const REQUIRED_KINDS: &[&str] = &[
    "store LOCK",
    "store __producer_ids",
    "events topic.conf",
    "events-0 .lock",
    "events-0 checkpoint",
    "events-0 producer-snapshot",
    "events-0 .log sealed",
    "events-0 .index sealed",
    "events-0 .timeindex sealed",
    "events-0 .log active",
    "events-0 .index active",
    "events-0 .timeindex active",
    "latest-0 .log sealed",
    "latest-0 cleaner-checkpoint",
    "adopted-0 kafka-adopted",
    "adopted-0 .log sealed",
    "adopted-0 .log active",
    "__consumer_offsets topic.conf",
    "__consumer_offsets-0 .log sealed",
    "__consumer_offsets-0 .log active",
    "__consumer_offsets-0 cleaner-checkpoint",
];

/// Whether trials target files of `kind`. The imported topic's files are swept only where they
/// differ from every other partition's (`kafka-adopted`, Kafka's sealed segment, the checkpoint
/// that ends the adoption), and the offsets topic's sealed indexes not at all (they are derived
/// data like every other partition's), to keep the default run short.
fn targeted(kind: &str) -> bool {
    match kind.split_once(' ') {
        Some((owner, what)) if owner.starts_with(ADOPTED) => {
            matches!(what, "kafka-adopted" | ".log sealed" | "checkpoint")
        }
        Some(("__consumer_offsets-0", what)) => {
            !matches!(what, ".index sealed" | ".timeindex sealed")
        }
        _ => true,
    }
}

/// Every pair some file admits, in a fixed order.
fn pairs(images: &[Image]) -> Vec<Pair> {
    let mut out = BTreeSet::new();
    for (image, img) in images.iter().enumerate() {
        for f in img.files.iter().filter(|f| targeted(&f.kind)) {
            for damage in DamageKind::ALL {
                if damage.applies_to(f) {
                    out.insert(Pair {
                        image,
                        kind: f.kind.clone(),
                        damage,
                    });
                }
            }
        }
    }
    out.into_iter().collect()
}

struct Trial {
    index: usize,
    pair: Pair,
    file: FileInfo,
    damage: Damage,
}

/// Trial `index`: the `index`th pair while there are pairs, then pairs drawn at random; the
/// file of the pair's kind and the damage position drawn from `seed` and `index` alone.
fn plan(images: &[Image], pairs: &[Pair], seed: u64, index: usize) -> Trial {
    let mut rng = TestRng::new(mix(seed ^ mix(index as u64)));
    let pair = match pairs.get(index) {
        Some(p) => p.clone(),
        None => pairs[rng.below(pairs.len() as u64) as usize].clone(),
    };
    let candidates: Vec<&FileInfo> = images[pair.image]
        .files
        .iter()
        .filter(|f| f.kind == pair.kind && pair.damage.applies_to(f))
        .collect();
    let file = candidates[rng.below(candidates.len() as u64) as usize].clone();
    let damage = pair.damage.draw(&file, &mut rng);
    Trial {
        index,
        pair,
        file,
        damage,
    }
}

struct TrialResult {
    verdict: Verdict,
    run: common::LimitedRun,
    memory: Option<(u64, u64)>,
}

/// Copy `image` to `work`, apply `damage` (if any) to `rel`, and run the child on it. With
/// `keep`, a copy of the damaged store is left there too (the child changes its own).
fn run_child(
    image: &Image,
    work: &Path,
    damage: Option<(&Path, &Damage)>,
    keep: Option<&Path>,
    settings: &Settings,
    x: &Expected,
) -> TrialResult {
    let store = work.join("store");
    copy_tree(&image.dir, &store);
    if let Some((rel, damage)) = damage {
        damage.apply(&store.join(rel));
    }
    if let Some(keep) = keep {
        let _ = std::fs::remove_dir_all(keep);
        copy_tree(&store, keep);
    }
    let run = common::run_test_child_limited(
        &common::test_path(module_path!(), "sweep_child"),
        &[(CHILD_ENV, store.as_os_str())],
        MARK,
        settings.child_memory_kib,
        settings.child_time_limit,
    );
    let seen = Observed::parse(&run.said);
    let verdict = classify(&run, &seen, x);
    let _ = std::fs::remove_dir_all(work);
    TrialResult {
        verdict,
        memory: seen.memory,
        run,
    }
}

// ---------------------------------------------------------------------------------------------
// The sweep
// ---------------------------------------------------------------------------------------------

#[test]
fn damage_sweep() {
    let settings = Settings::from_env();
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let fixture = build_fixture(root.path());
    let x = &fixture.expected;
    let images = [
        Image::scan("clean", &fixture.clean),
        Image::scan("crashed", &fixture.crashed),
    ];
    eprintln!(
        "damage sweep: seed {:#x} (TOPICLOG_SWEEP_SEED); fixture built in {:?}: {} + {} files, {} records",
        settings.seed,
        started.elapsed(),
        images[0].files.len(),
        images[1].files.len(),
        x.partitions.values().map(|p| p.records.len()).sum::<usize>(),
    );

    // Every kind of file the sweep is meant to damage is there (the clean image also has the
    // clean-shutdown markers).
    for image in &images {
        let kinds: BTreeSet<&str> = image.files.iter().map(|f| f.kind.as_str()).collect();
        let clean_only: &[&str] = if image.name == "clean" {
            &["events-0 .clean_shutdown", "adopted-0 .clean_shutdown"]
        } else {
            &[]
        };
        let missing: Vec<&&str> = REQUIRED_KINDS
            .iter()
            .chain(clean_only)
            .filter(|k| !kinds.contains(**k))
            .collect();
        assert!(
            missing.is_empty(),
            "the {} image lacks files of kinds {missing:?}; it holds {kinds:?}",
            image.name
        );
    }

    // Both undamaged images reopen to exactly the expected state, or the harness is wrong.
    for (i, image) in images.iter().enumerate() {
        let r = run_child(
            image,
            &root.path().join(format!("intact-{i}")),
            None,
            None,
            &settings,
            x,
        );
        assert_eq!(
            r.verdict.outcome(),
            Outcome::Identical,
            "the intact {} image must reopen to the expected state: {:#?}\nstderr:\n{}",
            image.name,
            r.verdict.findings,
            r.run.stderr
        );
        eprintln!(
            "intact {} image: identical ({:?}, peak {:?} KiB address space / resident)",
            image.name, r.run.elapsed, r.memory
        );
    }

    let pairs = pairs(&images);
    let indexes: Vec<usize> = match settings.only_trial {
        Some(i) => vec![i],
        None => (0..settings.trials.unwrap_or(pairs.len())).collect(),
    };
    eprintln!(
        "{} pairs (image x file kind x damage kind); running {} trials, {} at a time",
        pairs.len(),
        indexes.len(),
        settings.jobs
    );
    let trials: Vec<Trial> = indexes
        .iter()
        .map(|&i| plan(&images, &pairs, settings.seed, i))
        .collect();

    // Run them, `jobs` children at a time.
    let results: Mutex<Vec<Option<TrialResult>>> =
        Mutex::new((0..trials.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let sweep_started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..settings.jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(t) = trials.get(i) else { break };
                let image = &images[t.pair.image];
                let work = root.path().join(format!("trial-{}", t.index));
                let keep = settings.only_trial.map(|_| kept_store(t.index));
                let r = run_child(
                    image,
                    &work,
                    Some((&t.file.rel, &t.damage)),
                    keep.as_deref(),
                    &settings,
                    x,
                );
                results.lock().unwrap()[i] = Some(r);
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                if n.is_multiple_of(100) {
                    eprintln!(
                        "  {n}/{} trials in {:?}",
                        trials.len(),
                        sweep_started.elapsed()
                    );
                }
            });
        }
    });
    let results: Vec<TrialResult> = results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every trial ran"))
        .collect();

    if settings.only_trial.is_some() {
        let (t, r) = (&trials[0], &results[0]);
        eprintln!(
            "trial {}: {} {} [{}]: {}\nfindings: {:#?}\nchild stderr:\n{}\nchild report:\n{}\nthe damaged store is kept in {}",
            t.index,
            images[t.pair.image].name,
            t.file.rel.display(),
            t.file.kind,
            t.damage,
            r.verdict.findings,
            r.run.stderr,
            r.run.said.join("\n"),
            kept_store(t.index).display(),
        );
    }
    let failures = report(
        &settings,
        &images,
        &trials,
        &results,
        sweep_started.elapsed(),
    );
    if !failures.is_empty() && !settings.report_only {
        panic!(
            "{} of {} trials found wrong data, holes, resurrections, silent losses or crashes (listed above; TOPICLOG_SWEEP_REPORT_ONLY=1 reports without failing)",
            failures.len(),
            trials.len()
        );
    }
}

/// Where a single rerun trial (`TOPICLOG_SWEEP_TRIAL`) leaves its damaged store, to inspect.
fn kept_store(index: usize) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("damage-sweep")
        .join(format!("trial-{index}"))
}

/// Print the summary table, every failure with its reproduction, and the distinct failures.
/// Returns the failing trials' indexes.
fn report(
    settings: &Settings,
    images: &[Image],
    trials: &[Trial],
    results: &[TrialResult],
    elapsed: Duration,
) -> Vec<usize> {
    // (row, damage) -> counts per outcome.
    let mut table: BTreeMap<(String, DamageKind), BTreeMap<Outcome, usize>> = BTreeMap::new();
    let mut totals: BTreeMap<Outcome, usize> = BTreeMap::new();
    let mut rows = BTreeSet::new();
    for (t, r) in trials.iter().zip(results) {
        let row = format!("{} {}", images[t.pair.image].name, t.pair.kind);
        *table
            .entry((row.clone(), t.pair.damage))
            .or_default()
            .entry(r.verdict.outcome())
            .or_default() += 1;
        *totals.entry(r.verdict.outcome()).or_default() += 1;
        rows.insert(row);
    }
    let width = rows.iter().map(String::len).max().unwrap_or(0).max(9);
    let mut out = String::new();
    out.push_str(&format!(
        "\ndamage sweep: {} trials in {elapsed:?}, seed {:#x}\n",
        trials.len(),
        settings.seed
    ));
    out.push_str("legend: ");
    for o in Outcome::ALL {
        out.push_str(&format!("{} {o}  ", o.letter()));
    }
    out.push_str("(count then letter; . = no trial)\n");
    out.push_str(&format!("{:width$}", "file kind"));
    for d in DamageKind::ALL {
        out.push_str(&format!(" {:>12}", d.label()));
    }
    out.push('\n');
    for row in &rows {
        out.push_str(&format!("{row:width$}"));
        for d in DamageKind::ALL {
            let cell = table.get(&(row.clone(), d)).map_or_else(
                || ".".to_owned(),
                |counts| {
                    counts
                        .iter()
                        .map(|(o, n)| format!("{n}{}", o.letter()))
                        .collect::<Vec<_>>()
                        .join(" ")
                },
            );
            out.push_str(&format!(" {cell:>12}"));
        }
        out.push('\n');
    }
    out.push_str("totals:");
    for (o, n) in &totals {
        out.push_str(&format!(" {o} {n};"));
    }
    out.push('\n');
    let peak = results.iter().filter_map(|r| r.memory).max_by_key(|m| m.1);
    let slowest = results.iter().map(|r| r.run.elapsed).max();
    out.push_str(&format!(
        "largest child: {peak:?} KiB (address space, resident); slowest child: {slowest:?}\n"
    ));

    // Every failure, one line each, with how to rerun it.
    let mut failures = Vec::new();
    let mut distinct: BTreeMap<(Outcome, String, DamageKind), (usize, usize)> = BTreeMap::new();
    for (i, (t, r)) in trials.iter().zip(results).enumerate() {
        let outcome = r.verdict.outcome();
        if !is_failure(t, outcome) {
            continue;
        }
        failures.push(i);
        let row = format!("{} {}", images[t.pair.image].name, t.pair.kind);
        distinct
            .entry((outcome, row.clone(), t.pair.damage))
            .or_insert((i, 0))
            .1 += 1;
        out.push_str(&format!(
            "FAIL #{} {outcome}: {} {} [{row}] {}: {}{} | rerun: TOPICLOG_SWEEP_SEED={:#x} TOPICLOG_SWEEP_TRIAL={} cargo test --test storage damage::sweep:: -- --nocapture\n",
            t.index,
            images[t.pair.image].name,
            t.file.rel.display(),
            t.damage,
            r.verdict.headline(),
            match r.verdict.findings.len() {
                0 | 1 => String::new(),
                n => format!(" (+{} more findings)", n - 1),
            },
            settings.seed,
            t.index,
        ));
    }
    if !distinct.is_empty() {
        out.push_str(&format!(
            "{} failures in {} distinct (outcome, file kind, damage kind) groups:\n",
            failures.len(),
            distinct.len()
        ));
        for ((outcome, row, damage), (first, count)) in &distinct {
            let (t, r) = (&trials[*first], &results[*first]);
            out.push_str(&format!(
                "  {outcome:<11} {row:width$} {:<11} x{count:<3} e.g. #{}: {}: {}\n",
                damage.label(),
                t.index,
                t.damage,
                r.verdict.headline()
            ));
        }
    }
    eprint!("{out}");
    failures
}
