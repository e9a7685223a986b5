//! `topiclog export-kafka` and `import-kafka`: a store's topics written as a Kafka log directory
//! (for a broker to adopt, `docs/KAFKA.md`), and topics created from one, through the library's
//! `Store::export_kafka_with` / `import_kafka_with`. Their progress observer draws a bar per
//! partition on standard error when it is a terminal.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use topiclog::{
    KafkaExportOptions, KafkaImportOptions, LogOverrides, Progress, ProgressEvent,
    ProgressOperation, ProgressStage,
};

use crate::store_access::{key_value, open_writer, Printer};
use crate::{Failure, Verdict};

#[derive(Debug, Args)]
pub struct ExportKafkaArgs {
    /// The store directory.
    store: PathBuf,
    /// The Kafka log directory to write `<topic>-<partition>` directories and checkpoint files
    /// into (created if missing; partitions already there are refused).
    dest: PathBuf,
    /// Export this topic (repeatable; default: every topic).
    #[arg(long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,
    /// Copy every file instead of hard-linking sealed segments (for an export a broker will
    /// use on this file system while the store goes on).
    #[arg(long)]
    no_hard_links: bool,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ImportKafkaArgs {
    /// The Kafka log directory to read `<topic>-<partition>` directories from (only read).
    src: PathBuf,
    /// The store directory.
    store: PathBuf,
    /// Import this topic (repeatable; default: every topic there but Kafka's internal ones).
    #[arg(long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,
    /// A config override for the imported topics, `key=value` with Kafka's key names (a Kafka
    /// log directory holds no topic config: set cleanup.policy=compact for a compacted topic,
    /// and a retention.ms that keeps old records); repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// Copy every segment instead of hard-linking them (do so if a broker may run on the
    /// source directory later).
    #[arg(long)]
    no_hard_links: bool,
    /// Create the store directory if there is none.
    #[arg(long)]
    create_store: bool,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KafkaLine<'a> {
    PartitionExported {
        topic: &'a str,
        partition: u32,
        dir: &'a Path,
        start_offset: u64,
        end_offset: u64,
        segments: usize,
        hard_linked: usize,
        copied_bytes: u64,
    },
    Exported {
        dir: &'a Path,
        topics: Vec<&'a str>,
        partitions: usize,
    },
    PartitionImported {
        topic: &'a str,
        partition: u32,
        source: &'a Path,
        start_offset: u64,
        end_offset: u64,
        segments: usize,
        hard_linked: usize,
        copied_bytes: u64,
        bytes_truncated: u64,
    },
    Skipped {
        path: &'a Path,
    },
    Imported {
        topics: &'a [String],
        partitions: usize,
    },
}

/// A progress bar per partition, drawn on standard error if it is a terminal (hidden otherwise,
/// so pipes and tests get clean output).
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<PathBuf, ProgressBar>>,
}

impl Bars {
    fn new() -> Arc<Bars> {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Arc::new(Bars {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
        })
    }
}

impl Progress for Bars {
    fn on_progress(&self, e: &ProgressEvent<'_>) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match e.stage {
            ProgressStage::Started => {
                let verb = match e.operation {
                    ProgressOperation::Export => "export",
                    ProgressOperation::Import => "import",
                    _ => "work on",
                };
                let name = match (e.topic, e.partition) {
                    (Some(t), Some(p)) => format!("{t}-{p}"),
                    _ => e.dir.display().to_string(),
                };
                let bar = self.multi.add(ProgressBar::new(e.total_bytes));
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg:30} [{bar:30}] {bytes}/{total_bytes} ({eta})",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message(format!("{verb} {name}"));
                bars.insert(e.dir.to_owned(), bar);
            }
            ProgressStage::Advanced => {
                if let Some(bar) = bars.get(e.dir) {
                    bar.set_position(e.done_bytes);
                }
            }
            _ => {
                if let Some(bar) = bars.remove(e.dir) {
                    bar.set_position(e.done_bytes);
                    bar.finish();
                }
            }
        }
    }

    fn interval_bytes(&self) -> u64 {
        1 << 20
    }
}

