//! `topiclog topics create | delete | alter-config | add-partitions`, checked with the library,
//! and what every store command refuses: a missing store, a directory that is no store, a store
//! another process holds.

mod common;
mod store_common;

use std::time::Duration;

use common::*;
use store_common::*;
use topiclog::{CleanupPolicy, Retention, TopicConfig};

#[test]
fn create_makes_the_topic_with_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let store = empty_store(dir.path());
    let s = store.display().to_string();
    let out = topiclog([
        "topics",
        "create",
        &s,
        "orders",
        "--partitions",
        "3",
        "--config",
        "retention.ms=60000",
        "--config",
        "cleanup.policy=compact",
        "--json",
    ]);
    ok(&out);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "topic_created");
    assert_eq!(lines[0]["partitions"], 3);
    assert_eq!(lines[0]["config"]["retention.ms"], "60000");

    let store = open(&store);
    let topic = store.topic("orders").unwrap();
    assert_eq!(topic.partition_count(), 3);
    assert_eq!(
        topic.config().retention,
        Retention::After(Duration::from_secs(60))
    );
    assert_eq!(topic.config().cleanup_policy, CleanupPolicy::Compact);
}

#[test]
fn create_refuses_bad_configs_and_existing_topics() {
    let dir = tempfile::tempdir().unwrap();
    let store = empty_store(dir.path());
    let s = store.display().to_string();
    let create = |extra: &[&str]| {
        let mut args = vec!["topics", "create", &s, "orders", "--partitions", "1"];
        args.extend_from_slice(extra);
        topiclog(args)
    };
    fails_with(
        &create(&["--config", "retention.hours=1"]),
        "retention.hours",
    );
    fails_with(&create(&["--config", "retention.ms=soon"]), "retention.ms");
    fails_with(&create(&["--config", "retention.ms"]), "key=value");
    // Values are checked by the library's validation too, not just parsed.
    fails_with(&create(&["--config", "segment.bytes=0"]), "segment");
    fails_with(
        &topiclog(["topics", "create", &s, "orders", "--partitions", "0"]),
        "partitions",
    );
    fails_with(
        &topiclog(["topics", "create", &s, "bad/name", "--partitions", "1"]),
        "bad/name",
    );
    assert!(open(&store).topics().is_empty());

    ok(&create(&[]));
    fails_with(&create(&[]), "orders");
}

#[test]
fn delete_removes_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let store = empty_store(dir.path());
    {
        let st = open(&store);
        st.create_topic("orders", TopicConfig::with_partitions(2))
            .unwrap();
        st.create_topic("keep", TopicConfig::with_partitions(1))
            .unwrap();
    }
    let s = store.display().to_string();
    let out = topiclog(["topics", "delete", &s, "orders"]);
    ok(&out);
    assert!(stdout(&out).contains("Deleted topic orders"));
    assert_eq!(open(&store).topics(), ["keep"]);
    fails_with(&topiclog(["topics", "delete", &s, "orders"]), "orders");
}

#[test]
fn alter_config_sets_and_deletes_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let store = empty_store(dir.path());
    let default_segment_bytes;
    {
        let st = open(&store);
        default_segment_bytes = st.options().log.segment_bytes;
        let mut config = TopicConfig::with_partitions(1);
        config.overrides.segment_bytes = Some(1 << 20);
        st.create_topic("orders", config).unwrap();
    }
    let s = store.display().to_string();
    let out = topiclog([
        "topics",
        "alter-config",
        &s,
        "orders",
        "--set",
        "retention.ms=-1",
        "--set",
        "cleanup.policy=compact,delete",
        "--delete",
        "segment.bytes",
        "--json",
    ]);
    ok(&out);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["type"], "topic_config_altered");
    assert_eq!(lines[0]["deleted"][0], "segment.bytes");
    let config = open(&store).topic("orders").unwrap().config();
    assert_eq!(config.retention, Retention::Forever);
    assert_eq!(config.cleanup_policy, CleanupPolicy::CompactDelete);
    assert_eq!(config.segment_bytes, default_segment_bytes);

    // Bad keys and values change nothing.
    for args in [
        &["--set", "retention.hours=1"][..],
        &["--set", "preallocate=maybe"],
        &["--delete", "nope"],
        &["--set", "min.cleanable.dirty.ratio=2"],
    ] {
        let mut all = vec!["topics", "alter-config", &s, "orders"];
        all.extend_from_slice(args);
        let out = topiclog(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    assert_eq!(open(&store).topic("orders").unwrap().config(), config);
    fails_with(&topiclog(["topics", "alter-config", &s, "orders"]), "--set");
    fails_with(
        &topiclog([
            "topics",
            "alter-config",
            &s,
            "nope",
            "--set",
            "retention.ms=1",
        ]),
        "nope",
    );
}

#[test]
fn add_partitions_grows_and_never_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let store = empty_store(dir.path());
    open(&store)
        .create_topic("orders", TopicConfig::with_partitions(1))
        .unwrap();
    let s = store.display().to_string();
    let out = topiclog([
        "topics",
        "add-partitions",
        &s,
        "orders",
        "--partitions",
        "3",
        "--json",
    ]);
    ok(&out);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["old_partitions"], 1);
    assert_eq!(lines[0]["partitions"], 3);
    assert_eq!(open(&store).topic("orders").unwrap().partition_count(), 3);
    fails_with(
        &topiclog([
            "topics",
            "add-partitions",
            &s,
            "orders",
            "--partitions",
            "2",
        ]),
        "only grow",
    );
    fails_with(
        &topiclog(["topics", "add-partitions", &s, "nope", "--partitions", "2"]),
        "nope",
    );
}

#[test]
fn a_missing_store_is_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let m = missing.display().to_string();
    fails_with(
        &topiclog(["topics", "create", &m, "orders", "--partitions", "1"]),
        "no such store directory",
    );
    fails_with(
        &topiclog(["topics", "delete", &m, "orders"]),
        "no such store",
    );
    assert!(!missing.exists());

    // An empty directory is no store either.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = empty.display().to_string();
    fails_with(
        &topiclog(["topics", "create", &e, "orders", "--partitions", "1"]),
        "not a topiclog store",
    );
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // Unless asked for.
    ok(&topiclog([
        "topics",
        "create",
        &m,
        "orders",
        "--partitions",
        "2",
        "--create-store",
    ]));
    assert_eq!(open(&missing).topic("orders").unwrap().partition_count(), 2);
}

#[test]
fn a_store_held_by_another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = empty_store(dir.path());
    let held = open(&store);
    held.create_topic("orders", TopicConfig::with_partitions(1))
        .unwrap();
    let s = store.display().to_string();
    for args in [
        vec!["topics", "create", &s, "other", "--partitions", "1"],
        vec!["topics", "delete", &s, "orders"],
        vec![
            "topics",
            "alter-config",
            &s,
            "orders",
            "--set",
            "retention.ms=1",
        ],
        vec![
            "topics",
            "add-partitions",
            &s,
            "orders",
            "--partitions",
            "2",
        ],
        vec![
            "delete-records",
            &s,
            "orders",
            "--partition",
            "0",
            "--before-offset",
            "0",
        ],
        vec![
            "groups",
            "reset-offsets",
            &s,
            "g",
            "--topic",
            "orders",
            "--to-earliest",
        ],
        vec!["groups", "delete", &s, "g"],
    ] {
        let out = topiclog(&args);
        fails_with(&out, "in use by another process");
        assert!(stderr(&out).contains("exclusive access"), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(held.topics(), ["orders"]);
    assert_eq!(held.topic("orders").unwrap().partition_count(), 1);
}
