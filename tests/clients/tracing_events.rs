//! The `tracing` feature: the documented spans and events, with their fields, reach a subscriber
//! (one of this test's own that records them): an open and its recovery cut, rolls, retention
//! and compaction passes, a group rebalance, a refused commit, a poisoned partition and a failed
//! maintenance pass.
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Level, Metadata, Subscriber};

use topiclog::fs::{Fault, FaultOp, SimFs};
use topiclog::{
    AutoOffsetReset, CleanupPolicy, CompactionPolicy, ConsumerConfig, Deadline, Durability, Env,
    LogConfig, ManualClock, Partition, Record, RetentionPolicy, Store, StoreOptions, TopicConfig,
};

/// One event as recorded: level, message, fields, and the names of the spans it was in.
#[derive(Clone, Debug)]
struct Seen {
    level: Level,
    message: String,
    fields: BTreeMap<String, String>,
    spans: Vec<String>,
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Seen>>,
    span_names: Mutex<BTreeMap<u64, String>>,
    next: AtomicU64,
}

thread_local! {
    static STACK: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Fields<'a>(&'a mut BTreeMap<String, String>, &'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            *self.1 = format!("{value:?}");
        } else {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }
}

/// The subscriber: records into the shared [`Recorder`].
struct Collect(Arc<Recorder>);

impl Subscriber for Collect {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "topiclog"
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed) + 1;
        let name = span.metadata().name().to_owned();
        self.0.span_names.lock().unwrap().insert(id, name);
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &SpanRecord<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let (mut fields, mut message) = (BTreeMap::new(), String::new());
        event.record(&mut Fields(&mut fields, &mut message));
        let names = self.0.span_names.lock().unwrap();
        let spans = STACK.with(|s| {
            s.borrow()
                .iter()
                .filter_map(|id| names.get(id).cloned())
                .collect()
        });
        self.0.events.lock().unwrap().push(Seen {
            level: *event.metadata().level(),
            message,
            fields,
            spans,
        });
    }
    fn enter(&self, span: &Id) {
        STACK.with(|s| s.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, _: &Id) {
        STACK.with(|s| {
            s.borrow_mut().pop();
        });
    }
}

impl Recorder {
    fn find(&self, message: &str) -> Vec<Seen> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e.message.contains(message))
            .cloned()
            .collect()
    }
}

fn recorded(f: impl FnOnce()) -> Arc<Recorder> {
    let recorder = Arc::new(Recorder::default());
    tracing::subscriber::with_default(Collect(recorder.clone()), f);
    recorder
}

const T0: i64 = 1_700_000_000_000;

