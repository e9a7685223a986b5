//! The `metrics` feature: what `topiclog::metrics` publishes reaches a recorder (one of this
//! test's own that keeps every counter and gauge by name and labels) with exactly the figures of
//! the stats snapshots: appends, reads and syncs, a retention and a compaction pass, a group's
//! committed lag, a producer and a consumer; every series is described with its unit; and the
//! publisher thread republishes to the global recorder until it is stopped.
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, SharedString, Unit,
};

use topiclog::metrics::{
    describe, publish_consumer, publish_producer, publish_store, MetricsPublisher,
};
use topiclog::{
    AutoOffsetReset, CleanupPolicy, CompactionPolicy, ConsumerConfig, Deadline, Durability, Env,
    Limit, LogConfig, LogOverrides, ManualClock, ProducerConfig, Record, Store, StoreOptions,
    TopicConfig,
};

/// A series: the metric's name and its labels, sorted.
type Series = (String, Vec<(String, String)>);

/// A counter or gauge as the recorder holds it: the last value handed over.
#[derive(Debug, Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    // The last value, not the largest (what exporters keep): a figure that went backwards
    // shows up here.
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) + value);
    }
    fn decrement(&self, value: f64) {
        GaugeFn::increment(self, -value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// A described metric: counter or gauge, its unit and help text.
#[derive(Clone, Debug, PartialEq)]
struct Described {
    kind: &'static str,
    unit: Option<Unit>,
    help: String,
}

/// The recorder: every counter and gauge registered, and every description.
#[derive(Debug, Default)]
struct Figures {
    counters: Mutex<BTreeMap<Series, Arc<Cell>>>,
    gauges: Mutex<BTreeMap<Series, Arc<Cell>>>,
    described: Mutex<BTreeMap<String, Described>>,
}

fn series(key: &Key) -> Series {
    let mut labels: Vec<_> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    (key.name().to_owned(), labels)
}

fn wanted(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut labels: Vec<_> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    (name.to_owned(), labels)
}

impl metrics::Recorder for Figures {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe("counter", key, unit, help);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe("gauge", key, unit, help);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe("histogram", key, unit, help);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(counters.entry(series(key)).or_default().clone())
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().unwrap();
        Gauge::from_arc(gauges.entry(series(key)).or_default().clone())
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        panic!("topiclog publishes no histogram: {key:?}");
    }
}

impl Figures {
    fn describe(&self, kind: &'static str, key: KeyName, unit: Option<Unit>, help: SharedString) {
        let described = Described {
            kind,
            unit,
            help: help.to_string(),
        };
        let mut all = self.described.lock().unwrap();
        if let Some(earlier) = all.insert(key.as_str().to_owned(), described.clone()) {
            assert_eq!(
                earlier,
                described,
                "{} described twice, differently",
                key.as_str()
            );
        }
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let counters = self.counters.lock().unwrap();
        let cell = counters.get(&wanted(name, labels))?;
        Some(cell.0.load(Ordering::Relaxed))
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let gauges = self.gauges.lock().unwrap();
        let cell = gauges.get(&wanted(name, labels))?;
        Some(f64::from_bits(cell.0.load(Ordering::Relaxed)))
    }

    /// Every series with this name.
    fn named(&self, name: &str) -> Vec<Series> {
        let counters = self.counters.lock().unwrap();
        let gauges = self.gauges.lock().unwrap();
        counters
            .keys()
            .chain(gauges.keys())
            .filter(|(n, _)| n == name)
            .cloned()
            .collect()
    }
}

/// What `f` publishes, to a recorder of its own on this thread.
fn recorded(f: impl FnOnce()) -> Figures {
    let figures = Figures::default();
    metrics::with_local_recorder(&figures, f);
    figures
}

const T0: i64 = 1_700_000_000_000;

/// A store in `dir` on the real file system and a manual clock at `T0`, without background
/// threads (passes run when the test says).
fn open(dir: &std::path::Path) -> Store {
    let options = StoreOptions {
        log: LogConfig {
            durability: Durability::Always,
            ..LogConfig::default()
        },
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    };
    let env = Env {
        clock: Arc::new(ManualClock::new(T0)),
        ..Env::default()
    };
    Store::open_with_env(dir, options, env).unwrap()
}

#[test]
fn partition_figures_are_the_stats() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let events = store
        .create_topic("events", TopicConfig::with_partitions(2))
        .unwrap();
    let p1 = events.partition(1).unwrap();
    let five: Vec<_> = (0..5).map(|i| Record::new(format!("e{i}"))).collect();
    p1.append_batch(&five).unwrap();
    p1.append_batch(&five[..3]).unwrap();
    assert_eq!(p1.read(0, 1 << 20).unwrap().records().count(), 8);

    let figures = recorded(|| publish_store(&store).unwrap());
    let stats = p1.stats();
    let one = [("topic", "events"), ("partition", "1")];
    let c = |name: &str| figures.counter(name, &one).unwrap();
    let g = |name: &str| figures.gauge(name, &one).unwrap();
    assert_eq!(c("topiclog_partition_appended_records_total"), 8);
    assert_eq!(c("topiclog_partition_appended_batches_total"), 2);
    assert_eq!(c("topiclog_partition_read_records_total"), 8);
    assert_eq!(c("topiclog_partition_read_batches_total"), 2);
    // Durability::Always: one sync per append, each carrying it.
    assert_eq!(c("topiclog_partition_syncs_total"), 2);
    assert_eq!(c("topiclog_partition_synced_appends_total"), 2);
    assert!(stats.bytes_appended > 0);
    assert_eq!(
        c("topiclog_partition_appended_bytes_total"),
        stats.bytes_appended
    );
    // The whole log was read once: every byte appended, served once.
    assert_eq!(
        c("topiclog_partition_read_bytes_total"),
        stats.bytes_appended
    );
    assert_eq!(c("topiclog_partition_retention_passes_total"), 0);
    assert_eq!(g("topiclog_partition_start_offset"), 0.0);
    assert_eq!(g("topiclog_partition_end_offset"), 8.0);
    assert_eq!(g("topiclog_partition_durable_offset"), 8.0);
    assert_eq!(
        g("topiclog_partition_size_bytes"),
        stats.bytes_appended as f64
    );
    assert_eq!(g("topiclog_partition_segments"), 1.0);
    assert_eq!(g("topiclog_partition_poisoned"), 0.0);
    for (quantile, took) in [
        ("0.5", stats.sync_p50),
        ("0.99", stats.sync_p99),
        ("1", stats.sync_max),
    ] {
        let labels = [one[0], one[1], ("quantile", quantile)];
        let seconds = figures
            .gauge("topiclog_partition_sync_seconds", &labels)
            .unwrap();
        assert_eq!(seconds, took.as_secs_f64(), "quantile {quantile}");
    }
    assert!(stats.sync_max > Duration::ZERO);
    // No pass yet: no timestamp.
    assert_eq!(
        figures.gauge("topiclog_partition_last_retention_timestamp_seconds", &one),
        None
    );

    let zero = [("topic", "events"), ("partition", "0")];
    assert_eq!(
        figures.counter("topiclog_partition_appended_records_total", &zero),
        Some(0)
    );
    assert_eq!(
        figures.gauge("topiclog_partition_end_offset", &zero),
        Some(0.0)
    );
    // Without a group, publishing neither finds nor creates the offsets topic.
    assert!(figures.named("topiclog_group_lag_records").is_empty());
    assert!(!store.stats().contains_key("__consumer_offsets"));
    // Two partitions, one topic: two series per metric.
    assert_eq!(figures.named("topiclog_partition_end_offset").len(), 2);

    // Unsynced records: the durable offset trails the end.
    let lazy = store
        .create_topic(
            "lazy",
            TopicConfig {
                partitions: 1,
                overrides: LogOverrides {
                    durability: Some(Durability::None),
                    ..LogOverrides::default()
                },
            },
        )
        .unwrap();
    lazy.send_batch(&five).unwrap();
    let figures = recorded(|| publish_store(&store).unwrap());
    let stats = lazy.partition(0).unwrap().stats();
    assert!(stats.durable_offset < 5, "{stats:?}");
    let labels = [("topic", "lazy"), ("partition", "0")];
    assert_eq!(
        figures.gauge("topiclog_partition_end_offset", &labels),
        Some(5.0)
    );
    assert_eq!(
        figures.gauge("topiclog_partition_durable_offset", &labels),
        Some(stats.durable_offset as f64)
    );
    assert_eq!(
        figures.counter("topiclog_partition_syncs_total", &labels),
        Some(0)
    );
}

