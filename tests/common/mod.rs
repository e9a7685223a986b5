//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use topiclog::fs::{FileSystem, SimFs, StdFs};
use topiclog::{Partition, Record};

/// Run `f` once on the real file system (in a temp dir) and once on the simulated one.
pub fn both_fs(f: impl Fn(Arc<dyn FileSystem>, &Path)) {
    let tmp = tempfile::tempdir().unwrap();
    f(Arc::new(StdFs), &tmp.path().join("p0"));
    let sim = SimFs::new(7);
    f(Arc::new(sim), Path::new("/sim/p0"));
}

/// A record keyed `k<i>` with value `<tag>-<i>`.
pub fn keyed(i: u64, tag: &str) -> Record {
    Record::new(format!("{tag}-{i}")).with_key(format!("k{i}"))
}

/// All `(offset, value)` pairs from `from` to the end.
pub fn values(log: &Partition, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.end_offset() {
        let batches = log.read(next, 64 << 10).unwrap();
        assert!(
            !batches.is_empty(),
            "read at {next} returned nothing below the end"
        );
        for r in batches.records() {
            assert!(r.offset() >= next);
            out.push((
                r.offset(),
                r.value().map(|v| v.to_vec()).unwrap_or_default(),
            ));
        }
        next = batches.next_offset();
    }
    out
}
