//! Regression: a partition opened in freshly created nested directories must survive power loss
//! (every new directory entry is synced, not just the innermost one).

use std::path::Path;
use std::sync::Arc;

use topiclog::fs::{CrashMode, SimFs};
use topiclog::{Durability, Env, LogConfig, Partition, Record};

#[test]
fn nested_new_directories_survive_a_crash() {
    let sim = SimFs::new(3);
    let config = LogConfig {
        durability: Durability::Always,
        segment_bytes: 4096,
        ..LogConfig::default()
    };
    let env = Env::with_fs(Arc::new(sim.clone()));
    let log = Partition::open_with_env("/a/b/c/p0", config.clone(), env.clone()).unwrap();
    log.append(Record::new("durable")).unwrap();
    log.abandon();
    sim.crash(CrashMode::LoseUnsynced);
    let log = Partition::open_with_env(Path::new("/a/b/c/p0"), config, env).unwrap();
    assert_eq!(log.end_offset(), 1);
    let r = log.read(0, 1024).unwrap();
    assert_eq!(
        r.records().next().unwrap().value().unwrap().as_ref(),
        b"durable"
    );
}
