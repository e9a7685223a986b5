//! `topiclog perf produce` and `topiclog perf consume`: Kafka's `kafka-producer-perf-test` and
//! `kafka-consumer-perf-test`, against a store in this process. A progress line per second, then
//! a summary: records/s, MB/s (MiB, as Kafka's tools count), latency percentiles (hdrhistogram).
//!
//! Latency, produce: from `Producer::send` to the record's acknowledgement, i.e. its `SendHandle`
//! completing per `--acks` (written, or fsynced). This is the library's producer, as an
//! application uses it (batching, linger, group commit), so the figures are what an application
//! gets; appending to a `Partition` directly would time one append per call instead. The handles
//! have no callback: a second thread waits on them in send order and stamps each as it completes.
//! A batch's records complete together, in send order within a partition, so each is stamped
//! within microseconds of its completion (with several partitions, a record of one partition may
//! be stamped late by a slower batch of another before it: at most what that batch took).
//!
//! Latency, consume: the time of each `Consumer::poll` that returned records (a fetch); polls
//! that found nothing wait out their timeout and are not fetches.

use std::io::{self, Stdout};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;
use topiclog::{
    Acks, AutoOffsetReset, ConsumerConfig, Durability, LogOverrides, ProducerConfig, Record,
    SendHandle, Store, TopicConfig,
};

use crate::line::{Out, Text};
use crate::{Failure, Verdict};

#[derive(Debug, Args)]
pub struct PerfArgs {
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(Debug, Subcommand)]
enum PerfCommand {
    /// Send records as fast as allowed and report throughput and send-to-acknowledgement latency
    /// (Kafka: kafka-producer-perf-test).
    Produce(ProduceArgs),
    /// Read records and report throughput and fetch latency (Kafka: kafka-consumer-perf-test).
    Consume(ConsumeArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AcksArg {
    /// Acknowledged once buffered (Kafka acks=0): latency is the time in `send` only.
    None,
    /// Acknowledged once appended and readable (Kafka acks=1).
    Written,
    /// Acknowledged once fsynced (Kafka acks=all), the library's default.
    Durable,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("amount").required(true).args(["num_records", "duration"])))]
struct ProduceArgs {
    /// The store directory (created if missing).
    store: PathBuf,
    /// The topic (created if missing, with --partitions partitions).
    topic: String,
    /// Bytes of each record's value (no key, as Kafka's tool).
    #[arg(long, value_name = "BYTES")]
    record_size: usize,
    /// Records to send.
    #[arg(long, value_name = "N")]
    num_records: Option<u64>,
    /// Send for this long instead.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Most records per second; -1 for no limit (Kafka: --throughput).
    #[arg(long, value_name = "RECS_PER_SEC", default_value_t = -1.0, allow_negative_numbers = true)]
    throughput: f64,
    /// When a send is acknowledged.
    #[arg(long, value_enum, default_value_t = AcksArg::Durable)]
    acks: AcksArg,
    /// The topic's durability, when it is created (an existing topic keeps its own): `none`,
    /// `always`, `interval=MS` (sync at most every MS ms) or `messages=N` (every N records).
    #[arg(long, value_name = "WHEN", value_parser = parse_durability)]
    durability: Option<Durability>,
    /// Records per batch: the producer's batch size is set to hold this many (default: the
    /// producer's 16 KiB).
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
    /// How long a batch that is not full waits for more records (Kafka: linger.ms).
    #[arg(long, value_name = "MS", default_value_t = 5)]
    linger_ms: u64,
    /// Partitions of the topic, when it is created.
    #[arg(long, value_name = "P", default_value_t = 1)]
    partitions: u32,
    /// Print the progress lines and the summary as JSON objects, one per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("amount").required(true).args(["num_records", "duration"])))]
struct ConsumeArgs {
    /// The store directory.
    store: PathBuf,
    /// The topic.
    topic: String,
    /// Consume as this group (subscribe; start at its committed offsets, else the beginning;
    /// commit as it goes). Without one: every partition, from the beginning, nothing committed.
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Records to read.
    #[arg(long, value_name = "N")]
    num_records: Option<u64>,
    /// Read for this long instead.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Give up after this long without a record (Kafka: --timeout).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,
    /// Print the progress lines and the summary as JSON objects, one per line.
    #[arg(long)]
    json: bool,
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    let number = |v: &str| {
        v.parse::<u64>()
            .map_err(|_| format!("{v:?} is not a whole number"))
    };
    match s.split_once('=') {
        None if s == "none" => Ok(Durability::None),
        None if s == "always" => Ok(Durability::Always),
        Some(("interval", ms)) => Ok(Durability::Interval(Duration::from_millis(number(ms)?))),
        Some(("messages", n)) => Ok(Durability::EveryMessages(number(n)?)),
        _ => Err("expected none, always, interval=MS or messages=N".into()),
    }
}

/// What `perf` prints.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PerfLine {
    /// The last second or so (a window).
    Progress {
        /// `produce` or `consume`.
        test: &'static str,
        records: u64,
        records_per_sec: f64,
        mb_per_sec: f64,
        avg_latency_ms: f64,
        max_latency_ms: f64,
    },
    /// The whole run.
    Summary {
        test: &'static str,
        records: u64,
        /// Bytes of records (values, and keys when consuming).
        bytes: u64,
        elapsed_secs: f64,
        records_per_sec: f64,
        /// MiB per second, as Kafka's tools count.
        mb_per_sec: f64,
        /// Latency: send to acknowledgement (produce), one fetch (consume).
        avg_latency_ms: f64,
        p50_ms: f64,
        p95_ms: f64,
        p99_ms: f64,
        p999_ms: f64,
        max_latency_ms: f64,
        /// Sends that failed (produce); polls that returned records (consume).
        #[serde(skip_serializing_if = "Option::is_none")]
        errors: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        fetches: Option<u64>,
    },
}