#[test]
fn partition_lifecycle_events() {
    let fs = Arc::new(SimFs::new(5));
    let env = || Env {
        fs: fs.clone(),
        clock: Arc::new(ManualClock::new(T0)),
    };
    let config = LogConfig {
        durability: Durability::None,
        segment_bytes: 1024,
        segment_ms: Deadline::Never,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    };
    let seen = recorded(|| {
        let log = Partition::open_with_env("/p", config.clone(), env()).unwrap();
        for i in 0..100u64 {
            let r = Record::new(format!("value-{i:04}")).with_key(format!("k{}", i % 5));
            log.append(r).unwrap();
        }
        log.flush_checkpoint().unwrap();
        log.compact(T0, &CompactionPolicy::default()).unwrap();
        let cut = log.segments()[1].base_offset();
        log.delete_records(cut).unwrap();
        log.apply_retention(T0, &RetentionPolicy::default())
            .unwrap();
        // A torn tail for the next open to cut: half a batch past the end.
        log.abandon();
        let file = log.segments().last().unwrap().log_path().to_owned();
        let mut bytes = fs.read_file(&file).unwrap();
        let end = log.segments().last().unwrap().size() as usize;
        bytes.truncate(end);
        // The first 40 bytes of the batch that was to come next.
        let next = topiclog::segment::RecordBatch::build(&[Record::new("z")], log.end_offset(), 0)
            .unwrap();
        bytes.extend_from_slice(&next.as_bytes()[..40]);
        fs.write_file(&file, &bytes);
        let log = Partition::open_with_env("/p", config.clone(), env()).unwrap();
        // A failed sync poisons it.
        log.append(Record::new("x").with_key("k")).unwrap();
        fs.inject(Fault {
            path_contains: Some("/p/".into()),
            ..Fault::new(FaultOp::Sync, 0)
        });
        assert!(log.flush().is_err());
    });

    let opened = seen.find("partition opened");
    assert!(!opened.is_empty());
    let first = &opened[0];
    assert_eq!(first.level, Level::DEBUG);
    assert_eq!(first.fields["dir"], "/p");
    assert_eq!(first.spans, ["open"]);
    for field in [
        "clean_shutdown",
        "segments_scanned",
        "bytes_scanned",
        "bytes_truncated",
        "segments_deleted",
        "corruption_cut",
        "start_offset",
        "end_offset",
    ] {
        assert!(first.fields.contains_key(field), "{field}: {first:?}");
    }

    let cut = seen.find("partition recovered with a cut");
    assert_eq!(cut.len(), 1, "{:?}", seen.events.lock().unwrap());
    assert_eq!(cut[0].level, Level::WARN);
    assert_eq!(cut[0].fields["bytes_truncated"], "40");

    let rolled = seen.find("segment rolled");
    assert!(rolled.len() > 3);
    assert!(rolled
        .iter()
        .all(|e| e.level == Level::DEBUG && e.fields.contains_key("base_offset")));

    let compaction = seen.find("compaction pass");
    assert_eq!(compaction.len(), 1);
    assert_eq!(compaction[0].spans, ["compaction"]);
    assert!(
        compaction[0].fields["records_removed"]
            .parse::<u64>()
            .unwrap()
            > 0
    );

    let retention = seen.find("retention pass");
    assert_eq!(retention.len(), 1);
    assert_eq!(retention[0].spans, ["retention"]);
    assert!(retention[0].fields["bytes_deleted"].parse::<u64>().unwrap() > 0);

    let poisoned = seen.find("partition poisoned");
    assert_eq!(poisoned.len(), 1);
    assert_eq!(poisoned[0].level, Level::ERROR);
    assert!(poisoned[0].fields["error"].contains("/p/"), "{poisoned:?}");
}

#[test]
fn group_and_maintenance_events() {
    let fs = Arc::new(SimFs::new(6));
    let env = Env {
        fs: fs.clone(),
        clock: Arc::new(ManualClock::new(T0)),
    };
    let seen = recorded(|| {
        let options = StoreOptions {
            background_maintenance: false,
            background_cleaner: false,
            ..StoreOptions::default()
        };
        let store = Store::open_with_env(Path::new("/s"), options, env).unwrap();
        let t = store
            .create_topic("t", TopicConfig::with_partitions(2))
            .unwrap();
        t.send_to(0, Record::new("a")).unwrap();
        let mut member = store
            .consumer(ConsumerConfig {
                auto_offset_reset: AutoOffsetReset::Earliest,
                ..ConsumerConfig::group("g")
            })
            .unwrap();
        member.subscribe(&["t"]).unwrap();
        member.poll(Duration::from_millis(10)).unwrap();
        // A consumer outside the group may not commit while it has members.
        let outsider = store.consumer(ConsumerConfig::group("g")).unwrap();
        let tp = topiclog::TopicPartition::new("t", 0);
        assert!(outsider
            .commit(&[(tp, topiclog::OffsetAndMetadata::new(1))])
            .is_err());
        // A maintenance pass that fails: every sync of the store fails.
        t.send_to(1, Record::new("b")).unwrap();
        fs.inject(Fault {
            path_contains: Some("/s/t/".into()),
            sticky: true,
            ..Fault::new(FaultOp::Sync, 0)
        });
        assert!(store.flush().is_err() || store.maintain().is_err());
        let _ = store.maintain();
    });

    let rebalanced = seen.find("group rebalanced");
    assert!(!rebalanced.is_empty());
    assert_eq!(rebalanced[0].level, Level::INFO);
    assert_eq!(rebalanced[0].fields["group"], "g");
    assert_eq!(rebalanced[0].fields["members"], "1");

    let refused = seen.find("commit refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].level, Level::WARN);
    assert_eq!(refused[0].fields["group"], "g");

    let failed = seen.find("maintenance failed");
    assert!(!failed.is_empty(), "{:?}", seen.events.lock().unwrap());
    assert_eq!(failed[0].level, Level::ERROR);
}
