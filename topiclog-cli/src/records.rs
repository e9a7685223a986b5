//! `topiclog delete-records`: Kafka's `kafka-delete-records`: move a partition's log start
//! offset (its low watermark) up, so the records below it are gone for readers; their segments
//! go at the next retention pass.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::store_access::{open_writer, Printer};
use crate::{Failure, Verdict};

#[derive(Debug, Args)]
pub struct DeleteRecordsArgs {
    /// The store directory.
    store: PathBuf,
    /// The topic.
    topic: String,
    /// The partition.
    #[arg(long)]
    partition: u32,
    /// Delete every record below this offset (at most the partition's end offset).
    #[arg(long, value_name = "OFFSET")]
    before_offset: u64,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RecordsLine<'a> {
    RecordsDeleted {
        topic: &'a str,
        partition: u32,
        /// The log start offset before.
        old_low_watermark: u64,
        /// The log start offset now (the offset asked for, or where it already was if higher).
        low_watermark: u64,
    },
}

pub fn run(args: &DeleteRecordsArgs) -> Result<Verdict, Failure> {
    let store = open_writer(&args.store, "delete-records", false)?;
    let partition = store.topic(&args.topic)?.partition(args.partition)?;
    let old_low_watermark = partition.start_offset();
    let low_watermark = partition.delete_records(args.before_offset)?;
    store.close()?;
    let mut out = Printer::new(args.json);
    out.line(
        &RecordsLine::RecordsDeleted {
            topic: &args.topic,
            partition: args.partition,
            old_low_watermark,
            low_watermark,
        },
        || {
            format!(
                "Records delete operation completed:\npartition: {}-{}\tlow_watermark: \
                 {low_watermark}",
                args.topic, args.partition
            )
        },
    )?;
    out.flush()?;
    Ok(Verdict::Sound)
}
