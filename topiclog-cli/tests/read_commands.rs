//! The read-only commands (`topics list|describe`, `consume`, `groups list|describe`, `stats`)
//! on a store this test process holds open as its writer: they run beside it (another process,
//! no lock taken), see what it wrote, follow what it writes next, and refuse what needs the
//! writer (`consume --group`).

mod common;
mod store_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use store_common::*;
use topiclog::{AutoOffsetReset, ConsumerConfig, Record, Store, TopicConfig};

/// A store held by this process: topic `orders` (2 partitions) with keys `k0..k4` in partition
/// 0 and `k5` in partition 1, group `billing` committed at 3 on partition 0.
fn live_store(dir: &std::path::Path) -> (Store, String) {
    let path = dir.join("store");
    let store = open(&path);
    let orders = store
        .create_topic("orders", TopicConfig::with_partitions(2))
        .unwrap();
    for i in 0..5 {
        let r = Record::new(format!("v{i}"))
            .with_key(format!("k{i}"))
            .with_timestamp(1_000 + i);
        orders.send_to(0, r).unwrap();
    }
    orders
        .send_to(1, Record::new("v5").with_key("k5").with_timestamp(2_000))
        .unwrap();
    let tp = topiclog::TopicPartition::new("orders", 0);
    store
        .alter_group_offsets("billing", &[(tp, topiclog::OffsetAndMetadata::new(3))])
        .unwrap();
    (store, path.display().to_string())
}

#[test]
fn topics_list_and_describe_beside_a_live_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = live_store(dir.path());
    let out = topiclog(["topics", "list", &path]);
    ok(&out);
    assert_eq!(stdout(&out), "orders\n");
    let out = topiclog(["topics", "describe", &path, "orders", "--json"]);
    ok(&out);
    let lines = json_lines(&out);
    let topic = of_type(&lines, "topic");
    assert_eq!(topic.len(), 1);
    assert_eq!(topic[0]["partitions"], 2);
    let config = topic[0]["config"].as_array().unwrap();
    assert!(config
        .iter()
        .any(|kv| kv[0] == "cleanup.policy" && kv[1] == "delete"));
    let parts = of_type(&lines, "partition");
    let ends: Vec<_> = parts
        .iter()
        .map(|p| p["end_offset"].as_u64().unwrap())
        .collect();
    assert_eq!(ends, vec![5, 1]);
    assert!(parts.iter().all(|p| p["segments"] == 1));
    // The writer is untouched: it goes on appending.
    store
        .topic("orders")
        .unwrap()
        .send_to(1, Record::new("more"))
        .unwrap();
    let out = topiclog(["stats", &path, "--json"]);
    ok(&out);
    let lines = json_lines(&out);
    let head = of_type(&lines, "store");
    assert_eq!(head[0]["records"], 7);
    let held = head[0]["writer"].as_str().unwrap();
    assert!(held.contains("held for writing by"), "{held}");
    store.close().unwrap();
}

#[test]
fn consume_prints_records_from_every_start_position() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = live_store(dir.path());
    let out = topiclog(["consume", &path, "orders", "--print-key", "--print-offset"]);
    ok(&out);
    assert_eq!(
        stdout(&out),
        "0:0\tk0\tv0\n0:1\tk1\tv1\n0:2\tk2\tv2\n0:3\tk3\tv3\n0:4\tk4\tv4\n1:0\tk5\tv5\n"
    );
    let out = topiclog([
        "consume",
        &path,
        "orders",
        "--partition",
        "0",
        "--offset",
        "3",
    ]);
    ok(&out);
    assert_eq!(stdout(&out), "v3\nv4\n");
    let out = topiclog([
        "consume",
        &path,
        "orders",
        "--time",
        "1002",
        "--max-records",
        "2",
    ]);
    ok(&out);
    assert_eq!(stdout(&out), "v2\nv3\n");
    let out = topiclog([
        "consume",
        &path,
        "orders",
        "--partition",
        "1",
        "--format",
        "json",
    ]);
    ok(&out);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["offset"], 0);
    assert_eq!(lines[0]["timestamp"], 2000);
    assert_eq!(lines[0]["key"]["utf8"], "k5");
    let out = topiclog([
        "consume",
        &path,
        "orders",
        "--partition",
        "1",
        "--format",
        "hex",
    ]);
    ok(&out);
    assert_eq!(stdout(&out), "0x7635\n");
    store.close().unwrap();
}

