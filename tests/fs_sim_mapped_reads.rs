//! [`SimFs::with_mapped_reads`]: a partition on the simulated file system reads through maps as it
//! does on `StdFs` — the active segment through a growing map that follows appends, sealed
//! segments through read-only maps — and the simulated maps fail as real ones do when misused.
//!
//! - `the_active_segment_is_read_through_a_growing_map`: which files are mapped, before and after
//!   a roll and a reopen; without the option none is.
//! - `truncating_a_mapped_active_segment_leaves_held_batches_intact`: a truncation into the mapped
//!   active segment goes by copy and rename, so batches read before it (slices of the old map)
//!   keep their bytes while new records take their offsets. Truncating in place instead panics
//!   in `SimFs` (a shrink under a live map), as it would raise SIGBUS in a reader on a real file
//!   system.
//! - `reading_a_mapped_page_past_the_end_raises_sigbus`: the simulated maps are real maps of a
//!   mirror file, so a read past the end of a shrunk file kills the process with SIGBUS (checked
//!   in a child process).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use topiclog::fs::{FileSystem, OpenMode, SimFs};
use topiclog::{Env, LogConfig, Partition, Record};

const DIR: &str = "/data/p0";

fn open(fs: &SimFs, preallocate: bool) -> Partition {
    let config = LogConfig {
        segment_bytes: 2048,
        preallocate,
        ..LogConfig::default()
    };
    Partition::open_with_env(DIR, config, Env::with_fs(Arc::new(fs.clone()))).unwrap()
}

fn append_until_roll(log: &Partition, tag: &str) {
    let n = log.segment_count();
    let mut i = 0;
    while log.segment_count() == n {
        log.append(Record::new(format!("{tag}-{i:0>100}"))).unwrap();
        i += 1;
    }
}

fn values(log: &Partition) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = log.start_offset();
    while next < log.end_offset() {
        let b = log.read(next, 1 << 20).unwrap();
        out.extend(
            b.records()
                .map(|r| (r.offset(), r.value().unwrap().to_vec())),
        );
        next = b.next_offset();
    }
    out
}

/// Which of the partition's `.log` files have a live map, oldest first.
fn mapped(fs: &SimFs, log: &Partition) -> Vec<bool> {
    log.segments()
        .iter()
        .map(|s| fs.is_mapped(s.log_path()))
        .collect()
}

#[test]
fn the_active_segment_is_read_through_a_growing_map() {
    for preallocate in [false, true] {
        let fs = SimFs::new(1).with_mapped_reads();
        let log = open(&fs, preallocate);
        assert_eq!(mapped(&fs, &log), [true], "preallocate {preallocate}");
        log.append(Record::new("first")).unwrap();
        append_until_roll(&log, "a");
        // The sealed segment keeps the map it was appended through.
        assert_eq!(mapped(&fs, &log), [true, true], "preallocate {preallocate}");
        let before = values(&log);
        log.close().unwrap();
        drop(log);

        let log = open(&fs, preallocate);
        // A sealed segment opened from disk is mapped when first read.
        assert_eq!(
            mapped(&fs, &log),
            [false, true],
            "preallocate {preallocate}"
        );
        assert_eq!(values(&log), before);
        assert_eq!(mapped(&fs, &log), [true, true], "preallocate {preallocate}");
    }

    // Without the option the maps are copies: no file is mapped.
    let fs = SimFs::new(1);
    let log = open(&fs, false);
    append_until_roll(&log, "a");
    values(&log);
    assert_eq!(mapped(&fs, &log), [false, false]);
}

#[test]
fn truncating_a_mapped_active_segment_leaves_held_batches_intact() {
    for preallocate in [false, true] {
        let fs = SimFs::new(2).with_mapped_reads();
        let log = open(&fs, preallocate);
        for i in 0..6 {
            log.append(Record::new(format!("old-{i}"))).unwrap();
        }
        assert_eq!(mapped(&fs, &log), [true]);
        // Slices of the active segment's map.
        let held = log.read(2, 1 << 20).unwrap();
        let held_values = |b: &topiclog::Batches| -> Vec<Vec<u8>> {
            b.records().map(|r| r.value().unwrap().to_vec()).collect()
        };
        assert_eq!(held_values(&held).len(), 4);

        assert_eq!(log.truncate_to(3).unwrap(), 3);
        for i in 3..6 {
            log.append(Record::new(format!("new-{i}"))).unwrap();
        }
        assert_eq!(
            held_values(&held),
            ["old-2", "old-3", "old-4", "old-5"].map(|s| s.as_bytes().to_vec()),
            "preallocate {preallocate}"
        );
        let now: Vec<Vec<u8>> = values(&log).into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            now,
            ["old-0", "old-1", "old-2", "new-3", "new-4", "new-5"].map(|s| s.as_bytes().to_vec())
        );
        // The copy is the new active segment, mapped in turn.
        assert_eq!(mapped(&fs, &log), [true]);
    }
}

const SIGBUS_CHILD_ENV: &str = "TOPICLOG_SIMFS_SIGBUS_CHILD";

/// Child mode of `reading_a_mapped_page_past_the_end_raises_sigbus`; does nothing in an ordinary
/// run.
#[test]
fn sigbus_child() {
    if std::env::var_os(SIGBUS_CHILD_ENV).is_none() {
        return;
    }
    let fs = SimFs::new(1).with_mapped_reads();
    let f = fs.open(Path::new("/f"), OpenMode::Create).unwrap();
    f.write_all_at(&[1; 3 * 4096], 0).unwrap();
    let map = f.map_growing(3 * 4096).unwrap().unwrap();
    assert_eq!(map[2 * 4096], 1);
    // Planted content bypasses the shrink check, as another process's truncate would.
    fs.write_file(Path::new("/f"), b"x");
    let byte = std::hint::black_box(map[2 * 4096]);
    println!("read {byte} past the end of the file without a fault");
}

#[test]
fn reading_a_mapped_page_past_the_end_raises_sigbus() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigbus_child", "--nocapture", "--test-threads=1"])
        .env(SIGBUS_CHILD_ENV, "1")
        .output()
        .unwrap();
    // SIGBUS is 7 on Linux, 10 on the BSDs and macOS.
    assert!(
        matches!(out.status.signal(), Some(7 | 10)),
        "the child should die of SIGBUS: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
