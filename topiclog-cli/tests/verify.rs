//! `topiclog verify` over whole stores, one topic or partition, damaged files, and a store a
//! writer holds open.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use topiclog::{LogConfig, Record, Store, StoreOptions, TopicConfig};

/// Batches appended to each partition, and records per batch.
const BATCHES: u64 = 30;
const PER_BATCH: u64 = 4;

fn options() -> StoreOptions {
    StoreOptions {
        log: LogConfig {
            // Several segments per partition, an index entry for every batch.
            segment_bytes: 2048,
            index_interval_bytes: 1,
            ..LogConfig::default()
        },
        ..StoreOptions::default()
    }
}

/// A store with topic `events` of two partitions, each `BATCHES` batches of `PER_BATCH` records;
/// left open (the caller closes it, or keeps it as a live writer).
fn open_store(dir: &Path) -> Store {
    let store = Store::open_with(dir, options()).unwrap();
    let topic = store
        .create_topic("events", TopicConfig::with_partitions(2))
        .unwrap();
    for p in 0..2 {
        let partition = topic.partition(p).unwrap();
        for b in 0..BATCHES {
            let records: Vec<Record> = (0..PER_BATCH)
                .map(|i| Record::new(format!("value-{p}-{b}-{i}")).with_key(format!("k{i}")))
                .collect();
            partition.append_batch(&records).unwrap();
        }
    }
    store
}

fn write_store(dir: &Path) {
    open_store(dir).close().unwrap();
}

fn verify(args: &[&str]) -> std::process::Output {
    topiclog(std::iter::once("verify").chain(args.iter().copied()))
}

fn summary(output: &std::process::Output) -> serde_json::Value {
    let lines = json_lines(output);
    let summaries = of_type(&lines, "summary");
    assert_eq!(summaries.len(), 1, "{output:?}");
    summaries[0].clone()
}

