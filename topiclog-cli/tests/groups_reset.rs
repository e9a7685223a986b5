//! `topiclog groups reset-offsets` and `groups delete`: committed offsets read back with the
//! library.

mod common;
mod store_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use store_common::*;
use topiclog::{OffsetAndMetadata, Record, TopicConfig, TopicPartition};

/// A store with `orders`: partition 0 holds offsets 0-4 (timestamps 1000-1004), partition 1
/// offsets 0-2 (timestamps 2000-2002); group `g` committed 2 and 1.
fn store(dir: &Path) -> PathBuf {
    let path = empty_store(dir);
    let s = open(&path);
    let t = s
        .create_topic("orders", TopicConfig::with_partitions(2))
        .unwrap();
    for i in 0..5 {
        t.send_to(0, Record::new(format!("a{i}")).with_timestamp(1000 + i))
            .unwrap();
    }
    for i in 0..3 {
        t.send_to(1, Record::new(format!("b{i}")).with_timestamp(2000 + i))
            .unwrap();
    }
    s.alter_group_offsets(
        "g",
        &[
            (TopicPartition::new("orders", 0), OffsetAndMetadata::new(2)),
            (TopicPartition::new("orders", 1), OffsetAndMetadata::new(1)),
        ],
    )
    .unwrap();
    s.close().unwrap();
    path
}

/// The committed offsets of `group`, by partition of `orders`.
fn committed(store: &Path, group: &str) -> BTreeMap<u32, u64> {
    open(store)
        .group_lag(group)
        .unwrap()
        .into_iter()
        .filter_map(|l| Some((l.partition.partition, l.committed?.offset)))
        .collect()
}

/// Run reset-offsets with `args` after the store and group, as JSON: (partition, current, new).
fn reset(store: &Path, group: &str, args: &[&str]) -> Vec<(u64, Option<u64>, u64, bool)> {
    let s = store.display().to_string();
    let mut all = vec![
        "groups",
        "reset-offsets",
        &s,
        group,
        "--topic",
        "orders",
        "--json",
    ];
    all.extend_from_slice(args);
    let out = topiclog(&all);
    ok(&out);
    json_lines(&out)
        .iter()
        .map(|l| {
            assert_eq!(l["type"], "offset_reset");
            assert_eq!(l["group"], group);
            assert_eq!(l["topic"], "orders");
            (
                l["partition"].as_u64().unwrap(),
                l["current_offset"].as_u64(),
                l["new_offset"].as_u64().unwrap(),
                l["executed"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let before = committed(&store, "g");
    assert_eq!(before, BTreeMap::from([(0, 2), (1, 1)]));
    assert_eq!(
        reset(&store, "g", &["--to-earliest"]),
        [(0, Some(2), 0, false), (1, Some(1), 0, false)]
    );
    assert_eq!(
        reset(&store, "g", &["--to-latest", "--dry-run"]),
        [(0, Some(2), 5, false), (1, Some(1), 3, false)]
    );
    assert_eq!(committed(&store, "g"), before);

    // Text: a table, and what was (not) done.
    let s = store.display().to_string();
    let out = topiclog([
        "groups",
        "reset-offsets",
        &s,
        "g",
        "--topic",
        "orders",
        "--to-latest",
    ]);
    ok(&out);
    let text = stdout(&out);
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET"
        ]
    );
    let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["g", "orders", "0", "2", "5"]);
    assert!(text.contains("Dry run"), "{text}");
    assert_eq!(committed(&store, "g"), before);
}

#[test]
fn execute_commits_the_new_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    assert_eq!(
        reset(&store, "g", &["--to-latest", "--execute"]),
        [(0, Some(2), 5, true), (1, Some(1), 3, true)]
    );
    assert_eq!(committed(&store, "g"), BTreeMap::from([(0, 5), (1, 3)]));

    reset(&store, "g", &["--shift-by", "-2", "--execute"]);
    assert_eq!(committed(&store, "g"), BTreeMap::from([(0, 3), (1, 1)]));
    // Clamped to the log, as Kafka does.
    reset(
        &store,
        "g",
        &["--shift-by", "-10", "--execute", "--partition", "0"],
    );
    assert_eq!(committed(&store, "g"), BTreeMap::from([(0, 0), (1, 1)]));
    reset(&store, "g", &["--to-offset", "100", "--execute"]);
    assert_eq!(committed(&store, "g"), BTreeMap::from([(0, 5), (1, 3)]));
    reset(
        &store,
        "g",
        &["--to-offset", "1", "--partition", "1", "--execute"],
    );
    assert_eq!(committed(&store, "g"), BTreeMap::from([(0, 5), (1, 1)]));

    // A group with no commits yet gets them.
    assert_eq!(
        reset(&store, "new", &["--to-earliest", "--execute"]),
        [(0, None, 0, true), (1, None, 0, true)]
    );
    assert_eq!(committed(&store, "new"), BTreeMap::from([(0, 0), (1, 0)]));
}

