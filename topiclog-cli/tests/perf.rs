//! `topiclog perf produce` and `perf consume`: their figures hold together, and the records are
//! really in the store.

mod common;

use std::path::Path;

use common::*;
use topiclog::Store;

const MIB: f64 = 1024.0 * 1024.0;

fn perf(args: &[&str]) -> std::process::Output {
    topiclog(std::iter::once("perf").chain(args.iter().copied()))
}

/// The one summary line, after any progress lines.
fn summary(output: &std::process::Output) -> serde_json::Value {
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let lines = json_lines(output);
    for progress in of_type(&lines, "progress") {
        assert!(progress["records"].as_u64().is_some(), "{progress}");
    }
    let last = lines.last().expect("a summary").clone();
    assert_eq!(last["type"], "summary", "{lines:?}");
    last
}

fn f(v: &serde_json::Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// Records in `topic` by the library's count (the sum of its partitions' end offsets).
fn stored(store: &Path, topic: &str) -> u64 {
    let store = Store::open(store).unwrap();
    let n = store.topic(topic).unwrap().end_offsets().iter().sum();
    store.close().unwrap();
    n
}

fn check_numbers(s: &serde_json::Value, record_size: f64) {
    let records = f(s, "records");
    assert!(records > 0.0, "{s}");
    assert!(f(s, "records_per_sec") > 0.0, "{s}");
    assert!(f(s, "elapsed_secs") > 0.0, "{s}");
    // The rate is the records over the elapsed time; MB/s is that rate times the record size.
    let rate = records / f(s, "elapsed_secs");
    assert!((f(s, "records_per_sec") - rate).abs() <= rate * 1e-6, "{s}");
    let mb = f(s, "records_per_sec") * record_size / MIB;
    assert!((f(s, "mb_per_sec") - mb).abs() <= mb * 1e-3 + 1e-6, "{s}");
    // Percentiles in order, the average within them.
    let (p50, p95, p99, p999, max) = (
        f(s, "p50_ms"),
        f(s, "p95_ms"),
        f(s, "p99_ms"),
        f(s, "p999_ms"),
        f(s, "max_latency_ms"),
    );
    assert!(
        0.0 < p50 && p50 <= p95 && p95 <= p99 && p99 <= p999 && p999 <= max,
        "{s}"
    );
    assert!(f(s, "avg_latency_ms") <= max, "{s}");
}

#[test]
fn produce_reports_consistent_figures_and_the_records_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = perf(&[
        "produce",
        store.to_str().unwrap(),
        "bench",
        "--record-size",
        "100",
        "--num-records",
        "3000",
        "--partitions",
        "2",
        "--durability",
        "none",
        "--acks",
        "written",
        "--batch",
        "50",
        "--json",
    ]);
    let s = summary(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("created topic bench with 2 partition"),
        "{out:?}"
    );
    assert_eq!(s["test"], "produce");
    assert_eq!(s["records"], 3000, "{s}");
    assert_eq!(s["bytes"], 300_000, "{s}");
    assert_eq!(s["errors"], 0, "{s}");
    check_numbers(&s, 100.0);
    assert_eq!(stored(&store, "bench"), 3000);

    // Text: Kafka's shape.
    let text = perf(&[
        "produce",
        store.to_str().unwrap(),
        "bench",
        "--record-size",
        "10",
        "--num-records",
        "10",
        "--acks",
        "none",
    ]);
    assert_eq!(text.status.code(), Some(0), "{text:?}");
    let last = stdout(&text).lines().last().unwrap().to_owned();
    assert!(
        last.starts_with("10 records sent in ") && last.ends_with("ms 99.9th."),
        "{last}"
    );
    assert_eq!(stored(&store, "bench"), 3010);
}

#[test]
fn produce_for_a_duration_keeps_to_the_throughput_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = perf(&[
        "produce",
        store.to_str().unwrap(),
        "timed",
        "--record-size",
        "64",
        "--duration",
        "1",
        "--throughput",
        "1000",
        "--durability",
        "interval=100",
        "--acks",
        "written",
        "--json",
    ]);
    let s = summary(&out);
    check_numbers(&s, 64.0);
    let records = s["records"].as_u64().unwrap();
    // About 1000 in the second (the throttle sleeps ahead of its schedule, never behind).
    assert!((500..=1100).contains(&records), "{s}");
    assert_eq!(stored(&store, "timed"), records);
}

#[test]
fn consume_reads_what_produce_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let s = summary(&perf(&[
        "produce",
        store.to_str().unwrap(),
        "t",
        "--record-size",
        "50",
        "--num-records",
        "2000",
        "--partitions",
        "3",
        "--durability",
        "none",
        "--acks",
        "written",
        "--json",
    ]));
    assert_eq!(s["records"], 2000);

    // No group: every partition from the beginning.
    let s = summary(&perf(&[
        "consume",
        store.to_str().unwrap(),
        "t",
        "--num-records",
        "2000",
        "--json",
    ]));
    assert_eq!(s["test"], "consume");
    assert_eq!(s["records"], 2000, "{s}");
    assert_eq!(s["bytes"], 2000 * 50, "{s}");
    assert!(s["fetches"].as_u64().unwrap() >= 1, "{s}");
    check_numbers(&s, 50.0);

    // A group: reads them all once, then (its offsets committed) finds nothing more.
    let group = |n: &str| {
        summary(&perf(&[
            "consume",
            store.to_str().unwrap(),
            "t",
            "--group",
            "g",
            "--num-records",
            n,
            "--timeout",
            "1",
            "--json",
        ]))
    };
    assert_eq!(group("2000")["records"], 2000);
    assert_eq!(group("1")["records"], 0);
}

#[test]
fn perf_on_a_missing_store_or_topic_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none");
    let out = perf(&[
        "consume",
        missing.to_str().unwrap(),
        "t",
        "--num-records",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!missing.exists(), "consume never creates a store");
    let store = dir.path().join("store");
    Store::open(&store).unwrap().close().unwrap();
    let out = perf(&[
        "consume",
        store.to_str().unwrap(),
        "t",
        "--num-records",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // Neither a count nor a duration: a usage error.
    let out = perf(&[
        "produce",
        store.to_str().unwrap(),
        "t",
        "--record-size",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
