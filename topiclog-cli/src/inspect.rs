//! The commands that only read a store: `topics list|describe`, `groups list|describe`,
//! `consume` and `stats`. They open the store read-only (`topiclog::ReadOnlyStore`), so they
//! work while another process holds it for writing, take no lock and write nothing; `consume
//! --group` is the exception: committing is the writer's, so it opens the store as its writer.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;
use topiclog::{Error, ReadOnlyPartition, ReadOnlyStore, StoredRecord};

use crate::line::{Out, Printed, Text};
use crate::{Failure, Verdict};

/// Open the store in `dir` to read, with messages for the usual mistakes.
fn open(dir: &Path) -> Result<ReadOnlyStore, Failure> {
    ReadOnlyStore::open(dir).map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
            Failure::Usage(format!("{}: no such store directory", dir.display()))
        }
        Error::NotAStore { .. } => Failure::Usage(format!(
            "{}: not a topiclog store (no LOCK file)",
            dir.display()
        )),
        e => Failure::Library(e),
    })
}

fn out(json: bool) -> Out<io::BufWriter<io::StdoutLock<'static>>> {
    Out::new(io::BufWriter::new(io::stdout().lock()), json)
}

/// Who holds the store, as the commands print it.
fn writer_text(store: &ReadOnlyStore) -> Result<String, Failure> {
    Ok(match store.writer()? {
        Some(holder) => format!("held for writing by {holder}"),
        None => "not held by a writer".to_owned(),
    })
}

#[derive(Debug, Args)]
pub struct TopicsListArgs {
    /// The store directory.
    store: PathBuf,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "topic")]
struct TopicLine {
    name: String,
    partitions: u32,
}

impl Text for TopicLine {
    fn text(&self) -> String {
        self.name.clone()
    }
}

/// `topics list`: the topics, one per line (Kafka: kafka-topics --list).
pub fn topics_list(args: &TopicsListArgs) -> Result<Verdict, Failure> {
    let store = open(&args.store)?;
    let mut out = out(args.json);
    for name in store.topics()? {
        let partitions = store.topic_config(&name)?.partitions;
        out.emit(&TopicLine { name, partitions })?;
    }
    out.flush()?;
    Ok(Verdict::Sound)
}

#[derive(Debug, Args)]
pub struct TopicsDescribeArgs {
    /// The store directory.
    store: PathBuf,
    /// The topic (all topics if left out).
    topic: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// One partition of `topics describe`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "partition")]
struct PartitionLine {
    topic: String,
    partition: u32,
    start_offset: u64,
    end_offset: u64,
    segments: usize,
    size_bytes: u64,
}

impl Text for PartitionLine {
    fn text(&self) -> String {
        format!(
            "\tTopic: {}\tPartition: {}\tStartOffset: {}\tEndOffset: {}\tSegments: {}\tSize: {}",
            self.topic,
            self.partition,
            self.start_offset,
            self.end_offset,
            self.segments,
            self.size_bytes
        )
    }
}

/// The head of one topic in `topics describe`: its config as `topic.conf` holds it.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "topic")]
struct TopicHead {
    name: String,
    partitions: u32,
    /// Every setting, by Kafka key, as the topic was created (the store's defaults then
    /// resolved into it) and altered since.
    config: Vec<(&'static str, String)>,
}

impl Text for TopicHead {
    fn text(&self) -> String {
        let config: Vec<String> = self
            .config
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "Topic: {}\tPartitionCount: {}\tConfigs: {}",
            self.name,
            self.partitions,
            config.join(",")
        )
    }
}

fn partition_line(
    topic: &str,
    partition: u32,
    p: &ReadOnlyPartition,
) -> Result<PartitionLine, Failure> {
    let segments = p.segments()?;
    Ok(PartitionLine {
        topic: topic.to_owned(),
        partition,
        start_offset: p.start_offset()?,
        end_offset: p.end_offset()?,
        segments: segments.len(),
        size_bytes: segments.iter().map(|s| s.size_bytes).sum(),
    })
}

/// `topics describe`: each topic's config and, per partition, its offsets and files (Kafka:
/// kafka-topics --describe, with the log-dirs view's sizes).
pub fn topics_describe(args: &TopicsDescribeArgs) -> Result<Verdict, Failure> {
    let store = open(&args.store)?;
    let topics = match &args.topic {
        Some(t) => vec![t.clone()],
        None => store.topics()?,
    };
    let mut out = out(args.json);
    for name in topics {
        let config = store.topic_config(&name)?;
        out.emit(&TopicHead {
            name: name.clone(),
            partitions: config.partitions,
            config: config.overrides.kafka_settings(),
        })?;
        for p in 0..config.partitions {
            out.emit(&partition_line(&name, p, &store.partition(&name, p)?)?)?;
        }
    }
    out.flush()?;
    Ok(Verdict::Sound)
}

#[derive(Debug, Args)]
pub struct GroupsListArgs {
    /// The store directory.
    store: PathBuf,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "group")]
