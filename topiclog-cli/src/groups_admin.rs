//! `topiclog groups reset-offsets` and `groups delete`: Kafka's `kafka-consumer-groups
//! --reset-offsets` and `--delete`, on a store opened as its writer (so no member of any group
//! is active: the store's commits are all there is).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use clap::{ArgGroup, Args, Subcommand};
use comfy_table::{presets, Table};
use serde::Serialize;
use topiclog::{OffsetAndMetadata, Partition, Store, TopicPartition};

use crate::store_access::{open_writer, Printer};
use crate::{Failure, Verdict};

/// `topiclog groups <command>`.
#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// List the groups with committed offsets (Kafka: kafka-consumer-groups --list).
    /// Read-only: works beside a live writer.
    List(crate::inspect::GroupsListArgs),
    /// Per partition: committed offset, end offset and lag (Kafka: kafka-consumer-groups
    /// --describe). Read-only: works beside a live writer.
    Describe(crate::inspect::GroupsDescribeArgs),
    /// Compute new committed offsets for a group, and with --execute commit them (Kafka:
    /// kafka-consumer-groups --reset-offsets).
    ResetOffsets(ResetOffsetsArgs),
    /// Delete every committed offset of a group (Kafka: kafka-consumer-groups --delete).
    Delete(DeleteGroupArgs),
}

#[derive(Debug, Args)]
#[command(group = ArgGroup::new("spec").required(true).args(
    ["to_earliest", "to_latest", "to_datetime", "to_offset", "shift_by"]
))]
pub struct ResetOffsetsArgs {
    /// The store directory.
    store: PathBuf,
    /// The consumer group.
    group: String,
    /// The topic whose offsets to reset.
    #[arg(long)]
    topic: String,
    /// Only this partition (repeatable; default: every partition of the topic).
    #[arg(long = "partition", value_name = "P")]
    partitions: Vec<u32>,
    /// To each partition's log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To each partition's end offset.
    #[arg(long)]
    to_latest: bool,
    /// To the first record at or after this time: RFC 3339 (2026-01-31T12:00:00Z,
    /// 2026-01-31T13:00:00.000+01:00) or milliseconds since the epoch. Past the last record: the
    /// end offset.
    #[arg(long, value_name = "TIME")]
    to_datetime: Option<String>,
    /// To this offset (clamped to the partition's start and end offsets).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<u64>,
    /// Move the committed offset by N (negative: back), clamped to the start and end offsets.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Only show the new offsets (the default).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the new offsets for the group.
    #[arg(long)]
    execute: bool,
    /// Print one JSON object per partition.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DeleteGroupArgs {
    /// The store directory.
    store: PathBuf,
    /// The consumer group.
    group: String,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum GroupLine<'a> {
    /// One partition of a reset.
    OffsetReset {
        group: &'a str,
        topic: &'a str,
        partition: u32,
        /// The group's committed offset before; `None` if it had none.
        current_offset: Option<u64>,
        new_offset: u64,
        /// Whether the new offset was committed (--execute) or only shown (dry run).
        executed: bool,
    },
    GroupDeleted {
        group: &'a str,
        /// Committed offsets deleted.
        offsets: usize,
    },
}

/// Run a `groups` command.
pub fn run(command: &GroupsCommand) -> Result<Verdict, Failure> {
    match command {
        GroupsCommand::List(args) => crate::inspect::groups_list(args),
        GroupsCommand::Describe(args) => crate::inspect::groups_describe(args),
        GroupsCommand::ResetOffsets(args) => reset_offsets(args),
        GroupsCommand::Delete(args) => delete(args),
    }
}

/// How to choose a partition's new offset.
enum Spec {
    Earliest,
    Latest,
    Time(i64),
    Offset(u64),
    Shift(i64),
}

impl Spec {
    fn of(args: &ResetOffsetsArgs) -> Result<Spec, Failure> {
        Ok(if args.to_earliest {
            Spec::Earliest
        } else if args.to_latest {
            Spec::Latest
        } else if let Some(t) = &args.to_datetime {
            Spec::Time(parse_time(t)?)
        } else if let Some(o) = args.to_offset {
            Spec::Offset(o)
        } else if let Some(n) = args.shift_by {
            Spec::Shift(n)
        } else {
            // clap requires one of the group.
            return Err(Failure::Usage("no reset specification given".into()));
        })
    }

    /// The new offset of `p`, whose committed offset is `current`, clamped to its start and end
    /// offsets as Kafka does.
    fn new_offset(
        &self,
        p: &Partition,
        tp: &TopicPartition,
        current: Option<u64>,
    ) -> Result<u64, Failure> {
        let (start, end) = (p.start_offset(), p.end_offset());
        let wanted = match *self {
            Spec::Earliest => start,
            Spec::Latest => end,
            Spec::Time(t) => p.offset_for_time(t)?.map_or(end, |found| found.offset),
            Spec::Offset(o) => o,
            Spec::Shift(n) => {
                let Some(c) = current else {
                    return Err(Failure::Usage(format!(
                        "cannot shift the offset of {tp}: the group has no committed offset \
                         there (reset it with --to-earliest, --to-latest, ... first)"
                    )));
                };
                c.saturating_add_signed(n)
            }
        };
        Ok(wanted.clamp(start, end))
    }
}