/// The segment files of a partition, sorted (the first is the oldest, sealed).
fn segment_logs(partition: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(partition)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_clean_store_is_sound_and_every_batch_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let out = verify(&["--json", path_str(dir.path())]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = summary(&out);
    assert_eq!(s["topics"], 1, "{s}");
    assert_eq!(s["partitions"], 2, "{s}");
    assert_eq!(s["batches"], 2 * BATCHES, "{s}");
    assert_eq!(s["records"], 2 * BATCHES * PER_BATCH, "{s}");
    assert_eq!(s["damage"], 0, "{s}");
    assert_eq!(s["sound"], true, "{s}");
    let segments = segment_logs(&dir.path().join("events/0")).len()
        + segment_logs(&dir.path().join("events/1")).len();
    assert!(segments >= 4, "small segments roll: {segments}");
    assert_eq!(s["segments"], segments as u64, "{s}");
    assert!(
        s["bytes"].as_u64().unwrap() > 2 * BATCHES * PER_BATCH * 10,
        "{s}"
    );

    let text = verify(&[path_str(dir.path())]);
    assert_eq!(text.status.code(), Some(0), "{text:?}");
    let last = stdout(&text).lines().last().unwrap().to_owned();
    assert!(
        last.starts_with("Checked 1 topics, 2 partitions") && last.contains("sound"),
        "{last}"
    );
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_damage_naming_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let logs = segment_logs(&dir.path().join("events/0"));
    let sealed = &logs[0];
    let mut bytes = std::fs::read(sealed).unwrap();
    // The first batch's last byte: inside its last record's value.
    let first_batch_len = 12 + u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
    bytes[first_batch_len - 1] ^= 0x20;
    std::fs::write(sealed, &bytes).unwrap();

    let out = verify(&["--json", path_str(dir.path())]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    let damage = of_type(&lines, "damage");
    assert_eq!(damage.len(), 1, "{lines:?}");
    assert_eq!(damage[0]["file"], path_str(sealed));
    assert_eq!(damage[0]["position"], 0);
    assert!(
        damage[0]["message"]
            .as_str()
            .unwrap()
            .contains("CRC mismatch"),
        "{damage:?}"
    );
    assert_eq!(summary(&out)["sound"], false);

    let text = stdout(&verify(&[path_str(dir.path())]));
    assert!(
        text.contains(&format!(
            "DAMAGE {} at position 0: CRC mismatch",
            sealed.display()
        )),
        "{text}"
    );
}

#[test]
fn a_damaged_index_entry_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let index = segment_logs(&dir.path().join("events/1"))[0].with_extension("index");
    let mut bytes = std::fs::read(&index).unwrap();
    assert!(bytes.len() >= 16, "entries for several batches");
    // Entry 1's position, moved into the middle of a batch.
    bytes[15] ^= 0x01;
    std::fs::write(&index, &bytes).unwrap();

    let out = verify(&["--json", path_str(dir.path())]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    let damage = of_type(&lines, "damage");
    assert_eq!(damage.len(), 1, "{lines:?}");
    assert_eq!(damage[0]["file"], path_str(&index));
    assert_eq!(damage[0]["position"], 8);
    assert!(
        damage[0]["message"]
            .as_str()
            .unwrap()
            .contains("no batch of the log starts at position"),
        "{damage:?}"
    );
}

#[test]
fn a_missing_store_or_target_cannot_be_verified() {
    let dir = tempfile::tempdir().unwrap();
    let out = verify(&[path_str(&dir.path().join("none"))]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such store directory"));
    // A directory that holds no store.
    std::fs::write(dir.path().join("file"), "x").unwrap();
    assert_eq!(verify(&[path_str(dir.path())]).status.code(), Some(2));

    write_store(&dir.path().join("store"));
    let store = dir.path().join("store");
    for target in ["nope", "events/7", "events/x"] {
        let out = verify(&[path_str(&store), target]);
        assert_eq!(out.status.code(), Some(2), "{target}: {out:?}");
    }
}

#[test]
fn one_partition_is_checked_alone() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    // Damage partition 1 only.
    let sealed = &segment_logs(&dir.path().join("events/1"))[0];
    let mut bytes = std::fs::read(sealed).unwrap();
    bytes[70] ^= 0xff;
    std::fs::write(sealed, &bytes).unwrap();

    let out = verify(&["--json", path_str(dir.path()), "events/0"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = summary(&out);
    assert_eq!(
        (s["topics"].clone(), s["partitions"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(s["batches"], BATCHES, "{s}");
    assert_eq!(s["records"], BATCHES * PER_BATCH, "{s}");

    let out = verify(&["--json", path_str(dir.path()), "events/1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(summary(&out)["partitions"], 1);
    // The whole topic: both partitions, the damage found.
    let out = verify(&["--json", path_str(dir.path()), "events"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(summary(&out)["partitions"], 2);
}

#[test]
fn a_store_held_open_by_a_writer_verifies_sound() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let topic = store.topic("events").unwrap();
    // More appends after the setup's, not closed: the active segment is preallocated and its
    // index lives in memory.
    for i in 0..5 {
        topic.send(Record::new(format!("late-{i}"))).unwrap();
    }
    let before = std::fs::read_dir(dir.path().join("events/0"))
        .unwrap()
        .count();
    let out = verify(&["--json", path_str(dir.path())]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = summary(&out);
    assert_eq!(s["records"], 2 * BATCHES * PER_BATCH + 5, "{s}");
    // Nothing written: the writer goes on as before.
    assert_eq!(
        std::fs::read_dir(dir.path().join("events/0"))
            .unwrap()
            .count(),
        before
    );
    topic.send(Record::new("after")).unwrap();
    store.close().unwrap();
    let out = verify(&["--json", path_str(dir.path())]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(summary(&out)["records"], 2 * BATCHES * PER_BATCH + 6);
}

#[test]
fn a_missing_segment_is_a_gap_unless_kafka_left_it() {
    use topiclog::internals::format::meta::{AdoptedLog, Encode};
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let partition = dir.path().join("events/0");
    let logs = segment_logs(&partition);
    assert!(logs.len() >= 3, "{logs:?}");
    for ext in ["log", "index", "timeindex"] {
        std::fs::remove_file(logs[1].with_extension(ext)).unwrap();
    }
    let out = verify(&["--json", path_str(dir.path()), "events/0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    let damage = of_type(&lines, "damage");
    assert_eq!(damage.len(), 1, "{lines:?}");
    assert_eq!(damage[0]["file"], path_str(&logs[2]));
    assert_eq!(damage[0]["position"], 0);
    assert!(
        damage[0]["message"]
            .as_str()
            .unwrap()
            .contains("are missing before this batch"),
        "{damage:?}"
    );

    // Below a `kafka-adopted` marker's offset, gaps are Kafka's compaction's: legal.
    let marker = AdoptedLog {
        gaps_below: BATCHES * PER_BATCH,
        log_start: 0,
        compacted: true,
        adopting: false,
        segment_ends: Vec::new(),
    };
    std::fs::write(partition.join("kafka-adopted"), marker.encode_to_vec()).unwrap();
    let out = verify(&["--json", path_str(dir.path()), "events/0"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A damaged marker is damage.
    std::fs::write(partition.join("kafka-adopted"), b"TLKA junk").unwrap();
    let out = verify(&["--json", path_str(dir.path()), "events/0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    assert!(of_type(&lines, "damage")
        .iter()
        .any(|d| d["file"] == path_str(&partition.join("kafka-adopted"))));
}

#[test]
fn a_damaged_topic_conf_or_checkpoint_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let conf = dir.path().join("events/topic.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace("partitions=2", "partitions=3")).unwrap();
    let checkpoint = dir.path().join("events/1/checkpoint");
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&checkpoint, &bytes).unwrap();

    let out = verify(&["--json", path_str(dir.path())]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    let files: Vec<&str> = of_type(&lines, "damage")
        .iter()
        .map(|d| d["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, [path_str(&conf), path_str(&checkpoint)], "{lines:?}");
    assert_eq!(summary(&out)["damage"], 2);
}