struct GroupLine {
    name: String,
}

impl Text for GroupLine {
    fn text(&self) -> String {
        self.name.clone()
    }
}

/// `groups list`: the groups with committed offsets (Kafka: kafka-consumer-groups --list).
pub fn groups_list(args: &GroupsListArgs) -> Result<Verdict, Failure> {
    let store = open(&args.store)?;
    let mut out = out(args.json);
    for name in store.groups()? {
        out.emit(&GroupLine { name })?;
    }
    out.flush()?;
    Ok(Verdict::Sound)
}

#[derive(Debug, Args)]
pub struct GroupsDescribeArgs {
    /// The store directory.
    store: PathBuf,
    /// The consumer group.
    group: String,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "group_partition")]
struct LagLine {
    group: String,
    topic: String,
    partition: u32,
    /// The committed offset (the next to consume), if any.
    current_offset: Option<u64>,
    /// The partition's end offset now (`None` if it no longer exists).
    log_end_offset: Option<u64>,
    lag: Option<u64>,
}

fn or_dash(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl Text for LagLine {
    /// Text prints a table of all lines instead (see `groups_describe`).
    fn text(&self) -> String {
        format!("{} {} {}", self.group, self.topic, self.partition)
    }
}

/// A table for people: a header row, then `rows`, aligned, without borders (as the Kafka tools
/// print theirs).
fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    t.set_header(header.iter().copied());
    for row in rows {
        t.add_row(row);
    }
    t.trim_fmt()
}

/// `groups describe`: per partition the group committed for, committed offset, end and lag
/// (Kafka: kafka-consumer-groups --describe; members live in the writer's process, so there is
/// no CONSUMER-ID column).
pub fn groups_describe(args: &GroupsDescribeArgs) -> Result<Verdict, Failure> {
    let store = open(&args.store)?;
    let lags = store.group_lag(&args.group)?;
    if lags.is_empty() {
        return Err(Failure::Usage(format!(
            "group {:?} has no committed offsets in {}",
            args.group,
            args.store.display()
        )));
    }
    let lines: Vec<LagLine> = lags
        .into_iter()
        .map(|l| LagLine {
            group: args.group.clone(),
            topic: l.partition.topic,
            partition: l.partition.partition,
            current_offset: l.committed.map(|c| c.offset),
            log_end_offset: l.end_offset,
            lag: l.lag,
        })
        .collect();
    let mut out = out(args.json);
    if args.json {
        for l in &lines {
            out.emit(l)?;
        }
    } else {
        let rows = lines.iter().map(|l| {
            vec![
                l.group.clone(),
                l.topic.clone(),
                l.partition.to_string(),
                or_dash(l.current_offset),
                or_dash(l.log_end_offset),
                or_dash(l.lag),
            ]
        });
        let header = [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
        ];
        out.raw(&table(&header, rows))?;
    }
    out.flush()?;
    Ok(Verdict::Sound)
}

/// How `consume` prints records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The value (and with --print-* the other fields, tab-separated), as text when it is
    /// printable UTF-8, else as 0x-hex.
    Text,
    /// One JSON object per record.
    Json,
    /// As text, with keys, values and headers always in hex.
    Hex,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The store directory.
    store: PathBuf,
    /// The topic.
    topic: String,
    /// Only this partition (all partitions if left out).
    #[arg(long)]
    partition: Option<u32>,
    /// Start at each partition's first record (the default without --follow).
    #[arg(long, conflicts_with_all = ["offset", "time"])]
    from_beginning: bool,
    /// Start at this offset (needs --partition).
    #[arg(long, requires = "partition", conflicts_with = "time")]
    offset: Option<u64>,
    /// Start at the first record at or after this time (ms since the Unix epoch).
    #[arg(long)]
    time: Option<i64>,
    /// Keep waiting for new records (until --max-records, or interrupted); without it, print
    /// what is there and stop. With --follow and no start given, start at the end, as
    /// kafka-console-consumer does.
    #[arg(long)]
    follow: bool,
    /// Stop after this many records.
    #[arg(long)]
    max_records: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Text: print the key before the value.
    #[arg(long)]
    print_key: bool,
    /// Text: print partition and offset first.
    #[arg(long)]
    print_offset: bool,
    /// Text: print the timestamp.
    #[arg(long)]
    print_timestamp: bool,
    /// Text: print the headers.
    #[arg(long)]
    print_headers: bool,
    /// Consume as a member of this consumer group and commit what was printed (the writer's
    /// job: the store must not be held by another process).
    #[arg(long, conflicts_with_all = ["offset", "time", "partition"])]
    group: Option<String>,
}