#[test]
fn consume_follow_sees_what_the_writer_appends_next() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = live_store(dir.path());
    let child = Command::new(env!("CARGO_BIN_EXE_topiclog"))
        .args(["consume", &path, "orders", "--partition", "0", "--follow"])
        .args(["--max-records", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // --follow starts at the end: only what comes next is printed.
    std::thread::sleep(Duration::from_millis(300));
    let orders = store.topic("orders").unwrap();
    orders.send_to(0, Record::new("next-1")).unwrap();
    orders.send_to(0, Record::new("next-2")).unwrap();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    ok(&out);
    assert_eq!(stdout(&out), "next-1\nnext-2\n");
    store.close().unwrap();
}

#[test]
fn groups_list_and_describe_read_the_writers_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = live_store(dir.path());
    let out = topiclog(["groups", "list", &path]);
    ok(&out);
    assert_eq!(stdout(&out), "billing\n");
    let out = topiclog(["groups", "describe", &path, "billing", "--json"]);
    ok(&out);
    let lines = json_lines(&out);
    let rows: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l["partition"].as_u64(),
                l["current_offset"].as_u64(),
                l["log_end_offset"].as_u64(),
                l["lag"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (Some(0), Some(3), Some(5), Some(2)),
            (Some(1), None, Some(1), None)
        ]
    );
    let out = topiclog(["groups", "describe", &path, "billing"]);
    ok(&out);
    let text = stdout(&out);
    assert!(text.starts_with(" GROUP"), "{text}");
    assert!(text.contains("LAG"), "{text}");
    fails_with(
        &topiclog(["groups", "describe", &path, "nobody"]),
        "no committed offsets",
    );
    store.close().unwrap();
}

#[test]
fn consume_as_a_group_member_needs_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = live_store(dir.path());
    let out = topiclog(["consume", &path, "orders", "--group", "g2"]);
    fails_with(&out, "open read-only");
    let message = stderr(&out);
    assert!(
        message.contains(&format!("process {}", std::process::id())),
        "names the holder: {message}"
    );
    store.close().unwrap();
    // Once the writer is gone, the command is the writer: it consumes and commits.
    let out = topiclog([
        "consume",
        &path,
        "orders",
        "--group",
        "g2",
        "--max-records",
        "3",
    ]);
    ok(&out);
    let store = open(std::path::Path::new(&path));
    let mut c = store
        .consumer(ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::Earliest,
            ..ConsumerConfig::group("g2")
        })
        .unwrap();
    let committed = c
        .committed(&topiclog::TopicPartition::new("orders", 0))
        .unwrap();
    assert_eq!(committed.map(|c| c.offset), Some(3));
    c.close().unwrap();
    store.close().unwrap();
}

#[test]
fn bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = live_store(dir.path());
    let missing = dir.path().join("missing").display().to_string();
    fails_with(&topiclog(["topics", "list", &missing]), "no such store");
    fails_with(&topiclog(["stats", &missing]), "no such store");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails_with(
        &topiclog(["consume", empty.to_str().unwrap(), "orders"]),
        "not a topiclog store",
    );
    fails_with(&topiclog(["consume", &path, "nope"]), "nope");
    fails_with(&topiclog(["topics", "describe", &path, "nope"]), "nope");
    fails_with(
        &topiclog(["consume", &path, "orders", "--partition", "7"]),
        "partition",
    );
    // --offset needs --partition: a usage error from the argument parser.
    let out = topiclog(["consume", &path, "orders", "--offset", "1"]);
    assert_eq!(out.status.code(), Some(2));
    fails_with(
        &topiclog([
            "consume",
            &path,
            "orders",
            "--partition",
            "0",
            "--offset",
            "99",
        ]),
        "out of range",
    );
    store.close().unwrap();
}

#[test]
fn perf_consume_reads_beside_a_live_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = live_store(dir.path());
    let out = topiclog([
        "perf",
        "consume",
        &path,
        "orders",
        "--num-records",
        "6",
        "--json",
    ]);
    ok(&out);
    let lines = json_lines(&out);
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary", "{lines:?}");
    assert_eq!(summary["records"], 6, "{summary}");
    // As a group member it would commit: the writer's job.
    let out = topiclog([
        "perf",
        "consume",
        &path,
        "orders",
        "--num-records",
        "6",
        "--group",
        "p",
    ]);
    fails_with(&out, "already open");
    store.close().unwrap();
}

#[test]
fn export_kafka_beside_a_live_writer_copies_what_it_made_visible() {
    let dir = tempfile::tempdir().unwrap();
    let (store, path) = live_store(dir.path());
    let kafka = dir.path().join("kafka").display().to_string();
    let out = topiclog(["export-kafka", &path, &kafka, "--json"]);
    ok(&out);
    assert!(
        stderr(&out).contains("exporting read-only"),
        "{}",
        stderr(&out)
    );
    let lines = json_lines(&out);
    assert!(lines.iter().any(|l| l["end_offset"] == 5), "{lines:?}");
    // What was exported imports into a new store with the same records.
    let copy = dir.path().join("copy").display().to_string();
    ok(&topiclog(["import-kafka", &kafka, &copy, "--create-store"]));
    let out = topiclog(["consume", &copy, "orders", "--print-key", "--print-offset"]);
    ok(&out);
    assert_eq!(
        stdout(&out),
        "0:0\tk0\tv0\n0:1\tk1\tv1\n0:2\tk2\tv2\n0:3\tk3\tv3\n0:4\tk4\tv4\n1:0\tk5\tv5\n"
    );
    store.close().unwrap();
}
