//! `topiclog produce`: lines of standard input become records, read back with the library.

mod common;
mod store_common;

use common::*;
use store_common::*;
use topiclog::TopicConfig;

fn store_with_topic(dir: &std::path::Path, partitions: u32) -> String {
    let store = empty_store(dir);
    open(&store)
        .create_topic("orders", TopicConfig::with_partitions(partitions))
        .unwrap();
    store.display().to_string()
}

#[test]
fn lines_become_records_with_keys_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_topic(dir.path(), 1);
    let out = topiclog_with_input(
        [
            "produce",
            &s,
            "orders",
            "--key-separator",
            "::",
            "--header",
            "source=cli",
            "--header",
            "h=a=b",
            "--json",
        ],
        "k1::v1\nk2::v2::more\r\n::empty key\nk4::",
    );
    ok(&out);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["type"], "produced");
    assert_eq!(lines[0]["records"], 4);
    assert_eq!(lines[0]["partitions"][0]["partition"], 0);
    assert_eq!(lines[0]["partitions"][0]["first_offset"], 0);
    assert_eq!(lines[0]["partitions"][0]["last_offset"], 3);

    let store = open(std::path::Path::new(&s));
    let got = records(&store.topic("orders").unwrap().partition(0).unwrap());
    let kv: Vec<(Option<String>, Option<String>)> = got
        .iter()
        .map(|r| (text(r.key()), text(r.value())))
        .collect();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        kv,
        [
            (some("k1"), some("v1")),
            (some("k2"), some("v2::more")),
            (some(""), some("empty key")),
            (some("k4"), some("")),
        ]
    );
    for r in &got {
        assert_eq!(
            headers(r),
            [
                ("source".to_owned(), "cli".to_owned()),
                ("h".to_owned(), "a=b".to_owned())
            ]
        );
    }
}

#[test]
fn without_a_separator_lines_are_values_and_the_partitioner_chooses() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_topic(dir.path(), 3);
    let out = topiclog_with_input(["produce", &s, "orders"], "a\nb\nc\n");
    ok(&out);
    let text_out = stdout(&out);
    assert!(
        text_out.contains("Produced 3 records to orders."),
        "{text_out}"
    );
    let store = open(std::path::Path::new(&s));
    let all: Vec<_> = store
        .topic("orders")
        .unwrap()
        .partitions()
        .iter()
        .flat_map(records)
        .collect();
    assert_eq!(all.len(), 3);
    assert!(all
        .iter()
        .all(|r| r.key().is_none() && r.header_count() == 0));
}

#[test]
fn partition_and_acks_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_topic(dir.path(), 3);
    for acks in ["all", "1", "leader", "durable", "none", "0"] {
        let out = topiclog_with_input(
            [
                "produce",
                &s,
                "orders",
                "--partition",
                "2",
                "--acks",
                acks,
                "--json",
            ],
            "x\ny\n",
        );
        ok(&out);
        let lines = json_lines(&out);
        assert_eq!(lines[0]["partitions"][0]["partition"], 2, "{acks}");
        assert_eq!(lines[0]["records"], 2, "{acks}");
        // Without acknowledgements no offset is reported.
        assert_eq!(
            lines[0]["partitions"][0]["first_offset"].is_null(),
            acks == "none" || acks == "0",
            "{acks}"
        );
    }
    let store = open(std::path::Path::new(&s));
    let topic = store.topic("orders").unwrap();
    assert_eq!(topic.end_offsets(), [0, 0, 12]);
    fails_with(
        &topiclog_with_input(["produce", &s, "orders", "--acks", "2"], "x\n"),
        "--acks",
    );
}

#[test]
fn unknown_topics_partitions_and_stores_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_topic(dir.path(), 1);
    let out = topiclog_with_input(["produce", &s, "nope"], "x\n");
    fails_with(&out, "does not exist");
    assert!(stderr(&out).contains("topics create"));
    assert_eq!(open(std::path::Path::new(&s)).topics(), ["orders"]);
    fails_with(
        &topiclog_with_input(["produce", &s, "orders", "--partition", "1"], "x\n"),
        "no partition 1",
    );
    fails_with(
        &topiclog_with_input(["produce", &s, "orders", "--header", "novalue"], "x\n"),
        "key=value",
    );
    let missing = dir.path().join("missing").display().to_string();
    fails_with(
        &topiclog_with_input(["produce", &missing, "orders"], "x\n"),
        "no such store",
    );
    assert_eq!(
        open(std::path::Path::new(&s))
            .topic("orders")
            .unwrap()
            .end_offsets(),
        [0]
    );
}

#[test]
fn a_line_without_the_separator_stops_after_the_lines_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_topic(dir.path(), 1);
    let out = topiclog_with_input(
        ["produce", &s, "orders", "--key-separator", ":"],
        "a:1\nb:2\nno separator\nc:3\n",
    );
    fails_with(&out, "line 3");
    assert!(stdout(&out).contains("Produced 2 records"));
    let store = open(std::path::Path::new(&s));
    assert_eq!(store.topic("orders").unwrap().end_offsets(), [2]);
}

#[test]
fn a_store_held_by_another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_topic(dir.path(), 1);
    let held = open(std::path::Path::new(&s));
    let out = topiclog_with_input(["produce", &s, "orders"], "x\n");
    fails_with(&out, "in use by another process");
    assert_eq!(held.topic("orders").unwrap().end_offsets(), [0]);
}

#[test]
fn bytes_are_kept_as_they_come() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with_topic(dir.path(), 1);
    let input: &[u8] = b"k\xff|v\x00\xfe\n|no key\n";
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_topiclog"))
        .args(["produce", &s, "orders", "--key-separator", "|"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
    ok(&child.wait_with_output().unwrap());
    let store = open(std::path::Path::new(&s));
    let got = records(&store.topic("orders").unwrap().partition(0).unwrap());
    assert_eq!(got[0].key().unwrap().as_ref(), b"k\xff");
    assert_eq!(got[0].value().unwrap().as_ref(), b"v\x00\xfe");
    assert_eq!(got[1].key().unwrap().as_ref(), b"");
    assert_eq!(got[1].value().unwrap().as_ref(), b"no key");
}

#[test]
fn a_record_the_topic_refuses_stops_after_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = empty_store(dir.path());
    let mut config = TopicConfig::with_partitions(1);
    config.overrides.max_batch_bytes = Some(1024);
    open(&store).create_topic("orders", config).unwrap();
    let s = store.display().to_string();
    let input = format!("small\n{}\nafter\n", "x".repeat(4096));
    let out = topiclog_with_input(["produce", &s, "orders"], &input);
    fails_with(&out, "exceeds the maximum");
    assert!(stdout(&out).contains("Produced 1 records"), "{out:?}");
    assert_eq!(open(&store).topic("orders").unwrap().end_offsets(), [1]);
}
