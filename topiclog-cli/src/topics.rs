//! `topiclog topics ...`: Kafka's `kafka-topics` (create, delete, `--alter --partitions`) and
//! `kafka-configs --entity-type topics --alter` (alter-config), on a store opened as its writer.
//!
//! Config keys are Kafka's, as `topic.conf` spells them; every value is parsed and checked by the
//! library (`LogOverrides::set_kafka`, then `Store::create_topic` / `alter_topic_config`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use topiclog::{LogOverrides, TopicConfig};

use crate::store_access::{key_value, open_writer, Printer};
use crate::{Failure, Verdict};

/// `topiclog topics <command>`.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// List the topics (Kafka: kafka-topics --list). Read-only: works beside a live writer.
    List(crate::inspect::TopicsListArgs),
    /// Show topics' configs and, per partition, offsets, segments and size (Kafka: kafka-topics
    /// --describe). Read-only: works beside a live writer.
    Describe(crate::inspect::TopicsDescribeArgs),
    /// Create a topic (Kafka: kafka-topics --create).
    Create(CreateArgs),
    /// Delete a topic and all its records (Kafka: kafka-topics --delete).
    Delete(DeleteArgs),
    /// Set or remove a topic's config overrides (Kafka: kafka-configs --alter --add-config /
    /// --delete-config).
    AlterConfig(AlterConfigArgs),
    /// Grow a topic to a new total of partitions (Kafka: kafka-topics --alter --partitions).
    AddPartitions(AddPartitionsArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The store directory.
    store: PathBuf,
    /// The topic to create.
    topic: String,
    /// Number of partitions.
    #[arg(long)]
    partitions: u32,
    /// A config override, `key=value` with Kafka's key names (retention.ms, cleanup.policy,
    /// segment.bytes, ...); repeatable. Settings not given take the store's defaults.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// Create the store directory if there is none (otherwise a missing store is an error).
    #[arg(long)]
    create_store: bool,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The store directory.
    store: PathBuf,
    /// The topic to delete.
    topic: String,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true).args(["set", "delete"]))]
pub struct AlterConfigArgs {
    /// The store directory.
    store: PathBuf,
    /// The topic to change.
    topic: String,
    /// Set an override, `key=value` (Kafka: --add-config); repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Remove an override, so the setting takes the store's default (Kafka: --delete-config);
    /// repeatable.
    #[arg(long, value_name = "KEY")]
    delete: Vec<String>,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct AddPartitionsArgs {
    /// The store directory.
    store: PathBuf,
    /// The topic to grow.
    topic: String,
    /// The new total number of partitions (more than it has: topics never shrink).
    #[arg(long)]
    partitions: u32,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
}

/// What the topics commands print.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TopicLine<'a> {
    TopicCreated {
        topic: &'a str,
        partitions: u32,
        /// The overrides given, as given (the rest are the store's defaults).
        config: BTreeMap<&'a str, &'a str>,
    },
    TopicDeleted {
        topic: &'a str,
    },
    TopicConfigAltered {
        topic: &'a str,
        set: BTreeMap<&'a str, &'a str>,
        deleted: Vec<&'a str>,
    },
    PartitionsAdded {
        topic: &'a str,
        old_partitions: u32,
        partitions: u32,
    },
}

/// Run a `topics` command.
pub fn run(command: &TopicsCommand) -> Result<Verdict, Failure> {
    match command {
        TopicsCommand::List(args) => crate::inspect::topics_list(args),
        TopicsCommand::Describe(args) => crate::inspect::topics_describe(args),
        TopicsCommand::Create(args) => create(args),
        TopicsCommand::Delete(args) => delete(args),
        TopicsCommand::AlterConfig(args) => alter_config(args),
        TopicsCommand::AddPartitions(args) => add_partitions(args),
    }
}

/// `key=value` arguments, each checked by the library, applied to `overrides`.
fn apply_sets<'a>(
    overrides: &mut LogOverrides,
    args: &'a [String],
    what: &str,
) -> Result<BTreeMap<&'a str, &'a str>, Failure> {
    let mut set = BTreeMap::new();
    for arg in args {
        let (key, value) = key_value(arg, what)?;
        overrides.set_kafka(key, value)?;
        set.insert(key, value);
    }
    Ok(set)
}

fn create(args: &CreateArgs) -> Result<Verdict, Failure> {
    let mut overrides = LogOverrides::default();
    // Checked before the store is opened: a typo changes nothing.
    let config = apply_sets(&mut overrides, &args.configs, "--config")?;
    let store = open_writer(&args.store, "topics create", args.create_store)?;
    store.create_topic(
        &args.topic,
        TopicConfig {
            partitions: args.partitions,
            overrides,
        },
    )?;
    store.close()?;
    let mut out = Printer::new(args.json);
    out.line(
        &TopicLine::TopicCreated {
            topic: &args.topic,
            partitions: args.partitions,
            config,
        },
        || format!("Created topic {}.", args.topic),
    )?;
    out.flush()?;
    Ok(Verdict::Sound)
}

fn delete(args: &DeleteArgs) -> Result<Verdict, Failure> {
    let store = open_writer(&args.store, "topics delete", false)?;
    store.delete_topic(&args.topic)?;
    store.close()?;
    let mut out = Printer::new(args.json);
    out.line(&TopicLine::TopicDeleted { topic: &args.topic }, || {
        format!("Deleted topic {}.", args.topic)
    })?;
    out.flush()?;
    Ok(Verdict::Sound)
}

fn alter_config(args: &AlterConfigArgs) -> Result<Verdict, Failure> {
    // Every key and value checked before the store is opened.
    let mut scratch = LogOverrides::default();
    let set = apply_sets(&mut scratch, &args.set, "--set")?;
    let deleted: Vec<&str> = args.delete.iter().map(String::as_str).collect();
    for key in &deleted {
        scratch.unset_kafka(key)?;
        if set.contains_key(key) {
            return Err(Failure::Usage(format!(
                "{key} is both set and deleted; give it once"
            )));
        }
    }
    let store = open_writer(&args.store, "topics alter-config", false)?;
    store.alter_topic_config(&args.topic, |config| {
        // Checked above, so these cannot fail.
        for (key, value) in &set {
            let _ = config.overrides.set_kafka(key, value);
        }
        for key in &deleted {
            let _ = config.overrides.unset_kafka(key);
        }
    })?;
    store.close()?;
    let mut out = Printer::new(args.json);
    let line = TopicLine::TopicConfigAltered {
        topic: &args.topic,
        set: set.clone(),
        deleted: deleted.clone(),
    };
    out.line(&line, || {
        let mut changes: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        changes.extend(
            deleted
                .iter()
                .map(|k| format!("{k} (deleted: the store default)")),
        );
        format!(
            "Completed updating config for topic {}: {}.",
            args.topic,
            changes.join(", ")
        )
    })?;
    out.flush()?;
    Ok(Verdict::Sound)
}

fn add_partitions(args: &AddPartitionsArgs) -> Result<Verdict, Failure> {
    let store = open_writer(&args.store, "topics add-partitions", false)?;
    let old_partitions = store.topic(&args.topic)?.partition_count();
    store.add_partitions(&args.topic, args.partitions)?;
    store.close()?;
    let mut out = Printer::new(args.json);
    out.line(
        &TopicLine::PartitionsAdded {
            topic: &args.topic,
            old_partitions,
            partitions: args.partitions,
        },
        || {
            format!(
                "Topic {} now has {} partitions (it had {old_partitions}).",
                args.topic, args.partitions
            )
        },
    )?;
    out.flush()?;
    Ok(Verdict::Sound)
}
