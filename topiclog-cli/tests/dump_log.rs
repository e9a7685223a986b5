//! `topiclog dump` on a `.log` the library wrote: batches, records, data, JSON, and damage
//! (a flipped bit, a torn tail) reported with exit code 1, never a panic.

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

#[test]
fn text_lists_every_batch_and_with_print_data_every_record() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let log = segment_file(dir.path(), "log");

    let out = dump(&[], &log);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let batches: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("baseOffset:"))
        .collect();
    assert_eq!(batches.len(), 3, "{text}");
    assert!(
        batches[0].starts_with("baseOffset: 0 lastOffset: 2 count: 3 "),
        "{text}"
    );
    assert!(
        batches[0].contains(" position: 0 CreateTime: 1002 "),
        "{text}"
    );
    assert!(
        batches[1].starts_with("baseOffset: 3 lastOffset: 3 count: 1 "),
        "{text}"
    );
    assert!(
        batches[2].starts_with("baseOffset: 4 lastOffset: 5 count: 2 "),
        "{text}"
    );
    assert!(batches[2].contains(" compresscodec: lz4 "), "{text}");
    assert!(
        batches.iter().all(|b| b.ends_with(" isvalid: true")),
        "{text}"
    );
    assert!(
        !text.contains("| offset:"),
        "records only with --deep: {text}"
    );

    let out = dump(&["--print-data"], &log);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let records: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| offset:"))
        .collect();
    assert_eq!(records.len(), 6, "{text}");
    assert!(records[1].starts_with("| offset: 1 timestamp: 1001 keySize: 2 valueSize: 2 "));
    assert!(records[1].ends_with("headerCount: 1 headers: [h=x] key: k1 payload: v1"));
    assert!(
        records[3].ends_with("headers: [] key: null payload: 0xff00"),
        "not UTF-8: hex"
    );
    assert!(
        records[5].ends_with("key: c5 payload: compressed5"),
        "decompressed"
    );
}

#[test]
fn json_has_one_object_per_line_with_stable_fields() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let out = dump(
        &["--json", "--print-data"],
        &segment_file(dir.path(), "log"),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(lines[0]["type"], "file");
    assert_eq!(lines[0]["kind"], "log");
    assert_eq!(lines[0]["base_offset"], 0);

    let batches = of_type(&lines, "batch");
    let field = |name: &str| batches.iter().map(|b| b[name].clone()).collect::<Vec<_>>();
    assert_eq!(field("base_offset"), [0, 3, 4]);
    assert_eq!(field("last_offset"), [2, 3, 5]);
    assert_eq!(field("count"), [3, 1, 2]);
    assert_eq!(field("position"), [0, 106, 176]);
    assert_eq!(field("compression"), ["none", "none", "lz4"]);
    assert_eq!(field("crc_valid"), [true, true, true]);
    assert_eq!(field("max_timestamp"), [1002, 2000, 3000]);
    assert_eq!(field("timestamp_type"), ["create_time"; 3]);
    assert_eq!(field("producer_id"), [-1, -1, -1]);
    assert_eq!(field("magic"), [2, 2, 2]);
    // Each batch's size takes the walk to the next.
    assert_eq!(field("size")[0], 106);

    let records = of_type(&lines, "record");
    let offsets: Vec<_> = records.iter().map(|r| r["offset"].clone()).collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5]);
    assert_eq!(records[1]["timestamp"], 1001);
    assert_eq!(records[1]["header_count"], 1);
    assert_eq!(records[1]["data"]["key"]["utf8"], "k1");
    assert_eq!(records[1]["data"]["value"]["utf8"], "v1");
    assert_eq!(records[1]["data"]["headers"][0]["key"], "h");
    assert_eq!(records[1]["data"]["headers"][0]["value"]["utf8"], "x");
    assert_eq!(records[3]["key_size"], -1);
    assert!(records[3]["data"]["key"].is_null());
    assert_eq!(records[3]["data"]["value"]["hex"], "ff00");
    assert_eq!(records[4]["data"]["value"]["utf8"], "compressed4");
}

#[test]
fn hex_forces_hex_and_deep_alone_prints_no_data() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let log = segment_file(dir.path(), "log");
    let out = dump(&["--json", "--print-data", "--hex"], &log);
    let lines = json_lines(&out);
    let records = of_type(&lines, "record");
    assert_eq!(records[0]["data"]["key"]["hex"], "6b30"); // "k0"
    assert_eq!(records[0]["data"]["headers"][0]["value"]["hex"], "78"); // "x"

    let out = dump(&["--json", "--deep"], &log);
    let lines = json_lines(&out);
    let records = of_type(&lines, "record");
    assert_eq!(records.len(), 6);
    assert!(records.iter().all(|r| r.get("data").is_none()));
}