/// `--to-datetime`: milliseconds since the epoch, or RFC 3339 with `Z` or a `+hh:mm` offset.
fn parse_time(text: &str) -> Result<i64, Failure> {
    let bad = |why: String| {
        Failure::Usage(format!(
            "--to-datetime: {text:?} is not an RFC 3339 time (2026-01-31T12:00:00Z, \
             2026-01-31T13:00:00+01:00) or milliseconds since the epoch: {why}"
        ))
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|e| bad(format!("{e}")));
    }
    // humantime reads UTC (`Z`); an offset from UTC is taken off by hand.
    let split = text
        .len()
        .checked_sub(6)
        .filter(|i| text.is_char_boundary(*i))
        .map(|i| text.split_at(i));
    let (utc, offset_ms) = match split {
        Some((time, zone))
            if matches!(zone.as_bytes()[0], b'+' | b'-') && zone.as_bytes()[3] == b':' =>
        {
            let hours: i64 = zone[1..3].parse().map_err(|_| bad("bad offset".into()))?;
            let minutes: i64 = zone[4..6].parse().map_err(|_| bad("bad offset".into()))?;
            let ms = (hours * 60 + minutes) * 60_000;
            (
                format!("{time}Z"),
                if zone.starts_with('-') { -ms } else { ms },
            )
        }
        _ => (text.to_owned(), 0),
    };
    let time = humantime::parse_rfc3339_weak(&utc).map_err(|e| bad(e.to_string()))?;
    let ms = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).map_err(|_| bad("too far ahead".into()))?,
        Err(e) => {
            -i64::try_from(e.duration().as_millis()).map_err(|_| bad("too far back".into()))?
        }
    };
    Ok(ms - offset_ms)
}

/// The group's committed offsets, without creating the offsets topic of a store that has none
/// (a dry run changes nothing).
fn committed(store: &Store, group: &str) -> Result<BTreeMap<TopicPartition, u64>, Failure> {
    if !store.groups()?.iter().any(|g| g == group) {
        return Ok(BTreeMap::new());
    }
    Ok(store
        .group_lag(group)?
        .into_iter()
        .filter_map(|l| Some((l.partition, l.committed?.offset)))
        .collect())
}

fn reset_offsets(args: &ResetOffsetsArgs) -> Result<Verdict, Failure> {
    let spec = Spec::of(args)?;
    let store = open_writer(&args.store, "groups reset-offsets", false)?;
    let topic = store.topic(&args.topic)?;
    let numbers: Vec<u32> = if args.partitions.is_empty() {
        (0..topic.partition_count()).collect()
    } else {
        let mut p = args.partitions.clone();
        p.sort_unstable();
        p.dedup();
        p
    };
    let current = committed(&store, &args.group)?;
    let mut rows = Vec::new();
    for n in numbers {
        let partition = topic.partition(n)?;
        let tp = TopicPartition::new(&args.topic, n);
        let now = current.get(&tp).copied();
        let new = spec.new_offset(&partition, &tp, now)?;
        rows.push((tp, now, new));
    }
    if args.execute {
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = rows
            .iter()
            .map(|(tp, _, new)| (tp.clone(), OffsetAndMetadata::new(*new)))
            .collect();
        store.alter_group_offsets(&args.group, &offsets)?;
    }
    store.close()?;

    let mut out = Printer::new(args.json);
    if out.json() {
        for (tp, now, new) in &rows {
            out.line(
                &GroupLine::OffsetReset {
                    group: &args.group,
                    topic: &tp.topic,
                    partition: tp.partition,
                    current_offset: *now,
                    new_offset: *new,
                    executed: args.execute,
                },
                String::new,
            )?;
        }
    } else {
        let mut table = Table::new();
        table.load_style(presets::NOTHING);
        table.set_header([
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
        ]);
        for (tp, now, new) in &rows {
            table.add_row([
                args.group.clone(),
                tp.topic.clone(),
                tp.partition.to_string(),
                now.map_or_else(|| "-".to_owned(), |o| o.to_string()),
                new.to_string(),
            ]);
        }
        out.text(&table.trim_fmt())?;
        out.text(if args.execute {
            "Committed the new offsets."
        } else {
            "Dry run: nothing committed (commit these offsets with --execute)."
        })?;
    }
    out.flush()?;
    Ok(Verdict::Sound)
}

fn delete(args: &DeleteGroupArgs) -> Result<Verdict, Failure> {
    let store = open_writer(&args.store, "groups delete", false)?;
    if !store.groups()?.contains(&args.group) {
        return Err(Failure::Usage(format!(
            "group {:?} does not exist (it has no committed offsets)",
            args.group
        )));
    }
    let offsets = store.delete_group(&args.group)?;
    store.close()?;
    let mut out = Printer::new(args.json);
    out.line(
        &GroupLine::GroupDeleted {
            group: &args.group,
            offsets,
        },
        || {
            format!(
                "Deleted consumer group {:?} ({offsets} committed offsets).",
                args.group
            )
        },
    )?;
    out.flush()?;
    Ok(Verdict::Sound)
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_are_rfc_3339_or_epoch_milliseconds() {
        for (text, ms) in [
            ("0", 0),
            ("1700000000123", 1_700_000_000_123),
            ("1970-01-01T00:00:01Z", 1000),
            ("1970-01-01T00:00:01.5Z", 1500),
            ("1970-01-01 00:00:01", 1000),
            ("1970-01-01T01:00:00+01:00", 0),
            ("1970-01-01T00:00:00-00:30", 1_800_000),
            ("2026-01-31T12:00:00Z", 1_769_860_800_000),
        ] {
            assert_eq!(parse_time(text).ok(), Some(ms), "{text}");
        }
        for bad in [
            "",
            "yesterday",
            "-5",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00+1:00",
            // Before the epoch: humantime reads none.
            "1969-12-31T23:59:59Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