#[test]
fn retention_and_compaction_passes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let small = LogOverrides {
        durability: Some(Durability::None),
        segment_bytes: Some(1024),
        segment_ms: Some(Deadline::Never),
        preallocate: Some(false),
        ..LogOverrides::default()
    };
    let old = store
        .create_topic(
            "old",
            TopicConfig {
                partitions: 1,
                overrides: LogOverrides {
                    retention_bytes: Some(Limit::Bytes(2048)),
                    ..small.clone()
                },
            },
        )
        .unwrap();
    let keyed = store
        .create_topic(
            "keyed",
            TopicConfig {
                partitions: 1,
                overrides: LogOverrides {
                    cleanup_policy: Some(CleanupPolicy::Compact),
                    ..small
                },
            },
        )
        .unwrap();
    for i in 0..100u64 {
        old.send(Record::new(format!("value-{i:04}"))).unwrap();
        keyed
            .send(Record::new(format!("value-{i:04}")).with_key(format!("k{}", i % 5)))
            .unwrap();
    }
    // Retention for every topic that deletes; compaction is asked for by hand so that it runs
    // whatever its triggers.
    store.maintain().unwrap();
    let compacted = keyed.partition(0).unwrap();
    compacted.compact(T0, &CompactionPolicy::default()).unwrap();

    let figures = recorded(|| publish_store(&store).unwrap());
    let old_stats = old.partition(0).unwrap().stats();
    let labels = [("topic", "old"), ("partition", "0")];
    assert_eq!(old_stats.retention_passes, 1);
    assert!(old_stats.retention_bytes_deleted > 0 && old_stats.start_offset > 0);
    let c = |name: &str| figures.counter(name, &labels).unwrap();
    let g = |name: &str| figures.gauge(name, &labels).unwrap();
    assert_eq!(c("topiclog_partition_retention_passes_total"), 1);
    assert_eq!(
        c("topiclog_partition_retention_deleted_bytes_total"),
        old_stats.retention_bytes_deleted
    );
    assert_eq!(
        g("topiclog_partition_last_retention_timestamp_seconds"),
        1_700_000_000.0
    );
    assert_eq!(
        g("topiclog_partition_start_offset"),
        old_stats.start_offset as f64
    );
    assert_eq!(g("topiclog_partition_end_offset"), 100.0);
    assert_eq!(g("topiclog_partition_segments"), old_stats.segments as f64);
    assert_eq!(
        g("topiclog_partition_size_bytes"),
        (old_stats.bytes_appended - old_stats.retention_bytes_deleted) as f64
    );
    assert!(old_stats.size_bytes <= 2048 + 1024);
    assert_eq!(c("topiclog_partition_compaction_passes_total"), 0);

    let keyed_stats = compacted.stats();
    let labels = [("topic", "keyed"), ("partition", "0")];
    assert_eq!(keyed_stats.compaction_passes, 1);
    assert!(keyed_stats.compaction_bytes_reclaimed > 0);
    assert_eq!(
        figures.counter("topiclog_partition_compaction_passes_total", &labels),
        Some(1)
    );
    assert_eq!(
        figures.counter(
            "topiclog_partition_compaction_reclaimed_bytes_total",
            &labels
        ),
        Some(keyed_stats.compaction_bytes_reclaimed)
    );
    assert_eq!(
        figures.gauge(
            "topiclog_partition_last_compaction_timestamp_seconds",
            &labels
        ),
        Some(1_700_000_000.0)
    );
    assert_eq!(
        figures.gauge("topiclog_partition_size_bytes", &labels),
        Some(keyed_stats.size_bytes as f64)
    );
}