/// One record as `consume --format json` prints it.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "record")]
struct RecordLine {
    topic: String,
    partition: u32,
    offset: u64,
    timestamp: i64,
    key: Option<Printed>,
    value: Option<Printed>,
    headers: Vec<(String, Option<Printed>)>,
}

impl Text for RecordLine {
    /// Only JSON prints a whole record line; text prints the fields `--print-*` ask for.
    fn text(&self) -> String {
        shown(&self.value)
    }
}

fn printed(bytes: Option<&[u8]>, hex: bool) -> Option<Printed> {
    bytes.map(|b| Printed::new(b, hex))
}

fn shown(p: &Option<Printed>) -> String {
    match p {
        None => "null".to_owned(),
        Some(Printed::Text(t)) => t.clone(),
        Some(Printed::Hex(h)) => format!("0x{h}"),
    }
}

struct RecordPrinter<'a> {
    args: &'a ConsumeArgs,
    out: Out<io::BufWriter<io::StdoutLock<'static>>>,
    printed: u64,
}

impl RecordPrinter<'_> {
    fn print(&mut self, partition: u32, r: &StoredRecord) -> io::Result<()> {
        let hex = self.args.format == Format::Hex;
        let line = RecordLine {
            topic: self.args.topic.clone(),
            partition,
            offset: r.offset(),
            timestamp: r.timestamp(),
            key: printed(r.key().map(|k| &k[..]), hex),
            value: printed(r.value().map(|v| &v[..]), hex),
            headers: r
                .headers()
                .map(|h| (h.key.to_owned(), printed(h.value, hex)))
                .collect(),
        };
        self.printed += 1;
        if self.args.format == Format::Json {
            return self.out.emit(&line);
        }
        let a = self.args;
        let mut fields = Vec::new();
        if a.print_offset {
            fields.push(format!("{}:{}", line.partition, line.offset));
        }
        if a.print_timestamp {
            fields.push(line.timestamp.to_string());
        }
        if a.print_key {
            fields.push(shown(&line.key));
        }
        if a.print_headers {
            let h: Vec<String> = line
                .headers
                .iter()
                .map(|(k, v)| format!("{k}:{}", shown(v)))
                .collect();
            fields.push(h.join(","));
        }
        fields.push(shown(&line.value));
        self.out.raw(&fields.join("\t"))
    }

    fn done(&self) -> bool {
        self.args.max_records.is_some_and(|m| self.printed >= m)
    }
}

