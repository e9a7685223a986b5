//! A partition of known content written with the library, and a way to run the `topiclog` binary.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use topiclog::{Compression, Durability, Env, LogConfig, Partition, Record};

/// The one segment's base offset, and so its file names.
pub const SEGMENT: &str = "00000000000000000000";

/// Write the known partition into `dir` and close it: three batches,
/// - offsets 0-2: keys `k0`..`k2`, values `v0`..`v2`, one header `h=x` each, timestamps 1000-1002;
/// - offset 3: no key, the value `ff 00` (not UTF-8), no headers, timestamp 2000;
/// - offsets 4-5: lz4-compressed, keys `c4`, `c5`, values `compressed4`, `compressed5`,
///   timestamp 3000.
///
/// An index entry is made for every batch (`index_interval_bytes` 1).
pub fn write_partition(dir: &Path) -> PathBuf {
    let config = LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let log = Partition::open_with_env(dir, config, Env::default()).expect("open");
    let first: Vec<Record> = (0..3)
        .map(|i| {
            Record::new(format!("v{i}"))
                .with_key(format!("k{i}"))
                .with_header("h", topiclog::Bytes::from("x"))
                .with_timestamp(1000 + i)
        })
        .collect();
    log.append_batch(&first).expect("append");
    log.append_batch(&[Record::new(vec![0xff, 0x00]).with_timestamp(2000)])
        .expect("append");
    let compressed: Vec<Record> = (4..6)
        .map(|i| {
            Record::new(format!("compressed{i}"))
                .with_key(format!("c{i}"))
                .with_timestamp(3000)
        })
        .collect();
    log.append_batch_compressed(&compressed, Compression::Lz4, Durability::Always)
        .expect("append");
    log.close().expect("close");
    dir.to_owned()
}

/// The path of the segment's file with `extension`.
pub fn segment_file(dir: &Path, extension: &str) -> PathBuf {
    dir.join(format!("{SEGMENT}.{extension}"))
}

/// Run `topiclog` with `args`.
pub fn topiclog<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_topiclog"))
        .args(args)
        .output()
        .expect("run topiclog")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// The output's JSON lines, parsed.
pub fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The lines whose `type` is `kind`.
pub fn of_type<'a>(lines: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["type"] == kind).collect()
}
