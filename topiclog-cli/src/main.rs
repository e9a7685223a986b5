//! `topiclog`: command-line tools for topiclog's data, named and shaped after Kafka's own
//! (`kafka-dump-log.sh`, ...), so that a Kafka user finds their way. Every command prints text
//! for people, or with `--json` one JSON object per line for scripts.
//!
//! Exit codes: 0 all is well, 1 damage was found (and reported), 2 the command could not run
//! (bad arguments, a missing or unreadable file, a file that is not a segment file).

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod dump;
mod groups_admin;
mod inspect;
mod kafka_io;
mod line;
mod perf;
mod produce;
mod records;
mod store_access;
mod topics;
mod verify;

/// Inspect topiclog's (and Kafka's) log directories.
#[derive(Debug, Parser)]
#[command(name = "topiclog", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the batches, records and index entries of segment files (Kafka: kafka-dump-log
    /// --files).
    Dump(dump::DumpArgs),
    /// Check every file of a store (or one topic or partition) without opening it: batch CRCs,
    /// offset continuity, index entries, metadata files. Runs beside a live writer.
    Verify(verify::VerifyArgs),
    /// Measure throughput and latency: `perf produce` (Kafka: kafka-producer-perf-test) and
    /// `perf consume` (Kafka: kafka-consumer-perf-test).
    Perf(perf::PerfArgs),
    /// List, describe, create, delete and alter topics (Kafka: kafka-topics, kafka-configs).
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Print a topic's records (Kafka: kafka-console-consumer). Read-only unless --group: works
    /// beside a live writer.
    Consume(inspect::ConsumeArgs),
    /// The store's totals and each partition's offsets, records, segments and size. Read-only:
    /// works beside a live writer.
    Stats(inspect::StatsArgs),
    /// Send lines of standard input as records (Kafka: kafka-console-producer).
    Produce(produce::ProduceArgs),
    /// Delete a partition's records below an offset (Kafka: kafka-delete-records).
    DeleteRecords(records::DeleteRecordsArgs),
    /// List and describe consumer groups, reset or delete their committed offsets (Kafka:
    /// kafka-consumer-groups).
    #[command(subcommand)]
    Groups(groups_admin::GroupsCommand),
    /// Write topics as a Kafka log directory, for a broker to adopt.
    ExportKafka(kafka_io::ExportKafkaArgs),
    /// Create topics from a Kafka log directory's partitions.
    ImportKafka(kafka_io::ImportKafkaArgs),
}

/// What a command found, when it could run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing wrong.
    Sound,
    /// Damage was found and reported on the output.
    Damaged,
}

/// Why a command could not run (exit code 2), or stopped writing.
#[derive(Debug)]
enum Failure {
    /// The input is not what the command takes: a message for standard error.
    Usage(String),
    /// Standard output could not be written (a closed pipe ends the command quietly).
    Output(io::Error),
    /// The library refused or failed: a store that is not there or is held by a writer, an
    /// unknown topic or partition, a damaged file. Damage exits 1, the rest 2.
    Library(topiclog::Error),
}

impl From<topiclog::Error> for Failure {
    fn from(e: topiclog::Error) -> Self {
        Failure::Library(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Dump(args) => dump::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Perf(args) => perf::run(args),
        Command::Topics(command) => topics::run(command),
        Command::Consume(args) => inspect::consume(args),
        Command::Stats(args) => inspect::stats(args),
        Command::Produce(args) => produce::run(args),
        Command::DeleteRecords(args) => records::run(args),
        Command::Groups(command) => groups_admin::run(command),
        Command::ExportKafka(args) => kafka_io::export(args),
        Command::ImportKafka(args) => kafka_io::import(args),
    };
    match outcome {
        Ok(Verdict::Sound) => ExitCode::SUCCESS,
        Ok(Verdict::Damaged) => ExitCode::from(1),
        // `topiclog dump ... | head`: the reader has all it wanted.
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Output(e)) => {
            eprintln!("topiclog: cannot write the output: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("topiclog: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Library(e)) => {
            eprintln!("topiclog: {e}");
            match e.kind() {
                topiclog::ErrorKind::Damaged => ExitCode::from(1),
                _ => ExitCode::from(2),
            }
        }
    }
}
