//! Scale (issue 13): a partition of thousands of segments opens without opening them, and reads
//! across all of them hold at most the segment cache's bound of descriptors and maps, under a low
//! descriptor limit; readers of a segment that retention deletes keep reading it, or get a clean
//! error once its file was given back, never another file's bytes.
//!
//! Its own test binary, with one test: it lowers the process's descriptor limit, sets the
//! process-wide cache bound and counts the process's descriptors and maps. Then a store needing
//! more descriptors than the lowered limit opens once topiclog may raise the limit.

use std::path::Path;
use std::time::Instant;

use topiclog::{
    Deadline, Durability, Error, LogConfig, Partition, Record, RetentionPolicy, Store, TopicConfig,
};

/// Segments of the partition built here (one record each).
const SEGMENTS: u64 = 3_000;
/// The cache bound for this test.
const CACHE: usize = 16;
/// The descriptor limit the test runs under (the main build had one descriptor per segment).
const FD_LIMIT: u64 = 256;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_ms: Deadline::Never,
        index_interval_bytes: 256,
        durability: Durability::None,
        preallocate: false,
        ..LogConfig::default()
    }
}

/// Open descriptors of this process on files under `dir`.
fn fds_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|it| {
            it.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| target.starts_with(dir))
                .count()
        })
        .unwrap_or(0)
}

/// Maps of this process of files under `dir`.
fn maps_under(dir: &Path) -> usize {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.lines().filter(|l| l.contains(dir.as_str())).count())
        .unwrap_or(0)
}

fn lower_fd_limit(limit: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit for getrlimit/setrlimit to read and write.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        r.rlim_cur = limit.min(r.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
    }
}

fn record(i: u64) -> Record {
    Record::new(format!("{i:08}").repeat(100))
}

#[test]
fn thousands_of_segments_under_a_low_descriptor_limit() {
    if !Path::new("/proc/self/fd").exists() {
        return; // Linux's /proc is what counts descriptors and maps here.
    }
    // This part runs under the low limit as set: topiclog must not raise it.
    topiclog::set_raise_descriptor_limit(false);
    lower_fd_limit(FD_LIMIT);
    topiclog::set_max_open_segments(CACHE);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    let bound_fds = CACHE + 8;
    let bound_maps = 3 * CACHE + 8;

    // Build: every append rolls. Rolled segments give their descriptor back once synced.
    {
        let p = Partition::open_with(&dir, config()).unwrap();
        for i in 0..SEGMENTS {
            p.append(record(i)).unwrap();
            if i % 50 == 49 {
                p.flush().unwrap();
                assert!(fds_under(&dir) <= bound_fds + 50, "{} fds", fds_under(&dir));
            }
        }
        assert!(p.segment_count() as u64 >= SEGMENTS);
        p.close().unwrap();
    }

    // Open clean: no sealed segment is opened.
    let started = Instant::now();
    let p = Partition::open_with(&dir, config()).unwrap();
    let opened_in = started.elapsed();
    assert!(p.recovery_report().clean_shutdown);
    assert!(fds_under(&dir) <= 4, "{} fds after open", fds_under(&dir));
    assert!(
        maps_under(&dir) <= 4,
        "{} maps after open",
        maps_under(&dir)
    );
    eprintln!("opened {SEGMENTS} segments in {opened_in:?}");

    // Oldest, newest, then everything: at most the cache's worth of files and maps.
    let oldest = p.read(0, 1 << 20).unwrap();
    assert_eq!(oldest.records().next().unwrap().value(), record(0).value());
    let last = p.end_offset() - 1;
    let newest = p.read(last, 1 << 20).unwrap();
    assert_eq!(newest.records().next().unwrap().offset(), last);
    drop((oldest, newest));
    let (mut next, mut seen, mut max_fds, mut max_maps) = (0, 0u64, 0, 0);
    while next < p.end_offset() {
        let got = p.read(next, 64 << 10).unwrap();
        for r in got.records() {
            assert_eq!(r.offset(), seen);
            assert_eq!(r.value(), record(seen).value());
            seen += 1;
        }
        next = got.next_offset();
        drop(got);
        max_fds = max_fds.max(fds_under(&dir));
        max_maps = max_maps.max(maps_under(&dir));
    }
    assert_eq!(seen, SEGMENTS);
    assert!(max_fds <= bound_fds, "{max_fds} fds during the scan");
    assert!(max_maps <= bound_maps, "{max_maps} maps during the scan");
    assert!(topiclog::segment::resident_segments() <= CACHE);
    eprintln!(
        "scan: at most {max_fds} descriptors and {max_maps} maps under {}",
        dir.display()
    );

    // Retention deletes segments a reader holds: a view read recently keeps its map; one whose
    // file the cache gave back fails cleanly. Never another file's bytes.
    let views = p.segments();
    let held = views[1].clone();
    let released = views[0].clone();
    assert_eq!(held.read(1, 1 << 20).unwrap()[0].base_offset(), 1);
    p.delete_records(10).unwrap();
    p.apply_retention(0, &RetentionPolicy::default()).unwrap();
    assert!(!held.log_path().exists());
    let again = held.read(1, 1 << 20).unwrap();
    assert_eq!(
        again[0].records().next().unwrap().value(),
        record(1).value()
    );
    // Touch more segments than the cache holds, so that nothing of segment 0 stays open.
    for offset in (100..100 + 2 * CACHE as u64).step_by(1) {
        drop(p.read(offset, 1 << 10).unwrap());
    }
    match released.read(0, 1 << 20) {
        Ok(batches) => {
            // Still mapped (it was deleted while resident): then it is its own data.
            assert_eq!(
                batches[0].records().next().unwrap().value(),
                record(0).value()
            );
        }
        Err(e) => assert!(matches!(e, Error::Io { .. }), "{e}"),
    }
    drop((views, held, released, again));
    p.close().unwrap();

    stores_of_more_partitions_than_the_limit_allows(tmp.path());
}