#[test]
fn group_lag_consumer_and_producer() {
    let dir = tempfile::tempdir().unwrap();
    // The system clock: the consumer's poll waits by it.
    let store = Store::open_with(
        dir.path(),
        StoreOptions {
            background_cleaner: false,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    store
        .create_topic("orders", TopicConfig::with_partitions(1))
        .unwrap();
    let producer = store.producer(ProducerConfig::default()).unwrap();
    for i in 0..10 {
        drop(
            producer
                .send("orders", Record::new(format!("o{i}")))
                .unwrap(),
        );
    }
    producer.flush().unwrap();

    let mut consumer = store
        .consumer(ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::Earliest,
            max_poll_records: 3,
            client_id: "billing-1".into(),
            ..ConsumerConfig::group("billing")
        })
        .unwrap();
    consumer.subscribe(&["orders"]).unwrap();
    let (mut polls, mut consumed) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumed < 3 {
        assert!(Instant::now() < deadline, "nothing consumed");
        consumed += consumer.poll(Duration::from_secs(1)).unwrap().len();
        polls += 1;
    }
    assert_eq!(consumed, 3);
    consumer.commit_sync().unwrap();

    let figures = recorded(|| {
        publish_store(&store).unwrap();
        publish_consumer(&consumer);
        publish_producer(&producer, "order-writer");
    });

    let group = [
        ("group", "billing"),
        ("topic", "orders"),
        ("partition", "0"),
    ];
    assert_eq!(
        figures.gauge("topiclog_group_committed_offset", &group),
        Some(3.0)
    );
    assert_eq!(
        figures.gauge("topiclog_group_lag_records", &group),
        Some(7.0)
    );
    let lag = &store.group_lag("billing").unwrap()[0];
    assert_eq!((lag.end_offset, lag.lag), (Some(10), Some(7)));
    // The commit went to the internal offsets topic, which is published like any other.
    let offsets = [("topic", "__consumer_offsets"), ("partition", "0")];
    let appended = store.stats()["__consumer_offsets"][0].records_appended;
    assert!(appended >= 1);
    assert_eq!(
        figures.counter("topiclog_partition_appended_records_total", &offsets),
        Some(appended)
    );

    let me = [("client_id", "billing-1"), ("group", "billing")];
    let c = |name: &str| figures.counter(name, &me).unwrap();
    let g = |name: &str| figures.gauge(name, &me).unwrap();
    assert_eq!(c("topiclog_consumer_polls_total"), polls);
    assert_eq!(c("topiclog_consumer_consumed_records_total"), 3);
    assert_eq!(c("topiclog_consumer_commits_total"), 1);
    assert_eq!(c("topiclog_consumer_failed_commits_total"), 0);
    assert_eq!(g("topiclog_consumer_assigned_partitions"), 1.0);
    assert_eq!(g("topiclog_consumer_lag_max_records"), 7.0);
    assert_eq!(g("topiclog_consumer_lag_records"), 7.0);

    let stats = producer.stats();
    let writer = [("client_id", "order-writer")];
    let c = |name: &str| figures.counter(name, &writer).unwrap();
    assert_eq!(c("topiclog_producer_sent_records_total"), 10);
    assert_eq!(
        c("topiclog_producer_sent_batches_total"),
        stats.batches_sent
    );
    assert!(stats.batches_sent >= 1);
    assert_eq!(c("topiclog_producer_sent_bytes_total"), stats.bytes_sent);
    assert_eq!(c("topiclog_producer_failed_batches_total"), 0);
    assert_eq!(c("topiclog_producer_failed_records_total"), 0);
    assert_eq!(
        c("topiclog_producer_buffer_wait_nanoseconds_total"),
        stats.buffer_wait.as_nanos() as u64
    );
    assert_eq!(
        figures.gauge("topiclog_producer_buffered_bytes", &writer),
        Some(0.0)
    );
    // The store's own produce path counted the same records.
    let orders = [("topic", "orders"), ("partition", "0")];
    assert_eq!(
        figures.counter("topiclog_partition_appended_records_total", &orders),
        Some(10)
    );
}

#[test]
fn every_series_is_described_with_its_unit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store
        .create_topic("t", TopicConfig::with_partitions(1))
        .unwrap();
    t.send(Record::new("a")).unwrap();
    let producer = store.producer(ProducerConfig::default()).unwrap();
    let mut consumer = store
        .consumer(ConsumerConfig {
            auto_offset_reset: AutoOffsetReset::Earliest,
            ..ConsumerConfig::group("g")
        })
        .unwrap();
    consumer
        .assign(&[topiclog::TopicPartition::new("t", 0)])
        .unwrap();
    consumer
        .commit(&[(
            topiclog::TopicPartition::new("t", 0),
            topiclog::OffsetAndMetadata::new(1),
        )])
        .unwrap();
    store.maintain().unwrap();

    let figures = recorded(|| {
        describe();
        publish_store(&store).unwrap();
        publish_producer(&producer, "p");
        publish_consumer(&consumer);
    });
    let described = figures.described.lock().unwrap().clone();
    let counters: Vec<String> = figures
        .counters
        .lock()
        .unwrap()
        .keys()
        .map(|s| s.0.clone())
        .collect();
    let gauges: Vec<String> = figures
        .gauges
        .lock()
        .unwrap()
        .keys()
        .map(|s| s.0.clone())
        .collect();
    for (names, kind) in [(&counters, "counter"), (&gauges, "gauge")] {
        for name in names {
            let d = described
                .get(name)
                .unwrap_or_else(|| panic!("{name} published but not described"));
            assert_eq!(d.kind, kind, "{name}");
            assert!(!d.help.is_empty(), "{name}");
        }
    }
    // Everything described was published here (the compaction timestamp needs a pass that
    // cleaned something).
    for name in described.keys() {
        assert!(
            counters.contains(name)
                || gauges.contains(name)
                || name == "topiclog_partition_last_compaction_timestamp_seconds",
            "{name} described but never published"
        );
    }
    let unit = |name: &str| described[name].unit;
    assert_eq!(unit("topiclog_partition_size_bytes"), Some(Unit::Bytes));
    assert_eq!(
        unit("topiclog_partition_appended_bytes_total"),
        Some(Unit::Bytes)
    );
    assert_eq!(unit("topiclog_partition_sync_seconds"), Some(Unit::Seconds));
    assert_eq!(
        unit("topiclog_partition_last_retention_timestamp_seconds"),
        Some(Unit::Seconds)
    );
    assert_eq!(
        unit("topiclog_producer_buffer_wait_nanoseconds_total"),
        Some(Unit::Nanoseconds)
    );
    assert_eq!(
        unit("topiclog_partition_appended_records_total"),
        Some(Unit::Count)
    );
    assert_eq!(unit("topiclog_partition_end_offset"), None);
    assert_eq!(unit("topiclog_group_committed_offset"), None);
}