/// `consume`: print a topic's records (Kafka: kafka-console-consumer).
pub fn consume(args: &ConsumeArgs) -> Result<Verdict, Failure> {
    if let Some(group) = &args.group {
        return consume_as_member(args, group);
    }
    let store = open(&args.store)?;
    let mut reader = match args.partition {
        Some(p) => store.reader_of(&args.topic, &[p])?,
        None => store.reader(&args.topic)?,
    };
    if let (Some(o), Some(p)) = (args.offset, args.partition) {
        reader.seek(p, o)?;
    } else if let Some(t) = args.time {
        reader.seek_to_time(t)?;
    } else if args.follow && !args.from_beginning {
        reader.seek_to_end()?;
    }
    let mut printer = RecordPrinter {
        args,
        out: out(args.format == Format::Json),
        printed: 0,
    };
    while !printer.done() {
        // Without --follow: what is there now, then stop.
        let wait = if args.follow {
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        let records = reader.poll(wait)?;
        if records.is_empty() {
            if !args.follow {
                break;
            }
            printer.out.flush()?;
            continue;
        }
        for r in records.iter() {
            if printer.done() {
                break;
            }
            printer.print(r.partition(), r.record())?;
        }
    }
    printer.out.flush()?;
    Ok(Verdict::Sound)
}

/// `consume --group`: a member of `group` that commits what it printed.
fn consume_as_member(args: &ConsumeArgs, group: &str) -> Result<Verdict, Failure> {
    let store = match topiclog::Store::open_with(
        &args.store,
        topiclog::StoreOptions {
            background_cleaner: false,
            ..topiclog::StoreOptions::default()
        },
    ) {
        Ok(s) => s,
        Err(Error::AlreadyOpen { path, holder }) => {
            let by = holder.map_or_else(String::new, |h| format!(" (held by {h})"));
            return Err(Failure::Library(Error::ReadOnly {
                path,
                operation: format!(
                    "consuming as a member of group {group:?} (joining, committing){by}; without \
                     --group it reads read-only"
                ),
            }));
        }
        Err(e) => return Err(Failure::Library(e)),
    };
    let mut consumer = store.consumer(topiclog::ConsumerConfig {
        auto_offset_reset: if args.from_beginning || !args.follow {
            topiclog::AutoOffsetReset::Earliest
        } else {
            topiclog::AutoOffsetReset::Latest
        },
        enable_auto_commit: false,
        ..topiclog::ConsumerConfig::group(group)
    })?;
    consumer.subscribe(&[args.topic.as_str()])?;
    let mut printer = RecordPrinter {
        args,
        out: out(args.format == Format::Json),
        printed: 0,
    };
    let mut idle_since = Instant::now();
    while !printer.done() {
        let records = consumer.poll(Duration::from_millis(100))?;
        if records.is_empty() {
            printer.out.flush()?;
            // Not following: stop once a second has brought nothing (the group's first
            // assignment included).
            if !args.follow && idle_since.elapsed() > Duration::from_secs(1) {
                break;
            }
            continue;
        }
        idle_since = Instant::now();
        for r in records.iter() {
            if printer.done() {
                break;
            }
            printer.print(r.partition(), r.record())?;
            consumer.seek(
                &topiclog::TopicPartition::new(r.topic(), r.partition()),
                r.offset() + 1,
            )?;
        }
        consumer.commit_sync()?;
    }
    printer.out.flush()?;
    consumer.commit_sync()?;
    drop(consumer);
    store.close()?;
    Ok(Verdict::Sound)
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The store directory.
    store: PathBuf,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "store")]
struct StoreLine {
    dir: String,
    writer: String,
    topics: usize,
    partitions: u64,
    records: u64,
    segments: u64,
    size_bytes: u64,
}

impl Text for StoreLine {
    fn text(&self) -> String {
        format!(
            "Store: {} ({})\nTopics: {}\tPartitions: {}\tRecords: {}\tSegments: {}\tSize: {}",
            self.dir,
            self.writer,
            self.topics,
            self.partitions,
            self.records,
            self.segments,
            self.size_bytes
        )
    }
}

/// `stats`: the store's totals, then per partition offsets, records and files.
pub fn stats(args: &StatsArgs) -> Result<Verdict, Failure> {
    let store = open(&args.store)?;
    let mut lines = Vec::new();
    for name in store.topics()? {
        for p in 0..store.topic_config(&name)?.partitions {
            lines.push(partition_line(&name, p, &store.partition(&name, p)?)?);
        }
    }
    let mut out = out(args.json);
    out.emit(&StoreLine {
        dir: args.store.display().to_string(),
        writer: writer_text(&store)?,
        topics: store.topics()?.len(),
        partitions: lines.len() as u64,
        records: lines.iter().map(|l| l.end_offset - l.start_offset).sum(),
        segments: lines.iter().map(|l| l.segments as u64).sum(),
        size_bytes: lines.iter().map(|l| l.size_bytes).sum(),
    })?;
    if args.json {
        for line in &lines {
            out.emit(line)?;
        }
    } else if !lines.is_empty() {
        let rows = lines.iter().map(|l| {
            vec![
                l.topic.clone(),
                l.partition.to_string(),
                l.start_offset.to_string(),
                l.end_offset.to_string(),
                (l.end_offset - l.start_offset).to_string(),
                l.segments.to_string(),
                l.size_bytes.to_string(),
            ]
        });
        let header = [
            "TOPIC",
            "PARTITION",
            "START-OFFSET",
            "END-OFFSET",
            "RECORDS",
            "SEGMENTS",
            "SIZE",
        ];
        out.raw(&table(&header, rows))?;
    }
    out.flush()?;
    Ok(Verdict::Sound)
}