impl Text for PerfLine {
    fn text(&self) -> String {
        match self {
            PerfLine::Progress {
                test,
                records,
                records_per_sec,
                mb_per_sec,
                avg_latency_ms,
                max_latency_ms,
            } => format!(
                "{records} records {}, {records_per_sec:.1} records/sec ({mb_per_sec:.2} MB/sec), \
                 {avg_latency_ms:.2} ms avg latency, {max_latency_ms:.2} ms max latency.",
                verb(test)
            ),
            PerfLine::Summary {
                test,
                records,
                records_per_sec,
                mb_per_sec,
                avg_latency_ms,
                p50_ms,
                p95_ms,
                p99_ms,
                p999_ms,
                max_latency_ms,
                elapsed_secs,
                ..
            } => format!(
                "{records} records {} in {elapsed_secs:.2} s, {records_per_sec:.1} records/sec \
                 ({mb_per_sec:.2} MB/sec), {avg_latency_ms:.2} ms avg latency, \
                 {max_latency_ms:.2} ms max latency, {p50_ms:.2} ms 50th, {p95_ms:.2} ms 95th, \
                 {p99_ms:.2} ms 99th, {p999_ms:.2} ms 99.9th.",
                verb(test)
            ),
        }
    }
}

fn verb(test: &str) -> &'static str {
    if test == "produce" {
        "sent"
    } else {
        "consumed"
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Latencies in microseconds, up to an hour.
fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (1 ..= 1 h, 3 significant digits).
    #[allow(clippy::unwrap_used)]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Counts over the whole run and over the current window, and the progress lines.
struct Meter {
    test: &'static str,
    start: Instant,
    histogram: Histogram<u64>,
    records: u64,
    bytes: u64,
    window_start: Instant,
    window_records: u64,
    window_bytes: u64,
    window_samples: u64,
    window_latency_us: u64,
    window_max_us: u64,
    out: Out<Stdout>,
}

impl Meter {
    fn new(test: &'static str, json: bool) -> Meter {
        let now = Instant::now();
        Meter {
            test,
            start: now,
            histogram: histogram(),
            records: 0,
            bytes: 0,
            window_start: now,
            window_records: 0,
            window_bytes: 0,
            window_samples: 0,
            window_latency_us: 0,
            window_max_us: 0,
            out: Out::new(io::stdout(), json),
        }
    }

    /// `records` of `bytes` done after `latency` (one sample: a record's acknowledgement, or a
    /// fetch); prints a progress line once a second.
    fn record(&mut self, records: u64, bytes: u64, latency: Duration) -> io::Result<()> {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.histogram.saturating_record(us);
        self.records += records;
        self.bytes += bytes;
        self.window_records += records;
        self.window_bytes += bytes;
        self.window_samples += 1;
        self.window_latency_us = self.window_latency_us.saturating_add(us);
        self.window_max_us = self.window_max_us.max(us);
        if self.window_start.elapsed() >= Duration::from_secs(1) {
            self.progress()?;
        }
        Ok(())
    }

    fn progress(&mut self) -> io::Result<()> {
        let secs = self.window_start.elapsed().as_secs_f64();
        let n = self.window_records;
        let line = PerfLine::Progress {
            test: self.test,
            records: n,
            records_per_sec: n as f64 / secs,
            mb_per_sec: self.window_bytes as f64 / MIB / secs,
            avg_latency_ms: if self.window_samples == 0 {
                0.0
            } else {
                ms(self.window_latency_us) / self.window_samples as f64
            },
            max_latency_ms: ms(self.window_max_us),
        };
        self.out.emit(&line)?;
        self.out.flush()?;
        self.window_start = Instant::now();
        self.window_records = 0;
        self.window_bytes = 0;
        self.window_samples = 0;
        self.window_latency_us = 0;
        self.window_max_us = 0;
        Ok(())
    }

    fn summary(&mut self, errors: Option<u64>, fetches: Option<u64>) -> io::Result<()> {
        let secs = self.start.elapsed().as_secs_f64();
        let h = &self.histogram;
        let q = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                ms(h.value_at_quantile(q))
            }
        };
        let line = PerfLine::Summary {
            test: self.test,
            records: self.records,
            bytes: self.bytes,
            elapsed_secs: secs,
            records_per_sec: self.records as f64 / secs,
            mb_per_sec: self.bytes as f64 / MIB / secs,
            avg_latency_ms: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            p50_ms: q(0.5),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_latency_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
            errors,
            fetches,
        };
        self.out.emit(&line)?;
        self.out.flush()
    }
}

