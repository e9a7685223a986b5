//! `topiclog delete-records`: the log start offset moves, read back with the library.

mod common;
mod store_common;

use common::*;
use store_common::*;
use topiclog::{Record, TopicConfig};

fn store(dir: &std::path::Path) -> String {
    let path = empty_store(dir);
    let s = open(&path);
    let t = s
        .create_topic("orders", TopicConfig::with_partitions(2))
        .unwrap();
    for i in 0..5 {
        t.send_to(1, Record::new(format!("r{i}"))).unwrap();
    }
    s.close().unwrap();
    path.display().to_string()
}

#[test]
fn the_start_offset_moves() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let out = topiclog([
        "delete-records",
        &s,
        "orders",
        "--partition",
        "1",
        "--before-offset",
        "3",
    ]);
    ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("partition: orders-1\tlow_watermark: 3"),
        "{text}"
    );
    {
        let store = open(std::path::Path::new(&s));
        let p = store.topic("orders").unwrap().partition(1).unwrap();
        assert_eq!(p.start_offset(), 3);
        let left: Vec<u64> = records(&p).iter().map(|r| r.offset()).collect();
        assert_eq!(left, [3, 4]);
    }
    // Lower than the start: nothing moves.
    let out = topiclog([
        "delete-records",
        &s,
        "orders",
        "--partition",
        "1",
        "--before-offset",
        "1",
        "--json",
    ]);
    ok(&out);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["type"], "records_deleted");
    assert_eq!(lines[0]["topic"], "orders");
    assert_eq!(lines[0]["partition"], 1);
    assert_eq!(lines[0]["old_low_watermark"], 3);
    assert_eq!(lines[0]["low_watermark"], 3);
    // Up to the end: every record.
    let out = topiclog([
        "delete-records",
        &s,
        "orders",
        "--partition",
        "1",
        "--before-offset",
        "5",
        "--json",
    ]);
    ok(&out);
    assert_eq!(json_lines(&out)[0]["low_watermark"], 5);
    let store = open(std::path::Path::new(&s));
    let topic = store.topic("orders").unwrap();
    assert_eq!(topic.start_offsets(), [0, 5]);
    assert_eq!(topic.end_offsets(), [0, 5]);
}

#[test]
fn bad_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let run = |topic: &str, partition: &str, before: &str| {
        topiclog([
            "delete-records",
            &s,
            topic,
            "--partition",
            partition,
            "--before-offset",
            before,
        ])
    };
    fails_with(&run("orders", "1", "6"), "out of range");
    fails_with(&run("orders", "2", "0"), "no partition 2");
    fails_with(&run("nope", "0", "0"), "nope");
    fails_with(&run("orders", "1", "-1"), "--before-offset");
    let missing = dir.path().join("missing").display().to_string();
    fails_with(
        &topiclog([
            "delete-records",
            &missing,
            "orders",
            "--partition",
            "0",
            "--before-offset",
            "0",
        ]),
        "no such store",
    );
    let store = open(std::path::Path::new(&s));
    assert_eq!(store.topic("orders").unwrap().start_offsets(), [0, 0]);
}
