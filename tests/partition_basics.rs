//! Basic partition behaviour on both file systems: append, read, reopen, truncate, roll.

mod common;

use common::{both_fs, keyed, values};
use topiclog::{Env, Error, LogConfig, Partition, Record};

#[test]
fn append_read_reopen() {
    both_fs(|fs, dir| {
        let config = LogConfig {
            segment_bytes: 4096,
            ..LogConfig::default()
        };
        let env = Env::with_fs(fs.clone());
        let log = Partition::open_with_env(dir, config.clone(), env.clone()).unwrap();
        for i in 0..200u64 {
            let info = log.append_batch(&[keyed(i, "a"), keyed(i, "b")]).unwrap();
            assert_eq!(info.base_offset, 2 * i);
        }
        assert_eq!(log.end_offset(), 400);
        assert!(log.segment_count() > 1, "rolled by size");
        let all = values(&log, 0);
        assert_eq!(all.len(), 400);
        log.close().unwrap();
        drop(log);
        let log = Partition::open_with_env(dir, config, env).unwrap();
        assert!(log.recovery_report().clean_shutdown);
        assert_eq!(log.end_offset(), 400);
        assert_eq!(values(&log, 0), all);
        assert_eq!(values(&log, 123).len(), 400 - 123);
        assert!(matches!(
            log.read(401, 100),
            Err(Error::OffsetOutOfRange {
                requested: 401,
                start: 0,
                end: 400
            })
        ));
        assert!(log.read(400, 100).unwrap().is_empty());
        assert_eq!(log.truncate_to(150).unwrap(), 150);
        assert_eq!(values(&log, 0).len(), 150);
        assert_eq!(log.append(Record::new("x")).unwrap(), 150);
    });
}
