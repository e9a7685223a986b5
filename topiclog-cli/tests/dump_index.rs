//! `topiclog dump` on `.index` and `.timeindex` files, and `--verify-index` against the `.log`.

mod common;

use std::path::Path;

use common::*;

fn dump(args: &[&str], file: &Path) -> std::process::Output {
    let file = file.display().to_string();
    topiclog(
        std::iter::once("dump")
            .chain(args.iter().copied())
            .chain([file.as_str()]),
    )
}

/// A copy of the partition's segment files in a fresh directory, to tamper with.
fn copy_segment(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for ext in ["log", "index", "timeindex"] {
        std::fs::copy(segment_file(from, ext), segment_file(to.path(), ext)).unwrap();
    }
    to
}

#[test]
fn index_entries_are_absolute_offsets_and_positions() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let out = dump(&[], &segment_file(dir.path(), "index"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    // Kafka's rule: an entry names the last offset of the batch at its position; none is made
    // for the first batch.
    let entries: Vec<&str> = text.lines().filter(|l| l.starts_with("offset:")).collect();
    assert_eq!(
        entries,
        ["offset: 3 position: 106", "offset: 5 position: 176"]
    );

    let lines = json_lines(&dump(&["--json"], &segment_file(dir.path(), "index")));
    assert_eq!(lines[0]["kind"], "index");
    let entries = of_type(&lines, "index_entry");
    assert_eq!(entries[1]["offset"], 5);
    assert_eq!(entries[1]["position"], 176);
}

#[test]
fn time_index_entries_map_timestamps_to_offsets() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let out = dump(&[], &segment_file(dir.path(), "timeindex"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let entries: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("timestamp:"))
        .collect();
    assert_eq!(
        entries,
        ["timestamp: 2000 offset: 3", "timestamp: 3000 offset: 5"]
    );

    let lines = json_lines(&dump(&["--json"], &segment_file(dir.path(), "timeindex")));
    let entries = of_type(&lines, "time_index_entry");
    assert_eq!(entries[0]["timestamp"], 2000);
    assert_eq!(entries[0]["offset"], 3);
}

#[test]
fn verify_index_passes_on_a_good_segment() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    for ext in ["index", "timeindex"] {
        let out = dump(&["--verify-index"], &segment_file(dir.path(), ext));
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(
            stdout(&out).contains(": 2 entries, 0 mismatches"),
            "{out:?}"
        );
    }
}

#[test]
fn verify_index_reports_a_tampered_offset_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let copy = copy_segment(dir.path());
    let index = segment_file(copy.path(), "index");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[15] += 1; // the second entry's position: 176 -> 177, inside a batch
    std::fs::write(&index, &bytes).unwrap();

    let out = dump(&["--verify-index", "--json"], &index);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    let mismatches = of_type(&lines, "index_mismatch");
    assert_eq!(mismatches.len(), 1, "{lines:?}");
    assert_eq!(mismatches[0]["entry"], 1);
    assert_eq!(mismatches[0]["position"], 177);
    assert_eq!(of_type(&lines, "index_verified")[0]["mismatches"], 1);

    // Without --verify-index the entry is only listed.
    assert_eq!(dump(&[], &index).status.code(), Some(0));
}

#[test]
fn verify_index_reports_a_tampered_time_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let copy = copy_segment(dir.path());
    let index = segment_file(copy.path(), "timeindex");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[12 + 7] ^= 0x01; // the second entry's timestamp: 3000 -> 3001
    std::fs::write(&index, &bytes).unwrap();

    let out = dump(&["--verify-index"], &index);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("Mismatch in entry 1 (timestamp: 3001 offset: 5)"),
        "{text}"
    );
    assert!(
        text.contains("largest timestamp through offset 5 is 3000"),
        "{text}"
    );
}

#[test]
fn a_partial_entry_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let copy = copy_segment(dir.path());
    let index = segment_file(copy.path(), "index");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&index, &bytes).unwrap();
    let out = dump(&["--json"], &index);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(of_type(&lines, "index_entry").len(), 1);
    assert_eq!(of_type(&lines, "error")[0]["position"], 8);
}
