//! `topiclog dump`'s usage errors: exit code 2 and a message on standard error, nothing dumped.

mod common;

use common::*;

fn fails_with_usage(args: &[&str], expected: &str) {
    let out = topiclog(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
}

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let log = segment_file(dir.path(), "log").display().to_string();
    let d = dir.path().display();

    fails_with_usage(&[], "Usage");
    fails_with_usage(&["dump"], "FILE");
    fails_with_usage(&["dump", "--no-such-flag", &log], "--no-such-flag");
    fails_with_usage(&["dump", "--hex", &log], "--print-data");
    fails_with_usage(
        &["dump", &format!("{d}/00000000000000000042.log")],
        "no such file",
    );
    fails_with_usage(&["dump", &format!("{d}/checkpoint")], "unknown extension");
    fails_with_usage(
        &["dump", &format!("{d}/00000000000000000000.txnindex")],
        "unknown extension",
    );
    fails_with_usage(&["dump", &format!("{d}/42.log")], "not a segment file name");
    // Every name is checked before anything is printed.
    fails_with_usage(
        &["dump", &log, &format!("{d}/x.log")],
        "not a segment file name",
    );
}

#[test]
fn verify_index_needs_the_log() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    std::fs::remove_file(segment_file(dir.path(), "log")).unwrap();
    let index = segment_file(dir.path(), "index").display().to_string();
    let out = topiclog(["dump", "--verify-index", &index]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("which is missing"));
}

#[test]
fn help_and_version_exit_0() {
    for args in [["--help"], ["--version"]] {
        let out = topiclog(args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
    let out = topiclog(["dump", "--help"]);
    assert!(stdout(&out).contains("--verify-index"));
}
