//! `topiclog export-kafka` and `import-kafka`: a round trip keeps every record's offset, key,
//! value, headers and timestamp.

mod common;
mod store_common;

use std::path::Path;

use common::*;
use store_common::*;
use topiclog::{Record, Retention, TopicConfig};

/// What a record holds, to compare across stores.
type Content = (
    u64,
    i64,
    Option<String>,
    Option<String>,
    Vec<(String, String)>,
);

fn content(store: &Path, topic: &str) -> Vec<Vec<Content>> {
    let s = open(store);
    s.topic(topic)
        .unwrap()
        .partitions()
        .iter()
        .map(|p| {
            records(p)
                .iter()
                .map(|r| {
                    (
                        r.offset(),
                        r.timestamp(),
                        text(r.key()),
                        text(r.value()),
                        headers(r),
                    )
                })
                .collect()
        })
        .collect()
}

/// A store with `orders` (2 partitions, keyed records with headers; partition 1's first record
/// deleted) and `other` (1 record).
fn source_store(dir: &Path) -> std::path::PathBuf {
    let path = empty_store(dir);
    let s = open(&path);
    let orders = s
        .create_topic("orders", TopicConfig::with_partitions(2))
        .unwrap();
    for i in 0..6u32 {
        let record = Record::new(format!("value-{i}"))
            .with_key(format!("key-{i}"))
            .with_header("n", topiclog::Bytes::from(i.to_string()))
            .with_timestamp(1_700_000_000_000 + i64::from(i));
        orders.send_to(i % 2, record).unwrap();
    }
    orders.partition(1).unwrap().delete_records(1).unwrap();
    s.create_topic("other", TopicConfig::with_partitions(1))
        .unwrap()
        .send(Record::new("x"))
        .unwrap();
    s.close().unwrap();
    path
}

#[test]
fn export_then_import_round_trips_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let source = source_store(dir.path());
    let kafka = dir.path().join("kafka");
    let (s, k) = (source.display().to_string(), kafka.display().to_string());
    let out = topiclog(["export-kafka", &s, &k, "--topic", "orders", "--json"]);
    ok(&out);
    // No progress bar drawn when standard error is not a terminal.
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let lines = json_lines(&out);
    let exported = of_type(&lines, "partition_exported");
    assert_eq!(exported.len(), 2);
    assert_eq!(exported[1]["partition"], 1);
    assert_eq!(exported[1]["start_offset"], 1);
    assert_eq!(exported[1]["end_offset"], 3);
    assert_eq!(of_type(&lines, "exported")[0]["partitions"], 2);
    assert!(kafka.join("orders-0/00000000000000000000.log").exists());
    assert!(!kafka.join("other-0").exists());

    // Into a store that does not exist yet.
    let target = dir.path().join("target");
    let t = target.display().to_string();
    fails_with(&topiclog(["import-kafka", &k, &t]), "no such store");
    assert!(!target.exists());
    let out = topiclog([
        "import-kafka",
        &k,
        &t,
        "--create-store",
        "--config",
        "retention.ms=-1",
        "--json",
    ]);
    ok(&out);
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(of_type(&lines, "partition_imported").len(), 2);
    assert_eq!(of_type(&lines, "imported")[0]["topics"][0], "orders");

    assert_eq!(content(&target, "orders"), content(&source, "orders"));
    assert_eq!(content(&target, "orders")[0].len(), 3);
    let imported = open(&target);
    assert_eq!(imported.topics(), ["orders"]);
    let p1 = imported.topic("orders").unwrap().partition(1).unwrap();
    assert_eq!((p1.start_offset(), p1.end_offset()), (1, 3));
    assert_eq!(
        imported.topic("orders").unwrap().config().retention,
        Retention::Forever
    );
}

#[test]
fn text_output_names_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let source = source_store(dir.path());
    let kafka = dir.path().join("kafka");
    let (s, k) = (source.display().to_string(), kafka.display().to_string());
    let out = topiclog(["export-kafka", &s, &k]);
    ok(&out);
    let text = stdout(&out);
    for name in ["orders-0", "orders-1", "other-0"] {
        assert!(text.contains(&format!("Exported {name}:")), "{text}");
    }
    assert!(text.contains("Exported 3 partitions of 2 topics"), "{text}");

    let target = empty_store(&dir.path().join("t"));
    let t = target.display().to_string();
    let out = topiclog([
        "import-kafka",
        &k,
        &t,
        "--topic",
        "other",
        "--no-hard-links",
    ]);
    ok(&out);
    let text = stdout(&out);
    assert!(text.contains("Imported other-0 from"), "{text}");
    assert!(
        text.contains("Imported 1 partitions of 1 topics: other."),
        "{text}"
    );
    assert_eq!(open(&target).topics(), ["other"]);
}

#[test]
fn bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let source = source_store(dir.path());
    let kafka = dir.path().join("kafka");
    let (s, k) = (source.display().to_string(), kafka.display().to_string());
    fails_with(
        &topiclog(["export-kafka", &s, &k, "--topic", "nope"]),
        "nope",
    );
    ok(&topiclog(["export-kafka", &s, &k, "--topic", "other"]));
    // A partition already in the Kafka log directory.
    fails_with(
        &topiclog(["export-kafka", &s, &k, "--topic", "other"]),
        "other-0",
    );
    // Importing a topic the store has, a topic the directory lacks, a bad config, no directory.
    fails_with(&topiclog(["import-kafka", &k, &s]), "other");
    let target = empty_store(&dir.path().join("t"));
    let t = target.display().to_string();
    fails_with(
        &topiclog(["import-kafka", &k, &t, "--topic", "orders"]),
        "orders",
    );
    fails_with(
        &topiclog(["import-kafka", &k, &t, "--config", "retention.days=1"]),
        "retention.days",
    );
    let missing = dir.path().join("missing").display().to_string();
    fails_with(
        &topiclog(["import-kafka", &missing, &t]),
        "no such Kafka log directory",
    );
    assert!(open(&target).topics().is_empty());
    // The store in use by another process.
    let _held = open(&target);
    fails_with(
        &topiclog(["import-kafka", &k, &t]),
        "in use by another process",
    );
}