/// The recorder the publisher thread writes to: the process's global one, installed once. Only
/// the test below publishes outside a local recorder.
fn global() -> &'static Arc<Figures> {
    static GLOBAL: OnceLock<Arc<Figures>> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let figures = Arc::new(Figures::default());
        metrics::set_global_recorder(figures.clone()).unwrap();
        figures
    })
}

#[test]
fn publisher_thread_republishes_until_stopped() {
    let figures = global();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = store
        .create_topic("published", TopicConfig::with_partitions(1))
        .unwrap();
    let labels = [("topic", "published"), ("partition", "0")];
    let end = || figures.gauge("topiclog_partition_end_offset", &labels);
    let wait_for_end = |want: f64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while end() != Some(want) {
            assert!(
                Instant::now() < deadline,
                "end offset {:?}, not {want}",
                end()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };

    let publisher = MetricsPublisher::start(&store, Duration::from_millis(20)).unwrap();
    wait_for_end(0.0);
    t.send_batch(&[Record::new("a"), Record::new("b")]).unwrap();
    wait_for_end(2.0);
    assert!(figures
        .described
        .lock()
        .unwrap()
        .contains_key("topiclog_partition_end_offset"));

    publisher.stop();
    t.send(Record::new("c")).unwrap();
    // Ten intervals: a running publisher would have published the third record.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(end(), Some(2.0));

    // A publisher does not keep a closed store: the directory can be opened again at once.
    let publisher = MetricsPublisher::start(&store, Duration::from_millis(20)).unwrap();
    store.close().unwrap();
    let reopened = open(dir.path());
    assert_eq!(
        reopened
            .topic("published")
            .unwrap()
            .partition(0)
            .unwrap()
            .end_offset(),
        3
    );
    drop(publisher);
}
