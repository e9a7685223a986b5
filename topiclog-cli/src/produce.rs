//! `topiclog produce`: Kafka's `kafka-console-producer`: one record per line of standard input,
//! sent through the library's producer, then a summary of where they went.

use std::collections::BTreeMap;
use std::io::{self, BufRead};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;
use topiclog::{Acks, Bytes, ProducerConfig, Record, SendHandle};

use crate::store_access::{key_value, open_writer, Printer};
use crate::{Failure, Verdict};

/// Sends waited on at once at most: what a long input keeps in memory.
const IN_FLIGHT: usize = 4096;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The store directory.
    store: PathBuf,
    /// The topic (it must exist: create it with `topiclog topics create`).
    topic: String,
    /// Each line is `<key><SEPARATOR><value>`, split at the first separator (Kafka:
    /// parse.key=true, key.separator); a line without it is an error. Without this option lines
    /// are values and records have no key.
    #[arg(long, value_name = "SEPARATOR")]
    key_separator: Option<String>,
    /// A header `key=value` given to every record; repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Send every record to this partition (else the default partitioner: by key hash, or
    /// sticky batches for records without a key).
    #[arg(long)]
    partition: Option<u32>,
    /// When a send counts as done (Kafka's acks: 0, 1, all).
    #[arg(long, value_enum, default_value = "durable")]
    acks: AcksArg,
    /// Print the summary as JSON (one object).
    #[arg(long)]
    json: bool,
}

/// `--acks`: the library's [`Acks`], by its names or Kafka's.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum AcksArg {
    /// Accepted into the producer's buffer; offsets are not known (Kafka: acks=0).
    #[value(alias = "0")]
    None,
    /// Appended and visible to readers (Kafka: acks=1).
    #[value(name = "leader", alias = "1", alias = "written")]
    Leader,
    /// Appended and fsynced (Kafka: acks=all, -1).
    #[value(alias = "all", alias = "-1")]
    Durable,
}

impl From<AcksArg> for Acks {
    fn from(a: AcksArg) -> Acks {
        match a {
            AcksArg::None => Acks::None,
            AcksArg::Leader => Acks::Written,
            AcksArg::Durable => Acks::Durable,
        }
    }
}

/// Where the records sent to one partition went.
#[derive(Debug, Default, Serialize)]
struct PartitionSummary {
    partition: u32,
    records: u64,
    /// First and last offset written; `None` with `--acks none` (offsets are not reported).
    first_offset: Option<u64>,
    last_offset: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ProduceLine<'a> {
    Produced {
        topic: &'a str,
        records: u64,
        partitions: Vec<PartitionSummary>,
    },
}

/// The records' summary, by partition.
#[derive(Default)]
struct Summary {
    partitions: BTreeMap<u32, PartitionSummary>,
}

impl Summary {
    /// Wait for `handles` and count where their records went.
    fn settle(&mut self, handles: &mut Vec<SendHandle>) -> Result<(), Failure> {
        for handle in handles.drain(..) {
            let metadata = handle.wait()?;
            let p = self
                .partitions
                .entry(metadata.partition)
                .or_insert_with(|| PartitionSummary {
                    partition: metadata.partition,
                    ..PartitionSummary::default()
                });
            p.records += 1;
            if metadata.has_offset() {
                let o = metadata.offset;
                p.first_offset = Some(p.first_offset.map_or(o, |f| f.min(o)));
                p.last_offset = Some(p.last_offset.map_or(o, |l| l.max(o)));
            }
        }
        Ok(())
    }

    fn records(&self) -> u64 {
        self.partitions.values().map(|p| p.records).sum()
    }
}

pub fn run(args: &ProduceArgs) -> Result<Verdict, Failure> {
    let headers = args
        .headers
        .iter()
        .map(|h| key_value(h, "--header").map(|(k, v)| (k.to_owned(), Bytes::from(v.to_owned()))))
        .collect::<Result<Vec<_>, _>>()?;
    if args.key_separator.as_deref() == Some("") {
        return Err(Failure::Usage("--key-separator: must not be empty".into()));
    }
    let store = open_writer(&args.store, "produce", false)?;
    // Unknown topics and partitions are refused before a line is read.
    let topic = store.topic(&args.topic).map_err(|e| match e {
        topiclog::Error::UnknownTopic { name } => Failure::Usage(format!(
            "topic {name:?} does not exist in {}; produce does not create topics: create it \
             with `topiclog topics create`",
            args.store.display()
        )),
        e => Failure::Library(e),
    })?;
    if let Some(p) = args.partition {
        topic.partition(p)?;
    }
    let producer = store.producer(ProducerConfig {
        acks: args.acks.into(),
        ..ProducerConfig::default()
    })?;
    let mut summary = Summary::default();
    let mut handles = Vec::new();
    // What stopped the input early: the records before it are still produced and summed up.
    let mut stopped = None;
    let mut input = io::stdin().lock();
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                stopped = Some(Failure::Usage(format!(
                    "cannot read standard input: {e}; the records before line {n} were produced"
                )));
                break;
            }
        }
        // Bytes as they come (values need not be UTF-8), without the line ending.
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let mut record = match &args.key_separator {
            None => Record::new(text.to_vec()),
            Some(sep) => match split_once(text, sep.as_bytes()) {
                Some((key, value)) => Record::new(value.to_vec()).with_key(key.to_vec()),
                None => {
                    stopped = Some(Failure::Usage(format!(
                        "line {n}: no key separator {sep:?} found; the records before it were \
                         produced"
                    )));
                    break;
                }
            },
        };
        for (k, v) in &headers {
            record = record.with_header(k.clone(), v.clone());
        }
        let sent = match args.partition {
            Some(p) => producer.send_to(&args.topic, p, record),
            None => producer.send(&args.topic, record),
        };
        match sent {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                stopped = Some(Failure::Library(e));
                break;
            }
        }
        if handles.len() >= IN_FLIGHT {
            summary.settle(&mut handles)?;
        }
    }
    producer.flush()?;
    summary.settle(&mut handles)?;
    producer.close()?;
    store.close()?;

    let mut out = Printer::new(args.json);
    let records = summary.records();
    let partitions: Vec<PartitionSummary> = summary.partitions.into_values().collect();
    let text = || {
        let mut s = format!("Produced {records} records to {}.", args.topic);
        for p in &partitions {
            s.push_str(&format!(
                "\n  partition {}: {} records",
                p.partition, p.records
            ));
            if let (Some(f), Some(l)) = (p.first_offset, p.last_offset) {
                s.push_str(&format!(", offsets {f} to {l}"));
            }
        }
        s
    };
    let text = text();
    out.line(
        &ProduceLine::Produced {
            topic: &args.topic,
            records,
            partitions,
        },
        || text,
    )?;
    out.flush()?;
    match stopped {
        Some(failure) => Err(failure),
        None => Ok(Verdict::Sound),
    }
}

/// `bytes` split at the first `separator`.
fn split_once<'a>(bytes: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = bytes
        .windows(separator.len())
        .position(|w| w == separator)?;
    Some((&bytes[..at], &bytes[at + separator.len()..]))
}