pub fn run(args: &PerfArgs) -> Result<Verdict, Failure> {
    match &args.command {
        PerfCommand::Produce(args) => produce(args),
        PerfCommand::Consume(args) => consume(args),
    }
}

fn duration(secs: Option<f64>) -> Result<Option<Duration>, Failure> {
    secs.map(|s| {
        Duration::try_from_secs_f64(s)
            .map_err(|_| Failure::Usage(format!("--duration {s}: not a number of seconds")))
    })
    .transpose()
}

/// The topic, created with `--partitions` and `--durability` if missing (said on standard error).
fn produce_topic(store: &Store, args: &ProduceArgs) -> Result<(), Failure> {
    match store.topic(&args.topic) {
        Ok(topic) => {
            if args.partitions != 1 && topic.partition_count() != args.partitions {
                eprintln!(
                    "topiclog: topic {} exists with {} partitions: --partitions applies only when \
                     it is created",
                    args.topic,
                    topic.partition_count()
                );
            }
            if args
                .durability
                .is_some_and(|d| d != topic.config().durability)
            {
                eprintln!(
                    "topiclog: topic {} exists with durability {:?}: --durability applies only \
                     when it is created",
                    args.topic,
                    topic.config().durability
                );
            }
            Ok(())
        }
        Err(topiclog::Error::UnknownTopic { .. }) => {
            let config = TopicConfig {
                partitions: args.partitions,
                overrides: LogOverrides {
                    durability: args.durability,
                    ..LogOverrides::default()
                },
            };
            store.create_topic(&args.topic, config)?;
            eprintln!(
                "topiclog: created topic {} with {} partition(s)",
                args.topic, args.partitions
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A value of `size` bytes: upper-case letters, as Kafka's tool sends (not all one byte, so a
/// codec has something to do; the same for every record).
fn payload(size: usize) -> topiclog::Bytes {
    let mut x: u32 = 0x2545_f491;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b'A' + (x % 26) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn produce(args: &ProduceArgs) -> Result<Verdict, Failure> {
    let limit = duration(args.duration)?;
    if args.throughput == 0.0 || args.throughput.is_nan() {
        return Err(Failure::Usage(
            "--throughput must be positive, or -1 for no limit".into(),
        ));
    }
    let store = Store::open(&args.store)?;
    produce_topic(&store, args)?;
    let mut config = ProducerConfig {
        acks: match args.acks {
            AcksArg::None => Acks::None,
            AcksArg::Written => Acks::Written,
            AcksArg::Durable => Acks::Durable,
        },
        linger: Duration::from_millis(args.linger_ms),
        ..ProducerConfig::default()
    };
    if let Some(n) = args.batch {
        // A record's encoded size: its value, and at most 30 bytes of lengths, deltas and
        // attributes (varints); plus the batch header.
        config.batch_bytes = n.max(1).saturating_mul(args.record_size + 30) + 61;
        config.buffer_bytes = config
            .buffer_bytes
            .max(config.batch_bytes.saturating_mul(4));
    }
    let producer = store.producer(config)?;
    let value = payload(args.record_size);
    let record_size = args.record_size as u64;

    // The acknowledgement thread: waits on each handle in send order, stamps it, prints the
    // progress lines.
    let (tx, rx) = mpsc::sync_channel::<(Instant, SendHandle)>(1 << 16);
    let json = args.json;
    let acker = thread::spawn(
        move || -> (Meter, u64, Option<topiclog::Error>, io::Result<()>) {
            let mut meter = Meter::new("produce", json);
            let (mut errors, mut first_error) = (0, None);
            for (sent, handle) in rx {
                match handle.wait() {
                    Ok(_) => {
                        if let Err(e) = meter.record(1, record_size, sent.elapsed()) {
                            return (meter, errors, first_error, Err(e));
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (meter, errors, first_error, Ok(()))
        },
    );

    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut send_error = None;
    loop {
        if args.num_records.is_some_and(|n| sent >= n)
            || limit.is_some_and(|d| start.elapsed() >= d)
        {
            break;
        }
        if args.throughput > 0.0 {
            // Kafka's ThroughputThrottler: ahead of the rate, sleep until the schedule catches up.
            let due = Duration::from_secs_f64(sent as f64 / args.throughput);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
        }
        let at = Instant::now();
        match producer.send(&args.topic, Record::new(value.clone())) {
            Ok(handle) => {
                if tx.send((at, handle)).is_err() {
                    // The acknowledgement thread stopped: its result says why.
                    break;
                }
            }
            Err(e) => {
                send_error = Some(e);
                break;
            }
        }
        sent += 1;
    }
    drop(tx);
    let flushed = producer.flush();
    let (mut meter, errors, first_error, printed) = acker
        .join()
        .map_err(|_| Failure::Usage("the acknowledgement thread panicked".into()))?;
    printed?;
    meter.summary(Some(errors), None)?;
    producer.close()?;
    store.close()?;
    if let Some(e) = send_error.or(first_error) {
        return Err(e.into());
    }
    flushed?;
    Ok(Verdict::Sound)
}

fn consume(args: &ConsumeArgs) -> Result<Verdict, Failure> {
    let limit = duration(args.duration)?;
    let idle = Duration::try_from_secs_f64(args.timeout).map_err(|_| {
        Failure::Usage(format!(
            "--timeout {}: not a number of seconds",
            args.timeout
        ))
    })?;
    if !Path::new(&args.store).is_dir() {
        return Err(Failure::Usage(format!(
            "{}: no such store directory",
            args.store.display()
        )));
    }
    let mut source = match &args.group {
        // A group member commits: the writer's job.
        Some(group) => {
            let store = Store::open(&args.store)?;
            let mut consumer = store.consumer(ConsumerConfig {
                auto_offset_reset: AutoOffsetReset::Earliest,
                ..ConsumerConfig::group(group.clone())
            })?;
            consumer.subscribe(&[&args.topic])?;
            Source::Member(store, Box::new(consumer))
        }
        // Otherwise read-only, beside a live writer if there is one.
        None => Source::Reader(topiclog::ReadOnlyStore::open(&args.store)?.reader(&args.topic)?),
    };
    let mut meter = Meter::new("consume", args.json);
    let mut last_record = Instant::now();
    let mut fetches = 0;
    loop {
        if args.num_records.is_some_and(|n| meter.records >= n)
            || limit.is_some_and(|d| meter.start.elapsed() >= d)
        {
            break;
        }
        if last_record.elapsed() >= idle {
            eprintln!(
                "topiclog: stopping: no record for {:.1} s (--timeout){}",
                args.timeout,
                args.num_records
                    .map(|n| format!(", {} of {n} records consumed", meter.records))
                    .unwrap_or_default()
            );
            break;
        }
        let at = Instant::now();
        let (count, bytes) = source.fetch()?;
        if count == 0 {
            continue;
        }
        let took = at.elapsed();
        last_record = Instant::now();
        fetches += 1;
        meter.record(count, bytes, took)?;
    }
    meter.summary(None, Some(fetches))?;
    if let Source::Member(store, mut consumer) = source {
        consumer.close()?;
        store.close()?;
    }
    Ok(Verdict::Sound)
}

/// Where `perf consume` fetches from: a group member (of a store it opened as the writer), or
/// a read-only reader of every partition.
enum Source {
    Member(Store, Box<topiclog::Consumer>),
    Reader(topiclog::TopicReader),
}

impl Source {
    /// One fetch: a poll (waiting up to 100 ms when nothing is there). Records and key + value
    /// bytes fetched.
    fn fetch(&mut self) -> Result<(u64, u64), Failure> {
        let wait = Duration::from_millis(100);
        let records = match self {
            Source::Member(_, consumer) => consumer.poll(wait)?,
            Source::Reader(reader) => reader.poll(wait)?,
        };
        let bytes = records
            .iter()
            .map(|r| (r.key().map_or(0, |k| k.len()) + r.value().map_or(0, |v| v.len())) as u64)
            .sum();
        Ok((records.len() as u64, bytes))
    }
}