/// A store whose partitions need more descriptors (two each) than the soft limit allows opens
/// once topiclog may raise the limit toward the hard one, and fails cleanly when it may not.
fn stores_of_more_partitions_than_the_limit_allows(tmp: &Path) {
    let (soft, hard) = topiclog::fs::descriptor_limits().unwrap();
    assert_eq!(
        soft, FD_LIMIT,
        "nothing raised the limit while not allowed to"
    );
    if hard < 2_000 {
        eprintln!("hard descriptor limit {hard}: the store part needs 2,000");
        return;
    }
    let dir = tmp.join("store");
    let (topics, partitions) = (4u32, 50u32);
    topiclog::set_raise_descriptor_limit(true);
    {
        let store = Store::open(&dir).unwrap();
        for t in 0..topics {
            store
                .create_topic(&format!("t{t}"), TopicConfig::with_partitions(partitions))
                .unwrap();
        }
        let (raised, _) = topiclog::fs::descriptor_limits().unwrap();
        assert!(
            raised > 2 * u64::from(topics * partitions),
            "soft limit {raised}"
        );
        store.close().unwrap();
    }

    lower_fd_limit(FD_LIMIT);
    topiclog::set_raise_descriptor_limit(false);
    match Store::open(&dir) {
        Err(Error::Io { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EMFILE), "{source}")
        }
        Ok(_) => panic!(
            "opened {} partitions under {FD_LIMIT} descriptors",
            topics * partitions
        ),
        Err(e) => panic!("{e}"),
    }

    topiclog::set_raise_descriptor_limit(true);
    let store = Store::open(&dir).unwrap();
    for t in 0..topics {
        let topic = store.topic(&format!("t{t}")).unwrap();
        for p in 0..partitions {
            let log = topic.partition(p).unwrap();
            let at = log.append(Record::new(format!("{t}/{p}"))).unwrap();
            let read = log.read(at, 1 << 10).unwrap();
            assert_eq!(
                read.records().next().unwrap().value().unwrap().as_ref(),
                format!("{t}/{p}").as_bytes()
            );
        }
    }
    store.close().unwrap();
    let (soft, _) = topiclog::fs::descriptor_limits().unwrap();
    eprintln!(
        "{} partitions opened under a soft limit of {FD_LIMIT}, raised to {soft}",
        topics * partitions
    );
}