#[test]
fn to_datetime_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // 1003 ms after the epoch: offset 3 of partition 0; every record of partition 1 is later.
    for time in [
        "1003",
        "1970-01-01T00:00:01.003Z",
        "1970-01-01T01:00:01.003+01:00",
    ] {
        assert_eq!(
            reset(&store, "g", &["--to-datetime", time]),
            [(0, Some(2), 3, false), (1, Some(1), 0, false)],
            "{time}"
        );
    }
    // After every record: the end offset.
    assert_eq!(
        reset(
            &store,
            "g",
            &["--to-datetime", "2030-01-01T00:00:00Z", "--execute"]
        ),
        [(0, Some(2), 5, true), (1, Some(1), 3, true)]
    );
    let s = store.display().to_string();
    fails_with(
        &topiclog([
            "groups",
            "reset-offsets",
            &s,
            "g",
            "--topic",
            "orders",
            "--to-datetime",
            "yesterday",
        ]),
        "RFC 3339",
    );
}

#[test]
fn bad_input_exits_2_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let s = store.display().to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["groups", "reset-offsets", &s, "g"];
        all.extend_from_slice(args);
        topiclog(&all)
    };
    fails_with(
        &run(&["--topic", "nope", "--to-earliest", "--execute"]),
        "nope",
    );
    fails_with(
        &run(&[
            "--topic",
            "orders",
            "--partition",
            "7",
            "--to-earliest",
            "--execute",
        ]),
        "no partition 7",
    );
    // One specification, exactly.
    fails_with(&run(&["--topic", "orders", "--execute"]), "--to-earliest");
    fails_with(
        &run(&["--topic", "orders", "--to-earliest", "--to-latest"]),
        "cannot be used with",
    );
    fails_with(
        &run(&[
            "--topic",
            "orders",
            "--to-earliest",
            "--dry-run",
            "--execute",
        ]),
        "cannot be used with",
    );
    assert_eq!(committed(&store, "g"), BTreeMap::from([(0, 2), (1, 1)]));
    // Shifting needs a committed offset.
    let out = topiclog([
        "groups",
        "reset-offsets",
        &s,
        "other",
        "--topic",
        "orders",
        "--shift-by",
        "1",
    ]);
    fails_with(&out, "no committed offset");
}

#[test]
fn a_dry_run_on_a_store_without_commits_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = empty_store(dir.path());
    open(&store)
        .create_topic("orders", TopicConfig::with_partitions(1))
        .unwrap();
    assert_eq!(reset(&store, "g", &["--to-latest"]), [(0, None, 0, false)]);
    assert!(!store.join("__consumer_offsets").exists());
    assert!(open(&store).groups().unwrap().is_empty());
}

#[test]
fn delete_removes_every_commit_of_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    reset(&store, "other", &["--to-earliest", "--execute"]);
    let s = store.display().to_string();
    let out = topiclog(["groups", "delete", &s, "g", "--json"]);
    ok(&out);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["type"], "group_deleted");
    assert_eq!(lines[0]["offsets"], 2);
    assert_eq!(open(&store).groups().unwrap(), ["other"]);
    assert!(committed(&store, "g").is_empty());
    fails_with(&topiclog(["groups", "delete", &s, "g"]), "does not exist");
}