pub fn export(args: &ExportKafkaArgs) -> Result<Verdict, Failure> {
    let topics: Vec<&str> = args.topics.iter().map(String::as_str).collect();
    let options = KafkaExportOptions {
        hard_links: !args.no_hard_links,
        progress: Some(Bars::new() as Arc<dyn Progress>),
        ..KafkaExportOptions::default()
    };
    // A store another process holds is exported read-only, beside its writer (a backup of a
    // live store): every segment copied, none linked.
    let held = topiclog::ReadOnlyStore::open(&args.store)
        .ok()
        .and_then(|s| s.writer().ok().flatten().map(|holder| (s, holder)));
    let report = match held {
        Some((reader, holder)) if holder.pid.is_some() => {
            eprintln!(
                "topiclog: {} is held by {holder}: exporting read-only (segments copied, not \
                 hard-linked) up to what its writer has made visible",
                args.store.display()
            );
            reader.export_kafka_with(&args.dest, &topics, &options)?
        }
        _ => {
            let store = open_writer(&args.store, "export-kafka", false)?;
            let report = store.export_kafka_with(&args.dest, &topics, &options)?;
            store.close()?;
            report
        }
    };

    let mut out = Printer::new(args.json);
    for ((topic, partition), e) in &report.partitions {
        out.line(
            &KafkaLine::PartitionExported {
                topic,
                partition: *partition,
                dir: &e.dir,
                start_offset: e.start_offset,
                end_offset: e.end_offset,
                segments: e.segments,
                hard_linked: e.hard_linked,
                copied_bytes: e.copied_bytes,
            },
            || {
                format!(
                    "Exported {topic}-{partition}: start offset {}, end offset {} ({} segments, {} hard-linked, \
                     {} bytes copied) into {}",
                    e.start_offset,
                    e.end_offset,
                    e.segments,
                    e.hard_linked,
                    e.copied_bytes,
                    e.dir.display()
                )
            },
        )?;
    }
    let mut names: Vec<&str> = report.partitions.keys().map(|(t, _)| t.as_str()).collect();
    names.dedup();
    let partitions = report.partitions.len();
    let summary = format!(
        "Exported {partitions} partitions of {} topics to {}.",
        names.len(),
        report.dir.display()
    );
    out.line(
        &KafkaLine::Exported {
            dir: &report.dir,
            topics: names,
            partitions,
        },
        || summary,
    )?;
    out.flush()?;
    Ok(Verdict::Sound)
}

pub fn import(args: &ImportKafkaArgs) -> Result<Verdict, Failure> {
    let mut overrides = LogOverrides::default();
    for arg in &args.configs {
        let (key, value) = key_value(arg, "--config")?;
        overrides.set_kafka(key, value)?;
    }
    if !args.src.is_dir() {
        return Err(Failure::Usage(format!(
            "{}: no such Kafka log directory",
            args.src.display()
        )));
    }
    let store = open_writer(&args.store, "import-kafka", args.create_store)?;
    let topics: Vec<&str> = args.topics.iter().map(String::as_str).collect();
    let options = KafkaImportOptions {
        hard_links: !args.no_hard_links,
        overrides,
        progress: Some(Bars::new() as Arc<dyn Progress>),
        ..KafkaImportOptions::default()
    };
    let report = store.import_kafka_with(&args.src, &topics, &options)?;
    store.close()?;

    let mut out = Printer::new(args.json);
    for ((topic, partition), i) in &report.partitions {
        out.line(
            &KafkaLine::PartitionImported {
                topic,
                partition: *partition,
                source: &i.source,
                start_offset: i.start_offset,
                end_offset: i.end_offset,
                segments: i.segments,
                hard_linked: i.hard_linked,
                copied_bytes: i.copied_bytes,
                bytes_truncated: i.bytes_truncated,
            },
            || {
                let mut s = format!(
                    "Imported {topic}-{partition} from {}: start offset {}, end offset {} ({} segments, {} \
                     hard-linked, {} bytes copied)",
                    i.source.display(),
                    i.start_offset,
                    i.end_offset,
                    i.segments,
                    i.hard_linked,
                    i.copied_bytes
                );
                if i.bytes_truncated > 0 {
                    s.push_str(&format!(
                        "; {} bytes of a torn tail cut, as Kafka's recovery would",
                        i.bytes_truncated
                    ));
                }
                s
            },
        )?;
    }
    for path in &report.skipped {
        out.line(&KafkaLine::Skipped { path }, || {
            format!("Skipped {}", path.display())
        })?;
    }
    let partitions = report.partitions.len();
    out.line(
        &KafkaLine::Imported {
            topics: &report.topics,
            partitions,
        },
        || {
            format!(
                "Imported {partitions} partitions of {} topics: {}.",
                report.topics.len(),
                report.topics.join(", ")
            )
        },
    )?;
    out.flush()?;
    Ok(Verdict::Sound)
}