#[test]
fn a_flipped_bit_is_reported_and_the_walk_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let damaged = tempfile::tempdir().unwrap();
    let log = segment_file(damaged.path(), "log");
    let mut bytes = std::fs::read(segment_file(dir.path(), "log")).unwrap();
    bytes[150] ^= 0x10; // inside the second batch (106..176), under its CRC
    std::fs::write(&log, &bytes).unwrap();

    let out = dump(&["--deep"], &log);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("baseOffset: 3 lastOffset: 3 count: 1 "),
        "{text}"
    );
    assert!(text.contains(" isvalid: false"), "{text}");
    assert!(
        text.contains("Error at position 106: CRC mismatch"),
        "{text}"
    );
    assert!(
        text.contains("baseOffset: 4 lastOffset: 5 count: 2 "),
        "walked on: {text}"
    );
    assert!(text.contains("| offset: 5 "), "{text}");

    let lines = json_lines(&dump(&["--json"], &log));
    let errors = of_type(&lines, "error");
    assert_eq!(errors.len(), 1, "{lines:?}");
    assert_eq!(errors[0]["position"], 106);
    assert_eq!(of_type(&lines, "batch")[1]["crc_valid"], false);
}

#[test]
fn a_torn_tail_is_reported_with_what_is_known() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let damaged = tempfile::tempdir().unwrap();
    let log = segment_file(damaged.path(), "log");
    let bytes = std::fs::read(segment_file(dir.path(), "log")).unwrap();
    // The third batch (176..290) cut short past its header (61 bytes).
    std::fs::write(&log, &bytes[..260]).unwrap();

    let lines = json_lines(&dump(&["--json"], &log));
    let batches = of_type(&lines, "batch");
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[2]["base_offset"], 4, "its header is known");
    assert!(batches[2]["crc_valid"].is_null(), "but not checkable");
    let errors = of_type(&lines, "error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["position"], 176);
    assert!(errors[0]["message"]
        .as_str()
        .unwrap()
        .contains("torn batch"));
    let out = dump(&[], &log);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // Cut inside its header: two batches and the error.
    std::fs::write(&log, &bytes[..200]).unwrap();
    let lines = json_lines(&dump(&["--json"], &log));
    assert_eq!(of_type(&lines, "batch").len(), 2);
    let errors = of_type(&lines, "error");
    assert_eq!(errors[0]["position"], 176);
    assert!(
        errors[0]["message"].as_str().unwrap().contains("truncated"),
        "{errors:?}"
    );
}

#[test]
fn no_damage_makes_it_panic() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let good = std::fs::read(segment_file(dir.path(), "log")).unwrap();
    let damaged = tempfile::tempdir().unwrap();
    let log = segment_file(damaged.path(), "log");
    // Every byte flipped in turn (a sample of bits), and cuts at every 7th length.
    let flips = (0..good.len()).map(|i| {
        let mut b = good.clone();
        b[i] ^= 1 << (i % 8);
        b
    });
    let cuts = (0..good.len()).step_by(7).map(|n| good[..n].to_vec());
    for bytes in flips.chain(cuts) {
        std::fs::write(&log, &bytes).unwrap();
        let out = dump(&["--print-data"], &log);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{out:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_open_partitions_preallocated_tail_is_noted_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let log = topiclog::Partition::open(dir.path()).unwrap(); // preallocates by default
    log.append(topiclog::Record::new("v")).unwrap();
    let lines = json_lines(&dump(&["--json"], &segment_file(dir.path(), "log")));
    assert_eq!(of_type(&lines, "batch").len(), 1, "{lines:?}");
    assert!(of_type(&lines, "error").is_empty(), "{lines:?}");
    let notes = of_type(&lines, "note");
    assert!(
        notes[0]["message"].as_str().unwrap().contains("zero bytes"),
        "{notes:?}"
    );
    let out = dump(&[], &segment_file(dir.path(), "log"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    log.close().unwrap();
}

#[test]
fn several_files_dump_in_the_order_given() {
    let dir = tempfile::tempdir().unwrap();
    write_partition(dir.path());
    let files: Vec<String> = ["timeindex", "log", "index"]
        .iter()
        .map(|ext| segment_file(dir.path(), ext).display().to_string())
        .collect();
    let out = topiclog(
        ["dump", "--json"]
            .into_iter()
            .chain(files.iter().map(String::as_str)),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = json_lines(&out);
    let kinds: Vec<_> = of_type(&lines, "file")
        .iter()
        .map(|f| f["kind"].clone())
        .collect();
    assert_eq!(kinds, ["timeindex", "log", "index"]);
    assert_eq!(of_type(&lines, "batch").len(), 3);
    assert_eq!(of_type(&lines, "index_entry").len(), 2);
}
